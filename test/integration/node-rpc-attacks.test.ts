// Attacks on pairing and node RPC over real TLS on 127.0.0.1: identity takeover, replay, double decisions, approval
// of a banned device, forged capability results, PIN guessing, the insecure opt-out's limits, one-time delivery of
// pairing material, and the status long-poll.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { signCsrBinding } from '../../main/core/handshake.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import { Gateway } from '../../main/gateway/gateway.js';
import type { GatewayStartOptions } from '../../main/gateway/gateway.js';
import type { NodeServiceClient } from '../../main/rpc/node-service.js';
import { startGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/identity.js';
import {
  anonymousClient,
  beginRequest,
  certifiedClient,
  completeRequest,
  forgedCompleteRequest,
  mintPin,
  mintQr,
  newRawDevice,
  nextDispatch,
  nodeEvent,
  ok,
  openRawStream,
  pairRawDevice,
  refused,
  requestPairing,
  rpc,
} from '../helpers/raw-pairing.js';
import type { RawDevice, RawEventStream } from '../helpers/raw-pairing.js';
import { settledFlag, waitFor, withDeadline } from '../helpers/wait.js';

const S = grpc.status;
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function gatewayFor(extra: Partial<GatewayStartOptions> = {}): Promise<{ gateway: Gateway; anon: NodeServiceClient }> {
  const g = await startGateway(extra);
  cleanups.push(g.cleanup);
  const anon = anonymousClient(g.gateway);
  cleanups.push(() => {
    anon.close();
  });
  return { gateway: g.gateway, anon };
}

function closeLater<T extends { close(): void }>(client: T): T {
  cleanups.push(() => {
    client.close();
  });
  return client;
}

function streamLater(stream: RawEventStream): RawEventStream {
  cleanups.push(() => {
    stream.cancel();
  });
  return stream;
}

describe('pairing attacks', () => {
  it("refuses a hello that claims another device's id (signed by key A, device_id of B)", async () => {
    const { gateway, anon } = await gatewayFor();
    const victim = await pairRawDevice(gateway, anon);
    const victimCertificate = gateway.admin.identity.pairedDevice(victim.deviceId)!.current_certificate.fingerprint;
    const attacker = await newRawDevice();

    // A's key presented, B's id claimed, A's signature over the payload naming B: the id is not A's key's.
    const token1 = await mintQr(gateway);
    const begin1 = await ok(rpc.begin(anon, beginRequest(attacker, { qr: token1 })));
    const own = forgedCompleteRequest(attacker, begin1, { signer: attacker.identity, claimedDeviceId: victim.deviceId, presentedSigningPublic: attacker.identity.signingPublicKey, proof: token1 });
    const takeover = await refused(rpc.complete(anon, own));
    expect({ code: takeover.code, palyraCode: takeover.palyraCode }).toEqual({ code: S.FAILED_PRECONDITION, palyraCode: 'legacy_device_id_refused' });
    expect(takeover.details).toMatch(/^pairing verification failed: .*--allow-legacy-device-ids/);

    // B's public key presented with A's signature: the signature does not verify.
    const token2 = await mintQr(gateway);
    const begin2 = await ok(rpc.begin(anon, beginRequest(attacker, { qr: token2 })));
    const borrowed = forgedCompleteRequest(attacker, begin2, { signer: attacker.identity, claimedDeviceId: victim.deviceId, presentedSigningPublic: victim.device.identity.signingPublicKey, proof: token2 });
    const forged = await refused(rpc.complete(anon, borrowed));
    expect({ code: forged.code, palyraCode: forged.palyraCode, details: forged.details }).toEqual({
      code: S.FAILED_PRECONDITION,
      palyraCode: 'signature_verification_failed',
      details: 'pairing verification failed: signature verification failed',
    });

    // Nothing was filed for approval and the victim's pairing is untouched.
    expect(gateway.admin.request(begin1.session_id)).toBeUndefined();
    expect(gateway.admin.request(begin2.session_id)).toBeUndefined();
    expect(gateway.admin.identity.pairedDevice(victim.deviceId)!.current_certificate.fingerprint).toBe(victimCertificate);
  });

  it('accepts a Complete once: a replay on the same session, or on a new session, is refused', async () => {
    const { gateway, anon } = await gatewayFor();
    const device = await newRawDevice();
    const token = await mintQr(gateway);
    const begin = await ok(rpc.begin(anon, beginRequest(device, { qr: token })));
    const request = completeRequest(device, begin, { proof: token });
    expect((await ok(rpc.complete(anon, request))).reason).toBe('pending_approval');

    const replay = await refused(rpc.complete(anon, request));
    expect(replay).toEqual({ code: S.FAILED_PRECONDITION, palyraCode: 'pairing_session_not_found', details: 'pairing session does not have a reserved code' });

    // The same fields against a fresh session (with the same device's commitment): bound to the old challenge.
    const token2 = await mintQr(gateway);
    const begin2 = await ok(rpc.begin(anon, beginRequest(device, { qr: token2 })));
    const moved = await refused(rpc.complete(anon, { ...request, session_id: begin2.session_id }));
    expect({ code: moved.code, palyraCode: moved.palyraCode }).toEqual({ code: S.FAILED_PRECONDITION, palyraCode: 'signature_verification_failed' });

    expect(gateway.admin.listRequests().map((r) => r.request_id)).toEqual([begin.session_id]);
  });

  it('approves a request once: a second approval (or a rejection) is pairing_request_not_pending', async () => {
    const { gateway, anon } = await gatewayFor();
    const { requestId, device } = await requestPairing(gateway, anon);
    expect((await gateway.admin.approve(requestId)).state).toBe('approved');
    await expect(gateway.admin.approve(requestId)).rejects.toMatchObject({ code: 'pairing_request_not_pending' });
    await expect(gateway.admin.reject(requestId)).rejects.toMatchObject({ code: 'pairing_request_not_pending' });
    const status = await ok(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } }));
    expect(status.status).toBe('completed');
    await expect(gateway.admin.approve(requestId)).rejects.toMatchObject({ code: 'pairing_request_not_pending' });
    await expect(gateway.admin.reject(requestId)).rejects.toMatchObject({ code: 'pairing_request_not_pending' });
    expect(gateway.admin.request(requestId)?.state).toBe('completed');
  });

  it('refuses to approve a device revoked while its request was pending; no certificate is issued', async () => {
    const { gateway, anon } = await gatewayFor();
    const { requestId, device } = await requestPairing(gateway, anon);
    await gateway.admin.revokeDevice(device.deviceId, 'stolen');
    await expect(gateway.admin.approve(requestId)).rejects.toMatchObject({ code: 'device_revoked' });
    const status = await ok(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } }));
    expect(status).toMatchObject({ status: 'pending_approval', paired: false, mtls_client_certificate_pem: '' });
    expect(gateway.admin.identity.pairedDevice(device.deviceId)).toBeUndefined();
  });

  it('re-checks the ban when finalizing: approved, then revoked before the device polls → no certificate', async () => {
    const { gateway, anon } = await gatewayFor();
    const { requestId, device } = await requestPairing(gateway, anon);
    await gateway.admin.approve(requestId);
    await gateway.admin.revokeDevice(device.deviceId, 'changed my mind');
    const failure = await refused(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } }));
    expect({ code: failure.code, palyraCode: failure.palyraCode }).toEqual({ code: S.PERMISSION_DENIED, palyraCode: 'device_revoked' });
    expect(gateway.admin.identity.pairedDevice(device.deviceId)).toBeUndefined();
    expect(gateway.admin.request(requestId)?.state).not.toBe('completed');
  });

  it('trips the PIN budget on the wire (RESOURCE_EXHAUSTED after 20 wrong PINs) while QR pairing keeps working', async () => {
    const { gateway, anon } = await gatewayFor();
    const pin = await mintPin(gateway);
    const wrong = pin === '000000' ? '000001' : '000000';
    const device = await newRawDevice();
    const seen: { code: grpc.status; palyraCode: string | undefined }[] = [];
    for (let i = 0; i < 25; i++) {
      const failure = await refused(rpc.begin(anon, beginRequest(device, { pin: wrong })));
      seen.push({ code: failure.code, palyraCode: failure.palyraCode });
    }
    expect(seen.slice(0, 20)).toEqual(Array.from({ length: 20 }, () => ({ code: S.FAILED_PRECONDITION, palyraCode: 'pairing_code_invalid' })));
    expect(seen.slice(20)).toEqual(Array.from({ length: 5 }, () => ({ code: S.RESOURCE_EXHAUSTED, palyraCode: 'pairing_budget_exhausted' })));
    // Even the right PIN is refused now.
    const right = await refused(rpc.begin(anon, beginRequest(device, { pin })));
    expect({ code: right.code, palyraCode: right.palyraCode }).toEqual({ code: S.RESOURCE_EXHAUSTED, palyraCode: 'pairing_budget_exhausted' });
    // A QR code still pairs end to end.
    const paired = await pairRawDevice(gateway, anon, device);
    expect(gateway.admin.identity.pairedDevice(paired.deviceId)?.current_certificate.certificate_pem).toBe(paired.certificatePem);
  });
});

describe('capability results', () => {
  it("ignores a result for A's request sent by device B; A's caller gets A's own result", async () => {
    const { gateway, anon } = await gatewayFor();
    const a = await pairRawDevice(gateway, anon);
    const b = await pairRawDevice(gateway, anon);
    const clientA = closeLater(certifiedClient(gateway, a.certificatePem, a.privateKeyPem));
    const clientB = closeLater(certifiedClient(gateway, b.certificatePem, b.privateKeyPem));
    for (const [client, id] of [[clientA, a.deviceId], [clientB, b.deviceId]] as const) {
      await ok(rpc.register(client, { v: 1, device_id: { ulid: id }, platform: 'test', capabilities: [{ name: 'echo', available: true }] }));
    }
    const streamA = streamLater(openRawStream(clientA));
    const streamB = streamLater(openRawStream(clientB));
    await streamA.roundTrip(nodeEvent(a.deviceId, 'node.started'));
    await streamB.roundTrip(nodeEvent(b.deviceId, 'node.started'));

    const call = rpc.execute(clientA, { v: 1, device_id: { ulid: a.deviceId }, capability: 'echo', input_json: Buffer.from('{"n":1}') });
    const dispatch = await nextDispatch(streamA, a.deviceId);
    const requestId = dispatch.request_id!.ulid;

    // B forges the result over its own stream: refused, and B's stream is ended.
    streamB.send(nodeEvent(b.deviceId, 'capability.result', { request_id: requestId, success: true, output_json: { forged: true } }));
    const ended = await streamB.ended;
    expect(ended?.code).toBe(S.PERMISSION_DENIED);
    expect(gateway.dispatcher.list().find((r) => r.requestId === requestId)?.state).toBe('dispatched');

    await streamA.roundTrip(nodeEvent(a.deviceId, 'capability.result', { request_id: requestId, success: true, output_json: { from: 'A' } }));
    const response = await ok(call);
    expect(response.success).toBe(true);
    expect(JSON.parse(response.output_json.toString('utf8'))).toEqual({ from: 'A' });
  });

  it('the operator path (Gateway.executeCapability) does not take a foreign result either', async () => {
    const { gateway, anon } = await gatewayFor();
    const a = await pairRawDevice(gateway, anon);
    const b = await pairRawDevice(gateway, anon);
    const streamA = streamLater(openRawStream(closeLater(certifiedClient(gateway, a.certificatePem, a.privateKeyPem))));
    const streamB = streamLater(openRawStream(closeLater(certifiedClient(gateway, b.certificatePem, b.privateKeyPem))));
    await streamA.roundTrip(nodeEvent(a.deviceId, 'node.started'));
    await streamB.roundTrip(nodeEvent(b.deviceId, 'node.started'));
    const result = gateway.executeCapability({ deviceId: a.deviceId, capability: 'system.health', input: null, timeoutMs: 10_000 });
    const dispatch = await nextDispatch(streamA, a.deviceId);
    streamB.send(nodeEvent(b.deviceId, 'capability.result', { request_id: dispatch.request_id!.ulid, success: true, output_json: 'forged' }));
    expect((await streamB.ended)?.code).toBe(S.PERMISSION_DENIED);
    await streamA.roundTrip(nodeEvent(a.deviceId, 'capability.result', { request_id: dispatch.request_id!.ulid, success: true, output_json: 'genuine' }));
    const outcome = await result;
    expect(JSON.parse(Buffer.from(outcome.outputJson).toString('utf8'))).toBe('genuine');
  });
});

describe('insecure opt-out', () => {
  it('is refused on a non-loopback listen address', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10']) {
      const { dir, cleanup } = await tempDir('palyra-optout-');
      cleanups.push(cleanup);
      const start = Gateway.start({
        stateDir: dir,
        listen: { host, port: 0 },
        name: null,
        insecureNodeRpcOptOut: true,
        allowServerGeneratedKeys: false,
        allowLegacyDeviceIds: false,
        keychain: null,
      });
      await expect(start).rejects.toMatchObject({ code: 'insecure_opt_out_refused' });
    }
  });

  it('on 127.0.0.1 serves TLS without a client certificate and RegisterNode is accepted ("registered", §7 item 51)', async () => {
    const { gateway, anon } = await gatewayFor({ insecureNodeRpcOptOut: true });
    expect(gateway.mtlsRequired).toBe(false);
    const deviceId = DeviceIdentity.generate().deviceId;
    const response = await ok(rpc.register(anon, { v: 1, device_id: { ulid: deviceId }, platform: 'linux-x64' }));
    expect(response).toEqual({ v: 1, device_id: { ulid: deviceId }, accepted: true, reason: 'registered' });
  });
});

describe('pairing material delivery and the status long-poll', () => {
  const firstCalls: Record<string, (client: NodeServiceClient, device: RawDevice) => Promise<unknown>> = {
    RegisterNode: (client, device) => ok(rpc.register(client, { v: 1, device_id: { ulid: device.deviceId }, platform: 'test' })),
    StreamNodeEvents: async (client, device) => {
      const stream = streamLater(openRawStream(client));
      await stream.roundTrip(nodeEvent(device.deviceId, 'node.started'));
    },
    RotateDeviceCertificate: async (client, device) => {
      const keys = await generateP256KeyPair();
      const csrDer = await createCertificateSigningRequest({ keys, deviceId: device.deviceId });
      const signature = signCsrBinding(device.identity, device.deviceId, csrDer);
      await ok(rpc.rotate(client, { v: 1, device_id: { ulid: device.deviceId }, tls_csr_der: Buffer.from(csrDer), tls_csr_signature: Buffer.from(signature) }));
    },
  };

  it.each(Object.keys(firstCalls))("serves a completed request's certificate only until the device's first mTLS call (%s)", async (firstCall) => {
    const { gateway, anon } = await gatewayFor();
    const { requestId, device } = await requestPairing(gateway, anon);
    await gateway.admin.approve(requestId);
    const query = { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } };
    const first = await ok(rpc.status(anon, query));
    expect(first.status).toBe('completed');
    expect(first.mtls_client_certificate_pem).toContain('BEGIN CERTIFICATE');
    expect(first.mtls_client_private_key_pem).toBe(''); // the device made its own key
    // A retry before the device used the certificate (say the first response was lost) gets it again.
    expect((await ok(rpc.status(anon, query))).mtls_client_certificate_pem).toBe(first.mtls_client_certificate_pem);

    const client = closeLater(certifiedClient(gateway, first.mtls_client_certificate_pem, device.tlsPrivateKeyPem));
    await firstCalls[firstCall]!(client, device);

    const after = await ok(rpc.status(anon, query));
    expect(after).toMatchObject({ status: 'completed', paired: true, mtls_client_certificate_pem: '', mtls_client_private_key_pem: '', gateway_ca_certificate_pem: '', cert_expires_at_unix_ms: 0 });
  });

  it('a held status call returns as soon as the operator approves, not when its wait ends', async () => {
    const { gateway, anon } = await gatewayFor();
    const { requestId, device } = await requestPairing(gateway, anon);
    // A second pending request whose status call nobody answers: it is held for its whole wait (30 s, the most the
    // gateway allows). The approved call returning while this one is still held shows it did not wait out its own.
    const other = await requestPairing(gateway, anon);
    const entered: string[] = [];
    const status = gateway.pairing.status.bind(gateway.pairing);
    gateway.pairing.status = (input) => {
      entered.push(input.sessionId);
      return status(input);
    };
    const wait = { v: 1, wait_ms: 30_000 };
    const unanswered = rpc.status(anon, { ...wait, session_id: other.requestId, device_id: { ulid: other.device.deviceId } }, 60_000);
    const held = settledFlag(unanswered);
    const approved = rpc.status(anon, { ...wait, session_id: requestId, device_id: { ulid: device.deviceId } }, 60_000);
    await waitFor(() => entered.includes(requestId) && entered.includes(other.requestId), { what: 'both status calls to reach the gateway' });
    await gateway.admin.approve(requestId);
    const response = await ok(withDeadline(approved, { what: 'the approved status call to return' }));
    expect(response.status).toBe('completed');
    expect(response.mtls_client_certificate_pem).toContain('BEGIN CERTIFICATE');
    expect(held.settled()).toBe(false);
    // A decision on the other request releases its call too.
    await gateway.admin.reject(other.requestId, 'test over');
    expect((await ok(withDeadline(unanswered, { what: 'the released status call to return' }))).status).toBe('rejected');
  });
});
