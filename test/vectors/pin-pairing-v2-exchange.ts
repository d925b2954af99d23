// Builds the whole-exchange PIN pairing v2 vectors (pin-pairing-v2-exchange.json) from fixed inputs through OUR code:
// the device side as main/device/pairing-client.ts computes it (main/core), each request serialized by the
// NodeService method table the client uses, and each response produced by the gateway's real node-RPC handlers
// (main/gateway/node-rpc.ts) over a pairing stand-in that runs the gateway's half with the same fixed randomness
// (verifierRespond at fixed y, verifierFinish, the hello and CSR checks) and serialized by the same table.
// pin-pairing-v2-exchange.test.ts compares the result with the committed file byte for byte.
import { p256 } from '@noble/curves/nist.js';
import { concatBytes, fromHex, toHex, utf8 } from '../../main/core/bytes.js';
import { spkiPinFromSpkiDer } from '../../main/core/certificates.js';
import { parseClientKind } from '../../main/core/client-kind.js';
import { parseAndVerifyCsr } from '../../main/core/csr.js';
import { DeviceIdentity, pairingKeyExchangeFromPrivate, x25519Commitment } from '../../main/core/device-identity.js';
import {
  buildDeviceHello,
  csrBindingPayload,
  deriveTranscriptMac,
  PAIRING_PROTOCOL_VERSION,
  signaturePayload,
  signCsrBinding,
  transcriptContext,
  transcriptHash,
  verifyCsrBinding,
  verifyEd25519Strict,
  x25519SharedSecret,
} from '../../main/core/handshake.js';
import { PalyraError } from '../../main/core/errors.js';
import { pinPairingPakeContext } from '../../main/core/pake-context.js';
import { pinHashInput, pinPasswordHash, pinProverSecret, pinVerifier } from '../../main/core/pin-hash.js';
import { normalizePinInput, pinPairingV2Proof } from '../../main/core/pin-pairing-v2.js';
import { computeSas } from '../../main/core/sas.js';
import {
  proverFinish,
  proverSharedPoints,
  proverStart,
  SPAKE2PLUS_SUITE,
  spake2plusKeySchedule,
  spake2plusTranscript,
  verifierFinish,
  verifierRespond,
  type VerifierState,
} from '../../main/core/spake2plus.js';
import { createNodeRpcHandlers, type NodeRpcContext } from '../../main/gateway/node-rpc.js';
import { NodeService } from '../../main/rpc/node-service.js';

/** Everything the exchange depends on: keys, randomness, the PIN, names and times (hex for bytes). */
export interface ExchangeInputs {
  /** As typed: the device normalizes it ("655 376" → "655376"). */
  pin_as_typed: string;
  pake_salt: string;
  device_ed25519_seed: string;
  device_x25519_private: string;
  gateway_x25519_private: string;
  /** The SPAKE2+ scalars (32-byte big-endian, in [1, n-1]): x the device's, y the gateway's. */
  x: string;
  y: string;
  session_id: string;
  challenge: string;
  client_kind: string;
  device_name: string;
  gateway_name: string;
  session_expires_at_unix_ms: number;
  /** The private scalar of the gateway CA's P-256 key; the vector's CA SPKI is its public key. */
  ca_p256_private: string;
  /** A PKCS#10 CSR for the device's TLS key (generated once: ECDSA signatures are randomized), as DER hex. */
  tls_csr_der: string;
  status_wait_ms: number;
  approval_id: string;
  request_expires_at_unix_ms: number;
}

export interface WireMessage {
  rpc: string;
  message: string;
  /** The fields as sent (bytes as lowercase hex); defaults (0, "", empty bytes) are not on the wire. */
  fields: Record<string, unknown>;
  protobuf_hex: string;
}

export interface ExchangeVectors {
  derived: Record<string, string>;
  messages: WireMessage[];
}

/** SubjectPublicKeyInfo DER of a P-256 public key: the fixed 26-byte header, then the 65-byte SEC1 point. */
export const P256_SPKI_PREFIX_HEX = '3059301306072a8648ce3d020106082a8648ce3d030107034200';

type Method = Extract<keyof typeof NodeService, string>;
type Handler = (call: { request: unknown; getPeer(): string; getAuthContext(): unknown }, cb: (err: Error | null, res?: unknown) => void) => void;

function view(value: unknown): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (Array.isArray(value)) return value.map(view);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, view(v)]));
  return value;
}

function serializeRequest(method: Method, request: unknown): Buffer {
  const def = NodeService[method] as unknown as { requestSerialize(v: unknown): Buffer };
  return def.requestSerialize(request);
}

function serializeResponse(method: Method, response: unknown): Buffer {
  const def = NodeService[method] as unknown as { responseSerialize(v: unknown): Buffer };
  return def.responseSerialize(response);
}

/** The gateway: the request bytes decoded as grpc-js does, the real handler, its answer encoded. */
async function serve(handlers: Record<string, unknown>, method: Method, requestBytes: Buffer): Promise<{ response: unknown; bytes: Buffer }> {
  const def = NodeService[method] as unknown as { requestDeserialize(b: Buffer): unknown };
  const request = def.requestDeserialize(requestBytes);
  const handler = handlers[method] as Handler;
  const response = await new Promise<unknown>((resolve, reject) => {
    handler({ request, getPeer: () => 'ipv4:127.0.0.1:50000', getAuthContext: () => ({}) }, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res);
    });
  });
  return { response, bytes: serializeResponse(method, response) };
}

export async function buildExchange(inputs: ExchangeInputs): Promise<ExchangeVectors> {
  const clientKind = parseClientKind(inputs.client_kind);
  const identity = DeviceIdentity.fromSeed(fromHex(inputs.device_ed25519_seed));
  const deviceKx = pairingKeyExchangeFromPrivate(fromHex(inputs.device_x25519_private));
  const gatewayKx = pairingKeyExchangeFromPrivate(fromHex(inputs.gateway_x25519_private));
  const commitment = x25519Commitment(deviceKx.publicKey);
  const caSpkiDer = concatBytes(fromHex(P256_SPKI_PREFIX_HEX), p256.getPublicKey(fromHex(inputs.ca_p256_private), false));
  const caPin = spkiPinFromSpkiDer(caSpkiDer);
  const salt = fromHex(inputs.pake_salt);
  const pin = normalizePinInput(inputs.pin_as_typed);
  const challenge = fromHex(inputs.challenge);
  const csrDer = fromHex(inputs.tls_csr_der);
  const csr = await parseAndVerifyCsr(csrDer);
  const messages: WireMessage[] = [];
  const record = (rpc: Method, message: string, fields: unknown, bytes: Buffer): void => {
    messages.push({ rpc, message, fields: view(fields) as Record<string, unknown>, protobuf_hex: bytes.toString('hex') });
  };

  // The gateway's half: its stored verifier for the code, its own CA pin, its session, y.
  const stored = pinVerifier(pin, salt);
  const session = {
    sessionId: inputs.session_id,
    protocolVersion: PAIRING_PROTOCOL_VERSION,
    clientKind,
    method: { kind: 'pin' as const },
    gatewayEphemeralPublic: gatewayKx.publicKey,
    challenge,
    expiresAtUnixMs: inputs.session_expires_at_unix_ms,
  };
  let begun: { deviceId: string; commitment: Uint8Array } | null = null;
  let verifierState: VerifierState | null = null;
  let filed: { sas: string; identityFingerprint: string; transcriptHashHex: string } | null = null;
  const fail = (what: string): never => {
    throw new PalyraError('internal', `vector gateway: ${what}`);
  };
  const pairing = {
    beginPake(input: { clientKind: string; deviceId: string; commitment: Uint8Array }) {
      begun = { deviceId: input.deviceId, commitment: Uint8Array.from(input.commitment) };
      return Promise.resolve({ session, salt: stored.salt });
    },
    exchangePake(input: { sessionId: string; shareP: Uint8Array }) {
      if (begun === null || input.sessionId !== session.sessionId) fail('exchange before begin');
      const ctx = pinPairingPakeContext({
        sessionId: session.sessionId,
        clientKind,
        gatewayEphemeralPublic: session.gatewayEphemeralPublic,
        deviceX25519Commitment: begun!.commitment,
        deviceId: begun!.deviceId,
        caPin,
      });
      const response = verifierRespond(stored, input.shareP, ctx, fromHex(inputs.y));
      verifierState = response.state;
      return Promise.resolve({ shareV: response.shareV, confirmV: response.confirmV });
    },
    complete(input: {
      sessionId: string;
      deviceId: string;
      clientKind: string;
      protocolVersion: number;
      deviceSigningPublic: Uint8Array;
      deviceX25519Public: Uint8Array;
      challengeSignature: Uint8Array;
      transcriptMac: Uint8Array;
      csrDer: Uint8Array | null;
      csrSignature: Uint8Array | null;
      pakeConfirmP: Uint8Array | null;
    }) {
      if (verifierState === null || begun === null) fail('complete before exchange');
      const proof = pinPairingV2Proof(verifierFinish(verifierState!, input.pakeConfirmP ?? new Uint8Array()));
      if (input.deviceId !== begun!.deviceId) fail('device_id differs from the Begin');
      if (toHex(x25519Commitment(input.deviceX25519Public)) !== toHex(begun!.commitment)) fail('commitment mismatch');
      const payload = signaturePayload({
        protocolVersion: input.protocolVersion,
        sessionId: input.sessionId,
        challenge,
        gatewayEphemeralPublic: gatewayKx.publicKey,
        deviceId: input.deviceId,
        clientKind: parseClientKind(input.clientKind),
        proof,
      });
      if (!verifyEd25519Strict(input.challengeSignature, payload, input.deviceSigningPublic)) fail('hello signature');
      const mac = deriveTranscriptMac({
        sharedSecret: x25519SharedSecret(gatewayKx.privateKey, input.deviceX25519Public),
        challenge,
        context: transcriptContext({ sessionId: input.sessionId, protocolVersion: input.protocolVersion, deviceId: input.deviceId, clientKind: parseClientKind(input.clientKind) }),
      });
      if (toHex(mac) !== toHex(input.transcriptMac)) fail('transcript MAC');
      const csrOk = input.csrDer !== null && input.csrSignature !== null && verifyCsrBinding({ signature: input.csrSignature, sessionId: input.sessionId, csrDer: input.csrDer, signingPublicKey: input.deviceSigningPublic });
      if (!csrOk) fail('CSR binding');
      filed = { sas: computeSas(mac), identityFingerprint: identity.fingerprint, transcriptHashHex: toHex(transcriptHash(mac)) };
      return Promise.resolve({ requestId: input.sessionId, deviceId: input.deviceId, ...filed, sasStatus: 'confirmed' });
    },
    status() {
      if (filed === null) fail('status before complete');
      return Promise.resolve({
        request: { state: 'pending_approval', decisionReason: null, approvalId: inputs.approval_id, ...filed!, expiresAtUnixMs: inputs.request_expires_at_unix_ms },
        material: null,
        privateKeyPem: null,
      });
    },
  };
  const handlers = createNodeRpcHandlers({
    pairing,
    gatewayName: inputs.gateway_name,
    mtlsRequired: false,
    allowServerGeneratedKeys: false,
    clock: () => inputs.session_expires_at_unix_ms,
    log: () => undefined,
  } as unknown as NodeRpcContext) as unknown as Record<string, unknown>;

  // 1. BeginPinPairingSession.
  const beginRequest = { v: PAIRING_PROTOCOL_VERSION, client_kind: clientKind, device_id: { ulid: identity.deviceId }, device_x25519_commitment: Buffer.from(commitment) };
  const beginBytes = serializeRequest('BeginPinPairingSession', beginRequest);
  record('BeginPinPairingSession', 'BeginPinPairingSessionRequest', beginRequest, beginBytes);
  const begin = await serve(handlers, 'BeginPinPairingSession', beginBytes);
  record('BeginPinPairingSession', 'BeginPinPairingSessionResponse', begin.response, begin.bytes);
  const beginResponse = (NodeService.BeginPinPairingSession as unknown as { responseDeserialize(b: Buffer): { pake_suite: string; pake_salt: Buffer; session_id: string; gateway_ephemeral_public: Buffer; challenge: Buffer } }).responseDeserialize(begin.bytes);
  if (beginResponse.pake_suite !== SPAKE2PLUS_SUITE) fail('suite');

  // 2. The device: w0, w1 from the PIN and the salt it was sent, shareP at fixed x.
  const secret = pinProverSecret(pin, new Uint8Array(beginResponse.pake_salt));
  const x = fromHex(inputs.x);
  const { shareP, state: proverState } = proverStart(secret, x);
  const exchangeRequest = { v: PAIRING_PROTOCOL_VERSION, session_id: beginResponse.session_id, pake_share_p: Buffer.from(shareP) };
  const exchangeBytes = serializeRequest('ExchangePinPake', exchangeRequest);
  record('ExchangePinPake', 'ExchangePinPakeRequest', exchangeRequest, exchangeBytes);
  const exchange = await serve(handlers, 'ExchangePinPake', exchangeBytes);
  record('ExchangePinPake', 'ExchangePinPakeResponse', exchange.response, exchange.bytes);
  const exchanged = (NodeService.ExchangePinPake as unknown as { responseDeserialize(b: Buffer): { pake_share_v: Buffer; pake_confirm_v: Buffer } }).responseDeserialize(exchange.bytes);

  // 3. The device checks confirmV against the context it built from what it saw (its CA pin from TLS).
  const ctx = pinPairingPakeContext({
    sessionId: beginResponse.session_id,
    clientKind,
    gatewayEphemeralPublic: new Uint8Array(beginResponse.gateway_ephemeral_public),
    deviceX25519Commitment: commitment,
    deviceId: identity.deviceId,
    caPin,
  });
  const shareV = new Uint8Array(exchanged.pake_share_v);
  const points = proverSharedPoints(secret, x, shareV);
  const tt = spake2plusTranscript(ctx, shareP, shareV, points, secret.w0);
  const keys = spake2plusKeySchedule(tt);
  const prover = proverFinish(proverState, shareV, new Uint8Array(exchanged.pake_confirm_v), ctx);
  const helloProof = pinPairingV2Proof(prover.sharedKey);

  // 4. CompletePairingSession: the hello over the proof string, the CSR and its binding, pake_confirm_p.
  const helloSession = {
    sessionId: beginResponse.session_id,
    protocolVersion: PAIRING_PROTOCOL_VERSION,
    clientKind,
    challenge: new Uint8Array(beginResponse.challenge),
    gatewayEphemeralPublic: new Uint8Array(beginResponse.gateway_ephemeral_public),
  };
  const { hello, sas, transcriptHashHex } = buildDeviceHello({ identity, session: helloSession, proof: helloProof, keyExchange: deviceKx });
  const csrSignature = signCsrBinding(identity, hello.sessionId, csrDer);
  const completeRequest = {
    v: PAIRING_PROTOCOL_VERSION,
    session_id: hello.sessionId,
    device_id: { ulid: identity.deviceId },
    client_kind: clientKind,
    proof: '',
    device_signing_public: Buffer.from(hello.deviceSigningPublic),
    device_x25519_public: Buffer.from(hello.deviceX25519Public),
    challenge_signature: Buffer.from(hello.challengeSignature),
    transcript_mac: Buffer.from(hello.transcriptMac),
    tls_csr_der: Buffer.from(csrDer),
    tls_csr_signature: Buffer.from(csrSignature),
    device_name: inputs.device_name,
    pake_confirm_p: Buffer.from(prover.confirmP),
  };
  const completeBytes = serializeRequest('CompletePairingSession', completeRequest);
  record('CompletePairingSession', 'CompletePairingSessionRequest', completeRequest, completeBytes);
  const complete = await serve(handlers, 'CompletePairingSession', completeBytes);
  record('CompletePairingSession', 'CompletePairingSessionResponse', complete.response, complete.bytes);

  // 5. One status poll while the request waits for the operator (the approved answer carries the certificate).
  const statusRequest = { v: PAIRING_PROTOCOL_VERSION, session_id: hello.sessionId, device_id: { ulid: identity.deviceId }, wait_ms: inputs.status_wait_ms };
  const statusBytes = serializeRequest('GetPairingRequestStatus', statusRequest);
  record('GetPairingRequestStatus', 'GetPairingRequestStatusRequest', statusRequest, statusBytes);
  const status = await serve(handlers, 'GetPairingRequestStatus', statusBytes);
  record('GetPairingRequestStatus', 'GetPairingRequestStatusResponse', status.response, status.bytes);

  const sharedSecret = x25519SharedSecret(deviceKx.privateKey, gatewayKx.publicKey);
  const derived: Record<string, string> = {
    pin: pin,
    pin_hash_input: toHex(pinHashInput(pin)),
    w0s_w1s: toHex(pinPasswordHash(pin, salt)),
    w0: toHex(secret.w0),
    w1: toHex(secret.w1),
    L: toHex(stored.L),
    device_id: identity.deviceId,
    device_ed25519_public: toHex(identity.signingPublicKey),
    identity_fingerprint: identity.fingerprint,
    device_x25519_public: toHex(deviceKx.publicKey),
    device_x25519_commitment: toHex(commitment),
    gateway_ephemeral_public: toHex(gatewayKx.publicKey),
    ca_spki_der: toHex(caSpkiDer),
    ca_pin: caPin,
    context: toHex(ctx.context),
    id_prover: toHex(ctx.idProver),
    id_verifier: toHex(ctx.idVerifier),
    X: toHex(shareP),
    Y: toHex(shareV),
    Z: toHex(points.Z),
    V: toHex(points.V),
    TT: toHex(tt),
    K_main: toHex(keys.K_main),
    K_confirmP: toHex(keys.K_confirmP),
    K_confirmV: toHex(keys.K_confirmV),
    confirmV: toHex(exchanged.pake_confirm_v),
    confirmP: toHex(prover.confirmP),
    K_shared: toHex(prover.sharedKey),
    hello_proof: helloProof,
    signature_payload: toHex(
      signaturePayload({
        protocolVersion: PAIRING_PROTOCOL_VERSION,
        sessionId: hello.sessionId,
        challenge,
        gatewayEphemeralPublic: gatewayKx.publicKey,
        deviceId: identity.deviceId,
        clientKind,
        proof: helloProof,
      }),
    ),
    challenge_signature: toHex(hello.challengeSignature),
    x25519_shared_secret: toHex(sharedSecret),
    transcript_context: toHex(transcriptContext({ sessionId: hello.sessionId, protocolVersion: PAIRING_PROTOCOL_VERSION, deviceId: identity.deviceId, clientKind })),
    transcript_mac: toHex(hello.transcriptMac),
    transcript_hash: transcriptHashHex,
    sas,
    tls_csr_spki_der: toHex(csr.spkiDer),
    csr_binding_payload: toHex(csrBindingPayload(hello.sessionId, csrDer)),
    tls_csr_signature: toHex(csrSignature),
  };
  if (toHex(utf8(helloProof)).length !== 144) fail('hello proof length');
  return { derived, messages };
}
