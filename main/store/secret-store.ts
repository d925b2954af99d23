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
 * Logical key rules (REFERENCE.md §6.2): not empty, no `..`, no backslash, no colon, no leading slash.
 * Throws `invalid_secret_store_key`.
 */
export function validateSecretStoreKey(key: string): void {
  const bad =
    key.trim().length === 0 || key.includes('..') || key.includes('\\') || key.includes(':') || key.startsWith('/') || key.includes('\0');
  if (bad) throw new PalyraError('invalid_secret_store_key', `invalid secret store key '${key}'`);
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
