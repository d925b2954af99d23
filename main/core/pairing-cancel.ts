/**
 * The device's proof that it withdraws its own pairing request (CancelPairingRequest, PROTOCOL.md §4): an Ed25519
 * signature by the identity key the request was filed with, over
 *
 *   "palyra-cancel-v1" (16 bytes) ‖ session_id (UTF-8) ‖ device_id (UTF-8)
 *
 * Both ids are canonical (26 characters), so the plain concatenation is unambiguous; the domain tag keeps the
 * signature from being valid as any other signed message of the protocol. A replayed cancel can only cancel the same
 * request again, which is idempotent.
 */

import { concatBytes, utf8 } from './bytes.js';
import type { DeviceIdentity } from './device-identity.js';
import { PalyraError } from './errors.js';
import { verifyEd25519Strict } from './handshake.js';
import { isCanonicalId } from './ids.js';

export const PAIRING_CANCEL_DOMAIN = 'palyra-cancel-v1';

export function pairingCancelPayload(sessionId: string, deviceId: string): Uint8Array {
  if (!isCanonicalId(sessionId)) throw new PalyraError('invalid_argument', 'session_id must be a canonical ULID');
  if (!isCanonicalId(deviceId)) throw new PalyraError('invalid_argument', 'device_id must be a canonical ULID');
  return concatBytes(utf8(PAIRING_CANCEL_DOMAIN), utf8(sessionId), utf8(deviceId));
}

export function signPairingCancel(identity: DeviceIdentity, sessionId: string): Uint8Array {
  return identity.sign(pairingCancelPayload(sessionId, identity.deviceId));
}

/** Strict verification; false for any malformed input. */
export function verifyPairingCancel(input: { signature: Uint8Array; sessionId: string; deviceId: string; signingPublicKey: Uint8Array }): boolean {
  let payload: Uint8Array;
  try {
    payload = pairingCancelPayload(input.sessionId, input.deviceId);
  } catch {
    return false;
  }
  return verifyEd25519Strict(input.signature, payload, input.signingPublicKey);
}
