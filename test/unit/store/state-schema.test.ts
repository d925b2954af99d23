// Every JSON document kept at rest is checked against a schema: one wrong field → state_corrupt naming the
// document and the field, and nothing is rewritten.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SettingsFile } from '../../../main/app/settings.js';
import { parseDevicePairingState } from '../../../main/device/device-store.js';
import { emptyIdentityState, identityStateFromJson, identityStateToJson } from '../../../main/gateway/identity-state.js';
import { emptyRuntimeState, runtimeStateFromJson, runtimeStateToJson } from '../../../main/gateway/runtime-state.js';
import { isPalyraError } from '../../../main/core/errors.js';

const DEVICE_ID = '01J9Z8Y7X6W5V4T3S2R1Q0P9NM';
const HEX64 = 'ab'.repeat(32);

function corruptMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isPalyraError(error) && error.code === 'state_corrupt') return error.message;
    throw error;
  }
  throw new Error('expected state_corrupt, but it parsed');
}

type Json = Record<string, unknown>;
const clone = (value: unknown): Json => JSON.parse(JSON.stringify(value)) as Json;

function identityBundle(): Json {
  const state = emptyIdentityState();
  state.paired_devices.set(DEVICE_ID, {
    device_id: DEVICE_ID,
    client_kind: 'desktop',
    current_certificate: {
      sequence: 3,
      subject: `device:${DEVICE_ID}`,
      certificate_pem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
      fingerprint: HEX64,
      serial_hex: '01',
      issued_at_unix_ms: 1_700_000_000_000,
      expires_at_unix_ms: 1_700_086_400_000,
    },
    certificate_fingerprints: [HEX64],
    identity_fingerprint: HEX64,
    signing_public_key_hex: HEX64,
    paired_at_unix_ms: 1_700_000_000_000,
    roles: ['admin'],
  });
  state.revoked_devices.set('01J9Z8Y7X6W5V4T3S2R1Q0P9NN', {
    device_id: '01J9Z8Y7X6W5V4T3S2R1Q0P9NN',
    reason: 'lost',
    revoked_at_unix_ms: 1_700_000_000_000,
    client_kind: null,
    identity_fingerprint: null,
    certificate_fingerprint: null,
  });
  state.ca_sequence = 3;
  return clone(identityStateToJson(state, 7));
}

describe('identity state (identity/state.v1.json)', () => {
  it('round-trips a valid bundle and fills the defaults of older ones', () => {
    const bundle = identityBundle();
    const parsed = identityStateFromJson(bundle);
    expect(parsed.generation).toBe(7);
    expect(parsed.state.paired_devices.get(DEVICE_ID)?.roles).toEqual(['admin']);
    const older = clone(bundle);
    delete (older.paired_devices as Record<string, Json>)[DEVICE_ID]!.roles;
    delete older.generation;
    const reread = identityStateFromJson(older);
    expect(reread.generation).toBe(0);
    expect(reread.state.paired_devices.get(DEVICE_ID)?.roles).toEqual([]);
  });

  it.each([
    ['client_kind', (b: Json) => ((b.paired_devices as Record<string, Json>)[DEVICE_ID]!.client_kind = 'toaster'), `paired_devices.${DEVICE_ID}.client_kind`],
    ['a device under another id', (b: Json) => ((b.paired_devices as Record<string, Json>)[DEVICE_ID]!.device_id = 'OTHER'), `paired_devices.${DEVICE_ID}.device_id`],
    ['a certificate expiry', (b: Json) => (((b.paired_devices as Record<string, Json>)[DEVICE_ID]!.current_certificate as Json).expires_at_unix_ms = 'soon'), `paired_devices.${DEVICE_ID}.current_certificate.expires_at_unix_ms`],
    ['a role', (b: Json) => ((b.paired_devices as Record<string, Json>)[DEVICE_ID]!.roles = ['root']), `paired_devices.${DEVICE_ID}.roles[0]`],
    ['the generation', (b: Json) => (b.generation = -1), 'generation'],
    ['a revoked fingerprint', (b: Json) => (b.revoked_certificate_fingerprints = [42]), 'revoked_certificate_fingerprints[0]'],
  ])('names the field when %s is wrong', (_what, damage, field) => {
    const bundle = identityBundle();
    damage(bundle);
    const before = JSON.stringify(bundle);
    expect(corruptMessage(() => identityStateFromJson(bundle))).toMatch(new RegExp(`^identity/state\\.v1\\.json: ${field.replace(/[.[\]]/g, '\\$&')}: `));
    expect(JSON.stringify(bundle)).toBe(before);
  });
});

describe('pairing runtime (node-runtime.v1.json)', () => {
  function runtime(): Json {
    const state = emptyRuntimeState();
    state.codes.set('h', { codeHash: 'h', pin: { saltB64: 'AA==', w0B64: 'AA==', lB64: 'AA==' }, method: 'pin', kind: null, issuedBy: 'cli:op', createdAtUnixMs: 1, expiresAtUnixMs: 2 });
    state.nodes.set(DEVICE_ID, { deviceId: DEVICE_ID, platform: 'linux', capabilities: [{ name: 'ping', available: true }], registeredAtUnixMs: 1, lastSeenAtUnixMs: 2 });
    state.pinFailuresSinceMint = 2;
    return clone(runtimeStateToJson(state, 4));
  }

  it('round-trips', () => {
    const parsed = runtimeStateFromJson(runtime());
    expect(parsed.generation).toBe(4);
    expect(parsed.state.codes.get('h')?.issuedBy).toBe('cli:op');
    expect(parsed.state.pinFailuresSinceMint).toBe(2);
  });

  it('drops a PIN code stored before PIN pairing v2 (a hash, no verifier)', () => {
    const r = runtime();
    delete (r.codes as Json[])[0]!.pin;
    expect(runtimeStateFromJson(r).state.codes.size).toBe(0);
  });

  it.each([
    ['a code method', (r: Json) => ((r.codes as Json[])[0]!.method = 'sms'), 'codes[0].method'],
    ['a capability', (r: Json) => (((r.nodes as Json[])[0]!.capabilities as Json[])[0]!.available = 'yes'), 'nodes[0].capabilities[0].available'],
    ['the failure count', (r: Json) => (r.pin_failures_since_mint = 1.5), 'pin_failures_since_mint'],
    ['the generation', (r: Json) => delete r.generation, 'generation'],
  ])('names the field when %s is wrong', (_what, damage, field) => {
    const doc = runtime();
    damage(doc);
    expect(corruptMessage(() => runtimeStateFromJson(doc))).toMatch(new RegExp(`^node-runtime\\.v1\\.json: ${field.replace(/[.[\]]/g, '\\$&')}: `));
  });
});

describe('device state (device.v1.json)', () => {
  const valid = (): Json => ({
    device_id: DEVICE_ID,
    identity_fingerprint: HEX64,
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
    updated_at_unix_ms: 5,
  });

  it('accepts a valid state and keeps only known fields', () => {
    expect(parseDevicePairingState({ ...valid(), future_field: 1 }, '/d/device.v1.json')).toEqual(valid());
  });

  it.each([
    ['the device id', (d: Json) => (d.device_id = 'not-an-id'), 'device_id'],
    ['the identity fingerprint', (d: Json) => (d.identity_fingerprint = 'AB'), 'identity_fingerprint'],
    ['the gateway pin mode', (d: Json) => (d.gateway = { addresses: ['gw:1'], name: null, ca_certificate_pem: 'x', ca_fingerprint: HEX64, ca_pin: 'a'.repeat(43), pinned_by: 'guess' }), 'gateway.pinned_by'],
    ['a gateway address', (d: Json) => (d.gateway = { addresses: [''], name: null, ca_certificate_pem: 'x', ca_fingerprint: HEX64, ca_pin: 'a'.repeat(43), pinned_by: 'qr' }), 'gateway.addresses[0]'],
    ['the update time', (d: Json) => (d.updated_at_unix_ms = null), 'updated_at_unix_ms'],
  ])('names the file and field when %s is wrong', (_what, damage, field) => {
    const doc = valid();
    damage(doc);
    expect(corruptMessage(() => parseDevicePairingState(doc, '/d/device.v1.json'))).toMatch(new RegExp(`^/d/device\\.v1\\.json: ${field.replace(/[.[\]]/g, '\\$&')}: `));
  });
});

describe('app settings (settings.json)', () => {
  it.each([
    [{ version: 2 }, 'version'],
    [{ version: 1, gateway: { enabled: 'yes', listen: '127.0.0.1:7444', name: null } }, 'gateway.enabled'],
    [{ version: 1, gateway: { enabled: true, listen: 'nowhere', name: null } }, 'gateway.listen'],
    [{ version: 1, gateway: { enabled: true, listen: '127.0.0.1:7444', name: 'x'.repeat(65) } }, 'gateway.name'],
  ])('refuses %j naming the file and %s, and leaves the file as it was', async (document, field) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-settings-'));
    const settings = new SettingsFile(dir);
    const text = JSON.stringify(document);
    await writeFile(settings.file, text);
    await expect(settings.load()).rejects.toMatchObject({ code: 'state_corrupt', message: expect.stringContaining(`${settings.file}: ${field}: `) });
    expect(await readFile(settings.file, 'utf8')).toBe(text);
  });
});
