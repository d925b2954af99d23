// Several real processes share one state directory: no acknowledged update is lost, and a writer killed with
// SIGKILL at any point leaves a state that loads with every acknowledged mutation.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { openFsManager, tempDir } from '../helpers/identity.js';

const worker = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/identity-worker.mjs');

interface Acks {
  pair: string[];
  ban: string[];
}

function parseAcks(text: string): Acks {
  const acks: Acks = { pair: [], ban: [] };
  for (const line of text.split('\n')) {
    const [word, kind, id] = line.split(' ');
    // Only complete lines count: a line cut by SIGKILL was never fully acknowledged to us.
    if (word === 'ack' && id?.length === 26 && (kind === 'pair' || kind === 'ban')) acks[kind].push(id);
  }
  return acks;
}

function runWorker(dir: string, count: number, compactEvery?: number, killAfterAcks?: number, env: Record<string, string> = {}): Promise<{ acks: Acks; code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const args = [worker, dir, String(count), ...(compactEvery === undefined ? [] : [String(compactEvery)])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (killAfterAcks !== undefined && out.split('\n').length - 1 >= killAfterAcks) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => { resolve({ acks: parseAcks(out), code, signal, stderr: err }); });
  });
}

describe('identity state shared by processes', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  it('loses no update and refuses none with 8 processes × 100 mutations on one state directory', async () => {
    await openFsManager(dir); // create the CA first so the workers race only on mutations
    // Waiters wait for the lock (30 s by default) instead of giving up: not one mutation may be refused.
    const runs = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => runWorker(dir, 100, 16)));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const manager = await openFsManager(dir);
    const bans = runs.flatMap((r) => r.acks.ban);
    const pairs = runs.flatMap((r) => r.acks.pair);
    expect(bans.length + pairs.length).toBe(800);
    for (const id of bans) expect(manager.isDeviceRevoked(id)).toBe(true);
    for (const id of pairs) expect(manager.pairedDevice(id)).toBeDefined();
    expect(manager.generation).toBeGreaterThanOrEqual(800);
    const audit = await manager.auditLog!.verify();
    expect(audit.ok).toBe(true);
    expect(audit.entries).toBeGreaterThanOrEqual(801);
  }, 240_000);

  it('keeps every acknowledged mutation when a writer is killed with SIGKILL (20 runs)', async () => {
    await openFsManager(dir);
    const acked: Acks = { pair: [], ban: [] };
    for (let run = 0; run < 20; run++) {
      // Kill after a varying number of acknowledgements; compaction every 3 records puts kills inside snapshot writes too.
      // A killed writer may leave its lock file; its owner is known dead, so the next opener reclaims it at once.
      const r = await runWorker(dir, 1000, 3, 1 + ((run * 7) % 13));
      expect(r.signal).toBe('SIGKILL');
      acked.pair.push(...r.acks.pair);
      acked.ban.push(...r.acks.ban);
      const manager = await openFsManager(dir, { lock: { timeoutMs: 0 } });
      for (const id of acked.ban) expect(manager.isDeviceRevoked(id)).toBe(true);
      for (const id of acked.pair) expect(manager.pairedDevice(id)).toBeDefined();
      expect((await manager.auditLog!.verify()).ok).toBe(true);
    }
    expect(acked.ban.length + acked.pair.length).toBeGreaterThanOrEqual(20);
  }, 180_000);
});
