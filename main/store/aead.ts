/**
 * The one authenticated cipher of data at rest: AES-256-GCM with a 96-bit nonce and the full 128-bit tag, on
 * node:crypto. Both the secret store's files and the state journal's frames are sealed here.
 *
 * Sealed form: 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. Random nonces are safe at our volume: the
 * collision bound for 96-bit nonces stays negligible far beyond the number of writes one store key ever sees.
 * Anything else (128/192-bit keys, other nonce sizes, truncated tags) is refused with `invalid_argument` rather than
 * supported half-way; test/vectors/wycheproof.test.ts asserts that.
 */

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { PalyraError } from '../core/errors.js';

export const AEAD_KEY_LENGTH = 32;
export const AEAD_NONCE_LENGTH = 12;
export const AEAD_TAG_LENGTH = 16;
/** Bytes a sealed message is longer than its plaintext. */
export const AEAD_OVERHEAD = AEAD_NONCE_LENGTH + AEAD_TAG_LENGTH;
const CIPHER = 'aes-256-gcm';

function checkBytes(value: unknown, what: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new PalyraError('invalid_argument', `${what} must be bytes`);
  if (length !== undefined && value.length !== length) {
    throw new PalyraError('invalid_argument', `${what} must be ${length} bytes`, { details: { length: value.length } });
  }
  return value;
}

/** AES-256-GCM under an explicit nonce; returns ciphertext ‖ tag. For known-answer tests: production calls `seal`. */
export function encryptWithNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  checkBytes(key, 'AES-256-GCM key', AEAD_KEY_LENGTH);
  checkBytes(nonce, 'AES-256-GCM nonce', AEAD_NONCE_LENGTH);
  checkBytes(plaintext, 'plaintext');
  checkBytes(aad, 'associated data');
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: AEAD_TAG_LENGTH });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const last = cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(body.length + last.length + tag.length);
  out.set(body, 0);
  out.set(last, body.length);
  out.set(tag, body.length + last.length);
  return out;
}

/**
 * Inverse of `encryptWithNonce`: `sealedBody` is ciphertext ‖ 16-byte tag. A wrong key, nonce, AAD or any changed
 * byte is `cryptographic` (callers turn it into their own code, e.g. `store_decrypt_failed`).
 */
export function decryptWithNonce(key: Uint8Array, nonce: Uint8Array, sealedBody: Uint8Array, aad: Uint8Array): Uint8Array {
  checkBytes(key, 'AES-256-GCM key', AEAD_KEY_LENGTH);
  checkBytes(nonce, 'AES-256-GCM nonce', AEAD_NONCE_LENGTH);
  checkBytes(sealedBody, 'ciphertext');
  checkBytes(aad, 'associated data');
  if (sealedBody.length < AEAD_TAG_LENGTH) {
    throw new PalyraError('cryptographic', 'AES-256-GCM ciphertext is shorter than its tag', { details: { length: sealedBody.length } });
  }
  const split = sealedBody.length - AEAD_TAG_LENGTH;
  try {
    const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: AEAD_TAG_LENGTH });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealedBody.subarray(split));
    const plain = Buffer.concat([decipher.update(sealedBody.subarray(0, split)), decipher.final()]);
    // A view, not a copy: snapshots of large fleets are megabytes.
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
  } catch (cause) {
    throw new PalyraError('cryptographic', 'AES-256-GCM authentication failed', { cause });
  }
}

/** nonce ‖ ciphertext ‖ tag, with a fresh random 96-bit nonce. */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = randomBytes(AEAD_NONCE_LENGTH);
  const body = encryptWithNonce(key, nonce, plaintext, aad);
  const out = new Uint8Array(AEAD_NONCE_LENGTH + body.length);
  out.set(nonce, 0);
  out.set(body, AEAD_NONCE_LENGTH);
  return out;
}

/** Opens what `seal` produced; throws `cryptographic` if anything was changed or the key or AAD differ. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  checkBytes(sealed, 'sealed message');
  if (sealed.length < AEAD_OVERHEAD) {
    throw new PalyraError('cryptographic', 'sealed message is shorter than nonce and tag', { details: { length: sealed.length } });
  }
  return decryptWithNonce(key, sealed.subarray(0, AEAD_NONCE_LENGTH), sealed.subarray(AEAD_NONCE_LENGTH), aad);
}
