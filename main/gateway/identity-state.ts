/**
 * The gateway's identity state (REFERENCE.md §1.5, §1.6, §6.3) as plain JSON records, and the operations that
 * change it. Mutations are expressed as operations so that they can be appended to a journal and replayed by
 * other processes sharing the state directory; `applyIdentityOp` is the only code that changes a state.
 *
 * Records keep the reference's snake_case field names (they are what is written at rest), with our additions:
 * the device's identity key is bound to its record, certificates carry serial and fingerprint, and revoked
 * certificates keep their serial and expiry so a CRL can be built and expired entries pruned.
 */

import type { ClientKind } from '../core/client-kind.js';
import { isClientKind } from '../core/client-kind.js';
import { PalyraError } from '../core/errors.js';

export interface CertificateRecord {
  sequence: number;
  /** `device:{device_id}` or `server:{common_name}`. */
  subject: string;
  certificate_pem: string;
  fingerprint: string;
  serial_hex: string;
  issued_at_unix_ms: number;
  expires_at_unix_ms: number;
}

export type DeviceRole = 'admin';

export interface PairedDeviceRecord {
  device_id: string;
  client_kind: ClientKind;
  current_certificate: CertificateRecord;
  /** History: reset to `[new]` on (re)pair, appended on rotation. */
  certificate_fingerprints: string[];
  /** hex SHA-256 of the Ed25519 identity key proven in the handshake (bound here, unlike the reference). */
  identity_fingerprint: string;
  signing_public_key_hex: string;
  paired_at_unix_ms: number;
  roles: DeviceRole[];
}

export interface RevokedDeviceRecord {
  device_id: string;
  reason: string;
  revoked_at_unix_ms: number;
  /** What the device was when it was revoked (null for a pre-emptive ban or a migrated record). */
  client_kind: ClientKind | null;
  identity_fingerprint: string | null;
  certificate_fingerprint: string | null;
}

export interface RevokedCertificateRecord {
  fingerprint: string;
  serial_hex: string;
  device_id: string | null;
  reason: string;
  revoked_at_unix_ms: number;
  /** After this the certificate is dead anyway; the entry may be pruned. */
  expires_at_unix_ms: number;
}

export interface IdentityState {
  paired_devices: Map<string, PairedDeviceRecord>;
  revoked_devices: Map<string, RevokedDeviceRecord>;
  revoked_certificates: Map<string, RevokedCertificateRecord>;
  /** CA leaf counter (REFERENCE.md §1.3), kept here so that issuing a leaf is one journal record. */
  ca_sequence: number;
}

export type IdentityOp =
  | { op: 'put_device'; device: PairedDeviceRecord }
  | { op: 'delete_device'; device_id: string }
  | { op: 'put_revoked_device'; record: RevokedDeviceRecord }
  | { op: 'delete_revoked_device'; device_id: string }
  | { op: 'revoke_certificates'; records: RevokedCertificateRecord[] }
  | { op: 'prune_revoked_certificates'; expired_before_unix_ms: number }
  | { op: 'set_ca_sequence'; value: number };

export function emptyIdentityState(): IdentityState {
  return { paired_devices: new Map(), revoked_devices: new Map(), revoked_certificates: new Map(), ca_sequence: 0 };
}

export function applyIdentityOp(state: IdentityState, op: IdentityOp): void {
  switch (op.op) {
    case 'put_device':
      state.paired_devices.set(op.device.device_id, op.device);
      return;
    case 'delete_device':
      state.paired_devices.delete(op.device_id);
      return;
    case 'put_revoked_device':
      state.revoked_devices.set(op.record.device_id, op.record);
      return;
    case 'delete_revoked_device':
      state.revoked_devices.delete(op.device_id);
      return;
    case 'revoke_certificates':
      for (const r of op.records) if (!state.revoked_certificates.has(r.fingerprint)) state.revoked_certificates.set(r.fingerprint, r);
      return;
    case 'prune_revoked_certificates':
      for (const [fp, r] of state.revoked_certificates) {
        if (r.expires_at_unix_ms < op.expired_before_unix_ms) state.revoked_certificates.delete(fp);
      }
      return;
    case 'set_ca_sequence':
      state.ca_sequence = Math.max(state.ca_sequence, op.value);
      return;
  }
}

/** The bundle as written at rest: `identity/state.v1.json` (no private keys, ever). */
export interface IdentityBundleJson {
  generation: number;
  paired_devices: Record<string, PairedDeviceRecord>;
  revoked_devices: Record<string, RevokedDeviceRecord>;
  /** Reference field: every revoked certificate fingerprint (lowercase hex). */
  revoked_certificate_fingerprints: string[];
  revoked_certificates: RevokedCertificateRecord[];
  ca_sequence: number;
}

export function identityStateToJson(state: IdentityState, generation: number): IdentityBundleJson {
  const sorted = <T>(m: Map<string, T>): Record<string, T> => Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return {
    generation,
    paired_devices: sorted(state.paired_devices),
    revoked_devices: sorted(state.revoked_devices),
    revoked_certificate_fingerprints: [...state.revoked_certificates.keys()].sort(),
    revoked_certificates: [...state.revoked_certificates.values()],
    ca_sequence: state.ca_sequence,
  };
}

function fail(what: string): never {
  throw new PalyraError('state_corrupt', `identity state is corrupt: ${what}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkDevice(id: string, d: unknown): PairedDeviceRecord {
  if (!isRecord(d) || d.device_id !== id || !isClientKind(d.client_kind) || !isRecord(d.current_certificate)) {
    fail(`paired device ${id}`);
  }
  const record = d as unknown as PairedDeviceRecord;
  if (!Array.isArray(record.certificate_fingerprints)) record.certificate_fingerprints = [];
  if (!Array.isArray(record.roles)) record.roles = [];
  return record;
}

/** Parses a bundle; a missing `generation` reads as 0 (REFERENCE.md §6.4). Structural damage is `state_corrupt`. */
export function identityStateFromJson(json: unknown): { state: IdentityState; generation: number } {
  if (!isRecord(json)) fail('bundle is not an object');
  const generation = json.generation === undefined ? 0 : json.generation;
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) fail('generation');
  const state = emptyIdentityState();
  const devices = json.paired_devices ?? {};
  if (!isRecord(devices)) fail('paired_devices');
  for (const [id, d] of Object.entries(devices)) state.paired_devices.set(id, checkDevice(id, d));
  const revoked = json.revoked_devices ?? {};
  if (!isRecord(revoked)) fail('revoked_devices');
  for (const [id, r] of Object.entries(revoked)) {
    if (!isRecord(r) || r.device_id !== id) fail(`revoked device ${id}`);
    state.revoked_devices.set(id, {
      client_kind: null,
      identity_fingerprint: null,
      certificate_fingerprint: null,
      ...(r as unknown as Partial<RevokedDeviceRecord>),
    } as RevokedDeviceRecord);
  }
  const certs = json.revoked_certificates ?? [];
  if (!Array.isArray(certs)) fail('revoked_certificates');
  for (const c of certs as unknown[]) {
    if (!isRecord(c) || typeof c.fingerprint !== 'string') fail('revoked certificate');
    state.revoked_certificates.set(c.fingerprint, c as unknown as RevokedCertificateRecord);
  }
  // Fingerprints listed only in the reference field (e.g. a migrated bundle) are kept as revoked forever.
  const fps = json.revoked_certificate_fingerprints ?? [];
  if (!Array.isArray(fps)) fail('revoked_certificate_fingerprints');
  for (const fp of fps as unknown[]) {
    if (typeof fp !== 'string') fail('revoked certificate fingerprint');
    if (!state.revoked_certificates.has(fp)) {
      state.revoked_certificates.set(fp, {
        fingerprint: fp,
        serial_hex: '',
        device_id: null,
        reason: 'migrated',
        revoked_at_unix_ms: 0,
        expires_at_unix_ms: Number.MAX_SAFE_INTEGER,
      });
    }
  }
  const seq = json.ca_sequence ?? 0;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) fail('ca_sequence');
  state.ca_sequence = seq;
  return { state, generation };
}
