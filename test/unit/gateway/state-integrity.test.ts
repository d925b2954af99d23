// Damage and tampering are detected and refused, never silently repaired: a missing CA, a damaged or forged audit
// log, a damaged journal.
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { CA_STATE_KEY } from '../../../main/gateway/identity-manager.js';
import { AUDIT_LOG_FILE, auditEntryHash } from '../../../main/store/audit-log.js';
import type { AuditEntry } from '../../../main/store/audit-log.js';
import { csrFor, openFsManager, randomVerifiedDevice, tempDir } from '../../helpers/identity.js';

function hexKey(key: string): string {
  return Buffer.from(key, 'utf8').toString('hex');
}

async function failure(fn: () => Promise<unknown>): Promise<PalyraError> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof PalyraError) return error;
    throw error;
  }
  throw new Error('expected a PalyraError');
}

describe('gateway state integrity', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  async function withDevices(n: number) {
    const manager = await openFsManager(dir);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const verified = randomVerifiedDevice();
      await manager.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
      ids.push(verified.deviceId);
    }
    return { manager, ids };
  }

  it('refuses to start with ca_missing when the CA file is gone but the state exists, and mints nothing', async () => {
    await withDevices(2);
    await rm(path.join(dir, hexKey(CA_STATE_KEY)));
    const error = await failure(() => openFsManager(dir));
    expect(error.code).toBe('ca_missing');
    expect(error.message).toContain(CA_STATE_KEY);
    await expect(readFile(path.join(dir, hexKey(CA_STATE_KEY)))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a mutation while the audit log ends with garbage, and leaves the state as it was', async () => {
    const { ids } = await withDevices(1);
    await appendFile(path.join(dir, AUDIT_LOG_FILE), '{"not":"an entry"}\n');
    const manager = await openFsManager(dir);
    const error = await failure(() => manager.revokeDevice(ids[0]!, 'lost'));
    expect(error.code).toBe('audit_chain_broken');
    const again = await openFsManager(dir);
    expect(again.isDeviceRevoked(ids[0]!)).toBe(false);
    expect(again.pairedDevice(ids[0]!)).toBeDefined();
  });

  it('keys the audit chain: an edited entry with a recomputed plain SHA-256 chain does not verify', async () => {
    const { manager, ids } = await withDevices(2);
    await manager.revokeDevice(ids[1]!, 'stolen');
    expect(await manager.auditLog!.verify()).toMatchObject({ ok: true });
    const file = path.join(dir, AUDIT_LOG_FILE);
    const entries = (await readFile(file, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as AuditEntry);
    expect(entries.every((e) => e.alg === 'hmac-sha256')).toBe(true);
    // Rewrite the revocation's reason and recompute every hash as an unkeyed chain would.
    let prev = '0'.repeat(64);
    const forged = entries.map((e) => {
      const fields = e.event === 'device_revoked' ? { ...e.fields, reason: 'routine' } : e.fields;
      const { alg: _alg, ...rest } = e;
      const hash = auditEntryHash(prev, e.seq, e.ts_ms, e.event, fields);
      const out = { ...rest, fields, prev, hash };
      prev = hash;
      return out;
    });
    await writeFile(file, forged.map((e) => `${JSON.stringify(e)}\n`).join(''));
    expect((await manager.auditLog!.verify()).ok).toBe(false);
    // Keeping the keyed marker but editing a field breaks the MAC.
    const edited = entries.map((e) => (e.seq === 2 ? { ...e, fields: { ...e.fields, extra: 'x' } } : e));
    await writeFile(file, edited.map((e) => `${JSON.stringify(e)}\n`).join(''));
    expect(await manager.auditLog!.verify()).toMatchObject({ ok: false, brokenAtSeq: 2 });
    // Deleting an entry in the middle breaks the sequence.
    await writeFile(file, entries.filter((e) => e.seq !== 2).map((e) => `${JSON.stringify(e)}\n`).join(''));
    expect(await manager.auditLog!.verify()).toMatchObject({ ok: false, brokenAtSeq: 2 });
  });
});
