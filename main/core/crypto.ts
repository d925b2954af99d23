/**
 * The project's cryptographic primitives, one thin wrapper each over the libraries the design names:
 * Ed25519 on @noble/ed25519, X25519 on @noble/curves, ECDSA P-256 verification on @noble/curves `p256`, and
 * HKDF/HMAC-SHA256 on @noble/hashes. Every caller in the core goes through these, and test/vectors/wycheproof.test.ts
 * runs the Wycheproof suites through exactly these functions, so a library upgrade that changes an edge case is
 * noticed. Pure JavaScript and WebCrypto-free, so the core also runs in a renderer.
 *
 * In the main process (the CLI, the desktop app: main/platform/node-crypto.ts `installNodeCrypto`) the curve and hash
 * maths run in node:crypto (OpenSSL) instead, through `setCryptoBackend`, while every rule (lengths, canonical
 * encodings, S < ℓ, small-order keys, the all-zero X25519 secret) stays here in JavaScript, and any "no" from the
 * backend is asked of @noble again before it is answered, so both give the same answer for every input (proven on
 * the Wycheproof suites). @noble stays the reference, the default and the renderer's implementation.
 */

import { x25519 as x25519Curve } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import * as ed from '@noble/ed25519';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { constantTimeEqual } from './bytes.js';
import { PalyraError } from './errors.js';

// @noble/ed25519 ships without a hash: it needs SHA-512 set once (its README). Done here, at module load, so no
// caller can reach a signing or verification function before it is set.
ed.hashes.sha512 = sha512;

// --- backend -----------------------------------------------------------------------------------------------------

/**
 * The curve and hash maths of another implementation (main/platform/node-crypto.ts: node:crypto). Only maths: the
 * rules stay in this module, and each function may answer only as @noble would (a refusal is asked of @noble again).
 */
export interface CryptoBackend {
  readonly name: string;
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  ed25519Sign(message: Uint8Array, seed: Uint8Array): Uint8Array;
  /**
   * Called only after S < ℓ and a canonical key of large order were checked here. `true` must imply @noble's strict
   * accept (OpenSSL's cofactorless equation implies @noble's cofactored one); `false` is asked of @noble.
   */
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /** RFC 7748 X25519; may throw for a low-order peer key (the caller makes that `weak_key_exchange`). */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** `true` must imply @noble's accept (strict DER, high S accepted); `false` is asked of @noble. */
  p256Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, format: EcdsaSignatureFormat): boolean;
  hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array;
}

/** The backend in use, or undefined while the @noble reference serves every call (the default; the renderer's). */
let fast: CryptoBackend | undefined;

/** `noble`, or the name of the backend set by `setCryptoBackend` (`node:crypto`). */
export function cryptoBackend(): string {
  return fast === undefined ? 'noble' : fast.name;
}

/** Routes the maths to `backend` (null: back to @noble). Main-process entry points install node:crypto. */
export function setCryptoBackend(backend: CryptoBackend | null): void {
  fast = backend ?? undefined;
}

/** Byte length of an Ed25519 seed, public key or of an X25519 key. */
const KEY_LENGTH = 32;
/** Byte length of an Ed25519 signature. */
const ED25519_SIGNATURE_BYTES = 64;
/** Byte length of an HMAC-SHA256 tag (we never truncate). */
export const HMAC_SHA256_LENGTH = 32;
/** RFC 5869: HKDF-SHA256 output is at most 255 blocks of 32 bytes. */
export const HKDF_SHA256_MAX_LENGTH = 255 * 32;

function bytesArg(value: unknown, what: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array) || (length !== undefined && value.length !== length)) {
    throw new PalyraError('invalid_argument', length === undefined ? `${what} must be bytes` : `${what} must be ${length} bytes`);
  }
  return value;
}

// --- Ed25519 ---------------------------------------------------------------------------------------------------

/** The public key of a 32-byte seed (RFC 8032 secret key). */
export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  bytesArg(seed, 'Ed25519 seed', KEY_LENGTH);
  return fast === undefined ? ed.getPublicKey(seed) : fast.ed25519PublicKey(seed);
}

/** Deterministic RFC 8032 signature. */
export function ed25519Sign(message: Uint8Array, seed: Uint8Array): Uint8Array {
  bytesArg(message, 'message');
  bytesArg(seed, 'Ed25519 seed', KEY_LENGTH);
  return fast === undefined ? ed.sign(message, seed) : fast.ed25519Sign(message, seed);
}

/**
 * Strict RFC 8032 verification: S < L, canonical encodings of R and A (y < p, no "negative zero"), and a public key
 * of large order; noble's `zip215: false` branch enforces all three, and the small-order check is repeated here so
 * the rule does not rest on one library option. Small-order keys are refused because anyone can forge signatures
 * for them and no honest device has one. Never throws: malformed input is simply not a valid signature.
 */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || !(message instanceof Uint8Array) || !(publicKey instanceof Uint8Array)) return false;
  if (signature.length !== ED25519_SIGNATURE_BYTES || publicKey.length !== KEY_LENGTH) return false;
  if (fast !== undefined) {
    // The strict rules, on the bytes (no point decoding): each refusal here is also @noble's (see below).
    if (!isScalarBelowOrder(signature.subarray(32)) || !isCanonicalY(publicKey) || hasSmallOrderY(publicKey)) return false;
    // An OpenSSL accept implies @noble's strict accept (node-crypto.ts); a refusal is asked of @noble below.
    if (fast.ed25519Verify(signature, message, publicKey)) return true;
  }
  if (!isEd25519PublicKey(publicKey)) return false;
  try {
    return ed.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** A canonical encoding of an Ed25519 point of large order (what an honest device's key always is). */
export function isEd25519PublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_LENGTH) return false;
  try {
    return !ed.Point.fromBytes(publicKey, false).isSmallOrder();
  } catch {
    return false;
  }
}

/** ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian: S must be below it (RFC 8032 §5.1.7). */
const ED25519_ORDER_LE = Uint8Array.of(
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
);

/** A 32-byte little-endian scalar < ℓ (compared from the most significant byte; public data, not constant-time). */
function isScalarBelowOrder(scalar: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (scalar[i]! !== ED25519_ORDER_LE[i]!) return scalar[i]! < ED25519_ORDER_LE[i]!;
  }
  return false;
}

/** y (the encoding without its sign bit) < p = 2^255 − 19: the canonical-encoding rule of RFC 8032 §5.1.3. */
function isCanonicalY(point: Uint8Array): boolean {
  if ((point[31]! & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (point[i] !== 0xff) return true;
  return point[0]! < 0xed;
}

/**
 * The y-coordinates of the eight points of small order (the torsion subgroup): 0 (order 4), 1 (the identity), p − 1
 * (order 2) and the pair of order 8, little-endian. Every encoding whose y is one of these is either such a point or
 * not a valid encoding at all ("negative zero" of y = 1 or p − 1), so @noble refuses it as a public key too.
 */
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
].map((hex) => Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16)));

function hasSmallOrderY(point: Uint8Array): boolean {
  return SMALL_ORDER_Y.some((y) => {
    for (let i = 0; i < 31; i++) if (point[i] !== y[i]) return false;
    return (point[31]! & 0x7f) === y[31];
  });
}

// --- X25519 ----------------------------------------------------------------------------------------------------

/** The public key (u-coordinate) of an X25519 private key; clamping is part of the function (RFC 7748). */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  bytesArg(privateKey, 'X25519 private key', KEY_LENGTH);
  return fast === undefined ? x25519Curve.getPublicKey(privateKey) : fast.x25519PublicKey(privateKey);
}

/**
 * X25519(privateKey, publicKey), refusing a low-order peer key (`weak_key_exchange`). RFC 7748 lets an
 * implementation return the all-zero secret for those; we never do, since a peer sending such a point would fix the
 * key-derivation input to zeros. noble refuses the low-order inputs before the ladder; the all-zero check after it
 * keeps the rule whatever the library does.
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  bytesArg(privateKey, 'X25519 private key', KEY_LENGTH);
  bytesArg(publicKey, 'X25519 public key', KEY_LENGTH);
  let shared: Uint8Array;
  try {
    shared = fast === undefined ? x25519Curve.getSharedSecret(privateKey, publicKey) : fast.x25519(privateKey, publicKey);
  } catch (cause) {
    throw new PalyraError('weak_key_exchange', undefined, { cause });
  }
  if (shared.every((b) => b === 0)) throw new PalyraError('weak_key_exchange');
  return shared;
}

// --- ECDSA P-256 -----------------------------------------------------------------------------------------------

/** How an ECDSA signature is written: X.690 DER (X.509, PKCS#10) or IEEE P1363 `r ‖ s` (WebCrypto, JOSE). */
export type EcdsaSignatureFormat = 'der' | 'p1363';
const NOBLE_SIGNATURE_FORMAT: Readonly<Record<EcdsaSignatureFormat, 'der' | 'compact'>> = { der: 'der', p1363: 'compact' };

/**
 * ECDSA P-256 with SHA-256 over `message`. `publicKey` is a SEC1 point (65-byte uncompressed or 33-byte compressed).
 * DER must be the one strict encoding (no BER length forms, no padding, no trailing bytes). High-S signatures are
 * valid ECDSA and accepted, as X.509 verifiers do. Never throws for a bad signature or key: returns false.
 */
export function p256Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, format: EcdsaSignatureFormat): boolean {
  // Checked at run time too: a format typo must not silently become some other parser.
  const nobleFormat = Object.hasOwn(NOBLE_SIGNATURE_FORMAT, format) ? NOBLE_SIGNATURE_FORMAT[format] : undefined;
  if (nobleFormat === undefined) throw new PalyraError('invalid_argument', 'ECDSA signature format must be der or p1363');
  if (!(signature instanceof Uint8Array) || !(message instanceof Uint8Array) || !(publicKey instanceof Uint8Array)) return false;
  // OpenSSL accepts a subset of what @noble accepts (node-crypto.ts); a refusal is asked of @noble.
  if (fast?.p256Verify(signature, message, publicKey, format) === true) return true;
  try {
    return p256.verify(signature, message, publicKey, { prehash: true, lowS: false, format: nobleFormat });
  } catch {
    return false;
  }
}

// --- HKDF / HMAC -----------------------------------------------------------------------------------------------

/** HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes (1 … 8160). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_SHA256_MAX_LENGTH) {
    throw new PalyraError('invalid_argument', `HKDF-SHA256 output must be 1..${HKDF_SHA256_MAX_LENGTH} bytes`, { details: { length } });
  }
  bytesArg(ikm, 'HKDF input key');
  bytesArg(salt, 'HKDF salt');
  bytesArg(info, 'HKDF info');
  if (fast === undefined) return hkdf(sha256, ikm, salt, info, length);
  // RFC 5869 over the backend's HMAC: PRK = HMAC(salt, IKM); T(i) = HMAC(PRK, T(i−1) ‖ info ‖ i).
  const prk = fast.hmacSha256(salt, ikm);
  const out = new Uint8Array(length);
  let block: Uint8Array = new Uint8Array(0);
  for (let i = 1, offset = 0; offset < length; i++, offset += block.length) {
    const input = new Uint8Array(block.length + info.length + 1);
    input.set(block, 0);
    input.set(info, block.length);
    input[input.length - 1] = i;
    block = fast.hmacSha256(prk, input);
    out.set(block.subarray(0, Math.min(block.length, length - offset)), offset);
  }
  prk.fill(0);
  return out;
}

/** The full 32-byte HMAC-SHA256 tag of `message` under `key` (any key length, RFC 2104). */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  bytesArg(key, 'HMAC key');
  bytesArg(message, 'message');
  return fast === undefined ? hmac(sha256, key, message) : fast.hmacSha256(key, message);
}

/**
 * Constant-time check of a full 32-byte tag. A truncated tag is refused with `invalid_argument` rather than
 * compared on a prefix: nothing in the protocol truncates, so a short tag is a caller's mistake, not a forgery.
 */
export function hmacSha256Verify(key: Uint8Array, message: Uint8Array, tag: Uint8Array): boolean {
  bytesArg(tag, 'HMAC-SHA256 tag', HMAC_SHA256_LENGTH);
  return constantTimeEqual(hmacSha256(key, message), tag);
}
