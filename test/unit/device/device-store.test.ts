// The device's local storage: identity, TLS keys and pairing state in a device dir, with secrets in a keychain
// (here the in-memory one) or in the encrypted file store; real files in temp dirs, real child processes.
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toBase64, toHex } from '../../../main/core/bytes.js';
import { CertificateAuthority, createCertificateAuthority } from '../../../main/core/certificate-authority.js';
import { createCertificateSigningRequest } from '../../../main/core/csr.js';
import type { DeviceIdentity } from '../../../main/core/device-identity.js';
import { isPalyraError } from '../../../main/core/errors.js';
import type { ErrorCode } from '../../../main/core/errors.js';
import { importPrivateKeyPem } from '../../../main/core/x509-keys.js';
import {
  DEVICE_IDENTITY_SECRET,
  DEVICE_SECRETS_DIR,
  DEVICE_STATE_FILE,
  DEVICE_STATE_SEAL_SECRET,
  deviceKeychainAccount,
  DeviceStore,
} from '../../../main/device/device-store.js';
import type { DevicePairingState } from '../../../main/device/device-store.js';
import { TEMP_INFIX } from '../../../main/store/atomic-file.js';
import { FilesystemSecretStore } from '../../../main/store/fs-secret-store.js';
import { KEYCHAIN_SERVICE, MemoryKeychain } from '../../../main/store/keychain.js';
import { STORE_KEY_FILE } from '../../../main/store/store-key.js';
import { ensureBuilt, repoRoot } from '../../helpers/build.js';
import { tempDir } from '../../helpers/identity.js';

const NOW = Date.UTC(2026, 2, 1, 8, 0, 0);

async function codeOf(action: () => Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await action();
    return 'resolved';
  } catch (error) {
    if (isPalyraError(error)) return error.code;
    throw error;
  }
}

async function errorOf(action: () => Promise<unknown>): Promise<Error> {
  try {
    await action();
  } catch (error) {
    if (error instanceof Error) return error;
  }
  throw new Error('expected a rejection');
}

/** Every regular file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else out.push(full);
  }
  return out;
}

/** The spellings a leaked seed could take in a file. */
function seedSpellings(identity: DeviceIdentity): Buffer[] {
  const seed = identity.exportSeed();
  return [Buffer.from(seed), Buffer.from(toBase64(seed, false)), Buffer.from(toHex(seed))];
}

function unpairedState(identity: DeviceIdentity): DevicePairingState {
  return {
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
    client_kind: 'desktop',
    paired_at_unix_ms: null,
    updated_at_unix_ms: NOW,
  };
}

/** A paired state whose certificate a real CA issued for `keys` (the staged TLS key). */
async function pairedState(identity: DeviceIdentity, keys: CryptoKeyPair): Promise<DevicePairingState> {
  const ca = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
  const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
  const issued = await ca.issueClientCertificate({ csrDer, deviceId: identity.deviceId, now: NOW });
  return {
    ...unpairedState(identity),
    paired: true,
    gateway: {
      addresses: ['127.0.0.1:7444', 'gateway.local:7444'],
      name: 'Office gateway',
      ca_certificate_pem: ca.certificatePem,
      ca_fingerprint: ca.fingerprint,
      ca_pin: ca.spkiPin,
      pinned_by: 'qr',
    },
    certificate_pem: issued.certificatePem,
    certificate_fingerprint: issued.fingerprint,
    cert_expires_at_unix_ms: issued.expiresAtUnixMs,
    cert_issued_at_unix_ms: issued.issuedAtUnixMs,
    paired_at_unix_ms: NOW,
  };
}

type Mode = 'file' | 'os';
const openIn = (deviceDir: string, mode: Mode, keychain = new MemoryKeychain()): Promise<DeviceStore> =>
  mode === 'file' ? DeviceStore.open({ deviceDir, keychain: 'file' }) : DeviceStore.open({ deviceDir, keychain: 'os', osKeychain: keychain });

describe('DeviceStore', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir: root, cleanup } = await tempDir('palyra-device-store-'));
  });
  afterEach(async () => {
    await cleanup();
  });

  describe('file mode', () => {
    it('keeps one identity across re-opens, and two device dirs are two identities', async () => {
      const a = path.join(root, 'a');
      const first = await (await openIn(a, 'file')).loadOrCreateIdentity();
      const reopened = await openIn(a, 'file');
      expect((await reopened.loadIdentity())?.deviceId).toBe(first.deviceId);
      expect((await reopened.loadOrCreateIdentity()).fingerprint).toBe(first.fingerprint);

      const other = await (await openIn(path.join(root, 'b'), 'file')).loadOrCreateIdentity();
      expect(other.deviceId).not.toBe(first.deviceId);
    });

    it('answers null before an identity exists, without creating any file', async () => {
      const dir = path.join(root, 'fresh');
      const store = await openIn(dir, 'file');
      expect(await store.loadIdentity()).toBeNull();
      expect(await store.loadTlsPrivateKeyPem()).toBeNull();
      expect(await store.loadPendingTlsPrivateKeyPem()).toBeNull();
      expect(await readdir(dir)).toEqual([]);
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
    });

    it('stores the identity encrypted in secrets/ under device/identity.json, with a key file and no keychain', async () => {
      const dir = path.join(root, 'layout');
      const identity = await (await openIn(dir, 'file')).loadOrCreateIdentity();
      const secretsDir = path.join(dir, DEVICE_SECRETS_DIR);
      expect((await stat(path.join(secretsDir, STORE_KEY_FILE))).mode & 0o777).toBe(0o600);
      const store = await FilesystemSecretStore.open(secretsDir, { keychain: null });
      expect(new TextDecoder().decode(await store.readSecret(DEVICE_IDENTITY_SECRET))).toBe(identity.serialize());
      for (const file of await filesUnder(dir)) {
        if (file.endsWith(STORE_KEY_FILE)) continue;
        const bytes = await readFile(file);
        for (const spelling of seedSpellings(identity)) expect(bytes.includes(spelling), file).toBe(false);
      }
    });

    it('never consults the OS keychain, even a locked one', async () => {
      const keychain = new MemoryKeychain('locked');
      const store = await DeviceStore.open({ deviceDir: path.join(root, 'f'), keychain: 'file', osKeychain: keychain });
      expect(await store.keychainState()).toBe('file');
      await store.loadOrCreateIdentity();
      keychain.setStatus('available');
      expect(keychain.size).toBe(0);
    });
  });

  describe('os mode (one keychain entry per device dir)', () => {
    it('keeps the secrets as JSON under device:<realpath of the dir> and nothing secret in the dir', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'os');
      const store = await openIn(dir, 'os', keychain);
      const identity = await store.loadOrCreateIdentity();
      const { privateKeyPem } = await store.stageTlsKey();
      await store.commitStagedTlsKey();
      await store.writeState(unpairedState(identity));

      const account = await deviceKeychainAccount(dir);
      expect(account).toBe(`device:${dir}`);
      const record = JSON.parse((await keychain.get(KEYCHAIN_SERVICE, account))!) as Record<string, unknown>;
      expect(record).toEqual({
        device_id: identity.deviceId,
        signing_key_b64: toBase64(identity.exportSeed(), false),
        tls_private_key_pem: privateKeyPem,
        pending_tls_private_key_pem: null,
        // The state secret (32 bytes, unpadded base64) and the generation of the one state written so far.
        state_mac_key_b64: expect.stringMatching(/^[A-Za-z0-9+/]{43}$/),
        state_generation: 1,
        state_migration_sha256: null,
      });
      expect(keychain.size).toBe(1);
      expect(await readdir(dir)).toEqual([DEVICE_STATE_FILE]);
      expect((await (await openIn(dir, 'os', keychain)).loadIdentity())?.deviceId).toBe(identity.deviceId);
    });

    it('gives two device dirs two identities in one keychain, and a symlinked dir the same one', async () => {
      const keychain = new MemoryKeychain();
      const a = await (await openIn(path.join(root, 'a'), 'os', keychain)).loadOrCreateIdentity();
      const b = await (await openIn(path.join(root, 'b'), 'os', keychain)).loadOrCreateIdentity();
      expect(a.deviceId).not.toBe(b.deviceId);
      await symlink(path.join(root, 'a'), path.join(root, 'a-link'));
      expect((await (await openIn(path.join(root, 'a-link'), 'os', keychain)).loadIdentity())?.deviceId).toBe(a.deviceId);
      expect(keychain.size).toBe(2);
    });

    it('reports keychain state os, locked, and refuses a missing keychain with a hint to use --keychain file', async () => {
      const keychain = new MemoryKeychain();
      const store = await openIn(path.join(root, 'k'), 'os', keychain);
      expect(await store.keychainState()).toBe('os');
      keychain.setStatus('locked');
      expect(await store.keychainState()).toBe('locked');

      const none = await DeviceStore.open({ deviceDir: path.join(root, 'none'), keychain: 'os', osKeychain: null });
      const error = await errorOf(() => none.keychainState());
      expect(isPalyraError(error, 'keychain_unavailable')).toBe(true);
      expect(error.message).toContain('--keychain file');
      expect(await codeOf(() => none.loadOrCreateIdentity())).toBe('keychain_unavailable');
      expect(await readdir(path.join(root, 'none'))).toEqual([]);

      const broken = await openIn(path.join(root, 'broken'), 'os', new MemoryKeychain('unavailable'));
      expect(await codeOf(() => broken.keychainState())).toBe('keychain_unavailable');
      expect((await errorOf(() => broken.loadIdentity())).message).toContain('--keychain file');
    });

    it('while locked answers keychain_locked (never null), creates nothing, and after unlock loads the original', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'locked');
      const original = await (await openIn(dir, 'os', keychain)).loadOrCreateIdentity();
      keychain.setStatus('locked');
      const store = await openIn(dir, 'os', keychain);
      expect(await codeOf(() => store.loadIdentity())).toBe('keychain_locked');
      expect(await codeOf(() => store.loadOrCreateIdentity())).toBe('keychain_locked');
      expect(await codeOf(() => store.loadTlsPrivateKeyPem())).toBe('keychain_locked');
      expect(await codeOf(() => store.stageTlsKey())).toBe('keychain_locked');
      expect(await codeOf(() => store.wipe())).toBe('keychain_locked');
      keychain.setStatus('available');
      expect(keychain.size).toBe(1);
      expect((await store.loadOrCreateIdentity()).deviceId).toBe(original.deviceId);
    });

    it('does not generate an identity when the keychain is locked before the first one exists', async () => {
      const keychain = new MemoryKeychain('locked');
      const store = await openIn(path.join(root, 'first-locked'), 'os', keychain);
      expect(await codeOf(() => store.loadOrCreateIdentity())).toBe('keychain_locked');
      keychain.setStatus('available');
      expect(keychain.size).toBe(0);
      expect(await store.loadIdentity()).toBeNull();
    });

    it('keeps writing the non-secret state while the keychain is locked', async () => {
      const keychain = new MemoryKeychain();
      const store = await openIn(path.join(root, 'state-locked'), 'os', keychain);
      const identity = await store.loadOrCreateIdentity();
      keychain.setStatus('locked');
      await store.writeState({ ...unpairedState(identity), revoked: true, revoked_reason: 'operator' });
      expect((await store.readState())?.revoked_reason).toBe('operator');
    });

    it('reports a corrupt keychain entry as state_corrupt without quoting it', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'corrupt');
      await mkdir(dir);
      await keychain.set(KEYCHAIN_SERVICE, await deviceKeychainAccount(dir), '{"signing_key_b64":"SECRETSECRETSECRET');
      const error = await errorOf(async () => (await openIn(dir, 'os', keychain)).loadOrCreateIdentity());
      expect(isPalyraError(error, 'state_corrupt')).toBe(true);
      let chain: unknown = error;
      while (chain instanceof Error) {
        expect(chain.message).not.toContain('SECRET');
        chain = chain.cause;
      }
      expect(keychain.size).toBe(1);
    });
  });

  describe.each(['file', 'os'] as const)('TLS keys (%s mode)', (mode) => {
    it('keeps a staged key across a re-open, and commit makes it current', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'tls');
      const store = await openIn(dir, mode, keychain);
      const identity = await store.loadOrCreateIdentity();
      const staged = await store.stageTlsKey();
      expect(staged.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(staged.keys.privateKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });

      const afterCrash = await openIn(dir, mode, keychain);
      expect(await afterCrash.loadPendingTlsPrivateKeyPem()).toBe(staged.privateKeyPem);
      expect(await afterCrash.loadTlsPrivateKeyPem()).toBeNull();
      // The pending key still signs a CSR the CA accepts: it is the key, not a copy of something else.
      const keys = await importPrivateKeyPem((await afterCrash.loadPendingTlsPrivateKeyPem())!);
      await afterCrash.writeState(await pairedState(identity, keys));
      await afterCrash.commitStagedTlsKey();

      const reopened = await openIn(dir, mode, keychain);
      expect(await reopened.loadTlsPrivateKeyPem()).toBe(staged.privateKeyPem);
      expect(await reopened.loadPendingTlsPrivateKeyPem()).toBeNull();
      expect((await reopened.loadIdentity())?.deviceId).toBe(identity.deviceId);

      const renewal = await reopened.stageTlsKey();
      expect(renewal.privateKeyPem).not.toBe(staged.privateKeyPem);
      expect(await reopened.loadTlsPrivateKeyPem()).toBe(staged.privateKeyPem);
      expect(await reopened.loadPendingTlsPrivateKeyPem()).toBe(renewal.privateKeyPem);
    });

    it('refuses to commit when nothing is staged and to stage before an identity exists', async () => {
      const store = await openIn(path.join(root, 'empty'), mode);
      expect(await codeOf(() => store.stageTlsKey())).toBe('device_identity_missing');
      await store.loadOrCreateIdentity();
      expect(await codeOf(() => store.commitStagedTlsKey())).toBe('secret_not_found');
    });

    it('wipe removes identity, keys and state, and the next identity is a new one', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'wipe');
      const store = await openIn(dir, mode, keychain);
      const identity = await store.loadOrCreateIdentity();
      await store.stageTlsKey();
      await store.commitStagedTlsKey();
      await store.stageTlsKey();
      await store.writeState(unpairedState(identity));

      await store.wipe();
      expect(await readdir(dir)).toEqual([]);
      expect(keychain.size).toBe(0);
      const reopened = await openIn(dir, mode, keychain);
      expect(await reopened.loadIdentity()).toBeNull();
      expect(await reopened.readState()).toBeNull();
      expect(await reopened.loadTlsPrivateKeyPem()).toBeNull();
      expect((await store.loadOrCreateIdentity()).deviceId).not.toBe(identity.deviceId);
      await store.wipe();
      await store.wipe();
      expect(await readdir(dir)).toEqual([]);
    });

    it('creates one identity when many callers race in one process', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'race');
      const stores = await Promise.all([0, 1, 2].map(() => openIn(dir, mode, keychain)));
      const ids = await Promise.all(Array.from({ length: 9 }, (_, i) => stores[i % 3]!.loadOrCreateIdentity().then((id) => id.deviceId)));
      expect(new Set(ids).size).toBe(1);
    });
  });

  describe('pairing state', () => {
    it('round-trips through device.v1.json, 0600 in a 0700 dir, replaced atomically', async () => {
      const dir = path.join(root, 'state');
      const store = await openIn(dir, 'file');
      expect(await store.readState()).toBeNull();
      const identity = await store.loadOrCreateIdentity();
      const { keys } = await store.stageTlsKey();
      const state = await pairedState(identity, keys);

      await store.writeState(unpairedState(identity));
      const before = await stat(store.stateFile);
      await store.writeState(state);
      const after = await stat(store.stateFile);
      // A new inode: the file was renamed into place, never rewritten where a reader could see half of it.
      expect(after.ino).not.toBe(before.ino);
      expect(after.mode & 0o777).toBe(0o600);
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      expect((await readdir(dir)).filter((name) => name.includes(TEMP_INFIX))).toEqual([]);

      expect(await (await openIn(dir, 'file')).readState()).toEqual(state);
      // Readable JSON: the state's own members, then the seal (generation 2 after two writes).
      expect(JSON.parse(await readFile(store.stateFile, 'utf8'))).toEqual({ ...state, generation: 2, mac: expect.stringMatching(/^[0-9a-f]{64}$/) });
    });

    it('updateState reads, changes and writes under the lock', async () => {
      const store = await openIn(path.join(root, 'update'), 'file');
      const identity = await store.loadOrCreateIdentity();
      await store.updateState((current) => current ?? unpairedState(identity));
      const next = await store.updateState((current) => ({ ...current!, revoked: true, revoked_reason: 'lost laptop', updated_at_unix_ms: NOW + 1 }));
      expect(next.revoked_reason).toBe('lost laptop');
      expect(await store.readState()).toEqual(next);
    });

    it('refuses invalid states on write and names the file when one on disk is corrupt', async () => {
      const store = await openIn(path.join(root, 'invalid'), 'file');
      const identity = await store.loadOrCreateIdentity();
      const good = unpairedState(identity);
      for (const bad of [
        { ...good, device_id: 'not-an-id' },
        { ...good, client_kind: 'phone' },
        { ...good, updated_at_unix_ms: -1 },
        { ...good, certificate_fingerprint: 'a'.repeat(64) },
        { ...good, gateway: { addresses: [], name: null, ca_certificate_pem: '', ca_fingerprint: '', ca_pin: '', pinned_by: 'qr' } },
      ]) {
        expect(await codeOf(() => store.writeState(bad as DevicePairingState))).toBe('state_corrupt');
      }
      const { keys } = await store.stageTlsKey();
      const paired = await pairedState(identity, keys);
      expect(await codeOf(() => store.writeState({ ...paired, certificate_fingerprint: paired.gateway!.ca_fingerprint }))).toBe('state_corrupt');
      expect(await store.readState()).toBeNull();

      await writeFile(store.stateFile, '{"device_id": 7');
      const error = await errorOf(() => store.readState());
      expect(isPalyraError(error, 'device_state_corrupt')).toBe(true);
      expect(error.message).toContain(store.stateFile);
    });

    it('refuses to write the state of another identity', async () => {
      const store = await openIn(path.join(root, 'mine'), 'file');
      await store.loadOrCreateIdentity();
      const stranger = await (await openIn(path.join(root, 'theirs'), 'file')).loadOrCreateIdentity();
      expect(await codeOf(() => store.writeState(unpairedState(stranger)))).toBe('device_id_mismatch');
    });

    it('reports device_id_mismatch naming both ids when an unsealed device.v1.json of another identity is migrated', async () => {
      const dir = path.join(root, 'mismatch');
      const identity = await (await openIn(dir, 'file')).loadOrCreateIdentity();
      const stranger = await (await openIn(path.join(root, 'stranger'), 'file')).loadOrCreateIdentity();
      await writeFile(path.join(dir, DEVICE_STATE_FILE), JSON.stringify(unpairedState(stranger)));
      // Sealed device dirs refuse the unsealed file outright; one from before sealing checks whose it is first.
      expect(await codeOf(async () => (await openIn(dir, 'file')).loadIdentity())).toBe('device_state_corrupt');
      await (await FilesystemSecretStore.open(path.join(dir, DEVICE_SECRETS_DIR), { keychain: null })).deleteSecret(DEVICE_STATE_SEAL_SECRET);
      const error = await errorOf(async () => (await openIn(dir, 'file')).loadOrCreateIdentity());
      expect(isPalyraError(error, 'device_id_mismatch')).toBe(true);
      expect(error.message).toContain(identity.deviceId);
      expect(error.message).toContain(stranger.deviceId);
    });

    it('reports device_identity_missing, and creates none, when the state exists but the identity does not', async () => {
      const keychain = new MemoryKeychain();
      const dir = path.join(root, 'other-mode');
      const osStore = await openIn(dir, 'os', keychain);
      await osStore.writeState(unpairedState(await osStore.loadOrCreateIdentity()));
      const fileStore = await openIn(dir, 'file');
      const error = await errorOf(() => fileStore.loadOrCreateIdentity());
      expect(isPalyraError(error, 'device_identity_missing')).toBe(true);
      expect(error.message).toContain('--keychain os');
      expect(await codeOf(() => fileStore.loadIdentity())).toBe('device_identity_missing');
      expect(await readdir(dir)).toEqual([DEVICE_STATE_FILE]);
    });
  });

  describe('several processes', () => {
    beforeAll(async () => {
      await ensureDeviceStoreBuilt();
    }, 180_000);

    it('4 processes racing loadOrCreateIdentity on one device dir (file mode) end with one identity', async () => {
      const dir = path.join(root, 'shared');
      const ids = await raceChildren(dir, 4);
      expect(ids).toHaveLength(4);
      expect(new Set(ids).size).toBe(1);
      expect((await (await openIn(dir, 'file')).loadIdentity())?.deviceId).toBe(ids[0]);
    }, 60_000);
  });
});

// --- child processes over the compiled code in dist/ ------------------------------------------------------------

const deviceStoreModule = pathToFileURL(path.join(repoRoot, 'dist/main/device/device-store.js')).href;

function ensureDeviceStoreBuilt(): Promise<void> {
  return ensureBuilt(['main/core', 'main/store', 'main/device']);
}

/** Opens the store, says "ready", waits for the start line so all racers go together, then loads or creates. */
const RACER = `
const { DeviceStore } = await import(process.env.DEVICE_STORE_MODULE);
const store = await DeviceStore.open({ deviceDir: process.env.DEVICE_DIR, keychain: 'file' });
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy();
const identity = await store.loadOrCreateIdentity();
process.stdout.write('identity ' + identity.deviceId + '\\n');
`;

async function raceChildren(dir: string, count: number): Promise<string[]> {
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--input-type=module', '-e', RACER], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, DEVICE_STORE_MODULE: deviceStoreModule, DEVICE_DIR: dir },
    }),
  );
  const outputs = children.map((child) => {
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('ready\n')) resolve();
      });
    });
    const done = new Promise<string>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve(out);
        else reject(new Error(`racer exited ${code}: ${err}`));
      });
    });
    return { ready, done };
  });
  await Promise.race([Promise.all(outputs.map((o) => o.ready)), Promise.all(outputs.map((o) => o.done))]);
  for (const child of children) child.stdin.write('go\n');
  const texts = await Promise.all(outputs.map((o) => o.done));
  return texts.map((text) => /^identity (\S+)$/m.exec(text)?.[1] ?? `no identity in: ${text}`);
}
