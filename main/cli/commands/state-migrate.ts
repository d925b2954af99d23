/**
 * `palyra state migrate --from-dir DIR --to URL`: moves a single gateway's file state into an empty state database
 * without re-pairing. The source is verified end to end first (documents, CA, rollback anchor, the whole audit
 * chain), then read under its state lock: the CA record, both documents (as whole snapshots at their generation) and
 * every audit entry verbatim. The target gets the source's store key (the CA's seal and the audit chain's MAC key
 * derive from it; it goes to --store-key-file or the OS keychain, never to the database), and everything is written
 * in one transaction under the state lock, which refuses a non-empty database, checks that the copied chain verifies
 * with the same head, and appends `state_migrated`. A failure leaves the database as it was.
 */

import { stat } from 'node:fs/promises';
import path from 'node:path';
import { constantTimeEqual, fromBase64, toBase64 } from '../../core/bytes.js';
import { PalyraError } from '../../core/errors.js';
import { GatewayAdmin, runtimeCodec } from '../../gateway/gateway-admin.js';
import { CA_STATE_KEY, IDENTITY_STATE_KEY, identityCodec } from '../../gateway/identity-manager.js';
import { RUNTIME_STATE_KEY } from '../../gateway/runtime-state.js';
import { verifyState } from '../../gateway/state-repair.js';
import { AuditLog, prepareAuditEntries } from '../../store/audit-log.js';
import type { AuditEntry, AuditHead } from '../../store/audit-log.js';
import { FilesystemSecretStore } from '../../store/fs-secret-store.js';
import type { Keychain } from '../../store/keychain.js';
import { KEYCHAIN_SERVICE } from '../../store/keychain.js';
import { PgAuditLog } from '../../store/pg/pg-audit-log.js';
import { PgContext } from '../../store/pg/pg-context.js';
import { redactDatabaseUrl, validateDatabaseUrl } from '../../store/pg/pg-errors.js';
import { KEY_CHECK_SECRET, KEY_CHECK_VALUE, migrateDatabase, pgStoreKeyAccount } from '../../store/pg/pg-open.js';
import type { PgStateLocation } from '../../store/pg/pg-open.js';
import { SCHEMA_VERSION } from '../../store/pg/pg-schema.js';
import { PgSecretStore } from '../../store/pg/pg-secret-store.js';
import { JournaledState } from '../../store/state-journal.js';
import { withStateLock } from '../../store/state-lock.js';
import { createKeyFileIfAbsent, findStoreKey, readKeyFile } from '../../store/store-key.js';

export interface MigrateFromDirReport {
  migrated: true;
  from_dir: string;
  database: string;
  schema_version: number;
  documents: Record<string, { generation: number }>;
  paired_devices: number;
  revoked_devices: number;
  /** The source chain as verified, and the target's after the copy (one `state_migrated` entry more). */
  audit: { entries: number; head: AuditHead; target_head: AuditHead };
  /** Where the target's store key now is: the key file named by --store-key-file, or the OS keychain. */
  store_key: { location: 'file'; path: string } | { location: 'os'; account: string };
}

interface SourceCopy {
  caRecord: Uint8Array;
  documents: { key: string; json: string; generation: number }[];
  entries: AuditEntry[];
  head: AuditHead;
  pairedDevices: number;
  revokedDevices: number;
}

function chainBroken(where: string, chain: { brokenAtSeq?: number; reason?: string }): PalyraError {
  return new PalyraError('audit_chain_broken', `audit log ${where}: entry ${chain.brokenAtSeq ?? '?'}: ${chain.reason ?? 'broken'}`, {
    details: { broken_at_seq: chain.brokenAtSeq ?? null },
  });
}

/** Everything the database gets, read under the source's state lock after the source verified. */
async function readSource(fromDir: string, key: Uint8Array): Promise<SourceCopy> {
  return withStateLock(fromDir, async () => {
    const store = await FilesystemSecretStore.open(fromDir, { key });
    const caRecord = await store.readSecret(CA_STATE_KEY);
    const identity = new JournaledState({ store, snapshotKey: IDENTITY_STATE_KEY, codec: identityCodec, journalKey: key });
    const runtime = new JournaledState({ store, snapshotKey: RUNTIME_STATE_KEY, codec: runtimeCodec, journalKey: key });
    await identity.refresh();
    await runtime.refresh();
    const log = await AuditLog.open(fromDir, { storeKey: key });
    const chain = await log.verifyChain();
    if (!chain.ok) throw chainBroken(log.file, chain);
    const entries = chain.entries === 0 ? [] : await log.tail(chain.entries);
    if (entries.length !== chain.entries || entries.at(-1)?.hash !== chain.head.hash) {
      throw new PalyraError('audit_chain_broken', `audit log ${log.file}: the chain changed while it was being read`);
    }
    // In the database the documents are whole snapshots (no journal): the codec's form at the loaded generation.
    const documents = [
      { key: IDENTITY_STATE_KEY, json: JSON.stringify(identityCodec.snapshot(identity.state, identity.generation)), generation: identity.generation },
      { key: RUNTIME_STATE_KEY, json: JSON.stringify(runtimeCodec.snapshot(runtime.state, runtime.generation)), generation: runtime.generation },
    ];
    // What the database will hold must load as the gateway loads it.
    identityCodec.parseSnapshot(JSON.parse(documents[0]!.json));
    runtimeCodec.parseSnapshot(JSON.parse(documents[1]!.json));
    return {
      caRecord,
      documents,
      entries,
      head: chain.head,
      pairedDevices: identity.state.paired_devices.size,
      revokedDevices: identity.state.revoked_devices.size,
    };
  });
}

/** Refuses a database that holds any state row or audit entry (`state_not_empty`). */
async function refuseNonEmpty(db: PgContext): Promise<void> {
  const rows = await db.query<{ secrets: string; audit: string }>('SELECT (SELECT count(*) FROM palyra_secrets) AS secrets, (SELECT count(*) FROM palyra_audit) AS audit');
  const secrets = Number(rows[0]?.secrets ?? 0);
  const audit = Number(rows[0]?.audit ?? 0);
  if (secrets > 0 || audit > 0) {
    throw new PalyraError('state_not_empty', `the state database ${db.where} is not empty (${secrets} state rows, ${audit} audit entries): migrate into an empty database; nothing was copied`, {
      details: { database: db.where, state_rows: secrets, audit_entries: audit },
    });
  }
}

/** The target's store key becomes the source's: into the key file (created 0600) or the keychain entry of the URL. */
async function installKey(location: PgStateLocation, keychain: Keychain | null, key: Uint8Array): Promise<MigrateFromDirReport['store_key']> {
  if (location.storeKeyFile !== null) {
    const file = path.resolve(location.storeKeyFile);
    const existing = await readKeyFile(file);
    if (existing === null) await createKeyFileIfAbsent(file, key);
    const now = await readKeyFile(file);
    if (now === null || !constantTimeEqual(now, key)) {
      throw new PalyraError('invalid_argument', `the store key file ${file} holds another key: the migrated state keeps the store key of the directory (its CA and audit chain are sealed with it); name a file that does not exist yet`, {
        details: { path: file },
      });
    }
    return { location: 'file', path: file };
  }
  if (keychain === null) {
    throw new PalyraError('keychain_unavailable', 'no OS keychain is available for the store key of the state database; pass --store-key-file FILE (a new file: it receives the store key of the directory)');
  }
  const account = pgStoreKeyAccount(location.databaseUrl);
  const stored = await keychain.get(KEYCHAIN_SERVICE, account);
  if (stored === null) await keychain.set(KEYCHAIN_SERVICE, account, toBase64(key));
  else if (!constantTimeEqual(fromBase64(stored), key)) {
    throw new PalyraError('invalid_argument', `the OS keychain already holds another store key for ${redactDatabaseUrl(location.databaseUrl)} (${account}): remove it, or pass --store-key-file FILE`);
  }
  return { location: 'os', account };
}

export async function migrateFromDir(o: { fromDir: string; to: PgStateLocation; keychain: Keychain | null; now?: () => number }): Promise<MigrateFromDirReport> {
  const clock = o.now ?? Date.now;
  const fromDir = path.resolve(o.fromDir);
  validateDatabaseUrl(o.to.databaseUrl);
  const database = redactDatabaseUrl(o.to.databaseUrl);
  try {
    await stat(fromDir);
  } catch {
    throw new PalyraError('not_found', `there is no gateway state in ${fromDir}`, { details: { path: fromDir } });
  }
  // 1. The source, verified end to end as `state verify` does (and audit entries a crash kept from the log copied
  //    to it, as the gateway's next load would).
  const found = await findStoreKey(fromDir, o.keychain);
  if (found === null) throw new PalyraError('not_found', `there is no gateway state in ${fromDir}`, { details: { path: fromDir } });
  const admin = await GatewayAdmin.openExisting({ stateDir: fromDir, keychain: o.keychain });
  if (admin === null) throw new PalyraError('not_found', `there is no gateway state in ${fromDir}`, { details: { path: fromDir } });
  try {
    await admin.refresh();
  } finally {
    await admin.close();
  }
  await verifyState(fromDir, o.keychain);

  // 2. The target: schema, then empty (checked before any key is written anywhere).
  await migrateDatabase(o.to.databaseUrl, clock());
  const db = new PgContext(o.to.databaseUrl, { max: 2 });
  try {
    await refuseNonEmpty(db);
    const source = await readSource(fromDir, found.key);
    const storeKey = await installKey(o.to, o.keychain, found.key);
    const store = new PgSecretStore(db, found.key);
    const audit = new PgAuditLog(db, found.key);
    const targetHead = await db.transaction(async () => {
      // Again under the state lock: a replica or another migration may have written since the first look.
      await refuseNonEmpty(db);
      await store.writeSecret(KEY_CHECK_SECRET, Buffer.from(KEY_CHECK_VALUE, 'utf8'));
      await store.writeSecret(CA_STATE_KEY, source.caRecord);
      for (const d of source.documents) await store.writeSecret(d.key, Buffer.from(d.json, 'utf8'));
      await audit.importEntries(source.entries);
      // 3. The copied chain verifies in the database, under the same key, to the same head.
      const copied = await audit.verifyChain();
      if (!copied.ok) throw chainBroken(audit.file, copied);
      if (copied.head.seq !== source.head.seq || copied.head.hash !== source.head.hash) {
        throw new PalyraError('audit_chain_broken', `audit log ${audit.file}: the copied chain ends at entry ${copied.head.seq}, the source at ${source.head.seq}`);
      }
      const fields = { from_dir: fromDir, paired_devices: source.pairedDevices, revoked_devices: source.revokedDevices, audit_entries: source.head.seq, audit_head: source.head.hash };
      await audit.appendPrepared(prepareAuditEntries(copied.head, [{ event: 'state_migrated', fields }], clock()));
      const after = await audit.verifyChain();
      if (!after.ok) throw chainBroken(audit.file, after);
      return after.head;
    });
    return {
      migrated: true,
      from_dir: fromDir,
      database,
      schema_version: SCHEMA_VERSION,
      documents: Object.fromEntries(source.documents.map((d) => [d.key, { generation: d.generation }])),
      paired_devices: source.pairedDevices,
      revoked_devices: source.revokedDevices,
      audit: { entries: source.head.seq, head: source.head, target_head: targetHead },
      store_key: storeKey,
    };
  } finally {
    await db.close();
  }
}
