/**
 * The identity state lock (docs/PROTOCOL.md, "State lock"): a process-global async mutex per lock file, so any number
 * of managers in one process queue instead of deadlocking on the file, plus an O_EXCL lock file shared with every
 * other process (CLI, daemon, desktop app) on the same state directory.
 *
 * The marker is `pid=<pid> ts_ms=<ms>` and, where the platform tells a process's start time (Linux /proc), a third
 * token `start=<ticks since boot>`; readers ignore tokens they do not know. A lock whose owner is provably gone —
 * its pid does not exist, or exists with another start time (the pid was reused) — is reclaimed at once. A marker
 * that cannot be parsed (a writer died between creating the file and writing it) is reclaimed after a short grace.
 * Waiters wait: 30 s by default (PALYRA_LOCK_TIMEOUT_MS or the option), then `state_lock_timeout`.
 */

import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, linkSync, openSync, readFileSync, realpathSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { ioBoundary } from './io-faults.js';
import { errnoOf, messageOf, PRIVATE_FILE_MODE, TEMP_INFIX } from './atomic-file.js';

export const STATE_LOCK_FILE = '.identity-state.lock';
/** How long a waiter waits for the lock before `state_lock_timeout`, unless PALYRA_LOCK_TIMEOUT_MS says otherwise. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
export const DEFAULT_LOCK_RETRY_MS = 10;
/** Longest pause between two attempts: waiters back off from retryMs up to this. */
export const MAX_LOCK_RETRY_MS = 50;
/** A lock file whose marker cannot be parsed is reclaimed once its mtime is this old. */
export const DEFAULT_GARBAGE_MARKER_GRACE_MS = 2_000;

/** The wait limit in force: PALYRA_LOCK_TIMEOUT_MS (a whole number of ms, 0 … 10 min) or the default. */
export function lockTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PALYRA_LOCK_TIMEOUT_MS;
  if (raw === undefined || raw === '') return DEFAULT_LOCK_TIMEOUT_MS;
  const value = Number(raw);
  if (!/^\d{1,6}$/.test(raw) || value > 600_000) {
    throw new PalyraError('invalid_argument', `PALYRA_LOCK_TIMEOUT_MS must be a whole number of milliseconds up to 600000 (got '${raw.slice(0, 32)}')`);
  }
  return value;
}

export interface StateLockOptions {
  timeoutMs?: number;
  retryMs?: number;
  /** Grace for a lock file whose marker cannot be parsed (judged by its mtime). */
  garbageGraceMs?: number;
  /** Wall clock for the marker's ts_ms and the grace check (the wait deadline uses a monotonic clock). */
  now?: () => number;
  isProcessAlive?: (pid: number) => boolean;
  /** A process's start time as the marker's `start=` token writes it, null where unknown; injectable for tests. */
  processStartTime?: (pid: number) => string | null;
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
  const absolute = canonicalLockPath(lockPath);
  return withProcessMutex(absolute, async () => {
    const held = await acquireFileLock(absolute, opts);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      // The caller's failure is the one to report; a release failure then only matters to the next waiter.
      try {
        releaseFileLock(absolute, held);
      } catch {
        // the next waiter reclaims a lock whose owner it finds gone
      }
      throw error;
    }
    releaseFileLock(absolute, held);
    return result;
  });
}

/**
 * The lock file's path with its directory's symlinks resolved, so two spellings of one state directory share one
 * in-process queue and one lock file. A directory that does not exist yet keeps its resolved spelling (creating the
 * lock file then fails with store_io_failed anyway).
 */
export function canonicalLockPath(lockPath: string): string {
  const absolute = path.resolve(lockPath);
  try {
    return path.join(realpathSync.native(path.dirname(absolute)), path.basename(absolute));
  } catch {
    return absolute;
  }
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

/** The marker written in place (file systems without hard links); not fsynced, like the linked one (tryCreate). */
async function defaultWriteMarker(handle: FileHandle, text: string): Promise<void> {
  await handle.writeFile(text);
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

/**
 * Linux: field 22 of /proc/<pid>/stat, the process's start time in clock ticks since boot; null elsewhere or when the
 * process does not exist. The command name (field 2) may hold spaces and parentheses, so fields are counted after
 * its last ')'.
 */
export function processStartTime(pid: number): string | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(')') + 1).trim().split(/\s+/);
  const start = fields[19];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

let ownStartTime: string | null | undefined;

function ownMarker(nowMs: number): string {
  ownStartTime ??= processStartTime(process.pid);
  const start = ownStartTime === null ? '' : ` start=${ownStartTime}`;
  return `pid=${process.pid} ts_ms=${Math.trunc(nowMs)}${start}\n`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function acquireFileLock(lockPath: string, opts: StateLockOptions): Promise<HeldLock> {
  const timeoutMs = opts.timeoutMs ?? lockTimeoutFromEnv();
  let pause = opts.retryMs ?? DEFAULT_LOCK_RETRY_MS;
  const now = opts.now ?? Date.now;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const held = await tryCreate(lockPath, now(), opts.writeMarker);
    if (held !== null) return held;
    const verdict = await tryReclaim(lockPath, opts);
    if (verdict.kind === 'gone') continue;
    if (performance.now() >= deadline) {
      const owner = verdict.pid === undefined ? 'an unreadable marker' : `process ${verdict.pid}, which is running`;
      throw new PalyraError(
        'state_lock_timeout',
        `timed out after ${timeoutMs} ms waiting for the identity state lock ${lockPath}, held by ${owner} ` +
          '(a lock is taken over at once when its owner has exited; set PALYRA_LOCK_TIMEOUT_MS to wait longer)',
        { details: { path: lockPath, timeoutMs, ...(verdict.pid === undefined ? {} : { ownerPid: verdict.pid }) } },
      );
    }
    // A little jitter so several waiters do not retry in lock step.
    await sleep(Math.min(pause, Math.max(0, deadline - performance.now())) * (0.75 + Math.random() * 0.5));
    pause = Math.min(MAX_LOCK_RETRY_MS, pause * 2);
  }
}

/** link(2) cannot be used on this file system: create the lock file in place instead. */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/**
 * Creates the lock file with its marker already in it; null when another holder's file exists. The marker is
 * written to a private temp file that is then hard-linked to the lock name (link fails with EEXIST like O_EXCL), so
 * a process killed at any point leaves either no lock file or one whose marker names it — never an empty one that
 * would block everyone for the garbage grace. Where links are unsupported, the file is created with O_EXCL and the
 * marker written into it. A lock is taken several times per pairing, so the default path is a handful of
 * synchronous system calls (each asynchronous one is a thread-pool round trip), and the marker is not fsynced: a
 * killed process's page cache survives it, and after a power loss a lock file without its marker is reclaimed after
 * the garbage grace. `writeMarker` (tests) replaces the write; what it actually wrote is then read back.
 */
async function tryCreate(lockPath: string, nowMs: number, writeMarker?: (handle: FileHandle, text: string) => Promise<void>): Promise<HeldLock | null> {
  const marker = ownMarker(nowMs);
  const temp = `${lockPath}${TEMP_INFIX}${randomBytes(8).toString('hex')}`;
  let ino: number;
  try {
    ino = writeMarker === undefined ? writeTempNow(temp, marker) : await writeTempWith(temp, marker, writeMarker);
  } catch (error) {
    unlinkQuietly(temp);
    throw new PalyraError('store_io_failed', `failed to initialize identity state lock marker ${lockPath}: ${messageOf(error)}`, {
      cause: error,
      details: { path: lockPath },
    });
  }
  try {
    ioBoundary('rename', lockPath);
    linkSync(temp, lockPath);
  } catch (error) {
    unlinkQuietly(temp);
    if (errnoOf(error) === 'EEXIST') return null;
    if (LINK_UNSUPPORTED.has(errnoOf(error) ?? '')) return tryCreateInPlace(lockPath, marker, writeMarker ?? defaultWriteMarker);
    throw new PalyraError('store_io_failed', `failed to create identity state lock ${lockPath}: ${messageOf(error)}`, {
      cause: error,
      details: { path: lockPath },
    });
  }
  unlinkQuietly(temp);
  if (writeMarker === undefined) return { ino, marker };
  try {
    // What release compares against is what is on disk, whatever the writer hook actually wrote.
    return { ino: statSync(lockPath).ino, marker: readFileSync(lockPath, 'utf8') };
  } catch (error) {
    throw new PalyraError('store_io_failed', `failed to read back identity state lock ${lockPath}: ${messageOf(error)}`, {
      cause: error,
      details: { path: lockPath },
    });
  }
}

/** The temp file with the marker, synchronously; its inode. */
function writeTempNow(temp: string, marker: string): number {
  ioBoundary('open', temp);
  const fd = openSync(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    ioBoundary('write', temp);
    const bytes = Buffer.from(marker, 'utf8');
    if (writeSync(fd, bytes, 0, bytes.length, 0) !== bytes.length) throw new Error('short write');
    return fstatSync(fd).ino;
  } finally {
    closeQuietly(fd);
  }
}

/** The temp file written through a test's hook. */
async function writeTempWith(temp: string, marker: string, writeMarker: (handle: FileHandle, text: string) => Promise<void>): Promise<number> {
  ioBoundary('open', temp);
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    ioBoundary('write', temp);
    await writeMarker(handle, marker);
    return (await handle.stat()).ino;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // nothing to do: the descriptor is gone either way
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // a temp file that is already gone, or one a later attempt's cleanup will not find either: harmless
  }
}

/** The fallback of tryCreate: O_EXCL create, then the marker (a kill in between leaves an empty file). */
async function tryCreateInPlace(lockPath: string, marker: string, writeMarker: (handle: FileHandle, text: string) => Promise<void>): Promise<HeldLock | null> {
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
  try {
    await writeMarker(handle, marker);
    const { ino } = await handle.stat();
    return { ino, marker: await readFile(lockPath, 'utf8') };
  } catch (error) {
    // An empty lock file would block everyone until it turned stale, so it goes.
    await unlink(lockPath).catch(() => undefined);
    throw new PalyraError('store_io_failed', `failed to initialize identity state lock marker ${lockPath}: ${messageOf(error)}`, {
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
  /** The owner's start time (`start=`), when its writer knew it. */
  start?: string;
}

/**
 * `pid=<u32>` and `ts_ms=<u64>` whitespace-separated tokens, both required, and an optional `start=<digits>`;
 * other tokens are ignored; without pid or ts_ms the marker is unparseable.
 */
export function parseLockMarker(text: string): Marker | null {
  let pid: number | undefined;
  let tsMs: number | undefined;
  let start: string | undefined;
  for (const token of text.split(/\s+/)) {
    const match = /^(pid|ts_ms|start)=(\d{1,20})$/.exec(token);
    if (match === null) continue;
    const value = Number(match[2]);
    if (match[1] === 'pid' && value <= U32_MAX) pid = value;
    else if (match[1] === 'ts_ms' && BigInt(match[2]!) <= 0xffff_ffff_ffff_ffffn) tsMs = value;
    else if (match[1] === 'start') start = match[2]!;
  }
  if (pid === undefined || tsMs === undefined) return null;
  return start === undefined ? { pid, tsMs } : { pid, tsMs, start };
}

/** Whether the marker's owner is provably gone: no such process, or one with another start time (pid reused). */
export function ownerIsGone(marker: Marker, opts: Pick<StateLockOptions, 'isProcessAlive' | 'processStartTime'> = {}): boolean {
  if (!(opts.isProcessAlive ?? isProcessAlive)(marker.pid)) return true;
  if (marker.start === undefined || marker.pid === process.pid) return false;
  const current = (opts.processStartTime ?? processStartTime)(marker.pid);
  return current !== null && current !== marker.start;
}

type Verdict = { kind: 'gone' } | { kind: 'wait'; pid?: number };

/**
 * Decides what to do about someone else's lock file: 'gone' (vanished or reclaimed — try again now) or 'wait'.
 * Residual race: between our re-check and the unlink another waiter could reclaim and re-create the file; the
 * re-check compares inode and marker text to keep that window to two system calls.
 */
async function tryReclaim(lockPath: string, opts: StateLockOptions): Promise<Verdict> {
  const observed = observe(lockPath);
  if (observed === 'gone') return { kind: 'gone' };
  if (observed === 'unreadable') return { kind: 'wait' };
  const now = (opts.now ?? Date.now)();
  const marker = parseLockMarker(observed.text);
  const reclaim =
    marker === null ? now - observed.mtimeMs >= (opts.garbageGraceMs ?? DEFAULT_GARBAGE_MARKER_GRACE_MS) : ownerIsGone(marker, opts);
  if (!reclaim) return marker === null ? { kind: 'wait' } : { kind: 'wait', pid: marker.pid };
  const again = observe(lockPath);
  if (again === 'gone') return { kind: 'gone' };
  if (again === 'unreadable' || again.ino !== observed.ino || again.text !== observed.text) return { kind: 'wait' };
  try {
    await unlink(lockPath);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') return { kind: 'wait' };
  }
  return { kind: 'gone' };
}

/** The lock file's marker and identity, synchronously (two system calls, on every release and reclaim). */
function observe(lockPath: string): { text: string; ino: number; mtimeMs: number } | 'gone' | 'unreadable' {
  try {
    const text = readFileSync(lockPath, 'utf8');
    const info = statSync(lockPath);
    return { text, ino: info.ino, mtimeMs: info.mtimeMs };
  } catch (error) {
    return errnoOf(error) === 'ENOENT' ? 'gone' : 'unreadable';
  }
}

function releaseFileLock(lockPath: string, held: HeldLock): void {
  const current = observe(lockPath);
  // Someone reclaimed our lock (we looked dead to them, e.g. another pid namespace): theirs is not ours to delete.
  if (current === 'gone' || (current !== 'unreadable' && (current.ino !== held.ino || current.text !== held.marker))) return;
  try {
    ioBoundary('unlink', lockPath);
    unlinkSync(lockPath);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') {
      throw new PalyraError('store_io_failed', `failed to release identity state lock ${lockPath}: ${messageOf(error)}`, {
        cause: error,
        details: { path: lockPath },
      });
    }
  }
}
