// Pairing sessions shared by every gateway process on one state (issue 15): three `palyra gateway run
// --database-url` replicas on a real PostgreSQL 15 — PIN pairing v2 with BeginPinPairingSession on A,
// ExchangePinPake on B, CompletePairingSession on C and the status long-poll on A; a QR session completed twice at
// once on two replicas (exactly one files the request); the session never in the clear in the database; and two
// gateways on one state directory (file backend) sharing a session the same way.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../main/core/device-identity.js';
import { buildDeviceHello, PAIRING_PROTOCOL_VERSION, signCsrBinding } from '../../main/core/handshake.js';
import { pinPairingPakeContext } from '../../main/core/pake-context.js';
import { pinProverSecretAsync } from '../../main/core/pin-hash.js';
import { pinPairingV2Proof } from '../../main/core/pin-pairing-v2.js';
import { proverFinish, proverStart } from '../../main/core/spake2plus.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import { Gateway } from '../../main/gateway/gateway.js';
import type { BeginPinPairingSessionResponse__Output } from '../../main/rpc/generated/palyra/node/v1/BeginPinPairingSessionResponse.js';
import type { ExchangePinPakeResponse__Output } from '../../main/rpc/generated/palyra/node/v1/ExchangePinPakeResponse.js';
import type { CompletePairingSessionResponse__Output, NodeServiceClient } from '../../main/rpc/node-service.js';
import { callUnary } from '../../main/rpc/rpc-errors.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { cleanedDir, startPgCluster } from '../helpers/pg-cluster.js';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';
import { anonymousClient, beginRequest, certifiedClient, completeRequest, newRawDevice, ok, rpc } from '../helpers/raw-pairing.js';
import type { GatewayEndpoint } from '../helpers/raw-pairing.js';

const cleanups: (() => Promise<void> | void)[] = [];
let server: PostgresServer | undefined;
let databases = 0;

function client(endpoint: GatewayEndpoint): NodeServiceClient {
  const c = anonymousClient(endpoint);
  cleanups.push(() => {
    c.close();
  });
  return c;
}

async function cluster(replicas: number) {
  databases += 1;
  const started = await startPgCluster({ server: server!, database: `sessions_${databases}`, replicas, cleanups });
  const caCertificatePem = (await runCli(['ca', 'export', ...started.db()])).stdout;
  return { ...started, caCertificatePem, endpoint: (r: GatewayProcess): GatewayEndpoint => ({ listen: r.ready.listen, caCertificatePem }) };
}

/** PIN pairing v2 split over replicas, as an independent client would run it. */
async function pinBegin(c: NodeServiceClient) {
  const identity = DeviceIdentity.generate();
  const kx = generatePairingKeyExchange();
  const commitment = x25519Commitment(kx.publicKey);
  const begin = await callUnary<BeginPinPairingSessionResponse__Output>(
    (md, opts, cb) => c.BeginPinPairingSession({ v: 1, client_kind: 'node', device_id: { ulid: identity.deviceId }, device_x25519_commitment: Buffer.from(commitment) }, md, opts, cb),
    10_000,
  );
  return { identity, kx, commitment, begin };
}

async function pinExchange(c: NodeServiceClient, b: Awaited<ReturnType<typeof pinBegin>>, pin: string, caPin: string) {
  const { shareP, state } = proverStart(await pinProverSecretAsync(pin, new Uint8Array(b.begin.pake_salt)));
  const exchanged = await callUnary<ExchangePinPakeResponse__Output>(
    (md, opts, cb) => c.ExchangePinPake({ v: 1, session_id: b.begin.session_id, pake_share_p: Buffer.from(shareP) }, md, opts, cb),
    10_000,
  );
  const ctx = pinPairingPakeContext({
    sessionId: b.begin.session_id,
    clientKind: 'node',
    gatewayEphemeralPublic: new Uint8Array(b.begin.gateway_ephemeral_public),
    deviceX25519Commitment: b.commitment,
    deviceId: b.identity.deviceId,
    caPin,
  });
  return proverFinish(state, new Uint8Array(exchanged.pake_share_v), new Uint8Array(exchanged.pake_confirm_v), ctx);
}

async function pinComplete(c: NodeServiceClient, b: Awaited<ReturnType<typeof pinBegin>>, finished: { confirmP: Uint8Array; sharedKey: Uint8Array }) {
  const session = {
    sessionId: b.begin.session_id,
    protocolVersion: PAIRING_PROTOCOL_VERSION,
    clientKind: 'node' as const,
    challenge: new Uint8Array(b.begin.challenge),
    gatewayEphemeralPublic: new Uint8Array(b.begin.gateway_ephemeral_public),
  };
  const { hello } = buildDeviceHello({ identity: b.identity, session, proof: pinPairingV2Proof(finished.sharedKey), keyExchange: b.kx });
  const keys = await generateP256KeyPair();
  const csrDer = await createCertificateSigningRequest({ keys, deviceId: b.identity.deviceId });
  const response = await callUnary<CompletePairingSessionResponse__Output>(
    (md, opts, cb) =>
      c.CompletePairingSession(
        {
          v: 1,
          session_id: hello.sessionId,
          device_id: { ulid: b.identity.deviceId },
          client_kind: 'node',
          proof: '',
          device_signing_public: Buffer.from(hello.deviceSigningPublic),
          device_x25519_public: Buffer.from(hello.deviceX25519Public),
          challenge_signature: Buffer.from(hello.challengeSignature),
          transcript_mac: Buffer.from(hello.transcriptMac),
          tls_csr_der: Buffer.from(csrDer),
          tls_csr_signature: Buffer.from(signCsrBinding(b.identity, hello.sessionId, csrDer)),
          pake_confirm_p: Buffer.from(finished.confirmP),
        },
        md,
        opts,
        cb,
      ),
    10_000,
  );
  return { response, keys };
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

describeWithPostgres('pairing sessions shared by replicas on PostgreSQL', () => {
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);

  it('PIN pairing v2: Begin on A, ExchangePinPake on B, Complete on C, status long-poll on A; the session is sealed in the database', async () => {
    const c = await cluster(3);
    const [a, b, cc] = c.replicas as [(typeof c.replicas)[0], (typeof c.replicas)[0], (typeof c.replicas)[0]];
    const minted = await runCliJson(['pairing', 'code', '--method', 'pin', ...c.db(a.stateDir)]);
    expect(minted.code, minted.stderr).toBe(0);
    const { code: pin } = minted.json as { code: string };

    const begun = await pinBegin(client(c.endpoint(a)));
    // While the session is open, nothing of it is readable in the database: the rows are sealed.
    const raw = new pg.Client({ connectionString: c.url });
    await raw.connect();
    cleanups.push(() => raw.end().catch(() => undefined));
    const rows = (await raw.query<{ key: string; sealed: Buffer }>('SELECT key, sealed FROM palyra_secrets')).rows;
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.sealed.includes(Buffer.from(begun.begin.session_id)), row.key).toBe(false);
      expect(row.sealed.includes(Buffer.from(begun.begin.gateway_ephemeral_public).toString('base64')), row.key).toBe(false);
    }

    const finished = await pinExchange(client(c.endpoint(b)), begun, pin, a.ready.ca_pin);
    // A second exchange of the same session, on any replica, is refused: a session answers once.
    const replayShare = proverStart(await pinProverSecretAsync(pin, new Uint8Array(begun.begin.pake_salt))).shareP;
    const again = await callUnary<ExchangePinPakeResponse__Output>(
      (md, opts, cb) => client(c.endpoint(a)).ExchangePinPake({ v: 1, session_id: begun.begin.session_id, pake_share_p: Buffer.from(replayShare) }, md, opts, cb),
      10_000,
    ).then(
      () => null,
      (e: unknown) => e,
    );
    expect((again as { code?: string } | null)?.code).toBe('pairing_session_not_found');

    const { response, keys } = await pinComplete(client(c.endpoint(cc)), begun, finished);
    expect(response.reason).toBe('pending_approval');

    // The long-poll on A is held open until the CLI approves.
    const poll = rpc.status(client(c.endpoint(a)), { v: 1, session_id: begun.begin.session_id, device_id: { ulid: begun.identity.deviceId }, wait_ms: 25_000 }, 30_000);
    const approved = await runCliJson(['pairing', 'approve', begun.begin.session_id, ...c.db()]);
    expect(approved.code, approved.stderr).toBe(0);
    const status = await ok(poll);
    expect(status.status).toBe('completed');
    expect(status.mtls_client_certificate_pem).toContain('BEGIN CERTIFICATE');

    // The certificate works on every replica.
    const { exportPrivateKeyPem } = await import('../../main/core/x509-keys.js');
    const keyPem = await exportPrivateKeyPem(keys.privateKey);
    for (const r of c.replicas) {
      const mtls = certifiedClient(c.endpoint(r), status.mtls_client_certificate_pem, keyPem);
      const registered = await rpc.register(mtls, { v: 1, device_id: { ulid: begun.identity.deviceId }, platform: 'test' });
      mtls.close();
      expect(registered.ok, JSON.stringify(registered)).toBe(true);
    }
    // The consumed session is gone from the shared state: a replayed Complete on B is refused.
    const replay = await pinComplete(client(c.endpoint(b)), begun, finished).then(
      () => null,
      (e: unknown) => e,
    );
    expect((replay as { code?: string } | null)?.code).toBe('pairing_session_not_found');
  }, 120_000);

  it('two ExchangePinPake of one session at once on two replicas: exactly one is answered', async () => {
    const c = await cluster(3);
    const [a, b, cc] = c.replicas as [(typeof c.replicas)[0], (typeof c.replicas)[0], (typeof c.replicas)[0]];
    const minted = await runCliJson(['pairing', 'code', '--method', 'pin', ...c.db(a.stateDir)]);
    const { code: pin } = minted.json as { code: string };
    const begun = await pinBegin(client(c.endpoint(a)));
    const { shareP } = proverStart(await pinProverSecretAsync(pin, new Uint8Array(begun.begin.pake_salt)));
    const exchange = (r: GatewayProcess) =>
      callUnary<ExchangePinPakeResponse__Output>((md, opts, cb) => client(c.endpoint(r)).ExchangePinPake({ v: 1, session_id: begun.begin.session_id, pake_share_p: Buffer.from(shareP) }, md, opts, cb), 10_000).then(
        () => 'answered',
        (e: unknown) => (e as { code?: string }).code,
      );
    const results = await Promise.all([exchange(b), exchange(cc)]);
    expect(results.sort()).toEqual(['answered', 'pairing_session_not_found']);
  }, 120_000);

  it('a QR session completed at once on two replicas files exactly one request; the loser hears pairing_session_not_found', async () => {
    const c = await cluster(3);
    const [a, b, cc] = c.replicas as [(typeof c.replicas)[0], (typeof c.replicas)[0], (typeof c.replicas)[0]];
    const minted = await runCliJson(['pairing', 'code', ...c.db(a.stateDir)]);
    const { code } = minted.json as { code: string };
    const device = await newRawDevice();
    const begin = await ok(rpc.begin(client(c.endpoint(a)), beginRequest(device, { qr: code })));
    const request = completeRequest(device, begin, { proof: code });
    const results = await Promise.all([rpc.complete(client(c.endpoint(b)), request), rpc.complete(client(c.endpoint(cc)), request)]);
    const succeeded = results.filter((r) => r.ok);
    expect(succeeded, JSON.stringify(results)).toHaveLength(1);
    const failed = results.find((r) => !r.ok);
    expect(failed?.ok === false ? failed.error.palyraCode : null).toBe('pairing_session_not_found');
    // And a third, later, on the replica that began it.
    const third = await rpc.complete(client(c.endpoint(a)), request);
    expect(third.ok ? 'ok' : third.error.palyraCode).toBe('pairing_session_not_found');

    const listed = await runCliJson(['pairing', 'list', ...c.db()]);
    const requests = (listed.json as { requests: { request_id: string }[] }).requests.filter((r) => r.request_id === begin.session_id);
    expect(requests).toHaveLength(1);
    const tail = await runCliJson(['audit', 'tail', '--count', '200', ...c.db()]);
    const filed = (tail.json as { entries: { event: string }[] }).entries.filter((e) => e.event === 'pairing_requested');
    expect(filed).toHaveLength(1);
  }, 120_000);

  it('faults: the replica that ran Begin is killed (-9) and Complete on another still works; a Complete while the database is down fails with state_unavailable, consumes nothing, and succeeds once it is back', async () => {
    const c = await cluster(2);
    const [a, b] = c.replicas as [(typeof c.replicas)[0], (typeof c.replicas)[0]];
    const minted = await runCliJson(['pairing', 'code', ...c.db(a.stateDir)]);
    const { code } = minted.json as { code: string };
    const device = await newRawDevice();
    const begin = await ok(rpc.begin(client(c.endpoint(a)), beginRequest(device, { qr: code })));
    await a.kill();
    // Nothing half-made by the kill: the state verifies, the code is consumed and the session is there.
    const verified = await runCliJson(['state', 'verify', ...c.db()]);
    expect(verified.code, verified.stdout).toBe(0);
    const listed = await runCliJson(['pairing', 'list', ...c.db()]);
    expect((listed.json as { codes: unknown[] }).codes).toHaveLength(0);

    const request = completeRequest(device, begin, { proof: code });
    await server!.stopServer();
    let restarted = false;
    cleanups.push(async () => {
      if (!restarted) await server!.startServer();
    });
    const down = await rpc.complete(client(c.endpoint(b)), request);
    expect(down.ok ? 'ok' : down.error.palyraCode).toBe('state_unavailable');
    await server!.startServer();
    restarted = true;
    const done = await ok(rpc.complete(client(c.endpoint(b)), request));
    expect(done.reason).toBe('pending_approval');
    const tail = await runCliJson(['audit', 'tail', '--count', '200', ...c.db()]);
    expect((tail.json as { entries: { event: string }[] }).entries.filter((e) => e.event === 'pairing_requested')).toHaveLength(1);
    const after = await runCliJson(['audit', 'verify', ...c.db()]);
    expect(after.json).toMatchObject({ ok: true });
  }, 120_000);
});

describe('pairing sessions shared by gateways on one state directory', () => {
  it('Begin on one gateway process, Complete on another, twice at once: one request', async () => {
    const dir = await cleanedDir(cleanups, 'palyra-gw-shared-');
    const start = () =>
      Gateway.start({ stateDir: dir, listen: { host: '127.0.0.1', port: 0 }, name: 'Shared', insecureNodeRpcOptOut: false, allowServerGeneratedKeys: false, allowLegacyDeviceIds: false, keychain: null });
    const first = await start();
    cleanups.push(() => first.stop());
    const second = await start();
    cleanups.push(() => second.stop());
    const endpoint = (g: Gateway): GatewayEndpoint => ({ listen: g.listen, caCertificatePem: g.caCertificatePem });
    const minted = await first.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [first.listen], gatewayName: null });
    const device = await newRawDevice();
    const begin = await ok(rpc.begin(client(endpoint(first)), beginRequest(device, { qr: minted.code })));
    const request = completeRequest(device, begin, { proof: minted.code });
    const results = await Promise.all([rpc.complete(client(endpoint(second)), request), rpc.complete(client(endpoint(second)), request), rpc.complete(client(endpoint(first)), request)]);
    expect(results.filter((r) => r.ok), JSON.stringify(results)).toHaveLength(1);
    for (const r of results) if (!r.ok) expect(r.error.palyraCode).toBe('pairing_session_not_found');
    await first.admin.refresh();
    expect([...first.admin.runtime.requests.keys()]).toEqual([begin.session_id]);
    expect(first.admin.runtime.sessions.has(begin.session_id)).toBe(false);
  }, 60_000);
});
