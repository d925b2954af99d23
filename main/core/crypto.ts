/**
 * The project's cryptographic primitives, one thin wrapper each over the libraries the design names:
 * Ed25519 on @noble/ed25519, X25519 on @noble/curves, ECDSA P-256 verification on @noble/curves `p256`, and
 * HKDF/HMAC-SHA256 on @noble/hashes. Every caller in the core goes through these, and test/vectors/wycheproof.test.ts
 * runs the Wycheproof suites through exactly these functions, so a library upgrade that changes an edge case is
 * noticed. Pure JavaScript and WebCrypto-free, so the core also runs in a renderer.
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
  return ed.getPublicKey(bytesArg(seed, 'Ed25519 seed', KEY_LENGTH));
}

/** Deterministic RFC 8032 signature. */
export function ed25519Sign(message: Uint8Array, seed: Uint8Array): Uint8Array {
  return ed.sign(bytesArg(message, 'message'), bytesArg(seed, 'Ed25519 seed', KEY_LENGTH));
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

// --- X25519 ----------------------------------------------------------------------------------------------------

/** The public key (u-coordinate) of an X25519 private key; clamping is part of the function (RFC 7748). */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return x25519Curve.getPublicKey(bytesArg(privateKey, 'X25519 private key', KEY_LENGTH));
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
    shared = x25519Curve.getSharedSecret(privateKey, publicKey);
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
  return hkdf(sha256, bytesArg(ikm, 'HKDF input key'), bytesArg(salt, 'HKDF salt'), bytesArg(info, 'HKDF info'), length);
}

/** The full 32-byte HMAC-SHA256 tag of `message` under `key` (any key length, RFC 2104). */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmac(sha256, bytesArg(key, 'HMAC key'), bytesArg(message, 'message'));
}

/**
 * Constant-time check of a full 32-byte tag. A truncated tag is refused with `invalid_argument` rather than
 * compared on a prefix: nothing in the protocol truncates, so a short tag is a caller's mistake, not a forgery.
 */
export function hmacSha256Verify(key: Uint8Array, message: Uint8Array, tag: Uint8Array): boolean {
  bytesArg(tag, 'HMAC-SHA256 tag', HMAC_SHA256_LENGTH);
  return constantTimeEqual(hmacSha256(key, message), tag);
}
