// Benchmark of the desktop UI (issue 13): time from page load to the first usable control, in headless Chromium
// against a real browser-mode app (node dist/main/app/browser-main.js on temp directories): the Pair view (the
// default view) with its PIN field enabled, and the navigation. Baseline in the same run and the same browser: a
// blank page with one button, served over HTTP on 127.0.0.1 by this process. Each round is a fresh browser context
// (empty cache, a new one-time link), so every load fetches, parses and runs the whole renderer bundle.
// Times are taken in the page: performance.now() (milliseconds since the navigation started) when a
// MutationObserver first sees the control present, laid out and enabled; the one-time-link exchange and the IPC
// round trips the view makes before it shows the control are included.
// Run `npm run bench` or `node test/bench/run.mjs ui`. Options: --rounds=N (default 15). Needs Chromium
// (/usr/bin/chromium or PALYRA_CHROMIUM) and `npm run build`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { fmtMs, fmtRatio, median, percentile, printTable, section } from './lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const option = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const ROUNDS = Number(option('rounds', '15'));
const READY_TIMEOUT_MS = 20_000;
const LOAD_TIMEOUT_MS = 20_000;

function chromiumPath() {
  const candidates = process.env.PALYRA_CHROMIUM ? [process.env.PALYRA_CHROMIUM] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((c) => existsSync(c)) ?? null;
}

/** The app in browser mode on its own temp directories, once it printed browser.ready. */
async function startApp(dir) {
  const dirs = { userData: path.join(dir, 'userData'), state: path.join(dir, 'gateway'), device: path.join(dir, 'device') };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true, mode: 0o700 })));
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PALYRA_')));
  Object.assign(env, { PALYRA_USER_DATA_DIR: dirs.userData, PALYRA_STATE_DIR: dirs.state, PALYRA_DEVICE_DIR: dirs.device, PALYRA_KEYCHAIN: 'file', PALYRA_DISCOVERY: 'off' });
  const child = spawn(process.execPath, [path.join(root, 'dist/main/app/browser-main.js')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`no browser.ready line within ${READY_TIMEOUT_MS} ms\n${stderr}`)), READY_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the app exited (${code}) before it was ready\n${stderr}`));
    });
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      if (stdout.split('\n').some((line) => line.includes('"browser.ready"'))) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { child, userData: dirs.userData };
}

/** A fresh one-time link from the running app (what `npm start -- --new-link` prints). */
async function newLink(userData) {
  const { readBrowserSession, requestNewLink } = await import(path.join(root, 'dist/main/app/browser-session.js'));
  return requestNewLink(await readBrowserSession(userData));
}

/** The blank baseline: one small HTML page with one button. */
async function startBlankServer() {
  const html = '<!doctype html><html><head><meta charset="utf-8"><title>blank</title></head><body><main><button data-testid="blank-button">OK</button></main></body></html>';
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/**
 * Before any page script: watches the DOM and records, once, performance.now() when `selector` is present, laid out
 * and not disabled, as window.__firstUsable.
 */
function watchFor(selector) {
  const check = () => {
    const el = document.querySelector(selector);
    if (el === null || el.disabled === true || el.getClientRects().length === 0) return false;
    window.__firstUsable = performance.now();
    return true;
  };
  const start = () => {
    if (check()) return;
    const observer = new MutationObserver(() => {
      if (check()) observer.disconnect();
    });
    observer.observe(document, { subtree: true, childList: true, attributes: true });
  };
  if (document.readyState === 'loading') document.addEventListener('readystatechange', start, { once: true });
  else start();
}

/** One load in a fresh context: ms from navigation start to the first usable `selector`. */
async function loadOnce(browser, url, selector) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    await context.addInitScript(watchFor, selector);
    const page = await context.newPage();
    await page.goto(url, { timeout: LOAD_TIMEOUT_MS });
    const handle = await page.waitForFunction(() => window.__firstUsable, undefined, { timeout: LOAD_TIMEOUT_MS, polling: 50 });
    return await handle.jsonValue();
  } finally {
    await context.close();
  }
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: median(sorted), p90: percentile(sorted, 90) };
}

async function main() {
  const executable = chromiumPath();
  if (executable === null) {
    console.log('## Desktop UI\n\nskipped: Chromium not found (/usr/bin/chromium, or set PALYRA_CHROMIUM).\n');
    return;
  }
  if (!existsSync(path.join(root, 'dist/main/app/browser-main.js')) || !existsSync(path.join(root, 'dist/renderer/index.html'))) {
    console.log('## Desktop UI\n\nskipped: run `npm run build` first (dist/main and dist/renderer).\n');
    return;
  }
  await section('Desktop UI (headless Chromium, browser mode)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-ui-'));
    const app = await startApp(dir);
    const blank = await startBlankServer();
    const browser = await chromium.launch({
      executablePath: executable,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const cases = [
        { name: 'blank page → its button (baseline)', url: async () => blank.url, selector: '[data-testid=blank-button]' },
        { name: 'app → Pair view: PIN field', url: async () => newLink(app.userData), selector: '[data-testid=pin-input]' },
        { name: 'app → navigation (Pair this device link)', url: async () => newLink(app.userData), selector: '[data-testid=nav-pair]' },
      ];
      // One warm-up load of each (Chromium's own first-start costs), not counted.
      for (const c of cases) await loadOnce(browser, await c.url(), c.selector);
      const samples = cases.map(() => []);
      // Interleaved, so load on the machine affects each case alike.
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, c] of cases.entries()) samples[i].push(await loadOnce(browser, await c.url(), c.selector));
      }
      const results = samples.map(stats);
      const base = results[0].p50;
      printTable({
        title: `Page load → first usable control (${ROUNDS} rounds, a fresh context each)`,
        columns: [
          { key: 'case', label: 'case' },
          { key: 'p50', label: 'p50' },
          { key: 'p90', label: 'p90' },
          { key: 'ratio', label: 'p50 vs blank page' },
        ],
        rows: cases.map((c, i) => ({ case: c.name, p50: fmtMs(results[i].p50), p90: fmtMs(results[i].p90), ratio: fmtRatio(results[i].p50, base) })),
        notes: [
          'from navigation start (performance.now() in the page) to the control present, laid out and enabled; includes the one-time-link exchange and the view’s first IPC calls.',
        ],
      });
    } finally {
      await browser.close();
      blank.server.close();
      app.child.kill('SIGTERM');
      await new Promise((resolve) => {
        if (app.child.exitCode !== null) resolve();
        else app.child.once('exit', resolve);
      });
      await rm(dir, { recursive: true, force: true });
    }
  });
}

await main();
