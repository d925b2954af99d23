import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findElectronBinary, isStale, newestMtime } from '../../../scripts/start.mjs';
import { tempDir } from '../../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function root(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-start-');
  cleanups.push(cleanup);
  return dir;
}

async function touch(file: string, seconds: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, 'x');
  await utimes(file, seconds, seconds);
}

describe('findElectronBinary (no require of the electron package, which would start a download)', () => {
  it('finds nothing without node_modules/electron/path.txt', async () => {
    const dir = await root();
    await mkdir(path.join(dir, 'node_modules/electron/dist'), { recursive: true });
    expect(findElectronBinary(dir)).toBeNull();
  });

  it('finds nothing when path.txt names a file that is not there', async () => {
    const dir = await root();
    await touch(path.join(dir, 'node_modules/electron/path.txt'), 1000);
    await writeFile(path.join(dir, 'node_modules/electron/path.txt'), 'electron');
    expect(findElectronBinary(dir)).toBeNull();
  });

  it('finds the binary path.txt names under dist, and nothing outside dist', async () => {
    const dir = await root();
    await touch(path.join(dir, 'node_modules/electron/dist/electron'), 1000);
    await writeFile(path.join(dir, 'node_modules/electron/path.txt'), 'electron\n');
    expect(findElectronBinary(dir)).toBe(path.join(dir, 'node_modules/electron/dist/electron'));
    await touch(path.join(dir, 'node_modules/evil'), 1000);
    await writeFile(path.join(dir, 'node_modules/electron/path.txt'), '../../evil');
    expect(findElectronBinary(dir)).toBeNull();
  });

  it('reports no binary in this checkout (there is none on this machine)', () => {
    expect(findElectronBinary()).toBeNull();
  });
});

describe('isStale', () => {
  it('is stale when an output is missing or older than the newest source, skipping node_modules', async () => {
    const dir = await root();
    await touch(path.join(dir, 'src/a.ts'), 1000);
    await touch(path.join(dir, 'src/deep/b.ts'), 2000);
    await touch(path.join(dir, 'src/node_modules/c.ts'), 9000);
    expect(newestMtime([path.join(dir, 'src')])).toBe(2000 * 1000);
    expect(isStale([path.join(dir, 'out/a.js')], [path.join(dir, 'src')])).toBe(true);
    await touch(path.join(dir, 'out/a.js'), 1500);
    expect(isStale([path.join(dir, 'out/a.js')], [path.join(dir, 'src')])).toBe(true);
    await touch(path.join(dir, 'out/a.js'), 3000);
    expect(isStale([path.join(dir, 'out/a.js')], [path.join(dir, 'src')])).toBe(false);
  });
});
