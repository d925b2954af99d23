/**
 * GatewayAdmin: the operator's operations on a gateway state directory — mint codes, list and decide pairing
 * requests, list, revoke, remove and unban devices, read the audit log. One implementation serves the running
 * gateway, the `palyra` CLI in another process, and the desktop app; every decision is checked against fresh state
 * under the state lock and audited.
 */

import { stat } from 'node:fs/promises';
import type { ClientKind } from '../core/client-kind.js';
import { PalyraError } from '../core/errors.js';
import { validateCanonicalId } from '../core/ids.js';
import { newPairingCodeRecord, isPairingCodeExpired } from '../core/pairing-codes.js';
import type { PairingCodeRecord, PairingMethodKind } from '../core/pairing-codes.js';
import { buildPairingUri } from '../core/pairing-uri.js';
import { parseHostPort } from '../core/net-address.js';
import {
  approvePairingRequest,
  expirePairingRequestIfDue,
  isTerminalState,
  rejectPairingRequest,
} from '../core/pairing-requests.js';
import type { PairingRequestState, SasStatus } from '../core/pairing-requests.js';
import { AuditLog } from '../store/audit-log.js';
import type { AuditEntry } from '../store/audit-log.js';
import { FileStateBackend } from '../store/state-backend.js';
import type { StateBackend, StateBackendKind } from '../store/state-backend.js';
import { openPgState, resolvePgStoreKey } from '../store/pg/pg-open.js';
import type { PgReplicas, ReplicaRecord } from '../store/pg/pg-replicas.js';
import { PgStateBackend } from '../store/pg/pg-state-backend.js';
import type { PgStateLocation } from '../store/pg/pg-open.js';
import { StateAnchor } from '../store/state-anchor.js';
import { FilesystemSecretStore } from '../store/fs-secret-store.js';
import type { Keychain } from '../store/keychain.js';
import type { SecretStore } from '../store/secret-store.js';
import type { StateLockOptions } from '../store/state-lock.js';
import { findStoreKey, resolveStoreKey } from '../store/store-key.js';
import { JournaledState } from '../store/state-journal.js';
import type { JournalCodec, JournalStatus } from '../store/state-journal.js';
import { IDENTITY_STATE_KEY, IdentityManager } from './identity-manager.js';
import type { RevokedDeviceRecord } from './identity-state.js';
import {
  RUNTIME_STATE_KEY,
  applyRuntimeOp,
  emptyRuntimeState,
  runtimeStateFromJson,
  runtimeStateToJson,
} from './runtime-state.js';
import type { NodeRecord, RuntimeOp, RuntimeState, StoredPairingRequest } from './runtime-state.js';
import { sessionPrunable } from './shared-sessions.js';

export const runtimeCodec: JournalCodec<RuntimeState, RuntimeOp> = {
  empty: emptyRuntimeState,
  parseSnapshot: runtimeStateFromJson,
  snapshot: runtimeStateToJson,
  apply: applyRuntimeOp,
};

/** An audit entry a mutation records: event name and non-secret fields. */
export type AuditSpec = [string, Record<string, string | number | boolean | null>];

/** Terminal requests older than this are dropped from the runtime state (bounded growth). */
const TERMINAL_REQUEST_RETENTION_MS = 7 * 24 * 3_600_000;

export interface CodeView {
  method: PairingMethodKind;
  expires_at_unix_ms: number;
  kind: ClientKind | null;
  issued_by: string;
  created_at_unix_ms: number;
}

export interface RequestView {
  request_id: string;
  device_id: string;
  client_kind: ClientKind;
  state: PairingRequestState;
  method: PairingMethodKind;
  sas: string;
  sas_verifiable: boolean;
  /** confirmed (PIN pairing v2) | compare | unverifiable. */
  sas_status: SasStatus;
  identity_fingerprint: string;
  requested_at_unix_ms: number;
  expires_at_unix_ms: number;
  decided_at_unix_ms: number | null;
  reason: string | null;
  /** The name the device sent (or the gateway derived); null for a request from before names existed. */
  device_name: string | null;
}

export interface DeviceView {
  device_id: string;
  client_kind: ClientKind | null;
  status: 'paired' | 'revoked';
  identity_fingerprint: string | null;
  certificate_fingerprint: string | null;
  cert_expires_at_unix_ms: number | null;
  last_seen_at_unix_ms: number | null;
  capabilities: string[];
  roles: string[];
  paired_at_unix_ms: number | null;
  revoked_at_unix_ms: number | null;
  revoked_reason: string | null;
  platform: string | null;
  /** Display name; null for a device paired before names existed. */
  name: string | null;
  /** How it paired; null when not known. */
  method: PairingMethodKind | null;
  /** Peer address (no port) of its last RegisterNode; null when never seen. */
  last_address: string | null;
}

export interface MintedCode {
  method: PairingMethodKind;
  code: string;
  uri: string | null;
  expires_at_unix_ms: number;
}

export interface GatewayAdminOptions {
  stateDir: string;
  /** OS keychain for the store key; null = key file in the state directory. */
  keychain: Keychain | null;
  clock?: () => number;
  lock?: StateLockOptions;
  certificateValidityMs?: number;
  /** How long the keychain rollback anchor may lag behind changes that remove no trust (0: before answering). */
  anchorLagMs?: number;
}

/** Opening the state in PostgreSQL instead of the state directory (which then holds only crl.pem and gateway.v1.json). */
export interface PgAdminOptions {
  database: PgStateLocation;
  /** Local directory for the published CRL and the running-gateway file. */
  stateDir: string;
  keychain: Keychain | null;
  clock?: () => number;
  certificateValidityMs?: number;
  /** Keep a LISTEN connection (a running gateway): other replicas' changes arrive at once. */
  listen?: boolean;
}

export class GatewayAdmin {
  readonly identity: IdentityManager;
  readonly stateDir: string | null;
  readonly keyLocation: 'os' | 'file' | 'memory';
  readonly #runtime: JournaledState<RuntimeState, RuntimeOp>;
  readonly #backend: StateBackend;
  readonly #clock: () => number;
  readonly #listeners = new Set<(change: { identity: boolean; runtime: boolean }) => void>();
  /** Re-registrations that changed only the last-seen time, persisted together by #flushLastSeen. */
  readonly #lastSeen = new Map<string, NodeRecord>();
  #lastSeenTimer: NodeJS.Timeout | null = null;

  private constructor(
    o: { identity: IdentityManager; stateDir: string | null; runtime: JournaledState<RuntimeState, RuntimeOp>; clock: () => number; keyLocation: 'os' | 'file' | 'memory' },
  ) {
    this.identity = o.identity;
    this.stateDir = o.stateDir;
    this.#runtime = o.runtime;
    this.#backend = o.identity.backend;
    this.#clock = o.clock;
    this.keyLocation = o.keyLocation;
    // A load before a mutation may find another process's changes: they are news for the listeners too.
    this.#backend.onExternalChange((names) => {
      this.#emit({ identity: names.has(IDENTITY_STATE_KEY), runtime: names.has(RUNTIME_STATE_KEY) });
    });
  }

  /** Where the trust state lives: 'file' (the state directory), 'postgres', or 'memory' (tests). */
  get backendKind(): StateBackendKind {
    return this.#backend.kind;
  }

  /** The persistence seam (tests of the PostgreSQL backend reach its notification connection through it). */
  get backend(): StateBackend {
    return this.#backend;
  }

  /** The replica registry of a state database; null for the file and memory backends. */
  get #replicas(): PgReplicas | null {
    return this.#backend instanceof PgStateBackend ? this.#backend.replicas : null;
  }

  /** Records this gateway as a replica of the state database (heartbeat until close); no-op on other backends. */
  async registerReplica(addresses: readonly string[]): Promise<string | null> {
    const replicas = this.#replicas;
    return replicas === null ? null : replicas.register(addresses);
  }

  /** The live replicas of the state database, oldest first; [] on other backends. */
  async liveReplicas(): Promise<ReplicaRecord[]> {
    return (await this.#replicas?.live()) ?? [];
  }

  /**
   * The addresses a QR code lists: `given` first, then every live replica's (each once), so a device knows every
   * replica to fail over to. A database that cannot be read leaves `given` as it is.
   */
  async pairingAddresses(given: readonly string[]): Promise<string[]> {
    const out = [...given];
    const replicas = await this.liveReplicas().catch(() => []);
    for (const r of replicas) for (const a of r.addresses) if (!out.includes(a)) out.push(a);
    return out;
  }

  /** 'keychain': the state cannot be rolled back behind the anchor unnoticed; 'none' (key file mode): it can. */
  get rollbackProtection(): 'keychain' | 'none' {
    return this.#backend.rollbackProtection;
  }

  /** Writes a lagging rollback anchor; call before the process ends. */
  async close(): Promise<void> {
    if (this.#lastSeenTimer !== null) clearTimeout(this.#lastSeenTimer);
    this.#lastSeenTimer = null;
    await this.#flushLastSeen().catch(() => undefined);
    await this.#backend.close();
  }

  /** Opens (creating on first use) the gateway state in `stateDir`. */
  static async open(options: GatewayAdminOptions): Promise<GatewayAdmin> {
    const { key, location } = await resolveStoreKey(options.stateDir, options.keychain);
    const store = await FilesystemSecretStore.open(options.stateDir, { key });
    const anchor = location === 'os' && options.keychain !== null ? await StateAnchor.open(options.stateDir, options.keychain) : null;
    return GatewayAdmin.openWithStore({ ...options, store, journalKey: key, keyLocation: location, anchor });
  }

  /**
   * Opens (creating on first use: schema, key check, CA) the gateway state in PostgreSQL. The store key comes from
   * `database.storeKeyFile` or the keychain and never goes to the database.
   */
  static async openPg(options: PgAdminOptions): Promise<GatewayAdmin> {
    const key = await resolvePgStoreKey(options.database, options.keychain, true);
    const clock = options.clock ?? Date.now;
    const opened = await openPgState({ databaseUrl: options.database.databaseUrl, key, clock, listen: options.listen === true });
    try {
      const runtime = new JournaledState<RuntimeState, RuntimeOp>({ store: opened.store, snapshotKey: RUNTIME_STATE_KEY, codec: runtimeCodec });
      opened.backend.register(runtime);
      const identity = await IdentityManager.open({
        store: opened.store,
        stateDir: options.stateDir,
        clock,
        backend: opened.backend,
        ...(options.certificateValidityMs === undefined ? {} : { certificateValidityMs: options.certificateValidityMs }),
      });
      await opened.backend.refresh();
      return new GatewayAdmin({ identity, stateDir: options.stateDir, runtime, clock, keyLocation: options.database.storeKeyFile === null ? 'os' : 'file' });
    } catch (error) {
      await opened.backend.close();
      throw error;
    }
  }

  /** The existing state in PostgreSQL for a read (no CA is created); null when the database holds none yet. */
  static async openExistingPg(options: PgAdminOptions): Promise<GatewayAdmin | null> {
    // No key yet is `not_found` (naming the key file or keychain entry): a read never makes a key.
    const key = await resolvePgStoreKey(options.database, options.keychain, false);
    const clock = options.clock ?? Date.now;
    const opened = await openPgState({ databaseUrl: options.database.databaseUrl, key, clock, listen: false });
    try {
      const runtime = new JournaledState<RuntimeState, RuntimeOp>({ store: opened.store, snapshotKey: RUNTIME_STATE_KEY, codec: runtimeCodec });
      opened.backend.register(runtime);
      const identity = await IdentityManager.openExisting({ store: opened.store, stateDir: options.stateDir, clock, backend: opened.backend });
      if (identity === null) {
        await opened.backend.close();
        return null;
      }
      await opened.backend.refresh();
      return new GatewayAdmin({ identity, stateDir: options.stateDir, runtime, clock, keyLocation: options.database.storeKeyFile === null ? 'os' : 'file' });
    } catch (error) {
      await opened.backend.close();
      throw error;
    }
  }

  /**
   * The existing gateway state of `stateDir`, loaded without the lock and without creating or writing anything
   * (no key, no CA, no lock marker): for read-only commands. null when there is no gateway state there.
   */
  static async openExisting(options: GatewayAdminOptions): Promise<GatewayAdmin | null> {
    try {
      await stat(options.stateDir);
    } catch {
      return null;
    }
    const found = await findStoreKey(options.stateDir, options.keychain);
    if (found === null) return null;
    const store = await FilesystemSecretStore.open(options.stateDir, { key: found.key });
    const clock = options.clock ?? Date.now;
    const anchor = found.location === 'os' && options.keychain !== null ? await StateAnchor.open(options.stateDir, options.keychain) : null;
    const backend = new FileStateBackend({
      stateDir: options.stateDir,
      audit: await AuditLog.open(options.stateDir, { storeKey: found.key }),
      anchor,
      clock,
      ...(options.lock === undefined ? {} : { lock: options.lock }),
      ...(options.anchorLagMs === undefined ? {} : { anchorLagMs: options.anchorLagMs }),
    });
    const runtime = new JournaledState<RuntimeState, RuntimeOp>({ store, snapshotKey: RUNTIME_STATE_KEY, codec: runtimeCodec, journalKey: found.key });
    backend.register(runtime);
    const identity = await IdentityManager.openExisting({
      store,
      stateDir: options.stateDir,
      clock,
      journalKey: found.key,
      backend,
      ...(options.certificateValidityMs === undefined ? {} : { certificateValidityMs: options.certificateValidityMs }),
    });
    if (identity === null) return null;
    await runtime.refreshUnlocked();
    await backend.checkAnchor();
    return new GatewayAdmin({ identity, stateDir: options.stateDir, runtime, clock, keyLocation: found.location });
  }

  /** For tests and throwaway gateways: any SecretStore; `stateDir` null means in-memory locking and no audit log. */
  static async openWithStore(o: {
    store: SecretStore;
    stateDir: string | null;
    journalKey?: Uint8Array;
    keyLocation?: 'os' | 'file' | 'memory';
    clock?: () => number;
    lock?: StateLockOptions;
    certificateValidityMs?: number;
    anchor?: StateAnchor | null;
    anchorLagMs?: number;
  }): Promise<GatewayAdmin> {
    const clock = o.clock ?? Date.now;
    const audit = o.stateDir === null ? null : await AuditLog.open(o.stateDir, o.journalKey === undefined ? {} : { storeKey: o.journalKey });
    const backend = new FileStateBackend({
      stateDir: o.stateDir,
      audit,
      anchor: o.anchor ?? null,
      clock,
      ...(o.lock === undefined ? {} : { lock: o.lock }),
      ...(o.anchorLagMs === undefined ? {} : { anchorLagMs: o.anchorLagMs }),
    });
    const runtime = new JournaledState<RuntimeState, RuntimeOp>({
      store: o.store,
      snapshotKey: RUNTIME_STATE_KEY,
      codec: runtimeCodec,
      ...(o.journalKey === undefined ? {} : { journalKey: o.journalKey }),
    });
    // Registered first: opening the identity loads (and anchors) every document of the backend under the lock.
    backend.register(runtime);
    const identity = await IdentityManager.open({
      store: o.store,
      stateDir: o.stateDir,
      clock,
      backend,
      ...(o.lock === undefined ? {} : { lock: o.lock }),
      ...(o.journalKey === undefined ? {} : { journalKey: o.journalKey }),
      ...(o.certificateValidityMs === undefined ? {} : { certificateValidityMs: o.certificateValidityMs }),
    });
    return new GatewayAdmin({ identity, stateDir: o.stateDir, runtime, clock, keyLocation: o.keyLocation ?? 'memory' });
  }

  get now(): number {
    return this.#clock();
  }

  /** The runtime state as last loaded (call `refresh` to catch up with other processes). */
  get runtime(): RuntimeState {
    return this.#runtime.state;
  }

  /** What the last load of the runtime journal found. */
  runtimeStatus(): JournalStatus {
    return this.#runtime.status();
  }

  get runtimeGeneration(): number {
    return this.#runtime.generation;
  }

  /** Catches up with other processes. Reports which halves changed (and tells the change listeners). */
  async refresh(): Promise<{ identity: boolean; runtime: boolean }> {
    const changed = await this.#backend.refresh();
    const change = { identity: changed.has(IDENTITY_STATE_KEY), runtime: changed.has(RUNTIME_STATE_KEY) };
    if (change.identity || change.runtime) this.#emit(change);
    return change;
  }

  /** Like `refresh`, but takes the lock only when the files changed on disk (cheap enough to poll). */
  async refreshIfChanged(): Promise<{ identity: boolean; runtime: boolean }> {
    const dirty = (await this.identity.changedOnDisk()) || (await this.#runtime.changedOnDisk());
    return dirty ? this.refresh() : { identity: false, runtime: false };
  }

  /** Called after this process changed the state, or `refresh` found changes from another process. */
  onChange(listener: (change: { identity: boolean; runtime: boolean }) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(change: { identity: boolean; runtime: boolean }): void {
    for (const listener of this.#listeners) listener(change);
  }

  /**
   * Runs `plan` on fresh runtime state under the lock and commits what it returns, with its audit entry in the same
   * record. Expired codes and old terminal requests are pruned in the same record.
   */
  async mutateRuntime<T>(
    plan: (state: RuntimeState, now: number) => { ops: RuntimeOp[]; result: T; audit?: AuditSpec; audits?: readonly AuditSpec[] },
  ): Promise<T> {
    const seen = { changed: false };
    const result = await this.#backend.mutate(this.#runtime, (state, now) => {
      const { ops, result: value, audit, audits } = plan(state, now);
      seen.changed = ops.length > 0;
      // `audits`: several entries in the one record (aggregated counters flushed together).
      const entries = [...(audit === undefined ? [] : [audit]), ...(audits ?? [])].map(([event, fields]) => ({ event, fields }));
      return {
        ops: ops.length > 0 ? [...ops, ...this.#pruneOps(now)] : [],
        result: value,
        ...(entries.length === 0 || this.identity.auditLog === null ? {} : { audit: entries }),
      };
    });
    if (seen.changed) this.#emit({ identity: false, runtime: true });
    return result;
  }

  /** Runs an identity mutation and tells the change listeners. */
  async mutateIdentity<T>(fn: (identity: IdentityManager) => Promise<T>): Promise<T> {
    const result = await fn(this.identity);
    this.#emit({ identity: true, runtime: false });
    return result;
  }

  #pruneOps(now: number): RuntimeOp[] {
    const ops: RuntimeOp[] = [];
    for (const deviceId of this.#runtime.state.nodes.keys()) {
      if (this.identity.pairedDevice(deviceId) === undefined) ops.push({ op: 'delete_node', device_id: deviceId });
    }
    for (const [hash, record] of this.#runtime.state.codes) if (isPairingCodeExpired(record, now)) ops.push({ op: 'delete_code', code_hash: hash });
    for (const session of this.#runtime.state.sessions.values()) if (sessionPrunable(session, now)) ops.push({ op: 'delete_session', session_id: session.sessionId });
    for (const request of this.#runtime.state.requests.values()) {
      const current = expirePairingRequestIfDue(request, now);
      const decided = current.decidedAtUnixMs ?? current.requestedAtUnixMs;
      if (isTerminalState(current.state) && now - decided > TERMINAL_REQUEST_RETENTION_MS) ops.push({ op: 'delete_request', request_id: request.requestId });
    }
    return ops;
  }

  /** Appends an audit entry (non-secret fields only). */
  async audit(event: string, fields: Record<string, string | number | boolean | null>): Promise<void> {
    if (this.identity.auditLog === null) return;
    // An audit-only record in the runtime journal: durable, and copied to the log like any other.
    await this.#backend.mutate(this.#runtime, () => ({ ops: [], result: undefined, audit: [{ event, fields }] }));
  }

  async auditTail(count: number): Promise<{ entries: AuditEntry[]; chain: { ok: boolean; entries: number; brokenAtSeq?: number; reason?: string } }> {
    const log = this.identity.auditLog;
    if (log === null) return { entries: [], chain: { ok: true, entries: 0 } };
    return log.tailChecked(count);
  }

  // --- codes ----------------------------------------------------------------------------------------------------

  /**
   * Mints a single-use code. For QR the URI carries the gateway addresses and the CA pin. A new PIN code resets the
   * PIN guessing budget and voids older PIN codes (PROTOCOL.md §3).
   */
  async mintCode(o: { method: PairingMethodKind; kind: ClientKind | null; ttlMs?: number; issuedBy: string; gatewayAddresses: string[]; gatewayName: string | null }): Promise<MintedCode> {
    // On a state database the QR lists every live replica too (`gw=A,B,C`).
    const addresses = o.method === 'qr' ? await this.pairingAddresses(o.gatewayAddresses) : o.gatewayAddresses;
    const gateways = addresses.map((a) => parseHostPort(a));
    if (o.method === 'qr' && gateways.length === 0) throw new PalyraError('invalid_argument', 'a QR code needs at least one gateway address');
    return this.mutateRuntime((_state, now) => {
      const { code, record } = newPairingCodeRecord({ method: o.method, kind: o.kind, issuedBy: o.issuedBy, ttlMs: o.ttlMs, now });
      const uri =
        o.method === 'qr'
          ? buildPairingUri({
              version: 1,
              gateways,
              method: 'qr',
              token: code,
              caPin: this.identity.caSpkiPin,
              kind: o.kind ?? 'desktop',
              expiresAtUnixS: Math.floor(record.expiresAtUnixMs / 1000),
              name: o.gatewayName,
            })
          : null;
      const ops: RuntimeOp[] = [];
      if (o.method === 'pin') {
        ops.push({ op: 'delete_codes', method: 'pin' }, { op: 'set_pin_budget', snapshot: null }, { op: 'set_pin_failures_since_mint', value: 0 });
      }
      ops.push({ op: 'put_code', record });
      return {
        ops,
        result: { method: o.method, code, uri, expires_at_unix_ms: record.expiresAtUnixMs },
        audit: ['code_minted', { method: o.method, kind: o.kind, issued_by: record.issuedBy, expires_at_unix_ms: record.expiresAtUnixMs }],
      };
    });
  }

  listCodes(): CodeView[] {
    const now = this.#clock();
    return [...this.#runtime.state.codes.values()]
      .filter((c) => !isPairingCodeExpired(c, now))
      .sort((a, b) => a.createdAtUnixMs - b.createdAtUnixMs)
      .map((c: PairingCodeRecord) => ({ method: c.method, expires_at_unix_ms: c.expiresAtUnixMs, kind: c.kind, issued_by: c.issuedBy, created_at_unix_ms: c.createdAtUnixMs }));
  }

  // --- requests -------------------------------------------------------------------------------------------------

  /** A request with expiry applied as of now. */
  request(requestId: string): StoredPairingRequest | undefined {
    const r = this.#runtime.state.requests.get(requestId);
    return r === undefined ? undefined : { ...r, ...expirePairingRequestIfDue(r, this.#clock()) };
  }

  listRequests(filter: { state?: PairingRequestState } = {}): RequestView[] {
    const now = this.#clock();
    return [...this.#runtime.state.requests.values()]
      .map((r) => expirePairingRequestIfDue(r, now))
      .filter((r) => filter.state === undefined || r.state === filter.state)
      .sort((a, b) => b.requestedAtUnixMs - a.requestedAtUnixMs || (a.requestId < b.requestId ? -1 : 1))
      .map(requestView);
  }

  async approve(requestId: string, reason?: string): Promise<RequestView> {
    return this.#decide(requestId, 'approve', reason);
  }

  async reject(requestId: string, reason?: string): Promise<RequestView> {
    return this.#decide(requestId, 'reject', reason);
  }

  async #decide(requestId: string, decision: 'approve' | 'reject', reason?: string): Promise<RequestView> {
    validateRequestId(requestId);
    if (decision === 'approve') await this.identity.refreshIfChanged();
    return this.mutateRuntime((state, now) => {
      const stored = state.requests.get(requestId);
      if (stored === undefined) throw new PalyraError('pairing_request_not_found', `pairing request ${requestId} was not found`);
      const options = { now, ...(reason === undefined ? {} : { reason }) };
      // The state machine first: a request that is not pending is pairing_request_not_pending, whatever else holds.
      const next = decision === 'approve' ? approvePairingRequest(stored, options) : rejectPairingRequest(stored, options);
      // Approving a device banned while its request was pending would pair a revoked device (a reference gap).
      if (decision === 'approve' && this.identity.isDeviceRevoked(stored.deviceId)) {
        throw new PalyraError('device_revoked', `device ${stored.deviceId} is revoked; unban it before approving`);
      }
      const updated: StoredPairingRequest = { ...stored, ...next };
      return {
        ops: [{ op: 'put_request', request: updated }],
        result: requestView(updated),
        audit: [
          decision === 'approve' ? 'pairing_approved' : 'pairing_rejected',
          { request_id: requestId, device_id: updated.deviceId, sas: updated.sas, sas_verifiable: updated.sasVerifiable, reason: updated.decisionReason },
        ],
      };
    });
  }

  // --- devices --------------------------------------------------------------------------------------------------

  listDevices(live: ReadonlyMap<string, number> = new Map()): { devices: DeviceView[]; revoked_certificate_fingerprints: string[] } {
    const nodes = this.#runtime.state.nodes;
    const devices: DeviceView[] = [];
    for (const d of this.identity.listPairedDevices()) {
      const node = this.node(d.device_id);
      devices.push({
        device_id: d.device_id,
        client_kind: d.client_kind,
        status: 'paired',
        identity_fingerprint: d.identity_fingerprint,
        certificate_fingerprint: d.current_certificate.fingerprint,
        cert_expires_at_unix_ms: d.current_certificate.expires_at_unix_ms,
        last_seen_at_unix_ms: live.get(d.device_id) ?? node?.lastSeenAtUnixMs ?? null,
        capabilities: capabilityNames(node),
        roles: [...d.roles],
        paired_at_unix_ms: d.paired_at_unix_ms,
        revoked_at_unix_ms: null,
        revoked_reason: null,
        platform: node?.platform ?? null,
        name: d.name ?? null,
        method: d.method ?? null,
        last_address: node?.lastAddress ?? null,
      });
    }
    for (const r of this.identity.listRevokedDevices()) devices.push(revokedView(r, nodes.get(r.device_id)));
    devices.sort((a, b) => (a.device_id < b.device_id ? -1 : a.device_id > b.device_id ? 1 : a.status < b.status ? -1 : 1));
    return { devices, revoked_certificate_fingerprints: this.identity.revokedCertificateFingerprints() };
  }

  async revokeDevice(deviceId: string, reason: string): Promise<void> {
    validateCanonicalId(deviceId);
    await this.mutateIdentity((m) => m.revokeDevice(deviceId, reason.trim() === '' ? 'revoked_by_operator' : reason.trim()));
    await this.#dropNode(deviceId);
  }

  /** Unpairs (no ban). Unknown device → `not_found`. */
  async removeDevice(deviceId: string): Promise<void> {
    validateCanonicalId(deviceId);
    if (!(await this.mutateIdentity((m) => m.removePairedDevice(deviceId)))) throw new PalyraError('not_found', `device ${deviceId} is not paired`);
    await this.#dropNode(deviceId);
  }

  /**
   * Sets a paired device's display name (trimmed, NFC, 1–64 characters, no control characters; audited
   * `device_renamed`). Not paired → `not_found`; a bad name → `invalid_argument`. Returns the device as listed.
   */
  async renameDevice(deviceId: string, name: string, live: ReadonlyMap<string, number> = new Map()): Promise<DeviceView> {
    validateCanonicalId(deviceId);
    await this.mutateIdentity((m) => m.renameDevice(deviceId, name));
    const device = this.listDevices(live).devices.find((d) => d.device_id === deviceId && d.status === 'paired');
    if (device === undefined) throw new PalyraError('not_found', `device ${deviceId} is not paired`);
    return device;
  }

  /** Lifts a ban. Not banned → `not_found`. */
  async unbanDevice(deviceId: string): Promise<void> {
    validateCanonicalId(deviceId);
    if (!(await this.mutateIdentity((m) => m.clearRevokedDevice(deviceId)))) throw new PalyraError('not_found', `device ${deviceId} is not revoked`);
  }

  /**
   * Grants a paired device the 'admin' role: it may then call palyra.admin.v1.GatewayAdmin over mTLS. Not paired →
   * `device_not_paired`. Returns the device as `listDevices` shows it.
   */
  async grantAdmin(deviceId: string): Promise<DeviceView> {
    return this.#setAdmin(deviceId, true);
  }

  /** Withdraws the 'admin' role (a running gateway ends the device's admin streams at once). Not paired → `device_not_paired`. */
  async revokeAdmin(deviceId: string): Promise<DeviceView> {
    return this.#setAdmin(deviceId, false);
  }

  async #setAdmin(deviceId: string, granted: boolean): Promise<DeviceView> {
    validateCanonicalId(deviceId);
    await this.mutateIdentity((m) => m.setDeviceRole(deviceId, 'admin', granted));
    const device = this.listDevices().devices.find((d) => d.device_id === deviceId && d.status === 'paired');
    if (device === undefined) throw new PalyraError('device_not_paired', `device ${deviceId} is not paired`);
    return device;
  }

  /** Whether the device is paired, not banned, and holds the 'admin' role (as of the last loaded state). */
  isAdmin(deviceId: string): boolean {
    const device = this.identity.pairedDevice(deviceId);
    return device !== undefined && !this.identity.isDeviceRevoked(deviceId) && device.roles.includes('admin');
  }

  /**
   * After an unpair or revocation has been committed: forgets the device's node record. The identity change is what
   * counts and is already durable, so this follow-up neither fails the command nor takes the lock when there is
   * nothing to drop; a record it could not drop is pruned by the next runtime mutation.
   */
  async #dropNode(deviceId: string): Promise<void> {
    if (!this.#runtime.state.nodes.has(deviceId)) return;
    await this.mutateRuntime((state) => ({ ops: state.nodes.has(deviceId) ? [{ op: 'delete_node', device_id: deviceId }] : [], result: undefined })).catch(
      () => undefined,
    );
  }

  /**
   * Records a node's registration. A new node or a changed platform or capability list is durable before this
   * returns; a re-registration that changes only the last-seen time (every reconnect) is kept in memory and written
   * with the others within LAST_SEEN_FLUSH_MS (and at close), so reconnect storms cost no lock and no fsync each.
   */
  async putNode(node: NodeRecord): Promise<void> {
    const stored = this.#runtime.state.nodes.get(node.deviceId);
    if (stored !== undefined && sameRegistration(stored, node)) {
      this.#lastSeen.set(node.deviceId, node);
      this.#lastSeenTimer ??= setTimeout(() => {
        this.#lastSeenTimer = null;
        void this.#flushLastSeen().catch(() => undefined);
      }, LAST_SEEN_FLUSH_MS).unref();
      return;
    }
    this.#lastSeen.delete(node.deviceId);
    await this.mutateRuntime(() => ({ ops: [{ op: 'put_node', node }], result: undefined }));
  }

  /** The node record as this process knows it, including a last-seen time not yet written. */
  node(deviceId: string): NodeRecord | undefined {
    return this.#lastSeen.get(deviceId) ?? this.#runtime.state.nodes.get(deviceId);
  }

  async #flushLastSeen(): Promise<void> {
    if (this.#lastSeen.size === 0) return;
    const pending = [...this.#lastSeen.values()];
    this.#lastSeen.clear();
    await this.mutateRuntime((state) => ({
      // A node dropped (revoked, removed) or re-registered differently meanwhile keeps what the state says.
      ops: pending
        .filter((n) => {
          const current = state.nodes.get(n.deviceId);
          return current !== undefined && sameRegistration(current, n);
        })
        .map((node): RuntimeOp => ({ op: 'put_node', node })),
      result: undefined,
    }));
  }
}

/** How long a re-registration's last-seen time may stay in memory only. */
const LAST_SEEN_FLUSH_MS = 5_000;

function sameRegistration(a: NodeRecord, b: NodeRecord): boolean {
  return (
    a.platform === b.platform &&
    a.registeredAtUnixMs === b.registeredAtUnixMs &&
    a.capabilities.length === b.capabilities.length &&
    a.capabilities.every((c, i) => c.name === b.capabilities[i]!.name && c.available === b.capabilities[i]!.available)
  );
}

function validateRequestId(requestId: string): void {
  try {
    validateCanonicalId(requestId);
  } catch {
    throw new PalyraError('invalid_argument', 'request_id must be a canonical ULID');
  }
}

function capabilityNames(node: NodeRecord | undefined): string[] {
  return node === undefined ? [] : node.capabilities.filter((c) => c.available).map((c) => c.name);
}

function revokedView(r: RevokedDeviceRecord, node: NodeRecord | undefined): DeviceView {
  return {
    device_id: r.device_id,
    client_kind: r.client_kind,
    status: 'revoked',
    identity_fingerprint: r.identity_fingerprint,
    certificate_fingerprint: r.certificate_fingerprint,
    cert_expires_at_unix_ms: null,
    last_seen_at_unix_ms: node?.lastSeenAtUnixMs ?? null,
    capabilities: capabilityNames(node),
    roles: [],
    paired_at_unix_ms: null,
    revoked_at_unix_ms: r.revoked_at_unix_ms,
    revoked_reason: r.reason,
    platform: node?.platform ?? null,
    name: r.name ?? null,
    method: null,
    last_address: node?.lastAddress ?? null,
  };
}

export function requestView(r: StoredPairingRequest | import('../core/pairing-requests.js').PairingRequest): RequestView {
  return {
    request_id: r.requestId,
    device_id: r.deviceId,
    client_kind: r.clientKind,
    state: r.state,
    method: r.method,
    sas: r.sas,
    sas_verifiable: r.sasVerifiable,
    sas_status: r.sasStatus,
    identity_fingerprint: r.identityFingerprint,
    requested_at_unix_ms: r.requestedAtUnixMs,
    expires_at_unix_ms: r.expiresAtUnixMs,
    decided_at_unix_ms: r.decidedAtUnixMs,
    reason: r.decisionReason,
    device_name: r.deviceName ?? null,
  };
}
