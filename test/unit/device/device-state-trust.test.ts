// device.v1.json is sealed (PROTOCOL.md §13): an edit, a swapped CA pin, an older copy, a deletion or an unsealed
// file is device_state_corrupt naming the file and the way out; a file from before sealing is sealed once, in place.
// Real files in temp dirs; the in-memory keychain stands in for the OS one (device-keychain.test.ts has the real one).
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../../main/core/certificate-authority.js';
import { createCertificateSigningRequest } from '../../../main/core/csr.js';
import type { DeviceIdentity } from '../../../main/core/device-identity.js';
import { isPalyraError } from '../../../main/core/errors.js';
import type { PalyraError } from '../../../main/core/errors.js';
import { DeviceAgent } from '../../../main/device/device-agent.js';
import {
  DEVICE_SECRETS_DIR,
  DEVICE_STATE_SEAL_SECRET,
  deviceKeychainAccount,
  DeviceStore,
} from '../../../main/device/device-store.js';
import type { DevicePairingState } from '../../../main/device/device-store.js';
import { FilesystemSecretStore } from '../../../main/store/fs-secret-store.js';
import { KEYCHAIN_SERVICE, MemoryKeychain } from '../../../main/store/keychain.js';
import { tempDir } from '../../helpers/identity.js';

const NOW = Date.UTC(2026, 2, 1, 8, 0, 0);

type Mode = 'file' | 'os';

async function failureOf(action: () => Promise<unknown>): Promise<PalyraError> {
  try {
    await action();
  } catch (error) {
    if (isPalyraError(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

function gatewayOf(ca: CertificateAuthority): NonNullable<DevicePairingState['gateway']> {
  return {
    addresses: ['127.0.0.1:7444'],
    name: 'Office gateway',
    ca_certificate_pem: ca.certificatePem,
    ca_fingerprint: ca.fingerprint,
    ca_pin: ca.spkiPin,
    pinned_by: 'qr',
  };
}

async function pairedState(store: DeviceStore, identity: DeviceIdentity, ca: CertificateAuthority): Promise<DevicePairingState> {
  const { keys } = await store.stageTlsKey();
  const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
  const issued = await ca.issueClientCertificate({ csrDer, deviceId: identity.deviceId, now: NOW });
  await store.commitStagedTlsKey();
  return {
    device_id: identity.deviceId,
    identity_fingerprint: identity.fingerprint,
    paired: true,
    revoked: false,
    revoked_reason: null,
    gateway: gatewayOf(ca),
    certificate_pem: issued.certificatePem,
    certificate_fingerprint: issued.fingerprint,
    cert_expires_at_unix_ms: issued.expiresAtUnixMs,
    cert_issued_at_unix_ms: issued.issuedAtUnixMs,
    client_kind: 'desktop',
    paired_at_unix_ms: NOW,
    updated_at_unix_ms: NOW,
  };
}

describe.each(['file', 'os'] as const)('sealed device state (%s mode)', (mode: Mode) => {
  let root: string;
  let cleanup: () => Promise<void>;
  let keychain: MemoryKeychain;
  let deviceDir: string;
  let store: DeviceStore;
  let identity: DeviceIdentity;
  let state: DevicePairingState;
  let realCa: CertificateAuthority;
  let otherCa: CertificateAuthority;
  const log: Record<string, unknown>[] = [];
  const open = (): Promise<DeviceStore> =>
    DeviceStore.open({ deviceDir, keychain: mode, osKeychain: keychain, log: (line) => log.push(line) });

  beforeEach(async () => {
    ({ dir: root, cleanup } = await tempDir('palyra-device-trust-'));
    keychain = new MemoryKeychain();
    deviceDir = path.join(root, 'device');
    log.length = 0;
    store = await open();
    identity = await store.loadOrCreateIdentity();
    realCa = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
    otherCa = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW, commonName: 'Palyra Gateway CA' }));
    state = await pairedState(store, identity, realCa);
    await store.writeState(state);
  });
  afterEach(async () => {
    await cleanup();
  });

  /** Every way of reading the state refuses the same way, in a fresh process-like store and in the one that wrote. */
  async function expectCorrupt(problem: RegExp): Promise<void> {
    for (const reader of [await open(), store]) {
      const error = await failureOf(() => reader.readState());
      expect(error.code).toBe('device_state_corrupt');
      expect(error.message).toContain(reader.stateFile);
      expect(error.message).toMatch(problem);
      expect(error.message).toContain(`palyra device unpair --device-dir ${deviceDir}${mode === 'file' ? ' --keychain file' : ''}`);
      expect(error.message).toContain('pair again');
      expect((await failureOf(() => reader.loadIdentity())).code).toBe('device_state_corrupt');
      expect((await failureOf(() => reader.updateState((s) => s!))).code).toBe('device_state_corrupt');
    }
  }

  it('reads back what it wrote, and never writes a generation twice', async () => {
    expect(await (await open()).readState()).toEqual(state);
    const before = JSON.parse(await readFile(store.stateFile, 'utf8')) as { generation: number; mac: string };
    await store.updateState((s) => ({ ...s!, updated_at_unix_ms: NOW + 1 }));
    const after = JSON.parse(await readFile(store.stateFile, 'utf8')) as { generation: number; mac: string };
    expect(after.generation).toBe(before.generation + 1);
    expect(after.mac).not.toBe(before.mac);
  });

  it('refuses a file with one flipped byte', async () => {
    const bytes = await readFile(store.stateFile);
    const at = bytes.indexOf('Office gateway');
    bytes[at] = bytes[at]! ^ 0x20;
    await writeFile(store.stateFile, bytes);
    await expectCorrupt(/fails its MAC check/);
  });

  it('refuses a file whose pinned CA was swapped for another CA (self-consistent pin and fingerprint)', async () => {
    const doc = JSON.parse(await readFile(store.stateFile, 'utf8')) as Record<string, unknown>;
    await writeFile(store.stateFile, JSON.stringify({ ...doc, gateway: { ...gatewayOf(otherCa), addresses: ['127.0.0.1:9'] } }, null, 2));
    await expectCorrupt(/fails its MAC check/);
  });

  it('refuses an older copy of the file restored over the latest one', async () => {
    const older = path.join(root, 'device.v1.json.old');
    await copyFile(store.stateFile, older);
    await store.updateState((s) => ({ ...s!, revoked: true, revoked_reason: 'lost laptop', updated_at_unix_ms: NOW + 1 }));
    await copyFile(older, store.stateFile);
    await expectCorrupt(/is at generation 1, behind the 2 recorded in/);
  });

  it('refuses a deleted file while the secrets record a written state, instead of answering "not paired"', async () => {
    await rm(store.stateFile);
    await expectCorrupt(/is missing, although .* records that generation 1 was written/);
  });

  it('refuses an unsealed file (the seal stripped, or a plain state written over it)', async () => {
    const doc = JSON.parse(await readFile(store.stateFile, 'utf8')) as Record<string, unknown>;
    const { generation: _generation, mac: _mac, ...plain } = doc;
    await writeFile(store.stateFile, JSON.stringify(plain));
    await expectCorrupt(/has no MAC/);
  });

  it("refuses another device dir's sealed file copied in", async () => {
    const otherDir = path.join(root, 'other');
    const other = await DeviceStore.open({ deviceDir: otherDir, keychain: mode, osKeychain: keychain });
    const otherIdentity = await other.loadOrCreateIdentity();
    await other.writeState(await pairedState(other, otherIdentity, otherCa));
    await copyFile(other.stateFile, store.stateFile);
    await expectCorrupt(/fails its MAC check/);
  });

  it('refuses a file that is not JSON any more, naming it', async () => {
    await writeFile(store.stateFile, '{"device_id": 7');
    await expectCorrupt(/is not valid JSON/);
  });

  it('wipe (the recovery) works on a corrupt state, and the device can start over', async () => {
    await writeFile(store.stateFile, '{}');
    await (await open()).wipe();
    const fresh = await open();
    expect(await fresh.readState()).toBeNull();
    expect(await fresh.loadIdentity()).toBeNull();
    expect((await fresh.loadOrCreateIdentity()).deviceId).not.toBe(identity.deviceId);
  });

  it('seals a file from before sealing on first read, once, with a notice, and refuses an unsealed one afterwards', async () => {
    const legacyText = `${JSON.stringify(state, null, 2)}\n`;
    await makeLegacy(legacyText);
    const reader = await open();
    expect(await reader.readState()).toEqual(state);
    expect(log).toEqual([expect.objectContaining({ event: 'device.state_sealed', file: reader.stateFile, generation: 1 })]);
    const sealed = JSON.parse(await readFile(reader.stateFile, 'utf8')) as Record<string, unknown>;
    expect(sealed).toMatchObject({ ...state, generation: 1, mac: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(await (await open()).loadIdentity()).toMatchObject({ deviceId: identity.deviceId });
    expect(log).toHaveLength(1);

    // The old plain file again: now a downgrade.
    await writeFile(reader.stateFile, legacyText);
    await expectCorrupt(/has no MAC/);
  });

  it('resumes a migration that crashed after storing the key, and only for the very file it was sealing', async () => {
    const legacyText = `${JSON.stringify(state, null, 2)}\n`;
    await makeLegacy(legacyText);
    const digest = (await import('node:crypto')).createHash('sha256').update(legacyText).digest('hex');
    await setSeal({ key_b64: Buffer.alloc(32, 7).toString('base64').replace(/=+$/, ''), generation: 1, migration_sha256: digest });
    // Another unsealed file than the one being migrated is not accepted.
    await writeFile(store.stateFile, legacyText.replace('Office gateway', 'Evil gateway'));
    expect((await failureOf(async () => (await open()).readState())).code).toBe('device_state_corrupt');
    await writeFile(store.stateFile, legacyText);
    expect(await (await open()).readState()).toEqual(state);
    expect(JSON.parse(await readFile(store.stateFile, 'utf8'))).toMatchObject({ generation: 1 });
    expect(log).toHaveLength(1);
  });

  /** Makes the device dir look as an older version left it: secrets without a state key, an unsealed file. */
  async function makeLegacy(text: string): Promise<void> {
    await setSeal(null);
    await writeFile(store.stateFile, text);
  }

  async function setSeal(seal: { key_b64: string; generation: number; migration_sha256: string | null } | null): Promise<void> {
    if (mode === 'file') {
      const secrets = await FilesystemSecretStore.open(path.join(deviceDir, DEVICE_SECRETS_DIR), { keychain: null });
      if (seal === null) await secrets.deleteSecret(DEVICE_STATE_SEAL_SECRET);
      else await secrets.writeSecret(DEVICE_STATE_SEAL_SECRET, new TextEncoder().encode(JSON.stringify(seal)));
      return;
    }
    const account = await deviceKeychainAccount(deviceDir);
    const record = JSON.parse((await keychain.get(KEYCHAIN_SERVICE, account))!) as Record<string, unknown>;
    const { state_mac_key_b64: _k, state_generation: _g, state_migration_sha256: _m, ...rest } = record;
    const next =
      seal === null ? rest : { ...rest, state_mac_key_b64: seal.key_b64, state_generation: seal.generation, state_migration_sha256: seal.migration_sha256 };
    await keychain.set(KEYCHAIN_SERVICE, account, JSON.stringify(next));
  }

  it('unpair of a corrupt state wipes without contacting the gateway it names, and says why', async () => {
    const doc = JSON.parse(await readFile(store.stateFile, 'utf8')) as Record<string, unknown>;
    await writeFile(store.stateFile, JSON.stringify({ ...doc, paired: false }));
    const agent = await DeviceAgent.open({ deviceDir, keychain: mode, osKeychain: keychain });
    const result = await agent.unpair();
    expect(result).toMatchObject({ device_id: identity.deviceId, revoked_at_gateway: false, gateway_error: { code: 'device_state_corrupt' } });
    expect(await (await open()).readState()).toBeNull();
    expect(await (await open()).loadIdentity()).toBeNull();
  });
});

describe('sealed device state with a locked OS keychain', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir: root, cleanup } = await tempDir('palyra-device-trust-locked-'));
  });
  afterEach(async () => {
    await cleanup();
  });

  it('is keychain_locked (not corrupt) for a store that never read the key, and still checks the seal for one that did', async () => {
    const keychain = new MemoryKeychain();
    const deviceDir = path.join(root, 'device');
    const store = await DeviceStore.open({ deviceDir, keychain: 'os', osKeychain: keychain });
    const identity = await store.loadOrCreateIdentity();
    const ca = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
    const state = await pairedState(store, identity, ca);
    await store.writeState(state);
    keychain.setStatus('locked');

    const fresh = await DeviceStore.open({ deviceDir, keychain: 'os', osKeychain: keychain });
    expect((await failureOf(() => fresh.readState())).code).toBe('keychain_locked');
    expect((await failureOf(() => fresh.loadIdentity())).code).toBe('keychain_locked');
    // Shown while locked, unchecked, by the status display only.
    expect(await fresh.peekState()).toEqual(state);
    const agent = await DeviceAgent.open({ deviceDir, keychain: 'os', osKeychain: keychain });
    expect(await agent.status()).toMatchObject({ keychain: 'locked', device_id: identity.deviceId });

    expect(await store.readState()).toEqual(state);
    const doc = JSON.parse(await readFile(store.stateFile, 'utf8')) as Record<string, unknown>;
    await writeFile(store.stateFile, JSON.stringify({ ...doc, gateway: { ...state.gateway!, addresses: ['127.0.0.1:9'] } }));
    expect((await failureOf(() => store.readState())).code).toBe('device_state_corrupt');
    expect((await failureOf(() => store.writeState(state))).code).toBe('device_state_corrupt');
  });
});
