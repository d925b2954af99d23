// Issue 6, the scanner on a camera that shows no code: a real app instance in browser mode, its Pair view in headless
// Chromium whose fake camera plays random noise. The scanner must keep working frame after frame (the QR worker is
// wrapped before load to count the frames sent to it and the answers it gave; the video's presented frames are
// counted too) with one decode in flight at most, while the UI thread stays live: animation frames keep coming
// during the decodes and the Stop button still takes effect. The app itself is not modified for this: the counts are
// taken at the Worker boundary it already has. How long the UI thread's tasks are meanwhile (the Long Tasks API's
// 50 ms line) is a figure, reported by test/bench/scanner.bench.mjs, not asserted here.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { repoRoot } from '../helpers/build.js';
import { describeWithChromium, ensureAppBuilt, launchChromium, openApp, startBrowserApp } from '../helpers/browser.js';
import type { BrowserApp, ChromiumInstance } from '../helpers/browser.js';
import { tempDir } from '../helpers/identity.js';
import { writeNoiseVideo } from '../helpers/y4m.js';

const OUTPUT_DIR = path.join(repoRoot, 'test-output', 'e2e');
/** Decodes to wait for: the scanner kept going frame after frame (a count of events, not a rate). */
const MIN_DECODES = 20;
/** Animation frames the page must run while those decodes happen: the UI thread was not blocked meanwhile. */
const MIN_ANIMATION_FRAMES = 20;
/** Liveness deadline for the decodes (about 2 s on an idle machine). */
const SCAN_DEADLINE_MS = 90_000;

interface ProbeState {
  qr: { workers: number; posted: number; answered: number; answeredNull: number; answeredText: number; errors: number };
}

/** Runs in the page before any of its scripts (context.addInitScript): the worker probe. */
function installProbes(): void {
  const state: ProbeState = { qr: { workers: 0, posted: 0, answered: 0, answeredNull: 0, answeredText: 0, errors: 0 } };
  (window as unknown as { __probe: ProbeState }).__probe = state;
  // No class fields: this function's source is what runs in the page, whatever the test transform does to fields.
  const NativeWorker = window.Worker;
  const probed = new WeakSet<Worker>();
  class ProbedWorker extends NativeWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      if (options?.name !== 'palyra-qr') return;
      probed.add(this);
      state.qr.workers += 1;
      this.addEventListener('message', (event: MessageEvent<{ text?: string | null; error?: string }>) => {
        state.qr.answered += 1;
        if (event.data.error !== undefined) state.qr.errors += 1;
        else if (event.data.text === null) state.qr.answeredNull += 1;
        else state.qr.answeredText += 1;
      });
    }
    override postMessage(message: unknown, transfer: Transferable[]): void;
    override postMessage(message: unknown, options?: StructuredSerializeOptions): void;
    override postMessage(message: unknown, second?: Transferable[] | StructuredSerializeOptions): void {
      if (probed.has(this)) state.qr.posted += 1;
      if (Array.isArray(second)) super.postMessage(message, second);
      else super.postMessage(message, second);
    }
  }
  window.Worker = ProbedWorker;
}

describeWithChromium('the QR scanner on a noise video (browser mode)', (executable) => {
  let app: BrowserApp | null = null;
  let browser: ChromiumInstance | null = null;
  let videoDir: { dir: string; cleanup: () => Promise<void> } | null = null;

  beforeAll(async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    await ensureAppBuilt();
    videoDir = await tempDir('palyra-e2e-noise-');
  });

  afterAll(async () => {
    for (const close of [() => browser?.close(), () => app?.stop(), () => videoDir?.cleanup()]) {
      try {
        await close();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  });

  it('keeps decoding noise frame after frame, one decode in flight, while the UI thread stays live', async () => {
    const video = path.join(videoDir!.dir, 'noise.y4m');
    await writeNoiseVideo(video, { width: 640, height: 480, seconds: 2 });
    app = await startBrowserApp('noise');
    browser = await launchChromium({ executable, fakeVideo: video });
    await browser.context.addInitScript(installProbes);
    const page = await openApp(browser.context, app.url);

    await page.getByTestId('camera-start').click();
    await page.locator('[data-testid=scan-status][data-state=running]').waitFor({ timeout: 20_000 });
    // From here: frames the video presented (requestVideoFrameCallback, as the scanner itself uses), animation frames
    // the page ran, and the most decodes ever in flight at once (sampled on every animation frame).
    const before = await page.evaluate(() => {
      const v = document.querySelector<HTMLVideoElement>('[data-testid=camera-preview]')!;
      const w = window as unknown as { __presented: number; __frames: number; __inFlight: number; __probe: ProbeState };
      w.__presented = 0;
      w.__frames = 0;
      w.__inFlight = 0;
      const presented = (): void => {
        w.__presented += 1;
        v.requestVideoFrameCallback(presented);
      };
      v.requestVideoFrameCallback(presented);
      const frame = (): void => {
        w.__frames += 1;
        w.__inFlight = Math.max(w.__inFlight, w.__probe.qr.posted - w.__probe.qr.answered);
        requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
      return { ...w.__probe.qr };
    });

    // Wait on the events themselves: enough decodes answered, and animation frames run in the meantime.
    await page.waitForFunction(
      ({ answered, decodes, frames }) => {
        const w = window as unknown as { __frames: number; __probe: ProbeState };
        return w.__probe.qr.answered - answered >= decodes && w.__frames >= frames;
      },
      { answered: before.answered, decodes: MIN_DECODES, frames: MIN_ANIMATION_FRAMES },
      { timeout: SCAN_DEADLINE_MS, polling: 100 },
    );
    const result = await page.evaluate(() => {
      const w = window as unknown as { __presented: number; __frames: number; __inFlight: number; __probe: ProbeState };
      const v = document.querySelector<HTMLVideoElement>('[data-testid=camera-preview]')!;
      return {
        qr: { ...w.__probe.qr },
        presented: w.__presented,
        frames: w.__frames,
        inFlight: w.__inFlight,
        videoSize: [v.videoWidth, v.videoHeight],
        state: document.querySelector('[data-testid=scan-status]')?.getAttribute('data-state') ?? null,
      };
    });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'noise-scanning.png') });
    const decodes = result.qr.answered - before.answered;
    console.log(
      `noise scan: video ${result.videoSize.join('×')}, ${decodes} frames decoded by the QR worker, ${result.presented} frames presented, ` +
        `${result.frames} animation frames, ${result.qr.answeredText} found, ${result.qr.errors} errors, ${result.qr.workers} worker(s)`,
    );

    expect(result.state).toBe('running');
    expect(result.videoSize).toEqual([640, 480]);
    expect(result.presented).toBeGreaterThan(0);
    expect(result.qr.workers).toBe(1);
    expect(result.qr.errors).toBe(0);
    expect(result.qr.answeredText).toBe(0);
    expect(decodes).toBeGreaterThanOrEqual(MIN_DECODES);
    // One decode in flight at most, at every animation frame and now.
    expect(result.inFlight).toBeLessThanOrEqual(1);
    expect(result.qr.posted - result.qr.answered).toBeLessThanOrEqual(1);

    // The UI still answers input while the scanner runs: Stop takes effect and the camera is off.
    await page.getByTestId('camera-stop').click();
    await page.locator('[data-testid=scan-status][data-state=off]').waitFor({ timeout: 20_000 });
    // All of it under the strict renderer policy (the Electron one): nothing refused.
    expect(browser.cspViolations()).toEqual([]);
  });
});
