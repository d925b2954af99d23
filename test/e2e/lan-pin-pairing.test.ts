// Issue 13, end to end across two app instances on "a network": the host turns its gateway on for "Devices on this
// network", the device finds it in the Pair view's "Gateways nearby" (DNS-SD, real multicast) and pairs by PIN
// without anyone typing an address (PIN v2: the PIN check is the trust decision, so there is no SAS to compare). A
// first try is cancelled by the device: the host lists it as cancelled without Approve, and its main process refuses
// gateway.approve for it (pairing_request_not_pending). Both apps start with the first-run choice: the host picks
// "Host a gateway here", the device "Join a gateway". At the end the host removes the device: both say "removed",
// not banned.
//
// How it is done: multicast must never touch this machine's real interfaces, so the test makes a private network
// namespace (`unshare -n`, held open by a sleeping process; a veth pair gives it the "LAN" address 10.99.0.1 with
// multicast routed over it). Both app processes (browser-main) are started inside it with `nsenter --net=…`, and so
// is each headless Chromium (its executable is a two-line wrapper that execs Chromium through the same nsenter;
// playwright's pipe to it survives the exec), so the browsers reach the apps' 127.0.0.1 inside the namespace. The
// test process itself stays outside; it only drives the browsers.
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { axeViolations, describeWithChromium, ensureAppBuilt, launchChromium, navigate, openApp, startBrowserApp } from '../helpers/browser.js';
import type { BrowserApp, ChromiumInstance } from '../helpers/browser.js';
import { tempDir } from '../helpers/identity.js';
import { holdNetns, netnsUnavailable } from '../helpers/netns.js';
import type { HeldNetns } from '../helpers/netns.js';

/** Liveness bounds for steps that involve the network, multicast or key generation on a loaded 2-core machine. */
const STEP_TIMEOUT_MS = 30_000;
const GATEWAY_NAME = 'Office gateway';
const DEVICE_NAME = 'Laptop on the LAN';

const missingNetns = netnsUnavailable();

describeWithChromium('pairing by PIN with a gateway found nearby, across two app instances in a network namespace', (executable) => {
  let netns: HeldNetns | null = null;
  let host: BrowserApp | null = null;
  let device: BrowserApp | null = null;
  let browserHost: ChromiumInstance | null = null;
  let browserDevice: ChromiumInstance | null = null;
  let wrapperDir: { dir: string; cleanup: () => Promise<void> } | null = null;

  beforeAll(async () => {
    await ensureAppBuilt();
  });

  afterAll(async () => {
    for (const close of [() => browserDevice?.close(), () => browserHost?.close(), () => device?.stop(), () => host?.stop(), () => netns?.close(), () => wrapperDir?.cleanup()]) {
      try {
        await close();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  });

  it('host on "Devices on this network", device discovers it and pairs by PIN without typing an address; a cancelled try cannot be approved; removed reads removed on both', async (context) => {
    if (missingNetns !== null) {
      if (process.env.CI === 'true') throw new Error(`${missingNetns}; CI must run the LAN pairing test`);
      context.skip(missingNetns);
      return;
    }
    netns = await holdNetns({ veth: true, timeoutMs: STEP_TIMEOUT_MS });
    wrapperDir = await tempDir('palyra-e2e-netns-');
    const wrapper = path.join(wrapperDir.dir, 'chromium-in-netns');
    await writeFile(wrapper, `#!/bin/sh\nexec ${netns.prefix.join(' ')} ${executable} "$@"\n`);
    await chmod(wrapper, 0o755);

    [host, device] = await Promise.all([startBrowserApp('lan-host', { commandPrefix: netns.prefix }), startBrowserApp('lan-device', { commandPrefix: netns.prefix })]);
    [browserHost, browserDevice] = await Promise.all([
      launchChromium({ executable: wrapper, viewport: { width: 1280, height: 800 } }),
      launchChromium({ executable: wrapper, viewport: { width: 1280, height: 800 } }),
    ]);
    const pageHost = await openApp(browserHost.context, host.url);
    const pageDevice = await openApp(browserDevice.context, device.url);

    // --- First run: each app asks; the host chooses to host, the device to join -------------------------------------
    await pageHost.getByTestId('first-run').waitFor({ timeout: STEP_TIMEOUT_MS });
    await pageDevice.getByTestId('first-run').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await axeViolations(pageDevice)).toEqual([]);
    await pageHost.getByTestId('first-run-host').click();
    await pageHost.waitForFunction(() => window.location.hash === '#/gateway', undefined, { timeout: STEP_TIMEOUT_MS });
    await pageDevice.getByTestId('first-run-join').click();
    await pageDevice.getByTestId('first-run').waitFor({ state: 'detached', timeout: STEP_TIMEOUT_MS });

    // --- The host: a named gateway for devices on this network, turned on --------------------------------------
    await pageHost.getByTestId('gateway-name-input').fill(GATEWAY_NAME);
    await pageHost.getByRole('button', { name: 'Save', exact: true }).click();
    await pageHost.getByTestId('network-lan').check();
    await pageHost.locator('[data-testid=gateway-network][data-network=lan]').waitFor({ timeout: STEP_TIMEOUT_MS });
    if ((await pageHost.getByTestId('gateway-switch').getAttribute('aria-checked')) !== 'true') await pageHost.getByTestId('gateway-switch').click();
    await pageHost.locator('[data-testid=gateway-running][data-running=true]').waitFor({ timeout: STEP_TIMEOUT_MS });
    await pageHost.getByTestId('gateway-announced').waitFor({ timeout: STEP_TIMEOUT_MS });
    const addresses = (await pageHost.getByTestId('gateway-addresses').textContent()) ?? '';
    const lanAddress = /10\.99\.0\.1:\d+/.exec(addresses)?.[0];
    expect(lanAddress, addresses).toBeDefined();

    await pageHost.getByTestId('mint-pin').click();
    let pin = (await pageHost.getByTestId('minted-pin').getAttribute('data-pin')) ?? '';
    expect(pin).toMatch(/^[0-9]{6}$/);

    // --- The device: the gateway is listed nearby; "Use" fills in its address --------------------------------------
    let listed = pageDevice.locator('[data-testid=nearby-gateway]', { hasText: GATEWAY_NAME });
    // One search runs when the view opens; the announcement may land just after it, so search again until listed.
    await expect
      .poll(
        async () => {
          if ((await listed.count()) > 0) return true;
          const again = pageDevice.getByTestId('nearby-search');
          if (await again.isEnabled()) await again.click();
          return false;
        },
        { timeout: STEP_TIMEOUT_MS, interval: 1_000 },
      )
      .toBe(true);
    listed = listed.first();
    expect(await listed.getAttribute('data-address')).toBe(lanAddress);
    expect(await pageDevice.getByTestId('gateway-input').inputValue()).toBe('');
    await listed.getByTestId('nearby-use').click();
    expect(await pageDevice.getByTestId('gateway-input').inputValue()).toBe(lanAddress);

    await pageDevice.getByTestId('device-name-input').fill(DEVICE_NAME);

    // --- First try: the device cancels while waiting; the host shows it cancelled, and cannot approve it ---------
    await pageDevice.getByTestId('pin-input').fill(pin);
    await pageDevice.getByTestId('pin-submit').click();
    await pageDevice.getByTestId('pairing-verified-by-pin').waitFor({ timeout: STEP_TIMEOUT_MS });
    const firstRow = pageHost.locator('[data-testid=request-row]', { hasText: DEVICE_NAME });
    await firstRow.waitFor({ timeout: STEP_TIMEOUT_MS });
    const cancelledId = (await firstRow.getAttribute('data-request-id')) ?? '';
    await pageDevice.getByTestId('pairing-cancel').click();
    const cancelledRow = pageHost.locator(`[data-testid=request-row][data-request-id="${cancelledId}"][data-state=cancelled]`);
    await cancelledRow.waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await cancelledRow.getByTestId('request-ended').textContent()).toBe('Cancelled by the device');
    expect(await cancelledRow.getByTestId('request-approve').count()).toBe(0);
    expect(await cancelledRow.getByTestId('request-reject').count()).toBe(0);
    // The main process refuses too, through the page's own bridge, with the coded error.
    const refused = await pageHost.evaluate(async (requestId) => {
      try {
        await (window as unknown as { palyra: { gatewayApprove(a: { request_id: string }): Promise<unknown> } }).palyra.gatewayApprove({ request_id: requestId });
        return 'approved';
      } catch (error) {
        return (error as { code?: string }).code ?? 'no code';
      }
    }, cancelledId);
    expect(refused).toBe('pairing_request_not_pending');
    await cancelledRow.getByTestId('request-dismiss').click();

    // --- Second try with a new PIN, typed as the host displays it (grouped with a space) ---------------------------
    if ((await pageHost.getByTestId('mint-regenerate').count()) > 0) await pageHost.getByTestId('mint-regenerate').click();
    else await pageHost.getByTestId('mint-pin').click();
    await expect.poll(() => pageHost.getByTestId('minted-pin').getAttribute('data-pin'), { timeout: STEP_TIMEOUT_MS }).not.toBe(pin);
    pin = (await pageHost.getByTestId('minted-pin').getAttribute('data-pin')) ?? '';
    expect(pin).toMatch(/^[0-9]{6}$/);
    if ((await pageDevice.getByTestId('pairing-start-over').count()) > 0) await pageDevice.getByTestId('pairing-start-over').click();
    expect(await pageDevice.getByTestId('gateway-input').inputValue()).toBe(lanAddress);
    await pageDevice.getByTestId('pin-input').fill(`${pin.slice(0, 3)} ${pin.slice(3)}`);
    await pageDevice.getByTestId('pin-submit').click();

    // PIN v2: the device is told the gateway was verified by the PIN, with no code to compare.
    await pageDevice.getByTestId('pairing-verified-by-pin').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await pageDevice.getByTestId('pairing-tofu').count()).toBe(0);
    expect(await pageDevice.getByTestId('pairing-sas').count()).toBe(0);

    // --- The host sees the named request, verified by PIN, and approves ---------------------------------------------
    const row = pageHost.locator('[data-testid=request-row][data-state=pending_approval]', { hasText: DEVICE_NAME });
    await row.waitFor({ timeout: STEP_TIMEOUT_MS });
    await row.getByTestId('sas-confirmed').waitFor({ timeout: STEP_TIMEOUT_MS });
    await row.getByTestId('request-approve').click();

    await pageDevice.locator('[data-testid=pairing-status][data-phase=paired]').waitFor({ timeout: STEP_TIMEOUT_MS });
    const deviceId = (await pageDevice.getByTestId('paired-device-id').textContent())?.trim() ?? '';
    expect(deviceId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    // Chosen once: a reload does not ask again.
    await pageDevice.reload();
    await pageDevice.getByTestId('nav-pair').waitFor({ timeout: STEP_TIMEOUT_MS });
    await navigate(pageDevice, 'pair');
    await pageDevice.locator('main h1').first().waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await pageDevice.getByTestId('first-run').count()).toBe(0);

    // The host lists it by name; the device comes online over the LAN address it dialled.
    await navigate(pageHost, 'devices');
    const deviceRow = pageHost.locator(`[data-testid=device-row][data-device-id="${deviceId}"]`);
    await deviceRow.waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await deviceRow.textContent()).toContain(DEVICE_NAME);
    await navigate(pageDevice, 'device');
    await pageDevice.locator('[data-testid=connection-state][data-state=online]').waitFor({ timeout: STEP_TIMEOUT_MS });

    // --- The host removes it: both sides say removed (not banned), in the same words ---------------------------------
    await deviceRow.getByTestId('device-remove').click();
    const dialog = pageHost.locator('[data-testid=confirm-dialog][open]');
    await dialog.waitFor({ timeout: STEP_TIMEOUT_MS });
    await dialog.getByTestId('confirm-accept').click();
    expect(await pageHost.getByTestId('devices-notice').textContent()).toContain('it is not banned and may pair again with a new code');
    await pageDevice.locator('[data-testid=revoked-banner][data-state=removed]').waitFor({ timeout: STEP_TIMEOUT_MS });
    await pageDevice.locator('[data-testid=status-device][data-state=removed]').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await pageDevice.getByTestId('revoked-banner').textContent()).not.toMatch(/unban/i);

    expect(browserHost.cspViolations()).toEqual([]);
    expect(browserDevice.cspViolations()).toEqual([]);
  });
});
