/**
 * The gateway's identity state (REFERENCE.md §1.5, §1.6, §6.3) as plain JSON records, and the operations that
 * change it. Mutations are expressed as operations so that they can be appended to a journal and replayed by
 * other processes sharing the state directory; `applyIdentityOp` is the only code that changes a state.
 *
 * Records keep the reference's snake_case field names (they are what is written at rest), with our additions:
 * the device's identity key is bound to its record, certificates carry serial and fingerprint, and revoked
 * certificates keep their serial and expiry so a CRL can be built and expired entries pruned.
 */

import { z } from 'zod';
import type { ClientKind } from '../core/client-kind.js';
import { CLIENT_KINDS } from '../core/client-kind.js';
import type { PairingMethodKind } from '../core/pairing-codes.js';
import { parseStateDocument } from '../store/state-schema.js';

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
  /** Display name (sent at pairing or set by the operator); absent or null for a device paired before names existed. */
  name?: string | null;
  /** How the device paired; absent or null when not known (older states). */
  method?: PairingMethodKind | null;
}

export interface RevokedDeviceRecord {
  device_id: string;
  reason: string;
  revoked_at_unix_ms: number;
  /** What the device was when it was revoked (null for a pre-emptive ban or a migrated record). */
  client_kind: ClientKind | null;
  identity_fingerprint: string | null;
  certificate_fingerprint: string | null;
  /** Its display name when it was revoked (absent or null: none known). */
  name?: string | null;
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
  /**
   * The first audit seq whose entry must be keyed (HMAC). Entries before it were written by a version that did not
   * key the chain. Kept in this authenticated state so that stripping the keys off a log and recomputing a plain
   * chain does not verify. null: not decided yet (a state from before keyed audit), set on the next open.
   */
  audit_keyed_from_seq: number | null;
}

export type IdentityOp =
  | { op: 'put_device'; device: PairedDeviceRecord }
  | { op: 'delete_device'; device_id: string }
  | { op: 'put_revoked_device'; record: RevokedDeviceRecord }
  | { op: 'delete_revoked_device'; device_id: string }
  | { op: 'revoke_certificates'; records: RevokedCertificateRecord[] }
  | { op: 'prune_revoked_certificates'; expired_before_unix_ms: number }
  | { op: 'set_ca_sequence'; value: number }
  | { op: 'set_audit_keyed_from'; value: number };

export function emptyIdentityState(): IdentityState {
  return { paired_devices: new Map(), revoked_devices: new Map(), revoked_certificates: new Map(), ca_sequence: 0, audit_keyed_from_seq: null };
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
    case 'set_audit_keyed_from':
      // Decided once; never moved later (that would let unkeyed entries in).
      state.audit_keyed_from_seq ??= op.value;
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
  audit_keyed_from_seq: number | null;
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
    audit_keyed_from_seq: state.audit_keyed_from_seq,
  };
}

const unixMs = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const counter = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const clientKind = z.enum(CLIENT_KINDS);

const certificateSchema = z.looseObject({
  sequence: counter,
  subject: z.string(),
  certificate_pem: z.string(),
  fingerprint: z.string(),
  serial_hex: z.string(),
  issued_at_unix_ms: unixMs,
  expires_at_unix_ms: unixMs,
});

const pairedDeviceSchema = z.looseObject({
  device_id: z.string(),
  client_kind: clientKind,
  current_certificate: certificateSchema,
  certificate_fingerprints: z.array(z.string()).default([]),
  identity_fingerprint: z.string(),
  signing_public_key_hex: z.string(),
  paired_at_unix_ms: unixMs,
  roles: z.array(z.literal('admin')).default([]),
  // Older states have neither: they load as null.
  name: z.string().nullable().default(null),
  method: z.enum(['qr', 'pin']).nullable().default(null),
});

const revokedDeviceSchema = z.looseObject({
  device_id: z.string(),
  reason: z.string(),
  revoked_at_unix_ms: unixMs,
  client_kind: clientKind.nullable().default(null),
  identity_fingerprint: z.string().nullable().default(null),
  certificate_fingerprint: z.string().nullable().default(null),
  name: z.string().nullable().default(null),
});

const revokedCertificateSchema = z.looseObject({
  fingerprint: z.string(),
  serial_hex: z.string(),
  device_id: z.string().nullable(),
  reason: z.string(),
  revoked_at_unix_ms: unixMs,
  expires_at_unix_ms: unixMs,
});

/** Each record keyed by its own device id. */
function keyedByDeviceId<T extends { device_id: string }>(record: Record<string, T>, ctx: z.RefinementCtx): void {
  for (const [id, value] of Object.entries(record)) {
    if (value.device_id !== id) ctx.addIssue({ code: 'custom', path: [id, 'device_id'], message: `is ${JSON.stringify(value.device_id.slice(0, 40))}, not its key` });
  }
}

const bundleSchema = z.looseObject({
  // A missing generation reads as 0 (REFERENCE.md §6.4).
  generation: counter.default(0),
  paired_devices: z.record(z.string(), pairedDeviceSchema).superRefine(keyedByDeviceId).default({}),
  revoked_devices: z.record(z.string(), revokedDeviceSchema).superRefine(keyedByDeviceId).default({}),
  revoked_certificates: z.array(revokedCertificateSchema).default([]),
  revoked_certificate_fingerprints: z.array(z.string()).default([]),
  ca_sequence: counter.default(0),
  audit_keyed_from_seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable().default(null),
});

/** Parses a bundle; anything that does not match its schema is `state_corrupt` naming the field. */
export function identityStateFromJson(json: unknown, document = 'identity/state.v1.json'): { state: IdentityState; generation: number } {
  const bundle = parseStateDocument(bundleSchema, json, document);
  const state = emptyIdentityState();
  for (const [id, d] of Object.entries(bundle.paired_devices)) state.paired_devices.set(id, d);
  for (const [id, r] of Object.entries(bundle.revoked_devices)) state.revoked_devices.set(id, r);
  for (const c of bundle.revoked_certificates) state.revoked_certificates.set(c.fingerprint, c);
  // Fingerprints listed only in the reference field (e.g. a migrated bundle) are kept as revoked forever.
  for (const fp of bundle.revoked_certificate_fingerprints) {
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
  state.ca_sequence = bundle.ca_sequence;
  state.audit_keyed_from_seq = bundle.audit_keyed_from_seq;
  return { state, generation: bundle.generation };
}
