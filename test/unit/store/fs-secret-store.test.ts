import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { FilesystemSecretStore } from '../../../main/store/fs-secret-store.js';
import { MemoryKeychain } from '../../../main/store/keychain.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

async function caught(promise: Promise<unknown>): Promise<PalyraError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PalyraError) return error;
    throw error;
  }
  throw new Error('expected a PalyraError');
}

let dir: string;
let root: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-fs-store-'));
  root = path.join(dir, 'state');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const openStore = (): Promise<FilesystemSecretStore> => FilesystemSecretStore.open(root, { keychain: null });

async function tempLeftovers(): Promise<string[]> {
  return (await readdir(root)).filter((name) => name.includes('.tmp.'));
}

describe('FilesystemSecretStore', () => {
  it.skipIf(process.platform === 'win32')('creates the store directory 0700 and every file 0600', async () => {
    const store = await openStore();
    await store.writeSecret('identity/state.v1.json', text('{}'));
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    expect((await stat(store.pathFor('identity/state.v1.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(root, '.store-key.v1'))).mode & 0o777).toBe(0o600);
  });

  it.skipIf(process.platform === 'win32')('tightens an existing, too-open store directory to 0700', async () => {
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { mode: 0o755 });
    await openStore();
    expect((await stat(root)).mode & 0o777).toBe(0o700);
  });

  it('stores device/a/b and device__a__b independently, as distinct flat files', async () => {
    const store = await openStore();
    await store.writeSecret('device/a/b', text('slash'));
    await store.writeSecret('device__a__b', text('underscore'));
    expect(decode(await store.readSecret('device/a/b'))).toBe('slash');
    expect(decode(await store.readSecret('device__a__b'))).toBe('underscore');
    expect(store.pathFor('device/a/b')).toBe(path.join(root, Buffer.from('device/a/b').toString('hex')));
    expect(store.pathFor('device/a/b')).not.toBe(store.pathFor('device__a__b'));
  });

  it('deleting one key keeps the other, and reading the deleted one is secret_not_found', async () => {
    const store = await openStore();
    await store.writeSecret('device/a/b', text('slash'));
    await store.writeSecret('device__a__b', text('underscore'));
    await store.deleteSecret('device/a/b');
    expect(decode(await store.readSecret('device__a__b'))).toBe('underscore');
    expect((await caught(store.readSecret('device/a/b'))).code).toBe('secret_not_found');
  });

  it('treats deleting a missing key as success', async () => {
    const store = await openStore();
    await expect(store.deleteSecret('never/written')).resolves.toBeUndefined();
  });

  it('reads back the latest of five overwrites, each valid JSON, and leaves no temp files', async () => {
    const store = await openStore();
    for (let i = 0; i < 5; i++) {
      await store.writeSecret('identity/state.v1.json', text(JSON.stringify({ generation: i })));
      expect(JSON.parse(decode(await store.readSecret('identity/state.v1.json')))).toEqual({ generation: i });
    }
    expect(await tempLeftovers()).toEqual([]);
  });

  it('writes ciphertext that starts with IDS1 and differs from the plaintext', async () => {
    const store = await openStore();
    const plaintext = text('{"private_key_pem":"-----BEGIN PRIVATE KEY-----"}');
    await store.writeSecret('identity/ca/state.json', plaintext);
    const raw = await readFile(store.pathFor('identity/ca/state.json'));
    expect(raw.subarray(0, 4).toString('latin1')).toBe('IDS1');
    expect(raw.length).toBe(4 + 12 + plaintext.length + 16);
    expect(raw.includes(Buffer.from(plaintext))).toBe(false);
    expect(raw.includes(Buffer.from('private_key_pem'))).toBe(false);
  });

  it('uses a fresh nonce for every write, so equal values give different files', async () => {
    const store = await openStore();
    await store.writeSecret('a', text('same'));
    const first = await readFile(store.pathFor('a'));
    await store.writeSecret('a', text('same'));
    expect((await readFile(store.pathFor('a'))).equals(first)).toBe(false);
  });

  it('refuses a plaintext file with store_plaintext_refused naming the file', async () => {
    const store = await openStore();
    const file = store.pathFor('identity/state.v1.json');
    await writeFile(file, '{"generation":99,"paired_devices":{}}');
    const error = await caught(store.readSecret('identity/state.v1.json'));
    expect(error.code).toBe('store_plaintext_refused');
    expect(error.message).toContain(file);
  });

  it('rejects a file with one flipped ciphertext bit as store_decrypt_failed naming the file', async () => {
    const store = await openStore();
    await store.writeSecret('identity/state.v1.json', text('{"generation":1}'));
    const file = store.pathFor('identity/state.v1.json');
    const raw = await readFile(file);
    raw[4 + 12 + 3]! ^= 0x01;
    await writeFile(file, raw);
    const error = await caught(store.readSecret('identity/state.v1.json'));
    expect(error.code).toBe('store_decrypt_failed');
    expect(error.message).toBe(`failed to decrypt identity store payload at rest: ${file}`);
  });

  it('rejects two files swapped on disk, because each is bound to its own key name', async () => {
    const store = await openStore();
    await store.writeSecret('device/a/identity.json', text('alice'));
    await store.writeSecret('device/b/identity.json', text('bob'));
    const a = store.pathFor('device/a/identity.json');
    const b = store.pathFor('device/b/identity.json');
    await rename(a, `${a}.swap`);
    await rename(b, a);
    await rename(`${a}.swap`, b);
    expect((await caught(store.readSecret('device/a/identity.json'))).code).toBe('store_decrypt_failed');
    expect((await caught(store.readSecret('device/b/identity.json'))).code).toBe('store_decrypt_failed');
  });

  it('reports a file cut short inside the header or tag as store_truncated naming the file', async () => {
    const store = await openStore();
    await store.writeSecret('k', text('value'));
    const file = store.pathFor('k');
    const raw = await readFile(file);
    for (const length of [0, 3, 4, 20, 31]) {
      await writeFile(file, raw.subarray(0, length));
      const error = await caught(store.readSecret('k'));
      expect(error.code).toBe('store_truncated');
      expect(error.message).toContain(file);
    }
  });

  it('rejects a file written under another store key as store_decrypt_failed', async () => {
    const store = await openStore();
    await store.writeSecret('k', text('value'));
    const other = await FilesystemSecretStore.open(root, { key: new Uint8Array(32).fill(7) });
    expect(other.keyLocation).toBe('given');
    expect((await caught(other.readSecret('k'))).code).toBe('store_decrypt_failed');
  });

  it('leaves no temp files after 8 concurrent writers × 50 writes to one key, and the value is one of theirs', async () => {
    const store = await openStore();
    await Promise.all(
      Array.from({ length: 8 }, async (_, writer) => {
        for (let i = 0; i < 50; i++) await store.writeSecret('identity/state.v1.json', text(`${writer}:${i}`));
      }),
    );
    expect(await tempLeftovers()).toEqual([]);
    expect(decode(await store.readSecret('identity/state.v1.json'))).toMatch(/^[0-7]:49$/);
  });

  it('rejects invalid logical keys with invalid_secret_store_key', async () => {
    const store = await openStore();
    for (const key of ['', ' ', '../escape', 'a\\b', 'c:d', '/abs', 'x'.repeat(113)]) {
      expect((await caught(store.writeSecret(key, text('v')))).code).toBe('invalid_secret_store_key');
    }
    await store.writeSecret('x'.repeat(112), text('longest'));
    expect(decode(await store.readSecret('x'.repeat(112)))).toBe('longest');
  });

  it('statSecret changes after a write and is null for a missing key', async () => {
    const store = await openStore();
    expect(await store.statSecret('k')).toBeNull();
    await store.writeSecret('k', text('one'));
    const first = await store.statSecret('k');
    await store.writeSecret('k', text('three'));
    const second = await store.statSecret('k');
    expect(first).not.toBeNull();
    expect(second).not.toEqual(first);
    expect(second?.size).toBe(4 + 12 + 5 + 16);
  });

  it('reports where its key came from: file without a keychain, os with one', async () => {
    expect((await openStore()).keyLocation).toBe('file');
    const other = path.join(dir, 'other');
    const keychain = new MemoryKeychain();
    const store = await FilesystemSecretStore.open(other, { keychain });
    expect(store.keyLocation).toBe('os');
    await store.writeSecret('k', text('v'));
    expect(decode(await (await FilesystemSecretStore.open(other, { keychain })).readSecret('k'))).toBe('v');
  });

  it('refuses a given key that is not 32 bytes', async () => {
    expect((await caught(FilesystemSecretStore.open(root, { key: new Uint8Array(16) }))).code).toBe('invalid_key_material');
  });
});
