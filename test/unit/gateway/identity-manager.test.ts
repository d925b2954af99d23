import { copyFile, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseCertificate } from '../../../main/core/certificates.js';
import { PalyraError } from '../../../main/core/errors.js';
import { CA_STATE_KEY, IDENTITY_STATE_KEY, IdentityManager } from '../../../main/gateway/identity-manager.js';
import { InMemorySecretStore } from '../../../main/store/secret-store.js';
import type { SecretStore } from '../../../main/store/secret-store.js';
import { csrFor, openFsManager, randomVerifiedDevice, tempDir } from '../../helpers/identity.js';

async function pair(manager: IdentityManager, kind: 'desktop' | 'node' | 'cli' = 'desktop') {
  const verified = randomVerifiedDevice(kind);
  const result = await manager.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
  return { verified, result };
}

function codeOf(fn: () => unknown): Promise<string | undefined> {
  return Promise.resolve()
    .then(fn)
    .then(
      () => undefined,
      (e: unknown) => (e instanceof PalyraError ? e.code : `not a PalyraError: ${String(e)}`),
    );
}

describe('IdentityManager on a state directory', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  it('keeps CA, paired device, sequence and one fingerprint across a new manager (item 34)', async () => {
    const a = await openFsManager(dir);
    const { verified, result } = await pair(a);
    expect(result.privateKeyPem).toBeNull();
    const b = await openFsManager(dir);
    expect(b.caCertificatePem).toBe(a.caCertificatePem);
    const device = b.pairedDevice(verified.deviceId);
    expect(device?.current_certificate.fingerprint).toBe(result.certificate.fingerprint);
    expect(device?.current_certificate.sequence).toBe(result.certificate.sequence);
    expect(device?.certificate_fingerprints).toEqual([result.certificate.fingerprint]);
    expect(device?.identity_fingerprint).toBe(verified.identityFingerprint);
  });

  it('keeps revoked device ids and revoked fingerprints across a reload (item 35)', async () => {
    const a = await openFsManager(dir);
    const { verified, result } = await pair(a);
    await a.revokeDevice(verified.deviceId, 'lost laptop');
    const banned = randomVerifiedDevice().deviceId;
    await a.revokeDevice(banned, 'pre-emptive');
    const b = await openFsManager(dir);
    expect(b.listRevokedDevices().map((r) => r.device_id).sort()).toEqual([verified.deviceId, banned].sort());
    expect(b.revokedCertificateFingerprints()).toEqual(a.revokedCertificateFingerprints());
    expect(b.isCertificateRevoked(result.certificate.fingerprint)).toBe(true);
    expect(b.pairedDevice(verified.deviceId)).toBeUndefined();
  });

  it('never writes a private key into the bundle, only into the CA state (item 36)', async () => {
    const store = new InMemorySecretStore();
    const m = await IdentityManager.open({ store, stateDir: null });
    await pair(m);
    const bundle = new TextDecoder().decode(await store.readSecret(IDENTITY_STATE_KEY));
    const ca = new TextDecoder().decode(await store.readSecret(CA_STATE_KEY));
    expect(bundle).not.toContain('private_key_pem');
    expect(bundle).not.toContain('PRIVATE KEY');
    expect(ca).toContain('private_key_pem');
    expect(JSON.parse(bundle)).toHaveProperty('generation');
  });

  it('persists both devices when two managers on one directory pair different devices (item 37)', async () => {
    const a = await openFsManager(dir);
    const b = await openFsManager(dir);
    const one = await pair(a);
    const two = await pair(b);
    const c = await openFsManager(dir);
    expect(c.pairedDevice(one.verified.deviceId)).toBeDefined();
    expect(c.pairedDevice(two.verified.deviceId)).toBeDefined();
    expect(await a.refresh()).toBe(true);
    expect(a.pairedDevice(two.verified.deviceId)).toBeDefined();
    expect(two.result.certificate.sequence).toBeGreaterThan(one.result.certificate.sequence);
  });

  it('revokes the previous fingerprint on rotation, not the new one (item 38)', async () => {
    const m = await openFsManager(dir);
    const { verified, result } = await pair(m);
    const rotated = await m.forceRotate(verified.deviceId, { csrDer: await csrFor(verified.deviceId) });
    expect(m.isCertificateRevoked(result.certificate.fingerprint)).toBe(true);
    expect(m.isCertificateRevoked(rotated.certificate.fingerprint)).toBe(false);
    expect(m.pairedDevice(verified.deviceId)?.certificate_fingerprints).toEqual([result.certificate.fingerprint, rotated.certificate.fingerprint]);
    expect(m.deviceIdForCertificateFingerprint(rotated.certificate.fingerprint)).toBe(verified.deviceId);
    expect(m.deviceIdForCertificateFingerprint(result.certificate.fingerprint)).toBeUndefined();
  });

  it('revokes the superseded fingerprint when the same device pairs again (item 39)', async () => {
    const m = await openFsManager(dir);
    const { verified, result } = await pair(m);
    const again = await m.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
    expect(m.isCertificateRevoked(result.certificate.fingerprint)).toBe(true);
    expect(m.isCertificateRevoked(again.certificate.fingerprint)).toBe(false);
    expect(m.pairedDevice(verified.deviceId)?.certificate_fingerprints).toEqual([again.certificate.fingerprint]);
  });

  it('rotates when due only, and revokes the old certificate then (item 40 adapted)', async () => {
    const m = await openFsManager(dir);
    const { verified, result } = await pair(m);
    const reloaded = await openFsManager(dir);
    const fresh = await reloaded.rotateIfDue(verified.deviceId, { csrDer: await csrFor(verified.deviceId) });
    expect(fresh.rotated).toBe(false);
    const later = result.certificate.expiresAtUnixMs - 60_000;
    const due = await reloaded.rotateIfDue(verified.deviceId, { csrDer: await csrFor(verified.deviceId), now: later });
    expect(due.rotated).toBe(true);
    expect(due.result!.certificate.sequence).toBeGreaterThan(result.certificate.sequence);
    expect(reloaded.isCertificateRevoked(result.certificate.fingerprint)).toBe(true);
  });

  it('refuses to rotate on a stale manager after another manager revoked the device (item 41)', async () => {
    const a = await openFsManager(dir);
    const b = await openFsManager(dir);
    const { verified } = await pair(a);
    await b.revokeDevice(verified.deviceId, 'revoked elsewhere');
    expect(await codeOf(async () => a.rotateIfDue(verified.deviceId, { csrDer: await csrFor(verified.deviceId) }))).toBe('device_revoked');
    expect(await codeOf(async () => a.forceRotate(verified.deviceId, { csrDer: await csrFor(verified.deviceId) }))).toBe('device_revoked');
  });

  it('refuses to finalize a pairing for a device revoked while it was pending', async () => {
    const m = await openFsManager(dir);
    const verified = randomVerifiedDevice();
    await m.revokeDevice(verified.deviceId, 'banned');
    expect(await codeOf(async () => m.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) }))).toBe('device_revoked');
    expect(m.pairedDevice(verified.deviceId)).toBeUndefined();
  });

  it('answers device_not_paired for rotating an unknown device', async () => {
    const m = await openFsManager(dir);
    const id = randomVerifiedDevice().deviceId;
    expect(await codeOf(async () => m.forceRotate(id, { csrDer: await csrFor(id) }))).toBe('device_not_paired');
  });

  it('removes a device without banning it and unbans a banned one', async () => {
    const m = await openFsManager(dir);
    const { verified, result } = await pair(m);
    expect(await m.removePairedDevice(verified.deviceId)).toBe(true);
    expect(await m.removePairedDevice(verified.deviceId)).toBe(false);
    expect(m.isCertificateRevoked(result.certificate.fingerprint)).toBe(true);
    expect(m.isDeviceRevoked(verified.deviceId)).toBe(false);
    await m.revokeDevice(verified.deviceId, 'x');
    expect(await m.clearRevokedDevice(verified.deviceId)).toBe(true);
    expect(m.isDeviceRevoked(verified.deviceId)).toBe(false);
    expect(m.isCertificateRevoked(result.certificate.fingerprint)).toBe(true);
  });

  it('revoking a current certificate by fingerprint unpairs its device and lists its serial in the CRL', async () => {
    const m = await openFsManager(dir);
    const { verified, result } = await pair(m);
    const { deviceId } = await m.revokeCertificate(result.certificate.fingerprint, 'key leaked');
    expect(deviceId).toBe(verified.deviceId);
    expect(m.pairedDevice(verified.deviceId)).toBeUndefined();
    const crl = await m.crlPem();
    expect(crl).toContain('-----BEGIN X509 CRL-----');
    const { X509Crl } = await import('@peculiar/x509');
    const parsed = new X509Crl(crl);
    expect(parsed.entries.map((e) => e.serialNumber.toLowerCase())).toContain(result.certificate.serialHex.toLowerCase());
  });

  it('issues client certificates bound to the device id', async () => {
    const m = await openFsManager(dir);
    const { verified, result } = await pair(m);
    const info = parseCertificate(result.certificate.certificatePem);
    expect(info.deviceId).toBe(verified.deviceId);
    expect(info.subjectCommonName).toBe(`Palyra Device ${verified.deviceId}`);
  });

  it('reports a rollback when the state on disk goes back to an older generation', async () => {
    const m = await openFsManager(dir, { compactEvery: 1 });
    await pair(m);
    const saved = path.join(dir, 'saved');
    const files = (await readdir(dir)).filter((f) => !f.startsWith('.') && !f.startsWith('audit'));
    await import('node:fs/promises').then((fs) => fs.mkdir(saved));
    for (const f of files) await copyFile(path.join(dir, f), path.join(saved, f));
    await pair(m);
    await pair(m);
    for (const f of files) await copyFile(path.join(saved, f), path.join(dir, f));
    expect(await codeOf(() => m.refresh())).toBe('state_rollback');
  });

  it('prunes revocations of certificates that have expired, keeping the ban and unexpired ones', async () => {
    let now = Date.now();
    const m = await openFsManager(dir, { clock: () => now, certificateValidityMs: 60_000 });
    const expiring = await pair(m);
    await m.revokeDevice(expiring.verified.deviceId, 'lost');
    now += 120_000; // the first certificate has expired by now
    const fresh = await pair(m);
    await m.revokeCertificate(fresh.result.certificate.fingerprint, 'leaked');
    await m.pruneExpiredRevocations();
    expect(m.isCertificateRevoked(expiring.result.certificate.fingerprint)).toBe(false);
    expect(m.isCertificateRevoked(fresh.result.certificate.fingerprint)).toBe(true);
    expect(m.isDeviceRevoked(expiring.verified.deviceId)).toBe(true);
  });

  it('records every mutation in a hash-chained audit log without secrets', async () => {
    const m = await openFsManager(dir);
    const { verified } = await pair(m);
    await m.revokeDevice(verified.deviceId, 'audit me');
    const check = await m.auditLog!.verify();
    expect(check.ok).toBe(true);
    const events = (await m.auditLog!.tail(10)).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['ca_created', 'pairing_finalized', 'device_revoked']));
    const raw = await readFile(path.join(dir, 'audit.v1.jsonl'), 'utf8');
    expect(raw).not.toContain('PRIVATE KEY');
  });
});

describe('IdentityManager persistence faults', () => {
  it('leaves the old sequence and revoked set when store writes fail during rotation (item 42)', async () => {
    const inner = new InMemorySecretStore();
    let failWrites = false;
    const store: SecretStore = {
      writeSecret: (k, v) => (failWrites ? Promise.reject(new Error('disk full')) : inner.writeSecret(k, v)),
      readSecret: (k) => inner.readSecret(k),
      deleteSecret: (k) => inner.deleteSecret(k),
    };
    const m = await IdentityManager.open({ store, stateDir: null });
    const { verified, result } = await pair(m);
    const revokedBefore = m.revokedCertificateFingerprints();
    failWrites = true;
    await expect(m.forceRotate(verified.deviceId, { csrDer: await csrFor(verified.deviceId) })).rejects.toThrow();
    failWrites = false;
    const reloaded = await IdentityManager.open({ store, stateDir: null });
    expect(reloaded.pairedDevice(verified.deviceId)?.current_certificate.sequence).toBe(result.certificate.sequence);
    expect(reloaded.revokedCertificateFingerprints()).toEqual(revokedBefore);
    expect(m.pairedDevice(verified.deviceId)?.current_certificate.fingerprint).toBe(result.certificate.fingerprint);
  });
});
