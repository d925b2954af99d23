// `palyra state migrate --from-dir DIR --to URL` (issue 15): a file state with 100 paired devices (made directly
// through GatewayAdmin/IdentityManager, a revocation and an admin role among them) copied into an empty database on
// the suite's PostgreSQL 15; the audit chain verifies there with the source's head; a replica on the new database
// accepts a device's old certificate over mTLS (RegisterNode ACCEPTED) and still refuses the revoked one; a second
// migration into the same database is state_not_empty and changes nothing; usage errors exit 2.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';
import { certifiedClient, newRawDevice, rpc } from '../helpers/raw-pairing.js';

const cleanups: (() => Promise<void> | void)[] = [];
let server: PostgresServer | undefined;

async function newDir(prefix: string): Promise<string> {
  const { dir, cleanup } = await tempDir(prefix);
  cleanups.push(cleanup);
  return dir;
}

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

afterAll(async () => {
  await server?.stop();
}, 120_000);

describeWithPostgres('state migrate --from-dir into PostgreSQL', () => {
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);

  it('copies 100 paired devices, revocations, roles and the audit chain; an old certificate works against a replica on the database', async () => {
    // The single gateway's file state (key file mode, as the CLI in tests uses).
    const fromDir = await newDir('palyra-migrate-src-');
    const admin = await GatewayAdmin.open({ stateDir: fromDir, keychain: null });
    const kept = await newRawDevice();
    const keptIssued = await admin.identity.finalizeVerifiedPairing({
      verified: { deviceId: kept.deviceId, clientKind: 'node', identityFingerprint: kept.identity.fingerprint, signingPublicKeyHex: kept.identity.summary().signingPublicKeyHex, name: 'kept' },
      csrDer: kept.csrDer,
    });
    const revokedDevice = await newRawDevice();
    const revokedIssued = await admin.identity.finalizeVerifiedPairing({
      verified: { deviceId: revokedDevice.deviceId, clientKind: 'node', identityFingerprint: revokedDevice.identity.fingerprint, signingPublicKeyHex: revokedDevice.identity.summary().signingPublicKeyHex, name: 'lost' },
      csrDer: revokedDevice.csrDer,
    });
    // 100 paired once the lost one is revoked.
    for (let i = 0; i < 99; i++) {
      const identity = DeviceIdentity.generate();
      await admin.identity.finalizeVerifiedPairing({
        verified: { deviceId: identity.deviceId, clientKind: 'desktop', identityFingerprint: identity.fingerprint, signingPublicKeyHex: identity.summary().signingPublicKeyHex, name: `device ${i}` },
        csrDer: null,
      });
    }
    await admin.identity.setDeviceRole(kept.deviceId, 'admin', true);
    await admin.identity.revokeDevice(revokedDevice.deviceId, 'lost');
    await admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'test', gatewayAddresses: ['127.0.0.1:1'], gatewayName: null });
    const caBefore = admin.identity.caFingerprint;
    await admin.close();
    const sourceVerify = await runCliJson(['audit', 'verify', '--state-dir', fromDir]);
    expect(sourceVerify.code, sourceVerify.stderr).toBe(0);
    const sourceHead = (sourceVerify.json as { head: { seq: number; hash: string } }).head;

    const url = await server!.createDatabase('migrate_target');
    const keyFile = path.join(await newDir('palyra-migrate-key-'), 'store.key');
    const migrated = await runCliJson(['state', 'migrate', '--from-dir', fromDir, '--to', url, '--store-key-file', keyFile]);
    expect(migrated.code, migrated.stdout + migrated.stderr).toBe(0);
    expect(migrated.json).toMatchObject({
      migrated: true,
      from_dir: fromDir,
      paired_devices: 100,
      revoked_devices: 1,
      audit: { entries: sourceHead.seq, head: sourceHead, target_head: { seq: sourceHead.seq + 1 } },
      store_key: { location: 'file', path: keyFile },
    });
    expect(migrated.stdout).not.toMatch(/BEGIN|PRIVATE/);
    // The target's key is the source's (the CA seal and the audit chain's MAC key derive from it).
    expect(Buffer.from(await readFile(keyFile)).equals(await readFile(path.join(fromDir, '.store-key.v1')))).toBe(true);

    const db = ['--database-url', url, '--store-key-file', keyFile, '--state-dir', await newDir('palyra-migrate-cli-')];
    const verified = await runCliJson(['state', 'verify', ...db]);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.json).toMatchObject({ ok: true, audit: { entries: sourceHead.seq + 1 } });
    const tail = await runCliJson(['audit', 'tail', '--count', '2', ...db]);
    const entries = (tail.json as { entries: { seq: number; hash: string; event: string; fields: Record<string, unknown> }[] }).entries;
    expect(entries[0]).toMatchObject({ seq: sourceHead.seq, hash: sourceHead.hash });
    expect(entries[1]).toMatchObject({ event: 'state_migrated', fields: { paired_devices: 100, revoked_devices: 1, audit_entries: sourceHead.seq, audit_head: sourceHead.hash } });
    const listed = await runCliJson(['devices', 'list', ...db]);
    const devices = (listed.json as { devices: { device_id: string; status: string; roles?: string[] }[] }).devices;
    expect(devices.filter((d) => d.status === 'paired')).toHaveLength(100);
    expect(devices.find((d) => d.device_id === revokedDevice.deviceId)?.status).toBe('revoked');
    expect(devices.find((d) => d.device_id === kept.deviceId)?.roles).toEqual(['admin']);
    const codes = await runCliJson(['pairing', 'list', ...db]);
    expect((codes.json as { codes: unknown[] }).codes).toHaveLength(1);

    // A replica on the new database: the same CA, the old certificate accepted, the revoked one refused.
    const replica = await startGatewayProcess(await newDir('palyra-migrate-replica-'), ['--database-url', url, '--store-key-file', keyFile]);
    cleanups.push(() => replica.kill());
    expect(replica.ready.ca_fingerprint).toBe(caBefore);
    const endpoint = { listen: replica.ready.listen, caCertificatePem: keptIssued.caCertificatePem };
    const client = certifiedClient(endpoint, keptIssued.certificate.certificatePem, kept.tlsPrivateKeyPem);
    cleanups.push(() => {
      client.close();
    });
    const registered = await rpc.register(client, { v: 1, device_id: { ulid: kept.deviceId }, platform: 'test' });
    expect(registered.ok, JSON.stringify(registered)).toBe(true);
    expect(registered.ok ? registered.response.accepted : null).toBe(true);
    const revokedClient = certifiedClient(endpoint, revokedIssued.certificate.certificatePem, revokedDevice.tlsPrivateKeyPem);
    const refused = await rpc.register(revokedClient, { v: 1, device_id: { ulid: revokedDevice.deviceId }, platform: 'test' });
    revokedClient.close();
    expect(refused.ok).toBe(false);

    // Into a database that is no longer empty: refused, nothing changes.
    const before = await runCliJson(['audit', 'verify', ...db]);
    const again = await runCliJson(['state', 'migrate', '--from-dir', fromDir, '--to', url, '--store-key-file', keyFile]);
    expect(again.code).toBe(1);
    expect(again.json).toMatchObject({ error: { code: 'state_not_empty' } });
    const after = await runCliJson(['audit', 'verify', ...db]);
    expect(after.json).toEqual(before.json);
  }, 180_000);

  it('usage errors exit 2; a missing source is not_found; a key file with another key is refused before anything is copied', async () => {
    const url = await server!.createDatabase('migrate_usage');
    const noTo = await runCliJson(['state', 'migrate', '--from-dir', '/tmp']);
    expect(noTo.code).toBe(2);
    expect(noTo.json).toMatchObject({ error: { code: 'usage' } });
    const noFrom = await runCliJson(['state', 'migrate', '--to', url]);
    expect(noFrom.code).toBe(2);
    const both = await runCliJson(['state', 'migrate', '--from-dir', '/tmp', '--to', url, '--database-url', url]);
    expect(both.code).toBe(2);
    const badUrl = await runCliJson(['state', 'migrate', '--from-dir', '/tmp', '--to', 'mysql://x@127.0.0.1/db']);
    expect(badUrl.json).toMatchObject({ error: { code: 'invalid_argument' } });
    const missing = await runCliJson(['state', 'migrate', '--from-dir', path.join(await newDir('palyra-migrate-none-'), 'absent'), '--to', url, '--store-key-file', '/tmp/unused.key']);
    expect(missing.code).toBe(1);
    expect(missing.json).toMatchObject({ error: { code: 'not_found' } });

    const fromDir = await newDir('palyra-migrate-src-');
    expect((await runCli(['pairing', 'code', '--method', 'pin', '--state-dir', fromDir])).code).toBe(0);
    const keyDir = await newDir('palyra-migrate-key-');
    const otherKey = path.join(keyDir, 'other.key');
    // A key file made for another database.
    expect((await runCli(['state', 'migrate', '--database-url', await server!.createDatabase('migrate_other')])).code).toBe(0);
    expect((await runCli(['pairing', 'code', '--method', 'pin', '--database-url', server!.url('migrate_other'), '--store-key-file', otherKey, '--state-dir', keyDir])).code).toBe(0);
    const mismatch = await runCliJson(['state', 'migrate', '--from-dir', fromDir, '--to', url, '--store-key-file', otherKey]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.json).toMatchObject({ error: { code: 'invalid_argument' } });
    // Nothing was copied: the same migration with a fresh key file succeeds.
    const ok = await runCliJson(['state', 'migrate', '--from-dir', fromDir, '--to', url, '--store-key-file', path.join(keyDir, 'new.key')]);
    expect(ok.code, ok.stdout).toBe(0);
  }, 120_000);
});
