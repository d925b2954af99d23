// Pushed dispatch (issue 16): a stream whose first event sets push_dispatch gets capability work in unsolicited
// NodeEventResponse messages as soon as it is queued, whatever its heartbeat; a stream without the flag (a reference
// node) is still answered exactly once per event, work riding on those answers; revocation still ends a pushed
// stream with PERMISSION_DENIED, also when it comes from `palyra devices revoke` in another process.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../main/core/bytes.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { certificateFingerprint } from '../../main/core/certificates.js';
import { decodePemBlocks } from '../../main/core/pem.js';
import { NodeSession } from '../../main/device/node-session.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import type { NodeCapabilityDispatch__Output, NodeEventResponse__Output, NodeServiceClient } from '../../main/rpc/node-service.js';
import { ERROR_CODE_METADATA_KEY } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { CertificateAuthority, createCertificateAuthority } from '../../main/core/certificate-authority.js';
import { GATEWAY_TLS_SERVER_NAME } from '../../main/rpc/tls-client.js';
import { enrolTlsDevice, startEchoGateway } from '../helpers/node-rpc-gateway.js';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCli } from '../helpers/cli.js';
import { startGateway } from '../helpers/gateway.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Device {
  deviceId: string;
  certificatePem: string;
  privateKeyPem: string;
}

async function pairedDevice(gateway: Gateway): Promise<Device> {
  const identity = DeviceIdentity.generate();
  const keys = await generateP256KeyPair();
  const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
  const issued = await gateway.admin.identity.finalizeVerifiedPairing({
    verified: { deviceId: identity.deviceId, clientKind: 'node', identityFingerprint: identity.fingerprint, signingPublicKeyHex: toHex(identity.signingPublicKey) },
    csrDer,
  });
  return { deviceId: identity.deviceId, certificatePem: issued.certificate.certificatePem, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
}

function clientFor(gateway: Gateway, device: Device): NodeServiceClient {
  return createNodeServiceClient(
    gateway.listen,
    createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
    { 'grpc.use_local_subchannel_pool': 1 },
  );
}

/** A raw event stream that records every response and how it ended. */
function rawStream(client: NodeServiceClient, deviceId: string) {
  const call = client.StreamNodeEvents();
  const responses: NodeEventResponse__Output[] = [];
  let sent = 0;
  const ended = new Promise<{ status: grpc.status; code: string | null }>((resolve) => {
    call.on('error', (error: grpc.ServiceError) => {
      resolve({ status: error.code, code: (error.metadata.get(ERROR_CODE_METADATA_KEY)[0] as string | undefined) ?? null });
    });
    call.on('end', () => {
      resolve({ status: grpc.status.OK, code: null });
    });
  });
  call.on('data', (response: NodeEventResponse__Output) => {
    responses.push(response);
  });
  const send = (eventName: string, payload: unknown = {}, pushDispatch = false): void => {
    sent += 1;
    call.write({ v: 1, device_id: { ulid: deviceId }, event_name: eventName, payload_json: Buffer.from(JSON.stringify(payload)), ...(pushDispatch ? { push_dispatch: true } : {}) });
  };
  return { call, responses, ended, send, sent: () => sent };
}

const dispatched = (responses: NodeEventResponse__Output[]): NodeCapabilityDispatch__Output[] =>
  responses.flatMap((r) => (r.dispatch !== null && (r.dispatch.request_id?.ulid ?? '') !== '' ? [r.dispatch] : []));

describe('pushed dispatch on the node event stream', () => {
  let gateway: Gateway;
  let stateDir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ gateway, stateDir, cleanup } = await startGateway());
  });
  afterAll(async () => {
    await cleanup();
  });

  it('a stream that negotiated push gets queued work unsolicited, with no event of its own after the first', async () => {
    const device = await pairedDevice(gateway);
    const client = clientFor(gateway, device);
    try {
      // Queued before the stream exists: it goes out right after the first answer.
      const early = gateway.dispatcher.execute({ deviceId: device.deviceId, capability: 'echo', inputJson: Buffer.from('{"n":0}') });
      const stream = rawStream(client, device.deviceId);
      stream.send('node.started', {}, true);
      await waitFor(() => stream.responses.length >= 2, { what: 'the first answer and the early dispatch' });
      const [first, second] = stream.responses as [NodeEventResponse__Output, NodeEventResponse__Output];
      expect(first).toMatchObject({ accepted: true, reason: 'accepted', push_dispatch: true, dispatch: null });
      expect(second).toMatchObject({ accepted: true, reason: 'dispatch', push_dispatch: true, dispatch: { capability: 'echo' } });
      // Three calls queued now: all three arrive although the node sends nothing (no heartbeat to ride on).
      const calls = [1, 2, 3].map((n) => gateway.executeCapability({ deviceId: device.deviceId, capability: 'echo', input: { n } }));
      for (const c of [early, ...calls]) c.catch(() => undefined);
      await waitFor(() => dispatched(stream.responses).length >= 4, { what: 'three pushed dispatches' });
      expect(stream.sent()).toBe(1);
      // The first answer and four unsolicited dispatches.
      expect(stream.responses).toHaveLength(5);
      const inputs = dispatched(stream.responses).map((d) => JSON.parse(Buffer.from(d.input_json).toString('utf8')) as unknown);
      expect(inputs).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
      // The results come back as ordinary events, each answered once, without a dispatch.
      for (const d of dispatched(stream.responses)) {
        stream.send('capability.result', { request_id: d.request_id!.ulid, success: true, output_json: JSON.parse(Buffer.from(d.input_json).toString('utf8')) as unknown });
      }
      const results = await withDeadline(Promise.all([early, ...calls]), { what: 'the four capability results' });
      expect(results.map((r) => r.success)).toEqual([true, true, true, true]);
      expect(JSON.parse(Buffer.from(results[3]!.outputJson).toString('utf8'))).toEqual({ n: 3 });
      await waitFor(() => stream.responses.length === 9, { what: 'the answers to the four results' });
      expect(stream.responses.slice(5).map((r) => [r.reason, r.dispatch, r.push_dispatch])).toEqual([1, 2, 3, 4].map(() => ['accepted', null, true]));
      stream.call.end();
      expect(await withDeadline(stream.ended, { what: 'the stream to end' })).toEqual({ status: grpc.status.OK, code: null });
    } finally {
      client.close();
    }
  });

  it('our device session with a 15 s heartbeat negotiates push and serves work as it is queued', async () => {
    const device = await pairedDevice(gateway);
    const received: NodeCapabilityDispatch__Output[] = [];
    let session: NodeSession | null = null;
    session = await NodeSession.open({
      address: gateway.listen,
      deviceId: device.deviceId,
      caCertificatePem: gateway.caCertificatePem,
      certificatePem: device.certificatePem,
      certificateFingerprint: certificateFingerprint(decodePemBlocks(device.certificatePem, 'certificate_parsing_failed')[0]!.der),
      privateKeyPem: device.privateKeyPem,
      platform: 'test',
      capabilities: ['echo'],
      firstEvent: { name: 'node.started', payload: {} },
      heartbeatMs: 15_000,
      onDispatch: (dispatch) => {
        received.push(dispatch);
        session?.send('capability.result', { request_id: dispatch.request_id!.ulid, success: true, output_json: { pushed: true } });
      },
    });
    try {
      expect(session.pushed).toBe(true);
      expect(session.heartbeatIntervalMs).toBe(15_000);
      const result = await withDeadline(gateway.executeCapability({ deviceId: device.deviceId, capability: 'echo', input: {} }), { what: 'the capability result' });
      expect(result.success).toBe(true);
      expect(JSON.parse(Buffer.from(result.outputJson).toString('utf8'))).toEqual({ pushed: true });
      expect(received).toHaveLength(1);
    } finally {
      session.close();
    }
  });

  it('a session that does not ask for push polls at 1 s even when configured for 15 s', async () => {
    const device = await pairedDevice(gateway);
    const session = await NodeSession.open({
      address: gateway.listen,
      deviceId: device.deviceId,
      caCertificatePem: gateway.caCertificatePem,
      certificatePem: device.certificatePem,
      certificateFingerprint: certificateFingerprint(decodePemBlocks(device.certificatePem, 'certificate_parsing_failed')[0]!.der),
      privateKeyPem: device.privateKeyPem,
      platform: 'test',
      capabilities: [],
      firstEvent: { name: 'node.started', payload: {} },
      heartbeatMs: 15_000,
      pushDispatch: false,
      onDispatch: () => undefined,
    });
    try {
      expect(session.pushed).toBe(false);
      expect(session.heartbeatIntervalMs).toBe(1_000);
    } finally {
      session.close();
    }
  });

  it('a reference-style stream (no flag) at 1 s heartbeats is answered once per event, work riding on the answers', async () => {
    const device = await pairedDevice(gateway);
    const client = clientFor(gateway, device);
    const stream = rawStream(client, device.deviceId);
    const heartbeat = setInterval(() => {
      stream.send('node.heartbeat');
    }, 1_000);
    try {
      stream.send('node.started');
      await waitFor(() => stream.responses.length >= 1, { what: 'the first answer' });
      const calls = [1, 2].map((n) => gateway.executeCapability({ deviceId: device.deviceId, capability: 'echo', input: { n } }));
      for (const c of calls) c.catch(() => undefined);
      await waitFor(() => dispatched(stream.responses).length >= 2, { what: 'both dispatches on heartbeat answers' });
      for (const d of dispatched(stream.responses)) stream.send('capability.result', { request_id: d.request_id!.ulid, success: true, output_json: null });
      const results = await withDeadline(Promise.all(calls), { what: 'both results' });
      expect(results.map((r) => r.success)).toEqual([true, true]);
      clearInterval(heartbeat);
      await waitFor(() => stream.responses.length >= stream.sent(), { what: 'an answer to every event' });
      // One response per event, each an answer (never unsolicited), at most one dispatch each, no push flag.
      expect(stream.responses).toHaveLength(stream.sent());
      expect(stream.responses.every((r) => r.reason === 'accepted' && !r.push_dispatch)).toBe(true);
      expect(stream.responses.filter((r) => r.dispatch !== null)).toHaveLength(2);
      // The first answer carried none (nothing was queued); the two dispatches rode on two different answers.
      expect(stream.responses[0]!.dispatch).toBeNull();
    } finally {
      clearInterval(heartbeat);
      stream.call.cancel();
      client.close();
    }
  });

  it('revocation in-process and by `palyra devices revoke` ends pushed streams with PERMISSION_DENIED device_revoked', async () => {
    await ensureBuilt();
    const devices = [await pairedDevice(gateway), await pairedDevice(gateway)];
    const clients = devices.map((d) => clientFor(gateway, d));
    try {
      const streams = devices.map((d, i) => rawStream(clients[i]!, d.deviceId));
      for (const s of streams) s.send('node.started', {}, true);
      await waitFor(() => streams.every((s) => s.responses.length >= 1), { what: 'both first answers' });
      expect(streams.map((s) => s.responses[0]!.push_dispatch)).toEqual([true, true]);
      // Work in flight is failed by the revocation, not lost.
      const inFlight = gateway.executeCapability({ deviceId: devices[0]!.deviceId, capability: 'echo', input: {} });
      inFlight.catch(() => undefined);
      await waitFor(() => dispatched(streams[0]!.responses).length === 1, { what: 'the pushed dispatch' });
      await gateway.admin.revokeDevice(devices[0]!.deviceId, 'lost');
      const cli = await runCli(['devices', 'revoke', devices[1]!.deviceId, '--reason', 'lost', '--state-dir', stateDir], { env: cliEnv(), timeoutMs: 120_000 });
      expect(cli.code).toBe(0);
      const ends = await withDeadline(Promise.all(streams.map((s) => s.ended)), { what: 'both pushed streams to end' });
      expect(ends).toEqual([
        { status: grpc.status.PERMISSION_DENIED, code: 'device_revoked' },
        { status: grpc.status.PERMISSION_DENIED, code: 'device_revoked' },
      ]);
      await expect(inFlight).rejects.toMatchObject({ code: 'cancelled' });
    } finally {
      for (const c of clients) c.close();
    }
  }, 180_000);
});

describe('pushed dispatch with two streams of one device (a renewal moving to its new certificate)', () => {
  let gateway: Gateway;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ gateway, cleanup } = await startGateway());
  });
  afterAll(async () => {
    await cleanup();
  });

  it('work goes to the newest push stream; once it closes, to the one left; a stream without the flag gets none unasked', async () => {
    const device = await pairedDevice(gateway);
    const clients = [clientFor(gateway, device), clientFor(gateway, device), clientFor(gateway, device)];
    try {
      const [legacy, older, newer] = clients.map((c) => rawStream(c, device.deviceId)) as [ReturnType<typeof rawStream>, ReturnType<typeof rawStream>, ReturnType<typeof rawStream>];
      legacy.send('node.started');
      await waitFor(() => legacy.responses.length === 1, { what: 'the reference-style stream to be answered' });
      older.send('node.started', {}, true);
      await waitFor(() => older.responses.length === 1, { what: 'the older push stream to be answered' });
      newer.send('node.started', {}, true);
      await waitFor(() => newer.responses.length === 1, { what: 'the newer push stream to be answered' });

      const first = gateway.executeCapability({ deviceId: device.deviceId, capability: 'echo', input: { to: 'newer' } });
      first.catch(() => undefined);
      await waitFor(() => dispatched(newer.responses).length === 1, { what: 'the dispatch on the newest push stream' });
      expect(dispatched(older.responses)).toHaveLength(0);
      const d1 = dispatched(newer.responses)[0]!;
      newer.send('capability.result', { request_id: d1.request_id!.ulid, success: true, output_json: 1 });
      expect((await withDeadline(first, { what: 'the first result' })).success).toBe(true);

      // The newer stream half-closes (as a draining session does); once it has ended, the gateway can write to it no more.
      newer.call.end();
      expect(await withDeadline(newer.ended, { what: 'the newer stream to end' })).toEqual({ status: grpc.status.OK, code: null });
      const second = gateway.executeCapability({ deviceId: device.deviceId, capability: 'echo', input: { to: 'older' } });
      second.catch(() => undefined);
      await waitFor(() => dispatched(older.responses).length === 1, { what: 'the dispatch on the push stream left' });
      const d2 = dispatched(older.responses)[0]!;
      expect(JSON.parse(Buffer.from(d2.input_json).toString('utf8'))).toEqual({ to: 'older' });
      older.send('capability.result', { request_id: d2.request_id!.ulid, success: true, output_json: 2 });
      expect((await withDeadline(second, { what: 'the second result' })).success).toBe(true);
      // The reference-style stream sent one event and was answered once; it was never pushed to.
      expect(legacy.responses).toHaveLength(1);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('towards a gateway that does not push (answers without push_dispatch, as the reference does)', () => {
  it('our session asks for push, is not granted it, and polls every second although configured for 15 s', async () => {
    const now = Date.now();
    const ca = await CertificateAuthority.load(await createCertificateAuthority({ now }));
    const server = await ca.issueServerCertificate({ commonName: GATEWAY_TLS_SERVER_NAME, now });
    const device = await enrolTlsDevice(ca, now);
    const echo = await startEchoGateway({ serverCertificatePem: server.certificatePem, serverPrivateKeyPem: server.privateKeyPem, caCertificatePem: ca.certificatePem, requestClientCertificates: true });
    try {
      const session = await NodeSession.open({
        address: echo.address,
        deviceId: device.deviceId,
        caCertificatePem: ca.certificatePem,
        certificatePem: device.certificatePem,
        certificateFingerprint: device.fingerprint,
        privateKeyPem: device.privateKeyPem,
        platform: 'test',
        capabilities: [],
        firstEvent: { name: 'node.started', payload: {} },
        heartbeatMs: 15_000,
        onDispatch: () => undefined,
      });
      try {
        expect(session.pushed).toBe(false);
        expect(session.heartbeatIntervalMs).toBe(1_000);
      } finally {
        session.close();
      }
    } finally {
      await echo.close();
    }
  });
});
