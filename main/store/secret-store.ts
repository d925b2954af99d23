/**
 * SecretStore: where identity material lives (REFERENCE.md §6.1). Keys are logical names such as
 * `identity/state.v1.json`; implementations decide the file layout. Every method is async so a keychain-backed or
 * remote store fits the same interface.
 */

import { PalyraError } from '../core/errors.js';

export interface SecretStore {
  /** Writes (atomically replaces) the value under `key`. */
  writeSecret(key: string, value: Uint8Array): Promise<void>;
  /** Reads the value; a missing key throws PalyraError('secret_not_found'). */
  readSecret(key: string): Promise<Uint8Array>;
  /** Deletes the value; a missing key is not an error. */
  deleteSecret(key: string): Promise<void>;
}

/**
 * Longest logical key, in UTF-8 bytes: the filesystem store names files by the key's hex plus a temp suffix, and
 * that must fit a 255-byte file name. Enforced by every store so they behave alike.
 */
export const MAX_SECRET_STORE_KEY_BYTES = 112;

/**
 * Logical key rules (REFERENCE.md §6.2): not empty, no `..`, no backslash, no colon, no leading slash; plus at most
 * MAX_SECRET_STORE_KEY_BYTES. Throws `invalid_secret_store_key`.
 */
export function validateSecretStoreKey(key: string): void {
  const bad =
    key.trim().length === 0 || key.includes('..') || key.includes('\\') || key.includes(':') || key.startsWith('/') || key.includes('\0');
  if (bad) throw new PalyraError('invalid_secret_store_key', `invalid secret store key '${key}'`);
  if (new TextEncoder().encode(key).length > MAX_SECRET_STORE_KEY_BYTES) {
    throw new PalyraError('invalid_secret_store_key', `secret store key is longer than ${MAX_SECRET_STORE_KEY_BYTES} bytes`);
  }
}

/** A plain map: no encryption, no file lock. For tests and for throwaway in-process gateways. */
export class InMemorySecretStore implements SecretStore {
  readonly #values = new Map<string, Uint8Array>();

  writeSecret(key: string, value: Uint8Array): Promise<void> {
    validateSecretStoreKey(key);
    this.#values.set(key, value.slice());
    return Promise.resolve();
  }

  readSecret(key: string): Promise<Uint8Array> {
    validateSecretStoreKey(key);
    const value = this.#values.get(key);
    if (value === undefined) return Promise.reject(new PalyraError('secret_not_found', `secret not found: ${key}`));
    return Promise.resolve(value.slice());
  }

  deleteSecret(key: string): Promise<void> {
    validateSecretStoreKey(key);
    this.#values.delete(key);
    return Promise.resolve();
  }
}
