/**
 * Canonical ids: 26-character Crockford base32, upper case (REFERENCE.md §1.1), and the key-derived device_id of
 * PROTOCOL.md §2 (first 128 bits of SHA-256(Ed25519 public key), written like a ULID).
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { PalyraError } from './errors.js';

/** Crockford base32 alphabet: digits and upper-case letters without I, L, O, U. */
export const CROCKFORD_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** Length of a canonical id in characters (128 bits, ULID layout). */
export const CANONICAL_ID_LENGTH = 26;
/** Byte length of an Ed25519 public key. */
const ED25519_PUBLIC_KEY_LENGTH = 32;

/**
 * The reference's check: exactly 26 bytes, each an upper-case Crockford character. Like the reference it does not
 * reject a first character above 7 (ULID overflow); `isStrictUlid` does.
 */
export function validateCanonicalId(value: string): void {
  if (value.length !== CANONICAL_ID_LENGTH || new TextEncoder().encode(value).length !== CANONICAL_ID_LENGTH) {
    throw new PalyraError('invalid_canonical_id', 'invalid canonical device ID: must be exactly 26 characters', {
      details: { reason: 'InvalidLength' },
    });
  }
  for (const ch of value) {
    if (!CROCKFORD_ALPHABET.includes(ch)) {
      throw new PalyraError('invalid_canonical_id', `invalid canonical device ID: invalid character '${ch}'`, {
        details: { reason: 'InvalidCharacter', character: ch },
      });
    }
  }
}

export function isCanonicalId(value: string): boolean {
  try {
    validateCanonicalId(value);
    return true;
  } catch {
    return false;
  }
}

/** Canonical and within the 128-bit ULID range (first character 0–7). */
export function isStrictUlid(value: string): boolean {
  return isCanonicalId(value) && value.charCodeAt(0) <= '7'.charCodeAt(0);
}

/** Encodes 16 bytes as 26 Crockford characters, most significant bits first (two leading zero pad bits). */
export function encodeCrockford128(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new PalyraError('invalid_argument', 'a canonical id encodes exactly 16 bytes');
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < CANONICAL_ID_LENGTH; i++) {
    out = CROCKFORD_ALPHABET[Number(n & 31n)]! + out;
    n >>= 5n;
  }
  return out;
}

export function decodeCrockford128(id: string): Uint8Array {
  validateCanonicalId(id);
  if (!isStrictUlid(id)) throw new PalyraError('invalid_canonical_id', 'canonical id exceeds 128 bits');
  let n = 0n;
  for (const ch of id) n = (n << 5n) | BigInt(CROCKFORD_ALPHABET.indexOf(ch));
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** device_id = Crockford(first 16 bytes of SHA-256(Ed25519 public key)) — PROTOCOL.md §2. */
export function deviceIdFromPublicKey(ed25519Public: Uint8Array): string {
  if (ed25519Public.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new PalyraError('invalid_public_key', 'device signing public key must be 32 bytes');
  }
  return encodeCrockford128(sha256(ed25519Public).subarray(0, 16));
}

export function isDerivedDeviceId(deviceId: string, ed25519Public: Uint8Array): boolean {
  return ed25519Public.length === ED25519_PUBLIC_KEY_LENGTH && deviceIdFromPublicKey(ed25519Public) === deviceId;
}

/**
 * A new ULID: 48-bit millisecond time then 80 random bits. `now` is passed in (the core never reads the clock);
 * randomness comes from WebCrypto, present in Node, Electron and the renderer alike.
 */
export function newUlid(now: number, random: Uint8Array = globalThis.crypto.getRandomValues(new Uint8Array(10))): string {
  if (!Number.isInteger(now) || now < 0 || now > 2 ** 48 - 1) throw new PalyraError('invalid_argument', 'ULID time out of range');
  if (random.length !== 10) throw new PalyraError('invalid_argument', 'ULID randomness must be 10 bytes');
  const bytes = new Uint8Array(16);
  let t = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = t % 256;
    t = Math.floor(t / 256);
  }
  bytes.set(random, 6);
  return encodeCrockford128(bytes);
}
