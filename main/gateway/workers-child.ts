/**
 * One worker process of `palyra gateway run --workers N` (forked by workers.ts through node:cluster; the process entry
 * is main/cli/gateway-worker.ts, which sets the signal handlers first and passes the keychain choice). It runs a
 * whole Gateway on the shared port (the primary accepts connections and hands them round-robin to the workers) and
 * on the shared state, which every worker watches for other processes' changes (revocations, role changes, codes,
 * approvals). Over IPC it sends its log lines, which devices hold streams here, and capability calls for devices whose
 * stream is on another worker; it runs such calls relayed to it.
 *
 * Signals: SIGINT is ignored (a terminal's Ctrl-C reaches the whole process group; the primary coordinates the stop);
 * SIGTERM, the primary's `stop` message, or losing the primary (IPC disconnect) stop the gateway and exit.
 */

import { PalyraError, isErrorCode, toPalyraError } from '../core/errors.js';
import type { Keychain } from '../store/keychain.js';
import type { CapabilityResult } from './capabilities.js';
import { Gateway } from './gateway.js';
import type { CapabilityCall, GatewayPeers } from './gateway.js';
import type { PrimaryToWorker, WireError, WorkerStartOptions, WorkerToPrimary } from './workers-protocol.js';

/** The worker's share of the 2 s the primary has to stop. */
const STOP_DEADLINE_MS = 1_500;

function send(message: WorkerToPrimary): void {
  if (process.connected) process.send?.(message);
}

function wireError(error: unknown): WireError {
  const e = toPalyraError(error);
  return { code: e.code, message: e.message };
}

function fromWire(error: WireError): PalyraError {
  return new PalyraError(isErrorCode(error.code) ? error.code : 'internal', error.message);
}

let chooseKeychain: (env: NodeJS.ProcessEnv) => Promise<{ keychain: Keychain | null }> = () => Promise.resolve({ keychain: null });
let gateway: Gateway | null = null;
let stopping: Promise<void> | null = null;
let nextExecId = 1;
const relayed = new Map<number, { resolve: (r: CapabilityResult | null) => void; reject: (e: PalyraError) => void }>();
/** Peer state that arrived while the gateway was still starting. */
const earlyPeerLive = new Map<string, number | null>();

function stopAndExit(code: number): void {
  if (stopping !== null) return;
  setTimeout(() => process.exit(code), STOP_DEADLINE_MS).unref();
  stopping = (gateway?.stop() ?? Promise.resolve()).catch(() => undefined).then(() => process.exit(code));
}

const peers: GatewayPeers = {
  liveChanged(deviceId, online) {
    send({ t: 'live', deviceId, online });
  },
  executeElsewhere(call: CapabilityCall): Promise<CapabilityResult | null> {
    const id = nextExecId++;
    return new Promise((resolve, reject) => {
      relayed.set(id, { resolve, reject });
      send({ t: 'exec', id, call });
    });
  },
};

async function start(options: WorkerStartOptions): Promise<void> {
  const startup: Record<string, unknown>[] = [];
  let started = false;
  const log = (line: Record<string, unknown>): void => {
    if (started) send({ t: 'log', line });
    else startup.push(line);
  };
  try {
    const choice = await chooseKeychain(process.env);
    gateway = await Gateway.start({ ...options, keychain: choice.keychain, log, peers });
  } catch (error) {
    // Exit once the message has left.
    const failed: WorkerToPrimary = { t: 'failed', error: wireError(error), startup };
    if (process.connected && process.send !== undefined) process.send(failed, undefined, {}, () => process.exit(1));
    else process.exit(1);
    return;
  }
  for (const [deviceId, at] of earlyPeerLive) gateway.setPeerLive(deviceId, at);
  earlyPeerLive.clear();
  started = true;
  send({
    t: 'ready',
    info: {
      pid: process.pid,
      listen: gateway.listen,
      caPin: gateway.caPin,
      caFingerprint: gateway.caFingerprint,
      caCertificatePem: gateway.caCertificatePem,
      mtlsRequired: gateway.mtlsRequired,
      rollbackProtection: gateway.admin.rollbackProtection,
      addresses: gateway.addresses,
      reachable: gateway.reachable,
      announced: gateway.announcedAs !== null,
      backend: gateway.admin.backendKind,
      keyLocation: gateway.admin.keyLocation,
      replicaId: gateway.replicaId,
    },
    startup,
  });
}

function runRelayed(id: number, call: CapabilityCall): void {
  let running: Promise<CapabilityResult> | null;
  try {
    running = gateway?.executeIfLocal(call) ?? null;
  } catch (error) {
    send({ t: 'exec.done', id, error: wireError(error) });
    return;
  }
  if (running === null) {
    send({ t: 'exec.done', id, notHere: true });
    return;
  }
  running.then(
    (result) => {
      send({ t: 'exec.done', id, result });
    },
    (error: unknown) => {
      send({ t: 'exec.done', id, error: wireError(error) });
    },
  );
}

function onMessage(message: PrimaryToWorker): void {
  switch (message.t) {
    case 'start':
      void start(message.options);
      break;
    case 'stop':
      stopAndExit(0);
      break;
    case 'stats': {
      (globalThis as { gc?: () => void }).gc?.();
      const memory = process.memoryUsage();
      const cpu = process.cpuUsage();
      send({
        t: 'stats',
        id: message.id,
        stats: { rss: memory.rss, heap: memory.heapUsed, external: memory.external, cpuUs: cpu.user + cpu.system, live: gateway?.localLiveNodes().size ?? 0 },
      });
      break;
    }
    case 'peer.live':
      if (gateway === null) earlyPeerLive.set(message.deviceId, message.at);
      else gateway.setPeerLive(message.deviceId, message.at);
      break;
    case 'exec.run':
      runRelayed(message.id, message.call);
      break;
    case 'exec.result': {
      const waiter = relayed.get(message.id);
      if (waiter === undefined) break;
      relayed.delete(message.id);
      if (message.notHere === true) waiter.resolve(null);
      else if (message.error !== undefined) waiter.reject(fromWire(message.error));
      else if (message.result !== undefined) waiter.resolve({ ...message.result, outputJson: new Uint8Array(message.result.outputJson) });
      else waiter.reject(new PalyraError('internal', 'relayed capability call answered without a result'));
      break;
    }
  }
}

/**
 * Runs this process as a worker: listens to the primary, then says hello (the primary answers with `start`). The
 * caller has made SIGINT harmless; SIGTERM now stops the gateway.
 */
export function runGatewayWorker(o: { chooseKeychain: (env: NodeJS.ProcessEnv) => Promise<{ keychain: Keychain | null }> }): void {
  chooseKeychain = o.chooseKeychain;
  process.on('message', onMessage);
  process.on('SIGTERM', () => {
    stopAndExit(0);
  });
  process.on('disconnect', () => {
    for (const waiter of relayed.values()) waiter.reject(new PalyraError('unavailable', 'the gateway primary is gone'));
    relayed.clear();
    stopAndExit(gateway === null ? 1 : 0);
  });
  send({ t: 'hello' });
}
