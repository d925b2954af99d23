// `palyra devices list|revoke|remove|unban` as real processes, on devices paired through GatewayAdmin in the test.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newUlid } from '../../main/core/ids.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import type { VerifiedDevice } from '../../main/gateway/identity-manager.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import { csrFor, randomVerifiedDevice, tempDir } from '../helpers/identity.js';

const DEVICE_KEYS = [
  'device_id',
  'client_kind',
  'status',
  'identity_fingerprint',
  'certificate_fingerprint',
  'cert_expires_at_unix_ms',
  'last_seen_at_unix_ms',
  'capabilities',
  'roles',
  'name',
  'platform',
  'method',
  'paired_at_unix_ms',
  'last_address',
];

interface DeviceJson {
  device_id: string;
  client_kind: string | null;
  status: 'paired' | 'revoked';
  identity_fingerprint: string | null;
  certificate_fingerprint: string | null;
  cert_expires_at_unix_ms: number | null;
  last_seen_at_unix_ms: number | null;
  capabilities: string[];
  roles: string[];
}

interface ListJson {
  devices: DeviceJson[];
  revoked_certificate_fingerprints: string[];
}

const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A state directory with `count` devices paired the way a finished pairing leaves them. */
async function stateWithDevices(count: number): Promise<{ stateDir: string; devices: { verified: VerifiedDevice; certificateFingerprint: string; expiresAt: number }[] }> {
  const { dir, cleanup } = await tempDir('palyra-cli-devices-');
  cleanups.push(cleanup);
  const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
  const devices = [];
  for (let i = 0; i < count; i++) {
    const verified = randomVerifiedDevice(i % 2 === 0 ? 'node' : 'desktop');
    const issued = await admin.identity.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
    devices.push({ verified, certificateFingerprint: issued.certificate.fingerprint, expiresAt: issued.device.current_certificate.expires_at_unix_ms });
  }
  return { stateDir: dir, devices };
}

async function list(stateDir: string): Promise<ListJson> {
  const result = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
  expect(result.code).toBe(0);
  return result.json as ListJson;
}

describe('palyra devices', () => {
  it('lists paired devices with exactly the documented fields', async () => {
    const { stateDir, devices } = await stateWithDevices(2);
    const listed = await list(stateDir);
    expect(Object.keys(listed)).toEqual(['devices', 'revoked_certificate_fingerprints']);
    expect(listed.revoked_certificate_fingerprints).toEqual([]);
    expect(listed.devices).toHaveLength(2);
    for (const d of devices) {
      const shown = listed.devices.find((x) => x.device_id === d.verified.deviceId);
      expect(shown).toBeDefined();
      expect(Object.keys(shown!)).toEqual(DEVICE_KEYS);
      expect(shown).toEqual({
        device_id: d.verified.deviceId,
        client_kind: d.verified.clientKind,
        status: 'paired',
        identity_fingerprint: d.verified.identityFingerprint,
        certificate_fingerprint: d.certificateFingerprint,
        cert_expires_at_unix_ms: d.expiresAt,
        last_seen_at_unix_ms: null,
        capabilities: [],
        roles: [],
        name: null,
        platform: null,
        method: null,
        paired_at_unix_ms: expect.any(Number) as number,
        last_address: null,
      });
    }
    const text = await runCli(['devices', 'list', '--state-dir', stateDir]);
    expect(text.code).toBe(0);
    for (const d of devices) expect(text.stdout).toMatch(new RegExp(`${d.verified.deviceId}\\s+-\\s+${d.verified.clientKind}\\s+-\\s+-\\s+paired`));
  });

  it('revokes a device: prints it as revoked, and its certificate joins the revoked list', async () => {
    const { stateDir, devices } = await stateWithDevices(2);
    const target = devices[0]!;
    const revoked = await runCliJson(['devices', 'revoke', target.verified.deviceId, '--reason', 'lost in a taxi', '--state-dir', stateDir]);
    expect(revoked.code).toBe(0);
    expect(Object.keys(revoked.json as object)).toEqual(DEVICE_KEYS);
    expect(revoked.json).toMatchObject({
      device_id: target.verified.deviceId,
      status: 'revoked',
      client_kind: target.verified.clientKind,
      certificate_fingerprint: target.certificateFingerprint,
    });
    const listed = await list(stateDir);
    expect(listed.devices.find((d) => d.device_id === target.verified.deviceId)?.status).toBe('revoked');
    expect(listed.devices.find((d) => d.device_id === devices[1]!.verified.deviceId)?.status).toBe('paired');
    expect(listed.revoked_certificate_fingerprints).toContain(target.certificateFingerprint);

    const text = await runCli(['devices', 'list', '--state-dir', stateDir]);
    expect(text.stdout).toMatch(new RegExp(`${target.verified.deviceId}.*revoked \\(lost in a taxi\\)`));
  });

  it('unbans a revoked device once; a second unban is not_found (exit 1)', async () => {
    const { stateDir, devices } = await stateWithDevices(1);
    const id = devices[0]!.verified.deviceId;
    expect((await runCli(['devices', 'revoke', id, '--state-dir', stateDir])).code).toBe(0);
    const unbanned = await runCliJson(['devices', 'unban', id, '--state-dir', stateDir]);
    expect(unbanned.code).toBe(0);
    expect(unbanned.json).toEqual({ device_id: id, status: 'unbanned' });
    expect((await list(stateDir)).devices).toEqual([]);
    const again = await runCli(['devices', 'unban', id, '--state-dir', stateDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error\[not_found\]: /);
  });

  it('removes a paired device without a ban; removing it again is not_found (exit 1)', async () => {
    const { stateDir, devices } = await stateWithDevices(1);
    const d = devices[0]!;
    const removed = await runCliJson(['devices', 'remove', d.verified.deviceId, '--state-dir', stateDir]);
    expect(removed.code).toBe(0);
    expect(removed.json).toEqual({ device_id: d.verified.deviceId, status: 'removed' });
    const listed = await list(stateDir);
    expect(listed.devices).toEqual([]);
    expect(listed.revoked_certificate_fingerprints).toContain(d.certificateFingerprint);
    const again = await runCliJson(['devices', 'remove', d.verified.deviceId, '--state-dir', stateDir]);
    expect(again.code).toBe(1);
    expect(again.json).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
  });

  it('pre-emptively bans a device id that never paired', async () => {
    const { stateDir } = await stateWithDevices(0);
    const id = newUlid(Date.now());
    const revoked = await runCliJson(['devices', 'revoke', id, '--state-dir', stateDir]);
    expect(revoked.code).toBe(0);
    expect(revoked.json).toEqual({
      device_id: id,
      client_kind: null,
      status: 'revoked',
      identity_fingerprint: null,
      certificate_fingerprint: null,
      cert_expires_at_unix_ms: null,
      last_seen_at_unix_ms: null,
      capabilities: [],
      roles: [],
      name: null,
      platform: null,
      method: null,
      paired_at_unix_ms: null,
      last_address: null,
    });
  });

  it('grants and withdraws the admin role; list shows it; a device that is not paired is device_not_paired (exit 1)', async () => {
    const { stateDir, devices } = await stateWithDevices(2);
    const id = devices[0]!.verified.deviceId;
    const granted = await runCliJson(['devices', 'grant-admin', id, '--state-dir', stateDir]);
    expect(granted.code).toBe(0);
    expect(Object.keys(granted.json as object)).toEqual(DEVICE_KEYS);
    expect(granted.json).toMatchObject({ device_id: id, status: 'paired', roles: ['admin'] });
    const again = await runCliJson(['devices', 'grant-admin', id, '--state-dir', stateDir]);
    expect(again.json).toMatchObject({ roles: ['admin'] });
    const listed = await list(stateDir);
    expect(listed.devices.find((d) => d.device_id === id)?.roles).toEqual(['admin']);
    expect(listed.devices.find((d) => d.device_id === devices[1]!.verified.deviceId)?.roles).toEqual([]);
    const text = await runCli(['devices', 'list', '--state-dir', stateDir]);
    expect(text.stdout).toMatch(new RegExp(`${id}\\s+-\\s+\\S+\\s+-\\s+-\\s+paired\\s+admin\\s`));
    expect(text.stdout).toMatch(/\bROLES\b/);

    const withdrawn = await runCliJson(['devices', 'revoke-admin', id, '--state-dir', stateDir]);
    expect(withdrawn.code).toBe(0);
    expect(withdrawn.json).toMatchObject({ device_id: id, status: 'paired', roles: [] });
    expect((await list(stateDir)).devices.find((d) => d.device_id === id)?.roles).toEqual([]);

    const stranger = newUlid(Date.now());
    for (const sub of ['grant-admin', 'revoke-admin']) {
      const notPaired = await runCli(['devices', sub, stranger, '--state-dir', stateDir]);
      expect({ sub, code: notPaired.code }).toEqual({ sub, code: 1 });
      expect(notPaired.stderr).toMatch(/^error\[device_not_paired\]: /);
      const missing = await runCli(['devices', sub, '--state-dir', stateDir]);
      expect({ sub, code: missing.code }).toEqual({ sub, code: 2 });
    }
    // Revoking the device takes the role with it.
    expect((await runCli(['devices', 'grant-admin', id, '--state-dir', stateDir])).code).toBe(0);
    expect((await runCli(['devices', 'revoke', id, '--state-dir', stateDir])).code).toBe(0);
    expect((await list(stateDir)).devices.find((d) => d.device_id === id)).toMatchObject({ status: 'revoked', roles: [] });
  });

  it('reports malformed (exit 1) and missing (exit 2) device ids', async () => {
    const { stateDir } = await stateWithDevices(0);
    const malformed = await runCli(['devices', 'revoke', 'laptop', '--state-dir', stateDir]);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/^error\[invalid_canonical_id\]: /);
    for (const sub of ['revoke', 'remove', 'unban']) {
      const missing = await runCli(['devices', sub, '--state-dir', stateDir]);
      expect({ sub, code: missing.code }).toEqual({ sub, code: 2 });
      expect(missing.stderr).toMatch(/^error\[usage\]: missing DEVICE_ID/);
    }
  });
});
