#!/usr/bin/env node
// Screenshots of each main view at 800×600, 1280×800 and 200 % zoom (1280×800 at device scale 2, i.e. 640×400
// CSS px), for docs/screenshots/ and the README. A real browser-mode app (node dist/main/app/browser-main.js on temp
// directories) hosting a gateway on loopback, driven by headless Chromium (playwright-core, /usr/bin/chromium or
// PALYRA_CHROMIUM). Run `npm run build` first; then `node scripts/screenshots.mjs [OUT_DIR]`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'screenshots'));
const READY_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 20_000;
const VIEWS = ['pair', 'device', 'gateway', 'devices', 'revocation'];
const SIZES = [
  { name: '800x600', viewport: { width: 800, height: 600 }, scale: 1 },
  { name: '1280x800', viewport: { width: 1280, height: 800 }, scale: 1 },
  { name: 'zoom200', viewport: { width: 640, height: 400 }, scale: 2 },
];

function chromiumPath() {
  const candidates = process.env.PALYRA_CHROMIUM ? [process.env.PALYRA_CHROMIUM] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new Error('Chromium not found (/usr/bin/chromium, or set PALYRA_CHROMIUM)');
  return found;
}

/** The app in browser mode on its own temp directories; resolves with its one-time URL once it printed browser.ready. */
async function startApp(dir) {
  const dirs = { userData: path.join(dir, 'userData'), state: path.join(dir, 'gateway'), device: path.join(dir, 'device') };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true, mode: 0o700 })));
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PALYRA_') || key === 'PALYRA_CHROMIUM'));
  Object.assign(env, { PALYRA_USER_DATA_DIR: dirs.userData, PALYRA_STATE_DIR: dirs.state, PALYRA_DEVICE_DIR: dirs.device, PALYRA_KEYCHAIN: 'file' });
  const child = spawn(process.execPath, [path.join(root, 'dist/main/app/browser-main.js')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const url = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`no browser.ready line within ${READY_TIMEOUT_MS} ms\n${stderr}`)), READY_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the app exited (${code}) before it was ready\n${stderr}`));
    });
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const parsed = JSON.parse(line);
          if (parsed.event === 'browser.ready' && typeof parsed.url === 'string') {
            clearTimeout(timer);
            resolve(parsed.url);
          }
        } catch {
          // a partial line
        }
      }
    });
  });
  return { child, url };
}

async function main() {
  if (!existsSync(path.join(root, 'dist/main/app/browser-main.js')) || !existsSync(path.join(root, 'dist/renderer/index.html'))) {
    throw new Error('run `npm run build` first');
  }
  await mkdir(outDir, { recursive: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-screenshots-'));
  const { child, url } = await startApp(dir);
  const browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    // One context per size (the scale factor is fixed per context); the session cookie from the first one is reused.
    let storageState;
    for (const [index, size] of SIZES.entries()) {
      const context = await browser.newContext({ viewport: size.viewport, deviceScaleFactor: size.scale, colorScheme: 'light', ...(storageState ? { storageState } : {}) });
      const page = await context.newPage();
      await page.goto(index === 0 ? url : new URL(url).origin, { timeout: STEP_TIMEOUT_MS });
      await page.getByTestId('nav-pair').waitFor({ timeout: STEP_TIMEOUT_MS });
      if (index === 0) {
        // Host a gateway on loopback so the Gateway view has a running gateway and a QR code to show.
        await page.getByTestId('nav-gateway').click();
        await page.getByTestId('gateway-name-input').fill('Office gateway');
        await page.getByTestId('gateway-listen-input').fill('127.0.0.1:0');
        await page.getByRole('button', { name: 'Save', exact: true }).click();
        await page.getByTestId('gateway-switch').click();
        await page.locator('[data-testid=gateway-running][data-running=true]').waitFor({ timeout: STEP_TIMEOUT_MS });
        storageState = await context.storageState();
      }
      for (const view of VIEWS) {
        await page.getByTestId(`nav-${view}`).click();
        await page.waitForFunction((v) => window.location.hash === `#/${v}`, view, { timeout: STEP_TIMEOUT_MS });
        await page.locator('main h1').first().waitFor({ timeout: STEP_TIMEOUT_MS });
        if (view === 'gateway' && (await page.getByTestId('minted-code').count()) === 0) {
          await page.getByTestId('mint-pin').click();
          await page.getByTestId('minted-pin').waitFor({ timeout: STEP_TIMEOUT_MS });
        }
        await page.evaluate(() => {
          for (const m of document.querySelectorAll('main')) m.scrollTop = 0;
          document.activeElement?.blur?.();
        });
        const file = path.join(outDir, `${view}-${size.name}.png`);
        await page.screenshot({ path: file });
        console.log(path.relative(root, file));
      }
      await context.close();
    }
  } finally {
    await browser.close();
    child.kill('SIGTERM');
    await new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', resolve);
    });
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
