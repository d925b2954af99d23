// Test helpers: a low-level NodeService client built on main/core that can put any value in any field of Begin,
// Complete and the other RPCs (the device library only ever sends well-formed requests), and that reports a refusal
// as exactly what crossed the wire: gRPC status, details and the `palyra-error-code` metadata.
import * as grpc from '@grpc/grpc-js';
import type { ClientKind } from '../../main/core/client-kind.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../main/core/device-identity.js';
import type { PairingKeyExchange } from '../../main/core/device-identity.js';
import {
  buildDeviceHello,
  deriveTranscriptMac,
  signaturePayload,
  signCsrBinding,
  transcriptContext,
  x25519SharedSecret,
} from '../../main/core/handshake.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import type {
  BeginPairingSessionRequest,
  BeginPairingSessionResponse__Output,
  CompletePairingSessionRequest,
  CompletePairingSessionResponse__Output,
  ExecuteCapabilityRequest,
  ExecuteCapabilityResponse__Output,
  GetPairingRequestStatusRequest,
  GetPairingRequestStatusResponse__Output,
  NodeCapabilityDispatch__Output,
  NodeEventRequest,
  NodeEventResponse__Output,
  NodeServiceClient,
  RegisterNodeRequest,
  RegisterNodeResponse__Output,
  RevokeDevicePairingRequest,
  RevokeDevicePairingResponse__Output,
  RotateDeviceCertificateRequest,
  RotateDeviceCertificateResponse__Output,
} from '../../main/rpc/node-service.js';
import type { CancelPairingRequestRequest } from '../../main/rpc/generated/palyra/node/v1/CancelPairingRequestRequest.js';
import type { CancelPairingRequestResponse__Output } from '../../main/rpc/generated/palyra/node/v1/CancelPairingRequestResponse.js';
import { ERROR_CODE_METADATA_KEY } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { waitFor } from './wait.js';

/** Bound on every call made through these helpers, so a hang fails as DEADLINE_EXCEEDED, not as a stuck suite. */
export const RAW_CALL_DEADLINE_MS = 10_000;

/** Each client its own connection: grpc-js otherwise shares subchannels between equal channels. */
const ISOLATED: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

/** What the client saw of a refused call. */
export interface RpcFailure {
  readonly code: grpc.status;
  readonly details: string;
  /** The gateway's stable error code (metadata `palyra-error-code`), if it sent one. */
  readonly palyraCode: string | undefined;
}

export type RpcOutcome<T> = { readonly ok: true; readonly response: T } | { readonly ok: false; readonly error: RpcFailure };

export function failureOf(error: grpc.ServiceError): RpcFailure {
  const sent = error.metadata.get(ERROR_CODE_METADATA_KEY)[0];
  return { code: error.code, details: error.details, palyraCode: typeof sent === 'string' ? sent : undefined };
}

type Invoke<T> = (metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: T) => void) => unknown;

function outcome<T>(invoke: Invoke<T>, deadlineMs = RAW_CALL_DEADLINE_MS): Promise<RpcOutcome<T>> {
  return new Promise((resolve) => {
    invoke(new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => {
      if (error !== null) resolve({ ok: false, error: failureOf(error) });
      else resolve({ ok: true, response: response! });
    });
  });
}

/** Promise form of every unary NodeService call, resolving with the outcome instead of throwing. */
export const rpc = {
  begin: (c: NodeServiceClient, r: BeginPairingSessionRequest) =>
    outcome<BeginPairingSessionResponse__Output>((md, o, cb) => c.BeginPairingSession(r, md, o, cb)),
  complete: (c: NodeServiceClient, r: CompletePairingSessionRequest) =>
    outcome<CompletePairingSessionResponse__Output>((md, o, cb) => c.CompletePairingSession(r, md, o, cb)),
  status: (c: NodeServiceClient, r: GetPairingRequestStatusRequest, deadlineMs?: number) =>
    outcome<GetPairingRequestStatusResponse__Output>((md, o, cb) => c.GetPairingRequestStatus(r, md, o, cb), deadlineMs),
  register: (c: NodeServiceClient, r: RegisterNodeRequest) =>
    outcome<RegisterNodeResponse__Output>((md, o, cb) => c.RegisterNode(r, md, o, cb)),
  rotate: (c: NodeServiceClient, r: RotateDeviceCertificateRequest) =>
    outcome<RotateDeviceCertificateResponse__Output>((md, o, cb) => c.RotateDeviceCertificate(r, md, o, cb)),
  revoke: (c: NodeServiceClient, r: RevokeDevicePairingRequest) =>
    outcome<RevokeDevicePairingResponse__Output>((md, o, cb) => c.RevokeDevicePairing(r, md, o, cb)),
  execute: (c: NodeServiceClient, r: ExecuteCapabilityRequest, deadlineMs?: number) =>
    outcome<ExecuteCapabilityResponse__Output>((md, o, cb) => c.ExecuteCapability(r, md, o, cb), deadlineMs),
  cancel: (c: NodeServiceClient, r: CancelPairingRequestRequest) =>
    outcome<CancelPairingRequestResponse__Output>((md, o, cb) => c.CancelPairingRequest(r, md, o, cb)),
};

/** The response of a call that must succeed; a refusal throws with everything the wire said. */
export async function ok<T>(pending: Promise<RpcOutcome<T>>): Promise<T> {
  const result = await pending;
  if (!result.ok) throw new Error(`call refused: status ${result.error.code} [${result.error.palyraCode}] ${result.error.details}`);
  return result.response;
}

/** The failure of a call that must be refused; success throws. */
export async function refused<T>(pending: Promise<RpcOutcome<T>>): Promise<RpcFailure> {
  const result = await pending;
  if (result.ok) throw new Error(`call unexpectedly succeeded: ${JSON.stringify(result.response)}`);
  return result.error;
}

export interface GatewayEndpoint {
  readonly listen: string;
  readonly caCertificatePem: string;
}

/** TLS to the gateway, verifying it against its CA, without a client certificate (what an unpaired device has). */
export function anonymousClient(gateway: GatewayEndpoint, options: grpc.ChannelOptions = {}): NodeServiceClient {
  return createNodeServiceClient(gateway.listen, createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem }), { ...ISOLATED, ...options });
}

/** mTLS with a device certificate and key. */
export function certifiedClient(gateway: GatewayEndpoint, certificatePem: string, privateKeyPem: string, options: grpc.ChannelOptions = {}): NodeServiceClient {
  return createNodeServiceClient(
    gateway.listen,
    createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: certificatePem, clientPrivateKeyPem: privateKeyPem }),
    { ...ISOLATED, ...options },
  );
}

/** A device's key material for one pairing: identity, fresh X25519 key, and a P-256 TLS key with its CSR. */
export interface RawDevice {
  readonly identity: DeviceIdentity;
  readonly deviceId: string;
  readonly keyExchange: PairingKeyExchange;
  readonly tlsPrivateKeyPem: string;
  readonly csrDer: Uint8Array;
}

export async function newRawDevice(identity: DeviceIdentity = DeviceIdentity.generate()): Promise<RawDevice> {
  const keys = await generateP256KeyPair();
  return {
    identity,
    deviceId: identity.deviceId,
    keyExchange: generatePairingKeyExchange(),
    tlsPrivateKeyPem: await exportPrivateKeyPem(keys.privateKey),
    csrDer: await createCertificateSigningRequest({ keys, deviceId: identity.deviceId }),
  };
}

/** A well-formed Begin for `device` (committing to its X25519 key unless `commit` is false). */
export function beginRequest(device: RawDevice, o: { kind?: ClientKind; pin?: string; qr?: string; commit?: boolean; v?: number }): BeginPairingSessionRequest {
  return {
    v: o.v ?? 1,
    client_kind: o.kind ?? 'desktop',
    method: o.pin !== undefined ? { pin_code: o.pin } : { qr_token: o.qr ?? '' },
    ...(o.commit === false ? {} : { device_x25519_commitment: Buffer.from(x25519Commitment(device.keyExchange.publicKey)) }),
  };
}

function sessionOf(begin: BeginPairingSessionResponse__Output, kind: ClientKind) {
  return {
    sessionId: begin.session_id,
    protocolVersion: 1,
    clientKind: kind,
    challenge: new Uint8Array(begin.challenge),
    gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
  };
}

/** The honest Complete, built by the device library's buildDeviceHello, with the CSR bound to the session. */
export function completeRequest(device: RawDevice, begin: BeginPairingSessionResponse__Output, o: { proof: string; kind?: ClientKind; v?: number; csr?: boolean }): CompletePairingSessionRequest {
  const kind = o.kind ?? 'desktop';
  const { hello } = buildDeviceHello({ identity: device.identity, session: sessionOf(begin, kind), proof: o.proof, keyExchange: device.keyExchange });
  return {
    v: o.v ?? 1,
    session_id: hello.sessionId,
    device_id: { ulid: hello.deviceId },
    client_kind: kind,
    proof: o.proof,
    device_signing_public: Buffer.from(hello.deviceSigningPublic),
    device_x25519_public: Buffer.from(hello.deviceX25519Public),
    challenge_signature: Buffer.from(hello.challengeSignature),
    transcript_mac: Buffer.from(hello.transcriptMac),
    ...(o.csr === false
      ? {}
      : { tls_csr_der: Buffer.from(device.csrDer), tls_csr_signature: Buffer.from(signCsrBinding(device.identity, hello.sessionId, device.csrDer)) }),
  };
}

/**
 * A Complete that claims `claimedDeviceId` and the key `presentedSigningPublic`, signed by `signer` over the payload
 * naming `claimedDeviceId`, with a MAC that is correct for that claim: what a device trying to pass as another would
 * send (core primitives directly; buildDeviceHello only ever signs for the identity's own id).
 */
export function forgedCompleteRequest(
  device: RawDevice,
  begin: BeginPairingSessionResponse__Output,
  o: { signer: DeviceIdentity; claimedDeviceId: string; presentedSigningPublic: Uint8Array; proof: string; kind?: ClientKind },
): CompletePairingSessionRequest {
  const kind = o.kind ?? 'desktop';
  const session = sessionOf(begin, kind);
  const challengeSignature = o.signer.sign(signaturePayload({ ...session, deviceId: o.claimedDeviceId, clientKind: kind, proof: o.proof }));
  const transcriptMac = deriveTranscriptMac({
    sharedSecret: x25519SharedSecret(device.keyExchange.privateKey, session.gatewayEphemeralPublic),
    challenge: session.challenge,
    context: transcriptContext({ sessionId: session.sessionId, protocolVersion: 1, deviceId: o.claimedDeviceId, clientKind: kind }),
  });
  return {
    v: 1,
    session_id: session.sessionId,
    device_id: { ulid: o.claimedDeviceId },
    client_kind: kind,
    proof: o.proof,
    device_signing_public: Buffer.from(o.presentedSigningPublic),
    device_x25519_public: Buffer.from(device.keyExchange.publicKey),
    challenge_signature: Buffer.from(challengeSignature),
    transcript_mac: Buffer.from(transcriptMac),
    tls_csr_der: Buffer.from(device.csrDer),
    tls_csr_signature: Buffer.from(signCsrBinding(o.signer, session.sessionId, device.csrDer)),
  };
}

/** A copy of `bytes` with one bit flipped. */
export function flipBit(bytes: Uint8Array, index = 0, bit = 0): Buffer {
  const copy = Buffer.from(bytes);
  copy[index] = copy[index]! ^ (1 << bit);
  return copy;
}

export async function mintQr(gateway: Gateway, kind: ClientKind = 'desktop'): Promise<string> {
  return (await gateway.admin.mintCode({ method: 'qr', kind, issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: gateway.name })).code;
}

export async function mintPin(gateway: Gateway, kind: ClientKind = 'desktop'): Promise<string> {
  return (await gateway.admin.mintCode({ method: 'pin', kind, issuedBy: 'test', gatewayAddresses: [], gatewayName: null })).code;
}

/** Begin with a fresh QR code, then the honest Complete: a request pending approval. */
export async function requestPairing(gateway: Gateway, client: NodeServiceClient, device?: RawDevice): Promise<{ device: RawDevice; begin: BeginPairingSessionResponse__Output; requestId: string }> {
  const d = device ?? (await newRawDevice());
  const token = await mintQr(gateway);
  const begin = await ok(rpc.begin(client, beginRequest(d, { qr: token })));
  const complete = await ok(rpc.complete(client, completeRequest(d, begin, { proof: token })));
  if (complete.reason !== 'pending_approval') throw new Error(`unexpected Complete reason ${complete.reason}`);
  return { device: d, begin, requestId: begin.session_id };
}

export interface PairedRawDevice {
  readonly device: RawDevice;
  readonly deviceId: string;
  readonly requestId: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
}

/** The whole protocol over `client`: request, operator approval, status delivering the certificate. */
export async function pairRawDevice(gateway: Gateway, client: NodeServiceClient, device?: RawDevice): Promise<PairedRawDevice> {
  const { device: d, requestId } = await requestPairing(gateway, client, device);
  await gateway.admin.approve(requestId);
  const status = await ok(rpc.status(client, { v: 1, session_id: requestId, device_id: { ulid: d.deviceId } }));
  if (status.status !== 'completed' || status.mtls_client_certificate_pem === '') throw new Error(`pairing did not complete: ${status.status}`);
  return { device: d, deviceId: d.deviceId, requestId, certificatePem: status.mtls_client_certificate_pem, privateKeyPem: d.tlsPrivateKeyPem };
}

export interface RawEventStream {
  /** Every response received so far. */
  readonly responses: NodeEventResponse__Output[];
  send(event: NodeEventRequest): void;
  /** Sends `event` and resolves with the next response. */
  roundTrip(event: NodeEventRequest): Promise<NodeEventResponse__Output>;
  /** Settles with the stream's error (or null on a clean end). */
  readonly ended: Promise<RpcFailure | null>;
  cancel(): void;
}

export function openRawStream(client: NodeServiceClient): RawEventStream {
  const call = client.StreamNodeEvents();
  const responses: NodeEventResponse__Output[] = [];
  const waiters: ((r: NodeEventResponse__Output) => void)[] = [];
  const ended = new Promise<RpcFailure | null>((resolve) => {
    call.on('error', (error: grpc.ServiceError) => {
      resolve(failureOf(error));
    });
    call.on('end', () => {
      resolve(null);
    });
  });
  call.on('data', (response: NodeEventResponse__Output) => {
    responses.push(response);
    waiters.shift()?.(response);
  });
  return {
    responses,
    send: (event) => {
      call.write(event);
    },
    roundTrip: (event) => {
      const next = new Promise<NodeEventResponse__Output>((resolve, reject) => {
        waiters.push(resolve);
        void ended.then((failure) => {
          reject(new Error(`stream ended before a response: ${failure === null ? 'clean end' : `${failure.code} ${failure.details}`}`));
        });
      });
      call.write(event);
      return next;
    },
    ended,
    cancel: () => {
      call.cancel();
    },
  };
}

export function nodeEvent(deviceId: string, eventName: string, payload: unknown = {}, v = 1): NodeEventRequest {
  return { v, device_id: { ulid: deviceId }, event_name: eventName, payload_json: Buffer.from(JSON.stringify(payload)) };
}

/** Heartbeats on `stream` (bounded) until the gateway piggybacks a capability dispatch on a response. */
export async function nextDispatch(stream: RawEventStream, deviceId: string): Promise<NodeCapabilityDispatch__Output> {
  return waitFor(async () => (await stream.roundTrip(nodeEvent(deviceId, 'node.heartbeat'))).dispatch, { what: 'a capability dispatch on a heartbeat response' });
}

/**
 * Registers the node and opens its event stream (accepted `node.started`), registering cleanups; `ended` resolves
 * with the stream's failure.
 */
export async function openRegisteredStream(
  client: NodeServiceClient,
  deviceId: string,
  cleanups: (() => unknown)[],
): Promise<{ ended: RawEventStream['ended'] }> {
  await ok(rpc.register(client, { v: 1, device_id: { ulid: deviceId }, platform: 'test' }));
  const stream = openRawStream(client);
  cleanups.push(() => {
    stream.cancel();
  });
  const first = await stream.roundTrip(nodeEvent(deviceId, 'node.started'));
  if (!first.accepted) throw new Error('node.started was not accepted');
  return { ended: stream.ended };
}
