// Gateway cluster on PostgreSQL (issue 15): a real PostgreSQL 15 started by the suite, three `palyra gateway run
// --database-url` replicas on their own 127.0.0.1 ports (each with its own --state-dir for gateway.v1.json and
// crl.pem), and `palyra` CLIs against the same database. Pairing spread over replicas, a CLI revocation ending a
// stream on another replica, concurrent approvals, database faults, and the coded errors of bad URLs.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCli, runCliJson } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { cleanedDir, startPgCluster } from '../helpers/pg-cluster.js';
import type { PgCluster } from '../helpers/pg-cluster.js';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';
import {
  anonymousClient,
  beginRequest,
  certifiedClient,
  completeRequest,
  newRawDevice,
  ok,
  openRegisteredStream,
  rpc,
} from '../helpers/raw-pairing.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
let server: PostgresServer | undefined;
let databases = 0;

type Cluster = PgCluster;

const newDir = (prefix: string): Promise<string> => cleanedDir(cleanups, prefix);

async function cluster(replicas: number): Promise<Cluster> {
  databases += 1;
  return startPgCluster({ server: server!, database: `cluster_${databases}`, replicas, cleanups });
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

describeWithPostgres('gateway cluster on PostgreSQL', () => {
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);

  it('three replicas share one CA; a request made on A is approved by the CLI and delivered by the status poll on C; a CLI revocation ends the stream on B', async () => {
    const c = await cluster(3);
    const [a, b, cc] = c.replicas as [Cluster['replicas'][0], Cluster['replicas'][0], Cluster['replicas'][0]];
    for (const r of c.replicas) {
      expect(r.ready).toMatchObject({ event: 'gateway.ready', mtls_required: true, backend: 'postgres' });
      expect(r.ready.ca_fingerprint).toBe(a.ready.ca_fingerprint);
    }
    expect(new Set(c.replicas.map((r) => r.ready.listen)).size).toBe(3);

    // A code minted by the CLI against the database (QR address: replica A's, from its state dir).
    const minted = await runCliJson(['pairing', 'code', ...c.db(a.stateDir)]);
    expect(minted.code, minted.stderr).toBe(0);
    const { code } = minted.json as { code: string };
    const device = await newRawDevice();
    const caCertificatePem = (await runCli(['ca', 'export', ...c.db()])).stdout;
    const endpoint = (r: GatewayProcess) => ({ listen: r.ready.listen, caCertificatePem });
    const clientA = anonymousClient(endpoint(a));
    cleanups.push(() => {
      clientA.close();
    });
    const begin = await ok(rpc.begin(clientA, beginRequest(device, { qr: code })));
    const complete = await ok(rpc.complete(clientA, completeRequest(device, begin, { proof: code })));
    expect(complete.reason).toBe('pending_approval');

    // The request is in the shared state: listed from the database, approved by a CLI.
    const listed = await runCliJson(['pairing', 'list', ...c.db()]);
    expect(JSON.stringify(listed.json)).toContain(begin.session_id);
    const approved = await runCliJson(['pairing', 'approve', begin.session_id, ...c.db()]);
    expect(approved.code, approved.stderr).toBe(0);

    // The status long-poll on replica C hands out the certificate.
    const clientC = anonymousClient(endpoint(cc));
    cleanups.push(() => {
      clientC.close();
    });
    const status = await ok(rpc.status(clientC, { v: 1, session_id: begin.session_id, device_id: { ulid: device.deviceId } }));
    expect(status.status).toBe('completed');
    expect(status.mtls_client_certificate_pem).toContain('BEGIN CERTIFICATE');

    // The device streams to replica B; a revocation by a CLI ends it there.
    const clientB = certifiedClient(endpoint(b), status.mtls_client_certificate_pem, device.tlsPrivateKeyPem);
    cleanups.push(() => {
      clientB.close();
    });
    const { ended } = await openRegisteredStream(clientB, device.deviceId, cleanups);
    const revoked = await runCli(['devices', 'revoke', device.deviceId, '--reason', 'lost', ...c.db()]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const failure = await withDeadline(ended, { what: 'the revoked stream on replica B to end' });
    expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED]).toContain(failure?.code);

    // Every replica refuses the certificate from now on.
    for (const r of c.replicas) {
      const client = certifiedClient(endpoint(r), status.mtls_client_certificate_pem, device.tlsPrivateKeyPem);
      const again = await rpc.register(client, { v: 1, device_id: { ulid: device.deviceId }, platform: 'test' });
      client.close();
      expect(again.ok).toBe(false);
    }

    // The audit chain in the database verifies end to end and holds the story.
    const verified = await runCliJson(['audit', 'verify', ...c.db()]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.json).toMatchObject({ ok: true });
    const tail = await runCliJson(['audit', 'tail', '--count', '200', ...c.db()]);
    const events = (tail.json as { entries: { event: string }[] }).entries.map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['ca_created', 'code_minted', 'pairing_approved', 'device_revoked', 'gateway_started']));
    expect(events.filter((e) => e === 'ca_created')).toHaveLength(1);
  }, 120_000);

  it('two approvals of one request racing from two CLIs: exactly one succeeds', async () => {
    const c = await cluster(1);
    const [a] = c.replicas as [Cluster['replicas'][0]];
    const minted = await runCliJson(['pairing', 'code', ...c.db(a.stateDir)]);
    const { code } = minted.json as { code: string };
    const caCertificatePem = (await runCli(['ca', 'export', ...c.db()])).stdout;
    const client = anonymousClient({ listen: a.ready.listen, caCertificatePem });
    cleanups.push(() => {
      client.close();
    });
    const device = await newRawDevice();
    const begin = await ok(rpc.begin(client, beginRequest(device, { qr: code })));
    await ok(rpc.complete(client, completeRequest(device, begin, { proof: code })));
    const results = await Promise.all([
      runCliJson(['pairing', 'approve', begin.session_id, ...c.db()]),
      runCliJson(['pairing', 'reject', begin.session_id, ...c.db()]),
      runCliJson(['pairing', 'approve', begin.session_id, ...c.db()]),
    ]);
    const succeeded = results.filter((r) => r.code === 0);
    expect(succeeded, results.map((r) => r.stdout).join('\n')).toHaveLength(1);
    for (const r of results.filter((x) => x.code !== 0)) expect(r.json).toMatchObject({ error: { code: 'pairing_request_not_pending' } });
    const tail = await runCliJson(['audit', 'tail', '--count', '100', ...c.db()]);
    const decisions = (tail.json as { entries: { event: string }[] }).entries.filter((e) => e.event === 'pairing_approved' || e.event === 'pairing_rejected');
    expect(decisions).toHaveLength(1);
  }, 120_000);

  it('a database restart: mutations fail fast with state_unavailable while it is down, streams keep working, and everything resumes by itself', async () => {
    const c = await cluster(2);
    const [a, b] = c.replicas as [Cluster['replicas'][0], Cluster['replicas'][0]];
    const minted = await runCliJson(['pairing', 'code', ...c.db(a.stateDir)]);
    const { code } = minted.json as { code: string };
    const caCertificatePem = (await runCli(['ca', 'export', ...c.db()])).stdout;
    const anon = anonymousClient({ listen: a.ready.listen, caCertificatePem });
    cleanups.push(() => {
      anon.close();
    });
    const device = await newRawDevice();
    const begin = await ok(rpc.begin(anon, beginRequest(device, { qr: code })));
    await ok(rpc.complete(anon, completeRequest(device, begin, { proof: code })));
    expect((await runCli(['pairing', 'approve', begin.session_id, ...c.db()])).code).toBe(0);
    const status = await ok(rpc.status(anon, { v: 1, session_id: begin.session_id, device_id: { ulid: device.deviceId } }));
    const streamClient = certifiedClient({ listen: b.ready.listen, caCertificatePem }, status.mtls_client_certificate_pem, device.tlsPrivateKeyPem);
    cleanups.push(() => {
      streamClient.close();
    });
    const { ended } = await openRegisteredStream(streamClient, device.deviceId, cleanups);

    await server!.stopServer();
    let restarted = false;
    cleanups.push(async () => {
      if (!restarted) await server!.startServer();
    });
    const down = await runCliJson(['pairing', 'code', ...c.db(a.stateDir)]);
    expect(down.code).toBe(1);
    expect(down.json).toMatchObject({ error: { code: 'state_unavailable' } });
    expect((down.json as { error: { message: string } }).error.message).not.toContain('BEGIN');
    // The stream on B is still up: a handshake with the certificate still works on A while the database is down.
    const during = certifiedClient({ listen: a.ready.listen, caCertificatePem }, status.mtls_client_certificate_pem, device.tlsPrivateKeyPem);
    const registered = await rpc.register(during, { v: 1, device_id: { ulid: device.deviceId }, platform: 'test' });
    during.close();
    expect(registered.ok, JSON.stringify(registered)).toBe(true);

    await server!.startServer();
    restarted = true;
    // The replicas resume by themselves: a revocation made now ends the stream on B (LISTEN reconnected + resync).
    const revoked = await waitFor(
      async () => {
        const r = await runCli(['devices', 'revoke', device.deviceId, ...c.db()]);
        return r.code === 0 ? r : null;
      },
      { what: 'a revocation once the database is back' },
    );
    expect(revoked.code).toBe(0);
    const failure = await withDeadline(ended, { what: 'the stream on B to end after the database came back' });
    expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED]).toContain(failure?.code);
  }, 120_000);

  it('bad URL, wrong password and missing database are coded errors; state migrate applies the schema once', async () => {
    const keyDir = await newDir('palyra-pg-key-');
    const keyFile = path.join(keyDir, 'k');
    const stateDir = await newDir('palyra-pg-cli-');
    const base = ['--store-key-file', keyFile, '--state-dir', stateDir];
    const malformed = await runCliJson(['devices', 'list', '--database-url', 'not a url', ...base]);
    expect(malformed.code).toBe(1);
    expect(malformed.json).toMatchObject({ error: { code: 'invalid_argument' } });
    const wrongScheme = await runCliJson(['state', 'migrate', '--database-url', 'mysql://x@127.0.0.1/db', ...base]);
    expect(wrongScheme.json).toMatchObject({ error: { code: 'invalid_argument' } });

    await server!.createPasswordUser('alice', 'right-password');
    const wrongPassword = await runCliJson(['pairing', 'code', '--method', 'pin', '--database-url', `postgres://alice:wrong-password@127.0.0.1:${server!.port}/postgres`, ...base]);
    expect(wrongPassword.code).toBe(1);
    expect(wrongPassword.json).toMatchObject({ error: { code: 'state_unavailable' } });
    expect(wrongPassword.stdout).not.toContain('wrong-password');
    expect((wrongPassword.json as { error: { message: string } }).error.message).toContain('password authentication failed');

    const missing = await runCliJson(['pairing', 'code', '--method', 'pin', '--database-url', server!.url('no_such_db'), ...base]);
    expect(missing.code).toBe(1);
    expect(missing.json).toMatchObject({ error: { code: 'state_unavailable' } });
    expect((missing.json as { error: { message: string } }).error.message).toContain('does not exist');

    const nobody = await runCliJson(['devices', 'list', '--database-url', 'postgres://palyra@127.0.0.1:1/db', ...base]);
    expect(nobody.json).toMatchObject({ error: { code: 'state_unavailable' } });

    const url = await server!.createDatabase('migrate_check');
    const first = await runCliJson(['state', 'migrate', '--database-url', url], { env: cliEnv() });
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({ migrated: true, applied: [1, 2], schema_version: 2 });
    const again = await runCliJson(['state', 'migrate', '--database-url', url]);
    expect(again.json).toMatchObject({ migrated: true, applied: [], schema_version: 2 });
    // Through the environment too.
    const viaEnv = await runCliJson(['state', 'migrate'], { env: cliEnv({ PALYRA_DATABASE_URL: url }) });
    expect(viaEnv.json).toMatchObject({ applied: [] });

    // A second key against a database set up with the first: refused, clearly.
    expect((await runCli(['pairing', 'code', '--method', 'pin', '--database-url', url, ...base])).code).toBe(0);
    const otherKey = await runCliJson(['devices', 'list', '--database-url', url, '--store-key-file', path.join(keyDir, 'other'), '--state-dir', stateDir]);
    expect(otherKey.json).toMatchObject({ error: { code: 'not_found' } });
    const createOther = await runCliJson(['pairing', 'code', '--method', 'pin', '--database-url', url, '--store-key-file', path.join(keyDir, 'other'), '--state-dir', stateDir]);
    expect(createOther.json).toMatchObject({ error: { code: 'store_decrypt_failed' } });
  }, 120_000);
});
