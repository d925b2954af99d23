/**
 * The device half of pairing (PROTOCOL.md §2–§4): find the gateway, decide whether to trust it (the QR's CA pin,
 * or trust-on-first-use for a PIN with the CA fingerprint shown), Begin with a commitment to a fresh X25519 key,
 * Complete with the hello and a CSR for a fresh P-256 key bound to the identity, show the SAS, long-poll until
 * the operator decides, then keep the certificate. Progress is reported as typed events; an AbortSignal cancels,
 * and a cancel while the request is filed tells the gateway (CancelPairingRequest, signed by the identity key).
 * While waiting, a gateway that cannot be reached (restarting) is retried with backoff until the request expires.
 */

import type { ClientKind } from '../core/client-kind.js';
import { normalizeDeviceName } from '../core/device-name.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { certificateFingerprint, parseCertificate, spkiPin, spkiPinFromSpkiDer } from '../core/certificates.js';
import { createCertificateSigningRequest } from '../core/csr.js';
import { generatePairingKeyExchange, x25519Commitment } from '../core/device-identity.js';
import { buildDeviceHello, PAIRING_PROTOCOL_VERSION, signCsrBinding } from '../core/handshake.js';
import { encodePem } from '../core/pem.js';
import { formatHostPort, parseHostPort } from '../core/net-address.js';
import type { PairingUri } from '../core/pairing-uri.js';
import type { GatewayAddress } from '../core/net-address.js';
import { exportSpkiDer } from '../core/x509-keys.js';
import { signPairingCancel } from '../core/pairing-cancel.js';
import { callUnary } from '../rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient, probeGatewayCertificateChain } from '../rpc/tls-client.js';
import type {
  BeginPairingSessionResponse__Output,
  CompletePairingSessionResponse__Output,
  GetPairingRequestStatusResponse__Output,
  NodeServiceClient,
} from '../rpc/node-service.js';
import type { CancelPairingRequestResponse__Output } from '../rpc/generated/palyra/node/v1/CancelPairingRequestResponse.js';
import type { BeginPinPairingSessionResponse__Output } from '../rpc/generated/palyra/node/v1/BeginPinPairingSessionResponse.js';
import type { ExchangePinPakeResponse__Output } from '../rpc/generated/palyra/node/v1/ExchangePinPakeResponse.js';
import * as grpc from '@grpc/grpc-js';
import { pinPairingPakeContext } from '../core/pake-context.js';
import { DEVICE_PAKE_FAILURE_LIMIT, normalizePinInput, pinPairingV2Proof } from '../core/pin-pairing-v2.js';
import { proverFinish, proverStart, SPAKE2PLUS_SUITE } from '../core/spake2plus.js';
import { assertPakeAttemptsLeft, clearPakeFailures, recordPakeFailure } from './pake-attempts.js';
import { pinProverSecretNative } from './pin-secret.js';
import { Backoff } from './backoff.js';
import type { DeviceIdentity } from '../core/device-identity.js';
import type { DeviceStore, DevicePairingState } from './device-store.js';

/** One long-poll; the gateway holds it at most 30 s (PROTOCOL.md §4). */
const STATUS_WAIT_MS = 25_000;
const RPC_TIMEOUT_MS = 10_000;
/** How long a cancel may take to reach the gateway before the device gives up telling it. */
const CANCEL_TIMEOUT_MS = 3_000;
export const DEFAULT_PAIRING_WAIT_MS = 5 * 60_000;
/** Reconnect delays while the gateway cannot be reached during the wait (full jitter, see backoff.ts). */
export const STATUS_RETRY_BASE_MS = 250;
export const STATUS_RETRY_CAP_MS = 5_000;
/** Errors of a status call that mean "the gateway is not there right now", not "the gateway said no". */
const UNREACHABLE_CODES = new Set(['gateway_unreachable', 'unavailable', 'timeout', 'tls_handshake_failed', 'cancelled']);

export type PairingProgress =
  | { type: 'connecting'; gateway: string }
  | { type: 'verifying_gateway'; gateway: string; ca_fingerprint: string; ca_pin: string; pinned: boolean }
  | {
      type: 'awaiting_approval';
      sas: string;
      request_id: string;
      gateway: string;
      gateway_name: string | null;
      /** `confirmed`: PIN pairing v2 verified the gateway and the PIN, nothing to compare; `compare`: compare the SAS. */
      sas_status: 'confirmed' | 'compare';
      /** How the gateway's CA was verified: the QR code's pin, the PIN (v2), or trust on first use (v1 fallback). */
      verified_by: 'qr' | 'pin' | 'tofu';
    }
  | { type: 'reconnecting'; gateway: string; request_id: string; attempt: number; retry_in_ms: number; code: string }
  | { type: 'paired'; device_id: string; gateway: string; cert_expires_at_unix_ms: number }
  | { type: 'rejected'; reason: string | null }
  | { type: 'expired' }
  | { type: 'failed'; code: string; message: string };

export type PairingTarget =
  | { method: 'qr'; uri: PairingUri }
  | { method: 'qr-token'; token: string; gateway: string }
  | { method: 'pin'; pin: string; gateway: string };

export interface PairOptions {
  store: DeviceStore;
  target: PairingTarget;
  kind: ClientKind;
  /**
   * The display name sent in Complete (`device_name`); absent or blank: the gateway derives one. Checked here before
   * anything is sent, so a bad name never uses up the code.
   */
  deviceName?: string;
  waitMs?: number;
  onProgress?: (event: PairingProgress) => void;
  signal?: AbortSignal;
  clock?: () => number;
  /** Uniform in [0, 1) for the reconnect jitter; injectable for tests. */
  random?: () => number;
}

export interface PairResult {
  deviceId: string;
  sas: string;
  state: DevicePairingState;
}

function addressesOf(target: PairingTarget): GatewayAddress[] {
  if (target.method === 'qr') return [...target.uri.gateways];
  return [parseHostPort(target.gateway)];
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new PalyraError('cancelled', 'pairing was cancelled');
}

/** Reads the gateway's chain and decides whether to trust its CA. Nothing is sent before this passes. */
async function trustGateway(address: GatewayAddress, target: PairingTarget): Promise<{ caPem: string; caFingerprint: string; caPin: string; pinned: boolean }> {
  const { chainDer } = await probeGatewayCertificateChain(address.host, address.port);
  const caDer = chainDer[chainDer.length - 1];
  if (caDer === undefined || chainDer.length < 2) throw new PalyraError('tls_handshake_failed', 'the gateway did not present its CA certificate');
  const pin = spkiPin(caDer);
  if (target.method === 'qr' && pin !== target.uri.caPin) {
    throw new PalyraError('ca_pin_mismatch', `gateway ${formatHostPort(address)} presented a CA that does not match the pin in the pairing code (possible interception)`);
  }
  const info = parseCertificate(encodePem(caDer, 'CERTIFICATE'));
  if (!info.isCa) throw new PalyraError('tls_handshake_failed', 'the gateway chain does not end in a CA certificate');
  return { caPem: encodePem(caDer, 'CERTIFICATE'), caFingerprint: certificateFingerprint(caDer), caPin: pin, pinned: target.method === 'qr' };
}

/** Pairs this device with a gateway. Resolves when paired; rejects with a coded PalyraError otherwise. */
export async function pairDevice(o: PairOptions): Promise<PairResult> {
  const emit = o.onProgress ?? (() => undefined);
  try {
    return await pair(o, emit);
  } catch (e) {
    const err = toPalyraError(e);
    if (err.code === 'pairing_rejected') emit({ type: 'rejected', reason: (err.details.reason as string | null | undefined) ?? null });
    else if (err.code === 'pairing_expired') emit({ type: 'expired' });
    else emit({ type: 'failed', code: err.code, message: err.message });
    throw err;
  }
}

async function pair(o: PairOptions, emit: (event: PairingProgress) => void): Promise<PairResult> {
  const clock = o.clock ?? Date.now;
  const deviceName = o.deviceName === undefined || o.deviceName.trim() === '' ? '' : normalizeDeviceName(o.deviceName);
  const identity = await o.store.loadOrCreateIdentity();
  let lastError: PalyraError | null = null;
  for (const address of addressesOf(o.target)) {
    checkAborted(o.signal);
    const gateway = formatHostPort(address);
    emit({ type: 'connecting', gateway });
    let trust;
    try {
      trust = await trustGateway(address, o.target);
    } catch (e) {
      const err = toPalyraError(e);
      if (err.code === 'ca_pin_mismatch') throw err; // never fall through to another address on a pin failure
      lastError = err;
      continue;
    }
    emit({ type: 'verifying_gateway', gateway, ca_fingerprint: trust.caFingerprint, ca_pin: trust.caPin, pinned: trust.pinned });
    const client = createNodeServiceClient(gateway, createGatewayChannelCredentials({ caCertificatePem: trust.caPem }));
    try {
      return await pairOver(client, gateway, trust, { ...o, deviceName }, emit, clock, identity);
    } finally {
      client.close();
    }
  }
  throw lastError ?? new PalyraError('gateway_unreachable', 'no gateway address to try');
}

async function pairOver(
  client: NodeServiceClient,
  gateway: string,
  trust: { caPem: string; caFingerprint: string; caPin: string; pinned: boolean },
  o: PairOptions,
  emit: (event: PairingProgress) => void,
  clock: () => number,
  identity: Awaited<ReturnType<DeviceStore['loadOrCreateIdentity']>>,
): Promise<PairResult> {
  const kx = generatePairingKeyExchange();
  const commitment = x25519Commitment(kx.publicKey);
  // A PIN as typed or pasted ("655 376", "655-376") is reduced to its 6 digits here, for every caller (CLI, app).
  let proof = o.target.method === 'qr' ? o.target.uri.token : o.target.method === 'qr-token' ? o.target.token : normalizePinInput(o.target.pin);
  // PIN: v2 (SPAKE2+) whenever the gateway offers it; the v1 Begin (the PIN in the clear, TOFU) only if it does not.
  const v2 = o.target.method === 'pin' ? await pinPairingV2(client, trust.caPin, o, identity, commitment, proof) : null;
  let begin: Pick<BeginPairingSessionResponse__Output, 'session_id' | 'challenge' | 'gateway_ephemeral_public' | 'gateway_name'>;
  if (v2 !== null) {
    begin = v2.begin;
    proof = v2.proof;
  } else {
    const method = o.target.method === 'pin' ? { pin_code: proof } : { qr_token: proof };
    const beginRequest = { v: PAIRING_PROTOCOL_VERSION, client_kind: o.kind, method, device_x25519_commitment: Buffer.from(commitment) };
    begin = await callUnary<BeginPairingSessionResponse__Output>((md, opts, cb) => client.BeginPairingSession(beginRequest, md, opts, cb), RPC_TIMEOUT_MS, o.signal);
  }
  checkAborted(o.signal);
  const session = {
    sessionId: begin.session_id,
    protocolVersion: PAIRING_PROTOCOL_VERSION,
    clientKind: o.kind,
    challenge: new Uint8Array(begin.challenge),
    gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
  };
  const { hello, sas } = buildDeviceHello({ identity, session, proof, keyExchange: kx });
  const staged = await o.store.stageTlsKey();
  const csrDer = await createCertificateSigningRequest({ keys: staged.keys, deviceId: identity.deviceId });
  const completeRequest = {
    v: PAIRING_PROTOCOL_VERSION,
    session_id: hello.sessionId,
    device_id: { ulid: identity.deviceId },
    client_kind: o.kind,
    proof: '',
    device_signing_public: Buffer.from(hello.deviceSigningPublic),
    device_x25519_public: Buffer.from(hello.deviceX25519Public),
    challenge_signature: Buffer.from(hello.challengeSignature),
    transcript_mac: Buffer.from(hello.transcriptMac),
    tls_csr_der: Buffer.from(csrDer),
    tls_csr_signature: Buffer.from(signCsrBinding(identity, hello.sessionId, csrDer)),
    device_name: o.deviceName ?? '',
    pake_confirm_p: Buffer.from(v2?.confirmP ?? new Uint8Array()),
  };
  await callUnary<CompletePairingSessionResponse__Output>((md, opts, cb) => client.CompletePairingSession(completeRequest, md, opts, cb), RPC_TIMEOUT_MS, o.signal);
  const gatewayName = begin.gateway_name === '' ? (o.target.method === 'qr' ? o.target.uri.name : null) : begin.gateway_name;
  const verifiedBy = trust.pinned ? 'qr' : v2 !== null ? 'pin' : 'tofu';
  const awaiting: PairingProgress = {
    type: 'awaiting_approval',
    sas,
    request_id: hello.sessionId,
    gateway,
    gateway_name: gatewayName,
    sas_status: verifiedBy === 'tofu' ? 'compare' : 'confirmed',
    verified_by: verifiedBy,
  };
  emit(awaiting);

  const deadline = clock() + (o.waitMs ?? DEFAULT_PAIRING_WAIT_MS);
  let status: GetPairingRequestStatusResponse__Output;
  try {
    status = await waitForDecision({ client, gateway, requestId: hello.sessionId, deviceId: identity.deviceId, deadline, uriExpiry: o.target.method === 'qr' ? o.target.uri.expiresAtUnixS * 1000 : null, awaiting }, o, emit, clock);
  } catch (e) {
    if (o.signal?.aborted === true) throw await cancelAtGateway(client, identity, hello.sessionId);
    throw e;
  }
  if (status.mtls_client_certificate_pem === '') throw new PalyraError('internal', 'the gateway completed pairing without delivering a certificate');
  const certificate = parseCertificate(status.mtls_client_certificate_pem);
  // The certificate must be for our identity and our staged key, issued by the CA we trusted.
  if (certificate.deviceId !== identity.deviceId) throw new PalyraError('certificate_parsing_failed', 'the issued certificate names another device');
  if (certificate.spkiPin !== spkiPinFromSpkiDer(await exportSpkiDer(staged.keys.publicKey))) {
    throw new PalyraError('certificate_parsing_failed', 'the issued certificate is not for the key this device generated');
  }
  if (status.gateway_ca_certificate_pem !== '' && certificateFingerprint(status.gateway_ca_certificate_pem) !== trust.caFingerprint) {
    throw new PalyraError('ca_pin_mismatch', 'the gateway delivered a CA other than the one it presented');
  }
  const now = clock();
  const state: DevicePairingState = {
    device_id: identity.deviceId,
    identity_fingerprint: identity.fingerprint,
    paired: true,
    revoked: false,
    revoked_reason: null,
    gateway: {
      addresses: o.target.method === 'qr' ? o.target.uri.gateways.map(formatHostPort) : [gateway],
      name: gatewayName,
      ca_certificate_pem: trust.caPem,
      ca_fingerprint: trust.caFingerprint,
      ca_pin: trust.caPin,
      pinned_by: verifiedBy,
    },
    certificate_pem: status.mtls_client_certificate_pem,
    certificate_fingerprint: certificate.fingerprint,
    cert_expires_at_unix_ms: certificate.notAfterUnixMs,
    cert_issued_at_unix_ms: certificate.notBeforeUnixMs,
    client_kind: o.kind,
    paired_at_unix_ms: now,
    updated_at_unix_ms: now,
  };
  await o.store.writeState(state);
  await o.store.commitStagedTlsKey();
  emit({ type: 'paired', device_id: identity.deviceId, gateway, cert_expires_at_unix_ms: certificate.notAfterUnixMs });
  return { deviceId: identity.deviceId, sas, state };
}

/**
 * PIN pairing v2 rounds 1–2 (docs/PROTOCOL.md "PIN pairing v2"): BeginPinPairingSession, scrypt of the PIN with the
 * code's salt, ExchangePinPake, and the gateway's key confirmation checked before anything else is sent. Resolves
 * null when the gateway has no v2 (UNIMPLEMENTED); a failed confirmation is counted against this gateway's CA pin.
 */
async function pinPairingV2(
  client: NodeServiceClient,
  caPin: string,
  o: PairOptions,
  identity: DeviceIdentity,
  commitment: Uint8Array,
  pin: string,
): Promise<{ begin: BeginPinPairingSessionResponse__Output; proof: string; confirmP: Uint8Array } | null> {
  await assertPakeAttemptsLeft(o.store.deviceDir, caPin);
  const beginRequest = { v: PAIRING_PROTOCOL_VERSION, client_kind: o.kind, device_id: { ulid: identity.deviceId }, device_x25519_commitment: Buffer.from(commitment) };
  let begin: BeginPinPairingSessionResponse__Output;
  try {
    begin = await callUnary<BeginPinPairingSessionResponse__Output>((md, opts, cb) => client.BeginPinPairingSession(beginRequest, md, opts, cb), RPC_TIMEOUT_MS, o.signal);
  } catch (e) {
    const err = toPalyraError(e);
    if (err.details.grpc_status === grpc.status.UNIMPLEMENTED) return null;
    throw err;
  }
  if (begin.pake_suite !== SPAKE2PLUS_SUITE) throw new PalyraError('invalid_argument', 'the gateway offered an unknown PAKE suite');
  checkAborted(o.signal);
  const { shareP, state } = proverStart(await pinProverSecretNative(pin, new Uint8Array(begin.pake_salt)));
  const exchangeRequest = { v: PAIRING_PROTOCOL_VERSION, session_id: begin.session_id, pake_share_p: Buffer.from(shareP) };
  const exchanged = await callUnary<ExchangePinPakeResponse__Output>((md, opts, cb) => client.ExchangePinPake(exchangeRequest, md, opts, cb), RPC_TIMEOUT_MS, o.signal);
  const ctx = pinPairingPakeContext({
    sessionId: begin.session_id,
    clientKind: o.kind,
    gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
    deviceX25519Commitment: commitment,
    deviceId: identity.deviceId,
    caPin,
  });
  let result;
  try {
    result = proverFinish(state, new Uint8Array(exchanged.pake_share_v), new Uint8Array(exchanged.pake_confirm_v), ctx);
  } catch (e) {
    const err = toPalyraError(e);
    if (err.code !== 'pake_confirmation_failed') throw err;
    const failures = await recordPakeFailure(o.store.deviceDir, caPin);
    throw new PalyraError('pake_confirmation_failed', undefined, { details: { device_failures: failures, limit: DEVICE_PAKE_FAILURE_LIMIT } });
  }
  await clearPakeFailures(o.store.deviceDir, caPin);
  return { begin, proof: pinPairingV2Proof(result.sharedKey), confirmP: result.confirmP };
}

interface WaitInput {
  client: NodeServiceClient;
  gateway: string;
  requestId: string;
  deviceId: string;
  /** The device's own limit (`waitMs`). */
  deadline: number;
  /** The code's expiry from the QR URI, until the gateway tells the request's own. */
  uriExpiry: number | null;
  awaiting: PairingProgress;
}

/**
 * Long-polls the status until the request is completed (resolves) or rejected / expired / cancelled (throws). A
 * gateway that cannot be reached is retried with backoff while both the device's deadline and the request's expiry
 * lie ahead: a gateway restart keeps the request, so the wait goes on.
 */
async function waitForDecision(w: WaitInput, o: PairOptions, emit: (event: PairingProgress) => void, clock: () => number): Promise<GetPairingRequestStatusResponse__Output> {
  const backoff = new Backoff({ baseMs: STATUS_RETRY_BASE_MS, capMs: STATUS_RETRY_CAP_MS, ...(o.random === undefined ? {} : { random: o.random }) });
  let expiresAt = w.uriExpiry;
  for (;;) {
    checkAborted(o.signal);
    const remaining = w.deadline - clock();
    if (remaining <= 0) throw new PalyraError('timeout', 'gave up waiting for the operator to approve this device');
    const statusRequest = { v: PAIRING_PROTOCOL_VERSION, session_id: w.requestId, device_id: { ulid: w.deviceId }, wait_ms: Math.min(STATUS_WAIT_MS, remaining) };
    let status: GetPairingRequestStatusResponse__Output;
    try {
      status = await callUnary<GetPairingRequestStatusResponse__Output>(
        (md, opts, cb) => w.client.GetPairingRequestStatus(statusRequest, md, opts, cb),
        Math.min(STATUS_WAIT_MS, remaining) + RPC_TIMEOUT_MS,
        o.signal,
      );
    } catch (e) {
      const err = toPalyraError(e);
      if (o.signal?.aborted === true || !UNREACHABLE_CODES.has(err.code)) throw err;
      const now = clock();
      if (expiresAt !== null && now >= expiresAt) throw new PalyraError('pairing_expired', 'the pairing request expired while the gateway could not be reached');
      const delay = Math.min(backoff.next(), Math.max(0, w.deadline - now), expiresAt === null ? Number.POSITIVE_INFINITY : Math.max(0, expiresAt - now));
      emit({ type: 'reconnecting', gateway: w.gateway, request_id: w.requestId, attempt: backoff.failures, retry_in_ms: delay, code: err.code });
      await abortableSleep(delay, o.signal);
      continue;
    }
    if (status.request_expires_at_unix_ms > 0) expiresAt = status.request_expires_at_unix_ms;
    if (backoff.failures > 0) {
      backoff.reset();
      emit(w.awaiting);
    }
    if (status.status === 'rejected') throw new PalyraError('pairing_rejected', `the operator rejected this device${status.reason ? `: ${status.reason}` : ''}`, { details: { reason: status.reason || null } });
    if (status.status === 'expired') throw new PalyraError('pairing_expired');
    if (status.status === 'cancelled') throw new PalyraError('cancelled', 'the pairing request was cancelled');
    if (status.status === 'completed') return status;
  }
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * The user cancelled while the request is filed: tell the gateway, so the operator sees "cancelled" instead of a
 * request nobody waits for. Best effort with a short deadline; returns the `cancelled` error to throw.
 */
async function cancelAtGateway(client: NodeServiceClient, identity: DeviceIdentity, requestId: string): Promise<PalyraError> {
  const request = {
    v: PAIRING_PROTOCOL_VERSION,
    session_id: requestId,
    device_id: { ulid: identity.deviceId },
    cancel_signature: Buffer.from(signPairingCancel(identity, requestId)),
  };
  try {
    await callUnary<CancelPairingRequestResponse__Output>((md, opts, cb) => client.CancelPairingRequest(request, md, opts, cb), CANCEL_TIMEOUT_MS);
    return new PalyraError('cancelled', 'pairing was cancelled; the gateway withdrew the request', { details: { cancelled_at_gateway: true } });
  } catch (e) {
    const err = toPalyraError(e);
    return new PalyraError('cancelled', `pairing was cancelled; the gateway could not be told (${err.code})`, { details: { cancelled_at_gateway: false, gateway_error: err.code } });
  }
}
