/**
 * The device's long-term Ed25519 identity (REFERENCE.md §1.2, PROTOCOL.md §2) and the fresh X25519 key of one
 * pairing with its commitment (PROTOCOL.md §3).
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, fromBase64, fromUtf8, toBase64, toHex, utf8 } from './bytes.js';
import { ed25519PublicKey, ed25519Sign, x25519PublicKey } from './crypto.js';
import { PalyraError } from './errors.js';
import { deviceIdFromPublicKey, validateCanonicalId } from './ids.js';

/** Byte length of an Ed25519 seed (the secret key of RFC 8032). */
export const ED25519_SEED_LENGTH = 32;
/** Byte length of an Ed25519 public key. */
export const ED25519_PUBLIC_KEY_LENGTH = 32;
/** Byte length of an X25519 private or public key. */
export const X25519_KEY_LENGTH = 32;
/** Domain tag of the BeginPairingSession commitment to the device's X25519 key (PROTOCOL.md §3). */
export const X25519_COMMITMENT_DOMAIN = 'palyra-commit-v1';

const INSPECT = Symbol.for('nodejs.util.inspect.custom');
type Inspect = (value: unknown, options: unknown) => string;

function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

function requireBytes(value: unknown, length: number, code: 'invalid_key_material' | 'invalid_public_key', what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new PalyraError(code, `${what} must be ${length} bytes`);
  }
  return value;
}

/** identity_fingerprint: lowercase hex SHA-256 of the 32-byte Ed25519 public key (REFERENCE.md §2.5). */
export function identityFingerprint(signingPublicKey: Uint8Array): string {
  return toHex(sha256(requireBytes(signingPublicKey, ED25519_PUBLIC_KEY_LENGTH, 'invalid_public_key', 'Ed25519 public key')));
}

/** The persisted form, `device/{device_id}/identity.json` in the reference (standard base64, no padding). */
export interface StoredDeviceIdentity {
  readonly device_id: string;
  readonly signing_key_b64: string;
}

/** Public facts about an identity; what logs, JSON and inspect show. */
export interface DeviceIdentitySummary {
  readonly deviceId: string;
  readonly fingerprint: string;
  readonly signingPublicKeyHex: string;
}

export class DeviceIdentity {
  readonly deviceId: string;
  readonly fingerprint: string;
  readonly #seed: Uint8Array;
  readonly #signingPublicKey: Uint8Array;

  private constructor(seed: Uint8Array) {
    this.#seed = Uint8Array.from(requireBytes(seed, ED25519_SEED_LENGTH, 'invalid_key_material', 'Ed25519 seed'));
    this.#signingPublicKey = ed25519PublicKey(this.#seed);
    this.deviceId = deviceIdFromPublicKey(this.#signingPublicKey);
    this.fingerprint = identityFingerprint(this.#signingPublicKey);
  }

  /** A new identity from 32 CSPRNG bytes. */
  static generate(): DeviceIdentity {
    return new DeviceIdentity(randomBytes(ED25519_SEED_LENGTH));
  }

  static fromSeed(seed: Uint8Array): DeviceIdentity {
    return new DeviceIdentity(seed);
  }

  /**
   * Reads the stored JSON (text or parsed). The reference's `x25519_secret_b64` is ignored: our X25519 key is fresh
   * per pairing. `expectedDeviceId` is the id the storage key named ("stored device identity mismatch" otherwise).
   */
  static deserialize(stored: string | Uint8Array | StoredDeviceIdentity, expectedDeviceId?: string): DeviceIdentity {
    const record = parseStored(stored);
    validateCanonicalId(record.device_id);
    if (expectedDeviceId !== undefined && record.device_id !== expectedDeviceId) {
      throw new PalyraError('device_id_mismatch', 'stored device identity mismatch', {
        details: { expected: expectedDeviceId, got: record.device_id },
      });
    }
    let seed: Uint8Array;
    try {
      seed = fromBase64(record.signing_key_b64);
    } catch (cause) {
      throw new PalyraError('invalid_key_material', 'stored signing key is not valid base64', { cause });
    }
    if (seed.length !== ED25519_SEED_LENGTH) {
      throw new PalyraError('invalid_key_material', `stored signing key must decode to ${ED25519_SEED_LENGTH} bytes`, {
        details: { got: seed.length },
      });
    }
    const identity = new DeviceIdentity(seed);
    seed.fill(0);
    if (identity.deviceId !== record.device_id) {
      throw new PalyraError('device_id_mismatch', undefined, { details: { stored: record.device_id, derived: identity.deviceId } });
    }
    return identity;
  }

  /** A copy, so callers cannot mutate the identity. */
  get signingPublicKey(): Uint8Array {
    return Uint8Array.from(this.#signingPublicKey);
  }

  sign(message: Uint8Array): Uint8Array {
    if (!(message instanceof Uint8Array)) throw new PalyraError('invalid_argument', 'message must be bytes');
    return ed25519Sign(message, this.#seed);
  }

  /** The seed itself, for the keychain; the only way it leaves this object besides `serialize`. */
  exportSeed(): Uint8Array {
    return Uint8Array.from(this.#seed);
  }

  toStored(): StoredDeviceIdentity {
    return { device_id: this.deviceId, signing_key_b64: toBase64(this.#seed, false) };
  }

  /** The reference JSON text `{"device_id","signing_key_b64"}`. */
  serialize(): string {
    return JSON.stringify(this.toStored());
  }

  summary(): DeviceIdentitySummary {
    return { deviceId: this.deviceId, fingerprint: this.fingerprint, signingPublicKeyHex: toHex(this.#signingPublicKey) };
  }

  /** Never the seed: JSON.stringify of an identity is safe to log. */
  toJSON(): DeviceIdentitySummary {
    return this.summary();
  }

  [INSPECT](_depth: number, options: unknown, inspect: Inspect): string {
    return `DeviceIdentity ${inspect(this.summary(), options)}`;
  }
}

function parseStored(stored: string | Uint8Array | StoredDeviceIdentity): StoredDeviceIdentity {
  let value: unknown = stored;
  if (typeof stored === 'string' || stored instanceof Uint8Array) {
    try {
      value = JSON.parse(typeof stored === 'string' ? stored : fromUtf8(stored));
    } catch (cause) {
      throw new PalyraError('invalid_key_material', 'stored device identity is not valid JSON', { cause });
    }
  }
  if (typeof value !== 'object' || value === null) {
    throw new PalyraError('invalid_key_material', 'stored device identity must be a JSON object');
  }
  const { device_id: deviceId, signing_key_b64: signingKey } = value as Record<string, unknown>;
  if (typeof deviceId !== 'string' || typeof signingKey !== 'string') {
    throw new PalyraError('invalid_key_material', 'stored device identity needs string device_id and signing_key_b64');
  }
  return { device_id: deviceId, signing_key_b64: signingKey };
}

/** The fresh X25519 key of one pairing; inspect and JSON show only the public half. */
export interface PairingKeyExchange {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** A new X25519 key pair for one pairing (never reused: the commitment binds it to one session). */
export function generatePairingKeyExchange(): PairingKeyExchange {
  return pairingKeyExchangeFromPrivate(randomBytes(X25519_KEY_LENGTH));
}

/** Rebuilds a key pair from its private half (test vectors, or a device resuming a session). */
export function pairingKeyExchangeFromPrivate(privateKey: Uint8Array): PairingKeyExchange {
  const secret = Uint8Array.from(requireBytes(privateKey, X25519_KEY_LENGTH, 'invalid_key_material', 'X25519 private key'));
  const publicKey = x25519PublicKey(secret);
  const redacted = (): { publicKeyHex: string; privateKey: string } => ({ publicKeyHex: toHex(publicKey), privateKey: '<redacted>' });
  return Object.defineProperties(
    { privateKey: secret, publicKey },
    {
      toJSON: { value: redacted, enumerable: false },
      [INSPECT]: {
        value: (_depth: number, options: unknown, inspect: Inspect) => `PairingKeyExchange ${inspect(redacted(), options)}`,
        enumerable: false,
      },
    },
  );
}

/** device_x25519_commitment = SHA-256("palyra-commit-v1" ‖ device_x25519_public), sent in BeginPairingSession. */
export function x25519Commitment(publicKey: Uint8Array): Uint8Array {
  requireBytes(publicKey, X25519_KEY_LENGTH, 'invalid_public_key', 'X25519 public key');
  return sha256(concatBytes(utf8(X25519_COMMITMENT_DOMAIN), publicKey));
}
