/**
 * What a PIN pairing v2 exchange is bound to, as the SPAKE2+ context and identities (RFC 9383 §3.3):
 *
 *   idProver   = UTF-8 of the device_id (26 bytes)
 *   idVerifier = the CA pin the device saw in the TLS handshake: the 32 raw bytes of SHA-256(CA SubjectPublicKeyInfo),
 *                i.e. base64url-decoded `ca_pin`
 *   Context    = len ‖ "palyra-pin-pairing-v2" ‖ len ‖ session_id (UTF-8) ‖ len ‖ client_kind (UTF-8)
 *                ‖ len ‖ gateway_ephemeral_public (32) ‖ len ‖ device_x25519_commitment (32)
 *                (len = 8-byte little-endian length, as in TT)
 *
 * A man in the middle that terminates TLS with its own CA shows the device another CA pin, so the two ends hash
 * different transcripts and key confirmation fails even if every message is relayed unchanged.
 */

import { fromBase64Url, utf8 } from './bytes.js';
import { isClientKind, type ClientKind } from './client-kind.js';
import { PalyraError } from './errors.js';
import { validateCanonicalId } from './ids.js';
import { lengthPrefixed, type PakeContext } from './spake2plus.js';

export const PAKE_CONTEXT_DOMAIN = 'palyra-pin-pairing-v2';

const KEY_LENGTH = 32;
const CA_PIN_LENGTH = 32;

export interface PinPairingBinding {
  /** The pairing session id (canonical id). */
  readonly sessionId: string;
  readonly clientKind: ClientKind;
  /** The gateway's ephemeral X25519 public key for this session (32 bytes). */
  readonly gatewayEphemeralPublic: Uint8Array;
  /** The device's X25519 commitment from BeginPairingSession (32 bytes). */
  readonly deviceX25519Commitment: Uint8Array;
  /** The device's canonical device_id. */
  readonly deviceId: string;
  /** `ca_pin`: base64url (no padding) SHA-256 of the CA SubjectPublicKeyInfo, as the device saw it in TLS. */
  readonly caPin: string;
}

function requireKey(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== KEY_LENGTH) {
    throw new PalyraError('invalid_argument', `${what} must be ${KEY_LENGTH} bytes`);
  }
  return value;
}

export function pinPairingPakeContext(binding: PinPairingBinding): PakeContext {
  validateCanonicalId(binding.sessionId);
  validateCanonicalId(binding.deviceId);
  if (!isClientKind(binding.clientKind)) throw new PalyraError('invalid_argument', 'client kind must be one of cli|desktop|node');
  const gatewayKey = requireKey(binding.gatewayEphemeralPublic, 'gateway ephemeral X25519 key');
  const commitment = requireKey(binding.deviceX25519Commitment, 'device X25519 commitment');
  if (typeof binding.caPin !== 'string') throw new PalyraError('invalid_argument', 'CA pin must be a string');
  const caPin = fromBase64Url(binding.caPin);
  if (caPin.length !== CA_PIN_LENGTH) throw new PalyraError('invalid_argument', 'CA pin must be a base64url SHA-256 digest');
  return {
    context: lengthPrefixed(utf8(PAKE_CONTEXT_DOMAIN), utf8(binding.sessionId), utf8(binding.clientKind), gatewayKey, commitment),
    idProver: utf8(binding.deviceId),
    idVerifier: caPin,
  };
}
