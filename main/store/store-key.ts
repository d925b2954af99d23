/**
 * The 32-byte AES-256-GCM key of a FilesystemSecretStore (PROTOCOL.md §6, REFERENCE.md §6.2). It lives in the OS
 * keychain when there is one, else in `root/.store-key.v1` (0600). Both are created first-writer-wins, so racing
 * processes and managers always end up with one key; a locked keychain is an error, never a reason to make a key.
 */

import { randomBytes } from 'node:crypto';
import { link, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fromBase64, toBase64, utf8 } from '../core/bytes.js';
import { PalyraError } from '../core/errors.js';
import { ensurePrivateDir, errnoOf, fsyncDir, messageOf, removeQuietly, writeFileAtomic, writePrivateTempFile } from './atomic-file.js';
import type { Keychain } from './keychain.js';
import { KEYCHAIN_SERVICE } from './keychain.js';
import { withFileLock } from './state-lock.js';

export const STORE_KEY_LENGTH = 32;
export const STORE_KEY_FILE = '.store-key.v1';
/** Serialises creation of a keychain-held key across processes; separate from the state lock so it nests inside it. */
export const STORE_KEY_LOCK_FILE = '.store-key.lock';
/**
 * Non-secret note that this directory's key went to a keychain. Without it, a process that cannot reach the
 * keychain (an SSH session without D-Bus) would make a key file and split the directory between two keys.
 */
export const STORE_KEY_KEYCHAIN_MARKER = '.store-key.v1.keychain';

export type StoreKeyLocation = 'os' | 'file';

/** The keychain account holding the key of the store at `root` (its canonical absolute path). */
export async function storeKeyAccount(root: string): Promise<string> {
  let absolute = path.resolve(root);
  try {
    absolute = await realpath(absolute);
  } catch {
    // Not created yet: the resolved path is what it will be called.
  }
  return `store-key:${absolute}`;
}

function wrongLength(where: string, length: number): PalyraError {
  return new PalyraError('state_corrupt', `store key in ${where} has ${length} bytes, expected ${STORE_KEY_LENGTH}`, {
    details: { where, length },
  });
}

/** Reads a key file; null when it does not exist. */
export async function readKeyFile(file: string): Promise<Uint8Array | null> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw new PalyraError('store_io_failed', `failed to read store key file ${file}: ${messageOf(error)}`, {
      cause: error,
      details: { path: file },
    });
  }
  if (bytes.length !== STORE_KEY_LENGTH) throw wrongLength(file, bytes.length);
  return new Uint8Array(bytes);
}

/**
 * Publishes `key` at `file` unless a key file is already there: temp (O_EXCL, 0600, fsync) → hard link to the
 * final name, which fails with EEXIST for every writer but the first → unlink temp → fsync the directory.
 */
export async function createKeyFileIfAbsent(file: string, key: Uint8Array): Promise<'created' | 'already_exists'> {
  if (key.length !== STORE_KEY_LENGTH) throw wrongLength('the new key', key.length);
  const temp = await writePrivateTempFile(file, key);
  let outcome: 'created' | 'already_exists';
  try {
    await link(temp, file);
    outcome = 'created';
  } catch (error) {
    if (errnoOf(error) !== 'EEXIST') {
      throw new PalyraError('store_io_failed', `failed to publish store key file ${file}: ${messageOf(error)}`, {
        cause: error,
        details: { path: file },
      });
    }
    outcome = 'already_exists';
  } finally {
    await removeQuietly(temp);
  }
  await fsyncDir(path.dirname(file));
  return outcome;
}

/** The key in `root/.store-key.v1`, creating it if absent; every racer gets the first writer's key. */
export async function loadOrCreateKeyFile(root: string): Promise<Uint8Array> {
  const file = path.join(root, STORE_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing !== null) return existing;
  await createKeyFileIfAbsent(file, new Uint8Array(randomBytes(STORE_KEY_LENGTH)));
  const winner = await readKeyFile(file);
  if (winner === null) throw new PalyraError('store_io_failed', `store key file ${file} vanished after creation`);
  return winner;
}

function decodeKeychainKey(value: string, account: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = fromBase64(value);
  } catch (error) {
    throw new PalyraError('state_corrupt', `store key in the OS keychain (${account}) is not base64`, { cause: error });
  }
  if (key.length !== STORE_KEY_LENGTH) throw wrongLength(`the OS keychain (${account})`, key.length);
  return key;
}

/**
 * Finds or creates the store key for `root`. Order: a key in the keychain wins; else an existing key file is used
 * (the directory was set up without a keychain — a new keychain key would strand its data); else a new key goes
 * to the keychain, or to a key file when there is no keychain. `keychain_locked` propagates: with a locked
 * keychain we cannot know whether it holds this root's key, so neither file nor new key is safe. Likewise a
 * directory whose key was put in a keychain never gets a second key: without that keychain (or with one that
 * lacks the key) this is `keychain_unavailable`.
 */
export async function resolveStoreKey(
  root: string,
  keychain: Keychain | null,
): Promise<{ key: Uint8Array; location: StoreKeyLocation }> {
  await ensurePrivateDir(root);
  const marker = path.join(root, STORE_KEY_KEYCHAIN_MARKER);
  if (keychain === null) {
    if (await exists(marker)) {
      throw new PalyraError(
        'keychain_unavailable',
        `the store key of ${root} is kept in the OS keychain, which is not available to this process`,
        { details: { path: root } },
      );
    }
    return { key: await loadOrCreateKeyFile(root), location: 'file' };
  }

  const account = await storeKeyAccount(root);
  const file = path.join(root, STORE_KEY_FILE);
  const found = await findKey(keychain, account, file);
  if (found !== null) {
    // Heals a directory whose keychain key predates the marker (or whose creator died before writing it).
    if (found.location === 'os' && !(await exists(marker))) await writeFileAtomic(marker, utf8(`${account}\n`));
    return found;
  }

  return withFileLock(path.join(root, STORE_KEY_LOCK_FILE), async () => {
    // Another process may have created it while we waited for the lock.
    const raced = await findKey(keychain, account, file);
    if (raced !== null) return raced;
    if (await exists(marker)) {
      throw new PalyraError(
        'keychain_unavailable',
        `the store key of ${root} was kept in an OS keychain that does not have it now (${account}); refusing to make a second key`,
        { details: { path: root, account } },
      );
    }
    await keychain.set(KEYCHAIN_SERVICE, account, toBase64(randomBytes(STORE_KEY_LENGTH)));
    const stored = await keychain.get(KEYCHAIN_SERVICE, account);
    if (stored === null) {
      throw new PalyraError('keychain_unavailable', `the OS keychain did not keep the new store key (${account})`);
    }
    const key = decodeKeychainKey(stored, account);
    // Only after the key is safely stored, so the marker always means "a keychain holds this directory's key".
    await writeFileAtomic(marker, utf8(`${account}\n`));
    return { key, location: 'os' as const };
  });
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw new PalyraError('store_io_failed', `failed to stat ${file}: ${messageOf(error)}`, { cause: error, details: { path: file } });
  }
}

async function findKey(
  keychain: Keychain,
  account: string,
  file: string,
): Promise<{ key: Uint8Array; location: StoreKeyLocation } | null> {
  const value = await keychain.get(KEYCHAIN_SERVICE, account);
  if (value !== null) return { key: decodeKeychainKey(value, account), location: 'os' };
  const fromFile = await readKeyFile(file);
  return fromFile === null ? null : { key: fromFile, location: 'file' };
}

/**
 * The existing store key of `root`, without creating anything (read-only commands on a full disk, and never a key
 * for a state that does not exist): null when `root` has no key at all. Same precedence as resolveStoreKey.
 */
export async function findStoreKey(root: string, keychain: Keychain | null): Promise<{ key: Uint8Array; location: StoreKeyLocation } | null> {
  const file = path.join(root, STORE_KEY_FILE);
  if (keychain === null) {
    if (await exists(path.join(root, STORE_KEY_KEYCHAIN_MARKER))) {
      throw new PalyraError('keychain_unavailable', `the store key of ${root} is kept in the OS keychain, which is not available to this process`, {
        details: { path: root },
      });
    }
    const key = await readKeyFile(file);
    return key === null ? null : { key, location: 'file' };
  }
  const found = await findKey(keychain, await storeKeyAccount(root), file);
  if (found === null && (await exists(path.join(root, STORE_KEY_KEYCHAIN_MARKER)))) {
    throw new PalyraError('keychain_unavailable', `the store key of ${root} was kept in an OS keychain that does not have it now`, { details: { path: root } });
  }
  return found;
}

/** Removes a store key from the keychain (tests and `reset` flows); the key file is the caller's to delete. */
export async function forgetKeychainStoreKey(root: string, keychain: Keychain): Promise<boolean> {
  return keychain.delete(KEYCHAIN_SERVICE, await storeKeyAccount(root));
}
