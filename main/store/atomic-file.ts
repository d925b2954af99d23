/**
 * Crash-safe file replacement (PROTOCOL.md §6, REFERENCE.md §6.2): a reader sees the old bytes or the new bytes,
 * never a mix, and a kill -9 at any point leaves at most a stray `<file>.tmp.*` that no reader looks at.
 */

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { ioBoundary } from './io-faults.js';

/** Owner-only permissions for everything the store creates. */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Infix of temp files; readers and tests recognise leftovers by it. */
export const TEMP_INFIX = '.tmp.';

export function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function ioError(what: string, target: string, cause: unknown): PalyraError {
  return new PalyraError('store_io_failed', `${what} ${target}: ${messageOf(cause)}`, { cause, details: { path: target } });
}

/** `mkdir -p` with mode 0700; chmods an existing directory too, since a wider mode would expose the store. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await chmod(dir, PRIVATE_DIR_MODE);
  } catch (error) {
    throw ioError('failed to create private directory', dir, error);
  }
}

/**
 * Errors that mean "this platform or file system cannot fsync a directory", not "the write failed": Windows refuses
 * to open a directory (EPERM, EISDIR), and some file systems reject fsync on one (EINVAL, ENOTSUP).
 */
const DIRECTORY_SYNC_UNSUPPORTED = new Set(['EPERM', 'EISDIR', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Makes a rename/link/unlink in `dir` durable. Every directory fsync in the store goes through here. Skipped on
 * Windows, where a directory cannot be opened for fsync and NTFS renames are already durable enough; elsewhere a
 * file system that cannot sync directories is tolerated the same way, and any other failure is `store_io_failed`.
 */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  let handle: FileHandle | undefined;
  try {
    ioBoundary('dirsync', dir);
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (DIRECTORY_SYNC_UNSUPPORTED.has(errnoOf(error) ?? '')) return;
    throw ioError('failed to fsync directory', dir, error);
  } finally {
    await handle?.close();
  }
}

/** A fresh temp name beside `file`; random so concurrent writers never collide. */
export function tempPathFor(file: string): string {
  return `${file}${TEMP_INFIX}${randomBytes(8).toString('hex')}`;
}

/**
 * Writes `data` to a new 0600 temp file created with O_EXCL, fsyncs it and returns its path. The temp file is
 * removed if anything fails.
 */
export async function writePrivateTempFile(file: string, data: Uint8Array): Promise<string> {
  const temp = tempPathFor(file);
  let handle: FileHandle | undefined;
  try {
    ioBoundary('open', temp);
    handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
    // The umask can only narrow the mode, but a chmod keeps 0600 exact whatever the process umask is.
    await handle.chmod(PRIVATE_FILE_MODE);
    ioBoundary('write', temp);
    await handle.writeFile(data);
    ioBoundary('sync', temp);
    await handle.sync();
    await handle.close();
    handle = undefined;
    return temp;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await removeQuietly(temp);
    throw ioError('failed to write temporary file for', file, error);
  }
}

/** temp `<file>.tmp.<random>` (O_EXCL, 0600) → write → fsync → rename over `file` → fsync the directory. */
export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const temp = await writePrivateTempFile(file, data);
  try {
    ioBoundary('rename', file);
    await rename(temp, file);
  } catch (error) {
    await removeQuietly(temp);
    throw ioError('failed to replace', file, error);
  }
  await fsyncDir(path.dirname(file));
}

/** Best-effort unlink for cleanup paths, where the original error is the one worth reporting. */
export async function removeQuietly(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch {
    // Already gone or not removable; the caller is reporting a more useful error.
  }
}
