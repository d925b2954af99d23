import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPalyraError } from '../../../main/core/errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../main/store/atomic-file.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-atomic-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('creates the file with exactly the bytes given and mode 0600', async () => {
    const file = path.join(dir, 'f');
    await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
    expect([...(await readFile(file))]).toEqual([1, 2, 3]);
    if (process.platform !== 'win32') expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('replaces an existing file by rename (new inode) and leaves no temp file', async () => {
    const file = path.join(dir, 'f');
    await writeFileAtomic(file, new Uint8Array([1]));
    const before = (await stat(file)).ino;
    await writeFileAtomic(file, new Uint8Array([2, 2]));
    expect([...(await readFile(file))]).toEqual([2, 2]);
    expect((await stat(file)).ino).not.toBe(before);
    expect(await readdir(dir)).toEqual(['f']);
  });

  it('fails with store_io_failed naming the file and removes its temp file when the rename fails', async () => {
    const target = path.join(dir, 'occupied');
    await mkdir(path.join(target, 'child'), { recursive: true });
    const error: unknown = await writeFileAtomic(target, new Uint8Array([1])).catch((e: unknown) => e);
    expect(isPalyraError(error, 'store_io_failed')).toBe(true);
    expect((error as Error).message).toContain(target);
    expect(await readdir(dir)).toEqual(['occupied']);
  });

  it('fails with store_io_failed when the directory does not exist', async () => {
    const error: unknown = await writeFileAtomic(path.join(dir, 'missing', 'f'), new Uint8Array([1])).catch((e: unknown) => e);
    expect(isPalyraError(error, 'store_io_failed')).toBe(true);
  });
});

describe('ensurePrivateDir', () => {
  it.skipIf(process.platform === 'win32')('creates nested directories and makes the leaf 0700 even if it existed wider', async () => {
    const leaf = path.join(dir, 'a', 'b');
    await mkdir(leaf, { recursive: true, mode: 0o777 });
    await ensurePrivateDir(leaf);
    expect((await stat(leaf)).mode & 0o777).toBe(0o700);
    const fresh = path.join(dir, 'c', 'd');
    await ensurePrivateDir(fresh);
    expect((await stat(fresh)).isDirectory()).toBe(true);
    expect((await stat(fresh)).mode & 0o777).toBe(0o700);
  });
});
