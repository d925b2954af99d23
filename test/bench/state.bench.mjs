// Benchmarks of the state store's lock (issue 11), against a baseline measured in the same run:
//   stale-lock recovery — how long after its owner died a lock is taken over: (a) the lock file of a process
//   killed earlier, found by a new command; (b) a waiter already queued when the owner is killed (time from the
//   owner's exit to the waiter holding the lock). Baseline: taking the same lock uncontended.
// Run `npm run build && node test/bench/run.mjs state`.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { withStateLock } from '../../dist/main/store/state-lock.js';
import { fmtMs, fmtRatio, printTable, section, settle, summarize } from './lib.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const lockModule = path.resolve(benchDir, '../../dist/main/store/state-lock.js');
const RUNS = 20;
const now = () => performance.now();

/** A child process that takes the state lock of `dir`, says so on stdout, and holds it until killed. */
function lockHolder(dir) {
  const script = `import { withStateLock } from ${JSON.stringify(lockModule)};
await withStateLock(${JSON.stringify(dir)}, () => { process.stdout.write('held\\n'); return new Promise(() => {}); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const held = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      if (String(chunk).includes('held')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lock holder exited (${code}) before taking the lock`)));
  });
  const exited = new Promise((resolve) => child.once('exit', () => resolve(now())));
  return { child, held, exited };
}

async function staleLockSection() {
  const root = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-lock-'));
  try {
    const uncontended = [];
    const deadOwner = [];
    const killedWhileWaiting = [];
    for (let i = 0; i < RUNS; i++) {
      const dir = path.join(root, `run-${i}`);
      await mkdir(dir, { mode: 0o700 });
      await settle();
      let t = now();
      await withStateLock(dir, async () => undefined);
      uncontended.push(now() - t);

      // (a) a lock file left by a process that was killed earlier.
      const earlier = lockHolder(dir);
      await earlier.held;
      earlier.child.kill('SIGKILL');
      await earlier.exited;
      await settle();
      t = now();
      await withStateLock(dir, async () => undefined);
      deadOwner.push(now() - t);

      // (b) a waiter queued behind a live owner, which is then killed.
      const owner = lockHolder(dir);
      await owner.held;
      let acquiredAt = 0;
      const waiting = withStateLock(dir, async () => {
        acquiredAt = now();
      });
      await settle(100);
      owner.child.kill('SIGKILL');
      const diedAt = await owner.exited;
      await waiting;
      killedWhileWaiting.push(acquiredAt - diedAt);
    }
    const base = summarize(uncontended);
    const rows = [
      { name: 'baseline: take the lock uncontended', s: base },
      { name: 'lock file of a killed process, new command takes it', s: summarize(deadOwner) },
      { name: 'waiter queued, owner killed: owner exit → waiter holds the lock', s: summarize(killedWhileWaiting) },
    ];
    printTable({
      title: `Stale-lock recovery (${RUNS} runs each)`,
      columns: [
        { key: 'name', label: 'case' },
        { key: 'p50', label: 'p50' },
        { key: 'p99', label: 'max' },
        { key: 'ratio', label: 'p50 / baseline' },
      ],
      rows: rows.map((r, i) => ({ name: r.name, p50: fmtMs(r.s.p50), p99: fmtMs(r.s.max), ratio: i === 0 ? '1.00× (baseline)' : fmtRatio(r.s.p50, base.p50) })),
      notes: [
        'the owner is recognised as gone by its pid (or a reused pid by its start time); a waiter retries every 10 ms, backing off to 50 ms',
        'target: recovery ≤ 100 ms after the owner died',
      ],
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await section('Stale-lock recovery', staleLockSection);
