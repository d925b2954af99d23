/**
 * The password hash of PIN pairing v2: from a 6-digit PIN and a per-code salt to the SPAKE2+ scalars w0, w1
 * (device) and to the registration record {w0, L} (gateway, which then forgets the PIN and w1).
 *
 *   input   = len(pw) ‖ pw ‖ len(idProver) ‖ idProver ‖ len(idVerifier) ‖ idVerifier    (RFC 9383 §3.2)
 *             with pw = UTF-8 of the 6 ASCII digits and both identities empty (unknown when a code is minted)
 *   w0s‖w1s = scrypt(input, salt, N = 32768, r = 8, p = 1, dkLen = 80)                     (RFC 7914)
 *   w0, w1  = each 40-byte half, big-endian, mod n                                         (spake2plus.computeW0W1)
 *
 * A PIN has only 10⁶ values, so the hash cannot stop someone who stole a record from finding the PIN; what it does is
 * make each guess cost ~0.1 s and 32 MiB, per salt. Online and man-in-the-middle guessing is stopped by SPAKE2+ itself
 * (one guess per exchange) and the PIN budget. The identities are bound in the SPAKE2+ transcript instead.
 */

import { scrypt, scryptAsync } from '@noble/hashes/scrypt.js';
import { utf8 } from './bytes.js';
import { PalyraError } from './errors.js';
import { computeW0W1, lengthPrefixed, registration, type ProverSecret, type VerifierRecord } from './spake2plus.js';

/** Byte length of the per-code salt. */
export const PIN_HASH_SALT_LENGTH = 16;

/** scrypt parameters (RFC 9383 §3.2 recommends exactly these); dkLen = SPAKE2+ w0s ‖ w1s for P-256. */
export const PIN_HASH_SCRYPT = Object.freeze({ N: 32_768, r: 8, p: 1, dkLen: 80 });

/** What the gateway stores per PIN code: the SPAKE2+ verifier and its salt, never the PIN or a plain hash of it. */
export interface PinVerifier extends VerifierRecord {
  readonly salt: Uint8Array;
}

const PIN_PATTERN = /^[0-9]{6}$/;
const NO_IDENTITY = new Uint8Array(0);

function requireSalt(salt: unknown): Uint8Array {
  if (!(salt instanceof Uint8Array) || salt.length !== PIN_HASH_SALT_LENGTH) {
    throw new PalyraError('invalid_argument', `PIN hash salt must be ${PIN_HASH_SALT_LENGTH} bytes`);
  }
  return salt;
}

/** The scrypt password: the RFC's framing of the PIN with both identities empty. The PIN is never in a message. */
export function pinHashInput(pin: string): Uint8Array {
  if (typeof pin !== 'string' || !PIN_PATTERN.test(pin)) {
    throw new PalyraError('invalid_argument', 'a PIN is exactly 6 digits');
  }
  return lengthPrefixed(utf8(pin), NO_IDENTITY, NO_IDENTITY);
}

/** w0s ‖ w1s (80 bytes). Blocks for ~0.1 s; use pinPasswordHashAsync on an event loop that must stay responsive. */
export function pinPasswordHash(pin: string, salt: Uint8Array): Uint8Array {
  return scrypt(pinHashInput(pin), requireSalt(salt), { ...PIN_HASH_SCRYPT });
}

export async function pinPasswordHashAsync(pin: string, salt: Uint8Array): Promise<Uint8Array> {
  const input = pinHashInput(pin);
  return scryptAsync(input, requireSalt(salt), { ...PIN_HASH_SCRYPT });
}

/** The device's side: w0 and w1 from the PIN the person typed and the salt the gateway sent. */
export function pinProverSecret(pin: string, salt: Uint8Array): ProverSecret {
  return computeW0W1(pinPasswordHash(pin, salt));
}

export async function pinProverSecretAsync(pin: string, salt: Uint8Array): Promise<ProverSecret> {
  return computeW0W1(await pinPasswordHashAsync(pin, salt));
}

function newSalt(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(PIN_HASH_SALT_LENGTH));
}

function verifierOf(secret: ProverSecret, salt: Uint8Array): PinVerifier {
  const record = registration(secret.w0, secret.w1);
  // w1 is what a verifier must not know: wipe our copy once L is computed.
  secret.w1.fill(0);
  return { salt: Uint8Array.from(salt), w0: record.w0, L: record.L };
}

/** The gateway's side, at minting: a fresh salt (unless given, for vectors) and the record to store. */
export function pinVerifier(pin: string, salt: Uint8Array = newSalt()): PinVerifier {
  return verifierOf(pinProverSecret(pin, salt), salt);
}

export async function pinVerifierAsync(pin: string, salt: Uint8Array = newSalt()): Promise<PinVerifier> {
  return verifierOf(await pinProverSecretAsync(pin, salt), salt);
}
