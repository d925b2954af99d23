/**
 * IdentityManager: the gateway's CA, paired devices, revocations and certificate issuance over a shared state
 * directory (REFERENCE.md §2.6–§2.9, §6.4 with the fixes of PROTOCOL.md §5–§6).
 *
 * Every mutation runs under the state lock, first catches up with what other processes wrote (cheaply: only new
 * journal records are read), then appends one journal record. Queries answer from memory; `refresh()` catches
 * up on demand (the gateway calls it when the state directory changes).
 */

import { clientKindToPascal } from '../core/client-kind.js';
import type { ClientKind } from '../core/client-kind.js';
import { CertificateAuthority, createCertificateAuthority } from '../core/certificate-authority.js';
import type { IssuedCertificate, StoredCertificateAuthority } from '../core/certificate-authority.js';
import { DEFAULT_CERT_VALIDITY_MS, DEFAULT_ROTATION_THRESHOLD_MS, shouldRotate } from '../core/certificates.js';
import { crlEntriesAt, nextCrlNumber, normalizeSerialHex } from '../core/crl.js';
import type { RevokedSerial } from '../core/crl.js';
import { normalizeDeviceName } from '../core/device-name.js';
import { PalyraError } from '../core/errors.js';
import { validateCanonicalId } from '../core/ids.js';
import type { PairingMethodKind } from '../core/pairing-codes.js';
import { publishedCrlNumber, writeCrlFile } from './crl-file.js';
import { AuditLog } from '../store/audit-log.js';
import type { AuditIntent } from '../store/audit-log.js';
import { FileStateBackend } from '../store/state-backend.js';
import type { AuditStore, StateBackend } from '../store/state-backend.js';
import type { SecretStore } from '../store/secret-store.js';
import type { StateLockOptions } from '../store/state-lock.js';
import { JournaledState } from '../store/state-journal.js';
import type { JournalCodec, JournalStatus } from '../store/state-journal.js';
import {
  applyIdentityOp,
  emptyIdentityState,
  identityStateFromJson,
  identityStateToJson,
} from './identity-state.js';
import type {
  CertificateRecord,
  DeviceRole,
  IdentityOp,
  IdentityState,
  PairedDeviceRecord,
  RevokedCertificateRecord,
  RevokedDeviceRecord,
} from './identity-state.js';

export const IDENTITY_STATE_KEY = 'identity/state.v1.json';
export const CA_STATE_KEY = 'identity/ca/state.json';
export const DEFAULT_CA_COMMON_NAME = 'Palyra Gateway CA';

export const identityCodec: JournalCodec<IdentityState, IdentityOp> = {
  empty: emptyIdentityState,
  parseSnapshot: identityStateFromJson,
  snapshot: identityStateToJson,
  apply: applyIdentityOp,
};

/** What a verified handshake proved about the device (the subset finalize needs). */
export interface VerifiedDevice {
  deviceId: string;
  clientKind: ClientKind;
  identityFingerprint: string;
  signingPublicKeyHex: string;
  /** The display name of its pairing request (already normalized); null/absent: none. */
  name?: string | null;
  /** How it paired. */
  method?: PairingMethodKind | null;
}

export interface IssuedDeviceCertificate {
  device: PairedDeviceRecord;
  certificate: IssuedCertificate;
  /** Only in `--allow-server-generated-keys` mode: the key the gateway made, handed out once and not kept. */
  privateKeyPem: string | null;
  caCertificatePem: string;
}

export interface IdentityManagerOptions {
  store: SecretStore;
  /** Directory of a FilesystemSecretStore: lock file and audit log live there. null = in-memory (tests). */
  stateDir: string | null;
  /** Store key, enabling the journal (FilesystemSecretStore only). */
  journalKey?: Uint8Array;
  clock?: () => number;
  lock?: StateLockOptions;
  caCommonName?: string;
  certificateValidityMs?: number;
  compactEvery?: number;
  /** The persistence seam shared with the pairing runtime (GatewayAdmin passes its own); default: one for this manager. */
  backend?: StateBackend;
}

/** Audit events of mutations that take trust away: the rollback anchor is updated before they are answered. */
const TRUST_REMOVING_EVENTS = new Set(['device_revoked', 'certificate_revoked', 'device_removed', 'role_revoked', 'ca_created']);
/** Operations that can change what the CRL lists: after them the published `crl.pem` is rewritten. */
const CRL_CHANGING_OPS = new Set<IdentityOp['op']>(['revoke_certificates', 'prune_revoked_certificates']);

function defaultBackend(options: IdentityManagerOptions, audit: AuditStore | null): FileStateBackend {
  return new FileStateBackend({
    stateDir: options.stateDir,
    audit,
    anchor: null,
    ...(options.lock === undefined ? {} : { lock: options.lock }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
}

async function openAudit(options: IdentityManagerOptions): Promise<AuditStore | null> {
  if (options.backend !== undefined) return options.backend.audit;
  return options.stateDir === null ? null : AuditLog.open(options.stateDir, options.journalKey === undefined ? {} : { storeKey: options.journalKey });
}

function recordOf(cert: IssuedCertificate): CertificateRecord {
  return {
    sequence: cert.sequence,
    subject: cert.subject,
    certificate_pem: cert.certificatePem,
    fingerprint: cert.fingerprint,
    serial_hex: cert.serialHex,
    issued_at_unix_ms: cert.issuedAtUnixMs,
    expires_at_unix_ms: cert.expiresAtUnixMs,
  };
}

export class IdentityManager {
  readonly #backend: StateBackend;
  readonly #clock: () => number;
  readonly #validityMs: number;
  readonly #doc: JournaledState<IdentityState, IdentityOp>;
  readonly #audit: AuditStore | null;
  #ca: CertificateAuthority;
  #indexGeneration = -1;
  #deviceByFingerprint = new Map<string, string>();
  #crl: { generation: number; pem: string } | null = null;
  readonly #stateDir: string | null;
  /** The highest cRLNumber this process issued; the next CRL's number is above it (and above the published one). */
  #lastCrlNumber: number | undefined;
  /** The serials (with dates) of the last `crl.pem` this process wrote, so unchanged ones are not rewritten. */
  #published: { entries: string; crlNumber: number; pem: string } | null = null;

  private constructor(
    options: IdentityManagerOptions,
    doc: JournaledState<IdentityState, IdentityOp>,
    ca: CertificateAuthority,
    backend: StateBackend,
  ) {
    this.#backend = backend;
    this.#clock = options.clock ?? Date.now;
    this.#validityMs = options.certificateValidityMs ?? DEFAULT_CERT_VALIDITY_MS;
    this.#doc = doc;
    this.#ca = ca;
    this.#audit = backend.audit;
    this.#stateDir = options.stateDir;
  }

  /** Loads the state, creating the CA on first start — under the lock, so two first starts cannot mint two CAs. */
  static async open(options: IdentityManagerOptions): Promise<IdentityManager> {
    const doc = new JournaledState<IdentityState, IdentityOp>({
      store: options.store,
      snapshotKey: IDENTITY_STATE_KEY,
      codec: identityCodec,
      ...(options.journalKey === undefined ? {} : { journalKey: options.journalKey }),
      ...(options.compactEvery === undefined ? {} : { compactEvery: options.compactEvery }),
    });
    const audit = await openAudit(options);
    const backend = options.backend ?? defaultBackend(options, audit);
    backend.register(doc);
    const clock = options.clock ?? Date.now;
    const ca = await backend.exclusive(async (section) => {
      let stored: StoredCertificateAuthority;
      const intents: AuditIntent[] = [];
      try {
        stored = parseStoredCa(await options.store.readSecret(CA_STATE_KEY));
      } catch (e) {
        if (!(e instanceof PalyraError && e.code === 'secret_not_found')) throw e;
        // The CA is created before the first state is written: state without a CA means the CA file was lost or
        // removed. Minting a new one would silently orphan every paired device, so refuse instead.
        if (doc.hasSnapshot) {
          throw new PalyraError(
            'ca_missing',
            `the gateway CA (${CA_STATE_KEY}) is missing but the gateway state exists (${doc.state.paired_devices.size} paired devices); restore the CA from a backup, or move the state directory away to start over`,
            { details: { key: CA_STATE_KEY } },
          );
        }
        stored = await createCertificateAuthority({ now: clock(), commonName: options.caCommonName ?? DEFAULT_CA_COMMON_NAME });
        await options.store.writeSecret(CA_STATE_KEY, serializeCa(stored));
        const loaded = await CertificateAuthority.load(stored);
        intents.push({ event: 'ca_created', fields: { ca_fingerprint: loaded.fingerprint } });
      }
      const initial: IdentityOp[] = [];
      if (!doc.hasSnapshot) initial.push({ op: 'set_ca_sequence', value: stored.sequence });
      // Keyed audit starts after whatever unkeyed entries a state from an older version has (none for a new one).
      if (audit?.keyed === true && doc.state.audit_keyed_from_seq === null) initial.push({ op: 'set_audit_keyed_from', value: (await audit.head()).seq + 1 });
      if (initial.length > 0 || intents.length > 0) await section.commit(doc, initial, intents);
      if (doc.state.audit_keyed_from_seq !== null) audit?.setKeyedFrom(doc.state.audit_keyed_from_seq);
      return { created: intents.some((i) => i.event === 'ca_created'), ca: await CertificateAuthority.load({ ...stored, sequence: Math.max(stored.sequence, doc.state.ca_sequence) }) };
    });
    const manager = new IdentityManager(options, doc, ca.ca, backend);
    // A new CA publishes its (empty) CRL at once, so crl.pem exists whenever the state does.
    if (ca.created && options.stateDir !== null) await manager.publishCrl().catch(() => undefined);
    return manager;
  }

  /**
   * Loads an existing state without the lock and without writing anything (read-only commands: they work beside a
   * running gateway and on a full disk). null when there is no state yet; a state without its CA is `ca_missing`.
   */
  static async openExisting(options: IdentityManagerOptions): Promise<IdentityManager | null> {
    const doc = new JournaledState<IdentityState, IdentityOp>({
      store: options.store,
      snapshotKey: IDENTITY_STATE_KEY,
      codec: identityCodec,
      ...(options.journalKey === undefined ? {} : { journalKey: options.journalKey }),
      ...(options.compactEvery === undefined ? {} : { compactEvery: options.compactEvery }),
    });
    await doc.refreshUnlocked();
    if (!doc.hasSnapshot) return null;
    let stored: StoredCertificateAuthority;
    try {
      stored = parseStoredCa(await options.store.readSecret(CA_STATE_KEY));
    } catch (e) {
      if (!(e instanceof PalyraError && e.code === 'secret_not_found')) throw e;
      throw new PalyraError('ca_missing', `the gateway CA (${CA_STATE_KEY}) is missing but the gateway state exists`, { details: { key: CA_STATE_KEY } });
    }
    const audit = await openAudit(options);
    const backend = options.backend ?? defaultBackend(options, audit);
    backend.register(doc);
    if (doc.state.audit_keyed_from_seq !== null) audit?.setKeyedFrom(doc.state.audit_keyed_from_seq);
    const ca = await CertificateAuthority.load({ ...stored, sequence: Math.max(stored.sequence, doc.state.ca_sequence) });
    return new IdentityManager(options, doc, ca, backend);
  }

  /** Runs `plan` on fresh state under the lock; its operations and audit entry are committed together. */
  async #mutate<T>(plan: (state: IdentityState, now: number) => Promise<{ ops: IdentityOp[]; result: T; audit?: [string, Record<string, string | number | boolean | null>] }>): Promise<T> {
    const seen = { crlChanged: false };
    const outcome = await this.#backend.mutate(this.#doc, async (state, now) => {
      if (state.audit_keyed_from_seq !== null) this.#audit?.setKeyedFrom(state.audit_keyed_from_seq);
      const { ops, result, audit } = await plan(state, now);
      if (ops.some((op) => CRL_CHANGING_OPS.has(op.op))) seen.crlChanged = true;
      return {
        ops,
        result,
        ...(audit === undefined ? {} : { audit: [{ event: audit[0], fields: audit[1] }], removesTrust: TRUST_REMOVING_EVENTS.has(audit[0]) }),
      };
    });
    // The revocation stands whatever happens to the file: a failed write is retried by the next publish (a running
    // gateway's, at once, since its serials differ from what it last wrote), and `palyra ca show` tells a stale file.
    if (seen.crlChanged && this.#stateDir !== null) await this.publishCrl().catch(() => undefined);
    return outcome;
  }

  /** The persistence seam (GatewayAdmin shares it with the pairing runtime). */
  get backend(): StateBackend {
    return this.#backend;
  }

  // --- queries --------------------------------------------------------------------------------------------------

  get generation(): number {
    return this.#doc.generation;
  }

  get caCertificatePem(): string {
    return this.#ca.certificatePem;
  }

  get caFingerprint(): string {
    return this.#ca.fingerprint;
  }

  /** base64url SHA-256 of the CA's SubjectPublicKeyInfo: the `ca` pin of pairing URIs. */
  get caSpkiPin(): string {
    return this.#ca.spkiPin;
  }

  get auditLog(): AuditStore | null {
    return this.#audit;
  }

  /** Catches up with changes other processes made. Returns whether anything changed. */
  async refresh(): Promise<boolean> {
    return this.#backend.refreshDocument(this.#doc);
  }

  /** What the last load of the identity journal found. */
  journalStatus(): JournalStatus {
    return this.#doc.status();
  }

  /** Whether the identity files changed since the last load (two stats, no lock). */
  changedOnDisk(): Promise<boolean> {
    return this.#doc.changedOnDisk();
  }

  /** Like `refresh`, but takes the lock only when the files changed (cheap enough to poll). */
  async refreshIfChanged(): Promise<boolean> {
    return (await this.#doc.changedOnDisk()) ? this.refresh() : false;
  }

  pairedDevice(deviceId: string): PairedDeviceRecord | undefined {
    return this.#doc.state.paired_devices.get(deviceId);
  }

  listPairedDevices(): PairedDeviceRecord[] {
    return [...this.#doc.state.paired_devices.values()].sort((a, b) => (a.device_id < b.device_id ? -1 : 1));
  }

  listRevokedDevices(): RevokedDeviceRecord[] {
    return [...this.#doc.state.revoked_devices.values()].sort((a, b) => (a.device_id < b.device_id ? -1 : 1));
  }

  revokedCertificates(): RevokedCertificateRecord[] {
    return [...this.#doc.state.revoked_certificates.values()];
  }

  revokedCertificateFingerprints(): string[] {
    return [...this.#doc.state.revoked_certificates.keys()].sort();
  }

  isDeviceRevoked(deviceId: string): boolean {
    return this.#doc.state.revoked_devices.has(deviceId);
  }

  isCertificateRevoked(fingerprint: string): boolean {
    return this.#doc.state.revoked_certificates.has(fingerprint);
  }

  /** O(1): only a paired device's current, unrevoked certificate maps (superseded ones do not, unlike the reference). */
  deviceIdForCertificateFingerprint(fingerprint: string): string | undefined {
    if (this.#indexGeneration !== this.#doc.generation) {
      const index = new Map<string, string>();
      for (const d of this.#doc.state.paired_devices.values()) index.set(d.current_certificate.fingerprint, d.device_id);
      this.#deviceByFingerprint = index;
      this.#indexGeneration = this.#doc.generation;
    }
    if (this.isCertificateRevoked(fingerprint)) return undefined;
    return this.#deviceByFingerprint.get(fingerprint);
  }

  /** Where the published CRL lives (`crl.pem` beside the state), or null for an in-memory state. */
  get stateDir(): string | null {
    return this.#stateDir;
  }

  /** The serials a CRL issued at `now` lists: revoked certificates with a known serial, not yet expired. */
  crlEntries(now: number = this.#clock()): RevokedSerial[] {
    const records = this.revokedCertificates().map((r) => ({ serialHex: r.serial_hex, revokedAtUnixMs: r.revoked_at_unix_ms, expiresAtUnixMs: r.expires_at_unix_ms }));
    return crlEntriesAt(records, now);
  }

  /** Signs a CRL of the current state, numbered above `lastPublished` and above every CRL this process issued. */
  async #signCrl(now: number, lastPublished: number | undefined): Promise<{ pem: string; entries: RevokedSerial[]; crlNumber: number }> {
    const last = lastPublished === undefined ? this.#lastCrlNumber : Math.max(lastPublished, this.#lastCrlNumber ?? 0);
    const crlNumber = nextCrlNumber(now, last);
    const entries = this.crlEntries(now);
    const pem = await this.#ca.createCrl({ revoked: entries, now, crlNumber });
    this.#lastCrlNumber = crlNumber;
    return { pem, entries, crlNumber };
  }

  /** A CRL of every revoked certificate the CA issued, for the TLS listener (cached per generation). */
  async crlPem(): Promise<string> {
    if (this.#crl?.generation === this.#doc.generation) return this.#crl.pem;
    const generation = this.#doc.generation;
    const { pem } = await this.#signCrl(this.#clock(), undefined);
    this.#crl = { generation, pem };
    return pem;
  }

  /**
   * A CRL freshly issued from the state as loaded, numbered above the published `crl.pem`; writes nothing and takes
   * no lock (`palyra ca crl`, beside a running gateway).
   */
  async issueCrl(): Promise<string> {
    const published = this.#stateDir === null ? undefined : await publishedCrlNumber(this.#stateDir);
    return (await this.#signCrl(this.#clock(), published)).pem;
  }

  /**
   * Issues a CRL of the current state and writes it to `crl.pem` beside the state (atomically), under the state
   * lock, so the file a concurrent publisher leaves is always of the newest state. Skips the write when this process
   * last wrote the same serials, unless `force` (the gateway's periodic re-issue, which moves nextUpdate on). Also
   * becomes the TLS listener's CRL. Without a state directory it is `crlPem()`.
   */
  async publishCrl(options: { force?: boolean } = {}): Promise<string> {
    const stateDir = this.#stateDir;
    if (stateDir === null) return this.crlPem();
    // Checked before the lock too: most identity changes (pairings) leave the serials as they were.
    const unchanged = async (): Promise<string | null> => {
      const published = this.#published;
      if (options.force === true || published === null || published.entries !== crlEntriesKey(this.crlEntries())) return null;
      return published.crlNumber === (await publishedCrlNumber(stateDir)) ? published.pem : null;
    };
    const current = await unchanged();
    if (current !== null) return current;
    return this.#backend.exclusive(async () => {
      const again = await unchanged();
      if (again !== null) return again;
      const now = this.#clock();
      const onDisk = await publishedCrlNumber(stateDir);
      const generation = this.#doc.generation;
      const { pem, entries, crlNumber } = await this.#signCrl(now, onDisk);
      await writeCrlFile(stateDir, pem);
      this.#published = { entries: crlEntriesKey(entries), crlNumber, pem };
      this.#crl = { generation, pem };
      return pem;
    });
  }

  // --- mutations ------------------------------------------------------------------------------------------------

  #sequenceOp(): IdentityOp {
    return { op: 'set_ca_sequence', value: this.#ca.sequence };
  }

  #issueForDevice(deviceId: string, csrDer: Uint8Array | null, now: number, validityMs?: number): Promise<IssuedCertificate & { privateKeyPem?: string }> {
    this.#ca = this.#ca.withSequenceAtLeast(this.#doc.state.ca_sequence);
    const validity = validityMs ?? this.#validityMs;
    return csrDer === null
      ? this.#ca.issueClientCertificateWithGeneratedKey({ deviceId, now, validityMs: validity })
      : this.#ca.issueClientCertificate({ csrDer, deviceId, now, validityMs: validity });
  }

  /** Issues a gateway server certificate (REFERENCE.md §1.4 SAN rules); a persisted mutation (the CA counter). */
  async issueGatewayServerCertificate(o: { commonName: string; dnsNames?: string[]; ipAddresses?: string[]; validityMs?: number }): Promise<IssuedCertificate & { privateKeyPem: string }> {
    return this.#mutate(async (state, now) => {
      this.#ca = this.#ca.withSequenceAtLeast(state.ca_sequence);
      const cert = await this.#ca.issueServerCertificate({ ...o, validityMs: o.validityMs ?? this.#validityMs, now });
      return { ops: [this.#sequenceOp()], result: cert, audit: ['server_certificate_issued', { subject: cert.subject, fingerprint: cert.fingerprint }] };
    });
  }

  /**
   * Pairs a verified device: signs its CSR (or, in compat mode, a gateway-made key), supersedes any previous
   * certificate of the same id, and persists. Re-checks the device ban (the reference does not).
   */
  async finalizeVerifiedPairing(o: { verified: VerifiedDevice; csrDer: Uint8Array | null; validityMs?: number }): Promise<IssuedDeviceCertificate> {
    const { verified } = o;
    validateCanonicalId(verified.deviceId);
    return this.#mutate(async (state, now) => {
      if (state.revoked_devices.has(verified.deviceId)) throw new PalyraError('device_revoked', `device ${verified.deviceId} is revoked`);
      const cert = await this.#issueForDevice(verified.deviceId, o.csrDer, now, o.validityMs);
      const previous = state.paired_devices.get(verified.deviceId);
      const device: PairedDeviceRecord = {
        device_id: verified.deviceId,
        client_kind: verified.clientKind,
        current_certificate: recordOf(cert),
        certificate_fingerprints: [cert.fingerprint],
        identity_fingerprint: verified.identityFingerprint,
        signing_public_key_hex: verified.signingPublicKeyHex,
        paired_at_unix_ms: now,
        roles: [],
        name: verified.name ?? null,
        method: verified.method ?? null,
      };
      const ops: IdentityOp[] = [this.#sequenceOp()];
      if (previous !== undefined) ops.push({ op: 'revoke_certificates', records: supersededCertificates(previous, 'superseded by re-pairing', now) });
      ops.push({ op: 'put_device', device });
      return {
        ops,
        result: { device, certificate: cert, privateKeyPem: cert.privateKeyPem ?? null, caCertificatePem: this.#ca.certificatePem },
        audit: [
          'pairing_finalized',
          { device_id: device.device_id, client_kind: clientKindToPascal(device.client_kind), identity_fingerprint: device.identity_fingerprint, certificate_fingerprint: cert.fingerprint, repaired: previous !== undefined },
        ],
      };
    });
  }

  /** Issues a new certificate and revokes every earlier one of the device (REFERENCE.md §2.9). */
  async forceRotate(deviceId: string, o: { csrDer: Uint8Array | null; validityMs?: number }): Promise<IssuedDeviceCertificate> {
    validateCanonicalId(deviceId);
    return this.#mutate(async (state, now) => this.#rotatePlan(state, deviceId, o.csrDer, now, o.validityMs));
  }

  async #rotatePlan(state: IdentityState, deviceId: string, csrDer: Uint8Array | null, now: number, validityMs?: number) {
    if (state.revoked_devices.has(deviceId)) throw new PalyraError('device_revoked', `device ${deviceId} is revoked`);
    const current = state.paired_devices.get(deviceId);
    if (current === undefined) throw new PalyraError('device_not_paired', `device ${deviceId} is not paired`);
    const cert = await this.#issueForDevice(deviceId, csrDer, now, validityMs);
    const device: PairedDeviceRecord = {
      ...current,
      current_certificate: recordOf(cert),
      certificate_fingerprints: [...current.certificate_fingerprints, cert.fingerprint],
    };
    const ops: IdentityOp[] = [
      this.#sequenceOp(),
      { op: 'revoke_certificates', records: supersededCertificates(current, 'superseded by rotation', now) },
      { op: 'put_device', device },
    ];
    const result: IssuedDeviceCertificate = { device, certificate: cert, privateKeyPem: cert.privateKeyPem ?? null, caCertificatePem: this.#ca.certificatePem };
    const audit: [string, Record<string, string | number | boolean | null>] = [
      'certificate_rotated',
      { device_id: deviceId, previous_fingerprint: current.current_certificate.fingerprint, certificate_fingerprint: cert.fingerprint },
    ];
    return { ops, result, audit };
  }

  /**
   * Rotates only when the current certificate expires within `thresholdMs` (REFERENCE.md `should_rotate`). Unlike the
   * reference this does not rotate merely because a reload forgot the key: devices hold their own keys.
   */
  async rotateIfDue(deviceId: string, o: { csrDer: Uint8Array | null; thresholdMs?: number; validityMs?: number; now?: number }): Promise<{ rotated: boolean; result: IssuedDeviceCertificate | null }> {
    validateCanonicalId(deviceId);
    type Outcome = { rotated: boolean; result: IssuedDeviceCertificate | null };
    return this.#mutate<Outcome>(async (state, clockNow) => {
      const now = o.now ?? clockNow;
      if (state.revoked_devices.has(deviceId)) throw new PalyraError('device_revoked', `device ${deviceId} is revoked`);
      const current = state.paired_devices.get(deviceId);
      if (current === undefined) throw new PalyraError('device_not_paired', `device ${deviceId} is not paired`);
      if (!shouldRotate(current.current_certificate.expires_at_unix_ms, now, o.thresholdMs ?? DEFAULT_ROTATION_THRESHOLD_MS)) {
        return { ops: [], result: { rotated: false, result: null } };
      }
      const plan = await this.#rotatePlan(state, deviceId, o.csrDer, now, o.validityMs);
      return { ops: plan.ops, result: { rotated: true, result: plan.result }, audit: plan.audit };
    });
  }

  /** Bans a device id (also one never paired: a pre-emptive ban) and revokes all of its certificates. */
  async revokeDevice(deviceId: string, reason: string): Promise<void> {
    validateCanonicalId(deviceId);
    await this.#mutate((state, now) => {
      const ops: IdentityOp[] = [];
      const current = state.paired_devices.get(deviceId);
      if (current !== undefined) {
        ops.push({ op: 'revoke_certificates', records: supersededCertificates(current, reason, now) });
        ops.push({ op: 'delete_device', device_id: deviceId });
      }
      ops.push({
        op: 'put_revoked_device',
        record: {
          device_id: deviceId,
          reason,
          revoked_at_unix_ms: now,
          client_kind: current?.client_kind ?? null,
          identity_fingerprint: current?.identity_fingerprint ?? null,
          certificate_fingerprint: current?.current_certificate.fingerprint ?? null,
          name: current?.name ?? null,
        },
      });
      return Promise.resolve({ ops, result: undefined, audit: ['device_revoked', { device_id: deviceId, reason, was_paired: current !== undefined }] });
    });
  }

  /** Revokes one certificate by fingerprint; the device stays paired only if it was a superseded certificate. */
  async revokeCertificate(fingerprint: string, reason: string): Promise<{ deviceId: string | null }> {
    return this.#mutate((state, now) => {
      const owner = [...state.paired_devices.values()].find((d) => d.certificate_fingerprints.includes(fingerprint));
      const ops: IdentityOp[] = [];
      if (owner !== undefined) {
        const isCurrent = owner.current_certificate.fingerprint === fingerprint;
        ops.push({
          op: 'revoke_certificates',
          records: [{
            fingerprint,
            serial_hex: isCurrent ? owner.current_certificate.serial_hex : '',
            device_id: owner.device_id,
            reason,
            revoked_at_unix_ms: now,
            expires_at_unix_ms: isCurrent ? owner.current_certificate.expires_at_unix_ms : Number.MAX_SAFE_INTEGER,
          }],
        });
        // A device whose current certificate is revoked is no longer paired; it may pair again (PROTOCOL.md seed §Revocation).
        if (isCurrent) ops.push({ op: 'delete_device', device_id: owner.device_id });
      } else {
        ops.push({ op: 'revoke_certificates', records: [{ fingerprint, serial_hex: '', device_id: null, reason, revoked_at_unix_ms: now, expires_at_unix_ms: Number.MAX_SAFE_INTEGER }] });
      }
      return Promise.resolve({ ops, result: { deviceId: owner?.device_id ?? null }, audit: ['certificate_revoked', { fingerprint, device_id: owner?.device_id ?? null, reason }] });
    });
  }

  /** Unpairs without a ban (the id may pair again); its certificates are revoked. Returns whether it was paired. */
  async removePairedDevice(deviceId: string): Promise<boolean> {
    validateCanonicalId(deviceId);
    return this.#mutate((state, now) => {
      const current = state.paired_devices.get(deviceId);
      if (current === undefined) return Promise.resolve({ ops: [], result: false });
      return Promise.resolve({
        ops: [
          { op: 'revoke_certificates', records: supersededCertificates(current, 'device removed', now) },
          { op: 'delete_device', device_id: deviceId },
        ],
        result: true,
        audit: ['device_removed', { device_id: deviceId }],
      });
    });
  }

  /** Lifts a ban; certificates stay revoked. Returns whether a ban existed. */
  async clearRevokedDevice(deviceId: string): Promise<boolean> {
    validateCanonicalId(deviceId);
    return this.#mutate((state) => {
      if (!state.revoked_devices.has(deviceId)) return Promise.resolve({ ops: [], result: false });
      return Promise.resolve({ ops: [{ op: 'delete_revoked_device', device_id: deviceId }], result: true, audit: ['device_unbanned', { device_id: deviceId }] });
    });
  }

  /**
   * Sets a paired device's display name (normalized; audited `device_renamed`). Not paired → `not_found`; an invalid
   * name → `invalid_argument`, and nothing changes. Renaming to the current name writes nothing.
   */
  async renameDevice(deviceId: string, name: string): Promise<PairedDeviceRecord> {
    validateCanonicalId(deviceId);
    const normalized = normalizeDeviceName(name);
    return this.#mutate((state) => {
      const current = state.paired_devices.get(deviceId);
      if (current === undefined) throw new PalyraError('not_found', `device ${deviceId} is not paired`);
      if (current.name === normalized) return Promise.resolve({ ops: [], result: current });
      const device: PairedDeviceRecord = { ...current, name: normalized };
      return Promise.resolve({ ops: [{ op: 'put_device', device }], result: device, audit: ['device_renamed', { device_id: deviceId, name: normalized }] });
    });
  }

  /** Grants or withdraws a role of a paired device. */
  async setDeviceRole(deviceId: string, role: DeviceRole, granted: boolean): Promise<PairedDeviceRecord> {
    validateCanonicalId(deviceId);
    return this.#mutate((state) => {
      const current = state.paired_devices.get(deviceId);
      if (current === undefined) throw new PalyraError('device_not_paired', `device ${deviceId} is not paired`);
      const roles: DeviceRole[] = granted ? [...new Set([...current.roles, role])] : current.roles.filter((r: string) => r !== role);
      const device = { ...current, roles };
      return Promise.resolve({ ops: [{ op: 'put_device', device }], result: device, audit: [granted ? 'role_granted' : 'role_revoked', { device_id: deviceId, role }] });
    });
  }

  /** Drops revoked-certificate entries whose certificates have expired anyway (keeps the CRL and state small). */
  async pruneExpiredRevocations(): Promise<void> {
    await this.#mutate((_state, now) => Promise.resolve({ ops: [{ op: 'prune_revoked_certificates', expired_before_unix_ms: now }], result: undefined }));
  }
}

/**
 * Every certificate of a device as revocation records: the current one with serial and expiry (for the CRL and for
 * pruning). Earlier ones were revoked when they were superseded; history entries not yet revoked (migrated state)
 * are added without an expiry. Entries already revoked keep their original record.
 */
function supersededCertificates(device: PairedDeviceRecord, reason: string, now: number): RevokedCertificateRecord[] {
  const current = device.current_certificate;
  const records: RevokedCertificateRecord[] = [{
    fingerprint: current.fingerprint,
    serial_hex: current.serial_hex,
    device_id: device.device_id,
    reason,
    revoked_at_unix_ms: now,
    expires_at_unix_ms: current.expires_at_unix_ms,
  }];
  for (const fp of device.certificate_fingerprints) {
    if (fp !== current.fingerprint) {
      records.push({ fingerprint: fp, serial_hex: '', device_id: device.device_id, reason, revoked_at_unix_ms: now, expires_at_unix_ms: Number.MAX_SAFE_INTEGER });
    }
  }
  return records;
}

/** A comparable form of a CRL's entries (serial and date), independent of their order. */
function crlEntriesKey(entries: readonly RevokedSerial[]): string {
  return entries
    .map((e) => `${normalizeSerialHex(e.serialHex)}@${e.revokedAtUnixMs}`)
    .sort()
    .join(',');
}

function serializeCa(stored: StoredCertificateAuthority): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ certificate_pem: stored.certificatePem, private_key_pem: stored.privateKeyPem, sequence: stored.sequence }),
  );
}

function parseStoredCa(bytes: Uint8Array): StoredCertificateAuthority {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new PalyraError('state_corrupt', 'CA state is not valid JSON', { cause: e });
  }
  const o = json as Record<string, unknown>;
  if (typeof o.certificate_pem !== 'string' || typeof o.private_key_pem !== 'string') {
    throw new PalyraError('state_corrupt', 'CA state lacks certificate_pem or private_key_pem');
  }
  return { certificatePem: o.certificate_pem, privateKeyPem: o.private_key_pem, sequence: typeof o.sequence === 'number' ? o.sequence : 0 };
}
