/**
 * `palyra pairing list|code|approve|reject` (CLI.md "Gateway (operator side)"): operator actions on the gateway
 * state directory, through GatewayAdmin, so they work whether or not a gateway runs (a running one sees them at
 * once). Printed objects are mapped to exactly the fields CLI.md lists; code values are only ever printed by `code`,
 * right after minting.
 */

import os from 'node:os';
import { CLIENT_KINDS } from '../../core/client-kind.js';
import type { ClientKind } from '../../core/client-kind.js';
import { PalyraError } from '../../core/errors.js';
import { parseTtl } from '../../core/pairing-codes.js';
import type { PairingMethodKind } from '../../core/pairing-codes.js';
import { PAIRING_REQUEST_STATES } from '../../core/pairing-requests.js';
import { formatHostPort, parseHostPort } from '../../core/pairing-uri.js';
import type { CodeView, MintedCode, RequestView } from '../../gateway/gateway-admin.js';
import { readRunningGateway } from '../../gateway/gateway-info.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { GLOBAL_OPTIONS_HELP, oneOf, parseOptionValue, usageError } from '../args.js';
import type { CliContext, CommandGroup } from '../context.js';
import { openAdmin, resolveStateDir, runGroup } from '../context.js';
import { EXIT_OK, formatExpiry, formatTable, formatTimestamp } from '../output.js';
import { renderBigDigits, renderQr } from '../qr-terminal.js';
import { operatorName } from '../operator.js';
import type { RemoteAdmin } from '../remote-admin.js';
import { REMOTE_ADMIN_HELP, REMOTE_ADMIN_OPTIONS, chooseAdminTarget, withRemote } from '../remote-admin.js';

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
  identity_fingerprint: string;
  requested_at_unix_ms: number;
  reason: string | null;
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
    identity_fingerprint: r.identity_fingerprint,
    requested_at_unix_ms: r.requested_at_unix_ms,
    reason: r.reason,
  };
}

/** The SAS as people should read it: a hello without an X25519 commitment proves nothing with its SAS. */
function sasText(r: RequestView): string {
  return r.sas_verifiable ? r.sas : `${r.sas} (unverifiable: reference client)`;
}

// --- pairing code ------------------------------------------------------------------------------------------------

const CODE_SPEC: CommandSpec = {
  name: 'pairing code',
  options: {
    method: { type: 'string' },
    ttl: { type: 'string' },
    kind: { type: 'string' },
    gateway: { type: 'string', multiple: true },
    'device-dir': { type: 'string' },
    keychain: { type: 'string' },
  },
  positionals: [],
  help: `Usage: palyra pairing code [--method qr|pin] [--ttl 10m] [--kind desktop|node|cli] [--gateway HOST:PORT]

Mints a single-use pairing code in the gateway state directory (a running gateway accepts it at once) and shows
it: a QR code with its palyra://pair URI, or a 6-digit PIN in large digits, and when it expires.

Options:
  --method qr|pin            qr (the default): a QR code whose URI carries the gateway address and the CA pin;
                             pin: a 6-digit PIN (minting a PIN voids older PINs)
  --ttl DURATION             lifetime, e.g. 30s, 10m, 2h (default 10m; clamped to 30s..24h)
  --kind desktop|node|cli    the kind of device the code is meant for (default: any; a QR URI then says desktop)
  --gateway HOST:PORT        gateway address written into the QR URI; repeatable or comma-separated
                             (default: the listen address of the gateway running on the state directory)

Remote gateway (instead of the state directory):
  --device-dir DIR           mint the code on the gateway this admin device is paired with, over mTLS with its
                             identity (the device needs the admin role: 'palyra devices grant-admin ID' on the
                             gateway host); --gateway HOST:PORT is then the gateway to dial and the address written
                             into the QR URI (default: the first gateway address stored in the device dir)
  --keychain os|file         where the device's secrets live (default os; env PALYRA_KEYCHAIN=file forces file)

With --json: {"method":"qr|pin","code":"<token or PIN>","uri":"palyra://pair?…" or null for a PIN,
"expires_at_unix_ms":N}

${GLOBAL_OPTIONS_HELP}`,
};

const ANY_INTERFACE_HOSTS = new Set(['0.0.0.0', '::']);

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The address devices should dial for a gateway listening on `listen`: a wildcard host becomes this host's name. */
export function advertisedAddress(listen: string): { address: string; loopback: boolean } {
  const parsed = parseHostPort(listen, { allowPortZero: true });
  if (!ANY_INTERFACE_HOSTS.has(parsed.host)) {
    return { address: formatHostPort(parsed), loopback: isLoopbackHost(parsed.host) };
  }
  const host = os.hostname();
  try {
    return { address: formatHostPort(parseHostPort(formatHostPort({ host, port: parsed.port }))), loopback: false };
  } catch {
    throw new PalyraError(
      'invalid_argument',
      `the gateway listens on all interfaces and this machine's name '${host.slice(0, 64)}' is not a usable host name; pass --gateway HOST:PORT`,
    );
  }
}


async function runCode(args: ParsedCommand, context: CliContext): Promise<number> {
  const command = CODE_SPEC.name;
  const method = oneOf('--method', args.string('method') ?? 'qr', ['qr', 'pin'] as const, command);
  const ttlText = args.string('ttl');
  const ttlMs = ttlText === undefined ? undefined : parseOptionValue('--ttl', command, () => parseTtl(ttlText));
  const kindText = args.string('kind');
  const kind = kindText === undefined ? null : oneOf('--kind', kindText, CLIENT_KINDS, command);
  const explicit = args.strings('gateway').flatMap((list) => list.split(','));
  const explicitAddresses = explicit.map((entry) => {
    if (entry.trim() === '') throw usageError('--gateway: empty address', command);
    return parseOptionValue('--gateway', command, () => formatHostPort(parseHostPort(entry.trim())));
  });

  const remote = await chooseAdminTarget(args, context, { gatewayHasLocalMeaning: true });
  if (remote !== null) return withRemote(remote, (r) => runRemoteCode(r, { method, kind, ttlMs }, context));

  const stateDir = resolveStateDir(args, context.env);
  const running = await readRunningGateway(stateDir);
  let addresses = explicitAddresses;
  let loopbackOnly = false;
  if (addresses.length === 0 && running !== null) {
    const advertised = advertisedAddress(running.listen);
    addresses = [advertised.address];
    loopbackOnly = advertised.loopback;
  }
  if (addresses.length === 0 && method === 'qr') {
    throw new PalyraError(
      'gateway_unreachable',
      `no gateway is running on ${stateDir}, so there is no address for the QR code; start one with 'palyra gateway run' or pass --gateway HOST:PORT`,
    );
  }

  const { admin } = await openAdmin(args, context);
  const minted = await admin.mintCode({
    method,
    kind,
    ...(ttlMs === undefined ? {} : { ttlMs }),
    issuedBy: operatorName('cli'),
    gatewayAddresses: addresses,
    gatewayName: running?.name ?? null,
  });

  const { out } = context;
  await printMinted(minted, addresses[0], context);
  if (out.json) return EXIT_OK;
  if (running === null) out.note(`note: no gateway is running on ${stateDir}; start one with 'palyra gateway run' before pairing`);
  else if (loopbackOnly) out.note(`note: the gateway listens on ${running.listen} (loopback): only this machine can reach it`);
  return EXIT_OK;
}

async function runRemoteCode(
  remote: RemoteAdmin,
  options: { method: 'qr' | 'pin'; kind: ClientKind | null; ttlMs: number | undefined },
  context: CliContext,
): Promise<number> {
  const minted = await remote.mintCode({
    method: options.method,
    kind: options.kind,
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
    gatewayAddresses: [remote.address],
  });
  return printMinted(minted, remote.address, context);
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
    if (gateway !== undefined) out.line(`On the device: palyra device pair --pin ${minted.code} --gateway ${gateway}`);
  }
  return EXIT_OK;
}

// --- pairing list ------------------------------------------------------------------------------------------------

const LIST_SPEC: CommandSpec = {
  name: 'pairing list',
  options: { state: { type: 'string' }, ...REMOTE_ADMIN_OPTIONS },
  positionals: [],
  help: `Usage: palyra pairing list [--state pending_approval|approved|rejected|completed|expired]

Lists the active pairing codes (never their values) and the pairing requests, newest first; --state keeps only
requests in that state. Compare a request's SAS with the one the device shows before approving it.

With --json: {"codes":[{"method","expires_at_unix_ms","kind"}],"requests":[{"request_id","device_id","client_kind",
"state","method","sas","identity_fingerprint","requested_at_unix_ms","reason"}]}

${REMOTE_ADMIN_HELP}

${GLOBAL_OPTIONS_HELP}`,
};

async function runList(args: ParsedCommand, context: CliContext): Promise<number> {
  const stateText = args.string('state');
  const state = stateText === undefined ? undefined : oneOf('--state', stateText, PAIRING_REQUEST_STATES, LIST_SPEC.name);
  const filter = state === undefined ? {} : { state };
  const remote = await chooseAdminTarget(args, context);
  let codes: CodeView[];
  let requests: RequestView[];
  if (remote === null) {
    const { admin } = await openAdmin(args, context);
    codes = admin.listCodes();
    requests = admin.listRequests(filter);
  } else {
    // The remote service does not list pairing codes: report none, and say so in text mode.
    codes = [];
    requests = await withRemote(remote, (r) => r.listRequests(filter));
  }
  const { out } = context;
  if (out.json) {
    out.document({ codes: codes.map(codeOutput), requests: requests.map(requestOutput) });
    return EXIT_OK;
  }
  const now = Date.now();
  if (remote !== null) {
    out.note(`note: the remote gateway ${remote.address} does not list its active pairing codes; run 'palyra pairing list' on the gateway host to see them`);
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
  if (remote === null) out.line();
  if (requests.length === 0) {
    out.line(state === undefined ? 'No pairing requests.' : `No pairing requests in state ${state}.`);
  } else {
    out.line(`Pairing requests (${requests.length}):`);
    out.line(
      formatTable(
        ['REQUEST_ID', 'DEVICE_ID', 'KIND', 'METHOD', 'STATE', 'SAS', 'REQUESTED', 'REASON'],
        requests.map((r) => [
          r.request_id,
          r.device_id,
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
  const effect =
    verb === 'approve'
      ? 'Approves a pending pairing request: the device receives its certificate at its next status call.\nCompare the SAS the device shows with the one printed by `palyra pairing list` first.'
      : 'Rejects a pending pairing request: the device is told it was rejected.';
  return {
    name: `pairing ${verb}`,
    options: { reason: { type: 'string' }, ...REMOTE_ADMIN_OPTIONS },
    positionals: [{ name: 'REQUEST_ID', required: true }],
    help: `Usage: palyra pairing ${verb} REQUEST_ID [--reason TEXT]

${effect}
Prints the updated request. A request that is not pending_approval fails with
error[pairing_request_not_pending] (exit 1); an unknown one with error[pairing_request_not_found].

Options:
  --reason TEXT   recorded with the decision (default: ${verb === 'approve' ? 'approved_by_operator' : 'rejected_by_operator'})

With --json: the request, {"request_id","device_id","client_kind","state","method","sas","identity_fingerprint",
"requested_at_unix_ms","reason"}

${REMOTE_ADMIN_HELP}

${GLOBAL_OPTIONS_HELP}`,
  };
}

const APPROVE_SPEC = decisionSpec('approve');
const REJECT_SPEC = decisionSpec('reject');

async function runDecision(verb: 'approve' | 'reject', args: ParsedCommand, context: CliContext): Promise<number> {
  const requestId = args.requiredPositional('REQUEST_ID');
  const reason = args.string('reason');
  const remote = await chooseAdminTarget(args, context);
  let view: RequestView;
  if (remote === null) {
    const { admin } = await openAdmin(args, context);
    view = verb === 'approve' ? await admin.approve(requestId, reason) : await admin.reject(requestId, reason);
  } else {
    view = await withRemote(remote, (r) => (verb === 'approve' ? r.approve(requestId, reason) : r.reject(requestId, reason)));
  }
  const { out } = context;
  if (out.json) {
    out.document(requestOutput(view));
  } else {
    out.line(
      `${verb === 'approve' ? 'Approved' : 'Rejected'} pairing request ${view.request_id}: device ${view.device_id} ` +
        `(${view.client_kind}, ${view.method}) SAS ${sasText(view)}, state ${view.state}, reason: ${view.reason ?? '-'}`,
    );
  }
  return EXIT_OK;
}

// --- the group ---------------------------------------------------------------------------------------------------

export const PAIRING_GROUP: CommandGroup = {
  name: 'pairing',
  help: `Usage: palyra pairing <command> [options]

Pairing codes and requests on the gateway state directory.

Commands:
  list      list active codes (without their values) and pairing requests
  code      mint a single-use pairing code: a QR code (default) or a 6-digit PIN
  approve   approve a pending pairing request (compare its SAS first)
  reject    reject a pending pairing request

Run 'palyra pairing <command> --help' for a command's options.

${GLOBAL_OPTIONS_HELP}`,
  subcommands: {
    list: { spec: LIST_SPEC, run: runList },
    code: { spec: CODE_SPEC, run: runCode },
    approve: { spec: APPROVE_SPEC, run: (args, context) => runDecision('approve', args, context) },
    reject: { spec: REJECT_SPEC, run: (args, context) => runDecision('reject', args, context) },
  },
};

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(PAIRING_GROUP, argv, context);
}
