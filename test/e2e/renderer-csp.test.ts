// Issue 17: browser mode serves the renderer under the Electron policy (renderer-policy.ts), so this suite runs
// under it. A real app instance and headless Chromium: the page arrives with exactly that policy, every view renders
// with nothing refused, and the policy and the collector the other e2e flows rely on really work: an inline style
// attribute or <style> element is refused (and reported), while styles set through the CSSOM, as Svelte's
// `style:` directives do, still apply.
import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { contentSecurityPolicy } from '../../main/app/browser-host.js';
import { CONTENT_SECURITY_POLICY } from '../../main/app/electron-security.js';
import { describeWithChromium, ensureAppBuilt, launchChromium, navigate, openApp, startBrowserApp } from '../helpers/browser.js';
import type { BrowserApp, ChromiumInstance } from '../helpers/browser.js';

const STEP_TIMEOUT_MS = 15_000;

function headersOf(url: string): Promise<http.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.headers);
        });
      })
      .on('error', reject);
  });
}

describeWithChromium('the renderer under the strict policy (browser mode)', (executable) => {
  let app: BrowserApp | null = null;
  let browser: ChromiumInstance | null = null;

  beforeAll(async () => {
    await ensureAppBuilt();
  });

  afterAll(async () => {
    for (const close of [() => browser?.close(), () => app?.stop()]) {
      try {
        await close();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  });

  it('renders every view with nothing refused, and refuses inline styles while CSSOM styles apply', async () => {
    app = await startBrowserApp('csp');
    const origin = new URL(app.url).origin;
    const port = Number(new URL(app.url).port);

    // The policy on the wire is Electron's but for the IPC WebSocket in connect-src.
    const headers = await headersOf(`${origin}/`);
    expect(headers['content-security-policy']).toBe(contentSecurityPolicy(port));
    expect(headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY.replace("connect-src 'self'", `connect-src 'self' ws://127.0.0.1:${port}`));
    expect(headers['content-security-policy']).not.toContain('unsafe-inline');

    browser = await launchChromium({ executable });
    const page = await openApp(browser.context, app.url);
    for (const route of ['pair', 'device', 'gateway', 'devices', 'revocation', 'pair'] as const) {
      await navigate(page, route);
      await page.locator('main').first().waitFor({ timeout: STEP_TIMEOUT_MS });
    }
    // The pair view's scanner sizes its preview through style: directives (CSSOM): applied, not refused.
    await page.getByTestId('camera-preview').waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });
    const aspect = await page.evaluate(() => document.querySelector<HTMLElement>('[data-testid=camera-preview]')?.parentElement?.style.getPropertyValue('--aspect') ?? '');
    expect(aspect).not.toBe('');
    await page.reload();
    await page.getByTestId('nav-pair').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(browser.cspViolations()).toEqual([]);
    expect(await page.evaluate(() => (window as unknown as { __cspViolations: unknown[] }).__cspViolations)).toEqual([]);

    // The canary: what the policy must refuse is refused, and the collector sees it.
    const applied = await page.evaluate(() => {
      const attr = document.createElement('p');
      attr.id = 'csp-canary-attr';
      attr.textContent = 'attr';
      document.body.append(attr);
      attr.setAttribute('style', 'outline-style: dotted');
      const element = document.createElement('style');
      element.textContent = '#csp-canary-elem { outline-style: dashed; }';
      document.head.append(element);
      const elem = document.createElement('p');
      elem.id = 'csp-canary-elem';
      elem.textContent = 'elem';
      document.body.append(elem);
      const cssom = document.createElement('p');
      cssom.textContent = 'cssom';
      document.body.append(cssom);
      cssom.style.outlineStyle = 'double';
      return [attr, elem, cssom].map((e) => getComputedStyle(e).outlineStyle);
    });
    expect(applied).toEqual(['none', 'none', 'double']);
    await expect.poll(() => browser!.cspViolations().filter((v) => v.via === 'event').map((v) => v.directive).sort(), { timeout: STEP_TIMEOUT_MS }).toEqual(['style-src-attr', 'style-src-elem']);
    for (const violation of browser.cspViolations()) expect(violation.page.startsWith(`${origin}/`)).toBe(true);
  });
});
