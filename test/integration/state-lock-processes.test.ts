// The state lock between real processes: a child holding it makes the parent wait, a killed holder's lock is
// reclaimed, and concurrent read-modify-write cycles from several processes lose no update.
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isPalyraError } from '../../main/core/errors.js';
import { FilesystemSecretStore } from '../../main/store/fs-secret-store.js';
import { parseLockMarker, STATE_LOCK_FILE, withStateLock } from '../../main/store/state-lock.js';
import { ensureStoreBuilt, storeFixture } from '../fixtures/store/ensure-store-built.js';

type Child = ChildProcessByStdio<Writable, Readable, null>;

let root: string;
let lockFile: string;

beforeAll(async () => {
  await ensureStoreBuilt();
}, 120_000);

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'palyra-lock-proc-'));
  lockFile = path.join(root, STATE_LOCK_FILE);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function start(script: string, args: string[]): { child: Child; output: () => string; waitFor: (text: string) => Promise<void>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [storeFixture(script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const w of waiters) if (out.includes(w.text)) w.resolve();
  });
  const exit = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      resolve(code);
    });
  });
  const waitFor = (text: string): Promise<void> =>
    out.includes(text)
      ? Promise.resolve()
      : Promise.race([
          new Promise<void>((resolve) => waiters.push({ text, resolve })),
          exit.then((code) => {
            throw new Error(`child exited (${code}) before printing ${text}: ${out}`);
          }),
        ]);
  return { child, output: () => out, waitFor, exit };
}

describe('state lock across processes', () => {
  it('makes the parent wait while a child holds the lock, then lets it in after the child releases', async () => {
    const holder = start('hold-lock.mjs', [root]);
    await holder.waitFor('held\n');
    expect(parseLockMarker(await readFile(lockFile, 'utf8'))?.pid).toBe(holder.child.pid);

    // A waiter with a short budget gives up with the timeout error and leaves the holder's lock alone.
    const timedOut: unknown = await withStateLock(root, () => Promise.resolve(), { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isPalyraError(timedOut, 'state_lock_timeout')).toBe(true);
    expect(existsSync(lockFile)).toBe(true);

    let entered = false;
    const waiting = withStateLock(
      root,
      async () => {
        entered = true;
        // The child writes this file just before releasing: seeing it proves we entered only after the child left.
        return readFile(path.join(root, 'child-released'), 'utf8');
      },
      { timeoutMs: 30_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(entered).toBe(false);
    holder.child.stdin.write('release\n');
    expect(await waiting).toBe('yes');
    expect(await holder.exit).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  });

  it.skipIf(process.platform === 'win32')('reclaims the lock of a holder killed with SIGKILL at once', async () => {
    const holder = start('hold-lock.mjs', [root]);
    await holder.waitFor('held\n');
    holder.child.kill('SIGKILL');
    await holder.exit;
    const marker = parseLockMarker(await readFile(lockFile, 'utf8'));
    expect(marker?.pid).toBe(holder.child.pid);

    // Its owner is gone, so the lock is taken over on the first attempt: no wait at all is allowed here.
    await expect(withStateLock(root, () => Promise.resolve('recovered'), { timeoutMs: 0 })).resolves.toBe('recovered');
    expect(existsSync(lockFile)).toBe(false);
  });

  it.skipIf(process.platform === 'win32')('shares one lock between a process on the directory and one on a symlink to it', async () => {
    const link = `${root}-link`;
    await symlink(root, link);
    try {
      const holder = start('hold-lock.mjs', [link]);
      await holder.waitFor('held\n');
      // The holder went through the symlink; the lock file is in the real directory, and this process waits on it.
      expect(parseLockMarker(await readFile(lockFile, 'utf8'))?.pid).toBe(holder.child.pid);
      const timedOut: unknown = await withStateLock(root, () => Promise.resolve(), { timeoutMs: 100 }).catch((e: unknown) => e);
      expect(isPalyraError(timedOut, 'state_lock_timeout')).toBe(true);
      holder.child.stdin.write('release\n');
      expect(await holder.exit).toBe(0);
      await expect(withStateLock(root, () => Promise.resolve('free'), { timeoutMs: 5_000 })).resolves.toBe('free');
      // And the other way round: four processes through the two spellings lose no update.
      await FilesystemSecretStore.open(root, { keychain: null });
      const workers = [root, link, root, link].map((dir) => start('increment.mjs', [dir, '10']));
      expect(await Promise.all(workers.map((w) => w.exit))).toEqual([0, 0, 0, 0]);
      const store = await FilesystemSecretStore.open(root, { keychain: null });
      expect(new TextDecoder().decode(await store.readSecret('test/counter'))).toBe('40');
    } finally {
      await rm(link, { force: true });
    }
  }, 60_000);

  it('loses no update when four processes each increment an encrypted counter 25 times', async () => {
    await FilesystemSecretStore.open(root, { keychain: null });
    const workers = Array.from({ length: 4 }, () => start('increment.mjs', [root, '25']));
    const codes = await Promise.all(workers.map((w) => w.exit));
    expect(codes).toEqual([0, 0, 0, 0]);
    const store = await FilesystemSecretStore.open(root, { keychain: null });
    expect(new TextDecoder().decode(await store.readSecret('test/counter'))).toBe('100');
    expect(existsSync(lockFile)).toBe(false);
  }, 60_000);
});
