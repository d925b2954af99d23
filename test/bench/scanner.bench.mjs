// The QR scanner's cost on the UI thread (issue 6), as figures: the app in browser mode (dist/main/app/browser-main.js
// as a child, dist/renderer built), its Pair view in headless Chromium whose fake camera plays random noise, and a
// PerformanceObserver for 'longtask' installed before the page loads. Each run watches the page for a fixed window,
// alternately idle (camera off: the baseline, same page, same browser) and scanning; the table reports long tasks
// (every UI-thread task over 50 ms, the API's threshold), the longest, the blocking time beyond 50 ms, animation
// frames and QR worker answers per second. The e2e test (noise-long-tasks) checks that scanning works and the UI
// stays live; the 50 ms line is reported here, never asserted.
// Run `npm run build` (main and renderer), then `node --expose-gc test/bench/run.mjs scanner`.
// Options: --window-ms=10000 --rounds=2
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import ts from 'typescript';

import { fmtMs, fmtNum, fmtRatio, printMachineInfo, printTable, section } from './lib.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const option = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const WINDOW_MS = Number(option('window-ms', '10000'));
const ROUNDS = Number(option('rounds', '2'));
const LONG_TASK_MS = 50;
const CHROMIUM = process.env.PALYRA_CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((c) => existsSync(c));
const CHROMIUM_FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

if (process.env.PALYRA_BENCH_CHILD !== '1') printMachineInfo();
console.log('# scanner.bench.mjs — the QR scanner on a noise video: long tasks on the UI thread\n');

if (CHROMIUM === undefined || !existsSync(path.join(repoRoot, 'dist/renderer/index.html'))) {
  console.log(`skipped: ${CHROMIUM === undefined ? 'Chromium not found (/usr/bin/chromium or PALYRA_CHROMIUM)' : 'dist/renderer is not built (npm run build)'}\n`);
  process.exit(0);
}

/** test/helpers/y4m.ts, transpiled with the project's TypeScript (as qr.bench.mjs does) for the noise video. */
async function importTs(relative) {
  const source = await readFile(path.join(repoRoot, relative), 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }, fileName: relative });
  const outDir = path.join(repoRoot, 'node_modules', '.cache', 'palyra-bench');
  await mkdir(outDir, { recursive: true });
  const out = path.join(outDir, `${relative.replace(/[/\\]/g, '__').replace(/\.ts$/, '')}.mjs`);
  await writeFile(out, outputText);
  return import(pathToFileURL(out).href);
}

/** The app in browser mode on its own temp directories; resolves once its ready line gave the URL. */
async function startApp(dir) {
  const dirs = { userData: path.join(dir, 'userData'), state: path.join(dir, 'gateway'), device: path.join(dir, 'device') };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true, mode: 0o700 })));
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PALYRA_')));
  Object.assign(env, { PALYRA_USER_DATA_DIR: dirs.userData, PALYRA_STATE_DIR: dirs.state, PALYRA_DEVICE_DIR: dirs.device, PALYRA_KEYCHAIN: 'file' });
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist/main/app/browser-main.js')], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      for (const line of stdout.split('\n')) if (line.startsWith('{"event":"browser.ready"')) resolve(JSON.parse(line).url);
    });
    void exited.then((code) => reject(new Error(`browser-main exited (${code}) before it was ready`)));
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Runs in the page before its scripts: the long-task observer, a worker answer counter, an animation frame counter. */
function installProbes() {
  const probe = { longTasks: [], answers: 0, frames: 0, supported: true };
  window.__probe = probe;
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) probe.longTasks.push({ startTime: entry.startTime, duration: entry.duration });
    }).observe({ type: 'longtask', buffered: true });
  } catch {
    probe.supported = false;
  }
  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(url, options) {
      super(url, options);
      if (options?.name === 'palyra-qr') this.addEventListener('message', () => (probe.answers += 1));
    }
  };
  const frame = () => {
    probe.frames += 1;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

/** Watches the page for WINDOW_MS and returns what happened in that window. */
async function observe(page) {
  const start = await page.evaluate(() => ({ at: performance.now(), answers: window.__probe.answers, frames: window.__probe.frames }));
  await page.waitForTimeout(WINDOW_MS);
  return page.evaluate((s) => {
    const p = window.__probe;
    const seconds = (performance.now() - s.at) / 1000;
    const tasks = p.longTasks.filter((t) => t.startTime + t.duration >= s.at).map((t) => t.duration);
    return { seconds, tasks, answers: p.answers - s.answers, frames: p.frames - s.frames, supported: p.supported };
  }, start);
}

async function scannerSection() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-scanner-'));
  const { writeNoiseVideo } = await importTs('test/helpers/y4m.ts');
  const video = path.join(dir, 'noise.y4m');
  await writeNoiseVideo(video, { width: 640, height: 480, seconds: 2 });
  const app = await startApp(path.join(dir, 'app'));
  const profile = path.join(dir, 'chromium');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${video}`],
    viewport: { width: 1280, height: 900 },
    permissions: ['camera'],
    timeout: 30_000,
  });
  const runs = { idle: [], scanning: [] };
  try {
    await context.addInitScript(installProbes);
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(app.url, { timeout: 30_000 });
    await page.getByTestId('nav-pair').waitFor({ timeout: 30_000 });
    // Warm-up: one start/stop of the camera (worker and decoder loaded), untimed.
    await page.getByTestId('camera-start').click();
    await page.locator('[data-testid=scan-status][data-state=running]').waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => window.__probe.answers >= 5, undefined, { timeout: 60_000 });
    await page.getByTestId('camera-stop').click();
    await page.locator('[data-testid=scan-status][data-state=off]').waitFor({ timeout: 30_000 });
    for (let r = 0; r < ROUNDS; r++) {
      runs.idle.push(await observe(page));
      await page.getByTestId('camera-start').click();
      await page.locator('[data-testid=scan-status][data-state=running]').waitFor({ timeout: 30_000 });
      runs.scanning.push(await observe(page));
      await page.getByTestId('camera-stop').click();
      await page.locator('[data-testid=scan-status][data-state=off]').waitFor({ timeout: 30_000 });
    }
  } finally {
    await context.close();
    await app.stop();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }

  const total = (list) => {
    const tasks = list.flatMap((r) => r.tasks);
    const seconds = list.reduce((a, r) => a + r.seconds, 0);
    return {
      seconds,
      count: tasks.length,
      longest: tasks.length === 0 ? 0 : Math.max(...tasks),
      blocking: tasks.reduce((a, d) => a + Math.max(0, d - LONG_TASK_MS), 0),
      answersPerSec: list.reduce((a, r) => a + r.answers, 0) / seconds,
      framesPerSec: list.reduce((a, r) => a + r.frames, 0) / seconds,
      supported: list.every((r) => r.supported),
    };
  };
  const idle = total(runs.idle);
  const scanning = total(runs.scanning);
  const row = (name, t, ratio) => ({
    name,
    seconds: fmtNum(t.seconds, 1),
    count: String(t.count),
    longest: t.count === 0 ? '—' : fmtMs(t.longest),
    blocking: fmtMs(t.blocking),
    fps: fmtNum(t.framesPerSec, 1),
    fpsRatio: ratio,
    answers: fmtNum(t.answersPerSec, 1),
  });
  printTable({
    title: `UI thread while the Pair view is open: camera off vs scanning noise (${ROUNDS} × ${fmtNum(WINDOW_MS / 1000, 0)} s each, interleaved)`,
    columns: [
      { key: 'name', label: 'page state' },
      { key: 'seconds', label: 'watched (s)' },
      { key: 'count', label: `tasks > ${LONG_TASK_MS} ms` },
      { key: 'longest', label: 'longest task' },
      { key: 'blocking', label: `blocking beyond ${LONG_TASK_MS} ms` },
      { key: 'fps', label: 'animation frames/s' },
      { key: 'fpsRatio', label: 'frames vs idle' },
      { key: 'answers', label: 'QR decodes/s' },
    ],
    rows: [row('baseline: camera off', idle, '1.00×'), row('scanning a 640×480 noise video', scanning, fmtRatio(scanning.framesPerSec, idle.framesPerSec))],
    notes: [
      `target: no task over ${LONG_TASK_MS} ms on the UI thread while scanning (decoding runs in the Web Worker)${scanning.supported ? '' : ' — the longtask observer is not supported by this Chromium'}`,
      'headless Chromium with software rendering; animation frames are requestAnimationFrame callbacks counted in the page',
    ],
  });
}

await section('QR scanner: long tasks on the UI thread', scannerSection);
