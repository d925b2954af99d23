// crl.pem beside the state: rewritten on every change of the revoked serials, numbered upwards, never left behind
// the state by a concurrent publisher, untouched by read-only issues.
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseCrl, verifyCrlSignature } from '../../../main/core/crl.js';
import type { CrlInfo } from '../../../main/core/crl.js';
import { CRL_FILE_NAME, publishedCrlNumber, readCrlFile } from '../../../main/gateway/crl-file.js';
import { IdentityManager } from '../../../main/gateway/identity-manager.js';
import { FilesystemSecretStore } from '../../../main/store/fs-secret-store.js';
import { InMemorySecretStore } from '../../../main/store/secret-store.js';
import { resolveStoreKey } from '../../../main/store/store-key.js';
import { csrFor, openFsManager, randomVerifiedDevice, tempDir } from '../../helpers/identity.js';

async function pair(manager: IdentityManager) {
  const verified = randomVerifiedDevice('node');
  const result = await manager.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
  return { deviceId: verified.deviceId, serialHex: result.certificate.serialHex, fingerprint: result.certificate.fingerprint };
}

describe('the published CRL (crl.pem)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('palyra-crl-file-'));
  });
  afterEach(async () => {
    await cleanup();
  });

  async function published(): Promise<CrlInfo> {
    const file = await readCrlFile(dir);
    expect(file).not.toBeNull();
    return file!.info;
  }

  it('exists, empty and signed by the CA, as soon as the CA is created', async () => {
    const m = await openFsManager(dir);
    const file = await readCrlFile(dir);
    expect(file?.info.revoked).toEqual([]);
    expect(await verifyCrlSignature(file!.pem, m.caCertificatePem)).toBe(true);
  });

  it('follows every revocation, removal and rotation with a larger cRLNumber', async () => {
    const m = await openFsManager(dir);
    const a = await pair(m);
    const b = await pair(m);
    const numbers = [(await published()).crlNumber!];
    await m.revokeDevice(a.deviceId, 'lost');
    expect((await published()).revoked.map((e) => e.serialHex)).toEqual([a.serialHex]);
    numbers.push((await published()).crlNumber!);
    const rotated = await m.forceRotate(b.deviceId, { csrDer: await csrFor(b.deviceId) });
    expect((await published()).revoked.map((e) => e.serialHex).sort()).toEqual([a.serialHex, b.serialHex].sort());
    numbers.push((await published()).crlNumber!);
    await m.revokeCertificate(rotated.certificate.fingerprint, 'leaked');
    expect((await published()).revoked.map((e) => e.serialHex).sort()).toEqual([a.serialHex, b.serialHex, rotated.certificate.serialHex].sort());
    numbers.push((await published()).crlNumber!);
    for (let i = 1; i < numbers.length; i++) expect(numbers[i]).toBeGreaterThan(numbers[i - 1]!);
  });

  it('is left alone by changes that revoke nothing (pairing, unban)', async () => {
    const m = await openFsManager(dir);
    const a = await pair(m);
    await m.revokeDevice(a.deviceId, 'x');
    const before = await readFile(path.join(dir, CRL_FILE_NAME), 'utf8');
    await pair(m);
    await m.clearRevokedDevice(a.deviceId);
    expect(await readFile(path.join(dir, CRL_FILE_NAME), 'utf8')).toBe(before);
  });

  it('drops certificates that have expired anyway', async () => {
    let now = Date.now();
    const m = await openFsManager(dir, { clock: () => now, certificateValidityMs: 60_000 });
    const a = await pair(m);
    await m.revokeDevice(a.deviceId, 'lost');
    expect((await published()).revoked).toHaveLength(1);
    now += 120_000;
    await m.pruneExpiredRevocations();
    expect((await published()).revoked).toEqual([]);
  });

  it('re-issues with force even when the serials are unchanged, and is rewritten when it was deleted', async () => {
    const m = await openFsManager(dir);
    const first = (await published()).crlNumber!;
    expect(parseCrl(await m.publishCrl()).crlNumber).toBe(first);
    const forced = parseCrl(await m.publishCrl({ force: true }));
    expect(forced.crlNumber).toBeGreaterThan(first);
    expect((await published()).crlNumber).toBe(forced.crlNumber);
    await rm(path.join(dir, CRL_FILE_NAME));
    await m.publishCrl();
    expect((await published()).crlNumber).toBeGreaterThan(forced.crlNumber!);
  });

  it('numbers above a published CRL whose number is ahead of the clock, and replaces a damaged file', async () => {
    const m = await openFsManager(dir);
    const ahead = Math.floor(Date.now() / 1000) + 1_000_000;
    const other = await openFsManager(dir, { clock: () => ahead * 1000 });
    await other.publishCrl({ force: true });
    expect(await publishedCrlNumber(dir)).toBe(ahead);
    const a = await pair(m);
    await m.revokeDevice(a.deviceId, 'x');
    expect(await publishedCrlNumber(dir)).toBe(ahead + 1);
    await writeFile(path.join(dir, CRL_FILE_NAME), 'not a CRL');
    await m.publishCrl({ force: true });
    expect((await published()).revoked.map((e) => e.serialHex)).toEqual([a.serialHex]);
  });

  it('reads the number again after an in-place rewrite, even one within the clock tick of the last read', async () => {
    const m = await openFsManager(dir);
    const file = path.join(dir, CRL_FILE_NAME);
    const mine = await readFile(file, 'utf8');
    const ahead = Math.floor(Date.now() / 1000) + 1_000_000;
    const other = await openFsManager(dir, { clock: () => ahead * 1000 });
    await other.publishCrl({ force: true });
    const theirs = await readFile(file, 'utf8');
    expect(await publishedCrlNumber(dir)).toBe(ahead);
    // Same inode, likely the same size and file times: only the contents tell.
    await writeFile(file, mine);
    expect(await publishedCrlNumber(dir)).toBe(parseCrl(mine).crlNumber);
    await writeFile(file, theirs);
    expect(await publishedCrlNumber(dir)).toBe(ahead);
    await m.publishCrl({ force: true });
    expect((await published()).crlNumber).toBe(ahead + 1);
  });

  it('ends up listing every revocation when two managers revoke at once', async () => {
    const m1 = await openFsManager(dir);
    const devices = [];
    for (let i = 0; i < 6; i++) devices.push(await pair(m1));
    const m2 = await openFsManager(dir);
    await Promise.all(devices.map((d, i) => (i % 2 === 0 ? m1 : m2).revokeDevice(d.deviceId, 'batch')));
    expect((await published()).revoked.map((e) => e.serialHex).sort()).toEqual(devices.map((d) => d.serialHex).sort());
  });

  it('catches up with another process before writing, so a publisher behind the state never rolls the file back', async () => {
    const behind = await openFsManager(dir);
    const other = await openFsManager(dir);
    const a = await pair(other);
    await other.revokeDevice(a.deviceId, 'lost');
    // `behind` has not loaded the pairing or the revocation; its re-issue must still list the serial.
    await behind.publishCrl({ force: true });
    expect((await published()).revoked.map((e) => e.serialHex)).toEqual([a.serialHex]);
  });

  it('is not written by a read-only issue', async () => {
    await openFsManager(dir);
    const before = await stat(path.join(dir, CRL_FILE_NAME));
    const beforeNumber = await publishedCrlNumber(dir);
    const { key } = await resolveStoreKey(dir, null);
    const reader = await IdentityManager.openExisting({ store: await FilesystemSecretStore.open(dir, { key }), stateDir: dir, journalKey: key });
    const issued = parseCrl(await reader!.issueCrl());
    expect(issued.crlNumber).toBeGreaterThan(beforeNumber!);
    expect(await publishedCrlNumber(dir)).toBe(beforeNumber);
    expect((await stat(path.join(dir, CRL_FILE_NAME))).mtimeMs).toBe(before.mtimeMs);
  });

  it('is never written for an in-memory state', async () => {
    const m = await IdentityManager.open({ store: new InMemorySecretStore(), stateDir: null });
    const a = await pair(m);
    await m.revokeDevice(a.deviceId, 'x');
    expect(parseCrl(await m.publishCrl()).revoked.map((e) => e.serialHex)).toEqual([a.serialHex]);
    expect(await readCrlFile(dir)).toBeNull();
  });
});
