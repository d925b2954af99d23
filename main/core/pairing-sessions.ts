/**
 * The gateway's in-memory pairing sessions (REFERENCE.md §1.8, §2.2, §2.6, §2.7): start with rate limit and
 * capacity, then single-use verification of the device's hello, plus our rules of PROTOCOL.md §2–3 (key-derived
 * device ids, X25519 commitment, no all-zero shared secret). Never persisted: a restart drops in-flight sessions.
 */

import { constantTimeEqual, toHex, utf8 } from './bytes.js';
import { isClientKind, type ClientKind } from './client-kind.js';
import { x25519PublicKey } from './crypto.js';
import { X25519_KEY_LENGTH, identityFingerprint, x25519Commitment } from './device-identity.js';
import { PalyraError } from './errors.js';
import {
  CHALLENGE_LENGTH,
  PAIRING_PROTOCOL_VERSION,
  deriveTranscriptMac,
  isValidEd25519PublicKey,
  signaturePayload,
  transcriptContext,
  transcriptHash,
  verifyEd25519Strict,
  x25519SharedSecret,
  type DevicePairingHelloFields,
} from './handshake.js';
import { isDerivedDeviceId, newUlid, validateCanonicalId } from './ids.js';
import { computeSas } from './sas.js';
import { isPairingMethodKind, validatePairingProof } from './pairing-codes.js';
import type { PairingMethodKind } from './pairing-codes.js';

export type { PairingMethodKind } from './pairing-codes.js';

/** Session lifetime (reference DEFAULT_PAIRING_WINDOW, 300 s). */
export const DEFAULT_PAIRING_WINDOW_MS = 300_000;
/** Most sessions held at once (reference MAX_ACTIVE_PAIRING_SESSIONS). */
export const MAX_ACTIVE_PAIRING_SESSIONS = 10_000;
/** Successful starts allowed per sliding window. */
export const DEFAULT_START_RATE_MAX = 1024;
export const DEFAULT_START_RATE_WINDOW_MS = 60_000;
/** Byte length of the device's X25519 commitment (a SHA-256 digest). */
const COMMITMENT_LENGTH = 32;

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** How the device proves it was invited: the PIN code or the QR token (the "proof"). */
export interface PairingMethod {
  readonly kind: PairingMethodKind;
  readonly proof: string;
}

/** The reference's Display label: `pin:` and one `*` per byte, or `qr:` and the first 6 characters then `...`. */
export function pairingMethodLabel(method: PairingMethod): string {
  return method.kind === 'pin' ? `pin:${'*'.repeat(utf8(method.proof).length)}` : `qr:${Array.from(method.proof).slice(0, 6).join('')}...`;
}

/** The debug form: the kind and the secret's length, never the secret (`codeLen` for PINs, `tokenLen` for QR). */
export function describePairingMethod(method: PairingMethod): { kind: 'pin'; codeLen: number } | { kind: 'qr'; tokenLen: number } {
  const length = utf8(method.proof).length;
  return method.kind === 'pin' ? { kind: 'pin', codeLen: length } : { kind: 'qr', tokenLen: length };
}

/** PIN: exactly 6 ASCII digits; QR token: 16..=128 bytes of anything (§2.2). */
export function isValidPairingProof(method: PairingMethod): boolean {
  try {
    validatePairingProof(method.kind, method.proof);
    return true;
  } catch {
    return false;
  }
}

/** What BeginPairingSession answers; the proof is not part of it. */
export interface PublicPairingSession {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly clientKind: ClientKind;
  readonly method: { readonly kind: PairingMethodKind };
  readonly gatewayEphemeralPublic: Uint8Array;
  readonly challenge: Uint8Array;
  readonly expiresAtUnixMs: number;
}

export interface StartPairingInput {
  readonly clientKind: ClientKind;
  readonly method: PairingMethod;
  readonly now: number;
  /** SHA-256("palyra-commit-v1" ‖ X25519 public) from BeginPairingSession; absent for reference clients. */
  readonly deviceX25519Commitment?: Uint8Array | undefined;
  /**
   * PIN pairing v2: the session is for the device `deviceId` (idProver), its proof is empty at start and is set to
   * the PAKE-derived proof once the SPAKE2+ exchange ran (bindPakeProof). Needs the commitment.
   */
  readonly pake?: { readonly deviceId: string } | undefined;
}

/**
 * Everything a session is, for sharing it with other gateway processes (the runtime state persists it sealed): the
 * gateway's ephemeral secret and the proof included, so it must never reach a log.
 */
export interface PairingSessionSnapshot {
  readonly session: PublicPairingSession;
  readonly gatewaySecret: Uint8Array;
  readonly commitment: Uint8Array | undefined;
  /** PIN pairing v2: the device id the session is bound to. */
  readonly pakeDeviceId: string | undefined;
  /** The proof as sent at start ('' for PIN pairing v2). */
  readonly proof: string;
}

export interface VerifyPairingOptions {
  readonly now: number;
  readonly isDeviceRevoked: (deviceId: string) => boolean;
  /** `--allow-legacy-device-ids`: accept the reference's random ULIDs (PROTOCOL.md §2). */
  readonly allowLegacyDeviceIds?: boolean | undefined;
}

export interface VerifiedPairing {
  readonly sessionId: string;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
  readonly identityFingerprint: string;
  readonly signingPublicKeyHex: string;
  readonly transcriptHashHex: string;
  readonly transcriptMac: Uint8Array;
  readonly sas: string;
  /** True iff the device committed to its X25519 key at start, so a matching SAS rules out a MITM. */
  readonly sasVerifiable: boolean;
  readonly deviceSigningPublic: Uint8Array;
}

export interface PairingSessionRegistryOptions {
  readonly windowMs?: number;
  readonly maxActiveSessions?: number;
  readonly startRateMax?: number;
  readonly startRateWindowMs?: number;
}

interface ActiveSession {
  readonly session: PublicPairingSession;
  readonly gatewaySecret: Uint8Array;
  readonly commitment: Uint8Array | undefined;
  /** PIN pairing v2 sessions: the device id from the Begin, and whether the PAKE proof has been bound. */
  readonly pake: { readonly deviceId: string; bound: boolean } | undefined;
  proofBytes: Uint8Array;
}

function requireTime(now: unknown): number {
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0) {
    throw new PalyraError('invalid_argument', 'now must be a non-negative integer of unix milliseconds');
  }
  return now;
}

/** Clamps like the reference's setters: counts at least 1, windows of 0 become 1 ms. */
function clampPositive(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new PalyraError('invalid_argument', `${what} must be a non-negative number`);
  return Math.max(1, Math.floor(value));
}

function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

function copySession(s: PublicPairingSession): PublicPairingSession {
  return {
    ...s,
    method: { kind: s.method.kind },
    gatewayEphemeralPublic: Uint8Array.from(s.gatewayEphemeralPublic),
    challenge: Uint8Array.from(s.challenge),
  };
}

export class PairingSessionRegistry {
  readonly #sessions = new Map<string, ActiveSession>();
  /** Times of successful starts inside the sliding window. */
  #startHistory: number[] = [];
  #windowMs: number;
  #maxActiveSessions: number;
  #startRateMax: number;
  #startRateWindowMs: number;

  constructor(options: PairingSessionRegistryOptions = {}) {
    this.#windowMs = clampPositive(options.windowMs, DEFAULT_PAIRING_WINDOW_MS, 'windowMs');
    this.#maxActiveSessions = clampPositive(options.maxActiveSessions, MAX_ACTIVE_PAIRING_SESSIONS, 'maxActiveSessions');
    this.#startRateMax = clampPositive(options.startRateMax, DEFAULT_START_RATE_MAX, 'startRateMax');
    this.#startRateWindowMs = clampPositive(options.startRateWindowMs, DEFAULT_START_RATE_WINDOW_MS, 'startRateWindowMs');
  }

  setStartRateLimit(max: number, windowMs: number): void {
    this.#startRateMax = clampPositive(max, DEFAULT_START_RATE_MAX, 'startRateMax');
    this.#startRateWindowMs = clampPositive(windowMs, DEFAULT_START_RATE_WINDOW_MS, 'startRateWindowMs');
  }

  setPairingWindow(windowMs: number): void {
    this.#windowMs = clampPositive(windowMs, DEFAULT_PAIRING_WINDOW_MS, 'windowMs');
  }

  get activeCount(): number {
    return this.#sessions.size;
  }

  get(sessionId: string): PublicPairingSession | undefined {
    const active = this.#sessions.get(sessionId);
    return active === undefined ? undefined : copySession(active.session);
  }

  remove(sessionId: string): boolean {
    return this.#sessions.delete(sessionId);
  }

  /** Drops sessions whose expiry is not after `now`, except `keep` (verify reports that one's expiry itself). */
  pruneExpired(now: number, keep?: string): void {
    requireTime(now);
    for (const [id, active] of this.#sessions) {
      if (id !== keep && active.session.expiresAtUnixMs <= now) this.#sessions.delete(id);
    }
  }

  /** Order as the reference: prune → rate limit → capacity → proof; only successful starts are counted. */
  start(input: StartPairingInput): PublicPairingSession {
    const now = requireTime(input.now);
    if (!isClientKind(input.clientKind)) throw new PalyraError('invalid_argument', 'client_kind must be one of cli|desktop|node');
    const { method } = input;
    if (!isPairingMethodKind(method.kind) || typeof method.proof !== 'string') {
      throw new PalyraError('invalid_argument', 'pairing method must be pin or qr with a string proof');
    }

    this.pruneExpired(now);
    this.#startHistory = this.#startHistory.filter((t) => now - t < this.#startRateWindowMs);
    if (this.#startHistory.length >= this.#startRateMax) {
      const max = this.#startRateMax;
      const windowMs = this.#startRateWindowMs;
      throw new PalyraError('pairing_session_rate_limited', `pairing session start rate limit exceeded (max ${max} per ${windowMs} ms)`, {
        details: { max, window_ms: windowMs },
      });
    }
    if (this.#sessions.size >= this.#maxActiveSessions) {
      const limit = this.#maxActiveSessions;
      throw new PalyraError('pairing_session_capacity_exceeded', `active pairing session capacity exceeded (limit: ${limit})`, {
        details: { limit },
      });
    }
    const commitment = input.deviceX25519Commitment;
    if (input.pake !== undefined) {
      if (method.kind !== 'pin' || method.proof !== '') throw new PalyraError('invalid_argument', 'a PIN pairing v2 session starts without a proof');
      validateCanonicalId(input.pake.deviceId);
      if (commitment === undefined) throw new PalyraError('invalid_argument', 'PIN pairing v2 needs device_x25519_commitment');
    } else if (!isValidPairingProof(method)) {
      throw new PalyraError('invalid_pairing_proof', undefined, { details: describePairingMethod(method) });
    }
    if (commitment !== undefined && (!(commitment instanceof Uint8Array) || commitment.length !== COMMITMENT_LENGTH)) {
      throw new PalyraError('invalid_argument', `device_x25519_commitment must be ${COMMITMENT_LENGTH} bytes`);
    }

    const gatewaySecret = randomBytes(X25519_KEY_LENGTH);
    const session: PublicPairingSession = {
      sessionId: newUlid(now),
      protocolVersion: PAIRING_PROTOCOL_VERSION,
      clientKind: input.clientKind,
      method: { kind: method.kind },
      gatewayEphemeralPublic: x25519PublicKey(gatewaySecret),
      challenge: randomBytes(CHALLENGE_LENGTH),
      expiresAtUnixMs: now + this.#windowMs,
    };
    this.#sessions.set(session.sessionId, {
      session,
      proofBytes: utf8(method.proof),
      gatewaySecret,
      commitment: commitment === undefined ? undefined : Uint8Array.from(commitment),
      pake: input.pake === undefined ? undefined : { deviceId: input.pake.deviceId, bound: false },
    });
    this.#startHistory.push(now);
    return copySession(session);
  }

  /** The whole session, to persist for other processes (PIN v2 before its proof is bound only). */
  snapshot(sessionId: string): PairingSessionSnapshot | undefined {
    const active = this.#sessions.get(sessionId);
    if (active === undefined || active.pake?.bound === true) return undefined;
    return {
      session: copySession(active.session),
      gatewaySecret: Uint8Array.from(active.gatewaySecret),
      commitment: active.commitment === undefined ? undefined : Uint8Array.from(active.commitment),
      pakeDeviceId: active.pake?.deviceId,
      proof: new TextDecoder().decode(active.proofBytes),
    };
  }

  /**
   * Takes over a session another process started (and counted against its rate limit); replaces a local copy, so
   * the caller's view is the shared one.
   */
  adopt(snapshot: PairingSessionSnapshot): void {
    const { session } = snapshot;
    validateCanonicalId(session.sessionId);
    if (snapshot.gatewaySecret.length !== X25519_KEY_LENGTH) throw new PalyraError('state_corrupt', 'a stored pairing session has a malformed gateway secret');
    this.#sessions.set(session.sessionId, {
      session: copySession(session),
      gatewaySecret: Uint8Array.from(snapshot.gatewaySecret),
      commitment: snapshot.commitment === undefined ? undefined : Uint8Array.from(snapshot.commitment),
      pake: snapshot.pakeDeviceId === undefined ? undefined : { deviceId: snapshot.pakeDeviceId, bound: false },
      proofBytes: utf8(snapshot.proof),
    });
  }

  /** PIN pairing v2: after key confirmation, the proof the hello's signature must cover ("pake-v2:" ‖ hex(K_shared)). */
  bindPakeProof(sessionId: string, proof: string): void {
    const active = this.#sessions.get(sessionId);
    if (active?.pake === undefined || active.pake.bound) throw new PalyraError('pairing_session_not_found');
    active.proofBytes = utf8(proof);
    active.pake.bound = true;
  }

  /**
   * Verifies a hello in the reference's order (§2.6); every failure after the session lookup that could be an attack
   * on the session removes it, so the hello is single use either way.
   */
  verify(hello: DevicePairingHelloFields, options: VerifyPairingOptions): VerifiedPairing {
    const now = requireTime(options.now);
    // 1. Expired sessions go, except the named one so that its expiry is reported as such.
    this.pruneExpired(now, hello.sessionId);
    // 2–3. Identity checks come before the session lookup and keep the session.
    validateCanonicalId(hello.deviceId);
    if (options.isDeviceRevoked(hello.deviceId)) {
      throw new PalyraError('device_revoked', undefined, { details: { device_id: hello.deviceId } });
    }
    // 4–5.
    const active = this.#sessions.get(hello.sessionId);
    if (active === undefined) throw new PalyraError('pairing_session_not_found');
    const { session } = active;
    if (now > session.expiresAtUnixMs) {
      this.#sessions.delete(session.sessionId);
      throw new PalyraError('pairing_session_expired');
    }
    // 6–7. Mismatches that a confused (not hostile) client makes keep the session.
    if (hello.protocolVersion !== session.protocolVersion) {
      throw new PalyraError(
        'pairing_version_mismatch',
        `pairing protocol version mismatch (expected ${session.protocolVersion}, got ${hello.protocolVersion})`,
        { details: { expected: session.protocolVersion, got: hello.protocolVersion } },
      );
    }
    if (hello.clientKind !== session.clientKind) {
      throw new PalyraError('pairing_client_kind_mismatch', undefined, { details: { expected: session.clientKind, got: hello.clientKind } });
    }
    const fail = (code: 'invalid_pairing_proof' | 'signature_verification_failed' | 'transcript_verification_failed'): never => {
      this.#sessions.delete(session.sessionId);
      throw new PalyraError(code);
    };
    // 8.
    // PIN pairing v2: the hello must come from the device the PAKE ran for, after the PAKE confirmed.
    if (active.pake !== undefined && (!active.pake.bound || hello.deviceId !== active.pake.deviceId)) fail('transcript_verification_failed');
    if (typeof hello.proof !== 'string' || !constantTimeEqual(utf8(hello.proof), active.proofBytes)) fail('invalid_pairing_proof');
    // 9–10.
    if (!isValidEd25519PublicKey(hello.deviceSigningPublic)) fail('signature_verification_failed');
    const payload = signaturePayload({
      protocolVersion: hello.protocolVersion,
      sessionId: session.sessionId,
      challenge: session.challenge,
      gatewayEphemeralPublic: session.gatewayEphemeralPublic,
      deviceId: hello.deviceId,
      clientKind: session.clientKind,
      proof: hello.proof,
    });
    if (!verifyEd25519Strict(hello.challengeSignature, payload, hello.deviceSigningPublic)) fail('signature_verification_failed');
    // Ours (a): the X25519 key must be the one committed to at start, or a MITM could grind for a matching SAS.
    const x25519Public = hello.deviceX25519Public;
    if (!(x25519Public instanceof Uint8Array) || x25519Public.length !== X25519_KEY_LENGTH) fail('transcript_verification_failed');
    if (active.commitment !== undefined && !constantTimeEqual(x25519Commitment(x25519Public), active.commitment)) {
      fail('transcript_verification_failed');
    }
    // Ours (b): the device id is the key's, so an id cannot be taken over by a new key.
    if (!options.allowLegacyDeviceIds && !isDerivedDeviceId(hello.deviceId, hello.deviceSigningPublic)) {
      this.#sessions.delete(session.sessionId);
      throw new PalyraError('legacy_device_id_refused', undefined, { details: { device_id: hello.deviceId } });
    }
    // Ours (c): an all-zero shared secret (low-order device key) is refused.
    let sharedSecret: Uint8Array;
    try {
      sharedSecret = x25519SharedSecret(active.gatewaySecret, x25519Public);
    } catch (error) {
      this.#sessions.delete(session.sessionId);
      throw error;
    }
    // 11.
    const context = transcriptContext({
      sessionId: session.sessionId,
      protocolVersion: session.protocolVersion,
      deviceId: hello.deviceId,
      clientKind: session.clientKind,
    });
    const mac = deriveTranscriptMac({ sharedSecret, challenge: session.challenge, context });
    if (!(hello.transcriptMac instanceof Uint8Array) || !constantTimeEqual(hello.transcriptMac, mac)) fail('transcript_verification_failed');
    // 12. Single use.
    this.#sessions.delete(session.sessionId);
    const deviceSigningPublic = Uint8Array.from(hello.deviceSigningPublic);
    return {
      sessionId: session.sessionId,
      deviceId: hello.deviceId,
      clientKind: session.clientKind,
      identityFingerprint: identityFingerprint(deviceSigningPublic),
      signingPublicKeyHex: toHex(deviceSigningPublic),
      transcriptHashHex: toHex(transcriptHash(mac)),
      transcriptMac: mac,
      sas: computeSas(mac),
      sasVerifiable: active.commitment !== undefined,
      deviceSigningPublic,
    };
  }

  /** Counts and settings only: the proofs and gateway secrets never reach a log. */
  toJSON(): { activeSessions: number; windowMs: number; maxActiveSessions: number; startRateMax: number; startRateWindowMs: number } {
    return {
      activeSessions: this.#sessions.size,
      windowMs: this.#windowMs,
      maxActiveSessions: this.#maxActiveSessions,
      startRateMax: this.#startRateMax,
      startRateWindowMs: this.#startRateWindowMs,
    };
  }

  [INSPECT](_depth: number, options: unknown, inspect: (value: unknown, options: unknown) => string): string {
    return `PairingSessionRegistry ${inspect(this.toJSON(), options)}`;
  }
}
