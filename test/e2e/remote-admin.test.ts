// Issue 7, end to end: the app paired as the administrator of a remote gateway manages it from its Gateway view.
//
//   A gateway runs in the test process (temp state dir, loopback). App A (browser mode, a child process, no hosted
//   gateway) pairs with it from a pasted pairing link, approved on the gateway; the gateway grants A the admin role.
//   A's Gateway view then names the remote gateway (remote-gateway-banner) and mints a code on it; a third device
//   (in-process) pairs with that code, its request row arrives in A's open view without a reload (WatchEvents), with
//   the SAS the device computed, and A approves it; the device ends paired on the gateway.
//
// Screenshot: test-output/e2e/remote-admin.png.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairResult } from '../../main/device/pairing-client.js';
import type { GatewayEvent } from '../../main/gateway/gateway.js';
import { repoRoot } from '../helpers/build.js';
import { describeWithChromium, ensureAppBuilt, launchChromium, navigate, openApp, startBrowserApp } from '../helpers/browser.js';
import type { BrowserApp, ChromiumInstance } from '../helpers/browser.js';
import { openTestDevice, startGateway } from '../helpers/gateway.js';

const OUTPUT_DIR = path.join(repoRoot, 'test-output', 'e2e');
const STEP_TIMEOUT_MS = 20_000;

describeWithChromium('the app as administrator of a remote gateway (browser mode)', (executable) => {
  let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
  let third: Awaited<ReturnType<typeof openTestDevice>> | null = null;
  let appA: BrowserApp | null = null;
  let browserA: ChromiumInstance | null = null;

  beforeAll(async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    await ensureAppBuilt();
  });

  afterAll(async () => {
    for (const close of [() => browserA?.close(), () => appA?.stop(), () => third?.cleanup(), () => gw?.cleanup()]) {
      try {
        await close();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  });

  it('pairs A as admin, shows a remote request arriving live, and approves it', async () => {
    gw = await startGateway({ name: 'Remote HQ' });
    const gateway = gw.gateway;
    appA = await startBrowserApp('a');
    browserA = await launchChromium({ executable });
    let pageA = await openApp(browserA.context, appA.url);

    // --- A pairs with the gateway from a pasted link; the gateway's operator approves it --------------------------
    const code = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'e2e', gatewayAddresses: [gateway.listen], gatewayName: gateway.name });
    const approveFirst = (event: GatewayEvent): void => {
      if (event.type === 'request.created') void gateway.admin.approve(event.request.request_id);
    };
    gateway.events.on('event', approveFirst);
    await navigate(pageA, 'pair');
    await pageA.getByTestId('link-input').fill(code.uri ?? '');
    await pageA.getByTestId('link-submit').click();
    await pageA.getByTestId('pair-confirm').click();
    await pageA.locator('[data-testid=pairing-status][data-phase=paired]').waitFor({ timeout: STEP_TIMEOUT_MS });
    gateway.events.off('event', approveFirst);
    const deviceA = (await pageA.getByTestId('paired-device-id').textContent())?.trim() ?? '';
    expect(gateway.admin.listDevices().devices.map((d) => d.device_id)).toContain(deviceA);

    // --- the admin role; A (opened afresh) manages the remote gateway -----------------------------------------------
    await gateway.admin.grantAdmin(deviceA);
    await pageA.close();
    // Closing the profile's last tab ended its browser session (and the session cookie): a fresh link, as a person
    // would get with `npm start -- --new-link`.
    pageA = await openApp(browserA.context, await appA.newLink());
    await navigate(pageA, 'gateway');
    const banner = pageA.getByTestId('remote-gateway-banner');
    await banner.waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await banner.textContent()).toContain(`Managing remote gateway Remote HQ (${gateway.listen}) as an administrator`);
    expect(await pageA.getByTestId('gateway-switch').count()).toBe(0);
    await expect.poll(() => pageA.getByTestId('no-requests').count(), { timeout: STEP_TIMEOUT_MS }).toBe(1);

    // A mints a code on the remote gateway from its view.
    await pageA.getByTestId('mint-qr').click();
    const mintedQr = pageA.getByTestId('minted-qr');
    await mintedQr.waitFor({ timeout: STEP_TIMEOUT_MS });
    const uri = (await mintedQr.getAttribute('data-qr-text')) ?? '';
    expect(new URL(uri).searchParams.get('gw')).toBe(gateway.listen);

    // --- a third device pairs with it; its request arrives in A's open view ----------------------------------------
    third = await openTestDevice();
    let sas: string | null = null;
    const paired: Promise<PairResult> = pairDevice({
      store: third.store,
      target: { method: 'qr', uri: parsePairingUri(uri, { now: Date.now() }) },
      kind: 'node',
      onProgress: (event) => {
        if (event.type === 'awaiting_approval') sas = event.sas;
      },
    });
    const row = pageA.getByTestId('request-row');
    await row.waitFor({ timeout: STEP_TIMEOUT_MS });
    await expect.poll(() => sas, { timeout: STEP_TIMEOUT_MS }).not.toBeNull();
    expect(await row.getByTestId('request-sas').getAttribute('data-sas')).toBe(sas);
    await row.scrollIntoViewIfNeeded();
    await pageA.screenshot({ path: path.join(OUTPUT_DIR, 'remote-admin.png') });

    await row.getByTestId('request-approve').click();
    const result = await paired;
    await expect.poll(() => pageA.getByTestId('request-row').count(), { timeout: STEP_TIMEOUT_MS }).toBe(0);
    const device = gateway.admin.listDevices().devices.find((d) => d.device_id === result.deviceId);
    expect(device).toMatchObject({ status: 'paired', client_kind: 'node' });
    // All of it under the strict renderer policy (the Electron one): nothing refused.
    expect(browserA.cspViolations()).toEqual([]);
  }, 120_000);
});
