/**
 * The OS keychain (keytar: Secret Service on Linux, Keychain on macOS, Credential Vault on Windows) behind a small
 * interface, plus an in-memory one for tests. A locked keychain is an error, never "no such entry" (PROTOCOL.md §6).
 */

import { randomBytes } from 'node:crypto';
import { PalyraError } from '../core/errors.js';

export type KeychainStatus = 'available' | 'locked' | 'unavailable';

export interface Keychain {
  readonly kind: 'os' | 'memory';
  status(): Promise<KeychainStatus>;
  /** The stored value, or null when there is none; throws `keychain_locked` / `keychain_unavailable` instead of guessing. */
  get(service: string, account: string): Promise<string | null>;
  set(service: string, account: string, value: string): Promise<void>;
  /** True when an entry was deleted. */
  delete(service: string, account: string): Promise<boolean>;
}

/** The keychain service name under which every Palyra entry is stored. */
export const KEYCHAIN_SERVICE = 'palyra-desktop';

/** Account prefix of the status probe; a per-call suffix keeps concurrent probes from reading each other's value. */
const PROBE_ACCOUNT_PREFIX = 'keychain-probe:';

/**
 * The part of keytar's API we use, declared here rather than taken from keytar's own type declarations: keytar is an
 * optional dependency whose native build fails where libsecret is missing, and npm then removes it — the build must
 * not need it (a fresh clone's `npm ci` builds before anything installs libsecret).
 */
interface Keytar {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
}

/** A variable specifier, so the compiler does not look for the optional module's declarations. */
const KEYTAR_MODULE: string = 'keytar';

function lockedError(cause?: unknown): PalyraError {
  return new PalyraError('keychain_locked', undefined, cause === undefined ? {} : { cause });
}

function unavailableError(cause: unknown): PalyraError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new PalyraError('keychain_unavailable', `no usable OS keychain: ${reason}`, { cause });
}

/**
 * How a locked keychain shows through keytar, measured against gnome-keyring 42.1 / libsecret 0.20.5 (with the login
 * collection locked via org.freedesktop.Secret.Service.Lock, and with a daemon started without --unlock):
 *   getPassword → resolves null (after the unlock prompt fails or is dismissed), exactly like a missing entry;
 *   setPassword → rejects "Cannot create an item in a locked collection";
 *   deletePassword → resolves false; findCredentials → crashes the process (never call it).
 * Without a D-Bus session every call rejects (e.g. "Cannot autolaunch D-Bus without X11 $DISPLAY").
 * So a null from getPassword is only trusted after a probe write + read-back succeeds; a write refused with a
 * "locked" message, or one that does not read back, means locked; any other failure means unavailable.
 */
const LOCKED_MESSAGE = /\blocked\b/i;

class OsKeychain implements Keychain {
  readonly kind = 'os';
  readonly #keytar: Keytar;

  constructor(keytar: Keytar) {
    this.#keytar = keytar;
  }

  async status(): Promise<KeychainStatus> {
    const account = `${PROBE_ACCOUNT_PREFIX}${randomBytes(12).toString('hex')}`;
    const value = randomBytes(12).toString('hex');
    try {
      await this.#keytar.setPassword(KEYCHAIN_SERVICE, account, value);
    } catch (error) {
      return error instanceof Error && LOCKED_MESSAGE.test(error.message) ? 'locked' : 'unavailable';
    }
    try {
      const readBack = await this.#keytar.getPassword(KEYCHAIN_SERVICE, account);
      return readBack === value ? 'available' : 'locked';
    } catch {
      return 'unavailable';
    } finally {
      await this.#keytar.deletePassword(KEYCHAIN_SERVICE, account).catch(() => false);
    }
  }

  async get(service: string, account: string): Promise<string | null> {
    let value: string | null;
    try {
      value = await this.#keytar.getPassword(service, account);
    } catch (error) {
      throw this.#classify(error);
    }
    if (value !== null) return value;
    // A locked collection also answers null; only a working probe makes the null mean "no entry".
    const status = await this.status();
    if (status === 'locked') throw lockedError();
    if (status === 'unavailable') throw unavailableError('the keychain did not accept a probe entry');
    return null;
  }

  async set(service: string, account: string, value: string): Promise<void> {
    try {
      await this.#keytar.setPassword(service, account, value);
    } catch (error) {
      throw this.#classify(error);
    }
  }

  async delete(service: string, account: string): Promise<boolean> {
    try {
      return await this.#keytar.deletePassword(service, account);
    } catch (error) {
      throw this.#classify(error);
    }
  }

  #classify(error: unknown): PalyraError {
    return error instanceof Error && LOCKED_MESSAGE.test(error.message) ? lockedError(error) : unavailableError(error);
  }
}

async function loadKeytar(): Promise<Keytar | null> {
  try {
    // keytar is an optional CommonJS native module; its absence (or a failed native build) means "no OS keychain".
    const mod = (await import(KEYTAR_MODULE)) as Keytar & { default?: Keytar };
    return mod.default ?? mod;
  } catch {
    return null;
  }
}

/**
 * The OS keychain, or null when keytar cannot load or no keychain service answers. A locked keychain is returned
 * (not null): its callers must report `keychain_locked` rather than fall back to a key file.
 */
export async function openOsKeychain(): Promise<Keychain | null> {
  const keytar = await loadKeytar();
  if (keytar === null) return null;
  const keychain = new OsKeychain(keytar);
  return (await keychain.status()) === 'unavailable' ? null : keychain;
}

/** A keychain in a Map, for tests; `setStatus('locked')` makes it behave like a locked OS keychain. */
export class MemoryKeychain implements Keychain {
  readonly kind = 'memory';
  readonly #entries = new Map<string, string>();
  #status: KeychainStatus;

  constructor(status: KeychainStatus = 'available') {
    this.#status = status;
  }

  setStatus(status: KeychainStatus): void {
    this.#status = status;
  }

  /** Number of stored entries, whatever the status (tests check that nothing was created while locked). */
  get size(): number {
    return this.#entries.size;
  }

  status(): Promise<KeychainStatus> {
    return Promise.resolve(this.#status);
  }

  get(service: string, account: string): Promise<string | null> {
    return this.#guard(() => this.#entries.get(MemoryKeychain.#slot(service, account)) ?? null);
  }

  set(service: string, account: string, value: string): Promise<void> {
    return this.#guard(() => {
      this.#entries.set(MemoryKeychain.#slot(service, account), value);
    });
  }

  delete(service: string, account: string): Promise<boolean> {
    return this.#guard(() => this.#entries.delete(MemoryKeychain.#slot(service, account)));
  }

  #guard<T>(action: () => T): Promise<T> {
    if (this.#status === 'locked') return Promise.reject(lockedError());
    if (this.#status === 'unavailable') return Promise.reject(unavailableError('memory keychain set unavailable'));
    return Promise.resolve(action());
  }

  static #slot(service: string, account: string): string {
    return JSON.stringify([service, account]);
  }
}
