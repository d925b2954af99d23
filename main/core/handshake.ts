/**
 * Handshake v1 bytes (REFERENCE.md §2.3–2.5, PROTOCOL.md §1, §4): signature payload, transcript context and MAC,
 * the device's hello, strict Ed25519 verification and the CSR binding. Byte-exact with the reference; proven by
 * test/vectors.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, constantTimeEqual, toHex, u32le, utf8 } from './bytes.js';
import { isClientKind, type ClientKind } from './client-kind.js';
import { ed25519Verify, hkdfSha256, isEd25519PublicKey, x25519 } from './crypto.js';
import {
  X25519_KEY_LENGTH,
  pairingKeyExchangeFromPrivate,
  type DeviceIdentity,
  type PairingKeyExchange,
} from './device-identity.js';
import { PalyraError } from './errors.js';
import { computeSas } from './sas.js';

export const PAIRING_PROTOCOL_VERSION = 1;
/** Domain tag opening the signature payload (17 bytes). */
export const PAIRING_SIGNATURE_DOMAIN = 'palyra-pairing-v1';
/** Domain tag opening the transcript context, the HKDF info (25 bytes). */
export const TRANSCRIPT_CONTEXT_DOMAIN = 'palyra-mtls-transcript-v1';
/** Domain tag of the Ed25519 signature binding a CSR to a pairing session (PROTOCOL.md §4). */
export const CSR_BINDING_DOMAIN = 'palyra-csr-v1';
/** Byte length of the gateway's random challenge (also the HKDF salt). */
export const CHALLENGE_LENGTH = 32;
/** Byte length of the transcript MAC (HKDF-SHA256 output). */
export const TRANSCRIPT_MAC_LENGTH = 32;
/** Byte length of an Ed25519 signature. */
export const ED25519_SIGNATURE_LENGTH = 64;

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

function requireBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new PalyraError('invalid_argument', `${what} must be ${length} bytes`);
  }
  return value;
}

function requireClientKind(value: unknown): ClientKind {
  if (!isClientKind(value)) throw new PalyraError('invalid_argument', 'client_kind must be one of cli|desktop|node');
  return value;
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new PalyraError('invalid_argument', `${what} must be a string`);
  return value;
}

export interface SignaturePayloadInput {
  readonly protocolVersion: number;
  readonly sessionId: string;
  readonly challenge: Uint8Array;
  readonly gatewayEphemeralPublic: Uint8Array;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
  readonly proof: string;
}

/** The bytes the device signs: a bare concatenation without lengths, exactly as the reference (§2.3). */
export function signaturePayload(input: SignaturePayloadInput): Uint8Array {
  return concatBytes(
    utf8(PAIRING_SIGNATURE_DOMAIN),
    u32le(input.protocolVersion),
    utf8(requireString(input.sessionId, 'session_id')),
    requireBytes(input.challenge, CHALLENGE_LENGTH, 'challenge'),
    requireBytes(input.gatewayEphemeralPublic, X25519_KEY_LENGTH, 'gateway ephemeral public key'),
    utf8(requireString(input.deviceId, 'device_id')),
    utf8(requireClientKind(input.clientKind)),
    utf8(requireString(input.proof, 'proof')),
  );
}

export interface TranscriptContextInput {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
}

/** The HKDF info: tag ‖ session_id ‖ u32 LE version ‖ device_id ‖ client_kind (session id before version, §2.4). */
export function transcriptContext(input: TranscriptContextInput): Uint8Array {
  return concatBytes(
    utf8(TRANSCRIPT_CONTEXT_DOMAIN),
    utf8(requireString(input.sessionId, 'session_id')),
    u32le(input.protocolVersion),
    utf8(requireString(input.deviceId, 'device_id')),
    utf8(requireClientKind(input.clientKind)),
  );
}

/** mac = HKDF-SHA256(salt = challenge, ikm = X25519 shared secret, info = transcript context, 32 bytes). */
export function deriveTranscriptMac(input: { sharedSecret: Uint8Array; challenge: Uint8Array; context: Uint8Array }): Uint8Array {
  const ikm = requireBytes(input.sharedSecret, X25519_KEY_LENGTH, 'shared secret');
  const salt = requireBytes(input.challenge, CHALLENGE_LENGTH, 'challenge');
  if (!(input.context instanceof Uint8Array)) throw new PalyraError('invalid_argument', 'transcript context must be bytes');
  return hkdfSha256(ikm, salt, input.context, TRANSCRIPT_MAC_LENGTH);
}

/**
 * X25519 that refuses low-order public keys. The reference accepts an all-zero shared secret; we reject it
 * (`weak_key_exchange`, see crypto.ts): a peer sending a low-order point would otherwise fix the MAC input to zeros.
 */
export function x25519SharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  requireBytes(privateKey, X25519_KEY_LENGTH, 'X25519 private key');
  requireBytes(publicKey, X25519_KEY_LENGTH, 'X25519 public key');
  return x25519(privateKey, publicKey);
}

/** transcript_hash = SHA-256(mac): the hash of the 32-byte MAC, not of the transcript (§2.5). */
export function transcriptHash(mac: Uint8Array): Uint8Array {
  return sha256(requireBytes(mac, TRANSCRIPT_MAC_LENGTH, 'transcript MAC'));
}

/**
 * Strict RFC 8032 Ed25519 (crypto.ts `ed25519Verify`): S < L, canonical point encodings, and, unlike dalek's
 * `verify`, no small-order public keys: for those anyone can forge signatures, and no honest device has one. Never
 * throws: malformed input is simply not a valid signature.
 */
export function verifyEd25519Strict(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  return ed25519Verify(signature, message, publicKey);
}

/** A canonical encoding of a point of large order; step 9 of the server's verification. */
export function isValidEd25519PublicKey(publicKey: Uint8Array): boolean {
  return isEd25519PublicKey(publicKey);
}

/** The device → gateway hello, field for field as the reference's DevicePairingHello (§1.9). */
export interface DevicePairingHelloFields {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
  readonly proof: string;
  readonly deviceSigningPublic: Uint8Array;
  readonly deviceX25519Public: Uint8Array;
  readonly challengeSignature: Uint8Array;
  readonly transcriptMac: Uint8Array;
}

/** What logs may show of a hello: everything but the proof, of which only the length. */
export interface RedactedHello {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
  readonly proof: '<redacted>';
  readonly proofLen: number;
  readonly deviceSigningPublic: string;
  readonly deviceX25519Public: string;
  readonly challengeSignature: string;
  readonly transcriptMac: string;
}

export class DevicePairingHello implements DevicePairingHelloFields {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
  readonly proof: string;
  readonly deviceSigningPublic: Uint8Array;
  readonly deviceX25519Public: Uint8Array;
  readonly challengeSignature: Uint8Array;
  readonly transcriptMac: Uint8Array;

  constructor(fields: DevicePairingHelloFields) {
    this.sessionId = fields.sessionId;
    this.protocolVersion = fields.protocolVersion;
    this.deviceId = fields.deviceId;
    this.clientKind = fields.clientKind;
    this.proof = fields.proof;
    this.deviceSigningPublic = fields.deviceSigningPublic;
    this.deviceX25519Public = fields.deviceX25519Public;
    this.challengeSignature = fields.challengeSignature;
    this.transcriptMac = fields.transcriptMac;
  }

  redacted(): RedactedHello {
    return {
      sessionId: this.sessionId,
      protocolVersion: this.protocolVersion,
      deviceId: this.deviceId,
      clientKind: this.clientKind,
      proof: '<redacted>',
      proofLen: utf8(this.proof).length,
      deviceSigningPublic: toHex(this.deviceSigningPublic),
      deviceX25519Public: toHex(this.deviceX25519Public),
      challengeSignature: toHex(this.challengeSignature),
      transcriptMac: toHex(this.transcriptMac),
    };
  }

  toJSON(): RedactedHello {
    return this.redacted();
  }

  [INSPECT](_depth: number, options: unknown, inspect: (value: unknown, options: unknown) => string): string {
    return `DevicePairingHello ${inspect(this.redacted(), options)}`;
  }
}

/** The session facts the device received in BeginPairingSession (a PublicPairingSession fits). */
export interface HelloSession {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly clientKind: ClientKind;
  readonly challenge: Uint8Array;
  readonly gatewayEphemeralPublic: Uint8Array;
}

export interface DeviceHello {
  readonly hello: DevicePairingHello;
  /** The short authentication string the device shows beside the gateway's. */
  readonly sas: string;
  readonly transcriptHashHex: string;
}

/** Device side: signs the session facts and derives the transcript MAC with this pairing's X25519 key. */
export function buildDeviceHello(input: {
  identity: DeviceIdentity;
  session: HelloSession;
  proof: string;
  keyExchange: PairingKeyExchange;
}): DeviceHello {
  const { identity, session, proof, keyExchange } = input;
  const own = pairingKeyExchangeFromPrivate(keyExchange.privateKey);
  if (!constantTimeEqual(own.publicKey, keyExchange.publicKey)) {
    throw new PalyraError('invalid_key_material', 'X25519 public key does not belong to the private key');
  }
  const challengeSignature = identity.sign(
    signaturePayload({
      protocolVersion: session.protocolVersion,
      sessionId: session.sessionId,
      challenge: session.challenge,
      gatewayEphemeralPublic: session.gatewayEphemeralPublic,
      deviceId: identity.deviceId,
      clientKind: session.clientKind,
      proof,
    }),
  );
  const transcriptMac = deriveTranscriptMac({
    sharedSecret: x25519SharedSecret(keyExchange.privateKey, session.gatewayEphemeralPublic),
    challenge: session.challenge,
    context: transcriptContext({
      sessionId: session.sessionId,
      protocolVersion: session.protocolVersion,
      deviceId: identity.deviceId,
      clientKind: session.clientKind,
    }),
  });
  const hello = new DevicePairingHello({
    sessionId: session.sessionId,
    protocolVersion: session.protocolVersion,
    deviceId: identity.deviceId,
    clientKind: session.clientKind,
    proof,
    deviceSigningPublic: identity.signingPublicKey,
    deviceX25519Public: Uint8Array.from(keyExchange.publicKey),
    challengeSignature,
    transcriptMac,
  });
  return { hello, sas: computeSas(transcriptMac), transcriptHashHex: toHex(transcriptHash(transcriptMac)) };
}

/** "palyra-csr-v1" ‖ session_id ‖ SHA-256(CSR DER): what the device signs to bind its CSR to the pairing. */
export function csrBindingPayload(sessionId: string, csrDer: Uint8Array): Uint8Array {
  if (!(csrDer instanceof Uint8Array) || csrDer.length === 0) throw new PalyraError('invalid_argument', 'CSR DER must be non-empty bytes');
  return concatBytes(utf8(CSR_BINDING_DOMAIN), utf8(requireString(sessionId, 'session_id')), sha256(csrDer));
}

export function signCsrBinding(identity: DeviceIdentity, sessionId: string, csrDer: Uint8Array): Uint8Array {
  return identity.sign(csrBindingPayload(sessionId, csrDer));
}

/** Strict verification of a CSR binding signature; false for any malformed input. */
export function verifyCsrBinding(input: {
  signature: Uint8Array;
  sessionId: string;
  csrDer: Uint8Array;
  signingPublicKey: Uint8Array;
}): boolean {
  let payload: Uint8Array;
  try {
    payload = csrBindingPayload(input.sessionId, input.csrDer);
  } catch {
    return false;
  }
  return verifyEd25519Strict(input.signature, payload, input.signingPublicKey);
}
