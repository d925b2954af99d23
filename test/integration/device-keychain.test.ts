// The device store over the real OS keychain (keytar → gnome-keyring Secret Service). `npm test` runs the suite inside
// scripts/with-secret-service.mjs (a private D-Bus session, keyring unlocked, PALYRA_TEST_SECRET_SERVICE=1).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64, toHex } from '../../main/core/bytes.js';
import { DEVICE_SECRETS_DIR, DEVICE_STATE_FILE, deviceKeychainAccount, DeviceStore } from '../../main/device/device-store.js';
import type { Keychain } from '../../main/store/keychain.js';
import { KEYCHAIN_SERVICE, openOsKeychain } from '../../main/store/keychain.js';
import { ensureBuilt, repoRoot } from '../helpers/build.js';
import { inPrivateKeyringSession } from '../helpers/keyring.js';

const enabled = process.env.PALYRA_TEST_SECRET_SERVICE === '1';
if (!enabled) {
  console.warn(
    'device keychain integration tests skipped: PALYRA_TEST_SECRET_SERVICE is not 1; run them with ' +
      '`node scripts/with-secret-service.mjs npx vitest run test/integration/device-keychain.test.ts`',
  );
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else out.push(full);
  }
  return out;
}

describe.skipIf(!enabled)('device store in the OS keychain (gnome-keyring Secret Service via keytar)', () => {
  let keychain: Keychain;
  let dir: string;

  beforeAll(async () => {
    const opened = await openOsKeychain();
    if (opened === null) throw new Error('PALYRA_TEST_SECRET_SERVICE=1 but keytar or the Secret Service is not usable');
    keychain = opened;
    dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-device-keychain-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps identity and TLS keys in the keychain and no secret in any file of the device dir', async () => {
    const deviceDir = path.join(dir, 'device');
    const store = await DeviceStore.open({ deviceDir, keychain: 'os' });
    try {
      expect(await store.keychainState()).toBe('os');
      const identity = await store.loadOrCreateIdentity();
      const { privateKeyPem } = await store.stageTlsKey();
      await store.commitStagedTlsKey();
      const pending = await store.stageTlsKey();
      await store.writeState({
        device_id: identity.deviceId,
        identity_fingerprint: identity.fingerprint,
        paired: false,
        revoked: false,
        revoked_reason: null,
        gateway: null,
        certificate_pem: null,
        certificate_fingerprint: null,
        cert_expires_at_unix_ms: null,
        cert_issued_at_unix_ms: null,
        client_kind: 'cli',
        paired_at_unix_ms: null,
        updated_at_unix_ms: Date.UTC(2026, 2, 1),
      });

      const reopened = await DeviceStore.open({ deviceDir, keychain: 'os' });
      expect((await reopened.loadIdentity())?.deviceId).toBe(identity.deviceId);
      expect(await reopened.loadTlsPrivateKeyPem()).toBe(privateKeyPem);
      expect(await reopened.loadPendingTlsPrivateKeyPem()).toBe(pending.privateKeyPem);

      const seed = identity.exportSeed();
      const record = JSON.parse((await keychain.get(KEYCHAIN_SERVICE, await deviceKeychainAccount(deviceDir)))!) as Record<string, unknown>;
      expect(record.signing_key_b64).toBe(toBase64(seed, false));

      expect(existsSync(path.join(deviceDir, DEVICE_SECRETS_DIR))).toBe(false);
      const files = await filesUnder(deviceDir);
      expect(files.map((f) => path.basename(f))).toEqual([DEVICE_STATE_FILE]);
      const pemBody = (pem: string): string => pem.split('\n').slice(1, 3).join('\n');
      const secrets = [Buffer.from(seed), Buffer.from(toBase64(seed, false)), Buffer.from(toHex(seed))].concat(
        [privateKeyPem, pending.privateKeyPem].map((pem) => Buffer.from(pemBody(pem))),
      );
      for (const file of files) {
        const bytes = await readFile(file);
        for (const secret of secrets) expect(bytes.includes(secret), file).toBe(false);
      }
    } finally {
      await store.wipe();
    }
    expect(await keychain.get(KEYCHAIN_SERVICE, await deviceKeychainAccount(deviceDir))).toBeNull();
    expect(await readdir(deviceDir)).toEqual([]);
  });

  it('gives two device dirs two keychain entries and two identities', async () => {
    const a = await DeviceStore.open({ deviceDir: path.join(dir, 'a'), keychain: 'os' });
    const b = await DeviceStore.open({ deviceDir: path.join(dir, 'b'), keychain: 'os' });
    try {
      const [ia, ib] = [await a.loadOrCreateIdentity(), await b.loadOrCreateIdentity()];
      expect(ia.deviceId).not.toBe(ib.deviceId);
      expect((await (await DeviceStore.open({ deviceDir: path.join(dir, 'a'), keychain: 'os' })).loadIdentity())?.deviceId).toBe(ia.deviceId);
    } finally {
      await a.wipe();
      await b.wipe();
    }
  });

  describe('locked', () => {
    beforeAll(async () => {
      await ensureDeviceStoreBuilt();
    }, 180_000);

    it('reports keychain_locked (never null), creates no identity while locked, and loads the same one after unlock', async () => {
      const home = await mkdtemp(path.join(os.tmpdir(), 'palyra-device-locked-'));
      try {
        const deviceDir = path.join(home, 'device');
        await mkdir(path.join(home, 'run'), { recursive: true, mode: 0o700 });
        // Lock the login collection over D-Bus as a screen lock would; unlock by restarting the daemon with the password.
        const script = [
          'set -e',
          'echo -n palyra-locked-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1',
          '"$NODE" --input-type=module -e "$PROBE_JS" create',
          'dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets ' +
            'org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null',
          '"$NODE" --input-type=module -e "$PROBE_JS" locked',
          'echo -n palyra-locked-test | gnome-keyring-daemon --replace --unlock --components=secrets >/dev/null 2>&1',
          '"$NODE" --input-type=module -e "$PROBE_JS" create',
        ].join('\n');
        const out = await inPrivateKeyringSession(home, script, {
          ...process.env,
          NODE: process.execPath,
          PROBE_JS: PROBE,
          DEVICE_STORE_MODULE: pathToFileURL(path.join(repoRoot, 'dist/main/device/device-store.js')).href,
          DEVICE_DIR: deviceDir,
        });
        const [created, locked, unlocked] = out
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(created).toMatchObject({ state: 'os', deviceId: expect.stringMatching(/^[0-9A-Z]{26}$/) });
        expect(locked).toMatchObject({
          state: { value: 'locked' },
          load: { code: 'keychain_locked' },
          loadOrCreate: { code: 'keychain_locked' },
          tls: { code: 'keychain_locked' },
          stage: { code: 'keychain_locked' },
          // keytar's delete answers false for a locked collection; the store must not take that as "gone".
          wipe: { code: 'keychain_locked' },
          secretsDir: false,
        });
        // Same identity and the same TLS key after unlock: nothing was generated, overwritten or deleted while locked.
        expect(unlocked).toEqual(created);
        expect((await stat(deviceDir)).mode & 0o777).toBe(0o700);
        expect(existsSync(path.join(deviceDir, DEVICE_SECRETS_DIR))).toBe(false);
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    }, 60_000);
  });
});

/**
 * One JSON line per run. create: loads or creates the identity (and a committed TLS key the first time), prints
 * {state, deviceId, tlsKeySha256}. locked: what each call answers, as {value} or {code}, and whether a file store appeared.
 */
const PROBE = `
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
const mode = process.argv[1];
const { DeviceStore } = await import(process.env.DEVICE_STORE_MODULE);
const outcome = async (action) => {
  try {
    return { value: await action() };
  } catch (error) {
    return { code: error?.code ?? 'thrown', message: String(error?.message ?? error) };
  }
};
const store = await DeviceStore.open({ deviceDir: process.env.DEVICE_DIR, keychain: 'os' });
const digest = (pem) => (pem === null ? null : createHash('sha256').update(pem).digest('hex'));
let result;
if (mode === 'create') {
  const identity = await store.loadOrCreateIdentity();
  if ((await store.loadTlsPrivateKeyPem()) === null) {
    await store.stageTlsKey();
    await store.commitStagedTlsKey();
  }
  result = { state: await store.keychainState(), deviceId: identity.deviceId, tlsKeySha256: digest(await store.loadTlsPrivateKeyPem()) };
} else {
  result = {
    state: await outcome(() => store.keychainState()),
    load: await outcome(async () => (await store.loadIdentity())?.deviceId ?? null),
    loadOrCreate: await outcome(async () => (await store.loadOrCreateIdentity()).deviceId),
    tls: await outcome(async () => digest(await store.loadTlsPrivateKeyPem())),
    stage: await outcome(async () => digest((await store.stageTlsKey()).privateKeyPem)),
    wipe: await outcome(() => store.wipe()),
    secretsDir: existsSync(path.join(process.env.DEVICE_DIR, 'secrets')),
  };
}
process.stdout.write(JSON.stringify(result) + '\\n');
`;



function ensureDeviceStoreBuilt(): Promise<void> {
  return ensureBuilt(['main/core', 'main/store', 'main/device']);
}
