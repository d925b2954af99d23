// `palyra audit …` and `palyra state …` as real processes: verify a healthy state, refuse damage with coded errors,
// and repair only when the operator accepts the loss.
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCli, runCliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];
const env = cliEnv({ PALYRA_KEYCHAIN: 'file' });
const BANNED = '01J9Z8Y7X6W5V4T3S2R1Q0P9NM';

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function stateWithBan(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-cli-state-');
  cleanups.push(cleanup);
  expect((await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', dir], { env })).code).toBe(0);
  expect((await runCliJson(['devices', 'revoke', BANNED, '--reason', 'lost', '--state-dir', dir], { env })).code).toBe(0);
  return dir;
}

const cli = (args: string[]) => runCliJson(args, { env });
const identityJournal = (dir: string): string => path.join(dir, Buffer.from('identity/state.v1.json.journal').toString('hex'));

describe('palyra audit and state', () => {
  it('verify a healthy state and list its audit entries', async () => {
    const dir = await stateWithBan();
    const audit = await cli(['audit', 'verify', '--state-dir', dir]);
    expect(audit.code).toBe(0);
    expect(audit.json).toMatchObject({ ok: true, entries: expect.any(Number), head: { seq: expect.any(Number), hash: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    const tail = await cli(['audit', 'tail', '--count', '50', '--state-dir', dir]);
    expect(tail.code).toBe(0);
    const { entries, chain } = tail.json as { entries: { event: string; alg: string }[]; chain: { ok: boolean } };
    expect(chain.ok).toBe(true);
    expect(entries.map((e) => e.event)).toEqual(expect.arrayContaining(['ca_created', 'code_minted', 'device_revoked']));
    expect(entries.every((e) => e.alg === 'hmac-sha256')).toBe(true);
    const state = await cli(['state', 'verify', '--state-dir', dir]);
    expect(state.code).toBe(0);
    expect(state.json).toMatchObject({ ok: true, rollback_protection: 'none', documents: { 'identity/state.v1.json': { generation: expect.any(Number) } } });
    expect((await cli(['audit', 'tail', '--count', '0', '--state-dir', dir])).code).toBe(2);
  });

  it('refuse a damaged last journal record everywhere, and repair it only with --accept-loss', async () => {
    const dir = await stateWithBan();
    const bytes = await readFile(identityJournal(dir));
    bytes[bytes.length - 3]! ^= 0x40;
    await writeFile(identityJournal(dir), bytes);
    for (const args of [['state', 'verify'], ['devices', 'list']]) {
      const result = await cli([...args, '--state-dir', dir]);
      expect(result.code).toBe(1);
      expect(result.json).toMatchObject({ error: { code: 'state_corrupt', message: expect.stringContaining('identity/state.v1.json') } });
    }
    const refused = await runCli(['state', 'repair', '--state-dir', dir], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--accept-loss');
    const repaired = await cli(['state', 'repair', '--accept-loss', '--state-dir', dir]);
    expect(repaired.code).toBe(0);
    expect((repaired.json as { documents: Record<string, { dropped_bytes: number }> }).documents['identity/state.v1.json']!.dropped_bytes).toBeGreaterThan(0);
    expect((await cli(['state', 'verify', '--state-dir', dir])).code).toBe(0);
    // The ban was the damaged record: it is gone, as the repair said; the repair itself is audited.
    expect((await cli(['devices', 'list', '--state-dir', dir])).json).toMatchObject({ devices: [] });
    const tail = (await cli(['audit', 'tail', '--state-dir', dir])).json as { entries: { event: string }[]; chain: { ok: boolean } };
    expect(tail.chain.ok).toBe(true);
    expect(tail.entries.at(-1)?.event).toBe('state_repaired');
  });

  it('refuse a change while the audit log ends with garbage, then recover by repair', async () => {
    const dir = await stateWithBan();
    await appendFile(path.join(dir, 'audit.v1.jsonl'), 'garbage\n');
    const other = '01J9Z8Y7X6W5V4T3S2R1Q0P9NN';
    const refused = await cli(['devices', 'revoke', other, '--state-dir', dir]);
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ error: { code: 'audit_chain_broken' } });
    const listed = (await cli(['devices', 'list', '--state-dir', dir])).json as { devices: { device_id: string }[] };
    expect(listed.devices.map((d) => d.device_id)).toEqual([BANNED]);
    expect((await cli(['audit', 'verify', '--state-dir', dir])).json).toMatchObject({ error: { code: 'audit_chain_broken' } });
    expect((await cli(['state', 'repair', '--accept-loss', '--state-dir', dir])).json).toMatchObject({ repaired: true, audit: { entries_dropped: 1 } });
    expect((await cli(['devices', 'revoke', other, '--state-dir', dir])).code).toBe(0);
    expect((await cli(['audit', 'verify', '--state-dir', dir])).code).toBe(0);
  });
});
