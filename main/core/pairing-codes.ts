/**
 * Pairing codes (PROTOCOL.md §5, REFERENCE.md §2.2 and §4.1): single-use PINs and QR tokens minted by an operator.
 * The plaintext is handed back once, at minting. A QR token is stored as its SHA-256; a PIN code as its SPAKE2+
 * verifier {salt, w0, L} only (PIN pairing v2), keyed by a random id — neither the PIN nor a plain hash of it.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { constantTimeEqual, fromBase64, toBase64, toHex, utf8 } from './bytes.js';
import type { ClientKind } from './client-kind.js';
import { isClientKind } from './client-kind.js';
import { PalyraError } from './errors.js';
import { encodeCrockford128 } from './ids.js';
import { pinVerifier, pinVerifierAsync, type PinVerifier } from './pin-hash.js';

export type PairingMethodKind = 'pin' | 'qr';
export const PAIRING_METHOD_KINDS: readonly PairingMethodKind[] = ['pin', 'qr'];

/** Digits in a PIN. */
export const PIN_LENGTH = 6;
/** Number of distinct PINs (10^6). */
const PIN_SPACE = 1_000_000;
/** Largest multiple of PIN_SPACE ≤ 2^32: u32 draws at or above it are rejected, so all PINs are equally likely. */
const PIN_ACCEPT_LIMIT = Math.floor(2 ** 32 / PIN_SPACE) * PIN_SPACE;
/** Draws before giving up; a working CSPRNG is rejected with p ≈ 2.3·10⁻⁴ per draw, so reaching this means it is broken. */
const MAX_PIN_DRAWS = 32;

/** Bytes of randomness in a QR token (128 bits). */
const QR_TOKEN_RANDOM_BYTES = 16;
/** The proof rule for QR tokens: UTF-8 byte length 16..128 inclusive (REFERENCE.md §2.2). */
export const QR_TOKEN_MIN_BYTES = 16;
export const QR_TOKEN_MAX_BYTES = 128;

/** Code lifetime: default 10 min, clamped to 30 s .. 24 h (REFERENCE.md §2.1). */
export const DEFAULT_CODE_TTL_MS = 600_000;
export const MIN_CODE_TTL_MS = 30_000;
export const MAX_CODE_TTL_MS = 86_400_000;

/** Longest accepted `issuedBy` label, in UTF-16 units (it ends up in listings and the audit log). */
const MAX_ISSUED_BY_LENGTH = 256;

/** Source of random bytes; tests inject one, production uses WebCrypto. */
export type RandomBytes = (length: number) => Uint8Array;

export const cryptoRandomBytes: RandomBytes = (length) => globalThis.crypto.getRandomValues(new Uint8Array(length));

export function isPairingMethodKind(value: unknown): value is PairingMethodKind {
  return value === 'pin' || value === 'qr';
}

/** A unix-ms time passed into the core: a non-negative safe integer. */
export function assertUnixMs(value: number, what = 'now'): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new PalyraError('invalid_argument', `${what} must be a non-negative integer unix time in milliseconds`);
  }
}

/** Six uniformly distributed decimal digits (rejection sampling instead of the reference's biased `mod 10^6`). */
export function mintPin(random: RandomBytes = cryptoRandomBytes): string {
  for (let draw = 0; draw < MAX_PIN_DRAWS; draw++) {
    const bytes = random(4);
    if (bytes.length !== 4) throw new PalyraError('cryptographic', 'random source returned the wrong number of bytes');
    const value = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
    if (value < PIN_ACCEPT_LIMIT) return String(value % PIN_SPACE).padStart(PIN_LENGTH, '0');
  }
  throw new PalyraError('cryptographic', `random source produced ${MAX_PIN_DRAWS} out-of-range values in a row`);
}

/** 128 random bits written as 26 Crockford base32 characters (meets the 16..128-byte proof rule). */
export function mintQrToken(random: RandomBytes = cryptoRandomBytes): string {
  const bytes = random(QR_TOKEN_RANDOM_BYTES);
  if (bytes.length !== QR_TOKEN_RANDOM_BYTES) {
    throw new PalyraError('cryptographic', 'random source returned the wrong number of bytes');
  }
  return encodeCrockford128(bytes);
}

export function mintPairingCode(method: PairingMethodKind, random: RandomBytes = cryptoRandomBytes): string {
  return method === 'pin' ? mintPin(random) : mintQrToken(random);
}

/** Lowercase hex SHA-256 of the code's UTF-8 bytes: the only form in which a code is stored. */
export function hashPairingCode(code: string): string {
  return toHex(sha256(utf8(code)));
}

/** Whether `code` hashes to `codeHash`, compared in constant time. */
export function pairingCodeMatches(codeHash: string, code: string): boolean {
  return constantTimeEqual(utf8(hashPairingCode(code)), utf8(codeHash));
}

/** Default when absent, else clamped to [30 s, 24 h] like the reference; fractions are truncated. */
export function clampCodeTtlMs(ttlMs?: number): number {
  if (ttlMs === undefined) return DEFAULT_CODE_TTL_MS;
  if (Number.isNaN(ttlMs)) {
    throw new PalyraError('invalid_argument', 'pairing code TTL must be a number of milliseconds');
  }
  return Math.min(MAX_CODE_TTL_MS, Math.max(MIN_CODE_TTL_MS, Math.trunc(ttlMs)));
}

const DURATION_UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_PATTERN = /^([0-9]{1,15})(ms|s|m|h|d)$/;

/**
 * A CLI duration (`30s`, `10m`, `2h`, `1d`, `600000ms`) in milliseconds. A unit is required — a bare number is
 * ambiguous — and the result is not clamped (callers apply their own bounds, e.g. clampCodeTtlMs).
 */
export function parseTtl(text: string): number {
  const match = DURATION_PATTERN.exec(text);
  if (match === null) {
    throw new PalyraError(
      'invalid_argument',
      `invalid duration '${text.slice(0, 32)}': expected e.g. 30s, 10m, 2h, 1d or 600000ms`,
    );
  }
  const ms = Number(match[1]) * DURATION_UNIT_MS[match[2] as keyof typeof DURATION_UNIT_MS];
  if (!Number.isSafeInteger(ms)) throw new PalyraError('invalid_argument', `duration '${text}' is too large`);
  return ms;
}

/** The reference's proof rule, applied when a session starts: a 6-digit PIN, or a QR token of 16..128 UTF-8 bytes. */
export function validatePairingProof(kind: PairingMethodKind, proof: string): void {
  if (kind === 'pin') {
    if (!/^[0-9]{6}$/.test(proof)) {
      throw new PalyraError('invalid_pairing_proof', 'invalid pairing proof: a PIN is exactly 6 ASCII digits');
    }
    return;
  }
  const length = utf8(proof).length;
  if (length < QR_TOKEN_MIN_BYTES || length > QR_TOKEN_MAX_BYTES) {
    throw new PalyraError(
      'invalid_pairing_proof',
      `invalid pairing proof: a QR token is ${QR_TOKEN_MIN_BYTES} to ${QR_TOKEN_MAX_BYTES} bytes`,
      { details: { length } },
    );
  }
}

/** A PIN code's SPAKE2+ verifier as stored (base64): salt (16 bytes), w0 (32), L (65 bytes, uncompressed). */
export interface StoredPinVerifier {
  readonly saltB64: string;
  readonly w0B64: string;
  readonly lB64: string;
}

/** Prefix of a PIN code's storage key: `pin:` and 32 random hex digits (no relation to the PIN). */
export const PIN_CODE_KEY_PREFIX = 'pin:';

/** A minted code as stored: hashed or as a verifier, never the plaintext (REFERENCE.md §1.10 keeps `code`; we do not). */
export interface PairingCodeRecord {
  /** QR: lowercase hex SHA-256 of the token (the lookup key). PIN: `pin:` + 32 random hex digits. */
  readonly codeHash: string;
  /** PIN codes only: the SPAKE2+ verifier. A stored PIN record without one (old format) is dropped at load. */
  readonly pin?: StoredPinVerifier | undefined;
  readonly method: PairingMethodKind;
  /** The kind the operator intended; informational only — any kind may consume any code (REFERENCE.md §3.2). */
  readonly kind: ClientKind | null;
  readonly issuedBy: string;
  readonly createdAtUnixMs: number;
  readonly expiresAtUnixMs: number;
}

export interface NewPairingCodeInput {
  readonly method: PairingMethodKind;
  readonly kind: ClientKind | null;
  readonly issuedBy: string;
  readonly ttlMs?: number | undefined;
  readonly now: number;
  readonly random?: RandomBytes | undefined;
  /** Computes a PIN's verifier (default: pinVerifier with a fresh salt); tests inject a cheap one. */
  readonly pinVerifier?: ((pin: string) => PinVerifier) | undefined;
}

export function storePinVerifier(v: PinVerifier): StoredPinVerifier {
  return { saltB64: toBase64(v.salt), w0B64: toBase64(v.w0), lB64: toBase64(v.L) };
}

export function loadPinVerifier(v: StoredPinVerifier): PinVerifier {
  return { salt: fromBase64(v.saltB64), w0: fromBase64(v.w0B64), L: fromBase64(v.lB64) };
}

/**
 * v1 PIN (reference clients send the digits): whether `pin` is this record's PIN, by recomputing the verifier from
 * the PIN and the stored salt and comparing w0 and L in constant time. ~0.1 s of scrypt, off the event loop.
 */
export async function pinCodeMatches(record: PairingCodeRecord, pin: string): Promise<boolean> {
  if (record.method !== 'pin' || record.pin === undefined || !/^[0-9]{6}$/.test(pin)) return false;
  const stored = loadPinVerifier(record.pin);
  const again = await pinVerifierAsync(pin, stored.salt);
  // Both compared, always: no early exit on the first mismatch.
  const w0 = constantTimeEqual(again.w0, stored.w0);
  const l = constantTimeEqual(again.L, stored.L);
  return w0 && l;
}

/** Mints a code and its record; `code` is the only copy of the plaintext and must be shown once, not stored. */
export function newPairingCodeRecord(input: NewPairingCodeInput): { code: string; record: PairingCodeRecord } {
  if (!isPairingMethodKind(input.method)) throw new PalyraError('invalid_argument', 'pairing method must be pin or qr');
  if (input.kind !== null && !isClientKind(input.kind)) {
    throw new PalyraError('invalid_argument', 'client kind must be one of cli|desktop|node');
  }
  const issuedBy = input.issuedBy.trim();
  if (issuedBy.length === 0 || issuedBy.length > MAX_ISSUED_BY_LENGTH) {
    throw new PalyraError('invalid_argument', `issued_by must be 1 to ${MAX_ISSUED_BY_LENGTH} characters`);
  }
  assertUnixMs(input.now);
  const random = input.random ?? cryptoRandomBytes;
  const code = mintPairingCode(input.method, random);
  const record: PairingCodeRecord = {
    ...(input.method === 'pin'
      ? { codeHash: PIN_CODE_KEY_PREFIX + toHex(random(16)), pin: storePinVerifier(input.pinVerifier?.(code) ?? pinVerifier(code)) }
      : { codeHash: hashPairingCode(code) }),
    method: input.method,
    kind: input.kind,
    issuedBy,
    createdAtUnixMs: input.now,
    expiresAtUnixMs: input.now + clampCodeTtlMs(input.ttlMs),
  };
  return { code, record };
}

/** A code is usable while now < expiresAt (the reference prunes `expires_at <= now`). */
export function isPairingCodeExpired(record: PairingCodeRecord, now: number): boolean {
  return now >= record.expiresAtUnixMs;
}
