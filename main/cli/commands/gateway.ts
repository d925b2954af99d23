/**
 * `palyra gateway run` (CLI.md "Gateway (operator side)"): the gateway, headless. Output is JSON lines on stdout:
 * the `gateway.ready` line first, then the gateway's log lines. SIGINT/SIGTERM stop it and exit 0 within 2 s.
 */

import { parseHostPort } from '../../core/net-address.js';
import { Gateway } from '../../gateway/gateway.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { parseOptionValue, usageError } from '../args.js';
import type { CliContext } from '../context.js';
import { chooseKeychain } from '../../platform/keychain-choice.js';
import { resolveDatabase, resolveStateDir, runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK } from '../output.js';
import { shutdownSignal } from '../signals.js';

export const DEFAULT_LISTEN = '127.0.0.1:7444';
export const INSECURE_OPT_OUT_ENV = 'PALYRA_ALLOW_INSECURE_NODE_RPC_WITHOUT_MTLS';
/** CLI.md: exit within 2 s of SIGINT/SIGTERM. The gateway's stop() promises that; this is the backstop. */
const SHUTDOWN_DEADLINE_MS = 1_900;

const RUN_SPEC: CommandSpec = defineCommand({
  name: 'gateway run',
  summary: 'run the gateway (node-RPC port, pairing, revocation)',
  description: `Runs the gateway on the state directory: the node-RPC port (TLS; mutual TLS for paired devices), pairing and
revocation. Prints one line first when ready:
  {"event":"gateway.ready","listen":"HOST:PORT","ca_pin":"…","ca_fingerprint":"…","mtls_required":true,"state_dir":"…",
   "rollback_protection":"keychain|none","backend":"file|postgres"}
then JSON log lines. SIGINT/SIGTERM stop it (exit 0).`,
  options: {
    listen: {
      type: 'string',
      placeholder: 'HOST:PORT',
      description: 'address to listen on; port 0 = any free port',
      default: DEFAULT_LISTEN,
    },
    name: { type: 'string', placeholder: 'NAME', description: 'gateway name shown to devices' },
    'insecure-node-rpc-opt-out': {
      type: 'boolean',
      description: "no client certificates: device-bound RPCs trust the request's device_id. Loopback listen addresses only",
      env: `${INSECURE_OPT_OUT_ENV}=true does the same`,
    },
    'allow-server-generated-keys': {
      type: 'boolean',
      description: 'accept reference clients without a CSR (the gateway makes their key, once)',
    },
    'allow-legacy-device-ids': {
      type: 'boolean',
      description: 'accept device ids not derived from the device key (reference-built nodes)',
    },
  },
  positionals: [],
  notes: [
    `The state store key is kept in the OS keychain when one is available, else in a key file in the state directory
(env PALYRA_KEYCHAIN=file forces the key file); the log says which.`,
  ],
});

/** `true`/`false` when set (empty counts as unset); anything else is a usage error. */
export function parseBooleanEnv(env: NodeJS.ProcessEnv, name: string, command: string): boolean {
  const value = env[name];
  if (value === undefined || value === '') return false;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw usageError(`environment variable ${name} must be 'true' or 'false' (got '${value.slice(0, 32)}')`, command);
}


async function runGatewayRun(args: ParsedCommand, context: CliContext): Promise<number> {
  const command = RUN_SPEC.name;
  const listenText = args.string('listen') ?? DEFAULT_LISTEN;
  const listen = parseOptionValue('--listen', command, () => parseHostPort(listenText, { allowPortZero: true }));
  const name = args.string('name') ?? null;
  if (name?.trim() === '') throw usageError('--name must not be empty', command);
  const optOut = args.flag('insecure-node-rpc-opt-out') || parseBooleanEnv(context.env, INSECURE_OPT_OUT_ENV, command);
  const stateDir = resolveStateDir(args, context.env);
  const database = resolveDatabase(args, context.env);
  const choice = await chooseKeychain(context.env);

  const { out } = context;
  // The ready line must come first: log lines written while starting wait for it.
  let pending: Record<string, unknown>[] | null = [];
  const log = (line: Record<string, unknown>): void => {
    if (pending === null) out.document(line);
    else pending.push(line);
  };

  const signal = shutdownSignal();
  let gateway: Gateway;
  try {
    gateway = await Gateway.start({
      stateDir,
      listen,
      name,
      insecureNodeRpcOptOut: optOut,
      allowServerGeneratedKeys: args.flag('allow-server-generated-keys'),
      allowLegacyDeviceIds: args.flag('allow-legacy-device-ids'),
      keychain: choice.keychain,
      database,
      log,
    });
  } catch (error) {
    signal.dispose();
    // What the gateway logged before it failed goes with the error, off the machine-readable stdout.
    for (const line of pending) out.note(JSON.stringify(line));
    throw error;
  }

  try {
    out.document({
      event: 'gateway.ready',
      listen: gateway.listen,
      ca_pin: gateway.caPin,
      ca_fingerprint: gateway.caFingerprint,
      mtls_required: gateway.mtlsRequired,
      state_dir: stateDir,
      rollback_protection: gateway.admin.rollbackProtection,
      backend: gateway.admin.backendKind,
    });
    const startup = pending;
    pending = null;
    for (const line of startup) out.document(line);
    out.document({ event: 'gateway.store_key', location: gateway.admin.keyLocation, reason: choice.reason });
    if (gateway.admin.rollbackProtection === 'none' && database === null) {
      out.note(
        'note: the state store key is in a key file, so there is no rollback anchor: whoever can write the state directory can restore older state files unnoticed (keep the key in the OS keychain to detect that)',
      );
    }
    if (!gateway.mtlsRequired) {
      out.note(
        `WARNING: insecure node-RPC opt-out is ON (--insecure-node-rpc-opt-out / ${INSECURE_OPT_OUT_ENV}): ` +
          'client certificates are not required and device-bound RPCs trust the device_id in the request. ' +
          `Any process that can reach ${gateway.listen} can act as any paired device. Never use this outside development.`,
      );
    }
  } catch (error) {
    // A failure after start must not leave the gateway running behind an error.
    signal.dispose();
    await gateway.stop();
    throw error;
  }

  const received = await signal.received;
  // Backstop for the 2 s promise; unref'd so it never keeps a finished process alive.
  setTimeout(() => process.exit(EXIT_OK), SHUTDOWN_DEADLINE_MS).unref();
  try {
    await gateway.stop();
  } finally {
    // Kept until here so a second signal cannot kill the process with a non-zero status mid-stop.
    signal.dispose();
  }
  out.document({ event: 'gateway.stopped', signal: received });
  return EXIT_OK;
}

export const GATEWAY_GROUP = defineGroup({
  name: 'gateway',
  description: 'The gateway itself, headless, on the state directory.',
  subcommands: { run: { spec: RUN_SPEC, run: runGatewayRun } },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(GATEWAY_GROUP, argv, context);
}
