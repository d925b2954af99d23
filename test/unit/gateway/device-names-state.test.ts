// Device names, pairing methods and last addresses at rest: additive fields, so states written before them load
// with null, and states written with them round-trip.
import { describe, expect, it } from 'vitest';
import { emptyIdentityState, identityStateFromJson, identityStateToJson } from '../../../main/gateway/identity-state.js';
import type { PairedDeviceRecord } from '../../../main/gateway/identity-state.js';
import { emptyRuntimeState, runtimeStateFromJson, runtimeStateToJson } from '../../../main/gateway/runtime-state.js';
import type { StoredPairingRequest } from '../../../main/gateway/runtime-state.js';

const DEVICE_ID = '01J9Z8Y7X6W5V4T3S2R1Q0P9NM';
const HEX64 = 'ab'.repeat(32);
type Json = Record<string, unknown>;
const clone = (value: unknown): Json => JSON.parse(JSON.stringify(value)) as Json;

function device(extra: Partial<PairedDeviceRecord> = {}): PairedDeviceRecord {
  return {
    device_id: DEVICE_ID,
    client_kind: 'desktop',
    current_certificate: { sequence: 1, subject: `device:${DEVICE_ID}`, certificate_pem: 'pem', fingerprint: HEX64, serial_hex: '01', issued_at_unix_ms: 1, expires_at_unix_ms: 2 },
    certificate_fingerprints: [HEX64],
    identity_fingerprint: HEX64,
    signing_public_key_hex: HEX64,
    paired_at_unix_ms: 1,
    roles: [],
    ...extra,
  };
}

function request(): StoredPairingRequest {
  return {
    requestId: DEVICE_ID,
    sessionId: DEVICE_ID,
    deviceId: DEVICE_ID,
    clientKind: 'desktop',
    method: 'pin',
    codeIssuedBy: 'cli:op',
    requestedAtUnixMs: 1,
    expiresAtUnixMs: 2,
    approvalId: DEVICE_ID,
    state: 'pending_approval',
    decisionReason: null,
    decidedAtUnixMs: null,
    identityFingerprint: HEX64,
    signingPublicKeyHex: HEX64,
    transcriptHashHex: HEX64,
    sas: '123456',
    sasVerifiable: true,
    sasStatus: 'compare',
    completedAtUnixMs: null,
    csrDerB64: null,
    material: null,
    materialDeliveredAtUnixMs: null,
  };
}

describe('identity state with device names', () => {
  it('loads a device record from before names with name and method null', () => {
    const state = emptyIdentityState();
    state.paired_devices.set(DEVICE_ID, device());
    state.revoked_devices.set('01J9Z8Y7X6W5V4T3S2R1Q0P9NN', { device_id: '01J9Z8Y7X6W5V4T3S2R1Q0P9NN', reason: 'lost', revoked_at_unix_ms: 1, client_kind: null, identity_fingerprint: null, certificate_fingerprint: null });
    const json = clone(identityStateToJson(state, 3));
    expect((json.paired_devices as Record<string, Json>)[DEVICE_ID]).not.toHaveProperty('name');
    const loaded = identityStateFromJson(json).state;
    expect(loaded.paired_devices.get(DEVICE_ID)).toMatchObject({ name: null, method: null });
    expect(loaded.revoked_devices.get('01J9Z8Y7X6W5V4T3S2R1Q0P9NN')).toMatchObject({ name: null });
  });

  it('round-trips a name and a method, and refuses an unknown method as state_corrupt', () => {
    const state = emptyIdentityState();
    state.paired_devices.set(DEVICE_ID, device({ name: 'Ana’s laptop', method: 'qr' }));
    const json = clone(identityStateToJson(state, 3));
    expect(identityStateFromJson(json).state.paired_devices.get(DEVICE_ID)).toMatchObject({ name: 'Ana’s laptop', method: 'qr' });
    (json.paired_devices as Record<string, Json>)[DEVICE_ID]!.method = 'sms';
    expect(() => identityStateFromJson(json)).toThrow(expect.objectContaining({ code: 'state_corrupt' }) as Error);
  });
});

describe('pairing runtime with device names and last addresses', () => {
  it('loads requests and nodes from before names with deviceName and lastAddress null', () => {
    const state = emptyRuntimeState();
    state.requests.set(DEVICE_ID, request());
    state.nodes.set(DEVICE_ID, { deviceId: DEVICE_ID, platform: 'linux', capabilities: [], registeredAtUnixMs: 1, lastSeenAtUnixMs: 2 });
    const loaded = runtimeStateFromJson(clone(runtimeStateToJson(state, 1))).state;
    expect(loaded.requests.get(DEVICE_ID)).toMatchObject({ deviceName: null });
    expect(loaded.nodes.get(DEVICE_ID)).toMatchObject({ lastAddress: null });
  });

  it('round-trips a request name and a node address', () => {
    const state = emptyRuntimeState();
    state.requests.set(DEVICE_ID, { ...request(), deviceName: 'Kitchen Pi' });
    state.nodes.set(DEVICE_ID, { deviceId: DEVICE_ID, platform: 'linux', capabilities: [], registeredAtUnixMs: 1, lastSeenAtUnixMs: 2, lastAddress: '192.0.2.7' });
    const loaded = runtimeStateFromJson(clone(runtimeStateToJson(state, 1))).state;
    expect(loaded.requests.get(DEVICE_ID)?.deviceName).toBe('Kitchen Pi');
    expect(loaded.nodes.get(DEVICE_ID)?.lastAddress).toBe('192.0.2.7');
  });
});
