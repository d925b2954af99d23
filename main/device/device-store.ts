/**
 * What a device keeps locally (PROTOCOL.md §2, §6; CLI.md "Device side"): its Ed25519 identity, its own P-256 TLS
 * key (current and staged), and its non-secret pairing state. Each device dir is one identity.
 *
 * Layout of a device dir:
 *   device.v1.json        DevicePairingState (non-secret), 0600, replaced atomically; the dir itself is 0700
 *   .identity-state.lock  held while secrets or state change, so processes on one dir never make two identities
 *   --keychain os         one OS keychain entry: service `palyra-desktop`, account `device:<realpath of the dir>`,
 *                         value JSON {device_id, signing_key_b64, tls_private_key_pem, pending_tls_private_key_pem};
 *                         a single entry so that committing a staged key is one atomic replace
 *   --keychain file       secrets/: an encrypted FilesystemSecretStore with its key in secrets/.store-key.v1 (never
 *                         the keychain), keys device/identity.json (DeviceIdentity.serialize form),
 *                         device/tls-key.pem and device/tls-key.pending.pem
 *
 * Nothing here logs, and no error message or cause carries key material.
 */

import { readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { fromUtf8, utf8 } from '../core/bytes.js';
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
  pinned_by: 'qr' | 'tofu';
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
  pinned_by: z.enum(['qr', 'tofu']),
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

interface DeviceSecrets {
  readonly identity: DeviceIdentity;
  readonly tlsKeyPem: string | null;
  readonly pendingTlsKeyPem: string | null;
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
    };
  }

  async write(next: DeviceSecrets): Promise<void> {
    const record = {
      ...next.identity.toStored(),
      tls_private_key_pem: next.tlsKeyPem,
      pending_tls_private_key_pem: next.pendingTlsKeyPem,
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
    // A commit interrupted between its two file operations leaves pending equal to current: it was committed.
    return { identity, tlsKeyPem, pendingTlsKeyPem: pendingTlsKeyPem === tlsKeyPem ? null : pendingTlsKeyPem };
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

export class DeviceStore {
  /** Absolute path of the device dir. */
  readonly deviceDir: string;
  readonly keychainMode: KeychainMode;
  /** `<deviceDir>/device.v1.json`. */
  readonly stateFile: string;
  readonly #secrets: SecretsBackend;
  readonly #keychainBackend: KeychainBackend | null;
  /** The identity this instance loaded, so writeState can refuse another device's state without a keychain read. */
  #knownIdentity: { deviceId: string; fingerprint: string } | null = null;

  private constructor(deviceDir: string, mode: KeychainMode, keychainBackend: KeychainBackend | null) {
    this.deviceDir = deviceDir;
    this.keychainMode = mode;
    this.stateFile = path.join(deviceDir, DEVICE_STATE_FILE);
    this.#keychainBackend = keychainBackend;
    this.#secrets = keychainBackend ?? new FileBackend(path.join(deviceDir, DEVICE_SECRETS_DIR));
  }

  /**
   * Creates the device dir (0700) if needed. Does not touch the keychain: with mode 'os' and no usable keychain,
   * the secret operations (and keychainState) throw `keychain_unavailable`, while the non-secret state stays readable.
   */
  static async open(options: DeviceStoreOptions): Promise<DeviceStore> {
    if (!isKeychainMode(options.keychain)) {
      throw new PalyraError('invalid_argument', 'keychain must be os or file', { details: { keychain: String(options.keychain) } });
    }
    const deviceDir = path.resolve(options.deviceDir);
    await ensurePrivateDir(deviceDir);
    if (options.keychain === 'file') return new DeviceStore(deviceDir, 'file', null);
    const keychain = options.osKeychain === undefined ? await openOsKeychain() : options.osKeychain;
    return new DeviceStore(deviceDir, 'os', new KeychainBackend(keychain, await deviceKeychainAccount(deviceDir), deviceDir));
  }

  /** 'file' in file mode; in os mode 'os' or 'locked', and `keychain_unavailable` when there is no usable keychain. */
  async keychainState(): Promise<KeychainState> {
    return this.#keychainBackend === null ? 'file' : this.#keychainBackend.state();
  }

  /**
   * The stored identity, or null when none exists. Never null for a locked keychain (`keychain_locked`). Throws
   * `device_id_mismatch` when device.v1.json belongs to another identity and `device_identity_missing` when
   * device.v1.json exists but the secrets hold no identity (e.g. set up with the other --keychain mode); a corrupt
   * device.v1.json is `state_corrupt`, since the check needs it.
   */
  async loadIdentity(): Promise<DeviceIdentity | null> {
    const secrets = await this.#secrets.read();
    const state = await this.readState();
    if (secrets === null) {
      if (state !== null) throw this.#identityMissing(state.device_id);
      return null;
    }
    const { identity } = secrets;
    if (state !== null && (state.device_id !== identity.deviceId || state.identity_fingerprint !== identity.fingerprint)) {
      throw new PalyraError(
        'device_id_mismatch',
        `${this.stateFile} belongs to device ${state.device_id}, but ${this.#secrets.where} holds device ${identity.deviceId}`,
        { details: { stateDeviceId: state.device_id, identityDeviceId: identity.deviceId, stateFile: this.stateFile } },
      );
    }
    this.#knownIdentity = { deviceId: identity.deviceId, fingerprint: identity.fingerprint };
    return identity;
  }

  /**
   * The stored identity, generating and storing one if there is none. First writer wins across processes on this
   * device dir; a locked keychain is `keychain_locked`, never a reason to generate.
   */
  async loadOrCreateIdentity(): Promise<DeviceIdentity> {
    const existing = await this.loadIdentity();
    if (existing !== null) return existing;
    return this.#locked(async () => {
      const raced = await this.loadIdentity();
      if (raced !== null) return raced;
      await this.#secrets.write({ identity: DeviceIdentity.generate(), tlsKeyPem: null, pendingTlsKeyPem: null }, null);
      // Read back what is stored: the identity in use is whatever the store holds.
      const stored = await this.loadIdentity();
      if (stored === null) {
        throw new PalyraError('store_io_failed', `${this.#secrets.where} did not keep the new device identity`, {
          details: { where: this.#secrets.where },
        });
      }
      return stored;
    });
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

  /** The pairing state, or null before the first writeState; `state_corrupt` (naming the file) if unreadable. */
  async readState(): Promise<DevicePairingState | null> {
    let text: string;
    try {
      text = await readFile(this.stateFile, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return null;
      throw new PalyraError('store_io_failed', `failed to read ${this.stateFile}: ${messageOf(error)}`, {
        cause: error,
        details: { path: this.stateFile },
      });
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw corrupt(this.stateFile, 'not valid JSON', error);
    }
    return parseDevicePairingState(value, this.stateFile);
  }

  /**
   * Validates and atomically replaces device.v1.json (0600). Refuses (`device_id_mismatch`) a state for another
   * identity than the one this instance loaded; does not read the keychain, so it works while it is locked.
   */
  async writeState(state: DevicePairingState): Promise<void> {
    const checked = this.#checkState(state);
    await this.#locked(() => this.#writeStateFile(checked));
  }

  /** Read-modify-write of the state under the device dir's lock, for changes that race with other processes. */
  async updateState(
    mutate: (current: DevicePairingState | null) => DevicePairingState | Promise<DevicePairingState>,
  ): Promise<DevicePairingState> {
    return this.#locked(async () => {
      const next = this.#checkState(await mutate(await this.readState()));
      await this.#writeStateFile(next);
      return next;
    });
  }

  /** Deletes the identity, both TLS keys (keychain entry and/or encrypted store) and the pairing state. */
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

  async #writeStateFile(state: DevicePairingState): Promise<void> {
    await ensurePrivateDir(this.deviceDir);
    await writeFileAtomic(this.stateFile, utf8(`${JSON.stringify(state, null, 2)}\n`));
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
