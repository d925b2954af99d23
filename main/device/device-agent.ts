/**
 * The device agent (ARCHITECTURE.md "device/"; PROTOCOL.md §2–§5): the device side as one service, used in-process by
 * the desktop app and wrapped by `palyra device …`. It pairs (PairingClient), then runs connected: RegisterNode and
 * an event stream with heartbeats, serves the node capabilities, reconnects with backoff, renews its certificate
 * over mTLS at two thirds of its life with a fresh key, and stops for good when the gateway revokes it or the
 * certificate expired. Everything it does is reported as typed events.
 */

import { X509Certificate } from 'node:crypto';
import type { ClientKind } from '../core/client-kind.js';
import { certificateFingerprint, parseCertificate, spkiPinFromSpkiDer } from '../core/certificates.js';
import type { CertificateInfo } from '../core/certificates.js';
import { createCertificateSigningRequest } from '../core/csr.js';
import type { DeviceIdentity } from '../core/device-identity.js';
import { isPalyraError, PalyraError, toPalyraError } from '../core/errors.js';
import { PAIRING_PROTOCOL_VERSION, signCsrBinding } from '../core/handshake.js';
import { parseHostPort } from '../core/net-address.js';
import { exportSpkiDer } from '../core/x509-keys.js';
import type { NodeCapabilityDispatch__Output, RevokeDevicePairingResponse__Output, RotateDeviceCertificateResponse__Output } from '../rpc/node-service.js';
import { callUnary } from '../rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../rpc/tls-client.js';
import type { Keychain } from '../store/keychain.js';
import { Backoff } from './backoff.js';
import { capabilityResultPayload, MEDIATED_CAPABILITIES, NODE_CAPABILITIES, runCapability } from './capabilities.js';
import type { CapabilityHost } from './capabilities.js';
import { probeClientCertificate } from './certificate-probe.js';
import { DeviceStore } from './device-store.js';
import type { DevicePairingState, KeychainMode, KeychainState } from './device-store.js';
import { NodeSession, SESSION_RPC_TIMEOUT_MS } from './node-session.js';
import type { SessionEnd } from './node-session.js';
import { pairDevice } from './pairing-client.js';
import type { PairingProgress, PairingTarget, PairResult } from './pairing-client.js';

/**
 * Liveness heartbeat once the gateway pushes dispatch (work does not wait for it); towards a gateway that does not
 * push, the session polls at most every POLL_HEARTBEAT_MS instead.
 */
export const DEFAULT_HEARTBEAT_MS = 15_000;
/** Smallest heartbeat interval accepted (each heartbeat is a gateway round trip). */
const MIN_HEARTBEAT_MS = 20;
/** Renewal at two thirds of the certificate's life, give or take a thirtieth of it. */
const RENEWAL_FRACTION = 2 / 3;
const RENEWAL_JITTER_FRACTION = 1 / 30;
/** After a failed renewal: retry after a tenth of the remaining life, within these bounds. */
const RENEWAL_RETRY_MIN_MS = 1_000;
const RENEWAL_RETRY_MAX_MS = 60_000;
/** Consecutive "handshake done, then silently dropped" probes that mean our certificate is refused (revoked). */
const SILENT_REFUSALS_FOR_REVOCATION = 2;
/** Results kept while offline, sent after the next connect (the gateway keeps dispatched requests ~30 s). */
const MAX_OUTBOX = 64;
/** setTimeout's ceiling. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface AgentStatus {
  device_id: string | null;
  identity_fingerprint: string | null;
  paired: boolean;
  revoked: boolean;
  /** The first gateway address. */
  gateway: string | null;
  gateway_name: string | null;
  ca_fingerprint: string | null;
  pinned_by: 'qr' | 'pin' | 'tofu' | null;
  cert_expires_at_unix_ms: number | null;
  keychain: KeychainState;
  connection: ConnectionState;
  renewal: RenewalState;
}

export type ConnectionState = 'offline' | 'connecting' | 'online';
export type RenewalState = 'idle' | 'renewing' | 'failed';
export type CapabilityEventState = 'started' | 'succeeded' | 'failed' | 'denied';

/**
 * Everything the agent reports. Pairing progress comes from pair(); its `failed` shape is also what start() emits
 * when the connected mode cannot go on for a local reason (e.g. a locked keychain). `revoked`, `reauth_required`
 * and `failed` end the connected mode; the others are informational.
 */
export type AgentEvent =
  | PairingProgress
  /**
   * `code`: why the last attempt failed, as the gateway said it (`certificate_unknown`, `unauthenticated_call_limit`,
   * …) or `gateway_unreachable` when nothing answered; only on 'offline' after a failure.
   */
  | { type: 'connection'; state: ConnectionState; attempt?: number; retry_in_ms?: number; code?: string }
  | { type: 'renewed'; cert_expires_at_unix_ms: number }
  | { type: 'renewal_failed'; code: string }
  | { type: 'revoked'; reason: string }
  | { type: 'reauth_required'; reason: string }
  | { type: 'capability'; request_id: string; capability: string; state: CapabilityEventState }
  | { type: 'unpaired' };

export interface DeviceAgentOptions {
  deviceDir: string;
  keychain: KeychainMode;
  /** For mode 'os': omitted = the OS keychain (keytar), null = none (secret operations then fail). */
  osKeychain?: Keychain | null;
  clock?: () => number;
  /** Reported in RegisterNode; default `${process.platform}-${process.arch}`. */
  platform?: string;
  /** Asks the person at the device before desktop.open_url; true = agreed and opened. Absent = always denied. */
  confirmOpenUrl?: (url: string) => Promise<boolean>;
  notify?: (title: string, body: string) => void;
  /** Heartbeat interval on a pushed stream (default 15 s); see DEFAULT_HEARTBEAT_MS. */
  heartbeatMs?: number;
  /** Ask the gateway for pushed dispatch (default true); false polls like a reference node. */
  pushDispatch?: boolean;
  /** Diagnostic lines (desktop.notify without `notify`, failures that are retried). */
  log?: (line: Record<string, unknown>) => void;
  /** Uniform in [0, 1): backoff and renewal jitter; injectable for tests. */
  random?: () => number;
}

export interface UnpairResult {
  device_id: string | null;
  /** The gateway confirmed the revocation (or had already revoked this device). */
  revoked_at_gateway: boolean;
  /** Why the gateway could not be told; the local material is wiped regardless. */
  gateway_error: { code: string; message: string } | null;
}

/** A gateway status that means this device or its certificate is revoked. */
export function isRevocationError(error: unknown): boolean {
  return isPalyraError(error, 'device_revoked') || isPalyraError(error, 'certificate_revoked');
}

const REVOKED_TEXT = /revoked/i;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The certificate the gateway issued must be for the key we staged, name our device, and be signed by the CA we
 * trusted at pairing; otherwise it is refused before anything is stored.
 */
async function verifyIssuedCertificate(pem: string, o: { deviceId: string; publicKey: CryptoKey; caCertificatePem: string; now: number }): Promise<CertificateInfo> {
  const info = parseCertificate(pem);
  if (info.deviceId !== o.deviceId) throw new PalyraError('certificate_parsing_failed', 'the renewed certificate names another device');
  if (info.spkiPin !== spkiPinFromSpkiDer(await exportSpkiDer(o.publicKey))) {
    throw new PalyraError('certificate_parsing_failed', 'the renewed certificate is not for the key this device generated');
  }
  let signedByCa = false;
  try {
    const leaf = new X509Certificate(pem);
    const ca = new X509Certificate(o.caCertificatePem);
    signedByCa = leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    signedByCa = false;
  }
  if (!signedByCa) throw new PalyraError('certificate_parsing_failed', 'the renewed certificate is not signed by the gateway CA this device trusts');
  if (info.notAfterUnixMs <= o.now) throw new PalyraError('certificate_parsing_failed', 'the renewed certificate has already expired');
  return info;
}

export class DeviceAgent {
  readonly store: DeviceStore;
  readonly #clock: () => number;
  readonly #platform: string;
  readonly #confirmOpenUrl: ((url: string) => Promise<boolean>) | undefined;
  readonly #notify: ((title: string, body: string) => void) | undefined;
  readonly #heartbeatMs: number;
  readonly #pushDispatch: boolean;
  readonly #log: (line: Record<string, unknown>) => void;
  readonly #random: () => number;
  readonly #listeners = new Set<(event: AgentEvent) => void>();
  readonly #startedAt = performance.now();

  #running = false;
  #abort: AbortController | null = null;
  #loop: Promise<void> | null = null;
  #session: NodeSession | null = null;
  /** Sessions on a superseded certificate, finishing their last answers. */
  readonly #draining = new Set<NodeSession>();
  #identity: DeviceIdentity | null = null;
  /** The pairing state the running agent acts on (re-read at each connect, replaced on renewal). */
  #state: DevicePairingState | null = null;
  #connection: ConnectionState = 'offline';
  #renewal: RenewalState = 'idle';
  #renewing: Promise<void> | null = null;
  #renewalTimer: NodeJS.Timeout | null = null;
  #expiryTimer: NodeJS.Timeout | null = null;
  /** Renewal time per certificate fingerprint, so its jitter is drawn once. */
  #renewAt: { fingerprint: string; at: number } | null = null;
  #outbox: { name: string; payload: unknown }[] = [];

  private constructor(store: DeviceStore, o: DeviceAgentOptions) {
    this.store = store;
    this.#clock = o.clock ?? Date.now;
    this.#platform = o.platform ?? `${process.platform}-${process.arch}`;
    this.#confirmOpenUrl = o.confirmOpenUrl;
    this.#notify = o.notify;
    this.#heartbeatMs = o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#pushDispatch = o.pushDispatch ?? true;
    this.#log = o.log ?? (() => undefined);
    this.#random = o.random ?? Math.random;
  }

  /** Opens the device dir (created 0700 if missing); touches no secret. */
  static async open(o: DeviceAgentOptions): Promise<DeviceAgent> {
    if (o.heartbeatMs !== undefined && (!Number.isFinite(o.heartbeatMs) || o.heartbeatMs < MIN_HEARTBEAT_MS)) {
      throw new PalyraError('invalid_argument', `heartbeatMs must be at least ${MIN_HEARTBEAT_MS}`);
    }
    const store = await DeviceStore.open({
      deviceDir: o.deviceDir,
      keychain: o.keychain,
      ...(o.osKeychain === undefined ? {} : { osKeychain: o.osKeychain }),
      ...(o.log === undefined ? {} : { log: o.log }),
    });
    return new DeviceAgent(store, o);
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(listener: (event: AgentEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  get running(): boolean {
    return this.#running;
  }

  /**
   * What the device is. A locked keychain is reported as `keychain: 'locked'` with what the non-secret state says;
   * no identity is ever generated here.
   */
  async status(): Promise<AgentStatus> {
    const keychain = await this.store.keychainState();
    // Locked: the seal cannot be checked, so the file is only shown (nothing connects without the keychain anyway).
    const state = keychain === 'locked' ? await this.store.peekState() : await this.store.readState();
    const identity = keychain === 'locked' ? null : await this.store.loadIdentity();
    const gateway = state?.gateway ?? null;
    return {
      device_id: identity?.deviceId ?? state?.device_id ?? null,
      identity_fingerprint: identity?.fingerprint ?? state?.identity_fingerprint ?? null,
      paired: state !== null && state.paired && !state.revoked,
      revoked: state?.revoked === true,
      gateway: gateway?.addresses[0] ?? null,
      gateway_name: gateway?.name ?? null,
      ca_fingerprint: gateway?.ca_fingerprint ?? null,
      pinned_by: gateway?.pinned_by ?? null,
      cert_expires_at_unix_ms: state?.cert_expires_at_unix_ms ?? null,
      keychain,
      connection: this.#connection,
      renewal: this.#renewal,
    };
  }

  /** Pairs (or re-pairs) this device; progress events go to the listeners. Not while the agent runs. */
  /** `deviceName`: the display name sent to the gateway (absent or blank: the gateway derives one). */
  async pair(target: PairingTarget, o: { kind: ClientKind; deviceName?: string; waitMs?: number; signal?: AbortSignal }): Promise<PairResult> {
    if (this.#running) throw new PalyraError('invalid_argument', 'stop the device agent before pairing again');
    const result = await pairDevice({
      store: this.store,
      target,
      kind: o.kind,
      clock: this.#clock,
      onProgress: (event) => {
        this.#emit(event);
      },
      ...(o.deviceName === undefined ? {} : { deviceName: o.deviceName }),
      ...(o.waitMs === undefined ? {} : { waitMs: o.waitMs }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    this.#renewal = 'idle';
    return result;
  }

  /** Runs connected in the background until stop(), revocation or an expired certificate. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = this.#run(abort.signal).catch((error: unknown) => {
      const err = toPalyraError(error);
      this.#log({ event: 'agent.failed', code: err.code, message: err.message });
      // After stop() a failure is only the teardown's; otherwise the connected mode cannot go on (e.g. a locked keychain).
      if (abort.signal.aborted) return;
      this.#halt();
      this.#emit({ type: 'failed', code: err.code, message: err.message });
    });
  }

  /** Stops the connected mode; resolves once every channel and timer is gone. */
  async stop(): Promise<void> {
    this.#halt();
    await this.#loop;
    this.#loop = null;
    await this.#renewing?.catch(() => undefined);
  }

  /**
   * Tells the gateway to revoke this device (RevokeDevicePairing over mTLS, if it can be reached), then wipes the
   * identity, keys and state. An unreachable gateway does not stop the wipe; the result says so.
   */
  async unpair(): Promise<UnpairResult> {
    await this.stop();
    let state: DevicePairingState | null = null;
    let gatewayError: UnpairResult['gateway_error'] = null;
    let deviceId: string | null;
    try {
      state = await this.store.readState();
      deviceId = state?.device_id ?? null;
    } catch (error) {
      // A state that fails its seal names a gateway nobody can vouch for: wipe without telling it.
      if (!isPalyraError(error, 'device_state_corrupt')) throw error;
      gatewayError = { code: error.code, message: error.message };
      deviceId = await this.store.storedDeviceId();
    }
    let revokedAtGateway = state?.revoked === true;
    if (state !== null && !state.revoked && state.paired && state.certificate_pem !== null && state.gateway !== null) {
      try {
        await this.#revokeAtGateway(state);
        revokedAtGateway = true;
      } catch (error) {
        const err = toPalyraError(error);
        if (isRevocationError(err)) revokedAtGateway = true;
        else gatewayError = { code: err.code, message: err.message };
      }
    }
    await this.store.wipe();
    this.#state = null;
    this.#identity = null;
    this.#renewal = 'idle';
    this.#emit({ type: 'unpaired' });
    return { device_id: deviceId, revoked_at_gateway: revokedAtGateway, gateway_error: gatewayError };
  }

  // --- connected mode --------------------------------------------------------------------------------------------

  async #run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ random: this.#random });
    let attempt = 0;
    /** Which of the gateway's addresses (every replica a QR listed) the next attempt dials; moves on after each failure or loss. */
    let next = 0;
    let silentRefusals = 0;
    // A function, so the checks after each await are not narrowed away by the loop condition.
    const stopped = (): boolean => signal.aborted;
    this.#identity = await this.store.loadIdentity();
    while (!stopped()) {
      const state = await this.store.readState();
      if (state?.revoked === true) {
        await this.#onRevoked(state.revoked_reason ?? 'device is revoked', false);
        return;
      }
      const identity = this.#identity;
      if (state === null || identity === null || !state.paired || state.certificate_pem === null || state.gateway === null || state.cert_expires_at_unix_ms === null) {
        this.#endForReauth('this device is not paired; pair it with a gateway first');
        return;
      }
      if (state.cert_expires_at_unix_ms <= this.#clock()) {
        await this.#onExpired(state);
        return;
      }
      const privateKeyPem = await this.store.loadTlsPrivateKeyPem();
      if (privateKeyPem === null) {
        this.#endForReauth('the private key of the device certificate is missing; pair this device again');
        return;
      }
      this.#state = state;
      this.#armExpiry(state);
      attempt += 1;
      const addresses = state.gateway.addresses;
      const address = addresses[next % addresses.length]!;
      this.#setConnection('connecting', { attempt });
      let end: SessionEnd;
      let wasOnline = false;
      try {
        const session = await this.#openSession(state, privateKeyPem, address, 'node.started', signal);
        if (stopped()) {
          session.close();
          return;
        }
        this.#session = session;
        wasOnline = true;
        attempt = 0;
        silentRefusals = 0;
        backoff.reset();
        this.#setConnection('online');
        this.#flushOutbox();
        this.#armRenewal();
        end = await this.#currentSessionEnd();
      } catch (error) {
        end = { error: toPalyraError(error), local: false };
      }
      if (stopped()) return;
      if (isRevocationError(end.error)) {
        await this.#onRevoked(end.error.message, true);
        return;
      }
      if (!wasOnline) {
        // Refused at the handshake? gRPC only says UNAVAILABLE; a probe with the same certificate tells.
        const verdict = REVOKED_TEXT.test(end.error.message)
          ? { kind: 'revoked' as const, detail: end.error.message }
          : await this.#probe(state, privateKeyPem, address, signal);
        if (stopped()) return;
        if (verdict.kind === 'revoked') {
          await this.#onRevoked(`the gateway refused this device's certificate: ${verdict.detail}`, true);
          return;
        }
        silentRefusals = verdict.kind === 'refused' ? silentRefusals + 1 : 0;
        if (silentRefusals >= SILENT_REFUSALS_FOR_REVOCATION) {
          await this.#onRevoked("the gateway refuses this device's certificate at the TLS handshake (revoked)", true);
          return;
        }
      }
      // The next attempt tries another address first (another replica, when its gateway died).
      next = (next + 1) % addresses.length;
      this.#log({ event: 'connection.lost', code: end.error.code, message: end.error.message });
      const delay = backoff.next();
      this.#setConnection('offline', { attempt: backoff.failures, retry_in_ms: delay, code: end.error.code });
      await sleep(delay, signal);
    }
  }

  #probe(state: DevicePairingState, privateKeyPem: string, address: string, signal: AbortSignal): ReturnType<typeof probeClientCertificate> {
    const { host, port } = parseHostPort(address);
    return probeClientCertificate({
      host,
      port,
      caCertificatePem: state.gateway!.ca_certificate_pem,
      certificatePem: state.certificate_pem!,
      privateKeyPem,
      signal,
    });
  }

  #openSession(state: DevicePairingState, privateKeyPem: string, address: string, firstEvent: string, signal: AbortSignal | undefined): Promise<NodeSession> {
    return NodeSession.open({
      address,
      deviceId: state.device_id,
      caCertificatePem: state.gateway!.ca_certificate_pem,
      certificatePem: state.certificate_pem!,
      certificateFingerprint: state.certificate_fingerprint!,
      privateKeyPem,
      platform: this.#platform,
      capabilities: NODE_CAPABILITIES,
      firstEvent: { name: firstEvent, payload: { platform: this.#platform, capabilities: [...NODE_CAPABILITIES], cert_expires_at_unix_ms: state.cert_expires_at_unix_ms } },
      heartbeatMs: this.#heartbeatMs,
      pushDispatch: this.#pushDispatch,
      onDispatch: (dispatch) => {
        void this.#serve(dispatch);
      },
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /** Waits for the end of whichever session is current; a session replaced after a renewal does not count. */
  async #currentSessionEnd(): Promise<SessionEnd> {
    for (;;) {
      const session = this.#session;
      if (session === null) return { error: new PalyraError('cancelled', 'stopped'), local: true };
      const end = await session.ended;
      if (this.#session === session) {
        this.#session = null;
        return end;
      }
    }
  }

  #setConnection(state: ConnectionState, extra: { attempt?: number; retry_in_ms?: number; code?: string } = {}): void {
    this.#connection = state;
    this.#emit({ type: 'connection', state, ...extra });
  }

  /** Stops the connected mode synchronously: no loop, no channel, no timer is left behind. */
  #halt(): void {
    this.#running = false;
    this.#abort?.abort();
    this.#clearTimers();
    const session = this.#session;
    this.#session = null;
    session?.close();
    for (const old of this.#draining) old.close();
    this.#draining.clear();
    this.#outbox = [];
    if (this.#connection !== 'offline') this.#setConnection('offline');
  }

  #clearTimers(): void {
    if (this.#renewalTimer !== null) clearTimeout(this.#renewalTimer);
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer);
    this.#renewalTimer = null;
    this.#expiryTimer = null;
  }

  #endForReauth(reason: string): void {
    this.#halt();
    this.#emit({ type: 'reauth_required', reason });
  }

  /** Revoked (by the gateway, or found so in the state): record it, stop, tell. */
  async #onRevoked(reason: string, record: boolean): Promise<void> {
    this.#halt();
    if (record) {
      try {
        await this.store.updateState((current) => {
          if (current === null) throw new PalyraError('device_not_paired', 'no pairing state to mark revoked');
          return { ...current, paired: false, revoked: true, revoked_reason: reason, updated_at_unix_ms: this.#clock() };
        });
      } catch (error) {
        const err = toPalyraError(error);
        this.#log({ event: 'revocation.record_failed', code: err.code, message: err.message });
      }
    }
    this.#emit({ type: 'revoked', reason });
  }

  /** The certificate expired unrenewed: it is useless now, so it is cleared; only a new pairing helps. */
  async #onExpired(state: DevicePairingState): Promise<void> {
    this.#halt();
    const expiredAt = state.cert_expires_at_unix_ms ?? this.#clock();
    try {
      await this.store.updateState((current) => {
        if (current === null) throw new PalyraError('device_not_paired', 'no pairing state to clear');
        if (current.certificate_fingerprint !== state.certificate_fingerprint) return current;
        return {
          ...current,
          paired: false,
          certificate_pem: null,
          certificate_fingerprint: null,
          cert_expires_at_unix_ms: null,
          cert_issued_at_unix_ms: null,
          updated_at_unix_ms: this.#clock(),
        };
      });
    } catch (error) {
      const err = toPalyraError(error);
      this.#log({ event: 'expiry.record_failed', code: err.code, message: err.message });
    }
    this.#emit({ type: 'reauth_required', reason: `the device certificate expired at ${new Date(expiredAt).toISOString()}; pair this device again` });
  }

  #armExpiry(state: DevicePairingState): void {
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer);
    const expiresAt = state.cert_expires_at_unix_ms ?? this.#clock();
    const delay = Math.min(Math.max(expiresAt - this.#clock(), 0), MAX_TIMER_MS);
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = null;
      const current = this.#state;
      if (!this.#running || current === null || current.certificate_fingerprint !== state.certificate_fingerprint) return;
      if ((current.cert_expires_at_unix_ms ?? 0) > this.#clock()) {
        this.#armExpiry(current);
        return;
      }
      void this.#onExpired(current);
    }, delay);
    this.#expiryTimer.unref();
  }

  // --- renewal ---------------------------------------------------------------------------------------------------

  /** Two thirds into the current certificate's life (± jitter), drawn once per certificate. */
  #renewalTime(state: DevicePairingState): number {
    const fingerprint = state.certificate_fingerprint ?? '';
    if (this.#renewAt?.fingerprint === fingerprint) return this.#renewAt.at;
    const expiresAt = state.cert_expires_at_unix_ms ?? this.#clock();
    const issuedAt = Math.min(state.cert_issued_at_unix_ms ?? expiresAt, expiresAt);
    const life = expiresAt - issuedAt;
    const jitter = (this.#random() * 2 - 1) * life * RENEWAL_JITTER_FRACTION;
    const at = issuedAt + life * RENEWAL_FRACTION + jitter;
    this.#renewAt = { fingerprint, at };
    return at;
  }

  /** Schedules the renewal of the current certificate (at once if it is due); only while online. */
  #armRenewal(delayOverride?: number): void {
    if (this.#renewalTimer !== null) clearTimeout(this.#renewalTimer);
    this.#renewalTimer = null;
    const state = this.#state;
    if (!this.#running || state === null) return;
    const delay = delayOverride ?? this.#renewalTime(state) - this.#clock();
    if (delay <= 0) {
      void this.#renew();
      return;
    }
    this.#renewalTimer = setTimeout(() => {
      this.#renewalTimer = null;
      void this.#renew();
    }, Math.min(delay, MAX_TIMER_MS));
    this.#renewalTimer.unref();
  }

  #renew(): Promise<void> {
    this.#renewing ??= this.#renewOnce().finally(() => {
      this.#renewing = null;
    });
    return this.#renewing;
  }

  /**
   * Fresh key → CSR bound to the identity → RotateDeviceCertificate on the current channel → check the certificate →
   * store it → move to a new channel with it, then close the old one (the node stays online throughout).
   */
  async #renewOnce(): Promise<void> {
    const session = this.#session;
    const state = this.#state;
    const identity = this.#identity;
    // Offline: the loop arms the renewal again once a session is up.
    if (!this.#running || session === null || !session.isOpen || state === null || identity === null || state.gateway === null) return;
    this.#renewal = 'renewing';
    try {
      const staged = await this.store.stageTlsKey();
      const csrDer = await createCertificateSigningRequest({ keys: staged.keys, deviceId: state.device_id });
      const request = {
        v: PAIRING_PROTOCOL_VERSION,
        device_id: { ulid: state.device_id },
        tls_csr_der: Buffer.from(csrDer),
        tls_csr_signature: Buffer.from(signCsrBinding(identity, state.device_id, csrDer)),
      };
      const response = await callUnary<RotateDeviceCertificateResponse__Output>(
        (md, opts, cb) => session.client.RotateDeviceCertificate(request, md, opts, cb),
        SESSION_RPC_TIMEOUT_MS,
      );
      if (!response.rotated || response.mtls_client_certificate_pem === '') {
        throw new PalyraError('internal', `the gateway did not rotate the certificate: ${response.reason || 'no reason given'}`);
      }
      const certificate = await verifyIssuedCertificate(response.mtls_client_certificate_pem, {
        deviceId: state.device_id,
        publicKey: staged.keys.publicKey,
        caCertificatePem: state.gateway.ca_certificate_pem,
        now: this.#clock(),
      });
      const next: DevicePairingState = {
        ...state,
        certificate_pem: response.mtls_client_certificate_pem,
        certificate_fingerprint: certificate.fingerprint,
        cert_expires_at_unix_ms: certificate.notAfterUnixMs,
        cert_issued_at_unix_ms: certificate.notBeforeUnixMs,
        updated_at_unix_ms: this.#clock(),
      };
      await this.store.writeState(next);
      await this.store.commitStagedTlsKey();
      this.#state = next;
      // Stopped while the rotation was in flight: the new certificate is stored for the next start.
      if (this.running) {
        this.#armExpiry(next);
        await this.#moveToNewCertificate(session, next, staged.privateKeyPem);
      }
      this.#renewal = 'idle';
      this.#emit({ type: 'renewed', cert_expires_at_unix_ms: certificate.notAfterUnixMs });
    } catch (error) {
      const err = toPalyraError(error);
      if (isRevocationError(err)) {
        await this.#onRevoked(err.message, true);
        return;
      }
      this.#renewal = 'failed';
      this.#log({ event: 'renewal.failed', code: err.code, message: err.message });
      this.#emit({ type: 'renewal_failed', code: err.code });
      const remaining = (state.cert_expires_at_unix_ms ?? this.#clock()) - this.#clock();
      this.#armRenewal(Math.min(Math.max(remaining / 10, RENEWAL_RETRY_MIN_MS), RENEWAL_RETRY_MAX_MS));
    }
  }

  /** A new channel and stream with the renewed certificate become current before the old session is closed. */
  async #moveToNewCertificate(old: NodeSession, next: DevicePairingState, privateKeyPem: string): Promise<void> {
    let replacement: NodeSession | null = null;
    try {
      replacement = await this.#openSession(next, privateKeyPem, old.address, 'node.reconnected', this.#abort?.signal);
    } catch (error) {
      const err = toPalyraError(error);
      this.#log({ event: 'renewal.reconnect_failed', code: err.code, message: err.message });
    }
    if (!this.#running || this.#session !== old) {
      replacement?.close();
      return;
    }
    if (replacement === null) {
      // The old channel dies within the gateway's rotation grace anyway; reconnect now with the new certificate.
      old.close();
      return;
    }
    this.#session = replacement;
    // Gracefully: a dispatch the gateway already put on the old stream is still received and served.
    this.#draining.add(old);
    void old.ended.then(() => this.#draining.delete(old));
    old.drain();
    this.#flushOutbox();
    this.#armRenewal();
  }

  // --- capabilities ----------------------------------------------------------------------------------------------

  async #serve(dispatch: NodeCapabilityDispatch__Output): Promise<void> {
    const requestId = dispatch.request_id?.ulid ?? '';
    const capability = dispatch.capability;
    this.#emit({ type: 'capability', request_id: requestId, capability, state: 'started' });
    if (MEDIATED_CAPABILITIES.has(capability)) {
      this.#send('capability.awaiting_local_mediation', { request_id: requestId, capability, state: 'awaiting_local_mediation' });
    }
    const outcome = await runCapability(capability, dispatch.input_json, this.#capabilityHost());
    const result = capabilityResultPayload(requestId, outcome, dispatch.max_payload_bytes);
    this.#send('capability.result', result.payload);
    this.#emit({ type: 'capability', request_id: requestId, capability, state: result.state });
  }

  #capabilityHost(): CapabilityHost {
    const state = this.#state;
    const identity = this.#identity;
    return {
      deviceId: state?.device_id ?? identity?.deviceId ?? '',
      identityFingerprint: identity?.fingerprint ?? state?.identity_fingerprint ?? '',
      clientKind: state?.client_kind ?? 'node',
      platform: this.#platform,
      certificateFingerprint: state?.certificate_fingerprint ?? null,
      certExpiresAtUnixMs: state?.cert_expires_at_unix_ms ?? null,
      gatewayCaFingerprint: state?.gateway?.ca_fingerprint ?? null,
      uptimeMs: performance.now() - this.#startedAt,
      confirmOpenUrl: this.#confirmOpenUrl,
      notify: this.#notify,
      log: this.#log,
    };
  }

  /** Sends on the current session, or keeps the event for the next one. */
  #send(name: string, payload: unknown): void {
    if (this.#session?.send(name, payload) === true) return;
    if (!this.#running) return;
    this.#outbox.push({ name, payload });
    if (this.#outbox.length > MAX_OUTBOX) this.#outbox.shift();
  }

  #flushOutbox(): void {
    const pending = this.#outbox;
    this.#outbox = [];
    for (const { name, payload } of pending) this.#send(name, payload);
  }

  // --- unpair ----------------------------------------------------------------------------------------------------

  async #revokeAtGateway(state: DevicePairingState): Promise<void> {
    const privateKeyPem = await this.store.loadTlsPrivateKeyPem();
    if (privateKeyPem === null || state.gateway === null || state.certificate_pem === null) {
      throw new PalyraError('device_not_paired', 'no certificate to authenticate the revocation with');
    }
    if (certificateFingerprint(state.certificate_pem) !== state.certificate_fingerprint) {
      throw new PalyraError('state_corrupt', 'the stored certificate does not match its fingerprint');
    }
    let lastError: PalyraError | null = null;
    for (const address of state.gateway.addresses) {
      const client = createNodeServiceClient(
        address,
        createGatewayChannelCredentials({ caCertificatePem: state.gateway.ca_certificate_pem, clientCertificatePem: state.certificate_pem, clientPrivateKeyPem: privateKeyPem }),
      );
      try {
        const request = { v: PAIRING_PROTOCOL_VERSION, device_id: { ulid: state.device_id }, reason: 'unpaired_by_device' };
        await callUnary<RevokeDevicePairingResponse__Output>((md, opts, cb) => client.RevokeDevicePairing(request, md, opts, cb), SESSION_RPC_TIMEOUT_MS);
        return;
      } catch (error) {
        lastError = toPalyraError(error);
        if (isRevocationError(lastError)) throw lastError;
      } finally {
        client.close();
      }
    }
    throw lastError ?? new PalyraError('gateway_unreachable', 'no gateway address to reach');
  }

  #emit(event: AgentEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        // A failing listener must not break the agent.
      }
    }
  }
}
