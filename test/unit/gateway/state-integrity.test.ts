// Damage and tampering are detected and refused, never silently repaired: a missing CA, a damaged or forged audit
// log, a damaged journal.
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { GatewayAdmin } from '../../../main/gateway/gateway-admin.js';
import { CA_STATE_KEY, IDENTITY_STATE_KEY, IdentityManager } from '../../../main/gateway/identity-manager.js';
import { MemoryKeychain } from '../../../main/store/keychain.js';
import { FilesystemSecretStore } from '../../../main/store/fs-secret-store.js';
import { resolveStoreKey } from '../../../main/store/store-key.js';
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
    const manager = await openFsManager(dir);
    await appendFile(path.join(dir, AUDIT_LOG_FILE), '{"not":"an entry"}\n');
    const error = await failure(() => manager.revokeDevice(ids[0]!, 'lost'));
    expect(error.code).toBe('audit_chain_broken');
    expect(error.message).toContain('state repair');
    // Opening for changes refuses too; a read-only load shows the state unchanged.
    expect((await failure(() => openFsManager(dir))).code).toBe('audit_chain_broken');
    const { key } = await resolveStoreKey(dir, null);
    const again = await IdentityManager.openExisting({ store: await FilesystemSecretStore.open(dir, { key }), stateDir: dir, journalKey: key });
    expect(again?.isDeviceRevoked(ids[0]!)).toBe(false);
    expect(again?.pairedDevice(ids[0]!)).toBeDefined();
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

describe('journal damage, rollback and the keychain anchor', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  const journalFile = (): string => path.join(dir, hexKey(`${IDENTITY_STATE_KEY}.journal`));
  const snapshotFile = (): string => path.join(dir, hexKey(IDENTITY_STATE_KEY));

  /** A gateway state whose store key is in an (in-memory) OS keychain, so it has a rollback anchor. */
  async function openAnchored(keychain: MemoryKeychain, extra: { anchorLagMs?: number } = {}): Promise<GatewayAdmin> {
    return GatewayAdmin.open({ stateDir: dir, keychain, anchorLagMs: 0, ...extra });
  }

  async function pairAndRevoke(admin: GatewayAdmin, pairs: number, revokes: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < pairs; i++) {
      const verified = randomVerifiedDevice();
      await admin.identity.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
      ids.push(verified.deviceId);
    }
    for (const id of ids.slice(0, revokes)) await admin.revokeDevice(id, 'lost');
    return ids;
  }

  it('refuses a journal whose last record has a flipped byte (state_corrupt naming the document)', async () => {
    const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    await pairAndRevoke(admin, 3, 1);
    const bytes = await readFile(journalFile());
    for (const back of [1, 3, 5]) {
      const damaged = Buffer.from(bytes);
      damaged[damaged.length - back]! ^= 0x01;
      await writeFile(journalFile(), damaged);
      const error = await failure(() => GatewayAdmin.open({ stateDir: dir, keychain: null }));
      expect(error.code).toBe('state_corrupt');
      expect(error.message).toContain(IDENTITY_STATE_KEY);
      expect((await failure(() => GatewayAdmin.openExisting({ stateDir: dir, keychain: null }))).code).toBe('state_corrupt');
    }
  });

  it('drops only a torn final record, shorter than its length prefix', async () => {
    const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    const ids = await pairAndRevoke(admin, 2, 1);
    const bytes = await readFile(journalFile());
    await writeFile(journalFile(), bytes.subarray(0, bytes.length - 7));
    const reopened = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    // The revocation was the last record and is gone with it: it was never acknowledged in this scenario.
    expect(reopened.identity.isDeviceRevoked(ids[0]!)).toBe(false);
    expect(reopened.identity.pairedDevice(ids[1]!)).toBeDefined();
  });

  it('refuses a deleted journal with state_corrupt', async () => {
    const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    await pairAndRevoke(admin, 2, 1);
    await rm(journalFile());
    const error = await failure(() => GatewayAdmin.open({ stateDir: dir, keychain: null }));
    expect(error.code).toBe('state_corrupt');
    expect(error.message).toMatch(/journal is missing/);
  });

  it('with the key in the keychain, refuses a journal cut at a record boundary or to its header: state_rollback', async () => {
    const keychain = new MemoryKeychain();
    const admin = await openAnchored(keychain);
    expect(admin.rollbackProtection).toBe('keychain');
    await pairAndRevoke(admin, 6, 2);
    const bytes = await readFile(journalFile());
    // Find the start of the last frame by walking the frames from the 12-byte header.
    let pos = 12;
    let lastStart = pos;
    while (pos < bytes.length) {
      lastStart = pos;
      pos += 12 + bytes.readUInt32BE(pos);
    }
    for (const cut of [lastStart, 12]) {
      await writeFile(journalFile(), bytes.subarray(0, cut));
      const error = await failure(() => openAnchored(keychain));
      expect(error.code).toBe('state_rollback');
      expect((await failure(() => GatewayAdmin.openExisting({ stateDir: dir, keychain }))).code).toBe('state_rollback');
    }
    await writeFile(journalFile(), bytes);
    expect((await openAnchored(keychain)).identity.listRevokedDevices()).toHaveLength(2);
  });

  it('with the key in the keychain, refuses an older snapshot + journal restored over the current ones', async () => {
    const keychain = new MemoryKeychain();
    const admin = await openAnchored(keychain);
    const ids = await pairAndRevoke(admin, 3, 0);
    const old = { snapshot: await readFile(snapshotFile()), journal: await readFile(journalFile()), audit: await readFile(path.join(dir, AUDIT_LOG_FILE)) };
    await admin.revokeDevice(ids[0]!, 'stolen');
    await writeFile(snapshotFile(), old.snapshot);
    await writeFile(journalFile(), old.journal);
    await writeFile(path.join(dir, AUDIT_LOG_FILE), old.audit);
    expect((await failure(() => openAnchored(keychain))).code).toBe('state_rollback');
  });

  it('keeps a mutation and its audit entry together: an entry the log missed is appended once at the next open', async () => {
    const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    const ids = await pairAndRevoke(admin, 1, 0);
    const log = admin.identity.auditLog!;
    const original = log.appendPrepared.bind(log);
    // The process "dies" between the journal write and the audit append: the append fails once.
    log.appendPrepared = () => {
      log.appendPrepared = () => Promise.resolve([]);
      return Promise.reject(new Error('killed before the audit append'));
    };
    await admin.revokeDevice(ids[0]!, 'lost');
    log.appendPrepared = original;
    const before = (await readFile(path.join(dir, AUDIT_LOG_FILE), 'utf8')).trimEnd().split('\n');
    expect(before.some((line) => line.includes('device_revoked'))).toBe(false);
    const reopened = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    const after = (await readFile(path.join(dir, AUDIT_LOG_FILE), 'utf8')).trimEnd().split('\n');
    expect(after.filter((line) => line.includes('device_revoked'))).toHaveLength(1);
    expect(await reopened.identity.auditLog!.verify()).toMatchObject({ ok: true, entries: after.length });
    await GatewayAdmin.open({ stateDir: dir, keychain: null });
    expect((await readFile(path.join(dir, AUDIT_LOG_FILE), 'utf8')).trimEnd().split('\n')).toHaveLength(after.length);
  });

  it('groups concurrent mutations into fewer commits, each durable and audited once', async () => {
    const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    const ids = await pairAndRevoke(admin, 1, 0);
    const before = admin.identity.backend.commitBatches;
    const banned = Array.from({ length: 40 }, () => randomVerifiedDevice().deviceId);
    await Promise.all(banned.map((id) => admin.revokeDevice(id, 'pre-emptive')));
    expect(admin.identity.backend.commitBatches - before).toBeLessThan(banned.length);
    const reopened = await GatewayAdmin.openExisting({ stateDir: dir, keychain: null });
    for (const id of banned) expect(reopened!.identity.isDeviceRevoked(id)).toBe(true);
    expect(reopened!.identity.pairedDevice(ids[0]!)).toBeDefined();
    const lines = (await readFile(path.join(dir, AUDIT_LOG_FILE), 'utf8')).trimEnd().split('\n');
    expect(lines.filter((line) => line.includes('device_revoked'))).toHaveLength(banned.length);
    expect((await reopened!.identity.auditLog!.verify()).ok).toBe(true);
  });
  it('persists a changed registration at once, and batches re-registrations that only move last-seen', async () => {
    const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    const [id] = await pairAndRevoke(admin, 1, 0);
    const record = (seen: number, platform = 'linux') => ({ deviceId: id!, platform, capabilities: [{ name: 'echo', available: true }], registeredAtUnixMs: 1, lastSeenAtUnixMs: seen });
    await admin.putNode(record(10));
    const before = admin.identity.backend.commitBatches;
    for (let seen = 11; seen <= 60; seen++) await admin.putNode(record(seen));
    expect(admin.identity.backend.commitBatches).toBe(before);
    expect(admin.listDevices().devices[0]!.last_seen_at_unix_ms).toBe(60);
    // Another process sees the durable record only; the last-seen time reaches the disk at close.
    expect((await GatewayAdmin.openExisting({ stateDir: dir, keychain: null }))!.node(id!)?.lastSeenAtUnixMs).toBe(10);
    await admin.putNode(record(61, 'darwin'));
    expect(admin.identity.backend.commitBatches).toBe(before + 1);
    expect((await GatewayAdmin.openExisting({ stateDir: dir, keychain: null }))!.node(id!)).toMatchObject({ platform: 'darwin', lastSeenAtUnixMs: 61 });
    await admin.putNode(record(99, 'darwin'));
    await admin.close();
    expect((await GatewayAdmin.openExisting({ stateDir: dir, keychain: null }))!.node(id!)?.lastSeenAtUnixMs).toBe(99);
  });
});
