/**
 * The identity state lock (REFERENCE.md §6.5, PROTOCOL.md §6): a process-global async mutex per lock file, so any
 * number of managers in one process queue instead of deadlocking on the file, plus an O_EXCL lock file shared with
 * every other process (CLI, daemon, desktop app) on the same state directory.
 */

import { open, readFile, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { errnoOf, messageOf, PRIVATE_FILE_MODE } from './atomic-file.js';

export const STATE_LOCK_FILE = '.identity-state.lock';
/** Waiters give up after this long (REFERENCE.md §2.1). */
export const DEFAULT_LOCK_TIMEOUT_MS = 3_000;
export const DEFAULT_LOCK_RETRY_MS = 20;
/** A lock older than this whose owner is dead may be reclaimed. */
export const DEFAULT_LOCK_STALE_AGE_MS = 30_000;

export interface StateLockOptions {
  timeoutMs?: number;
  retryMs?: number;
  staleAgeMs?: number;
  /** Wall clock for the marker's ts_ms and stale-age checks (the wait deadline uses a monotonic clock). */
  now?: () => number;
  isProcessAlive?: (pid: number) => boolean;
  /** Writes and fsyncs the marker; replaceable so tests can make it fail. */
  writeMarker?: (handle: FileHandle, text: string) => Promise<void>;
}

const U32_MAX = 0xffff_ffff;
const I32_MAX = 0x7fff_ffff;

/** Tails of the per-lock-file queues. Kept on globalThis so two loaded copies of this module still share them. */
const QUEUES_KEY = Symbol.for('palyra.store.state-lock.queues');
const globalSlots = globalThis as unknown as Record<symbol, Map<string, Promise<void>> | undefined>;
const queues = (globalSlots[QUEUES_KEY] ??= new Map<string, Promise<void>>());

/** Runs `fn` while holding `<root>/.identity-state.lock` (and the in-process mutex for it). */
export async function withStateLock<T>(root: string, fn: () => Promise<T>, opts: StateLockOptions = {}): Promise<T> {
  return withFileLock(path.join(root, STATE_LOCK_FILE), fn, opts);
}

/** The same protocol for any lock file path (the store key uses its own lock so it can be taken inside the state lock). */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, opts: StateLockOptions = {}): Promise<T> {
  const absolute = path.resolve(lockPath);
  return withProcessMutex(absolute, async () => {
    const held = await acquireFileLock(absolute, opts);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      // The caller's failure is the one to report; a release failure then only matters to the next waiter.
      await releaseFileLock(absolute, held).catch(() => undefined);
      throw error;
    }
    await releaseFileLock(absolute, held);
    return result;
  });
}

async function withProcessMutex<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous.then(() => mine);
  queues.set(key, tail);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

/** What we created, so release never deletes a lock file that is no longer ours. */
interface HeldLock {
  readonly ino: number;
  readonly marker: string;
}

async function defaultWriteMarker(handle: FileHandle, text: string): Promise<void> {
  await handle.writeFile(text);
  await handle.sync();
}

/** kill(pid, 0): ESRCH means dead; EPERM (someone else's live process) and anything unexpected mean alive. */
export function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  // A pid above i32::MAX cannot be probed (kill takes pid_t), so like the reference we cannot prove it dead.
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > I32_MAX) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoOf(error) !== 'ESRCH';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function acquireFileLock(lockPath: string, opts: StateLockOptions): Promise<HeldLock> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const retryMs = opts.retryMs ?? DEFAULT_LOCK_RETRY_MS;
  const now = opts.now ?? Date.now;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const held = await tryCreate(lockPath, now(), opts.writeMarker ?? defaultWriteMarker);
    if (held !== null) return held;
    const verdict = await tryReclaim(lockPath, opts);
    if (verdict === 'gone') continue;
    if (performance.now() >= deadline) {
      const staleAgeMs = opts.staleAgeMs ?? DEFAULT_LOCK_STALE_AGE_MS;
      throw new PalyraError(
        'state_lock_timeout',
        `timed out after ${timeoutMs} ms waiting for the identity state lock ${lockPath}; lock stealing is disabled ` +
          `(a lock is reclaimed only when its owner process is dead and it is at least ${staleAgeMs} ms old)`,
        { details: { path: lockPath, timeoutMs } },
      );
    }
    await sleep(retryMs);
  }
}

/** Creates the lock file with O_EXCL and writes the marker; null when another holder's file exists. */
async function tryCreate(
  lockPath: string,
  nowMs: number,
  writeMarker: (handle: FileHandle, text: string) => Promise<void>,
): Promise<HeldLock | null> {
  let handle: FileHandle;
  try {
    handle = await open(lockPath, 'wx', PRIVATE_FILE_MODE);
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return null;
    throw new PalyraError('store_io_failed', `failed to create identity state lock ${lockPath}: ${messageOf(error)}`, {
      cause: error,
      details: { path: lockPath },
    });
  }
  const marker = `pid=${process.pid} ts_ms=${Math.trunc(nowMs)}\n`;
  try {
    await writeMarker(handle, marker);
    const { ino } = await handle.stat();
    // What release compares against is what is on disk, whatever the writer hook actually wrote.
    return { ino, marker: await readFile(lockPath, 'utf8') };
  } catch (error) {
    // An empty lock file would block everyone until it turned stale, so it goes.
    await unlink(lockPath).catch(() => undefined);
    throw new PalyraError('internal', `failed to initialize identity state lock marker ${lockPath}: ${messageOf(error)}`, {
      cause: error,
      details: { path: lockPath },
    });
  } finally {
    await handle.close().catch(() => undefined);
  }
}

interface Marker {
  pid: number;
  tsMs: number;
}

/** `pid=<u32>` and `ts_ms=<u64>` whitespace-separated tokens, both required; anything else is unparseable. */
export function parseLockMarker(text: string): Marker | null {
  let pid: number | undefined;
  let tsMs: number | undefined;
  for (const token of text.split(/\s+/)) {
    const match = /^(pid|ts_ms)=(\d{1,20})$/.exec(token);
    if (match === null) continue;
    const value = Number(match[2]);
    if (match[1] === 'pid' && value <= U32_MAX) pid = value;
    else if (match[1] === 'ts_ms' && BigInt(match[2]!) <= 0xffff_ffff_ffff_ffffn) tsMs = value;
  }
  return pid === undefined || tsMs === undefined ? null : { pid, tsMs };
}

/**
 * Decides what to do about someone else's lock file: 'gone' (vanished or reclaimed — try again now) or 'wait'.
 * Residual race: between our re-check and the unlink another waiter could reclaim and re-create the file; the
 * re-check compares inode and marker text to keep that window to two system calls.
 */
async function tryReclaim(lockPath: string, opts: StateLockOptions): Promise<'gone' | 'wait'> {
  const observed = await observe(lockPath);
  if (observed === 'gone') return 'gone';
  if (observed === 'unreadable') return 'wait';
  const now = (opts.now ?? Date.now)();
  const staleAgeMs = opts.staleAgeMs ?? DEFAULT_LOCK_STALE_AGE_MS;
  const marker = parseLockMarker(observed.text);
  const stale =
    marker === null
      ? now - observed.mtimeMs >= staleAgeMs
      : now - marker.tsMs >= staleAgeMs && !(opts.isProcessAlive ?? isProcessAlive)(marker.pid);
  if (!stale) return 'wait';
  const again = await observe(lockPath);
  if (again === 'gone') return 'gone';
  if (again === 'unreadable' || again.ino !== observed.ino || again.text !== observed.text) return 'wait';
  try {
    await unlink(lockPath);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') return 'wait';
  }
  return 'gone';
}

async function observe(lockPath: string): Promise<{ text: string; ino: number; mtimeMs: number } | 'gone' | 'unreadable'> {
  try {
    const [text, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    return { text, ino: info.ino, mtimeMs: info.mtimeMs };
  } catch (error) {
    return errnoOf(error) === 'ENOENT' ? 'gone' : 'unreadable';
  }
}

async function releaseFileLock(lockPath: string, held: HeldLock): Promise<void> {
  const current = await observe(lockPath);
  // Someone reclaimed our lock (we looked dead to them, e.g. another pid namespace): theirs is not ours to delete.
  if (current === 'gone' || (current !== 'unreadable' && (current.ino !== held.ino || current.text !== held.marker))) return;
  try {
    await unlink(lockPath);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') {
      throw new PalyraError('store_io_failed', `failed to release identity state lock ${lockPath}: ${messageOf(error)}`, {
        cause: error,
        details: { path: lockPath },
      });
    }
  }
}
