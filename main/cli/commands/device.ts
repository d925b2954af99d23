/**
 * `palyra device pair|status|run|unpair` (CLI.md "Device side"): this machine as a device, through the DeviceAgent.
 * The device dir (`--device-dir`, env PALYRA_DEVICE_DIR, default: the desktop app's) holds the non-secret state;
 * secrets go to the OS keychain (`--keychain os`, the default) or to an encrypted store in the device dir
 * (`--keychain file`; env PALYRA_KEYCHAIN=file forces it, as for the operator commands).
 *
 * Output: `pair` prints the SAS and "waiting for approval" while pending, then the device id (with --json: one JSON
 * line per progress event); `status` one document; `run` JSON lines of agent events; `unpair` one document.
 */

import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_KINDS } from '../../core/client-kind.js';
import type { ClientKind } from '../../core/client-kind.js';
import { normalizeDeviceName } from '../../core/device-name.js';
import { isErrorCode, PalyraError } from '../../core/errors.js';
import { parseTtl } from '../../core/pairing-codes.js';
import { normalizePinInput } from '../../core/pin-pairing-v2.js';
import { parseScannedPayload } from '../../core/pairing-uri.js';
import { formatHostPort, parseHostPort } from '../../core/net-address.js';
import { DeviceAgent } from '../../device/device-agent.js';
import type { AgentEvent, AgentStatus } from '../../device/device-agent.js';
import type { KeychainMode } from '../../device/device-store.js';
import type { PairingProgress, PairingTarget } from '../../device/pairing-client.js';
import { openOsKeychain } from '../../store/keychain.js';
import type { CommandSpec, OptionSpec, ParsedCommand } from '../args.js';
import { oneOf, parseOptionValue, usageError } from '../args.js';
import type { CliContext } from '../context.js';
import { runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK, formatDuration, formatTimestamp } from '../output.js';
import { defaultDeviceDir } from '../../platform/paths.js';
import { shutdownSignal } from '../signals.js';

export const DEVICE_DIR_ENV = 'PALYRA_DEVICE_DIR';
export const KEYCHAIN_ENV = 'PALYRA_KEYCHAIN';
/** Kind of a device paired from the command line when neither --kind nor a QR URI says otherwise. */
export const DEFAULT_CLI_DEVICE_KIND: ClientKind = 'node';

const DEVICE_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'device-dir': {
    type: 'string',
    placeholder: 'DIR',
    section: 'Device options',
    description: "the device's directory; each device dir is a separate identity",
    default: "the desktop app's device directory",
    env: DEVICE_DIR_ENV,
  },
  keychain: {
    type: 'string',
    placeholder: 'os|file',
    section: 'Device options',
    description: "where the device's secrets live: the OS keychain or an encrypted store in the device dir",
    default: 'os',
    env: `${KEYCHAIN_ENV}=file forces file`,
  },
};

// --- shared choices ----------------------------------------------------------------------------------------------

/** `--device-dir`, else env PALYRA_DEVICE_DIR, else the desktop app's device directory; always absolute. */
export function resolveDeviceDir(args: ParsedCommand, env: NodeJS.ProcessEnv): string {
  const flag = args.string('device-dir');
  if (flag === '') throw usageError('--device-dir must not be empty', args.spec.name);
  const fromEnv = env[DEVICE_DIR_ENV];
  return path.resolve(flag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : defaultDeviceDir()));
}

/** `--keychain` (default os); env PALYRA_KEYCHAIN=file forces the encrypted store in the device dir. */
export function resolveKeychainMode(args: ParsedCommand, env: NodeJS.ProcessEnv): KeychainMode {
  const command = args.spec.name;
  const setting = env[KEYCHAIN_ENV] ?? '';
  if (setting !== '' && setting !== 'os' && setting !== 'file') {
    throw usageError(`environment variable ${KEYCHAIN_ENV} must be 'os' or 'file' (got '${setting.slice(0, 32)}')`, command);
  }
  const flag = args.string('keychain');
  const chosen = flag === undefined ? 'os' : oneOf('--keychain', flag, ['os', 'file'] as const, command);
  return setting === 'file' ? 'file' : chosen;
}

function openAgent(args: ParsedCommand, context: CliContext, extra: { notify?: (title: string, body: string) => void; log?: (line: Record<string, unknown>) => void } = {}): Promise<DeviceAgent> {
  // Without a log of its own a command still says, in one line, when it sealed a device state from an older version.
  const log =
    extra.log ??
    ((line: Record<string, unknown>) => {
      if (line.event === 'device.state_sealed' && typeof line.message === 'string') context.out.note(`notice: ${line.message}`);
    });
  return DeviceAgent.open({ deviceDir: resolveDeviceDir(args, context.env), keychain: resolveKeychainMode(args, context.env), ...extra, log });
}

// --- device pair -------------------------------------------------------------------------------------------------

const PAIR_SPEC: CommandSpec = defineCommand({
  name: 'device pair',
  summary: 'pair with a gateway (QR URI, or PIN + gateway address)',
  usage: [
    'URI [--name NAME] [--kind desktop|node|cli] [--wait 5m] [--device-dir DIR] [--keychain os|file]',
    '--pin-stdin --gateway HOST:PORT [--name NAME] [--kind desktop|node|cli] [--wait 5m] [--device-dir DIR] [--keychain os|file]',
    '--pin PIN --allow-insecure-pin-arg --gateway HOST:PORT [...]',
    'TOKEN --gateway HOST:PORT [...]',
  ],
  description: `Pairs this device with a gateway. URI is the palyra://pair?… link of a QR code: the device checks the gateway's CA
against the pin it carries before sending anything. With a 6-digit PIN the device runs PIN pairing v2 (SPAKE2+): the
PIN never leaves the device, and the exchange verifies the gateway's CA ("verified by PIN") so there is no SAS to
compare. A gateway without v2 (a reference gateway) gets the v1 PIN pairing: the CA is trusted on first use and both
sides show a short authentication string (SAS) that the operator must compare; so does a bare reference QR token.

The PIN is read from stdin with --pin-stdin (on a terminal: a prompt that does not echo); spaces and dashes are
ignored ("655 376", "655-376"). A PIN in the command line is refused unless --allow-insecure-pin-arg: other users
of the machine can read a process's arguments.

Prints the SAS and "waiting for approval" while the request is pending, then the paired device id.
Exit 1 with error[ca_pin_mismatch], error[pairing_rejected], error[pairing_expired], error[pairing_code_invalid], …`,
  options: {
    'pin-stdin': { type: 'boolean', description: "read the 6-digit PIN from 'palyra pairing code --method pin' from stdin (a prompt on a terminal)" },
    pin: { type: 'string', placeholder: 'PIN', description: 'the PIN in the command line: refused unless --allow-insecure-pin-arg' },
    'allow-insecure-pin-arg': { type: 'boolean', description: 'accept --pin PIN (visible to other users in the process list)' },
    gateway: {
      type: 'string',
      placeholder: 'HOST:PORT',
      description: 'the gateway to pair with, for --pin and a bare token (a URI names its gateways itself)',
    },
    name: {
      type: 'string',
      placeholder: 'NAME',
      description: "this device's display name, shown to the operator (1–64 characters, no control characters)",
      default: "this computer's host name",
    },
    kind: {
      type: 'string',
      placeholder: 'desktop|node|cli',
      description: 'the kind of device',
      default: `the URI's kind, else ${DEFAULT_CLI_DEVICE_KIND}`,
    },
    wait: {
      type: 'string',
      placeholder: 'DURATION',
      description: "how long to wait for the operator's decision, e.g. 90s, 5m",
      default: '5m',
    },
    ...DEVICE_OPTIONS,
  },
  positionals: [
    {
      name: 'URI',
      required: false,
      description: 'the palyra://pair?… URI of a QR code, or a bare reference QR token (with --gateway); not with --pin',
    },
  ],
  notes: [
    `With --json: one JSON line per progress event ({"type":"connecting"|"verifying_gateway"|"awaiting_approval"|
"reconnecting"|"paired"|"rejected"|"expired"|"failed",…}), then the error document if it failed.`,
    `While waiting, an unreachable gateway is retried until the request expires; SIGINT/SIGTERM withdraw the request
at the gateway and exit 1 with error[cancelled].`,
  ],
});

/** The PIN from stdin: a no-echo prompt on a terminal, else the first line of what was piped (at most 256 bytes). */
async function readPinFromStdin(context: CliContext): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) {
    context.out.note('PIN: ');
    stdin.setRawMode(true);
    stdin.resume();
    try {
      return await new Promise<string>((resolve, reject) => {
        let typed = '';
        const onData = (chunk: Buffer): void => {
          for (const ch of chunk.toString('utf8')) {
            if (ch === '\r' || ch === '\n') {
              finish();
              resolve(typed);
              return;
            }
            if (ch === '\u0003') {
              finish();
              reject(new PalyraError('cancelled', 'PIN entry was cancelled'));
              return;
            }
            if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
            else if (typed.length < 64) typed += ch;
          }
        };
        const finish = (): void => {
          stdin.off('data', onData);
        };
        stdin.on('data', onData);
      });
    } finally {
      stdin.setRawMode(false);
      stdin.pause();
    }
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > 256 || chunk.includes(0x0a)) break;
  }
  return (Buffer.concat(chunks).toString('utf8').split('\n')[0] ?? '').slice(0, 256);
}

async function pinOf(args: ParsedCommand, context: CliContext): Promise<string | undefined> {
  const command = PAIR_SPEC.name;
  const fromArgv = args.string('pin');
  const fromStdin = args.flag('pin-stdin');
  if (fromArgv !== undefined && fromStdin) throw usageError('give either --pin-stdin or --pin, not both', command);
  if (fromArgv !== undefined && !args.flag('allow-insecure-pin-arg')) {
    throw usageError('a PIN in the command line can be read by other users; use --pin-stdin (or add --allow-insecure-pin-arg)', command);
  }
  if (args.flag('allow-insecure-pin-arg') && fromArgv === undefined) throw usageError('--allow-insecure-pin-arg goes with --pin PIN', command);
  const text = fromArgv ?? (fromStdin ? await readPinFromStdin(context) : undefined);
  if (text === undefined) return undefined;
  return parseOptionValue(fromStdin ? '--pin-stdin' : '--pin', command, () => normalizePinInput(text));
}

function pairingTarget(args: ParsedCommand, now: number, pin: string | undefined): { target: PairingTarget; uriKind: ClientKind | null } {
  const command = PAIR_SPEC.name;
  const scanned = args.positional('URI');
  const gatewayText = args.string('gateway');
  const gateway =
    gatewayText === undefined ? undefined : parseOptionValue('--gateway', command, () => formatHostPort(parseHostPort(gatewayText.trim())));
  if (scanned !== undefined && pin !== undefined) throw usageError('give either a pairing URI or a PIN, not both', command);
  if (pin !== undefined) {
    if (gateway === undefined) throw usageError('a PIN needs --gateway HOST:PORT', command);
    return { target: { method: 'pin', pin, gateway }, uriKind: null };
  }
  if (scanned === undefined) throw usageError('give a pairing URI, or --pin-stdin with --gateway HOST:PORT', command);
  const payload = parseScannedPayload(scanned, { now });
  if (payload.type === 'token') {
    if (gateway === undefined) throw usageError('a bare pairing token (reference QR code) needs --gateway HOST:PORT', command);
    return { target: { method: 'qr-token', token: payload.token, gateway }, uriKind: null };
  }
  if (gateway !== undefined) throw usageError('--gateway is for --pin or a bare token; a pairing URI names its gateways itself', command);
  return { target: { method: 'qr', uri: payload.uri }, uriKind: payload.uri.kind };
}

/** The host name as a display name; a host name that is not a valid one (empty, too long) lets the gateway choose. */
function defaultPairingName(): string {
  try {
    return normalizeDeviceName(os.hostname());
  } catch {
    return '';
  }
}

/** Text lines for a pairing progress event (the error of a failed pairing is printed separately). */
function progressText(event: PairingProgress): string[] {
  switch (event.type) {
    case 'connecting':
      return [`Connecting to ${event.gateway} ...`];
    case 'verifying_gateway':
      return event.pinned
        ? [`Gateway CA matches the pin in the pairing code (CA fingerprint ${event.ca_fingerprint}).`]
        : [
            `Gateway CA fingerprint: ${event.ca_fingerprint}`,
            'Not pinned (PIN pairing): this gateway is trusted on first use; compare the fingerprint with the gateway.',
          ];
    case 'awaiting_approval': {
      const name = event.gateway_name === null ? event.gateway : `${event.gateway_name} (${event.gateway})`;
      if (event.verified_by === 'pin') {
        return [
          'Gateway verified by PIN (PIN pairing v2): no code to compare.',
          `waiting for approval of request ${event.request_id} on ${name} ...`,
        ];
      }
      const tofu =
        event.verified_by === 'tofu'
          ? ['This gateway does not support PIN pairing v2: it is trusted on first use. Compare the SAS with the gateway before it is approved.']
          : [];
      return [
        ...tofu,
        `SAS: ${event.sas}`,
        `waiting for approval of request ${event.request_id} on ${name}; approve it only if the gateway shows the same SAS ${event.sas}`,
      ];
    }
    case 'reconnecting':
      return [`gateway ${event.gateway} cannot be reached (${event.code}); reconnecting in ${formatDuration(event.retry_in_ms)} (attempt ${event.attempt}) ...`];
    case 'paired':
      return [`Paired with ${event.gateway}; certificate expires ${formatTimestamp(event.cert_expires_at_unix_ms)}.`, event.device_id];
    default:
      return [];
  }
}

async function runPair(args: ParsedCommand, context: CliContext): Promise<number> {
  const command = PAIR_SPEC.name;
  const { target, uriKind } = pairingTarget(args, Date.now(), await pinOf(args, context));
  const kindText = args.string('kind');
  const kind = kindText === undefined ? (uriKind ?? DEFAULT_CLI_DEVICE_KIND) : oneOf('--kind', kindText, CLIENT_KINDS, command);
  const waitText = args.string('wait');
  const waitMs = waitText === undefined ? undefined : parseOptionValue('--wait', command, () => parseTtl(waitText));
  if (waitMs !== undefined && waitMs < 1_000) throw usageError('--wait must be at least 1s', command);
  const nameText = args.string('name');
  // Checked before anything is opened or sent: a bad --name is a usage error and uses up no code.
  const deviceName = nameText === undefined ? defaultPairingName() : parseOptionValue('--name', command, () => normalizeDeviceName(nameText));
  const agent = await openAgent(args, context);
  const { out } = context;
  agent.on((event) => {
    if (out.json) out.document(event);
    else for (const line of progressText(event as PairingProgress)) out.line(line);
  });
  // SIGINT/SIGTERM while waiting withdraws the request at the gateway (CancelPairingRequest), then exits with
  // error[cancelled].
  const abort = new AbortController();
  const signal = shutdownSignal();
  void signal.received.then(() => {
    abort.abort();
  });
  try {
    await agent.pair(target, { kind, deviceName, signal: abort.signal, ...(waitMs === undefined ? {} : { waitMs }) });
  } finally {
    signal.dispose();
  }
  return EXIT_OK;
}

// --- device status -----------------------------------------------------------------------------------------------

const STATUS_SPEC: CommandSpec = defineCommand({
  name: 'device status',
  summary: "show this device's identity and pairing",
  description: `Shows this device: its id and identity fingerprint, whether it is paired and with which gateway, when its
certificate expires, and where its secrets are. Never creates an identity; a locked keychain shows as "locked".`,
  options: { ...DEVICE_OPTIONS },
  positionals: [],
  notes: ['With --json: {"device_id","identity_fingerprint","paired","gateway","cert_expires_at_unix_ms","keychain":"os|file|locked"}'],
});

export interface DeviceStatusOutput {
  device_id: string | null;
  identity_fingerprint: string | null;
  paired: boolean;
  gateway: string | null;
  cert_expires_at_unix_ms: number | null;
  keychain: AgentStatus['keychain'];
}

export function deviceStatusOutput(s: AgentStatus): DeviceStatusOutput {
  return {
    device_id: s.device_id,
    identity_fingerprint: s.identity_fingerprint,
    paired: s.paired,
    gateway: s.gateway,
    cert_expires_at_unix_ms: s.cert_expires_at_unix_ms,
    keychain: s.keychain,
  };
}

function keychainText(keychain: AgentStatus['keychain']): string {
  if (keychain === 'os') return 'OS keychain';
  if (keychain === 'file') return 'encrypted store in the device dir (--keychain file)';
  return 'OS keychain, LOCKED: unlock it to use this device';
}

/** Status of a device dir that does not exist yet: nothing is created for it, not even the directory. */
async function statusOfMissingDir(mode: KeychainMode): Promise<AgentStatus> {
  let keychain: AgentStatus['keychain'] = 'file';
  if (mode === 'os') {
    const os = await openOsKeychain();
    if (os === null) {
      throw new PalyraError('keychain_unavailable', 'no usable OS keychain for the device secrets; pass --keychain file to keep them in an encrypted store in the device dir instead');
    }
    keychain = (await os.status()) === 'locked' ? 'locked' : 'os';
  }
  return {
    device_id: null,
    identity_fingerprint: null,
    paired: false,
    revoked: false,
    gateway: null,
    gateway_name: null,
    ca_fingerprint: null,
    pinned_by: null,
    cert_expires_at_unix_ms: null,
    keychain,
    connection: 'offline',
    renewal: 'idle',
  };
}

async function runStatus(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceDir = resolveDeviceDir(args, context.env);
  const mode = resolveKeychainMode(args, context.env);
  const status = existsSync(deviceDir) ? await (await openAgent(args, context)).status() : await statusOfMissingDir(mode);
  const { out } = context;
  if (out.json) {
    out.document(deviceStatusOutput(status));
    return EXIT_OK;
  }
  const pairedText = status.revoked ? 'no (revoked by the gateway)' : status.paired ? 'yes' : 'no';
  out.line(`Device dir:        ${deviceDir}`);
  out.line(`Device id:         ${status.device_id ?? '- (no identity yet)'}`);
  out.line(`Identity:          ${status.identity_fingerprint ?? '-'}`);
  out.line(`Paired:            ${pairedText}`);
  if (status.gateway !== null) {
    out.line(`Gateway:           ${status.gateway_name === null ? status.gateway : `${status.gateway_name} (${status.gateway})`}`);
    out.line(`Gateway CA:        ${status.ca_fingerprint ?? '-'} (${status.pinned_by === 'qr' ? 'pinned by QR code' : status.pinned_by === 'pin' ? 'verified by PIN' : 'trusted on first use'})`);
  }
  out.line(`Certificate until: ${formatTimestamp(status.cert_expires_at_unix_ms)}`);
  out.line(`Secrets:           ${keychainText(status.keychain)}`);
  return EXIT_OK;
}

// --- device run --------------------------------------------------------------------------------------------------

const RUN_SPEC: CommandSpec = defineCommand({
  name: 'device run',
  summary: 'run as a node: serve capabilities, renew the certificate (JSON lines of events)',
  description: `Runs this paired device as a node: RegisterNode and StreamNodeEvents over mutual TLS, serves its capabilities
(echo, system.health, system.identity, desktop.notify; desktop.open_url is always denied here, since nobody is
asked), reconnects with backoff, and renews its certificate before it expires. Prints one JSON line per event
({"type":"connection","state":"online"}, {"type":"capability",…}, {"type":"renewed",…}, …).

SIGINT/SIGTERM stop it (exit 0). Exit 1 with error[device_revoked] when the gateway revokes the device, with
error[certificate_expired] when its certificate expired unrenewed (pair again), with error[device_state_corrupt]
before any connection when device.v1.json fails its integrity check (palyra device unpair, then pair again).`,
  options: { ...DEVICE_OPTIONS },
  positionals: [],
});

/** What ends a run besides a signal, as the error it exits with. */
function terminalError(event: AgentEvent): PalyraError | null {
  switch (event.type) {
    case 'revoked':
      return new PalyraError('device_revoked', `this device was revoked by the gateway: ${event.reason}`);
    case 'reauth_required':
      return /expired/.test(event.reason)
        ? new PalyraError('certificate_expired', event.reason)
        : new PalyraError('device_not_paired', event.reason);
    case 'failed':
      return new PalyraError(isErrorCode(event.code) ? event.code : 'internal', event.message);
    default:
      return null;
  }
}

function preflight(status: AgentStatus): void {
  if (status.keychain === 'locked') throw new PalyraError('keychain_locked', 'the OS keychain is locked; unlock it and run again');
  if (status.revoked) throw new PalyraError('device_revoked', 'this device was revoked by the gateway; unpair it and pair again');
  if (!status.paired) {
    throw status.gateway !== null && status.cert_expires_at_unix_ms === null
      ? new PalyraError('certificate_expired', "this device's certificate expired; pair it again with 'palyra device pair'")
      : new PalyraError('device_not_paired', "this device is not paired; pair it first with 'palyra device pair'");
  }
}

async function runRun(args: ParsedCommand, context: CliContext): Promise<number> {
  const { out } = context;
  const agent = await openAgent(args, context, {
    notify: (title, body) => {
      out.note(`notification: ${title}${body === '' ? '' : `: ${body}`}`);
    },
    log: (line) => {
      out.note(JSON.stringify(line));
    },
  });
  preflight(await agent.status());
  const signal = shutdownSignal();
  let settle: (outcome: PalyraError) => void = () => undefined;
  const ended = new Promise<PalyraError>((resolve) => (settle = resolve));
  const unsubscribe = agent.on((event) => {
    out.document(event);
    const error = terminalError(event);
    if (error !== null) settle(error);
  });
  let outcome: NodeJS.Signals | PalyraError;
  try {
    agent.start();
    outcome = await Promise.race([signal.received, ended]);
  } finally {
    // Kept until the agent is down, so a second signal cannot kill the process mid-stop.
    await agent.stop();
    unsubscribe();
    signal.dispose();
  }
  if (typeof outcome !== 'string') throw outcome;
  out.document({ type: 'stopped', signal: outcome });
  return EXIT_OK;
}

// --- device unpair -----------------------------------------------------------------------------------------------

const UNPAIR_SPEC: CommandSpec = defineCommand({
  name: 'device unpair',
  summary: 'revoke this device at the gateway and wipe it',
  description: `Asks the gateway to revoke this device (RevokeDevicePairing over mutual TLS), then wipes the device's identity,
keys and pairing state. If the gateway cannot be reached the local material is wiped anyway and a warning says
that the gateway still lists the device (revoke it there with 'palyra devices revoke').

This is also the way out of error[device_state_corrupt] (device.v1.json was edited, replaced, restored from an older
copy or deleted): the state is not trusted, so the gateway is not contacted; the local material is wiped and the
device can pair again.`,
  options: { ...DEVICE_OPTIONS },
  positionals: [],
  notes: ['With --json: {"device_id","revoked_at_gateway":true|false,"gateway_error":{"code","message"}|null}'],
});

async function runUnpair(args: ParsedCommand, context: CliContext): Promise<number> {
  const agent = await openAgent(args, context);
  const result = await agent.unpair();
  const { out } = context;
  if (out.json) {
    out.document(result);
    return EXIT_OK;
  }
  if (result.gateway_error?.code === 'device_state_corrupt') {
    out.note(
      `warning: the device state failed its integrity check, so the gateway it names was not contacted; it still lists ` +
        `device ${result.device_id ?? '-'} as paired until an operator revokes it ('palyra devices revoke DEVICE_ID' on the gateway)`,
    );
  } else if (result.gateway_error !== null) {
    out.note(
      `warning: the gateway could not be told (error[${result.gateway_error.code}]: ${oneLine(result.gateway_error.message)}); ` +
        `it still lists device ${result.device_id ?? '-'} as paired until an operator revokes it`,
    );
  }
  out.line(
    result.device_id === null
      ? 'Nothing was paired; the device dir is wiped.'
      : `Unpaired device ${result.device_id}${result.revoked_at_gateway ? '; the gateway revoked it' : ''}. Local identity, keys and state are wiped.`,
  );
  return EXIT_OK;
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

// --- the group ---------------------------------------------------------------------------------------------------

export const DEVICE_GROUP = defineGroup({
  name: 'device',
  description: 'This machine as a device of a Palyra gateway.',
  options: DEVICE_OPTIONS,
  subcommands: {
    pair: { spec: PAIR_SPEC, run: runPair },
    status: { spec: STATUS_SPEC, run: runStatus },
    run: { spec: RUN_SPEC, run: runRun },
    unpair: { spec: UNPAIR_SPEC, run: runUnpair },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(DEVICE_GROUP, argv, context);
}
