// Crash and full-disk injection at every I/O boundary of a mutation (main/store/io-faults.ts): a real `palyra
// devices revoke` child is killed (SIGKILL) or gets ENOSPC at boundary i, for every i the mutation crosses. Each run
// must leave either the old or the new state, with the audit log agreeing (the entry exists exactly when the
// change does), and the next command must recover by itself: a dead owner's lock reclaimed, a torn tail cut, the
// audit entry the journal holds appended once.
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCli, runCliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';

const BANNED = '01J9Z8Y7X6W5V4T3S2R1Q0P9NM';
const TARGET = '01J9Z8Y7X6W5V4T3S2R1Q0P9NN';
const AFTER = '01J9Z8Y7X6W5V4T3S2R1Q0P9NP';
const env = cliEnv({ PALYRA_KEYCHAIN: 'file' });

let root: string;
let cleanup: () => Promise<void>;
let template: string;
let runs = 0;

beforeAll(async () => {
  await ensureBuilt();
  ({ dir: root, cleanup } = await tempDir('palyra-faults-'));
  template = path.join(root, 'template');
  expect((await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', template], { env })).code).toBe(0);
  expect((await runCliJson(['devices', 'revoke', BANNED, '--state-dir', template], { env })).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await cleanup();
});

interface Fault {
  trace?: string;
  at?: number;
  action?: 'kill' | 'enospc';
  compactEvery?: number | undefined;
}

async function freshState(): Promise<string> {
  runs += 1;
  const dir = path.join(root, `run-${runs}`);
  await cp(template, dir, { recursive: true });
  return dir;
}

const revokeArgs = (dir: string, id: string) => ['devices', 'revoke', id, '--reason', 'lost', '--state-dir', dir];
const faultEnv = (fault?: Fault) => (fault === undefined ? env : { ...env, PALYRA_TEST_IO_FAULT: JSON.stringify(fault) });
const revoke = (dir: string, id: string, fault?: Fault) => runCliJson(revokeArgs(dir, id), { env: faultEnv(fault) });

/** The boundaries one revoke crosses, as `<n> <kind> <file>` lines. */
async function traceBoundaries(compactEvery?: number): Promise<string[]> {
  const dir = await freshState();
  const trace = path.join(root, `trace-${runs}`);
  const result = await revoke(dir, TARGET, { trace, ...(compactEvery === undefined ? {} : { compactEvery }) });
  expect(result.code).toBe(0);
  return (await readFile(trace, 'utf8')).trim().split('\n');
}

interface Outcome {
  revoked: boolean;
}

/**
 * After a faulted run: the next mutation succeeds (recovery), and then state and audit agree — TARGET revoked
 * exactly when one `device_revoked` entry for it exists, the chain verifies, every entry appears once.
 */
async function checkRecovered(dir: string, label: string): Promise<Outcome> {
  const next = await revoke(dir, AFTER);
  expect(next.code, `${label}: the next mutation recovers (${next.stdout}${next.stderr})`).toBe(0);
  const verify = await runCliJson(['state', 'verify', '--state-dir', dir], { env });
  expect(verify.code, `${label}: state verify ${verify.stdout}`).toBe(0);
  const listed = await runCliJson(['devices', 'list', '--state-dir', dir], { env });
  const ids = (listed.json as { devices: { device_id: string; status: string }[] }).devices.filter((d) => d.status === 'revoked').map((d) => d.device_id);
  const tail = await runCliJson(['audit', 'tail', '--count', '100', '--state-dir', dir], { env });
  expect(tail.code, label).toBe(0);
  const { entries, chain } = tail.json as { entries: { seq: number; event: string; fields: { device_id?: string } }[]; chain: { ok: boolean } };
  expect(chain.ok, label).toBe(true);
  expect(entries.map((e) => e.seq), `${label}: contiguous audit`).toEqual(entries.map((_, i) => entries[0]!.seq + i));
  const auditedRevocations = entries.filter((e) => e.event === 'device_revoked').map((e) => e.fields.device_id);
  expect(ids.sort(), label).toEqual([...new Set(auditedRevocations)].sort());
  expect(auditedRevocations.length, `${label}: each revocation audited once`).toBe(new Set(auditedRevocations).size);
  expect(ids, label).toEqual(expect.arrayContaining([BANNED, AFTER]));
  return { revoked: ids.includes(TARGET) };
}

/** Runs `check(i)` for i = first…count, two at a time (the machine has two cores). */
async function sweep(first: number, count: number, check: (i: number) => Promise<void>): Promise<void> {
  let next = first;
  const worker = async (): Promise<void> => {
    while (next <= count) {
      const i = next++;
      await check(i);
    }
  };
  await Promise.all([worker(), worker()]);
}

describe.each([
  { name: 'an append', compactEvery: undefined },
  { name: 'an append that compacts', compactEvery: 1 },
])('a revoke as $name', ({ compactEvery }) => {
  let boundaries: string[];
  // The compacting run crosses the plain run's boundaries first: sweep only what compaction adds.
  let first = 1;

  beforeAll(async () => {
    boundaries = await traceBoundaries(compactEvery);
    // The first temp file that is not the lock's: the compaction's snapshot.
    if (compactEvery !== undefined) first = boundaries.findIndex((line) => line.includes('.tmp.') && !line.includes('.identity-state.lock')) + 1;
  }, 60_000);

  it('crosses every kind of boundary the store has', () => {
    const kinds = new Set(boundaries.map((line) => line.split(' ')[1]));
    for (const kind of ['open', 'write', 'sync', 'unlink']) expect(kinds).toContain(kind);
    if (compactEvery !== undefined) {
      for (const kind of ['rename', 'dirsync']) expect(kinds).toContain(kind);
      expect(first).toBeGreaterThan(1);
    }
    expect(boundaries.some((line) => line.endsWith('audit.v1.jsonl'))).toBe(true);
  });

  it('killed at any boundary leaves the old or the new state, and the next command recovers', async () => {
    const outcomes: boolean[] = [];
    await sweep(first, boundaries.length, async (i) => {
      const dir = await freshState();
      const killed = await runCli([...revokeArgs(dir, TARGET), '--json'], { env: faultEnv({ at: i, action: 'kill', compactEvery }) });
      expect(killed.signal, `boundary ${boundaries[i - 1]}`).toBe('SIGKILL');
      outcomes[i - 1] = (await checkRecovered(dir, `kill at ${boundaries[i - 1]}`)).revoked;
    });
    // Killed before its journal write the change is lost (never acknowledged); after its fsync it is kept.
    const journalSync = boundaries.findIndex((line) => / sync [0-9a-f]+$/.test(line) && line.endsWith(Buffer.from('identity/state.v1.json.journal').toString('hex')));
    expect(journalSync).toBeGreaterThan(0);
    if (compactEvery === undefined) expect(outcomes.slice(0, journalSync).every((revoked) => !revoked)).toBe(true);
    expect(outcomes.slice(Math.max(journalSync + 1, first - 1)).every((revoked) => revoked)).toBe(true);
    expect(Object.keys(outcomes).length).toBe(boundaries.length - first + 1);
  }, 600_000);

  it('ENOSPC at any boundary fails with store_io_failed and the old state, or succeeds with the new', async () => {
    let failures = 0;
    await sweep(first, boundaries.length, async (i) => {
      const label = `ENOSPC at ${boundaries[i - 1]}`;
      const dir = await freshState();
      const result = await revoke(dir, TARGET, { at: i, action: 'enospc', compactEvery });
      expect(result.signal, label).toBeNull();
      if (result.code !== 0) {
        failures += 1;
        expect(result.code, label).toBe(1);
        expect(result.json, label).toMatchObject({ error: { code: 'store_io_failed', message: expect.stringContaining('ENOSPC') } });
      }
      const { revoked } = await checkRecovered(dir, label);
      expect(revoked, `${label}: exit ${result.code} matches the state`).toBe(result.code === 0);
    });
    // The journal's own write and fsync cannot be absorbed: at least those fail. A failed compaction is absorbed
    // (the records are durable already, and compaction is retried).
    if (compactEvery === undefined) expect(failures).toBeGreaterThanOrEqual(2);
    else expect(failures).toBe(0);
  }, 600_000);
});

describe('a full disk', () => {
  it('still lets read-only commands work', async () => {
    const dir = await freshState();
    // Every write a read-only command might attempt fails: it must not attempt any.
    const trace = path.join(root, 'trace-readonly');
    for (const args of [['devices', 'list'], ['audit', 'tail'], ['audit', 'verify'], ['state', 'verify']]) {
      const result = await runCliJson([...args, '--state-dir', dir], { env: { ...env, PALYRA_TEST_IO_FAULT: JSON.stringify({ trace, at: 1, action: 'enospc' }) } });
      expect(result.code, `${args.join(' ')}: ${result.stdout}`).toBe(0);
    }
    await expect(readFile(trace, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await runCli(['devices', 'list', '--state-dir', dir], { env })).toMatchObject({ code: 0 });
  });
});
