/**
 * `palyra state verify | repair --accept-loss`: check a gateway state directory the way the gateway loads it, and
 * recover from damage when the operator chooses to accept the loss.
 */

import path from 'node:path';
import { repairState, verifyState } from '../../gateway/state-repair.js';
import { chooseKeychain } from '../../platform/keychain-choice.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { usageError } from '../args.js';
import type { CliContext } from '../context.js';
import { resolveDatabase, resolveStateDir, runGroup } from '../context.js';
import { PalyraError } from '../../core/errors.js';
import { RUNTIME_STATE_KEY } from '../../gateway/runtime-state.js';
import { IDENTITY_STATE_KEY } from '../../gateway/identity-manager.js';
import { migrateDatabase } from '../../store/pg/pg-open.js';
import { redactDatabaseUrl, validateDatabaseUrl } from '../../store/pg/pg-errors.js';
import { SCHEMA_VERSION } from '../../store/pg/pg-schema.js';
import { openExistingAdmin, stateLabel } from '../state-open.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK } from '../output.js';
import { migrateFromDir } from './state-migrate.js';

const VERIFY_SPEC: CommandSpec = defineCommand({
  name: 'state verify',
  summary: 'check journals, snapshots, CA, rollback anchor and audit chain',
  description: `Loads the state as the gateway does — without the lock and without writing — and checks the whole audit chain.
Fails (exit 1) with the first problem: error[state_corrupt] (a damaged journal or snapshot, naming it),
error[state_rollback] (behind the OS keychain's anchor), error[ca_missing], error[audit_chain_broken].`,
  options: {},
  positionals: [],
  notes: [
    `With --json: {"ok":true,"state_dir":"…","documents":{"identity/state.v1.json":{"generation":N,"records":N,"torn_tail":false},
"node-runtime.v1.json":{…}},"audit":{"entries":N,"head":{"seq":N,"hash":"…"}},"rollback_protection":"keychain"|"none"}`,
  ],
});

async function runVerify(args: ParsedCommand, context: CliContext): Promise<number> {
  if (resolveDatabase(args, context.env) !== null) return runVerifyDatabase(args, context);
  const stateDir = resolveStateDir(args, context.env);
  const report = await verifyState(stateDir, (await chooseKeychain(context.env)).keychain);
  const { out } = context;
  if (out.json) {
    out.document(report);
    return EXIT_OK;
  }
  out.line(`State OK: ${stateDir}`);
  for (const [name, d] of Object.entries(report.documents)) out.line(`  ${name}: generation ${d.generation}, ${d.records} journal records${d.torn_tail ? ' (a torn final record, never acknowledged)' : ''}`);
  out.line(`  audit log: ${report.audit.entries} entries, chain verified`);
  out.line(`  rollback protection: ${report.rollback_protection === 'keychain' ? 'OS keychain anchor' : 'none (key file mode)'}`);
  return EXIT_OK;
}

const REPAIR_SPEC: CommandSpec = defineCommand({
  name: 'state repair',
  summary: 'keep what loads and drop the damage (--accept-loss)',
  usage: ['--accept-loss'],
  description: `Recovers a damaged state directory, accepting the loss of what is damaged: keeps each document as of its last
record that loads (the damaged record and everything after it are dropped), cuts the audit log after its last entry that
verifies, rewrites snapshots and journals, records a state_repaired audit entry saying what was dropped, and moves the
rollback anchor to the repaired state. Stop the gateway first. Devices revoked in a dropped record are NOT revoked
afterwards: check 'palyra devices list' and revoke again. A missing CA cannot be repaired (error[ca_missing]).`,
  options: {
    'accept-loss': { type: 'boolean', description: 'required: confirms that dropped records are lost' },
  },
  positionals: [],
  notes: [
    `With --json: {"repaired":true,"state_dir":"…","documents":{"identity/state.v1.json":{"generation":N,"dropped_bytes":N},…},
"audit":{"entries_dropped":N,"entries":N},"anchored":true|false}`,
  ],
});

/** `state verify --database-url`: the documents load (and decrypt) and the whole audit chain verifies. */
async function runVerifyDatabase(args: ParsedCommand, context: CliContext): Promise<number> {
  const admin = await openExistingAdmin(args, context);
  try {
    const chain = await admin.identity.auditLog!.verifyChain();
    if (!chain.ok) {
      throw new PalyraError('audit_chain_broken', `audit log ${stateLabel(args, context)}: entry ${chain.brokenAtSeq ?? '?'}: ${chain.reason ?? 'broken'}`);
    }
    const report = {
      ok: true,
      database: stateLabel(args, context),
      documents: { [IDENTITY_STATE_KEY]: { generation: admin.identity.generation }, [RUNTIME_STATE_KEY]: { generation: admin.runtimeGeneration } },
      audit: { entries: chain.entries, head: chain.head },
      rollback_protection: admin.rollbackProtection,
    };
    const { out } = context;
    if (out.json) out.document(report);
    else {
      out.line(`State OK: ${report.database}`);
      out.line(`  ${IDENTITY_STATE_KEY}: generation ${admin.identity.generation}`);
      out.line(`  ${RUNTIME_STATE_KEY}: generation ${admin.runtimeGeneration}`);
      out.line(`  audit log: ${chain.entries} entries, chain verified`);
    }
    return EXIT_OK;
  } finally {
    await admin.close();
  }
}

const MIGRATE_SPEC: CommandSpec = defineCommand({
  name: 'state migrate',
  summary: 'apply the state database schema, or copy a state directory into an empty database',
  usage: ['[--database-url URL]', '--from-dir DIR --to URL [--store-key-file FILE]'],
  description: `Without --from-dir: applies the schema migrations the state database (--database-url or PALYRA_DATABASE_URL)
lacks, in one transaction under an advisory lock (replicas starting at the same time are safe: each migration is applied
once). Every 'palyra gateway run --database-url' does the same at start.

With --from-dir DIR --to URL: moves a gateway's state directory into an EMPTY state database without re-pairing: the CA,
paired devices and their certificates, revocations, roles, the pairing runtime and the whole audit chain, verified end to
end before (as 'palyra state verify') and after the copy, in one transaction (a failure copies nothing). The database
keeps the directory's store key: it is written to --store-key-file FILE (a new file, 0600; give every replica a copy) or
to the OS keychain entry of the URL. Stop the gateway on DIR first: what it changes afterwards is not copied. A database
that holds any state is error[state_not_empty].

An unreachable database, a wrong password or a missing database is error[state_unavailable]; a malformed URL
error[invalid_argument].`,
  options: {
    'from-dir': { type: 'string', placeholder: 'DIR', description: 'the gateway state directory to copy (with --to)' },
    to: { type: 'string', placeholder: 'URL', description: 'the empty state database to copy it into: postgres://…' },
  },
  positionals: [],
  notes: [
    'With --json: {"migrated":true,"database":"postgres://USER@HOST:PORT/DB","applied":[N,…],"schema_version":N}',
    `With --from-dir, --json: {"migrated":true,"from_dir":"…","database":"postgres://USER@HOST:PORT/DB","schema_version":N,
"documents":{"identity/state.v1.json":{"generation":N},"node-runtime.v1.json":{"generation":N}},"paired_devices":N,
"revoked_devices":N,"audit":{"entries":N,"head":{"seq":N,"hash":"…"},"target_head":{"seq":N,"hash":"…"}},
"store_key":{"location":"file","path":"…"}|{"location":"os","account":"store-key:postgres://…"}}`,
  ],
});

async function runMigrate(args: ParsedCommand, context: CliContext): Promise<number> {
  const fromDir = args.string('from-dir');
  const to = args.string('to');
  if (fromDir !== undefined || to !== undefined) return runMigrateFromDir(args, context, fromDir, to);
  const database = resolveDatabase(args, context.env);
  if (database === null) throw usageError('state migrate needs --database-url URL (or PALYRA_DATABASE_URL), or --from-dir DIR --to URL', MIGRATE_SPEC.name);
  validateDatabaseUrl(database.databaseUrl);
  const { applied } = await migrateDatabase(database.databaseUrl, Date.now());
  const report = { migrated: true, database: redactDatabaseUrl(database.databaseUrl), applied, schema_version: SCHEMA_VERSION };
  const { out } = context;
  if (out.json) out.document(report);
  else out.line(applied.length === 0 ? `Schema of ${report.database} is up to date (version ${SCHEMA_VERSION}).` : `Applied migrations ${applied.join(', ')} to ${report.database} (now version ${SCHEMA_VERSION}).`);
  return EXIT_OK;
}

async function runMigrateFromDir(args: ParsedCommand, context: CliContext, fromDir: string | undefined, to: string | undefined): Promise<number> {
  if (fromDir === undefined || fromDir === '') throw usageError('--to URL needs --from-dir DIR (the state directory to copy)', MIGRATE_SPEC.name);
  if (to === undefined || to === '') throw usageError('--from-dir DIR needs --to URL (the empty state database to copy it into)', MIGRATE_SPEC.name);
  if (args.string('database-url') !== undefined) throw usageError('--from-dir … --to URL names the database: drop --database-url', MIGRATE_SPEC.name);
  if (args.string('state-dir') !== undefined) throw usageError('--from-dir names the state directory to copy: drop --state-dir', MIGRATE_SPEC.name);
  validateDatabaseUrl(to);
  const keyFile = args.string('store-key-file') ?? (context.env.PALYRA_STORE_KEY_FILE === '' ? undefined : context.env.PALYRA_STORE_KEY_FILE);
  const keychain = (await chooseKeychain(context.env)).keychain;
  const report = await migrateFromDir({ fromDir, to: { databaseUrl: to, storeKeyFile: keyFile === undefined ? null : path.resolve(keyFile) }, keychain });
  const { out } = context;
  if (out.json) {
    out.document(report);
    return EXIT_OK;
  }
  out.line(`Copied ${report.from_dir} into ${report.database}:`);
  out.line(`  ${report.paired_devices} paired devices, ${report.revoked_devices} revoked; CA and pairing runtime`);
  out.line(`  audit log: ${report.audit.entries} entries, chain verified before and after the copy (+ state_migrated)`);
  out.line(report.store_key.location === 'file' ? `  store key: ${report.store_key.path} (give every replica a copy)` : `  store key: OS keychain (${report.store_key.account})`);
  out.line(`Start the replicas with --database-url; stop the gateway on ${report.from_dir} for good.`);
  return EXIT_OK;
}

async function runRepair(args: ParsedCommand, context: CliContext): Promise<number> {
  if (resolveDatabase(args, context.env) !== null) {
    throw new PalyraError('invalid_argument', 'state repair applies to a state directory; a state database is repaired with the database tools (its transactions leave nothing half-written)');
  }
  if (!args.flag('accept-loss')) throw usageError('state repair drops damaged records for good: pass --accept-loss to confirm', REPAIR_SPEC.name);
  const stateDir = resolveStateDir(args, context.env);
  const report = await repairState(stateDir, (await chooseKeychain(context.env)).keychain);
  const { out } = context;
  if (out.json) {
    out.document(report);
    return EXIT_OK;
  }
  out.line(`Repaired ${stateDir}:`);
  for (const [name, d] of Object.entries(report.documents)) out.line(`  ${name}: kept generation ${d.generation}, dropped ${d.dropped_bytes} bytes of journal`);
  out.line(`  audit log: ${report.audit.entries_dropped} entries dropped, ${report.audit.entries} now`);
  out.line(report.anchored ? '  rollback anchor moved to the repaired state' : '  no rollback anchor (key file mode)');
  out.line("Check 'palyra devices list': a revocation in a dropped record must be made again.");
  return EXIT_OK;
}

export const STATE_GROUP = defineGroup({
  name: 'state',
  description: 'Integrity of the gateway state directory.',
  subcommands: {
    verify: { spec: VERIFY_SPEC, run: runVerify },
    repair: { spec: REPAIR_SPEC, run: runRepair },
    migrate: { spec: MIGRATE_SPEC, run: runMigrate },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(STATE_GROUP, argv, context);
}
