import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import {
  DEFAULT_LOCK_TIMEOUT_MS,
  canonicalLockPath,
  isProcessAlive,
  lockTimeoutFromEnv,
  ownerIsGone,
  parseLockMarker,
  processStartTime,
  STATE_LOCK_FILE,
  withFileLock,
  withStateLock,
} from '../../../main/store/state-lock.js';

const I32_MAX = 2_147_483_647;

async function caught(promise: Promise<unknown>): Promise<PalyraError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PalyraError) return error;
    throw error;
  }
  throw new Error('expected a PalyraError');
}

let root: string;
let lockFile: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'palyra-lock-'));
  lockFile = path.join(root, STATE_LOCK_FILE);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const fast = { timeoutMs: 150, retryMs: 5 };

describe('withStateLock', () => {
  it('holds .identity-state.lock with a pid/ts_ms(/start) marker while fn runs and deletes it afterwards', async () => {
    const marker = await withStateLock(root, () => readFile(lockFile, 'utf8'), { now: () => 1_700_000_000_123 });
    const start = processStartTime(process.pid);
    expect(marker).toBe(`pid=${process.pid} ts_ms=1700000000123${start === null ? '' : ` start=${start}`}\n`);
    expect(existsSync(lockFile)).toBe(false);
  });

  it('releases the lock when fn throws and passes the error through', async () => {
    const failure = new Error('mutation failed');
    await expect(withStateLock(root, () => Promise.reject(failure))).rejects.toBe(failure);
    expect(existsSync(lockFile)).toBe(false);
  });

  it('serialises callers in one process: 20 concurrent read-modify-writes lose no update', async () => {
    let counter = 0;
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withStateLock(root, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          const read = counter;
          await new Promise((resolve) => setImmediate(resolve));
          counter = read + 1;
          inside -= 1;
        }),
      ),
    );
    expect(counter).toBe(20);
    expect(maxInside).toBe(1);
    expect(existsSync(lockFile)).toBe(false);
  });

  it('lets locks on different roots, and a different lock file on the same root, nest without deadlock', async () => {
    const other = await mkdtemp(path.join(os.tmpdir(), 'palyra-lock-other-'));
    try {
      const result = await withStateLock(root, () =>
        withStateLock(other, () => withFileLock(path.join(root, '.store-key.lock'), () => Promise.resolve('nested'))),
      );
      expect(result).toBe('nested');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('does not reclaim a lock naming this live process even with ts_ms=0; it times out and the file stays', async () => {
    const marker = `pid=${process.pid} ts_ms=0\n`;
    await writeFile(lockFile, marker);
    let ran = false;
    const error = await caught(
      withStateLock(root, () => {
        ran = true;
        return Promise.resolve();
      }, fast),
    );
    expect(error.code).toBe('state_lock_timeout');
    expect(error.message).toContain(lockFile);
    expect(error.message).toContain(`held by process ${process.pid}, which is running`);
    expect(error.details).toMatchObject({ ownerPid: process.pid });
    expect(ran).toBe(false);
    expect(await readFile(lockFile, 'utf8')).toBe(marker);
  });

  it('reclaims a lock naming a dead pid (i32::MAX) and leaves no lock file afterwards', async () => {
    await writeFile(lockFile, `pid=${I32_MAX} ts_ms=0\n`);
    await expect(withStateLock(root, () => Promise.resolve('done'), fast)).resolves.toBe('done');
    expect(existsSync(lockFile)).toBe(false);
  });

  it('reclaims the lock of a dead owner at once, however fresh its marker', async () => {
    await writeFile(lockFile, `pid=${I32_MAX} ts_ms=${Date.now()}\n`);
    await expect(withStateLock(root, () => Promise.resolve('taken'), { timeoutMs: 0 })).resolves.toBe('taken');
    expect(existsSync(lockFile)).toBe(false);
  });

  it('reclaims at once a lock whose pid is alive but was reused (another start time)', async () => {
    await writeFile(lockFile, `pid=4242 ts_ms=${Date.now()} start=100\n`);
    const opts = { timeoutMs: 0, isProcessAlive: () => true, processStartTime: (pid: number) => (pid === 4242 ? '999' : null) };
    await expect(withStateLock(root, () => Promise.resolve('taken'), opts)).resolves.toBe('taken');
  });

  it('keeps a lock whose live owner has the start time its marker names, or whose start time cannot be read', () => {
    const marker = { pid: 4242, tsMs: 0, start: '100' };
    expect(ownerIsGone(marker, { isProcessAlive: () => true, processStartTime: () => '100' })).toBe(false);
    expect(ownerIsGone(marker, { isProcessAlive: () => true, processStartTime: () => null })).toBe(false);
    expect(ownerIsGone(marker, { isProcessAlive: () => true, processStartTime: () => '101' })).toBe(true);
    expect(ownerIsGone({ pid: 4242, tsMs: 0 }, { isProcessAlive: () => true, processStartTime: () => '101' })).toBe(false);
    expect(ownerIsGone({ pid: 4242, tsMs: 0 }, { isProcessAlive: () => false })).toBe(true);
  });

  it('keeps an old lock whose owner is alive', async () => {
    await writeFile(lockFile, 'pid=4242 ts_ms=0\n');
    const error = await caught(withStateLock(root, () => Promise.resolve(), { ...fast, isProcessAlive: () => true }));
    expect(error.code).toBe('state_lock_timeout');
    expect(existsSync(lockFile)).toBe(true);
  });

  it('removes the lock file and fails with store_io_failed when the marker cannot be written', async () => {
    const error = await caught(
      withStateLock(root, () => Promise.resolve(), {
        writeMarker: () => Promise.reject(new Error('disk full')),
      }),
    );
    expect(error.code).toBe('store_io_failed');
    expect(error.message).toContain('failed to initialize identity state lock marker');
    expect(error.message).toContain(lockFile);
    expect(error.message).toContain('disk full');
    expect(existsSync(lockFile)).toBe(false);
  });

  it('after a marker failure, the next caller gets the lock at once and leaves no lock file', async () => {
    await caught(withStateLock(root, () => Promise.resolve(), { writeMarker: () => Promise.reject(new Error('disk full')) }));
    await expect(withStateLock(root, () => Promise.resolve('ok'), { timeoutMs: 0 })).resolves.toBe('ok');
    expect(existsSync(lockFile)).toBe(false);
  });

  it('keeps a malformed but fresh marker (a writer between create and write) during its grace', async () => {
    await writeFile(lockFile, 'garbage\n');
    const error = await caught(withStateLock(root, () => Promise.resolve(), { ...fast, garbageGraceMs: 60_000 }));
    expect(error.code).toBe('state_lock_timeout');
    expect(await readFile(lockFile, 'utf8')).toBe('garbage\n');
  });

  it('reclaims a malformed marker once its mtime is older than the grace, and deletes it', async () => {
    await writeFile(lockFile, 'pid=12 only\n');
    await expect(withStateLock(root, () => Promise.resolve('ok'), { ...fast, garbageGraceMs: 0 })).resolves.toBe('ok');
    expect(existsSync(lockFile)).toBe(false);
  });

  it('judges a malformed marker by file mtime against the injected clock', async () => {
    await writeFile(lockFile, '');
    const old = new Date('2020-01-01T00:00:00Z');
    await utimes(lockFile, old, old);
    const fresh = await caught(withStateLock(root, () => Promise.resolve(), { ...fast, now: () => old.getTime() + 1_000 }));
    expect(fresh.code).toBe('state_lock_timeout');
    await expect(withStateLock(root, () => Promise.resolve('ok'), { ...fast, now: () => old.getTime() + 2_000 })).resolves.toBe('ok');
  });

  it('takes one lock for two spellings of one directory (a symlink)', async () => {
    const link = `${root}-link`;
    await symlink(root, link);
    try {
      expect(canonicalLockPath(path.join(link, STATE_LOCK_FILE))).toBe(canonicalLockPath(lockFile));
      // Held through the link, the real path's lock is taken: a second caller through the real path waits.
      const order: string[] = [];
      await Promise.all([
        withStateLock(link, async () => {
          order.push('link in');
          await new Promise((resolve) => setImmediate(resolve));
          order.push('link out');
        }),
        withStateLock(root, () => {
          order.push('real');
          return Promise.resolve();
        }),
      ]);
      expect(order).toEqual(['link in', 'link out', 'real']);
    } finally {
      await rm(link, { force: true });
    }
  });

  it('waits 30 s by default; PALYRA_LOCK_TIMEOUT_MS changes it and a malformed value is refused', () => {
    expect(DEFAULT_LOCK_TIMEOUT_MS).toBe(30_000);
    expect(lockTimeoutFromEnv({})).toBe(30_000);
    expect(lockTimeoutFromEnv({ PALYRA_LOCK_TIMEOUT_MS: '1500' })).toBe(1_500);
    for (const bad of ['-1', '1.5', 'soon', '600001']) {
      expect(() => lockTimeoutFromEnv({ PALYRA_LOCK_TIMEOUT_MS: bad })).toThrow(/PALYRA_LOCK_TIMEOUT_MS/);
    }
  });

  it('acquires the lock once another holder deletes it', async () => {
    await writeFile(lockFile, `pid=${process.pid} ts_ms=${Date.now()}\n`);
    const waiting = withStateLock(root, () => readFile(lockFile, 'utf8'), { timeoutMs: 20_000, retryMs: 5 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    await unlink(lockFile);
    expect(await waiting).toMatch(new RegExp(`^pid=${process.pid} ts_ms=\\d+( start=\\d+)?\\n$`));
  });
});

describe('parseLockMarker', () => {
  it('reads pid and ts_ms tokens in any order, ignoring other tokens', () => {
    expect(parseLockMarker('pid=12 ts_ms=34\n')).toEqual({ pid: 12, tsMs: 34 });
    expect(parseLockMarker('  ts_ms=34\thost=x pid=12 ')).toEqual({ pid: 12, tsMs: 34 });
    expect(parseLockMarker('pid=12 ts_ms=34 start=5678\n')).toEqual({ pid: 12, tsMs: 34, start: '5678' });
  });

  it('rejects markers missing a token or with out-of-range or non-numeric values', () => {
    for (const text of ['', 'pid=12', 'ts_ms=34', 'pid=-1 ts_ms=3', 'pid=4294967296 ts_ms=1', 'pid=1 ts_ms=18446744073709551616', 'pid=x ts_ms=1']) {
      expect(parseLockMarker(text)).toBeNull();
    }
    expect(parseLockMarker('pid=4294967295 ts_ms=18446744073709551615')?.pid).toBe(4_294_967_295);
  });
});

describe('isProcessAlive', () => {
  it('is true for this process, false for an unused pid, and true for pids it cannot probe', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(I32_MAX)).toBe(false);
    expect(isProcessAlive(I32_MAX + 1)).toBe(true);
  });

  it.runIf(process.platform === 'linux')('reads a process start time from /proc, null for a pid that does not exist', () => {
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    expect(processStartTime(process.pid)).toBe(processStartTime(process.pid));
    expect(processStartTime(I32_MAX)).toBeNull();
  });
});
