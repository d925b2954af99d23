// QR decoding cost per camera frame (issue 6), against a baseline measured in the same run:
//   (a) baseline: jsQR on the full camera frame (its defaults, which try both normal and inverted codes);
//   (b) the app's pipeline per attempted frame: crop to the guide square (renderer/src/qr/geometry.ts guideCrop,
//       0.7 of the shorter side, centered), downscale to ≤ 480 px, then jsQR with inversionAttempts 'attemptBoth'
//       exactly as renderer/src/qr/qr-worker.ts calls it;
//   (c) the same pipeline with inversionAttempts 'dontInvert' (NOT the app's setting: shows what the light-on-dark
//       attempt costs on frames without a code);
//   (z) zxing-wasm (zxing-cpp in WebAssembly, reader build, .wasm loaded from node_modules) on the same cropped
//       frame, when the package is installed.
// at 640×480 and 1280×720, on frames with a QR code (a pairing URI of the real shape, error correction M as the app
// draws it, inside the guide, with mild sensor noise) and without one (a smooth synthetic scene, and random noise,
// the worst case for finder-pattern search). Targets per attempted frame: median ≤ 15 ms, p95 ≤ 40 ms.
//
// Then the time from "QR visible" to "decoded", simulated with the app's own FrameScheduler (one decode in flight,
// frames offered at 30 fps, frames arriving while a decode runs are skipped) over a simulated clock, each decode
// taking a duration drawn from the per-attempt samples measured above (so a decode that started just before the
// code appeared must finish first). Target ≤ 300 ms.
//
// What is reused and what is re-implemented: guideCrop (geometry.ts) and FrameScheduler (frame-scheduler.ts) are
// the app's own code, transpiled at start with the project's TypeScript into node_modules/.cache/palyra-bench/;
// the frames come from test/helpers/y4m.ts the same way. The browser's drawImage + getImageData (frames.ts) is
// re-implemented as a JS crop with bilinear downscale, since Node has no canvas; the browser's own cost for that
// step (video frame to RGBA on the UI thread) and the worker's postMessage are not in these numbers.
//
// Run: `node --expose-gc test/bench/run.mjs qr` (or `npm run bench`). Options: --samples=N (timed decodes per case,
// default 40), --trials=N (simulated scans per latency case, default 2000), --only=cost (skips the latency simulation).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import jsQR from 'jsqr';
import ts from 'typescript';

import { collectGarbage, fmtMs, fmtNum, fmtRatio, median, percentile, printTable, section, settle } from './lib.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const option = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const SAMPLES = Number(option('samples', '40'));
const TRIALS = Number(option('trials', '2000'));
const only = option('only', 'cost,latency').split(',');

const TARGET_MEDIAN_MS = 15;
const TARGET_P95_MS = 40;
const TARGET_LATENCY_MS = 300;
const FPS = 30;
const now = () => performance.now();

// --- the app's code, transpiled -----------------------------------------------------------------------------------

/** Transpiles one TypeScript module (no runtime imports of other local modules) next to node_modules and imports it. */
async function importTs(relative) {
  const source = await readFile(path.join(repoRoot, relative), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false, isolatedModules: true },
    fileName: relative,
  });
  // Under node_modules so that package imports (qrcode) resolve from the repository.
  const outDir = path.join(repoRoot, 'node_modules', '.cache', 'palyra-bench');
  await mkdir(outDir, { recursive: true });
  const out = path.join(outDir, `${relative.replace(/[/\\]/g, '__').replace(/\.ts$/, '')}.mjs`);
  await writeFile(out, outputText);
  return import(pathToFileURL(out).href);
}

const { guideCrop } = await importTs('renderer/src/qr/geometry.ts');
const { FrameScheduler } = await importTs('renderer/src/qr/frame-scheduler.ts');
const { qrFrame, noiseFrame, seededRandom } = await importTs('test/helpers/y4m.ts');

// --- zxing-wasm, when installed -----------------------------------------------------------------------------------

async function loadZxing() {
  const require = createRequire(import.meta.url);
  let reader;
  let wasmPath;
  try {
    reader = await import('zxing-wasm/reader');
    wasmPath = require.resolve('zxing-wasm/reader/zxing_reader.wasm');
  } catch {
    return null;
  }
  const wasmBinary = await readFile(wasmPath);
  // The module's default is to fetch the .wasm from a CDN: give it the bytes from node_modules instead.
  const bytes = wasmBinary.buffer.slice(wasmBinary.byteOffset, wasmBinary.byteOffset + wasmBinary.byteLength);
  await reader.prepareZXingModule({ overrides: { wasmBinary: bytes }, fireImmediately: true });
  return { reader, version: reader.ZXING_WASM_VERSION, wasm: path.relative(repoRoot, wasmPath) };
}

const zxing = await loadZxing();

// --- frames -------------------------------------------------------------------------------------------------------

const SAMPLE_URI =
  'palyra://pair?v=1&gw=192.168.1.20%3A7444&m=qr&t=7M2K9Q4XZB1C8D5E6F0GHJKMNP&ca=wsRNnxhRecdnEAq2m5h-vONtYiB6z2SXlhiEgwcXySI&k=desktop&exp=1798000000&n=Office%20gateway';

/** A smooth "room" with a few objects and no code: gradients, soft blobs, some edges. */
function sceneFrame(width, height, random) {
  const data = new Uint8ClampedArray(width * height * 4);
  const blobs = Array.from({ length: 6 }, () => ({ x: random() * width, y: random() * height, r: (0.1 + random() * 0.25) * height, tone: 40 + random() * 180 }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = 90 + (70 * x) / width + (40 * y) / height;
      for (const b of blobs) {
        const d = Math.hypot(x - b.x, y - b.y);
        if (d < b.r) v = b.tone + 10 * Math.sin(x / 17);
      }
      const i = (y * width + x) * 4;
      const n = (random() - 0.5) * 8;
      data[i] = v + n;
      data[i + 1] = v * 0.95 + n;
      data[i + 2] = v * 0.9 + n;
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}

const RESOLUTIONS = [
  { name: '640×480', width: 640, height: 480 },
  { name: '1280×720', width: 1280, height: 720 },
];
const VARIANTS = 3;

function makeFrames(width, height) {
  const random = seededRandom(width * 7 + height);
  return {
    qr: Array.from({ length: VARIANTS }, () => qrFrame(SAMPLE_URI, { width, height, coverage: 0.5, noise: 6, random })),
    scene: Array.from({ length: VARIANTS }, () => sceneFrame(width, height, random)),
    noise: Array.from({ length: VARIANTS }, () => noiseFrame(width, height, random)),
  };
}

/** The guide crop with bilinear downscale: what FrameGrabber gets from drawImage + getImageData. */
function cropToGuide(frame) {
  const plan = guideCrop(frame.width, frame.height);
  const { sx, sy, side, outSide } = plan;
  const out = new Uint8ClampedArray(outSide * outSide * 4);
  const src = frame.data;
  const stride = frame.width * 4;
  if (outSide === side) {
    for (let y = 0; y < side; y++) out.set(src.subarray((sy + y) * stride + sx * 4, (sy + y) * stride + (sx + side) * 4), y * side * 4);
    return { width: outSide, height: outSide, data: out };
  }
  const scale = side / outSide;
  for (let y = 0; y < outSide; y++) {
    const fy = Math.min(side - 1, Math.max(0, (y + 0.5) * scale - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(side - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < outSide; x++) {
      const fx = Math.min(side - 1, Math.max(0, (x + 0.5) * scale - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(side - 1, x0 + 1);
      const wx = fx - x0;
      const a = (sy + y0) * stride + (sx + x0) * 4;
      const b = (sy + y0) * stride + (sx + x1) * 4;
      const c = (sy + y1) * stride + (sx + x0) * 4;
      const d = (sy + y1) * stride + (sx + x1) * 4;
      const o = (y * outSide + x) * 4;
      for (let ch = 0; ch < 4; ch++) {
        const top = src[a + ch] * (1 - wx) + src[b + ch] * wx;
        const bottom = src[c + ch] * (1 - wx) + src[d + ch] * wx;
        out[o + ch] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return { width: outSide, height: outSide, data: out };
}

// --- pipelines ----------------------------------------------------------------------------------------------------

const jsqrText = (code) => (code === null || code.data === '' ? null : code.data);

const PIPELINES = [
  { key: 'a', name: '(a) jsQR, full frame', decode: (f) => jsqrText(jsQR(f.data, f.width, f.height)) },
  {
    key: 'b',
    name: '(b) app: guide crop ≤480 + jsQR attemptBoth',
    decode: (f) => {
      const c = cropToGuide(f);
      return jsqrText(jsQR(c.data, c.width, c.height, { inversionAttempts: 'attemptBoth' }));
    },
  },
  {
    key: 'c',
    name: '(c) guide crop ≤480 + jsQR dontInvert',
    decode: (f) => {
      const c = cropToGuide(f);
      return jsqrText(jsQR(c.data, c.width, c.height, { inversionAttempts: 'dontInvert' }));
    },
  },
];

if (zxing !== null) {
  // zxing-cpp's defaults (tryHarder, tryInvert as the worker's attemptBoth, tryRotate, tryDownscale), QR codes only.
  const options = { formats: ['QRCode'], maxNumberOfSymbols: 1 };
  PIPELINES.push({
    key: 'z',
    name: `(z) guide crop ≤480 + zxing-wasm ${zxing.version}`,
    async decode(f) {
      const c = cropToGuide(f);
      const image = { data: c.data, width: c.width, height: c.height, colorSpace: 'srgb' };
      const [result] = await zxing.reader.readBarcodes(image, options);
      return result === undefined || !result.isValid ? null : result.text;
    },
  });
}

// --- measurement --------------------------------------------------------------------------------------------------

/** Per-attempt samples `{ ms, text }` for every pipeline on every content, interleaved so machine load hits all alike. */
async function measureCosts(frames) {
  const samples = new Map();
  const key = (p, content) => `${p.key}:${content}`;
  for (const p of PIPELINES) for (const content of Object.keys(frames)) samples.set(key(p, content), []);
  // Warm-up: JIT (and the wasm instance) before timing.
  for (const p of PIPELINES) for (const content of Object.keys(frames)) for (let i = 0; i < 3; i++) await p.decode(frames[content][i % VARIANTS]);
  const ROUND = 5;
  for (let done = 0; done < SAMPLES; done += ROUND) {
    collectGarbage();
    for (const p of PIPELINES) {
      for (const content of Object.keys(frames)) {
        const list = samples.get(key(p, content));
        for (let i = 0; i < ROUND && done + i < SAMPLES; i++) {
          const frame = frames[content][(done + i) % VARIANTS];
          const start = now();
          const text = await p.decode(frame);
          list.push({ ms: now() - start, text });
        }
      }
    }
  }
  return (p, content) => samples.get(key(p, content));
}

function stats(list) {
  const sorted = list.map((s) => s.ms).sort((a, b) => a - b);
  return { median: median(sorted), p95: percentile(sorted, 95), max: sorted[sorted.length - 1] };
}

/**
 * One simulated scan with the app's FrameScheduler: frames every 1000/FPS ms from a random phase; before `qrAt` the
 * camera sees `before` content, from the first frame at or after it the code. Each decode lasts a duration drawn from
 * the measured samples of what that frame shows (and finds the code only if that sample did). Returns the time from
 * qrAt to the decode that found the code, or null if none did within 5 s.
 */
async function simulateScan(costs, before, random) {
  const interval = 1000 / FPS;
  const phase = random() * interval;
  const qrAt = 1000 + random() * 1000;
  let pending = null;
  let foundAt = null;
  let clock = 0;
  const decoder = {
    decode(frame) {
      const pool = frame.qr ? costs.qr : costs[before];
      const sample = pool[Math.floor(random() * pool.length)];
      return new Promise((resolve) => {
        pending = { doneAt: clock + sample.ms, resolve: () => resolve(sample.text) };
      });
    },
  };
  const scheduler = new FrameScheduler(decoder, () => {
    foundAt = clock;
  });
  for (let k = 0; ; k++) {
    const t = phase + k * interval;
    if (t > qrAt + 5000) return null;
    if (pending !== null && pending.doneAt <= t) {
      const done = pending;
      pending = null;
      clock = done.doneAt;
      done.resolve();
      // Let the decode's promise callbacks run (the scheduler's then-handlers) before the next frame.
      await new Promise((r) => setImmediate(r));
      if (foundAt !== null) return foundAt - qrAt;
    }
    clock = t;
    scheduler.offer(() => ({ qr: t >= qrAt }));
  }
}

async function latency(costsOf, resName) {
  const rows = [];
  for (const before of ['scene', 'noise']) {
    let baselineMedian = Number.NaN;
    for (const p of PIPELINES) {
      const costs = { qr: costsOf(p, 'qr'), scene: costsOf(p, 'scene'), noise: costsOf(p, 'noise') };
      const random = seededRandom(42);
      const results = [];
      let missed = 0;
      for (let i = 0; i < TRIALS; i++) {
        const ms = await simulateScan(costs, before, random);
        if (ms === null) missed += 1;
        else results.push(ms);
      }
      results.sort((a, b) => a - b);
      const med = median(results);
      if (p.key === 'a') baselineMedian = med;
      const within = results.filter((ms) => ms <= TARGET_LATENCY_MS).length / TRIALS;
      rows.push({
        res: resName,
        before: before === 'scene' ? 'scene' : 'noise (worst)',
        pipeline: p.name,
        median: fmtMs(med),
        p95: fmtMs(percentile(results, 95)),
        within: `${fmtNum(100 * within, 1)}%`,
        missed: String(missed),
        ratio: p.key === 'a' ? '1.00×' : fmtRatio(med, baselineMedian),
        verdict: percentile(results, 95) <= TARGET_LATENCY_MS ? 'p95 meets' : med <= TARGET_LATENCY_MS ? 'median meets' : 'misses',
      });
    }
  }
  return rows;
}

// --- run ----------------------------------------------------------------------------------------------------------

const costRows = [];
const decodeFailures = [];
const costsByResolution = new Map();

function costRowsFor(res, costsOf) {
  for (const content of ['qr', 'scene', 'noise']) {
    const base = stats(costsOf(PIPELINES[0], content));
    for (const p of PIPELINES) {
      const list = costsOf(p, content);
      const s = stats(list);
      const found = list.filter((x) => x.text === SAMPLE_URI).length;
      const wrong = list.filter((x) => x.text !== null && x.text !== SAMPLE_URI).length;
      if (content === 'qr' && found < list.length) decodeFailures.push(`${res.name} ${p.name}: found the code in ${found}/${list.length} frames`);
      if (content !== 'qr' && wrong > 0) decodeFailures.push(`${res.name} ${p.name}: ${wrong} false positives on ${content}`);
      const meets = s.median <= TARGET_MEDIAN_MS && s.p95 <= TARGET_P95_MS;
      costRows.push({
        res: res.name,
        content: content === 'qr' ? 'QR code' : content === 'scene' ? 'no QR: scene' : 'no QR: noise',
        pipeline: p.name,
        median: fmtMs(s.median),
        p95: fmtMs(s.p95),
        max: fmtMs(s.max),
        found: content === 'qr' ? `${found}/${list.length}` : wrong === 0 ? '—' : `${wrong} false`,
        vsMedian: fmtRatio(s.median, base.median),
        vsP95: fmtRatio(s.p95, base.p95),
        target: meets ? 'meets' : 'misses',
      });
    }
  }
}

await section('QR decode cost per attempted frame', async () => {
  for (const res of RESOLUTIONS) {
    const frames = makeFrames(res.width, res.height);
    await settle();
    const costsOf = await measureCosts(frames);
    costsByResolution.set(res.name, costsOf);
    costRowsFor(res, costsOf);
  }
  printTable({
    title: `Per-frame decode time (${SAMPLES} frames per case; targets: median ≤ ${TARGET_MEDIAN_MS} ms, p95 ≤ ${TARGET_P95_MS} ms)`,
    columns: [
      { key: 'res', label: 'camera' },
      { key: 'content', label: 'frame', align: 'left' },
      { key: 'pipeline', label: 'decoder', align: 'left' },
      { key: 'median', label: 'median' },
      { key: 'p95', label: 'p95' },
      { key: 'max', label: 'max' },
      { key: 'found', label: 'found' },
      { key: 'vsMedian', label: 'median vs (a)' },
      { key: 'vsP95', label: 'p95 vs (a)' },
      { key: 'target', label: 'target' },
    ],
    rows: costRows,
    notes: [
      "(b) is the cost of one attempt in the app (crop + downscale re-implemented in JS, as drawImage does it; jsQR with the worker's options), without the browser's video-to-RGBA conversion and the worker hop.",
      'The guide crop is 336×336 at 640×480 (no downscale) and 504→480 at 1280×720: 2.7× and 4× fewer pixels than the full frame.',
      zxing === null
        ? 'zxing-wasm is not installed: no (z) rows.'
        : `(z): zxing-wasm ${zxing.version} (zxing-cpp), reader build, .wasm read from ${zxing.wasm} (no CDN); its default options, QR codes only; includes its RGBA-to-grey copy into wasm memory.`,
      ...decodeFailures.map((f) => `decode check: ${f}`),
    ],
  });
});

if (only.includes('latency')) {
  await section('Time from QR visible to decoded (simulated scheduler, 30 fps, one decode in flight)', async () => {
    const rows = [];
    for (const res of RESOLUTIONS) rows.push(...(await latency(costsByResolution.get(res.name), res.name)));
    printTable({
      title: `QR visible → decoded (${TRIALS} simulated scans per case; target ≤ ${TARGET_LATENCY_MS} ms)`,
      columns: [
        { key: 'res', label: 'camera' },
        { key: 'before', label: 'before the code', align: 'left' },
        { key: 'pipeline', label: 'decoder', align: 'left' },
        { key: 'median', label: 'median' },
        { key: 'p95', label: 'p95' },
        { key: 'within', label: `≤ ${TARGET_LATENCY_MS} ms` },
        { key: 'missed', label: 'no decode in 5 s' },
        { key: 'ratio', label: 'median vs (a)' },
        { key: 'verdict', label: 'target' },
      ],
      rows,
      notes: [
        "The app's FrameScheduler (transpiled from renderer/src/qr/frame-scheduler.ts) on a simulated clock: a frame every 33.3 ms from a random phase, the code appearing at a random time; each decode lasts a duration drawn from the samples above for what its frame showed.",
        '"before the code": what the camera saw while the decode in flight at that moment was started (a scene, or noise as the worst case).',
      ],
    });
  });
}
