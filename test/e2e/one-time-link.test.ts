// Issue 12, the one-time browser link: a real app instance in browser mode and headless Chromium. The printed link
// opens the app once; the token leaves the address bar at once and a reload (and another tab of the same profile)
// works on the HttpOnly session cookie; the same link in a new browser profile, as from a copied history, gets the
// "already used" page and not the app; a fresh link from the running host opens it there.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithChromium, ensureAppBuilt, launchChromium, navigate, openApp, startBrowserApp } from '../helpers/browser.js';
import type { BrowserApp, ChromiumInstance } from '../helpers/browser.js';

const STEP_TIMEOUT_MS = 15_000;

describeWithChromium('the one-time browser link', (executable) => {
  let app: BrowserApp | null = null;
  const browsers: ChromiumInstance[] = [];

  beforeAll(async () => {
    await ensureAppBuilt();
  });

  afterAll(async () => {
    for (const close of [...browsers.map((b) => () => b.close()), () => app?.stop()]) {
      try {
        await close();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  });

  it('opens the app once, keeps the token out of the address bar, reloads on the cookie, and refuses the link elsewhere', async () => {
    app = await startBrowserApp('link');
    const link = app.url;
    const token = new URL(link).hash.slice('#token='.length);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const first = await launchChromium({ executable });
    browsers.push(first);

    // The link opens the app, which works (the device view shows the services' answer).
    const page = await openApp(first.context, link);
    expect(page.url()).not.toContain(token);
    expect(page.url()).not.toContain('#token');
    await navigate(page, 'device');
    await page.getByTestId('not-paired').waitFor({ timeout: STEP_TIMEOUT_MS });
    // The session is an HttpOnly cookie: the page's scripts cannot read it.
    expect(await page.evaluate(() => document.cookie)).toBe('');
    const cookies = await first.context.cookies(new URL(link).origin);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: `palyra_session_${new URL(link).port}`, httpOnly: true, sameSite: 'Strict', path: '/', expires: -1 });

    // A reload works on the cookie.
    await page.reload();
    await page.getByTestId('not-paired').waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(page.url()).not.toContain(token);
    // A tab opened later in the same profile too, without any link.
    const sameProfile = await first.context.newPage();
    await sameProfile.goto(`${new URL(link).origin}/#/device`, { timeout: STEP_TIMEOUT_MS });
    await sameProfile.getByTestId('not-paired').waitFor({ timeout: STEP_TIMEOUT_MS });

    // The same link in a new browser profile, as someone who read the history: the "already used" page, no app.
    const second = await launchChromium({ executable });
    browsers.push(second);
    const stranger = second.context.pages()[0] ?? (await second.context.newPage());
    await stranger.goto(link, { timeout: STEP_TIMEOUT_MS });
    const problem = stranger.getByTestId('link-problem');
    await problem.waitFor({ timeout: STEP_TIMEOUT_MS });
    expect(await problem.getAttribute('data-problem')).toBe('link_used');
    expect(await stranger.getByRole('heading', { level: 1 }).textContent()).toBe('This link was already used');
    expect(await problem.textContent()).toContain('npm start -- --new-link');
    expect(await stranger.getByTestId('nav-pair').count()).toBe(0);
    expect(stranger.url()).not.toContain(token);
    expect(await second.context.cookies(new URL(link).origin)).toEqual([]);
    // Without a link at all: the "not signed in" page.
    await stranger.goto(`${new URL(link).origin}/`, { timeout: STEP_TIMEOUT_MS });
    await stranger.locator('[data-testid=link-problem][data-problem=no_session]').waitFor({ timeout: STEP_TIMEOUT_MS });

    // A fresh link from the running host (what `npm start -- --new-link` prints) opens it in that profile.
    const fresh = await app.newLink();
    const opened = await openApp(second.context, fresh);
    expect(opened.url()).not.toContain('#token');
    await navigate(opened, 'device');
    await opened.getByTestId('not-paired').waitFor({ timeout: STEP_TIMEOUT_MS });
    // The first profile is unaffected.
    await page.reload();
    await page.getByTestId('not-paired').waitFor({ timeout: STEP_TIMEOUT_MS });
    // The app and the link-problem pages, all under the strict renderer policy (the Electron one): nothing refused.
    expect(first.cspViolations()).toEqual([]);
    expect(second.cspViolations()).toEqual([]);
  });
});
