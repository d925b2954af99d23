/**
 * `palyra audit verify | tail`: the keyed audit chain of a gateway state directory. Both read without the lock and
 * write nothing.
 */

import { PalyraError } from '../../core/errors.js';
import type { GatewayAdmin } from '../../gateway/gateway-admin.js';
import { openExistingAdmin } from '../state-open.js';
import type { AuditEntry } from '../../store/audit-log.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { parseOptionValue } from '../args.js';
import type { CliContext } from '../context.js';
import { runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK, formatTable, formatTimestamp } from '../output.js';

const DEFAULT_TAIL = 20;
const MAX_TAIL = 10_000;

async function openExisting(args: ParsedCommand, context: CliContext): Promise<GatewayAdmin> {
  // The state directory, or with --database-url the state in PostgreSQL.
  return openExistingAdmin(args, context);
}

const VERIFY_SPEC: CommandSpec = defineCommand({
  name: 'audit verify',
  summary: 'check the whole keyed audit chain',
  description: `Recomputes every entry's MAC (HMAC-SHA256 keyed from the store key) and the chain from the first entry to the
last. A broken chain fails with error[audit_chain_broken] naming the first entry that does not verify (exit 1).`,
  options: {},
  positionals: [],
  notes: ['With --json: {"ok":true,"entries":N,"head":{"seq":N,"hash":"<64 hex>"}}'],
});

async function runVerify(args: ParsedCommand, context: CliContext): Promise<number> {
  const log = (await openExisting(args, context)).identity.auditLog!;
  const chain = await log.verifyChain();
  if (!chain.ok) {
    throw new PalyraError('audit_chain_broken', `audit log ${log.file}: entry ${chain.brokenAtSeq ?? '?'}: ${chain.reason ?? 'broken'}`, {
      details: { path: log.file },
    });
  }
  const { out } = context;
  if (out.json) out.document({ ok: true, entries: chain.entries, head: chain.head });
  else out.line(`Audit chain OK: ${chain.entries} entries, last ${chain.head.seq === 0 ? '-' : `#${chain.head.seq} ${chain.head.hash.slice(0, 16)}`}.`);
  return EXIT_OK;
}

const TAIL_SPEC: CommandSpec = defineCommand({
  name: 'audit tail',
  summary: 'show the last audit entries and whether the chain verifies',
  description: `Shows the newest audit entries, oldest first, and the result of checking them: each entry's MAC and its link to
the entry before it. The cost follows N, not the log's length; 'palyra audit verify' checks the whole chain.`,
  options: {
    count: { type: 'string', placeholder: 'N', description: `how many entries, 1..${MAX_TAIL}`, default: String(DEFAULT_TAIL) },
  },
  positionals: [],
  notes: [
    `With --json: {"entries":[{"seq","ts_ms","event","fields":{…},"prev","hash","alg"}],"chain":{"ok":true|false,"entries":N,
"checked":K,"broken_at_seq":N,"reason":"…"}} (entries: the chain's length; checked: how many were verified;
broken_at_seq and reason only when they do not verify). Exit 0 either way.`,
  ],
});

function fieldsText(entry: AuditEntry): string {
  const text = Object.entries(entry.fields)
    .map(([k, v]) => `${k}=${v === null ? 'null' : String(v)}`)
    .join(' ');
  return text === '' ? '-' : text;
}

async function runTail(args: ParsedCommand, context: CliContext): Promise<number> {
  const command = TAIL_SPEC.name;
  const countText = args.string('count');
  const count =
    countText === undefined
      ? DEFAULT_TAIL
      : parseOptionValue('--count', command, () => {
          const n = /^[1-9][0-9]*$/.test(countText) ? Number(countText) : NaN;
          if (!(n >= 1 && n <= MAX_TAIL)) throw new PalyraError('invalid_argument', `expected a whole number 1..${MAX_TAIL}`);
          return n;
        });
  const log = (await openExisting(args, context)).identity.auditLog!;
  const { entries, chain } = await log.tailChecked(count);
  const { out } = context;
  if (out.json) {
    out.document({
      entries,
      chain: {
        ok: chain.ok,
        entries: chain.entries,
        checked: chain.checked,
        ...(chain.ok ? {} : { broken_at_seq: chain.brokenAtSeq ?? null, reason: chain.reason ?? null }),
      },
    });
    return EXIT_OK;
  }
  if (entries.length === 0) out.line('No audit entries.');
  else out.line(formatTable(['SEQ', 'TIME', 'EVENT', 'FIELDS'], entries.map((e) => [String(e.seq), formatTimestamp(e.ts_ms), e.event, fieldsText(e)])));
  out.line(
    chain.ok
      ? `Chain: the last ${chain.checked} of ${chain.entries} entries verify ('palyra audit verify' checks them all)`
      : `Chain: BROKEN at entry ${chain.brokenAtSeq ?? '?'}: ${chain.reason ?? ''}`,
  );
  return EXIT_OK;
}

export const AUDIT_GROUP = defineGroup({
  name: 'audit',
  description: 'The keyed audit log of the gateway state directory.',
  subcommands: {
    verify: { spec: VERIFY_SPEC, run: runVerify },
    tail: { spec: TAIL_SPEC, run: runTail },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(AUDIT_GROUP, argv, context);
}
