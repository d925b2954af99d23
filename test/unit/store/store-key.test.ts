import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toBase64 } from '../../../main/core/bytes.js';
import { PalyraError } from '../../../main/core/errors.js';
import { KEYCHAIN_SERVICE, MemoryKeychain } from '../../../main/store/keychain.js';
import {
  createKeyFileIfAbsent,
  loadOrCreateKeyFile,
  resolveStoreKey,
  STORE_KEY_FILE,
  STORE_KEY_KEYCHAIN_MARKER,
  storeKeyAccount,
} from '../../../main/store/store-key.js';
import { ensureStoreBuilt, storeFixture } from '../../fixtures/store/ensure-store-built.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

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

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'palyra-store-key-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const keyFile = (): string => path.join(root, STORE_KEY_FILE);
const leftovers = async (): Promise<string[]> => (await readdir(root)).filter((n) => n.includes('.tmp.'));

describe('key file (no keychain)', () => {
  it('is created once: the first write is created, the second already_exists, and the first key persists', async () => {
    const first = new Uint8Array(32).fill(1);
    const second = new Uint8Array(32).fill(2);
    expect(await createKeyFileIfAbsent(keyFile(), first)).toBe('created');
    expect(await createKeyFileIfAbsent(keyFile(), second)).toBe('already_exists');
    expect(hex(await readFile(keyFile()))).toBe(hex(first));
    if (process.platform !== 'win32') expect((await stat(keyFile())).mode & 0o777).toBe(0o600);
    expect(await leftovers()).toEqual([]);
  });

  it('gives eight concurrent load-or-create calls in one process the same, persisted key', async () => {
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKeyFile(root)));
    const persisted = hex(await readFile(keyFile()));
    expect(new Set(keys.map(hex))).toEqual(new Set([persisted]));
    expect(await leftovers()).toEqual([]);
  });

  it('resolves to location file and the key file without a keychain', async () => {
    const { key, location } = await resolveStoreKey(root, null);
    expect(location).toBe('file');
    expect(hex(key)).toBe(hex(await readFile(keyFile())));
  });

  it('rejects a key file of the wrong length instead of using or replacing it', async () => {
    await writeFile(keyFile(), new Uint8Array(31));
    const error = await caught(resolveStoreKey(root, null));
    expect(error.code).toBe('state_corrupt');
    expect(error.message).toContain(keyFile());
    expect((await readFile(keyFile())).length).toBe(31);
  });

  describe('across processes', () => {
    beforeAll(async () => {
      await ensureStoreBuilt();
    }, 120_000);

    it('gives four child processes racing to create it the same key', async () => {
      const children = Array.from({ length: 4 }, () => {
        const child = spawn(process.execPath, [storeFixture('resolve-key.mjs'), root], { stdio: ['pipe', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.setEncoding('utf8');
        const ready = new Promise<void>((resolve) => {
          child.stdout.on('data', (chunk: string) => {
            out += chunk;
            if (out.includes('ready\n')) resolve();
          });
        });
        const exited = new Promise<string>((resolve, reject) => {
          child.on('error', reject);
          child.on('exit', (code) => {
            if (code === 0) resolve(out);
            else reject(new Error(`child exited ${code}: ${out}`));
          });
        });
        return { child, ready, exited };
      });
      await Promise.all(children.map((c) => c.ready));
      for (const c of children) c.child.stdin.write('go\n');
      const outputs = await Promise.all(children.map((c) => c.exited));
      const keys = outputs.map((o) => /key file ([0-9a-f]{64})/.exec(o)?.[1]);
      expect(keys.every((k) => k !== undefined)).toBe(true);
      expect(new Set(keys)).toEqual(new Set([hex(await readFile(keyFile()))]));
      expect(await leftovers()).toEqual([]);
    });
  });
});

describe('keychain-held key', () => {
  it('is created in the keychain (base64, account store-key:<root>) and no key file is written', async () => {
    const keychain = new MemoryKeychain();
    const first = await resolveStoreKey(root, keychain);
    expect(first.location).toBe('os');
    expect(existsSync(keyFile())).toBe(false);
    expect(await storeKeyAccount(root)).toBe(`store-key:${await realpath(root)}`);
    const stored = await keychain.get(KEYCHAIN_SERVICE, await storeKeyAccount(root));
    expect(stored).toBe(toBase64(first.key));
    expect(hex((await resolveStoreKey(root, keychain)).key)).toBe(hex(first.key));
  });

  it('gives eight concurrent resolutions against one keychain the same key', async () => {
    const keychain = new MemoryKeychain();
    const results = await Promise.all(Array.from({ length: 8 }, () => resolveStoreKey(root, keychain)));
    expect(new Set(results.map((r) => hex(r.key))).size).toBe(1);
    expect(keychain.size).toBe(1);
  });

  it('keeps using an existing key file when a keychain appears later, without adding a keychain key', async () => {
    const fromFile = await resolveStoreKey(root, null);
    const keychain = new MemoryKeychain();
    const later = await resolveStoreKey(root, keychain);
    expect(later.location).toBe('file');
    expect(hex(later.key)).toBe(hex(fromFile.key));
    expect(keychain.size).toBe(0);
  });

  it('prefers the keychain key when both a keychain key and a key file exist', async () => {
    await resolveStoreKey(root, null);
    const keychain = new MemoryKeychain();
    const chained = new Uint8Array(32).fill(9);
    await keychain.set(KEYCHAIN_SERVICE, await storeKeyAccount(root), toBase64(chained));
    const resolved = await resolveStoreKey(root, keychain);
    expect(resolved.location).toBe('os');
    expect(hex(resolved.key)).toBe(hex(chained));
  });

  it('reports a locked keychain as keychain_locked and creates no key anywhere', async () => {
    const keychain = new MemoryKeychain('locked');
    expect((await caught(resolveStoreKey(root, keychain))).code).toBe('keychain_locked');
    expect(existsSync(keyFile())).toBe(false);
    keychain.setStatus('available');
    expect(keychain.size).toBe(0);
  });

  it('reports keychain_locked even when a key file exists, since the keychain might hold the preferred key', async () => {
    await resolveStoreKey(root, null);
    expect((await caught(resolveStoreKey(root, new MemoryKeychain('locked')))).code).toBe('keychain_locked');
  });

  it('keeps the existing keychain key after the keychain was locked and unlocked again', async () => {
    const keychain = new MemoryKeychain();
    const before = await resolveStoreKey(root, keychain);
    keychain.setStatus('locked');
    await expect(resolveStoreKey(root, keychain)).rejects.toThrow(PalyraError);
    keychain.setStatus('available');
    expect(hex((await resolveStoreKey(root, keychain)).key)).toBe(hex(before.key));
  });

  it('never gives a keychain-keyed directory a second key: without a keychain, or with one lacking the key', async () => {
    const original = await resolveStoreKey(root, new MemoryKeychain());
    expect(original.location).toBe('os');
    expect(existsSync(path.join(root, STORE_KEY_KEYCHAIN_MARKER))).toBe(true);

    const withoutKeychain = await caught(resolveStoreKey(root, null));
    expect(withoutKeychain.code).toBe('keychain_unavailable');
    expect(withoutKeychain.message).toContain(root);
    const emptyKeychain = new MemoryKeychain();
    expect((await caught(resolveStoreKey(root, emptyKeychain))).code).toBe('keychain_unavailable');
    expect(existsSync(keyFile())).toBe(false);
    expect(emptyKeychain.size).toBe(0);
  });

  it('writes the keychain marker for a keychain key found without one', async () => {
    const keychain = new MemoryKeychain();
    await keychain.set(KEYCHAIN_SERVICE, await storeKeyAccount(root), toBase64(new Uint8Array(32).fill(3)));
    await resolveStoreKey(root, keychain);
    expect(existsSync(path.join(root, STORE_KEY_KEYCHAIN_MARKER))).toBe(true);
  });

  it('rejects a keychain value that is not a 32-byte base64 key', async () => {
    const keychain = new MemoryKeychain();
    await keychain.set(KEYCHAIN_SERVICE, await storeKeyAccount(root), toBase64(new Uint8Array(16)));
    expect((await caught(resolveStoreKey(root, keychain))).code).toBe('state_corrupt');
  });
});
