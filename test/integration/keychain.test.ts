// The OS keychain through keytar, against a real gnome-keyring Secret Service. `npm test` runs the suite inside
// scripts/with-secret-service.mjs (a private D-Bus session, keyring unlocked, PALYRA_TEST_SECRET_SERVICE=1).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64 } from '../../main/core/bytes.js';
import { FilesystemSecretStore } from '../../main/store/fs-secret-store.js';
import type { Keychain } from '../../main/store/keychain.js';
import { KEYCHAIN_SERVICE, openOsKeychain } from '../../main/store/keychain.js';
import { forgetKeychainStoreKey, resolveStoreKey, STORE_KEY_FILE, storeKeyAccount } from '../../main/store/store-key.js';
import { ensureStoreBuilt, storeFixture } from '../fixtures/store/ensure-store-built.js';
import { inPrivateKeyringSession } from '../helpers/keyring.js';

const enabled = process.env.PALYRA_TEST_SECRET_SERVICE === '1';
if (!enabled) {
  console.warn(
    'keychain integration tests skipped: PALYRA_TEST_SECRET_SERVICE is not 1; run them with ' +
      '`node scripts/with-secret-service.mjs npx vitest run test/integration/keychain.test.ts`',
  );
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');


describe.skipIf(!enabled)('OS keychain (gnome-keyring Secret Service via keytar)', () => {
  let keychain: Keychain;
  let dir: string;
  const accounts: string[] = [];
  const roots: string[] = [];

  beforeAll(async () => {
    const opened = await openOsKeychain();
    if (opened === null) throw new Error('PALYRA_TEST_SECRET_SERVICE=1 but keytar or the Secret Service is not usable');
    keychain = opened;
    dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-keychain-'));
  });

  afterAll(async () => {
    // The session keyring persists in the user's keyring file: leave nothing behind.
    for (const account of accounts) await keychain.delete(KEYCHAIN_SERVICE, account);
    for (const root of roots) await forgetKeychainStoreKey(root, keychain);
    await rm(dir, { recursive: true, force: true });
  });

  const uniqueAccount = (): string => {
    const account = `test:${randomBytes(8).toString('hex')}`;
    accounts.push(account);
    return account;
  };

  it('opens a real OS keychain that reports itself available', async () => {
    expect(keychain.kind).toBe('os');
    expect(await keychain.status()).toBe('available');
  });

  it('round-trips set, get and delete, and answers null for a missing entry', async () => {
    const account = uniqueAccount();
    expect(await keychain.get(KEYCHAIN_SERVICE, account)).toBeNull();
    await keychain.set(KEYCHAIN_SERVICE, account, 'first');
    await keychain.set(KEYCHAIN_SERVICE, account, 'second');
    expect(await keychain.get(KEYCHAIN_SERVICE, account)).toBe('second');
    expect(await keychain.delete(KEYCHAIN_SERVICE, account)).toBe(true);
    expect(await keychain.get(KEYCHAIN_SERVICE, account)).toBeNull();
    expect(await keychain.delete(KEYCHAIN_SERVICE, account)).toBe(false);
  });

  it('keeps the store key in the keychain and writes no .store-key.v1 file', async () => {
    const root = path.join(dir, 'state-os');
    roots.push(root);
    const first = await resolveStoreKey(root, keychain);
    expect(first.location).toBe('os');
    expect(existsSync(path.join(root, STORE_KEY_FILE))).toBe(false);
    const again = await resolveStoreKey(root, keychain);
    expect(hex(again.key)).toBe(hex(first.key));

    const store = await FilesystemSecretStore.open(root, { keychain });
    expect(store.keyLocation).toBe('os');
    await store.writeSecret('identity/state.v1.json', new TextEncoder().encode('{"generation":1}'));
    const reopened = await FilesystemSecretStore.open(root, { keychain });
    expect(new TextDecoder().decode(await reopened.readSecret('identity/state.v1.json'))).toBe('{"generation":1}');
  });

  it('stores the key as base64 under the store-key:<root> account', async () => {
    const root = path.join(dir, 'state-b64');
    roots.push(root);
    const { key } = await resolveStoreKey(root, keychain);
    expect(await storeKeyAccount(root)).toBe(`store-key:${await realpath(root)}`);
    const accountValue = await keychain.get(KEYCHAIN_SERVICE, await storeKeyAccount(root));
    expect(accountValue).toBe(toBase64(key));
  });

  describe('locked', () => {
    beforeAll(async () => {
      await ensureStoreBuilt();
    }, 120_000);

    it('reports keychain_locked (never null) and creates no new key while locked; the old key survives unlock', async () => {
      const home = await mkdtemp(path.join(os.tmpdir(), 'palyra-locked-keyring-'));
      try {
        const root = path.join(home, 'state');
        await mkdir(path.join(home, 'run'), { recursive: true, mode: 0o700 });
        const probe = storeFixture('keychain-probe.mjs');
        // Lock the login collection over D-Bus as a screen lock would; unlock by restarting the daemon with the password.
        const script = [
          'set -e',
          'echo -n palyra-locked-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1',
          'node "$PROBE" create "$ROOT"',
          'dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets ' +
            'org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null',
          'node "$PROBE" locked "$ROOT"',
          'echo -n palyra-locked-test | gnome-keyring-daemon --replace --unlock --components=secrets >/dev/null 2>&1',
          'node "$PROBE" create "$ROOT"',
        ].join('\n');
        const out = await inPrivateKeyringSession(home, script, { ...process.env, PROBE: probe, ROOT: root });
        const [created, locked, unlocked] = out
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(created).toMatchObject({ status: 'available', location: 'os' });
        expect(locked).toMatchObject({
          status: 'locked',
          // keytar alone cannot tell a locked keyring from a missing entry: this is why the keychain probes.
          rawGet: { value: null },
          get: { code: 'keychain_locked' },
          resolve: { code: 'keychain_locked' },
          keyFile: false,
        });
        expect(unlocked).toMatchObject({ status: 'available', location: 'os', key: created?.key });
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    }, 60_000);
  });
});
