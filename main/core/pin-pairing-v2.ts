/**
 * PIN pairing v2 on the wire (docs/PROTOCOL.md "PIN pairing v2"): the values both sides derive besides the SPAKE2+
 * exchange itself (main/core/spake2plus.ts, pin-hash.ts, pake-context.ts).
 *
 * After both key confirmations, the device signs its hello over the proof string `"pake-v2:" ‖ hex(K_shared)`
 * (lowercase hex, 72 ASCII characters) in place of the PIN, and sends `proof` empty: the signature then covers the
 * PAKE's key, and the PIN itself never leaves the device.
 */

import { toHex } from './bytes.js';
import { PalyraError } from './errors.js';
import { SPAKE2PLUS_SHARED_KEY_LENGTH } from './spake2plus.js';

export const PIN_PAIRING_V2_PROOF_PREFIX = 'pake-v2:';

/** Device-side limit of failed confirmations against one gateway CA pin before it refuses to try again. */
export const DEVICE_PAKE_FAILURE_LIMIT = 20;

export function pinPairingV2Proof(sharedKey: Uint8Array): string {
  if (!(sharedKey instanceof Uint8Array) || sharedKey.length !== SPAKE2PLUS_SHARED_KEY_LENGTH) {
    throw new PalyraError('invalid_argument', `K_shared must be ${SPAKE2PLUS_SHARED_KEY_LENGTH} bytes`);
  }
  return PIN_PAIRING_V2_PROOF_PREFIX + toHex(sharedKey);
}

/** What the person typed or pasted ("655 376", "655-376", " 655376\n") → the 6 digits, else `invalid_argument`. */
export function normalizePinInput(text: string): string {
  const pin = text.replace(/[\s-]/gu, '');
  if (!/^[0-9]{6}$/.test(pin)) throw new PalyraError('invalid_argument', 'a PIN is 6 digits (spaces and dashes are ignored)');
  return pin;
}
