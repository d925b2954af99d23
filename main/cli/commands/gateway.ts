/**
 * `palyra gateway run` (CLI.md "Gateway (operator side)"): the gateway, headless. Output is JSON lines on stdout:
 * the `gateway.ready` line first, then the gateway's log lines. SIGINT/SIGTERM stop it and exit 0 within 2 s.
 * `palyra gateway discover`: the gateways announced on this network over DNS-SD (a hint; trust comes from the pin).
 */

import { fileURLToPath } from 'node:url';
import { parseTtl } from '../../core/pairing-codes.js';
import { isLoopbackHost, parseHostPort } from '../../core/net-address.js';
import { DEFAULT_DISCOVER_TIMEOUT_MS, MAX_DISCOVER_TIMEOUT_MS, discoverGateways } from '../../gateway/discovery.js';
import { Gateway } from '../../gateway/gateway.js';
import { readRunningGateway } from '../../gateway/gateway-info.js';
import { loopbackWarning } from '../../gateway/lan-addresses.js';
import { redactDatabaseUrl } from '../../store/pg/pg-errors.js';
import { REPLICA_HEARTBEAT_MS, REPLICA_LIVE_MS, listLiveReplicas } from '../../store/pg/pg-replicas.js';
import { MAX_WORKERS, WorkerPool, defaultWorkerCount, parseWorkerCount } from '../../gateway/workers.js';
import type { WorkerStartOptions } from '../../gateway/workers-protocol.js';
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
/** Test only: the gateway answers the PIN pairing v2 RPCs UNIMPLEMENTED, as a reference gateway does. */
export const TEST_DISABLE_PAKE_ENV = 'PALYRA_TEST_DISABLE_PAKE';
/** CLI.md: exit within 2 s of SIGINT/SIGTERM. The gateway's stop() promises that; this is the backstop. */
const SHUTDOWN_DEADLINE_MS = 1_900;

const RUN_SPEC: CommandSpec = defineCommand({
  name: 'gateway run',
  summary: 'run the gateway (node-RPC port, pairing, revocation)',
  description: `Runs the gateway on the state directory: the node-RPC port (TLS; mutual TLS for paired devices), pairing and
revocation. Prints one line first when ready:
  {"event":"gateway.ready","listen":"HOST:PORT","ca_pin":"…","ca_fingerprint":"…","mtls_required":true,"state_dir":"…",
   "rollback_protection":"keychain|none","addresses":["HOST:PORT",…],"reachable":"this_computer|network",
   "announced":true|false,"backend":"file|postgres","workers":N}
(with --database-url also "replica_id":"…","replicas":[{"id","addresses":["HOST:PORT",…],"started_at_unix_ms",
"last_heartbeat_unix_ms"}]: this replica and the live ones it sees)
then JSON log lines (with --workers above 1, each worker's lines carry "worker":1..N). SIGINT/SIGTERM stop it
(exit 0). On a loopback address only this computer can connect (a warning on stderr says so); --listen 0.0.0.0:PORT
(IPv4) or [::]:PORT (IPv4 and IPv6) accepts devices on the network, and "addresses" lists every address they can dial.
--workers N runs N processes on the one port (default: one per core); the ready line comes once all of them listen.`,
  options: {
    listen: {
      type: 'string',
      placeholder: 'HOST:PORT',
      description: 'address to listen on; port 0 = any free port',
      default: DEFAULT_LISTEN,
    },
    name: { type: 'string', placeholder: 'NAME', description: 'gateway name shown to devices' },
    announce: {
      type: 'boolean',
      description: 'announce the gateway on the local network over DNS-SD (_palyra._tcp), even on a loopback address',
      default: 'on when not listening on loopback',
    },
    'no-announce': { type: 'boolean', description: 'never announce the gateway over DNS-SD' },
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
    'require-pake': {
      type: 'boolean',
      description: 'PIN pairing only with SPAKE2+ (v2): refuse reference clients that send the PIN (pake_required)',
    },
    workers: {
      type: 'string',
      placeholder: 'N',
      description: `worker processes sharing the one port, 1..${MAX_WORKERS}; 1 = a single process. A worker that dies is replaced`,
      default: 'the number of cores',
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
  if (args.flag('announce') && args.flag('no-announce')) throw usageError('--announce and --no-announce exclude each other', command);
  const announce = args.flag('announce') || (!args.flag('no-announce') && !isLoopbackHost(listen.host));
  const stateDir = resolveStateDir(args, context.env);
  const database = resolveDatabase(args, context.env);
  const workersText = args.string('workers');
  const workers = workersText === undefined ? defaultWorkerCount() : parseOptionValue('--workers', command, () => parseWorkerCount(workersText));
  const choice = await chooseKeychain(context.env);
  if (workers > 1) {
    return runWorkerPool(context, choice.reason, workers, {
      stateDir,
      listen,
      name,
      insecureNodeRpcOptOut: optOut,
      allowServerGeneratedKeys: args.flag('allow-server-generated-keys'),
      allowLegacyDeviceIds: args.flag('allow-legacy-device-ids'),
      requirePake: args.flag('require-pake'),
      disablePake: parseBooleanEnv(context.env, TEST_DISABLE_PAKE_ENV, command),
      announce,
      database,
    });
  }

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
      requirePake: args.flag('require-pake'),
      disablePake: parseBooleanEnv(context.env, TEST_DISABLE_PAKE_ENV, command),
      keychain: choice.keychain,
      announce,
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
      // Additive (round 2): who can reach it, and whether it is announced over DNS-SD.
      addresses: gateway.addresses,
      reachable: gateway.reachable,
      announced: gateway.announcedAs !== null,
      backend: gateway.admin.backendKind,
      // Additive (issue 15): on a state database, this replica's id and the live replicas (this one included).
      ...(gateway.admin.backendKind === 'postgres' ? { replica_id: gateway.replicaId, replicas: await gateway.admin.liveReplicas().catch(() => []) } : {}),
      workers: 1,
    });
    const startup = pending;
    pending = null;
    for (const line of startup) out.document(line);
    const warning = loopbackWarning(gateway.listen);
    if (warning !== null) out.note(warning);
    out.document({ event: 'gateway.store_key', location: gateway.admin.keyLocation, reason: choice.reason });
    startupNotes(context, gateway.admin.rollbackProtection === 'none' && database === null, gateway.mtlsRequired, gateway.listen);
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

/** The notes after the store_key line: no rollback anchor (key file), the opt-out warning. */
function startupNotes(context: CliContext, noAnchor: boolean, mtlsRequired: boolean, listen: string): void {
  if (noAnchor) {
    context.out.note(
      'note: the state store key is in a key file, so there is no rollback anchor: whoever can write the state directory can restore older state files unnoticed (keep the key in the OS keychain to detect that)',
    );
  }
  if (!mtlsRequired) {
    context.out.note(
      `WARNING: insecure node-RPC opt-out is ON (--insecure-node-rpc-opt-out / ${INSECURE_OPT_OUT_ENV}): ` +
        'client certificates are not required and device-bound RPCs trust the device_id in the request. ' +
        `Any process that can reach ${listen} can act as any paired device. Never use this outside development.`,
    );
  }
}

/**
 * `--workers N` (N > 1): the same output as one process, from the primary (main/gateway/workers.ts). The ready line
 * comes once every worker listens; SIGINT/SIGTERM stop all of them within the same 2 s.
 */
async function runWorkerPool(context: CliContext, keychainReason: string, count: number, options: WorkerStartOptions): Promise<number> {
  const { out } = context;
  let pending: Record<string, unknown>[] | null = [];
  const log = (line: Record<string, unknown>): void => {
    if (pending === null) out.document(line);
    else pending.push(line);
  };
  const signal = shutdownSignal();
  let pool: WorkerPool;
  try {
    pool = await WorkerPool.start({ count, options, log, exec: fileURLToPath(new URL('../gateway-worker.js', import.meta.url)) });
  } catch (error) {
    signal.dispose();
    const lines = (error as { startupLines?: Record<string, unknown>[] }).startupLines ?? [];
    for (const line of lines) out.note(JSON.stringify(line));
    throw error;
  }
  const { info } = pool;
  out.document({
    event: 'gateway.ready',
    listen: info.listen,
    ca_pin: info.caPin,
    ca_fingerprint: info.caFingerprint,
    mtls_required: info.mtlsRequired,
    state_dir: options.stateDir,
    rollback_protection: info.rollbackProtection,
    addresses: info.addresses,
    reachable: info.reachable,
    announced: info.announced,
    backend: info.backend,
    workers: count,
    // Issue 15: on a state database, the pool is one replica (slot 1 registers it).
    ...(options.database === null ? {} : { replica_id: info.replicaId, replicas: await listLiveReplicas(options.database.databaseUrl).catch(() => []) }),
  });
  for (const line of pool.startup) out.document(line);
  const early = pending;
  pending = null;
  for (const line of early) out.document(line);
  const warning = loopbackWarning(info.listen);
  if (warning !== null) out.note(warning);
  out.document({ event: 'gateway.store_key', location: info.keyLocation, reason: keychainReason });
  startupNotes(context, info.rollbackProtection === 'none' && options.database === null, info.mtlsRequired, info.listen);

  const received = await signal.received;
  setTimeout(() => process.exit(EXIT_OK), SHUTDOWN_DEADLINE_MS).unref();
  try {
    await pool.stop(SHUTDOWN_DEADLINE_MS - 300);
  } finally {
    signal.dispose();
  }
  out.document({ event: 'gateway.stopped', signal: received });
  return EXIT_OK;
}

const DISCOVER_SPEC: CommandSpec = defineCommand({
  name: 'gateway discover',
  summary: 'list the gateways announced on this network (DNS-SD)',
  description: `Asks the local network for gateways (DNS-SD service _palyra._tcp over multicast DNS) for --timeout and lists
the ones that answered: name, addresses to dial, the start of their CA pin and the pairing protocol versions they
speak. A listing is only a hint: pairing still checks the gateway's CA pin (or the PIN handshake does).
--json: {"gateways":[{"name","addresses":["HOST:PORT",…],"ca_pin_prefix","protocol_versions":[1],"host"}]}`,
  options: {
    timeout: {
      type: 'string',
      placeholder: 'DURATION',
      description: `how long to listen for answers (e.g. 3s, 1500ms; at most ${MAX_DISCOVER_TIMEOUT_MS / 1000}s)`,
      default: `${DEFAULT_DISCOVER_TIMEOUT_MS / 1000}s`,
    },
  },
  positionals: [],
});

async function runGatewayDiscover(args: ParsedCommand, context: CliContext): Promise<number> {
  const command = DISCOVER_SPEC.name;
  const timeoutText = args.string('timeout');
  const timeoutMs = timeoutText === undefined ? DEFAULT_DISCOVER_TIMEOUT_MS : parseOptionValue('--timeout', command, () => parseTtl(timeoutText));
  if (timeoutMs < 1 || timeoutMs > MAX_DISCOVER_TIMEOUT_MS) {
    throw usageError(`--timeout must be between 1ms and ${MAX_DISCOVER_TIMEOUT_MS / 1000}s`, command);
  }
  const signal = shutdownSignal();
  const abort = new AbortController();
  void signal.received.then(() => {
    abort.abort();
  });
  let gateways;
  try {
    gateways = await discoverGateways({ timeoutMs, signal: abort.signal });
  } finally {
    signal.dispose();
  }
  const { out } = context;
  if (out.json) {
    out.document({ gateways });
    return EXIT_OK;
  }
  if (gateways.length === 0) {
    out.line(`No gateway answered within ${timeoutMs >= 1000 ? `${timeoutMs / 1000}s` : `${timeoutMs}ms`}.`);
    return EXIT_OK;
  }
  for (const g of gateways) {
    out.line(`${g.name === '' ? '(no name)' : g.name}  ${g.addresses.join(', ') || `(no address; host ${g.host})`}`);
    out.line(`  CA pin starts ${g.ca_pin_prefix}  protocol ${g.protocol_versions.join(',') || '?'}  host ${g.host}`);
  }
  return EXIT_OK;
}

const STATUS_SPEC: CommandSpec = defineCommand({
  name: 'gateway status',
  summary: 'the backend, and the gateway (or the live replicas) running on the state',
  description: `Shows where the trust state lives and who serves it. On a state directory: the gateway running on it (from
its gateway.v1.json, if its process is alive). With --database-url: the live replicas of the state database (a heartbeat
every ${REPLICA_HEARTBEAT_MS / 1000} s; one silent for ${REPLICA_LIVE_MS / 1000} s is not listed), oldest first. Reads
only; needs no store key.
--json (state directory): {"backend":"file","state_dir":"…","gateway":{"listen","name","pid","started_at_unix_ms"}|null}
--json (database): {"backend":"postgres","database":"postgres://USER@HOST:PORT/DB",
  "replicas":[{"id","addresses":["HOST:PORT",…],"started_at_unix_ms","last_heartbeat_unix_ms"}]}`,
  options: {},
  positionals: [],
});

async function runGatewayStatus(args: ParsedCommand, context: CliContext): Promise<number> {
  const database = resolveDatabase(args, context.env);
  const { out } = context;
  if (database !== null) {
    const replicas = await listLiveReplicas(database.databaseUrl);
    const report = { backend: 'postgres' as const, database: redactDatabaseUrl(database.databaseUrl), replicas };
    if (out.json) {
      out.document(report);
      return EXIT_OK;
    }
    out.line(`Backend: PostgreSQL ${report.database}`);
    if (replicas.length === 0) out.line('No live replica.');
    else out.line(`${replicas.length} live replica${replicas.length === 1 ? '' : 's'}:`);
    for (const r of replicas) out.line(`  ${r.id}  ${r.addresses.join(', ') || '(no address)'}  started ${new Date(r.started_at_unix_ms).toISOString()}`);
    return EXIT_OK;
  }
  const stateDir = resolveStateDir(args, context.env);
  const running = await readRunningGateway(stateDir);
  const gateway = running === null ? null : { listen: running.listen, name: running.name, pid: running.pid, started_at_unix_ms: running.started_at_unix_ms };
  if (out.json) {
    out.document({ backend: 'file', state_dir: stateDir, gateway });
    return EXIT_OK;
  }
  out.line(`Backend: state directory ${stateDir}`);
  out.line(gateway === null ? 'No gateway is running on it.' : `Gateway running: ${gateway.listen} (pid ${gateway.pid}${gateway.name === null ? '' : `, ${gateway.name}`})`);
  return EXIT_OK;
}

export const GATEWAY_GROUP = defineGroup({
  name: 'gateway',
  description: 'The gateway itself, headless, on the state directory; and the gateways nearby.',
  subcommands: {
    run: { spec: RUN_SPEC, run: runGatewayRun },
    status: { spec: STATUS_SPEC, run: runGatewayStatus },
    discover: { spec: DISCOVER_SPEC, run: runGatewayDiscover },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(GATEWAY_GROUP, argv, context);
}
