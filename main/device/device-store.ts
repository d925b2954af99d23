/**
 * What a device keeps locally (PROTOCOL.md §2, §6; CLI.md "Device side"): its Ed25519 identity, its own P-256 TLS
 * key (current and staged), and its non-secret pairing state. Each device dir is one identity.
 *
 * Layout of a device dir:
 *   device.v1.json        DevicePairingState (non-secret) plus `generation` and `mac` (device-state-seal.ts), 0600,
 *                         replaced atomically; the dir itself is 0700
 *   .identity-state.lock  held while secrets or state change, so processes on one dir never make two identities
 *   --keychain os         one OS keychain entry: service `palyra-desktop`, account `device:<realpath of the dir>`,
 *                         value JSON {device_id, signing_key_b64, tls_private_key_pem, pending_tls_private_key_pem,
 *                         state_mac_key_b64, state_generation, state_migration_sha256}; a single entry so that
 *                         committing a staged key is one atomic replace
 *   --keychain file       secrets/: an encrypted FilesystemSecretStore with its key in secrets/.store-key.v1 (never
 *                         the keychain), keys device/identity.json (DeviceIdentity.serialize form),
 *                         device/tls-key.pem, device/tls-key.pending.pem and device/state-seal.json
 *                         ({key_b64, generation, migration_sha256})
 *
 * The state secret keys the MAC of device.v1.json and its latest generation is kept beside it, so an edited,
 * swapped, restored or deleted device.v1.json is `device_state_corrupt`, never acted on. In file mode the secret is
 * only as safe as secrets/.store-key.v1: whoever can read the device dir can forge the seal, and restoring the
 * whole dir (secrets/ included) rolls it back unnoticed.
 *
 * Nothing here logs except through the `log` option (one line when an unsealed file is sealed), and no error
 * message or cause carries key material.
 */

import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { constantTimeEqual, fromBase64, fromUtf8, toBase64, utf8 } from '../core/bytes.js';
import { certificateFingerprint } from '../core/certificates.js';
import type { ClientKind } from '../core/client-kind.js';
import { CLIENT_KINDS } from '../core/client-kind.js';
import { DeviceIdentity } from '../core/device-identity.js';
import { isPalyraError, PalyraError } from '../core/errors.js';
import { isCanonicalId } from '../core/ids.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../core/x509-keys.js';
import { ensurePrivateDir, errnoOf, fsyncDir, messageOf, removeQuietly, TEMP_INFIX, writeFileAtomic } from '../store/atomic-file.js';
import { FilesystemSecretStore } from '../store/fs-secret-store.js';
import type { Keychain } from '../store/keychain.js';
import { KEYCHAIN_SERVICE, openOsKeychain } from '../store/keychain.js';
import { withStateLock } from '../store/state-lock.js';
import { parseStateDocument } from '../store/state-schema.js';
import { deriveStateMacKey, hasSeal, openSealedDocument, sealDocument, STATE_SECRET_BYTES, withoutSeal } from './device-state-seal.js';

/** Where the device's secrets go (`--keychain os|file`). */
export type KeychainMode = 'os' | 'file';
/** What `device status` reports as `keychain`. */
export type KeychainState = 'os' | 'file' | 'locked';

export const DEVICE_STATE_FILE = 'device.v1.json';
/** Folder of the encrypted store used by `--keychain file`. */
export const DEVICE_SECRETS_DIR = 'secrets';
export const DEVICE_IDENTITY_SECRET = 'device/identity.json';
export const DEVICE_TLS_KEY_SECRET = 'device/tls-key.pem';
export const DEVICE_PENDING_TLS_KEY_SECRET = 'device/tls-key.pending.pem';
/** File mode: the state secret and the latest generation of device.v1.json. */
export const DEVICE_STATE_SEAL_SECRET = 'device/state-seal.json';
/** Prefix of the keychain account that holds one device dir's secrets. */
export const DEVICE_KEYCHAIN_ACCOUNT_PREFIX = 'device:';

export interface DeviceGateway {
  /** `host:port`, in the order to try. */
  addresses: string[];
  name: string | null;
  ca_certificate_pem: string;
  /** Lowercase hex SHA-256 of the CA certificate DER. */
  ca_fingerprint: string;
  /** base64url SHA-256 of the CA's SubjectPublicKeyInfo (the QR `ca` pin). */
  ca_pin: string;
  /** 'qr': the CA matched a pin from a QR code; 'tofu': first seen during PIN pairing. */
  pinned_by: 'qr' | 'pin' | 'tofu';
}

/** Non-secret, JSON in `<deviceDir>/device.v1.json`. */
export interface DevicePairingState {
  device_id: string;
  identity_fingerprint: string;
  paired: boolean;
  revoked: boolean;
  revoked_reason: string | null;
  gateway: DeviceGateway | null;
  certificate_pem: string | null;
  certificate_fingerprint: string | null;
  cert_expires_at_unix_ms: number | null;
  cert_issued_at_unix_ms: number | null;
  client_kind: ClientKind;
  paired_at_unix_ms: number | null;
  updated_at_unix_ms: number;
}

export interface DeviceStoreOptions {
  deviceDir: string;
  keychain: KeychainMode;
  /** The OS keychain for mode 'os'; omitted = openOsKeychain(), null = none (mode 'os' then fails). */
  osKeychain?: Keychain | null;
  /** Where the one-line notice goes when an unsealed device.v1.json (from an older version) is sealed. */
  log?: (line: Record<string, unknown>) => void;
}

export function isKeychainMode(value: unknown): value is KeychainMode {
  return value === 'os' || value === 'file';
}

/** The keychain account holding the secrets of the device dir `deviceDir` (its canonical absolute path). */
export async function deviceKeychainAccount(deviceDir: string): Promise<string> {
  let absolute = path.resolve(deviceDir);
  try {
    absolute = await realpath(absolute);
  } catch {
    // Not created yet: the resolved path is what it will be called.
  }
  return `${DEVICE_KEYCHAIN_ACCOUNT_PREFIX}${absolute}`;
}

// --- pairing state validation --------------------------------------------------------------------------------------

const HEX_SHA256 = /^[0-9a-f]{64}$/;
const BASE64URL_SHA256 = /^[A-Za-z0-9_-]{43}$/;

type Fields = Record<string, unknown>;

function corrupt(where: string, problem: string, cause?: unknown): PalyraError {
  return new PalyraError('state_corrupt', `device state ${where} is invalid: ${problem}`, {
    details: { where },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A fingerprint that does not belong to its PEM means a bug or an edit; either way the state cannot be trusted. */
function requireFingerprintOf(pem: string, fingerprint: string, key: string, where: string): void {
  let actual: string;
  try {
    actual = certificateFingerprint(pem);
  } catch (error) {
    throw corrupt(where, `the certificate for ${key} does not parse`, error);
  }
  if (actual !== fingerprint) throw corrupt(where, `${key} is not the fingerprint of its certificate`);
}

const unixMs = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const hexSha256 = z.string().regex(HEX_SHA256, 'expected lowercase hex SHA-256');

const gatewaySchema = z.looseObject({
  addresses: z.array(z.string().min(1)).min(1, 'expected a non-empty list of host:port strings'),
  name: z.string().nullable(),
  ca_certificate_pem: z.string(),
  ca_fingerprint: hexSha256,
  ca_pin: z.string().regex(BASE64URL_SHA256, 'expected a base64url SHA-256 pin'),
  pinned_by: z.enum(['qr', 'pin', 'tofu']),
});

const pairingStateSchema = z.looseObject({
  device_id: z.string().refine(isCanonicalId, 'expected a canonical id'),
  identity_fingerprint: hexSha256,
  paired: z.boolean(),
  revoked: z.boolean(),
  revoked_reason: z.string().nullable(),
  gateway: gatewaySchema.nullable(),
  certificate_pem: z.string().nullable(),
  certificate_fingerprint: hexSha256.nullable(),
  cert_expires_at_unix_ms: unixMs.nullable(),
  cert_issued_at_unix_ms: unixMs.nullable(),
  client_kind: z.enum(CLIENT_KINDS),
  paired_at_unix_ms: unixMs.nullable(),
  updated_at_unix_ms: unixMs,
});

/**
 * Checks a pairing state's shape (a zod schema: `state_corrupt` naming `where` and the field) and internal
 * consistency (each fingerprint belongs to its certificate), and returns a copy with only the known fields.
 */
export function parseDevicePairingState(value: unknown, where: string): DevicePairingState {
  const o = parseStateDocument(pairingStateSchema, value, where);
  const gateway: DeviceGateway | null =
    o.gateway === null
      ? null
      : {
          addresses: [...o.gateway.addresses],
          name: o.gateway.name,
          ca_certificate_pem: o.gateway.ca_certificate_pem,
          ca_fingerprint: o.gateway.ca_fingerprint,
          ca_pin: o.gateway.ca_pin,
          pinned_by: o.gateway.pinned_by,
        };
  if (gateway !== null) requireFingerprintOf(gateway.ca_certificate_pem, gateway.ca_fingerprint, 'gateway.ca_fingerprint', where);
  const state: DevicePairingState = {
    device_id: o.device_id,
    identity_fingerprint: o.identity_fingerprint,
    paired: o.paired,
    revoked: o.revoked,
    revoked_reason: o.revoked_reason,
    gateway,
    certificate_pem: o.certificate_pem,
    certificate_fingerprint: o.certificate_fingerprint,
    cert_expires_at_unix_ms: o.cert_expires_at_unix_ms,
    cert_issued_at_unix_ms: o.cert_issued_at_unix_ms,
    client_kind: o.client_kind,
    paired_at_unix_ms: o.paired_at_unix_ms,
    updated_at_unix_ms: o.updated_at_unix_ms,
  };
  if ((state.certificate_pem === null) !== (state.certificate_fingerprint === null)) {
    throw corrupt(where, 'certificate_pem and certificate_fingerprint must be both set or both null');
  }
  if (state.certificate_pem !== null) {
    requireFingerprintOf(state.certificate_pem, state.certificate_fingerprint!, 'certificate_fingerprint', where);
  }
  return state;
}

// --- secrets backends ----------------------------------------------------------------------------------------------

/** What keys and anchors device.v1.json, kept with the device's other secrets. */
interface StateSeal {
  /** STATE_SECRET_BYTES random bytes; the MAC key is derived from them. */
  readonly secret: Uint8Array;
  /** Generation of the latest device.v1.json written (0: none yet); a file behind it is an older copy. */
  readonly generation: number;
  /** Hex SHA-256 of the unsealed file a migration is sealing, so a crash half-way can resume; null otherwise. */
  readonly migrating: string | null;
}

interface DeviceSecrets {
  readonly identity: DeviceIdentity;
  readonly tlsKeyPem: string | null;
  readonly pendingTlsKeyPem: string | null;
  /** null only for secrets written before device states were sealed. */
  readonly seal: StateSeal | null;
}

function newSeal(generation: number, migrating: string | null): StateSeal {
  return { secret: new Uint8Array(randomBytes(STATE_SECRET_BYTES)), generation, migrating };
}

function sameSeal(a: StateSeal | null, b: StateSeal | null): boolean {
  if (a === null || b === null) return a === b;
  return constantTimeEqual(a.secret, b.secret) && a.generation === b.generation && a.migrating === b.migrating;
}

/** The seal from its stored fields; absent key = not sealed yet. No cause is kept: it could quote the secret. */
function sealFromFields(key: unknown, generation: unknown, migrating: unknown, where: string): StateSeal | null {
  if (key === undefined || key === null) return null;
  const bad = (problem: string): PalyraError =>
    new PalyraError('state_corrupt', `the device state key in ${where} is invalid: ${problem}`, { details: { where } });
  if (typeof key !== 'string') throw bad('the key is not a string');
  let secret: Uint8Array;
  try {
    secret = fromBase64(key);
  } catch {
    throw bad('the key is not base64');
  }
  if (secret.length !== STATE_SECRET_BYTES) throw bad(`the key is not ${STATE_SECRET_BYTES} bytes`);
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) throw bad('the generation is not a counter');
  const migratingValue = migrating ?? null;
  if (migratingValue !== null && (typeof migratingValue !== 'string' || !HEX_SHA256.test(migratingValue))) {
    throw bad('the migration digest is not hex SHA-256');
  }
  return { secret, generation, migrating: migratingValue };
}

/** One device dir's secrets, wherever they live. Mutations run under the device dir's state lock. */
interface SecretsBackend {
  /** Human name of the place, for errors (never a value). */
  readonly where: string;
  /** null when no identity is stored (TLS keys without an identity are leftovers and ignored). */
  read(): Promise<DeviceSecrets | null>;
  write(next: DeviceSecrets, previous: DeviceSecrets | null): Promise<void>;
  erase(): Promise<void>;
}

/** JSON of stored secrets; no cause is kept, since parser messages quote the text they choke on. */
function parseSecretJson(text: string, where: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PalyraError('state_corrupt', `device secrets in ${where} are not valid JSON`, { details: { where } });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new PalyraError('state_corrupt', `device secrets in ${where} are not a JSON object`, { details: { where } });
  }
  return value as Fields;
}

function identityFromFields(o: Fields, where: string): DeviceIdentity {
  const { device_id: deviceId, signing_key_b64: signingKey } = o;
  if (typeof deviceId !== 'string' || typeof signingKey !== 'string') {
    throw new PalyraError('state_corrupt', `device identity in ${where} lacks device_id or signing_key_b64`, { details: { where } });
  }
  try {
    return DeviceIdentity.deserialize({ device_id: deviceId, signing_key_b64: signingKey });
  } catch (error) {
    throw new PalyraError('state_corrupt', `device identity in ${where} is invalid: ${messageOf(error)}`, {
      cause: error,
      details: { where },
    });
  }
}

function optionalPem(o: Fields, key: string, where: string): string | null {
  const value = o[key] ?? null;
  if (value !== null && typeof value !== 'string') {
    throw new PalyraError('state_corrupt', `${key} in ${where} must be a string or null`, { details: { where } });
  }
  return value;
}

function keychainUnavailable(deviceDir: string, cause?: unknown): PalyraError {
  return new PalyraError(
    'keychain_unavailable',
    `no usable OS keychain for the device secrets of ${deviceDir}; pass --keychain file to keep them in an encrypted ` +
      'store in the device dir instead',
    { details: { deviceDir }, ...(cause === undefined ? {} : { cause }) },
  );
}

class KeychainBackend implements SecretsBackend {
  readonly where: string;
  readonly #keychain: Keychain | null;
  readonly #account: string;
  readonly #deviceDir: string;

  constructor(keychain: Keychain | null, account: string, deviceDir: string) {
    this.#keychain = keychain;
    this.#account = account;
    this.#deviceDir = deviceDir;
    this.where = `the OS keychain (service ${KEYCHAIN_SERVICE}, account ${account})`;
  }

  async state(): Promise<KeychainState> {
    const status = await this.#call((keychain) => keychain.status());
    if (status === 'unavailable') throw keychainUnavailable(this.#deviceDir);
    return status === 'locked' ? 'locked' : 'os';
  }

  async read(): Promise<DeviceSecrets | null> {
    const value = await this.#call((keychain) => keychain.get(KEYCHAIN_SERVICE, this.#account));
    if (value === null) return null;
    const o = parseSecretJson(value, this.where);
    return {
      identity: identityFromFields(o, this.where),
      tlsKeyPem: optionalPem(o, 'tls_private_key_pem', this.where),
      pendingTlsKeyPem: optionalPem(o, 'pending_tls_private_key_pem', this.where),
      seal: sealFromFields(o.state_mac_key_b64, o.state_generation, o.state_migration_sha256, this.where),
    };
  }

  async write(next: DeviceSecrets): Promise<void> {
    const record = {
      ...next.identity.toStored(),
      tls_private_key_pem: next.tlsKeyPem,
      pending_tls_private_key_pem: next.pendingTlsKeyPem,
      ...(next.seal === null
        ? {}
        : {
            state_mac_key_b64: toBase64(next.seal.secret, false),
            state_generation: next.seal.generation,
            state_migration_sha256: next.seal.migrating,
          }),
    };
    await this.#call((keychain) => keychain.set(KEYCHAIN_SERVICE, this.#account, JSON.stringify(record)));
  }

  async erase(): Promise<void> {
    const deleted = await this.#call((keychain) => keychain.delete(KEYCHAIN_SERVICE, this.#account));
    // keytar answers false, not an error, for a locked collection: only a successful (probing) read proves it gone.
    if (!deleted && (await this.read()) !== null) {
      throw new PalyraError('keychain_unavailable', `the OS keychain did not delete ${this.where}`, { details: { where: this.where } });
    }
  }

  async #call<T>(action: (keychain: Keychain) => Promise<T>): Promise<T> {
    if (this.#keychain === null) throw keychainUnavailable(this.#deviceDir);
    try {
      return await action(this.#keychain);
    } catch (error) {
      // The keychain's own message does not say what to do about it; ours does.
      if (isPalyraError(error, 'keychain_unavailable')) throw keychainUnavailable(this.#deviceDir, error);
      throw error;
    }
  }
}

class FileBackend implements SecretsBackend {
  readonly where: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
    this.where = `the encrypted store ${root}`;
  }

  /** Opened per operation: another process may have wiped and re-keyed the store since the last call. */
  async #open(create: boolean): Promise<FilesystemSecretStore | null> {
    if (!create && !(await pathExists(this.#root))) return null;
    return FilesystemSecretStore.open(this.#root, { keychain: null });
  }

  async read(): Promise<DeviceSecrets | null> {
    const store = await this.#open(false);
    if (store === null) return null;
    const identityText = await readOptionalSecret(store, DEVICE_IDENTITY_SECRET);
    if (identityText === null) return null;
    const identity = identityFromFields(parseSecretJson(identityText, this.where), this.where);
    const tlsKeyPem = await readOptionalSecret(store, DEVICE_TLS_KEY_SECRET);
    const pendingTlsKeyPem = await readOptionalSecret(store, DEVICE_PENDING_TLS_KEY_SECRET);
    const sealText = await readOptionalSecret(store, DEVICE_STATE_SEAL_SECRET);
    const sealFields = sealText === null ? null : parseSecretJson(sealText, this.where);
    const seal = sealFields === null ? null : sealFromFields(sealFields.key_b64, sealFields.generation, sealFields.migration_sha256, this.where);
    // A commit interrupted between its two file operations leaves pending equal to current: it was committed.
    return { identity, tlsKeyPem, pendingTlsKeyPem: pendingTlsKeyPem === tlsKeyPem ? null : pendingTlsKeyPem, seal };
  }

  async write(next: DeviceSecrets, previous: DeviceSecrets | null): Promise<void> {
    const store = (await this.#open(true))!;
    if (previous?.identity.deviceId !== next.identity.deviceId) {
      await store.writeSecret(DEVICE_IDENTITY_SECRET, utf8(next.identity.serialize()));
    }
    // Current before pending, so a crash in between leaves the new key in place (see read()).
    for (const [key, value, before] of [
      [DEVICE_TLS_KEY_SECRET, next.tlsKeyPem, previous?.tlsKeyPem ?? null],
      [DEVICE_PENDING_TLS_KEY_SECRET, next.pendingTlsKeyPem, previous?.pendingTlsKeyPem ?? null],
    ] as const) {
      if (value === before) continue;
      if (value === null) await store.deleteSecret(key);
      else await store.writeSecret(key, utf8(value));
    }
    if (!sameSeal(next.seal, previous?.seal ?? null)) {
      if (next.seal === null) await store.deleteSecret(DEVICE_STATE_SEAL_SECRET);
      else {
        const record = { key_b64: toBase64(next.seal.secret, false), generation: next.seal.generation, migration_sha256: next.seal.migrating };
        await store.writeSecret(DEVICE_STATE_SEAL_SECRET, utf8(JSON.stringify(record)));
      }
    }
  }

  async erase(): Promise<void> {
    await removeTree(this.#root);
  }
}

async function readOptionalSecret(store: FilesystemSecretStore, key: string): Promise<string | null> {
  let bytes: Uint8Array;
  try {
    bytes = await store.readSecret(key);
  } catch (error) {
    if (isPalyraError(error, 'secret_not_found')) return null;
    throw error;
  }
  try {
    return fromUtf8(bytes);
  } catch {
    throw new PalyraError('state_corrupt', `secret ${key} in ${store.root} is not UTF-8 text`, { details: { key, path: store.root } });
  }
}

async function pathExists(target: string): Promise<boolean> {
  try {
    await stat(target);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw new PalyraError('store_io_failed', `failed to stat ${target}: ${messageOf(error)}`, { cause: error, details: { path: target } });
  }
}

async function removeTree(target: string): Promise<void> {
  try {
    await rm(target, { recursive: true, force: true });
  } catch (error) {
    throw new PalyraError('store_io_failed', `failed to remove ${target}: ${messageOf(error)}`, { cause: error, details: { path: target } });
  }
  await fsyncDir(path.dirname(target));
}

// --- the store -----------------------------------------------------------------------------------------------------

/** device.v1.json as found on disk, before its seal is checked. */
interface StateFile {
  readonly bytes: Buffer;
  readonly value: Fields;
}

/** What a checked read found. `fromCache`: the keychain was locked and the key this instance saw was used. */
interface VerifiedState {
  readonly secrets: DeviceSecrets | null;
  readonly state: DevicePairingState | null;
  /** Generation of the file read (0 when there is none). */
  readonly generation: number;
  readonly fromCache: boolean;
}

/** The state key this instance last read, so the state stays readable and writable while the keychain locks. */
interface SealCache {
  readonly secret: Uint8Array;
  readonly key: Uint8Array;
  /** The highest generation seen in the secrets or written by this instance. */
  generation: number;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A word or a single-quoted one, for a command line the user can paste into a POSIX shell. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

export class DeviceStore {
  /** Absolute path of the device dir. */
  readonly deviceDir: string;
  readonly keychainMode: KeychainMode;
  /** `<deviceDir>/device.v1.json`. */
  readonly stateFile: string;
  readonly #secrets: SecretsBackend;
  readonly #keychainBackend: KeychainBackend | null;
  readonly #log: (line: Record<string, unknown>) => void;
  /** The identity this instance loaded, so writeState can refuse another device's state without a keychain read. */
  #knownIdentity: { deviceId: string; fingerprint: string } | null = null;
  #sealCache: SealCache | null = null;

  private constructor(deviceDir: string, mode: KeychainMode, keychainBackend: KeychainBackend | null, log: (line: Record<string, unknown>) => void) {
    this.deviceDir = deviceDir;
    this.keychainMode = mode;
    this.stateFile = path.join(deviceDir, DEVICE_STATE_FILE);
    this.#keychainBackend = keychainBackend;
    this.#secrets = keychainBackend ?? new FileBackend(path.join(deviceDir, DEVICE_SECRETS_DIR));
    this.#log = log;
  }

  /**
   * Creates the device dir (0700) if needed. Does not touch the keychain: with mode 'os' and no usable keychain,
   * the secret operations, the pairing state (its seal is keyed from the keychain) and keychainState throw
   * `keychain_unavailable`.
   */
  static async open(options: DeviceStoreOptions): Promise<DeviceStore> {
    if (!isKeychainMode(options.keychain)) {
      throw new PalyraError('invalid_argument', 'keychain must be os or file', { details: { keychain: String(options.keychain) } });
    }
    const deviceDir = path.resolve(options.deviceDir);
    await ensurePrivateDir(deviceDir);
    const log = options.log ?? (() => undefined);
    if (options.keychain === 'file') return new DeviceStore(deviceDir, 'file', null, log);
    const keychain = options.osKeychain === undefined ? await openOsKeychain() : options.osKeychain;
    return new DeviceStore(deviceDir, 'os', new KeychainBackend(keychain, await deviceKeychainAccount(deviceDir), deviceDir), log);
  }

  /** 'file' in file mode; in os mode 'os' or 'locked', and `keychain_unavailable` when there is no usable keychain. */
  async keychainState(): Promise<KeychainState> {
    return this.#keychainBackend === null ? 'file' : this.#keychainBackend.state();
  }

  /**
   * The stored identity, or null when none exists. Never null for a locked keychain (`keychain_locked`). Throws
   * `device_state_corrupt` when device.v1.json fails its seal, `device_id_mismatch` when it belongs to another
   * identity and `device_identity_missing` when it exists but the secrets hold no identity (e.g. set up with the
   * other --keychain mode).
   */
  loadIdentity(): Promise<DeviceIdentity | null> {
    return this.#loadIdentity(false);
  }

  /**
   * The stored identity, generating and storing one (with a new state secret) if there is none. First writer wins
   * across processes on this device dir; a locked keychain is `keychain_locked`, never a reason to generate.
   */
  async loadOrCreateIdentity(): Promise<DeviceIdentity> {
    const existing = await this.loadIdentity();
    if (existing !== null) return existing;
    return this.#locked(async () => {
      const raced = await this.#loadIdentity(true);
      if (raced !== null) return raced;
      await this.#secrets.write({ identity: DeviceIdentity.generate(), tlsKeyPem: null, pendingTlsKeyPem: null, seal: newSeal(0, null) }, null);
      // Read back what is stored: the identity in use is whatever the store holds.
      const stored = await this.#loadIdentity(true);
      if (stored === null) {
        throw new PalyraError('store_io_failed', `${this.#secrets.where} did not keep the new device identity`, {
          details: { where: this.#secrets.where },
        });
      }
      return stored;
    });
  }

  /** The device id the secrets hold, without looking at device.v1.json (for unpairing a device whose state is corrupt). */
  async storedDeviceId(): Promise<string | null> {
    return (await this.#secrets.read())?.identity.deviceId ?? null;
  }

  /** PKCS#8 PEM of the TLS key the current certificate was issued for; null when there is none. */
  async loadTlsPrivateKeyPem(): Promise<string | null> {
    return (await this.#secrets.read())?.tlsKeyPem ?? null;
  }

  /** PKCS#8 PEM of the staged TLS key (a CSR was or will be sent for it); null when none is staged. */
  async loadPendingTlsPrivateKeyPem(): Promise<string | null> {
    return (await this.#secrets.read())?.pendingTlsKeyPem ?? null;
  }

  /**
   * A fresh P-256 key, stored as the pending key before the caller builds a CSR from it, so a crash between CSR
   * and certificate does not lose it. Replaces any earlier pending key. Needs the identity (`device_identity_missing`).
   */
  async stageTlsKey(): Promise<{ privateKeyPem: string; keys: CryptoKeyPair }> {
    const keys = await generateP256KeyPair();
    const privateKeyPem = await exportPrivateKeyPem(keys.privateKey);
    await this.#locked(async () => {
      const current = await this.#requireSecrets('stage a TLS key');
      await this.#secrets.write({ ...current, pendingTlsKeyPem: privateKeyPem }, current);
    });
    return { privateKeyPem, keys };
  }

  /** Makes the pending key the current one; call after the certificate issued for it is stored. */
  async commitStagedTlsKey(): Promise<void> {
    await this.#locked(async () => {
      const current = await this.#requireSecrets('commit a TLS key');
      if (current.pendingTlsKeyPem === null) {
        throw new PalyraError('secret_not_found', 'no staged TLS key to commit', { details: { where: this.#secrets.where } });
      }
      await this.#secrets.write({ ...current, tlsKeyPem: current.pendingTlsKeyPem, pendingTlsKeyPem: null }, current);
    });
  }

  /**
   * The pairing state, or null before the first writeState. Checks the seal against the state secret and the
   * latest generation (`device_state_corrupt`, naming the file and how to recover); an unsealed file from before
   * sealing is sealed here once. While the keychain is locked, the key this instance read earlier checks it; without
   * one it is `keychain_locked`.
   */
  async readState(): Promise<DevicePairingState | null> {
    return (await this.#verified({ underLock: false, cachedIfLocked: true })).state;
  }

  /**
   * What device.v1.json says, WITHOUT checking its seal: only for showing something while the keychain is locked.
   * Never connect, pin or decide anything with it.
   */
  async peekState(): Promise<DevicePairingState | null> {
    const file = await this.#readStateFile();
    if (file === null) return null;
    return parseDevicePairingState(withoutSeal(file.value), this.stateFile);
  }

  /**
   * Validates, seals and atomically replaces device.v1.json (0600), then records its generation with the secrets.
   * Refuses (`device_id_mismatch`) a state for another identity than the one this instance loaded, and refuses to
   * replace a file that fails its seal (`device_state_corrupt`). While the keychain is locked it seals with the key
   * this instance read earlier and the keychain catches up at the next write.
   */
  async writeState(state: DevicePairingState): Promise<void> {
    const checked = this.#checkState(state);
    await this.#locked(async () => {
      await this.#writeSealed(await this.#verified({ underLock: true, cachedIfLocked: true }), checked);
    });
  }

  /** Read-modify-write of the state under the device dir's lock, for changes that race with other processes. */
  async updateState(
    mutate: (current: DevicePairingState | null) => DevicePairingState | Promise<DevicePairingState>,
  ): Promise<DevicePairingState> {
    return this.#locked(async () => {
      const current = await this.#verified({ underLock: true, cachedIfLocked: true });
      const next = this.#checkState(await mutate(current.state));
      await this.#writeSealed(current, next);
      return next;
    });
  }

  /** Deletes the identity, both TLS keys, the state secret (keychain entry and/or encrypted store) and the pairing state. */
  async wipe(): Promise<void> {
    await this.#locked(async () => {
      // Secrets first: a wipe stopped half-way then leaves state without identity, which loadIdentity reports.
      await this.#secrets.erase();
      // A file-mode store left in an os-mode dir is this dir's material too.
      await removeTree(path.join(this.deviceDir, DEVICE_SECRETS_DIR));
      await removeQuietly(this.stateFile);
      for (const name of await readdir(this.deviceDir)) {
        if (name.startsWith(`${DEVICE_STATE_FILE}${TEMP_INFIX}`)) await removeQuietly(path.join(this.deviceDir, name));
      }
      await fsyncDir(this.deviceDir);
    });
    this.#knownIdentity = null;
    this.#sealCache = null;
  }

  async #loadIdentity(underLock: boolean): Promise<DeviceIdentity | null> {
    const { secrets, state } = await this.#verified({ underLock, cachedIfLocked: false });
    if (secrets === null) return null;
    const { identity } = secrets;
    if (state !== null && (state.device_id !== identity.deviceId || state.identity_fingerprint !== identity.fingerprint)) {
      throw this.#mismatch(state.device_id, identity.deviceId);
    }
    this.#knownIdentity = { deviceId: identity.deviceId, fingerprint: identity.fingerprint };
    return identity;
  }

  /**
   * Reads the secrets, then device.v1.json (in that order, so a concurrent write — file first, generation second —
   * never looks like a rollback), and checks one against the other. Work that must hold the lock (sealing an
   * unsealed file, or a second look when another process may be half-way through that) re-runs under it.
   */
  async #verified(o: { underLock: boolean; cachedIfLocked: boolean }): Promise<VerifiedState> {
    let secrets: DeviceSecrets | null;
    try {
      secrets = await this.#secrets.read();
    } catch (error) {
      if (o.cachedIfLocked && this.#sealCache !== null && isPalyraError(error, 'keychain_locked')) return this.#verifiedWithCache(this.#sealCache);
      throw error;
    }
    const file = await this.#readStateFile();
    const again = (): Promise<VerifiedState> => this.#locked(() => this.#verified({ ...o, underLock: true }));
    if (secrets === null) {
      if (file === null) return { secrets, state: null, generation: 0, fromCache: false };
      const deviceId = file.value.device_id;
      throw this.#identityMissing(typeof deviceId === 'string' ? deviceId : '(unknown)');
    }
    const { seal } = secrets;
    if (seal !== null) this.#rememberSeal(seal);
    if (file === null) {
      if (seal !== null && seal.generation > 0) {
        throw this.#stateCorrupt(`is missing, although ${this.#secrets.where} records that generation ${seal.generation} was written (it was deleted)`);
      }
      return { secrets, state: null, generation: 0, fromCache: false };
    }
    if (seal === null) {
      // A migration in another process stores the key before the sealed file: look again once it is done.
      if (hasSeal(file.value)) {
        if (!o.underLock) return again();
        throw this.#stateCorrupt(`carries a MAC, but ${this.#secrets.where} holds no key for it`);
      }
      return o.underLock ? this.#migrate(secrets, file) : again();
    }
    if (!hasSeal(file.value)) {
      if (seal.migrating !== null && seal.migrating === sha256Hex(file.bytes)) return o.underLock ? this.#migrate(secrets, file) : again();
      throw this.#stateCorrupt(`has no MAC, although ${this.#secrets.where} holds the key that seals it (an unsealed file replaced the sealed one)`);
    }
    const { state, generation } = this.#openSealed(file, deriveStateMacKey(seal.secret), seal.generation);
    return { secrets, state, generation, fromCache: false };
  }

  /** The keychain is locked: check the file with the key this instance read before. */
  async #verifiedWithCache(cache: SealCache): Promise<VerifiedState> {
    const file = await this.#readStateFile();
    if (file === null) {
      if (cache.generation > 0) throw this.#stateCorrupt(`is missing, although generation ${cache.generation} was written (it was deleted)`);
      return { secrets: null, state: null, generation: 0, fromCache: true };
    }
    if (!hasSeal(file.value)) throw this.#stateCorrupt('has no MAC, although this device seals its state (an unsealed file replaced the sealed one)');
    const { state, generation } = this.#openSealed(file, cache.key, cache.generation);
    return { secrets: null, state, generation, fromCache: true };
  }

  #openSealed(file: StateFile, key: Uint8Array, minimumGeneration: number): { state: DevicePairingState; generation: number } {
    const opened = openSealedDocument(file.value, key);
    if (!opened.ok) throw this.#stateCorrupt(`${opened.problem}: it was changed by something that does not hold this device's secrets`);
    if (opened.generation < minimumGeneration) {
      throw this.#stateCorrupt(
        `is at generation ${opened.generation}, behind the ${minimumGeneration} recorded in ${this.#secrets.where} (an older copy was restored)`,
      );
    }
    // Sealed by this device: a schema failure now is a bug or a newer version, reported as state_corrupt.
    const state = parseDevicePairingState(opened.fields, this.stateFile);
    if (this.#sealCache !== null) this.#sealCache.generation = Math.max(this.#sealCache.generation, opened.generation);
    return { state, generation: opened.generation };
  }

  /**
   * Seals an unsealed device.v1.json (written before sealing existed, or a migration cut short), under the lock:
   * the key and the digest of the file go to the secrets first, then the sealed file, then the digest is cleared.
   * A crash at any point leaves either the old file and its digest (resumed here) or the sealed one.
   */
  async #migrate(secrets: DeviceSecrets, file: StateFile): Promise<VerifiedState> {
    const legacy = parseDevicePairingState(file.value, this.stateFile);
    const { identity } = secrets;
    if (legacy.device_id !== identity.deviceId || legacy.identity_fingerprint !== identity.fingerprint) {
      throw this.#mismatch(legacy.device_id, identity.deviceId);
    }
    let holder = secrets;
    if (holder.seal === null) {
      holder = { ...secrets, seal: newSeal(1, sha256Hex(file.bytes)) };
      await this.#secrets.write(holder, secrets);
    }
    const seal = holder.seal!;
    const generation = Math.max(seal.generation, 1);
    await this.#writeStateFile(legacy, generation, deriveStateMacKey(seal.secret));
    const done: DeviceSecrets = { ...holder, seal: { secret: seal.secret, generation, migrating: null } };
    await this.#secrets.write(done, holder);
    this.#rememberSeal(done.seal!);
    this.#log({ event: 'device.state_sealed', file: this.stateFile, generation, message: `sealed ${this.stateFile} (written by an older version) with a MAC keyed from ${this.#secrets.where}` });
    return { secrets: done, state: legacy, generation, fromCache: false };
  }

  /** Under the lock, after `current` was read and checked: seal and write `next`, then advance the generation. */
  async #writeSealed(current: VerifiedState, next: DevicePairingState): Promise<void> {
    if (current.fromCache) {
      const cache = this.#sealCache!;
      const generation = Math.max(current.generation, cache.generation) + 1;
      await this.#writeStateFile(next, generation, cache.key);
      // A file ahead of the generation in the keychain is accepted; the next unlocked write records it.
      cache.generation = generation;
      return;
    }
    const secrets = current.secrets;
    if (secrets === null) {
      throw new PalyraError('device_identity_missing', `no device identity in ${this.#secrets.where}; cannot write the pairing state before it exists`, {
        details: { where: this.#secrets.where },
      });
    }
    let holder = secrets;
    if (holder.seal === null) {
      // Secrets from before sealing, and no state yet: the key first, so a crash leaves "no state" rather than a
      // sealed file without its key.
      holder = { ...secrets, seal: newSeal(0, null) };
      await this.#secrets.write(holder, secrets);
    }
    const seal = holder.seal!;
    const generation = Math.max(current.generation, seal.generation) + 1;
    await this.#writeStateFile(next, generation, deriveStateMacKey(seal.secret));
    const advanced: DeviceSecrets = { ...holder, seal: { secret: seal.secret, generation, migrating: null } };
    await this.#secrets.write(advanced, holder);
    this.#rememberSeal(advanced.seal!);
  }

  #rememberSeal(seal: StateSeal): void {
    const cache = this.#sealCache;
    if (cache !== null && constantTimeEqual(cache.secret, seal.secret)) {
      cache.generation = Math.max(cache.generation, seal.generation);
      return;
    }
    this.#sealCache = { secret: seal.secret, key: deriveStateMacKey(seal.secret), generation: seal.generation };
  }

  async #readStateFile(): Promise<StateFile | null> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.stateFile);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return null;
      throw new PalyraError('store_io_failed', `failed to read ${this.stateFile}: ${messageOf(error)}`, {
        cause: error,
        details: { path: this.stateFile },
      });
    }
    let value: unknown;
    try {
      value = JSON.parse(fromUtf8(bytes));
    } catch {
      throw this.#stateCorrupt('is not valid JSON');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.#stateCorrupt('is not a JSON object');
    return { bytes, value: value as Fields };
  }

  #checkState(state: DevicePairingState): DevicePairingState {
    const checked = parseDevicePairingState(state, 'to write');
    const known = this.#knownIdentity;
    if (known !== null && (checked.device_id !== known.deviceId || checked.identity_fingerprint !== known.fingerprint)) {
      throw new PalyraError(
        'device_id_mismatch',
        `refusing to write state for device ${checked.device_id} into the device dir of device ${known.deviceId}`,
        { details: { stateDeviceId: checked.device_id, identityDeviceId: known.deviceId } },
      );
    }
    return checked;
  }

  async #writeStateFile(state: DevicePairingState, generation: number, key: Uint8Array): Promise<void> {
    const document = sealDocument({ ...state }, generation, key);
    await ensurePrivateDir(this.deviceDir);
    await writeFileAtomic(this.stateFile, utf8(`${JSON.stringify(document, null, 2)}\n`));
  }

  async #requireSecrets(purpose: string): Promise<DeviceSecrets> {
    const current = await this.#secrets.read();
    if (current === null) {
      throw new PalyraError('device_identity_missing', `no device identity in ${this.#secrets.where}; cannot ${purpose} before it exists`, {
        details: { where: this.#secrets.where },
      });
    }
    return current;
  }

  /** The command that recovers this device dir: unpair wipes it whatever device.v1.json says. */
  #unpairCommand(): string {
    return `palyra device unpair --device-dir ${shellWord(this.deviceDir)}${this.keychainMode === 'file' ? ' --keychain file' : ''}`;
  }

  #stateCorrupt(problem: string): PalyraError {
    return new PalyraError(
      'device_state_corrupt',
      `${this.stateFile} ${problem}; its pinned gateway CA and addresses cannot be trusted, so this device will not ` +
        `connect. Unpair and pair again (${this.#unpairCommand()}, then palyra device pair …)`,
      { details: { file: this.stateFile } },
    );
  }

  #mismatch(stateDeviceId: string, identityDeviceId: string): PalyraError {
    return new PalyraError(
      'device_id_mismatch',
      `${this.stateFile} belongs to device ${stateDeviceId}, but ${this.#secrets.where} holds device ${identityDeviceId}`,
      { details: { stateDeviceId, identityDeviceId, stateFile: this.stateFile } },
    );
  }

  #identityMissing(stateDeviceId: string): PalyraError {
    const other = this.keychainMode === 'os' ? 'file' : 'os';
    return new PalyraError(
      'device_identity_missing',
      `${this.stateFile} belongs to device ${stateDeviceId}, but ${this.#secrets.where} holds no device identity; if this ` +
        `device dir was set up with --keychain ${other}, use that, otherwise wipe the device dir to start over`,
      { details: { stateDeviceId, stateFile: this.stateFile, where: this.#secrets.where } },
    );
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return withStateLock(this.deviceDir, fn);
  }
}
