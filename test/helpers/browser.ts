// Test helpers for the end-to-end suite: the desktop app in browser mode as a real child process
// (`node dist/main/app/browser-main.js` on its own temp user-data, state and device dirs), and the Debian Chromium
// driven by playwright-core with the flags this machine needs, optionally with a Y4M file as its fake camera.
// Every wait is bounded; every process and browser is closed by its owner's close()/stop().
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { describe, it } from 'vitest';
import { readBrowserSession, requestNewLink } from '../../main/app/browser-session.js';
import { buildIfNeeded } from '../../scripts/start.mjs';
import { ensureBuilt, repoRoot } from './build.js';

/** The Debian package's Chromium (npm test installs it: scripts/ensure-system-deps.mjs); PALYRA_CHROMIUM, when set, is the only candidate. */
export function findChromium(): string | null {
  const override = process.env.PALYRA_CHROMIUM;
  const candidates = override !== undefined && override !== '' ? [override] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((c) => existsSync(c)) ?? null;
}

export const CHROMIUM_MISSING = 'Chromium not found (/usr/bin/chromium; npm test installs it, or set PALYRA_CHROMIUM)';

/**
 * `describe` for suites that need Chromium. Without it: skipped with a message locally, but a failing test when
 * CI=true, so CI can never go green by running nothing.
 */
export function describeWithChromium(name: string, body: (executable: string) => void): void {
  const executable = findChromium();
  if (executable !== null) {
    describe(name, () => {
      body(executable);
    });
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs Chromium', () => {
        throw new Error(`${CHROMIUM_MISSING}; CI must run the end-to-end tests`);
      });
    });
  } else {
    console.log(`${CHROMIUM_MISSING}: skipping '${name}'`);
    describe.skip(name, () => {
      body('');
    });
  }
}

/** Headless, no sandbox (root in a container), software rendering, and nothing that reaches the network. */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** The fake camera: this Y4M file played in a loop, and camera permission granted without a prompt. */
export function fakeCameraFlags(y4mFile: string): string[] {
  return ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${y4mFile}`];
}

/** A Content-Security-Policy violation a page of ours reported (or Chromium logged on its console). */
export interface CspViolation {
  /** `event`: a `securitypolicyviolation` event in the page; `console`: Chromium's "Refused to …" console line. */
  readonly via: 'event' | 'console';
  readonly page: string;
  /** The directive that refused it (`style-src-attr`, `script-src-elem`, …); for a console line, its text. */
  readonly directive: string;
  readonly blocked: string;
  readonly sample: string;
}

export interface ChromiumInstance {
  readonly context: BrowserContext;
  readonly userDataDir: string;
  /**
   * Every CSP violation in any page of this browser so far (across navigations and reloads): the e2e flows assert
   * there is none, so a renderer change that the strict policy would break in Electron fails them in browser mode.
   */
  cspViolations(): readonly CspViolation[];
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  executable: string;
  /** A Y4M file for the fake camera; without it, no camera flags are passed. */
  fakeVideo?: string;
  viewport?: { width: number; height: number };
  extraArgs?: string[];
}

const LAUNCH_TIMEOUT_MS = 30_000;

/** One Chromium with a fresh --user-data-dir (a persistent context on a new temp directory, removed on close). */
export async function launchChromium(options: LaunchOptions): Promise<ChromiumInstance> {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'palyra-chromium-'));
  const args = [...CHROMIUM_FLAGS, ...(options.fakeVideo === undefined ? [] : fakeCameraFlags(options.fakeVideo)), ...(options.extraArgs ?? [])];
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: options.executable,
      headless: true,
      args,
      viewport: options.viewport ?? { width: 1280, height: 900 },
      timeout: LAUNCH_TIMEOUT_MS,
      ...(options.fakeVideo === undefined ? {} : { permissions: ['camera'] }),
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  let violations: CspViolation[];
  try {
    violations = await collectCspViolations(context);
  } catch (error) {
    await context.close().catch(() => undefined);
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  let closed: Promise<void> | null = null;
  return {
    context,
    userDataDir,
    cspViolations: () => [...violations],
    close() {
      closed ??= (async () => {
        try {
          await context.close();
        } finally {
          await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
        }
      })();
      return closed;
    },
  };
}

/** The binding through which the pages' init script hands each violation event to the test process. */
const CSP_BINDING = '__palyraReportCspViolation';
const MAX_RECORDED_VIOLATIONS = 200;

/**
 * Records every CSP violation in the context's pages: a `securitypolicyviolation` listener installed before any page
 * script runs (it also keeps them in `window.__cspViolations`, for a look from devtools), reported to this process
 * through a binding so that navigations lose nothing, and Chromium's own console lines about the policy.
 */
async function collectCspViolations(context: BrowserContext): Promise<CspViolation[]> {
  const violations: CspViolation[] = [];
  const record = (violation: CspViolation): void => {
    if (violations.length < MAX_RECORDED_VIOLATIONS) violations.push(violation);
  };
  const text = (value: unknown): string => (typeof value === 'string' ? value : '');
  await context.exposeBinding(CSP_BINDING, (_source, report: unknown) => {
    const r = typeof report === 'object' && report !== null ? (report as Record<string, unknown>) : {};
    record({ via: 'event', page: text(r.documentURI), directive: text(r.effectiveDirective), blocked: text(r.blockedURI), sample: text(r.sample) });
  });
  await context.addInitScript((binding: string) => {
    const w = window as unknown as { __cspViolations?: unknown[] } & Record<string, unknown>;
    const seen: unknown[] = [];
    w.__cspViolations = seen;
    document.addEventListener(
      'securitypolicyviolation',
      (event) => {
        const report = {
          documentURI: event.documentURI,
          effectiveDirective: event.effectiveDirective,
          blockedURI: event.blockedURI,
          sample: event.sample,
        };
        seen.push(report);
        const send = w[binding];
        if (typeof send === 'function') void (send as (r: unknown) => Promise<void>)(report);
      },
      true,
    );
  }, CSP_BINDING);
  context.on('console', (message) => {
    const line = message.text();
    if (/Content Security Policy|Refused to (apply|load|execute|connect|create|frame|compile|evaluate)/i.test(line)) {
      record({ via: 'console', page: message.page()?.url() ?? '', directive: line, blocked: message.location().url, sample: '' });
    }
  });
  return violations;
}

const APP_READY_TIMEOUT_MS = 15_000;

/**
 * Opens the app at its browser-mode URL in a new tab, and waits until its navigation shows. The printed link works
 * once; after that the context's session cookie opens the app (the link again, or the origin).
 */
export async function openApp(context: BrowserContext, url: string): Promise<Page> {
  const blank = context.pages().find((p) => p.url() === 'about:blank');
  const page = blank ?? (await context.newPage());
  await page.goto(url, { timeout: APP_READY_TIMEOUT_MS });
  await page.getByTestId('nav-pair').waitFor({ state: 'visible', timeout: APP_READY_TIMEOUT_MS });
  return page;
}

/** Goes to one of the app's routes through its navigation, as a person would. */
export async function navigate(page: Page, route: 'pair' | 'device' | 'gateway' | 'devices' | 'revocation'): Promise<void> {
  await page.getByTestId(`nav-${route}`).click();
  await page.waitForFunction((r) => window.location.hash === `#/${r}`, route, { timeout: 15_000 });
}

let appBuilt: Promise<void> | null = null;

/**
 * The compiled main process and the built renderer. `npm test` builds main but not the renderer, so a missing
 * dist/renderer is always built here; a stale one is rebuilt unless PALYRA_SKIP_BUILD=1.
 */
export function ensureAppBuilt(): Promise<void> {
  appBuilt ??= (async () => {
    await ensureBuilt();
    await buildIfNeeded(repoRoot, process.env);
    if (!existsSync(path.join(repoRoot, 'dist/renderer/index.html'))) {
      await buildIfNeeded(repoRoot, { ...process.env, PALYRA_SKIP_BUILD: '0' });
    }
  })();
  return appBuilt;
}

export interface BrowserApp {
  readonly name: string;
  /** `http://127.0.0.1:PORT/#token=…` as printed on the ready line: a one-time link. */
  readonly url: string;
  readonly dir: string;
  /** Its PALYRA_USER_DATA_DIR, where it writes browser-session.json. */
  readonly userDataDir: string;
  /** A fresh one-time link from the running app, as `npm start -- --new-link` prints it. */
  newLink(): Promise<string>;
  readonly child: ChildProcessWithoutNullStreams;
  stderr(): string;
  /** SIGTERM, SIGKILL after a bound, then removes the app's directories. */
  stop(): Promise<void>;
}

const STOP_TIMEOUT_MS = 10_000;

/**
 * Starts `node dist/main/app/browser-main.js` (after `commandPrefix`, when given) with its own user-data, gateway state and device directories (secrets
 * in key files, no OS keychain) and waits for its `browser.ready` line.
 */
export async function startBrowserApp(name: string, options: { commandPrefix?: readonly string[] } = {}): Promise<BrowserApp> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `palyra-e2e-${name}-`));
  const dirs = { userData: path.join(dir, 'userData'), state: path.join(dir, 'gateway'), device: path.join(dir, 'device') };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true, mode: 0o700 })));
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith('PALYRA_'));
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(inherited),
    PALYRA_USER_DATA_DIR: dirs.userData,
    PALYRA_STATE_DIR: dirs.state,
    PALYRA_DEVICE_DIR: dirs.device,
    PALYRA_KEYCHAIN: 'file',
  };
  // `commandPrefix` runs it through another command (e.g. `nsenter --net=…` into a test's network namespace).
  const argv = [...(options.commandPrefix ?? []), process.execPath, path.join(repoRoot, 'dist/main/app/browser-main.js')];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return stopping;
  };

  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${name}: no browser.ready line within ${APP_READY_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, APP_READY_TIMEOUT_MS);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${name}: exited (${child.exitCode ?? child.signalCode}) before it was ready\nstderr: ${stderr}`));
      });
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        for (const line of stdout.split('\n')) {
          if (!line.startsWith('{')) continue;
          try {
            const parsed = JSON.parse(line) as { event?: unknown; url?: unknown };
            if (parsed.event === 'browser.ready' && typeof parsed.url === 'string') {
              clearTimeout(timer);
              resolve(parsed.url);
            }
          } catch {
            // a partial line: wait for the rest
          }
        }
      });
    });
    const newLink = async (): Promise<string> => requestNewLink(await readBrowserSession(dirs.userData));
    return { name, url, dir, userDataDir: dirs.userData, newLink, child, stderr: () => stderr, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** One axe-core violation, trimmed to what a failing assertion needs to show. */
export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly targets: readonly string[];
}

let axeSource: Promise<string> | null = null;

/**
 * Runs axe-core (the npm package's own bundle) on the page as it is and returns its violations. The bundle is
 * evaluated through the devtools protocol, which the page's script-src does not govern, so the policy stays strict.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= readFile(path.join(repoRoot, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  const source = await axeSource;
  const loaded = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe === 'object');
  if (!loaded) await page.evaluate(source);
  return page.evaluate(async () => {
    interface AxeResult {
      violations: { id: string; impact?: string | null; help: string; nodes: { target: unknown[] }[] }[];
    }
    const axe = (window as unknown as { axe: { run: (context: Document) => Promise<AxeResult> } }).axe;
    const result = await axe.run(document);
    return result.violations.map((v) => ({ id: v.id, impact: v.impact ?? null, help: v.help, targets: v.nodes.map((n) => n.target.map(String).join(' ')) }));
  });
}

/** How far the page scrolls sideways (0 when it reflows: WCAG 1.4.10). */
export function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate(() => {
    const root = document.documentElement;
    const widest = Math.max(root.scrollWidth, document.body.scrollWidth, ...[...document.querySelectorAll('main')].map((m) => m.scrollWidth - m.clientWidth + root.clientWidth));
    return widest - root.clientWidth;
  });
}
