// Issue 14, end to end: a PIN pairing v2 (SPAKE2+) between two real app instances in browser mode, each a child
// process with its own directories, each driven in its own headless Chromium. A hosts the gateway and makes a PIN; B
// types it (with a space, as read off the screen) and the gateway's address; B shows "verified by PIN" and no digits
// to compare; A's approval card says the request is confirmed, with no SAS; A approves and B is paired. axe-core
// finds nothing on either screen at the approval step, and neither app's strict renderer policy refused anything.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { repoRoot } from '../helpers/build.js';
import { axeViolations, describeWithChromium, ensureAppBuilt, launchChromium, navigate, openApp, startBrowserApp } from '../helpers/browser.js';
import type { BrowserApp, ChromiumInstance } from '../helpers/browser.js';

const OUTPUT_DIR = path.join(repoRoot, 'test-output', 'e2e');
/** Liveness bounds for steps with key generation and scrypt on a loaded 2-core machine. */
const STEP_TIMEOUT_MS = 30_000;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(OUTPUT_DIR, `${name}.png`) });
}

describeWithChromium('PIN pairing v2 between two app instances (browser mode)', (executable) => {
  let appA: BrowserApp | null = null;
  let appB: BrowserApp | null = null;
  let browserA: ChromiumInstance | null = null;
  let browserB: ChromiumInstance | null = null;

  beforeAll(async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    await ensureAppBuilt();
  });

  afterAll(async () => {
    for (const close of [() => browserB?.close(), () => browserA?.close(), () => appB?.stop(), () => appA?.stop()]) {
      try {
        await close();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  });

  it('pairs by PIN with no SAS step: B shows "verified by PIN", A’s card says confirmed, approve → paired', async () => {
    [appA, appB] = await Promise.all([startBrowserApp('pin-a'), startBrowserApp('pin-b')]);

    // --- A: the gateway on loopback, then a PIN -------------------------------------------------------------------
    browserA = await launchChromium({ executable });
    const pageA = await openApp(browserA.context, appA.url);
    await navigate(pageA, 'gateway');
    await pageA.getByTestId('gateway-listen-input').fill('127.0.0.1:0');
    await pageA.getByRole('button', { name: 'Save', exact: true }).click();
    await pageA.getByTestId('gateway-switch').click();
    await pageA.locator('[data-testid=gateway-running][data-running=true]').waitFor({ timeout: STEP_TIMEOUT_MS });
    const runningText = (await pageA.getByTestId('gateway-running').textContent()) ?? '';
    const listen = /Running on (127\.0\.0\.1:\d+)/.exec(runningText)?.[1];
    expect(listen, runningText).toBeDefined();

    await pageA.getByTestId('mint-pin').click();
    const mintedPin = pageA.getByTestId('minted-pin');
    await mintedPin.waitFor({ timeout: STEP_TIMEOUT_MS });
    const pin = (await mintedPin.getAttribute('data-pin')) ?? '';
    expect(pin).toMatch(/^[0-9]{6}$/);
    await shot(pageA, 'pin-01-a-pin-minted');

    // --- B: types the PIN as read off A's screen ("123 456") and A's address ---------------------------------------
    browserB = await launchChromium({ executable });
    const pageB = await openApp(browserB.context, appB.url);
    await navigate(pageB, 'pair');
    await pageB.getByTestId('pin-input').fill(`${pin.slice(0, 3)} ${pin.slice(3)}`);
    await pageB.getByTestId('gateway-input').fill(listen!);
    await pageB.getByTestId('pin-submit').click();

    // --- Awaiting approval: B verified the gateway by the PIN, nothing to compare on either side -------------------
    await pageB.locator('[data-testid=pairing-status][data-phase=progress][data-step=awaiting_approval]').waitFor({ timeout: STEP_TIMEOUT_MS });
    await pageB.getByTestId('pairing-verified-by-pin').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await pageB.getByTestId('pairing-verified-by-pin').textContent()).toContain('verified by PIN');
    expect(await pageB.getByTestId('pairing-sas').count()).toBe(0);
    expect(await pageB.getByTestId('pairing-sas-heading').count()).toBe(0);
    expect(await pageB.getByTestId('pairing-tofu').count()).toBe(0);
    // The gateway check says so too (the CA is pinned as after a QR scan), not "first contact, compare by eye".
    const pinState = pageB.getByTestId('pairing-pin-state');
    expect(await pinState.getAttribute('data-pinned')).toBe('true');
    expect(await pinState.getAttribute('data-verified-by')).toBe('pin');
    expect(await pinState.textContent()).toContain('Verified by PIN');

    const requestRow = pageA.getByTestId('request-row');
    await requestRow.waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await requestRow.count()).toBe(1);
    await requestRow.getByTestId('sas-confirmed').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await requestRow.getByTestId('request-sas').count()).toBe(0);
    expect(await requestRow.getByTestId('sas-unverifiable').count()).toBe(0);
    expect(await requestRow.textContent()).toContain('paired by PIN');
    await shot(pageB, 'pin-02-b-verified-by-pin');
    await requestRow.scrollIntoViewIfNeeded();
    await shot(pageA, 'pin-03-a-request-confirmed');

    // The approval step, as the others: no axe violation on either screen.
    expect(await axeViolations(pageB)).toEqual([]);
    expect(await axeViolations(pageA)).toEqual([]);

    // --- A approves; B is paired -----------------------------------------------------------------------------------
    await requestRow.getByTestId('request-approve').click();
    await pageB.locator('[data-testid=pairing-status][data-phase=paired]').waitFor({ timeout: STEP_TIMEOUT_MS });
    const deviceId = (await pageB.getByTestId('paired-device-id').textContent())?.trim() ?? '';
    expect(deviceId).not.toBe('');
    await shot(pageB, 'pin-04-b-paired');
    await navigate(pageA, 'devices');
    await pageA.locator(`[data-testid=device-row][data-device-id="${deviceId}"]`).waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await axeViolations(pageB)).toEqual([]);

    expect(browserA.cspViolations()).toEqual([]);
    expect(browserB.cspViolations()).toEqual([]);
  });
});
