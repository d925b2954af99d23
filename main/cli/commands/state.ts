/**
 * `palyra state verify | repair --accept-loss`: check a gateway state directory the way the gateway loads it, and
 * recover from damage when the operator chooses to accept the loss.
 */

import { repairState, verifyState } from '../../gateway/state-repair.js';
import { chooseKeychain } from '../../platform/keychain-choice.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { usageError } from '../args.js';
import type { CliContext } from '../context.js';
import { resolveStateDir, runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK } from '../output.js';

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

async function runRepair(args: ParsedCommand, context: CliContext): Promise<number> {
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
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(STATE_GROUP, argv, context);
}
