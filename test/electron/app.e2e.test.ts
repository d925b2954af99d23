// The real desktop app in a real Electron, driven by Playwright: launch, then pair this machine's device with the
// app's own hosted gateway through window.palyra (the preload API the renderer uses), approve the request, and see
// the device paired; along the way, check the shell's hardening from inside the page.
//
// Runs only where the Electron binary is installed (node_modules/electron/path.txt naming a file under dist/); it is
// detected without require('electron'), whose index.js would start a download. Elsewhere the suite is skipped with a
// message. Not in vitest.config.ts's include: run it with `npx vitest run --root test/electron`.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { _electron } from 'playwright-core';
import type { ElectronApplication, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PalyraApi } from '../../main/ipc/contract.js';
import { findElectronBinary } from '../../scripts/start.mjs';
import { ensureBuilt, repoRoot } from '../helpers/build.js';

const electronBinary = findElectronBinary(repoRoot);
const SKIP_MESSAGE = 'Electron binary not present; skipping Electron end-to-end tests';
if (electronBinary === null) console.log(SKIP_MESSAGE);

const describeWithElectron = electronBinary === null ? describe.skip : describe;

/** Calls window.palyra in the page, exactly as the renderer would. */
function call<R>(page: Page, method: keyof PalyraApi, args: unknown): Promise<R> {
  return page.evaluate(
    async ([m, a]) => {
      const api = (window as unknown as { palyra: Record<string, (args: unknown) => Promise<unknown>> }).palyra;
      return (await api[m as string]!(a)) as R;
    },
    [method, args] as const,
  );
}

function appEnv(userData: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'ELECTRON_RUN_AS_NODE') env[k] = v;
  return { ...env, PALYRA_USER_DATA_DIR: userData, PALYRA_KEYCHAIN: 'file' };
}

async function buildAll(): Promise<void> {
  const run = promisify(execFile);
  await ensureBuilt();
  await run(process.execPath, [path.join(repoRoot, 'scripts', 'build-preload.mjs')], { cwd: repoRoot });
  if (!existsSync(path.join(repoRoot, 'dist', 'renderer', 'index.html'))) {
    await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build:renderer'], { cwd: repoRoot });
  }
}

describeWithElectron('the Electron app', { timeout: 180_000 }, () => {
  let userData: string;
  let electronApp: ElectronApplication;
  let page: Page;
  let mintedPin = '';

  const readLog = (): Promise<string> => readFile(path.join(userData, 'logs', 'palyra-desktop.log'), 'utf8').catch(() => '');

  beforeAll(async () => {
    await buildAll();
    userData = await mkdtemp(path.join(os.tmpdir(), 'palyra-electron-'));
    electronApp = await _electron.launch({
      executablePath: electronBinary!,
      args: [path.join(repoRoot, 'dist', 'main', 'app', 'electron-main.js')],
      cwd: repoRoot,
      env: appEnv(userData),
    });
    page = await electronApp.firstWindow();
    await page.waitForLoadState('domcontentloaded');
  }, 120_000);

  afterAll(async () => {
    await electronApp.close();
    await rm(userData, { recursive: true, force: true });
  });

  it('serves the renderer from app://palyra with the CSP, sandboxed and without Node', async () => {
    expect(page.url()).toMatch(/^app:\/\/palyra\//);
    const csp = await page.evaluate(async () => (await fetch('app://palyra/index.html')).headers.get('content-security-policy'));
    expect(csp).toContain("default-src 'none'");
    const globals = await page.evaluate(() => ({
      require: typeof (globalThis as { require?: unknown }).require,
      process: typeof (globalThis as { process?: unknown }).process,
      methods: Object.keys((window as unknown as { palyra: object }).palyra).sort(),
    }));
    expect(globals.require).toBe('undefined');
    expect(globals.process).toBe('undefined');
    expect(globals.methods).toContain('devicePairStart');
    expect(globals.methods).not.toContain('invoke');
  });

  it('refuses to navigate away from app://palyra', async () => {
    // A renderer-initiated navigation (a clicked link), which is what will-navigate guards.
    await page.evaluate(() => {
      const link = document.createElement('a');
      link.href = 'https://example.com/';
      document.body.append(link);
      link.click();
      link.remove();
    });
    await expect.poll(async () => (await readLog()).includes('"event":"app.navigation_blocked"'), { timeout: 30_000 }).toBe(true);
    expect(page.url()).toMatch(/^app:\/\/palyra\//);
  });

  it('pairs this device with the hosted gateway after the operator approves', async () => {
    const status = await call<{ running: boolean; listen: string }>(page, 'gatewayConfigure', { enabled: true, listen: '127.0.0.1:0' });
    expect(status.running).toBe(true);
    const code = await call<{ code: string }>(page, 'gatewayMintCode', { method: 'pin', kind: 'desktop' });
    mintedPin = code.code;
    await call(page, 'devicePairStart', { method: 'pin', pin: code.code, gateway: status.listen, kind: 'desktop' });

    let requestId = '';
    await expect
      .poll(
        async () => {
          const { requests } = await call<{ requests: { request_id: string }[] }>(page, 'gatewayListRequests', { state: 'pending_approval' });
          requestId = requests[0]?.request_id ?? '';
          return requests.length;
        },
        { timeout: 60_000 },
      )
      .toBe(1);

    const approved = await call<{ state: string }>(page, 'gatewayApprove', { request_id: requestId });
    expect(approved.state).toBe('approved');
    await expect.poll(async () => (await call<{ paired: boolean }>(page, 'deviceStatus', {})).paired, { timeout: 60_000 }).toBe(true);
    const { devices } = await call<{ devices: { status: string }[] }>(page, 'gatewayListDevices', {});
    expect(devices.map((d) => d.status)).toContain('paired');
  });

  it('logs to userData/logs, and never the PIN', async () => {
    expect(await electronApp.evaluate(({ app }) => app.getPath('userData'))).toBe(userData);
    const log = await readLog();
    expect(log).toContain('"event":"app.started"');
    expect(mintedPin).toMatch(/^[0-9]{6}$/);
    expect(log).not.toContain(mintedPin);
  });
});
