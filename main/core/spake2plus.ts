/**
 * SPAKE2+ (RFC 9383), ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256, on @noble/curves P-256 arithmetic.
 *
 * Pure functions, no I/O. The prover (the device, which knows the PIN) and the verifier (the gateway, which stores
 * only the registration record `{w0, L}`) exchange shareP → ← shareV, confirmV → confirmP. Randomness (x, y) can be
 * injected so the RFC's Appendix C vectors run through exactly these functions (test/vectors/spake2plus.test.ts).
 *
 * Encodings, as in the RFC's vectors: points are SEC1 uncompressed (65 bytes, 0x04 ‖ X ‖ Y); scalars are 32-byte
 * big-endian integers in [1, n-1]; `len(s)` is the 8-byte little-endian byte length of s.
 */

import { p256 } from '@noble/curves/nist.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, constantTimeEqual, utf8 } from './bytes.js';
import { hkdfSha256, hmacSha256 } from './crypto.js';
import { PalyraError } from './errors.js';

type Point = ReturnType<typeof p256.Point.fromBytes>;

const Point = p256.Point;
const CURVE = Point.CURVE();
/** The group order (the RFC's p; noble's n). */
const ORDER = CURVE.n;
/** The base field prime. */
const FIELD_PRIME = CURVE.p;

export const SPAKE2PLUS_SUITE = 'P256-SHA256-HKDF-SHA256-HMAC-SHA256';
/** Byte length of a scalar (w0, w1, x, y) as it is stored and hashed. */
export const SPAKE2PLUS_SCALAR_LENGTH = 32;
/** Byte length of a share (shareP, shareV) and of L: SEC1 uncompressed. */
export const SPAKE2PLUS_SHARE_LENGTH = 65;
/** Byte length of confirmP / confirmV (HMAC-SHA256, untruncated). */
export const SPAKE2PLUS_CONFIRMATION_LENGTH = 32;
/** Byte length of K_shared (HKDF-SHA256 output, Hash length). */
export const SPAKE2PLUS_SHARED_KEY_LENGTH = 32;
/**
 * Password-hash output length w0s ‖ w1s: each half ceil(log2 n)/8 + 8 = 40 bytes, so reducing it mod n has a bias
 * of at most 2⁻⁶⁴ (RFC 9383 §3.2).
 */
export const SPAKE2PLUS_PBKDF_OUTPUT_LENGTH = 80;

/** RFC 9383 §4, P-256: the compressed points, and the seeds they were generated from (Appendix B). */
export const SPAKE2PLUS_M_COMPRESSED_HEX = '02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f';
export const SPAKE2PLUS_N_COMPRESSED_HEX = '03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49';

function decodeConstant(hexCompressed: string): Point {
  // fromHex checks that the x coordinate has a square root, i.e. that the point is on the curve; P-256 has cofactor
  // 1, so every point but the identity is in the prime-order group.
  const point = Point.fromHex(hexCompressed);
  point.assertValidity();
  if (point.is0()) throw new PalyraError('internal', 'SPAKE2+ constant decodes to the identity');
  return point;
}

// M and N are multiplied by w0 in every exchange, like the base point: noble's precomputed window tables (built on
// first use, ~4 000 points each) make those fixed-base multiplications several times cheaper, still constant time.
const M = decodeConstant(SPAKE2PLUS_M_COMPRESSED_HEX).precompute(8);
const N = decodeConstant(SPAKE2PLUS_N_COMPRESSED_HEX).precompute(8);
const M_BYTES = M.toBytes(false);
const N_BYTES = N.toBytes(false);

const CONFIRMATION_KEYS_INFO = utf8('ConfirmationKeys');
const SHARED_KEY_INFO = utf8('SharedKey');
const NO_SALT = new Uint8Array(0);

// --- types ---------------------------------------------------------------------------------------------------------

/** What both sides must agree on besides the password; all three go into the transcript TT. */
export interface PakeContext {
  readonly context: Uint8Array;
  readonly idProver: Uint8Array;
  readonly idVerifier: Uint8Array;
}

/** The prover's secret, from the password hash: w0 and w1 as 32-byte big-endian scalars in [1, n-1]. */
export interface ProverSecret {
  readonly w0: Uint8Array;
  readonly w1: Uint8Array;
}

/** The verifier's registration record: w0 and L = w1·P (65 bytes uncompressed). Not enough to act as prover. */
export interface VerifierRecord {
  readonly w0: Uint8Array;
  readonly L: Uint8Array;
}

/** What the verifier keeps between sending (shareV, confirmV) and receiving confirmP. */
export interface VerifierState {
  readonly expectedConfirmP: Uint8Array;
  readonly sharedKey: Uint8Array;
}

export interface VerifierResponse {
  readonly shareV: Uint8Array;
  readonly confirmV: Uint8Array;
  /** Keep it until confirmP arrives; `verifierFinish` releases the shared key only after confirmP verifies. */
  readonly state: VerifierState;
}

export interface ProverResult {
  readonly confirmP: Uint8Array;
  readonly sharedKey: Uint8Array;
}

/** Z and V as the RFC names them, SEC1 uncompressed. */
export interface SharedPoints {
  readonly Z: Uint8Array;
  readonly V: Uint8Array;
}

export interface KeySchedule {
  readonly K_main: Uint8Array;
  readonly K_confirmP: Uint8Array;
  readonly K_confirmV: Uint8Array;
  readonly K_shared: Uint8Array;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * The prover's ephemeral state between proverStart and proverFinish. Single use: a finish that reaches the key
 * schedule (confirmed or not) consumes it, so one x never meets two shareV (a retry starts over with a fresh x).
 */
export class ProverState {
  #secret: { w0: bigint; w1: bigint; x: bigint } | undefined;
  readonly shareP: Uint8Array;

  /** @internal use proverStart */
  constructor(w0: bigint, w1: bigint, x: bigint, shareP: Uint8Array) {
    this.#secret = { w0, w1, x };
    this.shareP = shareP;
  }

  get consumed(): boolean {
    return this.#secret === undefined;
  }

  /** @internal */
  take(): { w0: bigint; w1: bigint; x: bigint } {
    const secret = this.#secret;
    if (secret === undefined) throw new PalyraError('invalid_argument', 'this SPAKE2+ prover state was already used');
    this.#secret = undefined;
    return secret;
  }

  /** Never the secret scalars, whatever serialises this. */
  toJSON(): { consumed: boolean } {
    return { consumed: this.consumed };
  }

  [INSPECT](): string {
    return `ProverState { consumed: ${String(this.consumed)} }`;
  }
}

// --- encodings -----------------------------------------------------------------------------------------------------

/** Callers are typed, but the core is also reached from IPC and tests with whatever they hold. */
function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function requireBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new PalyraError('invalid_argument', `${what} must be bytes`);
  return value;
}

/** `len(s)`: the byte length of s as an 8-byte little-endian integer (RFC 9383 §3). */
export function spake2plusLength(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  return out;
}

/** `len(a) ‖ a ‖ len(b) ‖ b ‖ …`, the framing of TT and of the RFC's recommended password-hash input. */
export function lengthPrefixed(...parts: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...parts.flatMap((p) => [spake2plusLength(p), p]));
}

function scalarFromBytes(bytes: unknown, what: string, code: 'invalid_argument' | 'invalid_key_material'): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== SPAKE2PLUS_SCALAR_LENGTH) {
    throw new PalyraError(code, `${what} must be ${SPAKE2PLUS_SCALAR_LENGTH} bytes`);
  }
  const value = bytesToNumberBE(bytes);
  if (value === 0n || value >= ORDER) throw new PalyraError(code, `${what} is not a scalar in [1, n-1]`);
  return value;
}

function scalarToBytes(value: bigint): Uint8Array {
  return numberToBytesBE(value, SPAKE2PLUS_SCALAR_LENGTH);
}

/**
 * A peer's share (or a stored L) as a group element: exactly 65 bytes, 0x04 ‖ X ‖ Y, both coordinates below the
 * field prime, on the curve, not the identity, and h·P ≠ I (h = 1 for P-256, so that is the identity check again).
 * Compressed points are refused too: the transcript hashes the bytes as sent, so one point has one encoding.
 */
function decodePoint(bytes: unknown, what: string, code: 'pake_invalid_share' | 'invalid_key_material'): Point {
  if (!(bytes instanceof Uint8Array)) throw new PalyraError(code, `${what} must be bytes`);
  if (bytes.length !== SPAKE2PLUS_SHARE_LENGTH || bytes[0] !== 0x04) {
    throw new PalyraError(code, `${what} must be a ${SPAKE2PLUS_SHARE_LENGTH}-byte uncompressed P-256 point`, {
      details: { length: bytes.length },
    });
  }
  const x = bytesToNumberBE(bytes.subarray(1, 33));
  const y = bytesToNumberBE(bytes.subarray(33, 65));
  if (x >= FIELD_PRIME || y >= FIELD_PRIME) throw new PalyraError(code, `${what} has a coordinate outside the field`);
  let point: Point;
  try {
    point = Point.fromBytes(bytes);
    point.assertValidity();
  } catch (cause) {
    throw new PalyraError(code, `${what} is not a point on P-256`, { cause });
  }
  if (point.is0() || point.multiplyUnsafe(CURVE.h).is0()) throw new PalyraError(code, `${what} is the identity point`);
  return point;
}

function requireContext(ctx: PakeContext): PakeContext {
  if (!isObject(ctx)) throw new PalyraError('invalid_argument', 'SPAKE2+ context is missing');
  requireBytes(ctx.context, 'SPAKE2+ Context');
  requireBytes(ctx.idProver, 'SPAKE2+ idProver');
  requireBytes(ctx.idVerifier, 'SPAKE2+ idVerifier');
  return ctx;
}

function randomScalar(): bigint {
  // noble's key generation: 48 random bytes reduced into [1, n-1] (FIPS 186-5 A.2.1), so no bias worth naming.
  return bytesToNumberBE(p256.utils.randomSecretKey());
}

// --- registration --------------------------------------------------------------------------------------------------

/**
 * w0 ‖ w1 from the password-hash output w0s ‖ w1s (RFC 9383 §3.2): each half read as a big-endian integer and
 * reduced mod n. The output must be an even number of bytes, at least 80 (each half ≥ 40 bytes). A w0 or w1 of 0
 * (probability 2⁻²⁵⁶) is refused rather than used.
 */
export function computeW0W1(passwordHashOutput: Uint8Array): ProverSecret {
  const output = requireBytes(passwordHashOutput, 'password hash output');
  if (output.length < SPAKE2PLUS_PBKDF_OUTPUT_LENGTH || output.length % 2 !== 0) {
    throw new PalyraError('invalid_argument', `password hash output must be an even number of bytes, at least ${SPAKE2PLUS_PBKDF_OUTPUT_LENGTH}`, {
      details: { length: output.length },
    });
  }
  const half = output.length / 2;
  const w0 = bytesToNumberBE(output.subarray(0, half)) % ORDER;
  const w1 = bytesToNumberBE(output.subarray(half)) % ORDER;
  if (w0 === 0n || w1 === 0n) throw new PalyraError('invalid_key_material', 'password hash reduced to a zero scalar');
  return { w0: scalarToBytes(w0), w1: scalarToBytes(w1) };
}

/** The verifier's record: w0 and L = w1·P. */
export function registration(w0: Uint8Array, w1: Uint8Array): VerifierRecord {
  scalarFromBytes(w0, 'w0', 'invalid_key_material');
  const w1n = scalarFromBytes(w1, 'w1', 'invalid_key_material');
  return { w0: Uint8Array.from(w0), L: Point.BASE.multiply(w1n).toBytes(false) };
}

// --- transcript and key schedule (RFC 9383 §3.3, §3.4) -------------------------------------------------------------

/**
 * TT = len(Context) ‖ Context ‖ len(idProver) ‖ idProver ‖ len(idVerifier) ‖ idVerifier ‖ len(M) ‖ M ‖ len(N) ‖ N
 *    ‖ len(shareP) ‖ shareP ‖ len(shareV) ‖ shareV ‖ len(Z) ‖ Z ‖ len(V) ‖ V ‖ len(w0) ‖ w0,
 * with M and N uncompressed and w0 as 32 big-endian bytes. Secret (it holds Z, V and w0): exported for the vectors.
 */
export function spake2plusTranscript(
  ctx: PakeContext,
  shareP: Uint8Array,
  shareV: Uint8Array,
  points: SharedPoints,
  w0: Uint8Array,
): Uint8Array {
  requireContext(ctx);
  return lengthPrefixed(ctx.context, ctx.idProver, ctx.idVerifier, M_BYTES, N_BYTES, shareP, shareV, points.Z, points.V, w0);
}

/**
 * K_main = SHA-256(TT); K_confirmP ‖ K_confirmV = HKDF-SHA256(salt = nil, K_main, "ConfirmationKeys", 64);
 * K_shared = HKDF-SHA256(salt = nil, K_main, "SharedKey", 32). HKDF's nil salt is HashLen zero bytes (RFC 5869 §2.2),
 * which HMAC pads an empty key to, so an empty salt is the same thing.
 */
export function spake2plusKeySchedule(transcript: Uint8Array): KeySchedule {
  const K_main = sha256(requireBytes(transcript, 'SPAKE2+ transcript'));
  const confirmationKeys = hkdfSha256(K_main, NO_SALT, CONFIRMATION_KEYS_INFO, 2 * SPAKE2PLUS_CONFIRMATION_LENGTH);
  return {
    K_main,
    K_confirmP: confirmationKeys.slice(0, SPAKE2PLUS_CONFIRMATION_LENGTH),
    K_confirmV: confirmationKeys.slice(SPAKE2PLUS_CONFIRMATION_LENGTH),
    K_shared: hkdfSha256(K_main, NO_SALT, SHARED_KEY_INFO, SPAKE2PLUS_SHARED_KEY_LENGTH),
  };
}

function sharedPoints(base: Point, first: bigint, second: bigint, secondBase: Point | undefined): SharedPoints {
  const Z = base.multiply(first);
  const V = (secondBase ?? base).multiply(second);
  // With base ≠ I and scalars in [1, n-1] in a prime-order group these cannot be the identity; checked anyway.
  if (Z.is0() || V.is0()) throw new PalyraError('pake_invalid_share', 'SPAKE2+ shared value is the identity point');
  return { Z: Z.toBytes(false), V: V.toBytes(false) };
}

/**
 * Prover side of Z and V: Z = h·x·(Y − w0·N), V = h·w1·(Y − w0·N) (h = 1). A shareV equal to w0·N (which cancels
 * the password mask and would make Z the identity) is refused. Exported for the vectors; protocol code uses
 * proverFinish.
 */
export function proverSharedPoints(secret: ProverSecret, x: Uint8Array, shareV: Uint8Array): SharedPoints {
  const w0 = scalarFromBytes(secret.w0, 'w0', 'invalid_key_material');
  const w1 = scalarFromBytes(secret.w1, 'w1', 'invalid_key_material');
  return proverPoints(w0, w1, scalarFromBytes(x, 'x', 'invalid_argument'), decodePoint(shareV, 'shareV', 'pake_invalid_share'));
}

function proverPoints(w0: bigint, w1: bigint, x: bigint, Y: Point): SharedPoints {
  const unmasked = Y.subtract(N.multiply(w0));
  if (unmasked.is0()) throw new PalyraError('pake_invalid_share', 'shareV cancels the password mask');
  return sharedPoints(unmasked, x, w1, undefined);
}

/**
 * Verifier side of Z and V: Z = h·y·(X − w0·M), V = h·y·L. A shareP equal to w0·M is refused. Exported for the
 * vectors; protocol code uses verifierRespond.
 */
export function verifierSharedPoints(record: VerifierRecord, y: Uint8Array, shareP: Uint8Array): SharedPoints {
  const w0 = scalarFromBytes(record.w0, 'w0', 'invalid_key_material');
  const L = decodePoint(record.L, 'L', 'invalid_key_material');
  return verifierPoints(w0, L, scalarFromBytes(y, 'y', 'invalid_argument'), decodePoint(shareP, 'shareP', 'pake_invalid_share'));
}

function verifierPoints(w0: bigint, L: Point, y: bigint, X: Point): SharedPoints {
  const unmasked = X.subtract(M.multiply(w0));
  if (unmasked.is0()) throw new PalyraError('pake_invalid_share', 'shareP cancels the password mask');
  return sharedPoints(unmasked, y, y, L);
}

// --- the exchange --------------------------------------------------------------------------------------------------

/**
 * Prover, first message: shareP = X = x·P + w0·M, with x fresh from the CSPRNG (or injected, for vectors: 32 bytes,
 * in [1, n-1]).
 */
export function proverStart(secret: ProverSecret, x?: Uint8Array): { shareP: Uint8Array; state: ProverState } {
  if (!isObject(secret)) throw new PalyraError('invalid_argument', 'SPAKE2+ prover secret is missing');
  const w0 = scalarFromBytes(secret.w0, 'w0', 'invalid_key_material');
  const w1 = scalarFromBytes(secret.w1, 'w1', 'invalid_key_material');
  const xn = x === undefined ? randomScalar() : scalarFromBytes(x, 'x', 'invalid_argument');
  const shareP = Point.BASE.multiply(xn).add(M.multiply(w0)).toBytes(false);
  return { shareP, state: new ProverState(w0, w1, xn, shareP) };
}

/**
 * Verifier, on shareP: picks y, answers shareV = Y = y·P + w0·N and confirmV = HMAC(K_confirmV, shareP). The shared
 * key is held in `state` until confirmP verifies (verifierFinish). An invalid shareP is `pake_invalid_share`.
 */
export function verifierRespond(record: VerifierRecord, shareP: Uint8Array, ctx: PakeContext, y?: Uint8Array): VerifierResponse {
  if (!isObject(record)) throw new PalyraError('invalid_argument', 'SPAKE2+ verifier record is missing');
  requireContext(ctx);
  const w0 = scalarFromBytes(record.w0, 'w0', 'invalid_key_material');
  const L = decodePoint(record.L, 'L', 'invalid_key_material');
  const X = decodePoint(shareP, 'shareP', 'pake_invalid_share');
  const yn = y === undefined ? randomScalar() : scalarFromBytes(y, 'y', 'invalid_argument');
  const shareV = Point.BASE.multiply(yn).add(N.multiply(w0)).toBytes(false);
  const points = verifierPoints(w0, L, yn, X);
  const keys = spake2plusKeySchedule(spake2plusTranscript(ctx, shareP, shareV, points, record.w0));
  return {
    shareV,
    confirmV: hmacSha256(keys.K_confirmV, shareP),
    state: { expectedConfirmP: hmacSha256(keys.K_confirmP, shareV), sharedKey: keys.K_shared },
  };
}

/**
 * Prover, on (shareV, confirmV): computes the keys, checks confirmV in constant time and answers
 * confirmP = HMAC(K_confirmP, shareV). A wrong PIN, a different context (another CA pin, session, key or identity)
 * or a replayed answer from another exchange all end here as `pake_confirmation_failed`. The state is consumed.
 */
export function proverFinish(state: ProverState, shareV: Uint8Array, confirmV: Uint8Array, ctx: PakeContext): ProverResult {
  if (!(state instanceof ProverState)) throw new PalyraError('invalid_argument', 'SPAKE2+ prover state is missing');
  requireContext(ctx);
  // Malformed input leaves the state as it was; anything that gets as far as the maths consumes it.
  const Y = decodePoint(shareV, 'shareV', 'pake_invalid_share');
  const received = requireBytes(confirmV, 'confirmV');
  const { w0, w1, x } = state.take();
  const points = proverPoints(w0, w1, x, Y);
  const keys = spake2plusKeySchedule(spake2plusTranscript(ctx, state.shareP, shareV, points, scalarToBytes(w0)));
  if (!constantTimeEqual(hmacSha256(keys.K_confirmV, state.shareP), received)) {
    throw new PalyraError('pake_confirmation_failed');
  }
  return { confirmP: hmacSha256(keys.K_confirmP, shareV), sharedKey: keys.K_shared };
}

/** Verifier, on confirmP: constant-time comparison; the shared key only on success, else `pake_confirmation_failed`. */
export function verifierFinish(state: VerifierState, confirmP: Uint8Array): Uint8Array {
  if (!isObject(state)) throw new PalyraError('invalid_argument', 'SPAKE2+ verifier state is missing');
  const expected = requireBytes(state.expectedConfirmP, 'expected confirmP');
  if (!constantTimeEqual(expected, requireBytes(confirmP, 'confirmP'))) throw new PalyraError('pake_confirmation_failed');
  return state.sharedKey;
}
