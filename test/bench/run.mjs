// Runs the benchmarks: every test/bench/*.bench.mjs in turn, or those named on the command line
// (`node test/bench/run.mjs core` runs core.bench.mjs). Options starting with `--` are passed to each bench file
// (e.g. `--only=handshake,lookup`). Each file runs in its own node process with this process's flags
// (`--expose-gc` via `npm run bench`), so one bench's heap and JIT state do not colour the next one's numbers.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { printMachineInfo } from './lib.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '../..');
const SUFFIX = '.bench.mjs';

const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('--'));
const passThrough = args.filter((a) => a.startsWith('--'));

if (!existsSync(path.join(repoRoot, 'dist/main'))) {
  console.error('dist/main is missing: run `npm run build` first (or `npm run bench`, which builds).');
  process.exit(2);
}

const available = (await readdir(benchDir)).filter((f) => f.endsWith(SUFFIX)).sort();
const selected = names.length === 0 ? available : names.map((n) => (n.endsWith(SUFFIX) ? n : `${n}${SUFFIX}`));
const unknown = selected.filter((f) => !available.includes(f));
if (unknown.length > 0) {
  console.error(`unknown bench: ${unknown.join(', ')} (available: ${available.map((f) => f.slice(0, -SUFFIX.length)).join(', ')})`);
  process.exit(2);
}

console.log('# Palyra benchmarks\n');
printMachineInfo();

/** A bench file is stopped after this long: a stuck run should fail, not hold the machine. */
const FILE_TIMEOUT_MS = 10 * 60_000;

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, path.join(benchDir, file), ...passThrough], {
      cwd: repoRoot,
      stdio: 'inherit',
      env: { ...process.env, PALYRA_BENCH_CHILD: '1' },
    });
    const timer = setTimeout(() => {
      console.error(`\n${file} still running after ${FILE_TIMEOUT_MS / 60_000} min: stopping it`);
      child.kill('SIGKILL');
    }, FILE_TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal === null ? 1 : 128));
    });
  });
}

const started = performance.now();
let failed = 0;
for (const file of selected) {
  const t0 = performance.now();
  const code = await runFile(file);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  if (code !== 0) {
    failed++;
    console.error(`\n${file} failed (exit ${code}) after ${seconds} s`);
  } else {
    console.log(`_${file}: ${seconds} s_\n`);
  }
}
console.log(`_total: ${((performance.now() - started) / 1000).toFixed(1)} s; load avg at end ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}_`);
process.exit(failed === 0 ? 0 : 1);
