// Timing helpers for the benchmarks under test/bench: warm-up, repeated interleaved runs, medians and percentiles,
// and tables (GitHub markdown, columns padded so they also read well in a terminal). Numbers are reported, never
// asserted: a benchmark's job is to print ratios against a baseline measured in the same run.
import os from 'node:os';

const now = () => performance.now();

/** Collects garbage between measurements when node runs with --expose-gc (npm run bench passes it). */
export function collectGarbage() {
  if (typeof globalThis.gc === 'function') globalThis.gc();
}

/**
 * Collects garbage, then gives V8's background sweeper a moment: on a 2-core machine its threads otherwise compete
 * with the next measurement right after a large heap was freed.
 */
export async function settle(ms = 20) {
  collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, ms));
}

// --- statistics ---------------------------------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** Summary of latency samples (any unit): median (= p50), p99, mean, min, max, count. */
export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    median: median(sorted),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sum / sorted.length,
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

// --- measurement --------------------------------------------------------------------------------------------------

/**
 * Runs `op` (sync or async) in a loop for at least `minTimeMs`, checking the clock every `batch` calls, and returns
 * the achieved operations per second. `op` receives a running index.
 */
export async function timedLoop(op, { minTimeMs = 200, batch = 1, minOps = 1 } = {}) {
  let ops = 0;
  const start = now();
  let elapsed = 0;
  do {
    for (let i = 0; i < batch; i++) {
      const r = op(ops + i);
      if (r !== undefined && typeof r.then === 'function') await r;
    }
    ops += batch;
    elapsed = now() - start;
  } while (elapsed < minTimeMs || ops < minOps);
  return { ops, ms: elapsed, opsPerSec: (ops * 1000) / elapsed };
}

/**
 * Throughput of several cases measured round-robin (A B C A B C ...), so that load from other processes on the
 * machine hits every case alike. Each case is either `run: (index) => void|Promise` (timed by timedLoop) or
 * `measure: () => Promise<{ops, ms}>` for cases that time only part of their work. Returns, per case, the ops/s of
 * every run and their median.
 */
export async function compareThroughput(cases, { runs = 5, warmupRuns = 1, minTimeMs = 200, batch = 1 } = {}) {
  const results = new Map(cases.map((c) => [c.name, []]));
  const once = async (c) => {
    if (c.measure !== undefined) {
      const { ops, ms } = await c.measure(minTimeMs);
      return (ops * 1000) / ms;
    }
    return (await timedLoop(c.run, { minTimeMs, batch: c.batch ?? batch })).opsPerSec;
  };
  for (let r = 0; r < warmupRuns + runs; r++) {
    for (const c of cases) {
      collectGarbage();
      const opsPerSec = await once(c);
      if (r >= warmupRuns) results.get(c.name).push(opsPerSec);
    }
  }
  return new Map([...results].map(([name, samples]) => [name, { samples, opsPerSec: median(samples) }]));
}

/** Duration in ms of one call of `op` (sync or async). */
export async function timeOnce(op) {
  const start = now();
  const r = op();
  if (r !== undefined && typeof r.then === 'function') await r;
  return now() - start;
}

/**
 * Per-call latency samples (ms) of several cases, interleaved in rounds of `perRound` calls each. Each case is
 * `{ name, op: (index) => void|Promise }`; `warmup` untimed calls per case come first.
 */
export async function compareLatency(cases, { rounds = 8, perRound = 25, warmup = 10 } = {}) {
  for (const c of cases) for (let i = 0; i < warmup; i++) await c.op(-1 - i);
  const samples = new Map(cases.map((c) => [c.name, []]));
  let index = 0;
  for (let r = 0; r < rounds; r++) {
    collectGarbage();
    for (const c of cases) {
      const list = samples.get(c.name);
      for (let i = 0; i < perRound; i++) list.push(await timeOnce(() => c.op(index + i)));
    }
    index += perRound;
  }
  return new Map([...samples].map(([name, list]) => [name, { samples: list, ...summarize(list) }]));
}

// --- formatting ---------------------------------------------------------------------------------------------------

/** A number with thousands separators and `digits` decimals. */
export function fmtNum(value, digits = 0) {
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Three significant digits, never scientific notation. */
export function fmtSig(value) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return fmtNum(value, digits);
}

export function fmtMs(ms) {
  return `${fmtSig(ms)} ms`;
}

export function fmtUs(ms) {
  return `${fmtSig(ms * 1000)} µs`;
}

export function fmtNs(ns) {
  return `${fmtSig(ns)} ns`;
}

export function fmtOps(opsPerSec) {
  return `${fmtNum(opsPerSec)}/s`;
}

export function fmtMiB(bytes) {
  return `${fmtNum(bytes / 1024 / 1024, 1)} MiB`;
}

/** A ratio as `1.23×`; `value / baseline`. */
export function fmtRatio(value, baseline) {
  const r = value / baseline;
  if (!Number.isFinite(r)) return 'n/a';
  return `${r >= 100 ? fmtNum(r) : r >= 10 ? fmtNum(r, 1) : fmtNum(r, 2)}×`;
}

// --- output -------------------------------------------------------------------------------------------------------

/** Lines describing this machine and run, printed once above the tables. */
export function machineInfo() {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' / ');
  return [
    `date      ${new Date().toISOString()}`,
    `node      ${process.version} (V8 ${process.versions.v8}, OpenSSL ${process.versions.openssl})`,
    `platform  ${os.platform()} ${os.release()} ${os.arch()}`,
    `cpus      ${cpus.length} × ${model}${os.availableParallelism ? ` (available parallelism ${os.availableParallelism()})` : ''}`,
    `memory    ${fmtNum(os.totalmem() / 1024 ** 3, 1)} GiB total, ${fmtNum(os.freemem() / 1024 ** 3, 1)} GiB free`,
    `load avg  ${load} (1 / 5 / 15 min, at start)`,
    `flags     ${process.execArgv.join(' ') || '(none)'}${typeof globalThis.gc === 'function' ? '' : '  [no --expose-gc: GC between runs disabled]'}`,
  ];
}

export function printMachineInfo() {
  console.log('## Machine\n');
  console.log('```');
  for (const line of machineInfo()) console.log(line);
  console.log('```\n');
}

/**
 * Prints a markdown table. `columns`: `[{ key, label, align?: 'left'|'right' }]` (right is the default for every
 * column but the first); `rows`: objects of already formatted strings. `notes` are printed under the table.
 */
export function printTable({ title, columns, rows, notes = [] }) {
  const widths = columns.map((c) => Math.max(c.label.length, ...rows.map((r) => String(r[c.key] ?? '').length)));
  const alignOf = (c, i) => c.align ?? (i === 0 ? 'left' : 'right');
  const pad = (text, width, align) => (align === 'left' ? text.padEnd(width) : text.padStart(width));
  const line = (cells) => `| ${cells.join(' | ')} |`;
  if (title !== undefined) console.log(`### ${title}\n`);
  console.log(line(columns.map((c, i) => pad(c.label, widths[i], alignOf(c, i)))));
  console.log(line(columns.map((c, i) => (alignOf(c, i) === 'left' ? ':'.padEnd(widths[i], '-') : ':'.padStart(widths[i], '-')))));
  for (const row of rows) console.log(line(columns.map((c, i) => pad(String(row[c.key] ?? ''), widths[i], alignOf(c, i)))));
  console.log('');
  for (const note of notes) console.log(`- ${note}`);
  if (notes.length > 0) console.log('');
}

/** Section header with its wall time printed when `fn` is done. */
export async function section(title, fn) {
  console.log(`## ${title}\n`);
  const start = now();
  await fn();
  console.log(`_section time: ${fmtNum((now() - start) / 1000, 1)} s_\n`);
}
