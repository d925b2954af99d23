/**
 * `palyra state verify` and `palyra state repair --accept-loss` on a gateway state directory.
 *
 * verify loads everything the gateway would (journals, CA, anchor) without the lock and without writing, and checks
 * the whole audit chain. repair is for an operator who chooses to recover from damage: under the lock it keeps the
 * state as of the last record that loads (dropping the damaged record and everything after it), cuts the audit log
 * after its last entry that verifies, copies the kept records' audit entries to it, rewrites snapshots and journals,
 * records a `state_repaired` entry, and moves the rollback anchor to what is now on disk. Nothing is repaired
 * silently, and a missing CA cannot be repaired (its key is gone).
 */

import { PalyraError } from '../core/errors.js';
import { AuditLog, prepareAuditEntries } from '../store/audit-log.js';
import type { AuditHead, PreparedAuditEntry } from '../store/audit-log.js';
import { FilesystemSecretStore } from '../store/fs-secret-store.js';
import type { Keychain } from '../store/keychain.js';
import { FileStateBackend } from '../store/state-backend.js';
import { StateAnchor } from '../store/state-anchor.js';
import { JournaledState } from '../store/state-journal.js';
import type { JournalStatus } from '../store/state-journal.js';
import { findStoreKey } from '../store/store-key.js';
import { runtimeCodec } from './gateway-admin.js';
import { GatewayAdmin } from './gateway-admin.js';
import { CA_STATE_KEY, IDENTITY_STATE_KEY, identityCodec } from './identity-manager.js';
import type { IdentityOp, IdentityState } from './identity-state.js';
import { RUNTIME_STATE_KEY } from './runtime-state.js';
import type { RuntimeOp, RuntimeState } from './runtime-state.js';

export interface StateVerifyReport {
  ok: true;
  state_dir: string;
  documents: Record<string, { generation: number; records: number; torn_tail: boolean }>;
  audit: { entries: number; head: AuditHead };
  rollback_protection: 'keychain' | 'none';
}

function noState(stateDir: string): PalyraError {
  return new PalyraError('not_found', `there is no gateway state in ${stateDir}`, { details: { path: stateDir } });
}

function statusView(status: JournalStatus): { generation: number; records: number; torn_tail: boolean } {
  return { generation: status.generation, records: status.records, torn_tail: status.tornTail };
}

/** Checks the state and the audit chain; throws the code of the first problem (state_corrupt, state_rollback, …). */
export async function verifyState(stateDir: string, keychain: Keychain | null): Promise<StateVerifyReport> {
  const admin = await GatewayAdmin.openExisting({ stateDir, keychain });
  if (admin === null) throw noState(stateDir);
  const log = admin.identity.auditLog!;
  const chain = await log.verifyChain();
  if (!chain.ok) {
    throw new PalyraError('audit_chain_broken', `audit log ${log.file}: entry ${chain.brokenAtSeq ?? '?'}: ${chain.reason ?? 'broken'}`, {
      details: { path: log.file, broken_at_seq: chain.brokenAtSeq ?? null },
    });
  }
  return {
    ok: true,
    state_dir: stateDir,
    documents: { [IDENTITY_STATE_KEY]: statusView(admin.identity.journalStatus()), [RUNTIME_STATE_KEY]: statusView(admin.runtimeStatus()) },
    audit: { entries: chain.entries, head: chain.head },
    rollback_protection: admin.rollbackProtection,
  };
}

export interface StateRepairReport {
  repaired: true;
  state_dir: string;
  documents: Record<string, { generation: number; dropped_bytes: number }>;
  audit: { entries_dropped: number; entries: number };
  anchored: boolean;
}

/** Keeps what loads, drops the rest, and says what was dropped (also in the audit log). */
export async function repairState(stateDir: string, keychain: Keychain | null, now: () => number = Date.now): Promise<StateRepairReport> {
  const found = await findStoreKey(stateDir, keychain);
  if (found === null) throw noState(stateDir);
  const store = await FilesystemSecretStore.open(stateDir, { key: found.key });
  try {
    await store.readSecret(CA_STATE_KEY);
  } catch (e) {
    if (e instanceof PalyraError && e.code === 'secret_not_found') {
      throw new PalyraError('ca_missing', `the gateway CA (${CA_STATE_KEY}) is missing: the state cannot be repaired without it; restore it from a backup`);
    }
    throw e;
  }
  const audit = await AuditLog.open(stateDir, { storeKey: found.key });
  const anchor = found.location === 'os' && keychain !== null ? await StateAnchor.open(stateDir, keychain) : null;
  const backend = new FileStateBackend({ stateDir, audit, anchor, clock: now });
  const identity = new JournaledState<IdentityState, IdentityOp>({ store, snapshotKey: IDENTITY_STATE_KEY, codec: identityCodec, journalKey: found.key });
  const runtime = new JournaledState<RuntimeState, RuntimeOp>({ store, snapshotKey: RUNTIME_STATE_KEY, codec: runtimeCodec, journalKey: found.key });
  backend.register(identity);
  backend.register(runtime);
  return backend.repairSection(async () => {
    const documents: StateRepairReport['documents'] = {};
    for (const doc of [identity, runtime]) {
      const kept = await doc.loadAcceptingLoss();
      documents[doc.name] = { generation: kept.generation, dropped_bytes: kept.droppedBytes };
    }
    if (identity.state.audit_keyed_from_seq !== null) audit.setKeyedFrom(identity.state.audit_keyed_from_seq);
    const chain = await audit.verifyChain();
    const entriesDropped = chain.ok ? 0 : await audit.truncateAfter(chain.entries);
    let head = chain.ok ? chain.head : (await audit.verifyChain()).head;
    // The kept records' entries the log lacks: in order when they follow on, renumbered after the head otherwise.
    const pending: PreparedAuditEntry[] = [...identity.journalAudit, ...runtime.journalAudit].filter((e) => e.seq > head.seq).sort((a, b) => a.seq - b.seq);
    const contiguous = pending.every((e, i) => e.seq === head.seq + 1 + i);
    await audit.appendPrepared(contiguous ? pending : pending.map((e, i) => ({ ...e, seq: head.seq + 1 + i })));
    for (const doc of [identity, runtime]) await doc.compact();
    head = await audit.head();
    const dropped = Object.fromEntries(Object.entries(documents).map(([name, d]) => [name, d.dropped_bytes]));
    const entries = prepareAuditEntries(head, [
      {
        event: 'state_repaired',
        fields: {
          identity_generation: identity.generation,
          identity_dropped_bytes: dropped[IDENTITY_STATE_KEY] ?? 0,
          runtime_generation: runtime.generation,
          runtime_dropped_bytes: dropped[RUNTIME_STATE_KEY] ?? 0,
          audit_entries_dropped: entriesDropped,
        },
      },
    ], now());
    await runtime.commit([], entries);
    await audit.appendPrepared(entries);
    await backend.reanchor();
    return {
      repaired: true,
      state_dir: stateDir,
      documents,
      audit: { entries_dropped: entriesDropped, entries: (await audit.head()).seq },
      anchored: anchor !== null,
    };
  });
}
