/**
 * FilesystemSecretStore: one encrypted file per logical key in a flat 0700 directory (PROTOCOL.md §6).
 *
 * File = `IDS1` ‖ 12-byte random nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag, with the logical key (UTF-8) as
 * associated data so a file moved or copied to another key's name fails to decrypt. There is no plaintext
 * fallback: a file without the magic is refused, since accepting it would let anyone with write access forge state.
 */

import { statSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { toHex, utf8 } from '../core/bytes.js';
import { PalyraError } from '../core/errors.js';
import { AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH, open, seal } from './aead.js';
import { ensurePrivateDir, errnoOf, fsyncDir, messageOf, writeFileAtomic } from './atomic-file.js';
import type { Keychain } from './keychain.js';
import { openOsKeychain } from './keychain.js';
import type { SecretStore } from './secret-store.js';
import { validateSecretStoreKey } from './secret-store.js';
import { resolveStoreKey, STORE_KEY_LENGTH } from './store-key.js';

/** `IDS1`: marks an encrypted store file (REFERENCE.md §2.1). */
export const STORE_MAGIC = new Uint8Array([0x49, 0x44, 0x53, 0x31]);
export const STORE_NONCE_LENGTH = AEAD_NONCE_LENGTH;
export const STORE_TAG_LENGTH = AEAD_TAG_LENGTH;
const HEADER_LENGTH = STORE_MAGIC.length + STORE_NONCE_LENGTH;

export interface SecretFileStat {
  mtimeMs: number;
  size: number;
  ino: number;
}

export interface FilesystemSecretStoreOptions {
  /** Use this key instead of resolving one (keyLocation 'given'). */
  key?: Uint8Array;
  /** Where to find or create the key; omitted = the OS keychain if one answers, null = key file only. */
  keychain?: Keychain | null;
}

/** Encrypts `plaintext` for the logical `key` into the on-disk format. */
export function sealStoreRecord(storeKey: Uint8Array, key: string, plaintext: Uint8Array): Uint8Array {
  const sealed = seal(storeKey, plaintext, utf8(key));
  const out = new Uint8Array(STORE_MAGIC.length + sealed.length);
  out.set(STORE_MAGIC, 0);
  out.set(sealed, STORE_MAGIC.length);
  return out;
}

/** Decrypts a store file's bytes; `file` only names the file in errors. */
export function openStoreRecord(storeKey: Uint8Array, key: string, record: Uint8Array, file: string): Uint8Array {
  const magicLength = Math.min(record.length, STORE_MAGIC.length);
  const magicPrefix = STORE_MAGIC.subarray(0, magicLength).every((byte, i) => record[i] === byte);
  if (!magicPrefix) {
    throw new PalyraError('store_plaintext_refused', `identity store file is not encrypted; refusing plaintext: ${file}`, {
      details: { path: file },
    });
  }
  if (record.length < HEADER_LENGTH + STORE_TAG_LENGTH) {
    throw new PalyraError('store_truncated', `identity store payload header is truncated: ${file}`, {
      details: { path: file, length: record.length },
    });
  }
  try {
    return open(storeKey, record.subarray(STORE_MAGIC.length), utf8(key));
  } catch (error) {
    throw new PalyraError('store_decrypt_failed', `failed to decrypt identity store payload at rest: ${file}`, {
      cause: error,
      details: { path: file },
    });
  }
}

export class FilesystemSecretStore implements SecretStore {
  readonly root: string;
  readonly keyLocation: 'os' | 'file' | 'given';
  readonly #key: Uint8Array;
  readonly #paths = new Map<string, string>();

  private constructor(root: string, key: Uint8Array, keyLocation: 'os' | 'file' | 'given') {
    this.root = root;
    this.#key = key;
    this.keyLocation = keyLocation;
  }

  /** Creates `root` (0700) if needed and resolves the store key (see store-key.ts) unless one is given. */
  static async open(root: string, opts: FilesystemSecretStoreOptions = {}): Promise<FilesystemSecretStore> {
    const absolute = path.resolve(root);
    await ensurePrivateDir(absolute);
    if (opts.key !== undefined) {
      if (opts.key.length !== STORE_KEY_LENGTH) {
        throw new PalyraError('invalid_key_material', `store key must be ${STORE_KEY_LENGTH} bytes, got ${opts.key.length}`);
      }
      return new FilesystemSecretStore(absolute, opts.key.slice(), 'given');
    }
    const keychain = opts.keychain === undefined ? await openOsKeychain() : opts.keychain;
    const { key, location } = await resolveStoreKey(absolute, keychain);
    return new FilesystemSecretStore(absolute, key, location);
  }

  /** `root/<lowercase hex of the UTF-8 key>`: flat, so `device/a/b` and `device__a__b` never share a file. */
  pathFor(key: string): string {
    let file = this.#paths.get(key);
    if (file === undefined) {
      validateSecretStoreKey(key);
      file = path.join(this.root, toHex(utf8(key)));
      // A handful of documents are asked for on every call; their paths are worth keeping (bounded all the same).
      if (this.#paths.size < 1024) this.#paths.set(key, file);
    }
    return file;
  }

  async writeSecret(key: string, value: Uint8Array): Promise<void> {
    const file = this.pathFor(key);
    await writeFileAtomic(file, sealStoreRecord(this.#key, key, value));
  }

  async readSecret(key: string): Promise<Uint8Array> {
    const file = this.pathFor(key);
    let record: Uint8Array;
    try {
      record = await readFile(file);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') {
        throw new PalyraError('secret_not_found', `secret not found: ${key}`, { details: { key } });
      }
      throw new PalyraError('store_io_failed', `failed to read ${file}: ${messageOf(error)}`, {
        cause: error,
        details: { path: file },
      });
    }
    return openStoreRecord(this.#key, key, record, file);
  }

  async deleteSecret(key: string): Promise<void> {
    const file = this.pathFor(key);
    try {
      await unlink(file);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return;
      throw new PalyraError('store_io_failed', `failed to delete ${file}: ${messageOf(error)}`, {
        cause: error,
        details: { path: file },
      });
    }
    await fsyncDir(this.root);
  }

  /** File identity without decrypting, so another process's write is noticed cheaply; null when absent. */
  statSecret(key: string): Promise<SecretFileStat | null> {
    // A throw inside the executor rejects the promise.
    return new Promise((resolve) => { resolve(this.#statNow(key)); });
  }

  #statNow(key: string): SecretFileStat | null {
    const file = this.pathFor(key);
    try {
      // Synchronous: one stat is cheaper than the thread-pool round trip of the asynchronous form (polled per call).
      const info = statSync(file);
      return { mtimeMs: info.mtimeMs, size: info.size, ino: info.ino };
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return null;
      throw new PalyraError('store_io_failed', `failed to stat ${file}: ${messageOf(error)}`, {
        cause: error,
        details: { path: file },
      });
    }
  }
}
