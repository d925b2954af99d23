// REFERENCE.md §3.1–§3.9 status paths of palyra.node.v1.NodeService over real TLS on 127.0.0.1: every refusal is
// checked for its gRPC status, its message text (where the reference has one) and the `palyra-error-code` metadata,
// and every response for v = max(request.v, 1).
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { newUlid } from '../../main/core/ids.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { signCsrBinding } from '../../main/core/handshake.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import type { BeginPairingSessionResponse__Output, CompletePairingSessionRequest, NodeServiceClient } from '../../main/rpc/node-service.js';
import { startGateway } from '../helpers/gateway.js';
import {
  anonymousClient,
  beginRequest,
  certifiedClient,
  completeRequest,
  flipBit,
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
import type { PairedRawDevice, RawDevice, RpcFailure, RpcOutcome } from '../helpers/raw-pairing.js';

const S = grpc.status;

let gateway: Gateway;
let cleanupGateway: () => Promise<void>;
let anon: NodeServiceClient;
const clients: NodeServiceClient[] = [];

function track(client: NodeServiceClient): NodeServiceClient {
  clients.push(client);
  return client;
}

beforeAll(async () => {
  const g = await startGateway();
  gateway = g.gateway;
  cleanupGateway = g.cleanup;
  anon = anonymousClient(gateway);
});

afterAll(async () => {
  anon.close();
  await cleanupGateway();
});

afterEach(() => {
  while (clients.length > 0) clients.pop()!.close();
});

function expectFailure(failure: RpcFailure, code: grpc.status, palyraCode: string, details?: string | RegExp): void {
  expect({ code: failure.code, palyraCode: failure.palyraCode }).toEqual({ code, palyraCode });
  if (typeof details === 'string') expect(failure.details).toBe(details);
  else if (details !== undefined) expect(failure.details).toMatch(details);
}

/** A started session with its code's proof, ready for a Complete. */
async function begun(kind: 'desktop' | 'node' | 'cli' = 'desktop'): Promise<{ device: RawDevice; proof: string; begin: BeginPairingSessionResponse__Output }> {
  const device = await newRawDevice();
  const proof = await mintQr(gateway, kind);
  const begin = await ok(rpc.begin(anon, beginRequest(device, { qr: proof, kind })));
  return { device, proof, begin };
}

describe('BeginPairingSession (§3.2)', () => {
  it('refuses a client_kind outside cli|desktop|node and accepts one in any case with blanks', async () => {
    const device = await newRawDevice();
    for (const kind of ['tablet', '', 'desk top']) {
      const failure = await refused(rpc.begin(anon, { ...beginRequest(device, { qr: 'X'.repeat(26) }), client_kind: kind }));
      expectFailure(failure, S.INVALID_ARGUMENT, 'invalid_argument', 'client_kind must be one of cli|desktop|node');
    }
    const token = await mintQr(gateway);
    const begin = await ok(rpc.begin(anon, { ...beginRequest(device, { qr: token }), client_kind: '  NODE ' }));
    expect(begin.client_kind).toBe('node');
  });

  it('requires a pairing method, a set oneof, and a non-blank PIN or token', async () => {
    const device = await newRawDevice();
    const base = beginRequest(device, { qr: 'unused' });
    expectFailure(await refused(rpc.begin(anon, { v: 1, client_kind: 'desktop' })), S.INVALID_ARGUMENT, 'invalid_argument', 'pairing method is required');
    expectFailure(await refused(rpc.begin(anon, { ...base, method: {} })), S.INVALID_ARGUMENT, 'invalid_argument', 'pairing method must be provided');
    expectFailure(await refused(rpc.begin(anon, { ...base, method: { pin_code: '   ' } })), S.INVALID_ARGUMENT, 'invalid_argument', 'pin pairing code must not be empty');
    expectFailure(await refused(rpc.begin(anon, { ...base, method: { pin_code: '' } })), S.INVALID_ARGUMENT, 'invalid_argument', 'pin pairing code must not be empty');
    expectFailure(await refused(rpc.begin(anon, { ...base, method: { qr_token: ' \t ' } })), S.INVALID_ARGUMENT, 'invalid_argument', 'QR pairing token must not be empty');
  });

  it('answers FAILED_PRECONDITION pairing_code_invalid for an unknown code', async () => {
    const device = await newRawDevice();
    const failure = await refused(rpc.begin(anon, beginRequest(device, { qr: newUlid(Date.now()) })));
    expectFailure(failure, S.FAILED_PRECONDITION, 'pairing_code_invalid', 'pairing code is missing or expired');
  });

  it('refuses a code presented with the other method and keeps it for the right one', async () => {
    const device = await newRawDevice();
    const token = await mintQr(gateway);
    const failure = await refused(rpc.begin(anon, beginRequest(device, { pin: token })));
    expectFailure(failure, S.FAILED_PRECONDITION, 'pairing_code_method_mismatch', 'pairing code method does not match request');
    const begin = await ok(rpc.begin(anon, beginRequest(device, { qr: token })));
    expect(begin.session_id).toHaveLength(26);
  });

  it('answers v = max(request.v, 1)', async () => {
    const device = await newRawDevice();
    for (const [v, expected] of [[0, 1], [1, 1], [7, 7]] as const) {
      const token = await mintQr(gateway);
      const begin = await ok(rpc.begin(anon, beginRequest(device, { qr: token, v })));
      expect(begin.v).toBe(expected);
      expect(begin.gateway_ephemeral_public).toHaveLength(32);
      expect(begin.challenge).toHaveLength(32);
      expect(begin.gateway_name).toBe('Test Gateway');
    }
  });
});

describe('CompletePairingSession (§3.3)', () => {
  it('refuses an empty session_id, a non-canonical device_id and a bad client_kind', async () => {
    const { device, proof, begin } = await begun();
    const good = completeRequest(device, begin, { proof });
    expectFailure(await refused(rpc.complete(anon, { ...good, session_id: '  ' })), S.INVALID_ARGUMENT, 'invalid_argument', 'session_id must not be empty');
    for (const id of [undefined, { ulid: '' }, { ulid: device.deviceId.toLowerCase() }, { ulid: device.deviceId.slice(1) }, { ulid: `${device.deviceId.slice(0, 25)}U` }]) {
      const request: CompletePairingSessionRequest = { ...good };
      if (id === undefined) delete request.device_id;
      else request.device_id = id;
      expectFailure(await refused(rpc.complete(anon, request)), S.INVALID_ARGUMENT, 'invalid_argument', 'device_id must be a canonical ULID');
    }
    expectFailure(await refused(rpc.complete(anon, { ...good, client_kind: 'phone' })), S.INVALID_ARGUMENT, 'invalid_argument', 'client_kind must be one of cli|desktop|node');
    // None of these consumed the session: the well-formed Complete still goes through.
    expect((await ok(rpc.complete(anon, good))).reason).toBe('pending_approval');
  });

  it('checks the byte length of each key, signature and MAC field, without burning the session', async () => {
    const { device, proof, begin } = await begun();
    const good = completeRequest(device, begin, { proof });
    const cases: [keyof CompletePairingSessionRequest, number, string][] = [
      ['device_signing_public', 31, 'device_signing_public must be 32 bytes'],
      ['device_signing_public', 33, 'device_signing_public must be 32 bytes'],
      ['device_x25519_public', 0, 'device_x25519_public must be 32 bytes'],
      ['device_x25519_public', 64, 'device_x25519_public must be 32 bytes'],
      ['challenge_signature', 63, 'challenge_signature must be 64 bytes'],
      ['challenge_signature', 65, 'challenge_signature must be 64 bytes'],
      ['transcript_mac', 16, 'transcript_mac must be 32 bytes'],
      ['transcript_mac', 0, 'transcript_mac must be 32 bytes'],
    ];
    for (const [field, length, message] of cases) {
      const failure = await refused(rpc.complete(anon, { ...good, [field]: Buffer.alloc(length, 7) }));
      expectFailure(failure, S.INVALID_ARGUMENT, 'invalid_argument', message);
    }
    expect((await ok(rpc.complete(anon, good))).reason).toBe('pending_approval');
  });

  it('answers pairing_session_not_found for a session that holds no reserved code', async () => {
    const { device, proof, begin } = await begun();
    const good = completeRequest(device, begin, { proof });
    const failure = await refused(rpc.complete(anon, { ...good, session_id: newUlid(Date.now()) }));
    expectFailure(failure, S.FAILED_PRECONDITION, 'pairing_session_not_found', 'pairing session does not have a reserved code');
  });

  it('refuses a hello with one flipped signature bit, and the session is gone afterwards', async () => {
    const { device, proof, begin } = await begun();
    const good = completeRequest(device, begin, { proof });
    const failure = await refused(rpc.complete(anon, { ...good, challenge_signature: flipBit(good.challenge_signature as Buffer, 5, 3) }));
    expectFailure(failure, S.FAILED_PRECONDITION, 'signature_verification_failed', 'pairing verification failed: signature verification failed');
    expectFailure(await refused(rpc.complete(anon, good)), S.FAILED_PRECONDITION, 'pairing_session_not_found', 'pairing session does not have a reserved code');
    expect(gateway.admin.request(begin.session_id)).toBeUndefined();
  });

  it('refuses a hello with one flipped MAC bit, and the session is gone afterwards', async () => {
    const { device, proof, begin } = await begun();
    const good = completeRequest(device, begin, { proof });
    const failure = await refused(rpc.complete(anon, { ...good, transcript_mac: flipBit(good.transcript_mac as Buffer, 31, 7) }));
    expectFailure(failure, S.FAILED_PRECONDITION, 'transcript_verification_failed', 'pairing verification failed: transcript verification failed');
    expectFailure(await refused(rpc.complete(anon, good)), S.FAILED_PRECONDITION, 'pairing_session_not_found', 'pairing session does not have a reserved code');
  });

  it('refuses a protocol version other than 1 (v 0 counts as 1)', async () => {
    const { device, proof, begin } = await begun();
    const failure = await refused(rpc.complete(anon, completeRequest(device, begin, { proof, v: 2 })));
    expectFailure(failure, S.FAILED_PRECONDITION, 'pairing_version_mismatch', /^pairing verification failed: pairing protocol version mismatch \(expected 1, got 2\)$/);
    const again = await begun();
    const response = await ok(rpc.complete(anon, completeRequest(again.device, again.begin, { proof: again.proof, v: 0 })));
    expect(response).toMatchObject({ v: 1, paired: false, reason: 'pending_approval', identity_fingerprint: again.device.identity.fingerprint });
    expect(response.transcript_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(response).toMatchObject({ mtls_client_certificate_pem: '', mtls_client_private_key_pem: '', gateway_ca_certificate_pem: '', cert_expires_at_unix_ms: 0 });
  });

  it('refuses a CSR whose binding signature has a flipped bit (csr_signature_invalid)', async () => {
    const { device, proof, begin } = await begun();
    const good = completeRequest(device, begin, { proof });
    const failure = await refused(rpc.complete(anon, { ...good, tls_csr_signature: flipBit(good.tls_csr_signature as Buffer, 0, 1) }));
    expectFailure(failure, S.PERMISSION_DENIED, 'csr_signature_invalid', 'certificate signing request is not signed by the device identity');
    expect(gateway.admin.request(begin.session_id)).toBeUndefined();
  });

  it('refuses a CSR bound to another session, and a CSR whose own signature does not verify', async () => {
    const first = await begun();
    const good = completeRequest(first.device, first.begin, { proof: first.proof });
    const otherSession = newUlid(Date.now());
    const failure = await refused(rpc.complete(anon, { ...good, tls_csr_signature: Buffer.from(signCsrBinding(first.device.identity, otherSession, first.device.csrDer)) }));
    expectFailure(failure, S.PERMISSION_DENIED, 'csr_signature_invalid');

    const second = await begun();
    const honest = completeRequest(second.device, second.begin, { proof: second.proof });
    // Flip a bit of the CSR's signature value (its last byte) and bind the tampered CSR properly.
    const tampered = flipBit(second.device.csrDer, second.device.csrDer.length - 1, 0);
    const bad = await refused(
      rpc.complete(anon, { ...honest, tls_csr_der: tampered, tls_csr_signature: Buffer.from(signCsrBinding(second.device.identity, second.begin.session_id, tampered)) }),
    );
    expectFailure(bad, S.INVALID_ARGUMENT, 'csr_invalid');
  });

  it('refuses a Complete without a CSR unless --allow-server-generated-keys, naming the flag', async () => {
    const { device, proof, begin } = await begun();
    const failure = await refused(rpc.complete(anon, completeRequest(device, begin, { proof, csr: false })));
    expectFailure(failure, S.FAILED_PRECONDITION, 'server_generated_keys_disabled', /--allow-server-generated-keys/);
    expect(gateway.admin.request(begin.session_id)).toBeUndefined();
  });
});

describe('GetPairingRequestStatus (§3.4)', () => {
  it('answers NOT_FOUND for an unknown request and PERMISSION_DENIED for another device_id', async () => {
    const notFound = await refused(rpc.status(anon, { v: 1, session_id: newUlid(Date.now()), device_id: { ulid: DeviceIdentity.generate().deviceId } }));
    expectFailure(notFound, S.NOT_FOUND, 'pairing_request_not_found', 'pairing request was not found');

    const { requestId } = await requestPairing(gateway, anon);
    const other = DeviceIdentity.generate().deviceId;
    const forbidden = await refused(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: other } }));
    expectFailure(forbidden, S.PERMISSION_DENIED, 'pairing_request_forbidden', 'pairing request does not belong to the requested device_id');
  });

  it('validates session_id and device_id', async () => {
    const { device, requestId } = await requestPairing(gateway, anon);
    expectFailure(await refused(rpc.status(anon, { v: 1, session_id: ' ', device_id: { ulid: device.deviceId } })), S.INVALID_ARGUMENT, 'invalid_argument', 'session_id must not be empty');
    expectFailure(await refused(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: 'not-a-ulid' } })), S.INVALID_ARGUMENT, 'invalid_argument', 'device_id must be a canonical ULID');
  });

  it('answers the pending state with the SAS, and v = max(request.v, 1)', async () => {
    const { device, requestId } = await requestPairing(gateway, anon);
    const view = gateway.admin.listRequests().find((r) => r.request_id === requestId)!;
    for (const [v, expected] of [[0, 1], [9, 9]] as const) {
      const status = await ok(rpc.status(anon, { v, session_id: requestId, device_id: { ulid: device.deviceId } }));
      expect(status).toMatchObject({ v: expected, status: 'pending_approval', paired: false, sas: view.sas, identity_fingerprint: device.identity.fingerprint, mtls_client_certificate_pem: '' });
      expect(status.approval_id).toHaveLength(26);
    }
  });
});

describe('device-bound RPCs (§3.1, §3.5–§3.7, §3.9)', () => {
  let a: PairedRawDevice;
  let b: PairedRawDevice;
  beforeAll(async () => {
    a = await pairRawDevice(gateway, anon);
    b = await pairRawDevice(gateway, anon);
  });

  const callers: Record<'RegisterNode' | 'RotateDeviceCertificate' | 'RevokeDevicePairing' | 'ExecuteCapability', (c: NodeServiceClient, id: string) => Promise<RpcOutcome<unknown>>> = {
    RegisterNode: (c: NodeServiceClient, id: string) => rpc.register(c, { v: 1, device_id: { ulid: id }, platform: 'linux-x64' }),
    RotateDeviceCertificate: (c: NodeServiceClient, id: string) => rpc.rotate(c, { v: 1, device_id: { ulid: id } }),
    RevokeDevicePairing: (c: NodeServiceClient, id: string) => rpc.revoke(c, { v: 1, device_id: { ulid: id }, reason: 'test' }),
    ExecuteCapability: (c: NodeServiceClient, id: string) => rpc.execute(c, { v: 1, device_id: { ulid: id }, capability: 'echo', input_json: Buffer.from('{}') }),
  };

  it.each(Object.keys(callers) as (keyof typeof callers)[])('%s without a client certificate → UNAUTHENTICATED', async (name) => {
    const failure = await refused(callers[name](anon, a.deviceId));
    expectFailure(failure, S.UNAUTHENTICATED, 'unauthenticated', 'node RPC request requires a paired client certificate');
  });

  it.each(Object.keys(callers) as (keyof typeof callers)[])("%s with device A's certificate for device B → PERMISSION_DENIED", async (name) => {
    const client = track(certifiedClient(gateway, a.certificatePem, a.privateKeyPem));
    const failure = await refused(callers[name](client, b.deviceId));
    expectFailure(failure, S.PERMISSION_DENIED, 'permission_denied', 'node RPC request device_id does not match the authenticated client certificate');
    expect(gateway.admin.identity.pairedDevice(b.deviceId)?.current_certificate.certificate_pem).toBe(b.certificatePem);
  });

  it.each(Object.keys(callers) as (keyof typeof callers)[])('%s with a non-canonical device_id → INVALID_ARGUMENT', async (name) => {
    const client = track(certifiedClient(gateway, a.certificatePem, a.privateKeyPem));
    const failure = await refused(callers[name](client, a.deviceId.toLowerCase()));
    expectFailure(failure, S.INVALID_ARGUMENT, 'invalid_argument', 'device_id must be a canonical ULID');
  });

  it('ExecuteCapability for a node that never registered → FAILED_PRECONDITION', async () => {
    const fresh = await pairRawDevice(gateway, anon);
    const client = track(certifiedClient(gateway, fresh.certificatePem, fresh.privateKeyPem));
    const failure = await refused(callers.ExecuteCapability(client, fresh.deviceId));
    expectFailure(failure, S.FAILED_PRECONDITION, 'node_not_registered', 'node must register before executing capabilities');
  });

  it('RegisterNode echoes the device_id and answers v = max(request.v, 1)', async () => {
    const client = track(certifiedClient(gateway, a.certificatePem, a.privateKeyPem));
    for (const [v, expected] of [[0, 1], [3, 3]] as const) {
      const response = await ok(rpc.register(client, { v, device_id: { ulid: a.deviceId }, platform: ' linux-x64 ', capabilities: [{ name: ' echo ', available: true }] }));
      expect(response).toEqual({ v: expected, device_id: { ulid: a.deviceId }, accepted: true, reason: 'registered' });
    }
    expect(gateway.admin.runtime.nodes.get(a.deviceId)).toMatchObject({ platform: 'linux-x64', capabilities: [{ name: 'echo', available: true }] });
  });

  it('ExecuteCapability and the event stream answer v = max(request.v, 1)', async () => {
    const client = track(certifiedClient(gateway, a.certificatePem, a.privateKeyPem));
    await ok(rpc.register(client, { v: 1, device_id: { ulid: a.deviceId }, platform: 'test', capabilities: [{ name: 'echo', available: true }] }));
    const stream = openRawStream(client);
    try {
      expect((await stream.roundTrip(nodeEvent(a.deviceId, 'node.started', {}, 0))).v).toBe(1);
      expect(await stream.roundTrip(nodeEvent(a.deviceId, 'node.heartbeat', {}, 4))).toMatchObject({ v: 4, accepted: true, reason: 'accepted' });
      const call = rpc.execute(client, { v: 0, device_id: { ulid: a.deviceId }, capability: 'echo', input_json: Buffer.from('{"x":1}') });
      const dispatch = await nextDispatch(stream, a.deviceId);
      expect(dispatch).toMatchObject({ capability: 'echo' });
      expect(JSON.parse(dispatch.input_json.toString('utf8'))).toEqual({ x: 1 });
      await stream.roundTrip(nodeEvent(a.deviceId, 'capability.result', { request_id: dispatch.request_id!.ulid, success: true, output_json: { x: 1 } }));
      const response = await ok(call);
      expect(response.v).toBe(1);
      expect(response.success).toBe(true);
      expect(JSON.parse(response.output_json.toString('utf8'))).toEqual({ x: 1 });
      const again = rpc.execute(client, { v: 6, device_id: { ulid: a.deviceId }, capability: 'echo', input_json: Buffer.from('{}') });
      const second = await nextDispatch(stream, a.deviceId);
      await stream.roundTrip(nodeEvent(a.deviceId, 'capability.result', { request_id: second.request_id!.ulid, success: false, error: 'nope' }));
      expect(await ok(again)).toMatchObject({ v: 6, success: false, error: 'nope' });
    } finally {
      stream.cancel();
    }
  });

  it('StreamNodeEvents without a certificate → UNAUTHENTICATED; with another device_id → PERMISSION_DENIED', async () => {
    const bare = openRawStream(anon);
    bare.send(nodeEvent(a.deviceId, 'node.started'));
    expectFailure((await bare.ended)!, S.UNAUTHENTICATED, 'unauthenticated', 'node event stream requires a paired client certificate');

    const client = track(certifiedClient(gateway, a.certificatePem, a.privateKeyPem));
    const stream = openRawStream(client);
    stream.send(nodeEvent(b.deviceId, 'node.started'));
    expectFailure((await stream.ended)!, S.PERMISSION_DENIED, 'permission_denied', 'node event stream device_id does not match the authenticated client certificate');
  });

  it('RotateDeviceCertificate with a bound CSR answers rotated and v = max(request.v, 1); the old certificate stops mapping', async () => {
    const device = await pairRawDevice(gateway, anon);
    const client = track(certifiedClient(gateway, device.certificatePem, device.privateKeyPem));
    const keys = await generateP256KeyPair();
    const csrDer = await createCertificateSigningRequest({ keys, deviceId: device.deviceId });
    const unbound = await refused(rpc.rotate(client, { v: 1, device_id: { ulid: device.deviceId }, tls_csr_der: Buffer.from(csrDer), tls_csr_signature: Buffer.alloc(64) }));
    expectFailure(unbound, S.PERMISSION_DENIED, 'csr_signature_invalid');
    const response = await ok(
      rpc.rotate(client, { v: 6, device_id: { ulid: device.deviceId }, tls_csr_der: Buffer.from(csrDer), tls_csr_signature: Buffer.from(signCsrBinding(device.device.identity, device.deviceId, csrDer)) }),
    );
    expect(response).toMatchObject({ v: 6, rotated: true, reason: 'rotated', mtls_client_private_key_pem: '' });
    expect(response.mtls_client_certificate_pem).toContain('BEGIN CERTIFICATE');
    // Device-bound calls on the superseded certificate (still connected, in its grace period) are refused.
    const stale = await refused(rpc.register(client, { v: 1, device_id: { ulid: device.deviceId }, platform: 'x' }));
    expect(stale.code).toBe(S.PERMISSION_DENIED);
  });

  it('RevokeDevicePairing revokes the caller itself and answers v = max(request.v, 1)', async () => {
    const device = await pairRawDevice(gateway, anon);
    const client = track(certifiedClient(gateway, device.certificatePem, device.privateKeyPem));
    const response = await ok(rpc.revoke(client, { v: 2, device_id: { ulid: device.deviceId }, reason: '  lost laptop ' }));
    expect(response).toEqual({ v: 2, revoked: true, reason: 'revoked' });
    expect(gateway.admin.identity.listRevokedDevices().find((r) => r.device_id === device.deviceId)?.reason).toBe('lost laptop');
  });

  it('RevokeDevicePairing reaches the caller even right after another identity change (no early connection close)', async () => {
    // Every identity change schedules the close of unmapped connections a moment later; a change just before the
    // device's own revocation must not close the device's connection before its response went out.
    const outcomes: string[] = [];
    for (let offsetMs = 0; offsetMs <= 60; offsetMs += 4) {
      const device = await pairRawDevice(gateway, anon);
      const client = track(certifiedClient(gateway, device.certificatePem, device.privateKeyPem));
      await ok(rpc.register(client, { v: 1, device_id: { ulid: device.deviceId }, platform: 'test' }));
      await gateway.admin.revokeDevice(DeviceIdentity.generate().deviceId, 'unrelated ban');
      // Not a synchronisation: the pause sweeps the revocation across the moment the earlier change closes connections.
      await new Promise((r) => setTimeout(r, offsetMs));
      const result = await rpc.revoke(client, { v: 1, device_id: { ulid: device.deviceId }, reason: 'self' });
      outcomes.push(result.ok ? 'ok' : `${offsetMs} ms: ${result.error.code} ${result.error.details}`);
    }
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
  });

  it('a PIN code pairs too (method pin)', async () => {
    const device = await newRawDevice();
    const pin = await mintPin(gateway);
    const begin = await ok(rpc.begin(anon, beginRequest(device, { pin, kind: 'node' })));
    expect((await ok(rpc.complete(anon, completeRequest(device, begin, { proof: pin, kind: 'node' })))).reason).toBe('pending_approval');
    expect(gateway.admin.request(begin.session_id)?.method).toBe('pin');
  });
});
