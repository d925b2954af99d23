/**
 * The device's PIN password hash for PIN pairing v2 (docs/PROTOCOL.md 5a.4) on node:crypto's native scrypt, run on the
 * libuv thread pool: the same bytes as main/core/pin-hash.ts (scrypt N=32768, r=8, p=1, 80 bytes of the framed PIN)
 * at less than half the cost of the pure-JS scrypt main/core must use, and the event loop stays free meanwhile.
 */

import { scrypt } from 'node:crypto';
import { PalyraError } from '../core/errors.js';
import { PIN_HASH_SALT_LENGTH, PIN_HASH_SCRYPT, pinHashInput } from '../core/pin-hash.js';
import { computeW0W1, type ProverSecret } from '../core/spake2plus.js';

/** 128 · N · r bytes of scrypt memory (32 MiB), plus room: node's default maxmem (32 MiB) is just too small. */
const MAX_MEM = 64 * 1024 * 1024;

export async function pinPasswordHashNative(pin: string, salt: Uint8Array): Promise<Uint8Array> {
  const input = pinHashInput(pin);
  if (!(salt instanceof Uint8Array) || salt.length !== PIN_HASH_SALT_LENGTH) {
    throw new PalyraError('invalid_argument', `PIN hash salt must be ${PIN_HASH_SALT_LENGTH} bytes`);
  }
  const { N, r, p, dkLen } = PIN_HASH_SCRYPT;
  return new Promise<Uint8Array>((resolve, reject) => {
    scrypt(input, salt, dkLen, { N, r, p, maxmem: MAX_MEM }, (error, key) => {
      input.fill(0);
      if (error !== null) reject(new PalyraError('cryptographic', 'the PIN password hash failed', { cause: error }));
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.length));
    });
  });
}

/** w0 and w1 from the PIN the person typed and the salt the gateway sent (BeginPinPairingSession). */
export async function pinProverSecretNative(pin: string, salt: Uint8Array): Promise<ProverSecret> {
  const output = await pinPasswordHashNative(pin, salt);
  try {
    return computeW0W1(output);
  } finally {
    output.fill(0);
  }
}
