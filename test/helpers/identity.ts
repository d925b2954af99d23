// Test helpers: temp state directories and managers over the real filesystem store.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { deviceIdFromPublicKey } from '../../main/core/ids.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import { IdentityManager } from '../../main/gateway/identity-manager.js';
import type { IdentityManagerOptions, VerifiedDevice } from '../../main/gateway/identity-manager.js';
import { FilesystemSecretStore } from '../../main/store/fs-secret-store.js';
import { resolveStoreKey } from '../../main/store/store-key.js';

export async function tempDir(prefix = 'palyra-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A manager on a real encrypted state directory (key file, no keychain), journal enabled. */
export async function openFsManager(dir: string, extra: Partial<IdentityManagerOptions> = {}): Promise<IdentityManager> {
  const { key } = await resolveStoreKey(dir, null);
  const store = await FilesystemSecretStore.open(dir, { key });
  return IdentityManager.open({ store, stateDir: dir, journalKey: key, ...extra });
}

/** A fake verified device with a random identity key and its derived id. */
export function randomVerifiedDevice(kind: VerifiedDevice['clientKind'] = 'desktop'): VerifiedDevice {
  const pub = globalThis.crypto.getRandomValues(new Uint8Array(32));
  return {
    deviceId: deviceIdFromPublicKey(pub),
    clientKind: kind,
    identityFingerprint: Buffer.from(pub).toString('hex').padEnd(64, '0').slice(0, 64),
    signingPublicKeyHex: Buffer.from(pub).toString('hex'),
  };
}

export async function csrFor(deviceId: string): Promise<Uint8Array> {
  const keys = await generateP256KeyPair();
  return createCertificateSigningRequest({ keys, deviceId });
}
