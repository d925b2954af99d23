/**
 * `palyra pairing list|code|approve|reject` (CLI.md "Gateway (operator side)"): operator actions on the gateway
 * state directory, through GatewayAdmin, so they work whether or not a gateway runs (a running one sees them at
 * once). Printed objects are mapped to exactly the fields CLI.md lists; code values are only ever printed by `code`,
 * right after minting.
 */

import type { CodeView, MintedCode, RequestView } from '../../admin/admin-target.js';
import { describeLocation, locationName, withAdminTarget } from '../../admin/admin-target.js';
import { CLIENT_KINDS } from '../../core/client-kind.js';
import type { ClientKind } from '../../core/client-kind.js';
import { MAX_CODE_TTL_MS, MIN_CODE_TTL_MS, parseTtl } from '../../core/pairing-codes.js';
import { PalyraError } from '../../core/errors.js';
import type { PairingMethodKind } from '../../core/pairing-codes.js';
import { PAIRING_REQUEST_STATES } from '../../core/pairing-requests.js';
import { formatHostPort, parseHostPort } from '../../core/net-address.js';
import { REMOTE_ADMIN_OPTIONS, REMOTE_SECTION, chooseAdminTarget } from '../admin-target.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { oneOf, parseOptionValue, usageError } from '../args.js';
import type { CliContext } from '../context.js';
import { runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK, formatExpiry, formatTable, formatTimestamp } from '../output.js';
import { renderBigDigits, renderQr } from '../qr-terminal.js';

// --- the shapes CLI.md promises ----------------------------------------------------------------------------------

export interface CodeOutput {
  method: PairingMethodKind;
  expires_at_unix_ms: number;
  kind: ClientKind | null;
}

export interface RequestOutput {
  request_id: string;
  device_id: string;
  client_kind: ClientKind;
  state: RequestView['state'];
  method: PairingMethodKind;
  sas: string;
  /** confirmed (PIN pairing v2: nothing to compare) | compare | unverifiable */
  sas_status: RequestView['sas_status'];
  identity_fingerprint: string;
  requested_at_unix_ms: number;
  reason: string | null;
  /** The device's display name (CLI.md round 2: `name`); `device_name` is the same value, as the admin API names it. */
  name: string | null;
  device_name: string | null;
}

export function codeOutput(c: CodeView): CodeOutput {
  return { method: c.method, expires_at_unix_ms: c.expires_at_unix_ms, kind: c.kind };
}

export function requestOutput(r: RequestView): RequestOutput {
  return {
    request_id: r.request_id,
    device_id: r.device_id,
    client_kind: r.client_kind,
    state: r.state,
    method: r.method,
    sas: r.sas,
    sas_status: r.sas_status,
    identity_fingerprint: r.identity_fingerprint,
    requested_at_unix_ms: r.requested_at_unix_ms,
    reason: r.reason,
    name: r.device_name,
    device_name: r.device_name,
  };
}

/**
 * The SAS as people should read it: nothing to compare after PIN pairing v2; a hello without an X25519 commitment
 * proves nothing with its SAS.
 */
function sasText(r: RequestView): string {
  if (r.sas_status === 'confirmed') return 'verified by PIN (no code to compare)';
  return r.sas_status === 'compare' ? r.sas : `${r.sas} (unverifiable: reference client)`;
}

// --- pairing code ------------------------------------------------------------------------------------------------

const CODE_SPEC: CommandSpec = defineCommand({
  name: 'pairing code',
  summary: 'mint a single-use pairing code: a QR code (default) or a 6-digit PIN',
  description: `Mints a single-use pairing code in the gateway state directory (a running gateway accepts it at once) and shows
it: a QR code with its palyra://pair URI, or a 6-digit PIN in large digits, and when it expires.`,
  options: {
    method: {
      type: 'string',
      placeholder: 'qr|pin',
      description: 'qr: a QR code whose URI carries the gateway address and the CA pin; pin: a 6-digit PIN, which voids older PINs',
      default: 'qr',
    },
    ttl: { type: 'string', placeholder: 'DURATION', description: 'lifetime, e.g. 30s, 10m, 2h; 30s..24h (anything else is a usage error)', default: '10m' },
    kind: {
      type: 'string',
      placeholder: 'desktop|node|cli',
      description: 'the kind of device the code is meant for',
      default: 'any; a QR URI then says desktop',
    },
    gateway: {
      type: 'string',
      multiple: true,
      placeholder: 'HOST:PORT',
      description: 'gateway address written into the QR URI; also comma-separated',
      default: 'the listen address of the gateway running on the state directory',
    },
    'device-dir': {
      type: 'string',
      placeholder: 'DIR',
      section: REMOTE_SECTION,
      description:
        "mint the code on the gateway this admin device is paired with, over mTLS with its identity (the device needs the admin role: 'palyra devices grant-admin ID' on the gateway host); --gateway HOST:PORT is then the gateway to dial and the address written into the QR URI, by default the first gateway address stored in the device dir",
    },
    keychain: REMOTE_ADMIN_OPTIONS.keychain!,
  },
  positionals: [],
  notes: [
    `With --json: {"method":"qr|pin","code":"<token or PIN>","uri":"palyra://pair?…" or null for a PIN,
"expires_at_unix_ms":N}`,
  ],
});

async function runCode(args: ParsedCommand, context: CliContext): Promise<number> {
  const command = CODE_SPEC.name;
  const method = oneOf('--method', args.string('method') ?? 'qr', ['qr', 'pin'] as const, command);
  const ttlText = args.string('ttl');
  const ttlMs =
    ttlText === undefined
      ? undefined
      : parseOptionValue('--ttl', command, () => {
          const ms = parseTtl(ttlText);
          // Out of range is refused rather than silently clamped: the operator asked for something else.
          if (ms < MIN_CODE_TTL_MS || ms > MAX_CODE_TTL_MS) throw new PalyraError('invalid_argument', 'a pairing code lives 30s..24h');
          return ms;
        });
  const kindText = args.string('kind');
  const kind = kindText === undefined ? null : oneOf('--kind', kindText, CLIENT_KINDS, command);
  const explicit = args.strings('gateway').flatMap((list) => list.split(','));
  const explicitAddresses = explicit.map((entry) => {
    if (entry.trim() === '') throw usageError('--gateway: empty address', command);
    return parseOptionValue('--gateway', command, () => formatHostPort(parseHostPort(entry.trim())));
  });

  const target = await chooseAdminTarget(args, context, { gatewayHasLocalMeaning: true });
  const result = await withAdminTarget(target, (t) =>
    t.mintCode({ method, kind, ...(ttlMs === undefined ? {} : { ttlMs }), gatewayAddresses: explicitAddresses }),
  );
  const { out } = context;
  await printMinted(result.minted, result.addresses[0], context);
  if (out.json) return EXIT_OK;
  if (result.gatewayRunning === false) {
    out.note(`note: no gateway is running on ${locationName(target.location)}; start one with 'palyra gateway run' before pairing`);
  } else if (result.loopbackOnly) {
    out.note(`note: the gateway listens on ${result.addresses[0] ?? '?'} (loopback): only this machine can reach it`);
  }
  return EXIT_OK;
}

async function printMinted(minted: MintedCode, gateway: string | undefined, context: CliContext): Promise<number> {
  const { out } = context;
  if (out.json) {
    out.document({ method: minted.method, code: minted.code, uri: minted.uri, expires_at_unix_ms: minted.expires_at_unix_ms });
    return EXIT_OK;
  }
  const expiry = formatExpiry(minted.expires_at_unix_ms, Date.now());
  if (minted.uri !== null) {
    out.line(await renderQr(minted.uri, { tty: out.streams.stdoutIsTty }));
    out.line();
    out.line(minted.uri);
    out.line(`Single-use QR code, ${expiry}.`);
  } else {
    out.line(renderBigDigits(minted.code));
    out.line();
    out.line(`PIN ${minted.code}`);
    out.line(`Single-use PIN, ${expiry}.`);
    // The PIN is typed at the prompt, never put in argv (other users can read argv).
    if (gateway !== undefined) out.line(`On the device: palyra device pair --pin-stdin --gateway ${gateway}  (then type the PIN)`);
  }
  return EXIT_OK;
}

// --- pairing list ------------------------------------------------------------------------------------------------

const LIST_SPEC: CommandSpec = defineCommand({
  name: 'pairing list',
  summary: 'list active pairing codes (without their values) and pairing requests',
  description: `Lists the active pairing codes (never their values) and the pairing requests, newest first; --state keeps only
requests in that state. Compare a request's SAS with the one the device shows before approving it.`,
  options: {
    state: {
      type: 'string',
      placeholder: PAIRING_REQUEST_STATES.join('|'),
      description: 'only the requests in this state',
      default: 'every state',
    },
    ...REMOTE_ADMIN_OPTIONS,
  },
  positionals: [],
  notes: [
    `With --json: {"codes":[{"method","expires_at_unix_ms","kind"}],"requests":[{"request_id","device_id","client_kind",
"state","method","sas","identity_fingerprint","requested_at_unix_ms","reason","name","device_name"}]}
(name = device_name: the name the device sent, or "<client_kind> <last 6 of device_id>" when it sent none)`,
  ],
});

async function runList(args: ParsedCommand, context: CliContext): Promise<number> {
  const stateText = args.string('state');
  const state = stateText === undefined ? undefined : oneOf('--state', stateText, PAIRING_REQUEST_STATES, LIST_SPEC.name);
  const filter = state === undefined ? {} : { state };
  const target = await chooseAdminTarget(args, context);
  const [codes, requests] = await withAdminTarget(target, async (t) => [await t.listCodes(), await t.listRequests(filter)] as const);
  const { out } = context;
  if (out.json) {
    // A target that does not list its codes (a remote gateway) reports none.
    out.document({ codes: (codes ?? []).map(codeOutput), requests: requests.map(requestOutput) });
    return EXIT_OK;
  }
  const now = Date.now();
  if (codes === null) {
    out.note(`note: ${describeLocation(target.location)} does not list its active pairing codes; run 'palyra pairing list' on the gateway host to see them`);
  } else if (codes.length === 0) {
    out.line('No active pairing codes.');
  } else {
    out.line(`Active pairing codes (${codes.length}):`);
    out.line(
      formatTable(
        ['METHOD', 'KIND', 'ISSUED_BY', 'EXPIRES'],
        codes.map((c) => [c.method, c.kind ?? 'any', c.issued_by, formatExpiry(c.expires_at_unix_ms, now).replace(/^expires /, '')]),
      ),
    );
  }
  if (codes !== null) out.line();
  if (requests.length === 0) {
    out.line(state === undefined ? 'No pairing requests.' : `No pairing requests in state ${state}.`);
  } else {
    out.line(`Pairing requests (${requests.length}):`);
    out.line(
      formatTable(
        ['REQUEST_ID', 'DEVICE_ID', 'NAME', 'KIND', 'METHOD', 'STATE', 'SAS', 'REQUESTED', 'REASON'],
        requests.map((r) => [
          r.request_id,
          r.device_id,
          r.device_name ?? '-',
          r.client_kind,
          r.method,
          r.state,
          sasText(r),
          formatTimestamp(r.requested_at_unix_ms),
          r.reason ?? '-',
        ]),
      ),
    );
  }
  return EXIT_OK;
}

// --- pairing approve / reject ------------------------------------------------------------------------------------

function decisionSpec(verb: 'approve' | 'reject'): CommandSpec {
  const description =
    verb === 'approve'
      ? 'Approves a pending pairing request: the device receives its certificate at its next status call.\nCompare the SAS the device shows with the one printed by `palyra pairing list` first.'
      : 'Rejects a pending pairing request: the device is told it was rejected.';
  return defineCommand({
    name: `pairing ${verb}`,
    summary: verb === 'approve' ? 'approve a pending pairing request (compare its SAS first)' : 'reject a pending pairing request',
    description: `${description}
Prints the updated request. A request that is not pending_approval fails with
error[pairing_request_not_pending] (exit 1); an unknown one with error[pairing_request_not_found].`,
    options: {
      reason: {
        type: 'string',
        placeholder: 'TEXT',
        description: 'recorded with the decision',
        default: verb === 'approve' ? 'approved_by_operator' : 'rejected_by_operator',
      },
      ...REMOTE_ADMIN_OPTIONS,
    },
    positionals: [{ name: 'REQUEST_ID', required: true, description: `the pending request to ${verb}, as 'palyra pairing list' shows it` }],
    notes: [
      `With --json: the request, {"request_id","device_id","client_kind","state","method","sas","identity_fingerprint",
"requested_at_unix_ms","reason","name","device_name"}`,
    ],
  });
}

const APPROVE_SPEC = decisionSpec('approve');
const REJECT_SPEC = decisionSpec('reject');

async function runDecision(verb: 'approve' | 'reject', args: ParsedCommand, context: CliContext): Promise<number> {
  const requestId = args.requiredPositional('REQUEST_ID');
  const reason = args.string('reason');
  const view = await withAdminTarget(await chooseAdminTarget(args, context), (t) =>
    verb === 'approve' ? t.approve(requestId, reason) : t.reject(requestId, reason),
  );
  const { out } = context;
  if (out.json) {
    out.document(requestOutput(view));
  } else {
    out.line(
      `${verb === 'approve' ? 'Approved' : 'Rejected'} pairing request ${view.request_id}: device ${view.device_id}${view.device_name === null ? '' : ` "${view.device_name}"`} ` +
        `(${view.client_kind}, ${view.method}) SAS ${sasText(view)}, state ${view.state}, reason: ${view.reason ?? '-'}`,
    );
  }
  return EXIT_OK;
}

// --- the group ---------------------------------------------------------------------------------------------------

export const PAIRING_GROUP = defineGroup({
  name: 'pairing',
  description: 'Pairing codes and requests on the gateway state directory.',
  subcommands: {
    list: { spec: LIST_SPEC, run: runList },
    code: { spec: CODE_SPEC, run: runCode },
    approve: { spec: APPROVE_SPEC, run: (args, context) => runDecision('approve', args, context) },
    reject: { spec: REJECT_SPEC, run: (args, context) => runDecision('reject', args, context) },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(PAIRING_GROUP, argv, context);
}
