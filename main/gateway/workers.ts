/**
 * `palyra gateway run --workers N` (issue 16 "All cores"): N worker processes (workers-child.ts), each a whole Gateway,
 * on ONE port, through node:cluster with round-robin scheduling: this primary process owns the listening socket,
 * accepts each TCP connection and hands it to the next worker, which does TLS, HTTP/2 and gRPC itself. Chosen over
 * SO_REUSEPORT because Node 20's net has no `reusePort` (it came in 22.12/23.1), and over cluster's shared-handle mode
 * because on Linux that leaves most connections to one or two workers; a device holds one long-lived connection, so
 * the primary's per-connection cost is paid once per device.
 *
 * The workers share the trust state (the file backend is multi-process safe; PostgreSQL is shared by design), and each
 * watches it for other processes' changes, so a revocation or a role change made anywhere (the CLI, another worker,
 * another replica) ends the device's streams on whichever worker holds them. What is per process and must cross
 * workers goes through this primary over IPC (workers-protocol.ts):
 *   - which devices hold streams on which worker (`live` → `peer.live` to the others), so listings (admin
 *     ListDevices) show a device online whatever worker serves the call;
 *   - capability calls (ExecuteCapability) that arrive on a worker that does not hold the device's stream: relayed to
 *     the worker that does (`exec` → `exec.run` → `exec.done` → `exec.result`), and logged as `capability.relayed`.
 *     With no worker holding one, the call waits on the worker it arrived on, as on a single gateway.
 *
 * The primary writes gateway.v1.json (with its own pid), forwards the workers' log lines with a `worker` field, and
 * replaces a worker that exits (logged `gateway.worker_exited`, then `gateway.worker_started`); that worker's devices
 * reconnect by themselves (they retry) and land on the workers that are left or on the replacement. Worker 1 announces
 * the gateway over DNS-SD when asked to.
 */

import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import os from 'node:os';
import { PalyraError, isErrorCode } from '../core/errors.js';
import { removeGatewayInfo, writeGatewayInfo } from './gateway-info.js';
import type { CapabilityResult } from './capabilities.js';
import type { CapabilityCall } from './gateway.js';
import type { PrimaryToWorker, WireError, WorkerReadyInfo, WorkerStartOptions, WorkerStats, WorkerToPrimary } from './workers-protocol.js';

export const MAX_WORKERS = 64;
/** A worker that exits sooner than this after it started counts as failing; replacements then back off. */
const QUICK_EXIT_MS = 5_000;
const MAX_BACKOFF_MS = 10_000;

/** `--workers` default: the cores this process may use. */
export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(MAX_WORKERS, os.availableParallelism()));
}

/** `--workers N`: 1..MAX_WORKERS, decimal digits only. */
export function parseWorkerCount(text: string): number {
  const n = /^[1-9][0-9]{0,3}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) throw new Error(`must be a whole number from 1 to ${MAX_WORKERS} (got '${text.slice(0, 32)}')`);
  return n;
}

interface Slot {
  readonly slot: number;
  worker: Worker | null;
  info: WorkerReadyInfo | null;
  startedAt: number;
  failures: number;
  replaceTimer: NodeJS.Timeout | null;
}

interface Relay {
  origin: number;
  originId: number;
  target: number;
}

function errorFrom(wire: WireError): PalyraError {
  return new PalyraError(isErrorCode(wire.code) ? wire.code : 'internal', wire.message);
}

export class WorkerPool {
  readonly count: number;
  /** Worker 1's ready report: the fields of the `gateway.ready` line. */
  readonly info: WorkerReadyInfo;
  /** The log lines the workers wrote while starting (each with its `worker`). */
  readonly startup: Record<string, unknown>[];
  readonly #options: WorkerStartOptions;
  readonly #log: (line: Record<string, unknown>) => void;
  readonly #slots: Map<number, Slot>;
  /** deviceId → the workers holding a stream of it, with when each reported it online. */
  readonly #holders = new Map<string, Map<number, number>>();
  readonly #relays = new Map<number, Relay>();
  #nextRelay = 1;
  /** Calls this primary made itself (origin 0: `execute`), by relay id. */
  readonly #own = new Map<number, { resolve: (r: CapabilityResult) => void; reject: (e: PalyraError) => void }>();
  readonly #statsWaiters = new Map<number, { slot: number; resolve: (stats: WorkerStats | null) => void }>();
  #nextStats = 1;
  #stopping = false;

  private constructor(o: { count: number; info: WorkerReadyInfo; startup: Record<string, unknown>[]; options: WorkerStartOptions; log: (line: Record<string, unknown>) => void; slots: Map<number, Slot> }) {
    this.count = o.count;
    this.info = o.info;
    this.startup = o.startup;
    this.#options = o.options;
    this.#log = o.log;
    this.#slots = o.slots;
  }

  /**
   * Forks worker 1 (which creates the state on first use), then the others; resolves once every one listens. A worker
   * that fails to start fails the whole start with its error (the others are stopped first).
   */
  static async start(o: {
    count: number;
    options: WorkerStartOptions;
    log: (line: Record<string, unknown>) => void;
    /** The worker process entry (main/cli/gateway-worker.ts, compiled): it calls runGatewayWorker. */
    exec: string;
  }): Promise<WorkerPool> {
    if (!cluster.isPrimary) throw new PalyraError('internal', 'a gateway worker cannot start workers');
    cluster.schedulingPolicy = cluster.SCHED_RR;
    cluster.setupPrimary({
      exec: o.exec,
      args: [],
      serialization: 'advanced',
      // Workers write nothing to stdout: their lines come over IPC, so the JSON lines stay whole and ordered.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const slots = new Map<number, Slot>();
    for (let slot = 1; slot <= o.count; slot++) slots.set(slot, { slot, worker: null, info: null, startedAt: 0, failures: 0, replaceTimer: null });
    // Until the pool exists, messages go to this stand-in, which only collects.
    let pool: WorkerPool | null = null;
    const early: { slot: number; message: WorkerToPrimary }[] = [];
    const onMessage = (slot: number, message: WorkerToPrimary): void => {
      if (pool === null) early.push({ slot, message });
      else pool.#onMessage(slot, message);
    };
    const startup: Record<string, unknown>[] = [];
    const launched: Worker[] = [];
    const startOne = (slot: number): Promise<WorkerReadyInfo> =>
      new Promise((resolve, reject) => {
        const worker = WorkerPool.#fork(slot, o.options, (message) => {
          if (message.t === 'ready') {
            for (const line of message.startup) startup.push({ ...line, worker: slot });
            startup.push({ event: 'gateway.worker_started', worker: slot, pid: message.info.pid });
            resolve(message.info);
          } else if (message.t === 'failed') {
            for (const line of message.startup) startup.push({ ...line, worker: slot });
            reject(errorFrom(message.error));
          } else onMessage(slot, message);
        });
        launched.push(worker);
        const entry = slots.get(slot)!;
        entry.worker = worker;
        entry.startedAt = Date.now();
        worker.once('exit', (code: number | null, signal: string | null) => {
          reject(new PalyraError('internal', `gateway worker ${slot} exited while starting (${signal ?? `code ${String(code)}`})`));
        });
      });
    let infos: WorkerReadyInfo[];
    try {
      const first = await startOne(1);
      const rest = await Promise.all(Array.from({ length: o.count - 1 }, (_, i) => startOne(i + 2)));
      infos = [first, ...rest];
    } catch (error) {
      await WorkerPool.#killAll(launched);
      const e = error instanceof PalyraError ? error : new PalyraError('internal', String(error));
      throw Object.assign(e, { startupLines: startup });
    }
    infos.forEach((info, i) => (slots.get(i + 1)!.info = info));
    pool = new WorkerPool({ count: o.count, info: infos[0]!, startup, options: o.options, log: o.log, slots });
    for (const { slot, message } of early) pool.#onMessage(slot, message);
    for (const entry of slots.values()) pool.#watchExit(entry);
    await writeGatewayInfo(o.options.stateDir, {
      listen: pool.info.listen,
      name: o.options.name,
      pid: process.pid,
      started_at_unix_ms: Date.now(),
      ca_pin: pool.info.caPin,
      ca_fingerprint: pool.info.caFingerprint,
      mtls_required: pool.info.mtlsRequired,
    });
    return pool;
  }

  /** The pids of the running workers by worker number (tests, bench). */
  workerPids(): Map<number, number> {
    const pids = new Map<number, number>();
    for (const entry of this.#slots.values()) {
      const pid = entry.worker?.process.pid;
      if (pid !== undefined && entry.info !== null) pids.set(entry.slot, pid);
    }
    return pids;
  }

  static #fork(slot: number, options: WorkerStartOptions, onMessage: (message: WorkerToPrimary) => void): Worker {
    const worker = cluster.fork();
    worker.on('message', (message: WorkerToPrimary) => {
      if (message.t === 'hello') {
        const start: PrimaryToWorker = { t: 'start', slot, options: { ...options, announce: options.announce && slot === 1, registerReplica: slot === 1 } };
        worker.send(start);
      } else onMessage(message);
    });
    // A worker that cannot be written to any more is about to exit; its 'exit' handles the rest.
    worker.on('error', () => undefined);
    return worker;
  }

  static async #killAll(workers: Worker[]): Promise<void> {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.process.exitCode !== null || w.process.signalCode !== null) {
              resolve();
              return;
            }
            w.once('exit', () => {
              resolve();
            });
            w.process.kill('SIGKILL');
          }),
      ),
    );
  }

  #send(slot: number, message: PrimaryToWorker): void {
    const worker = this.#slots.get(slot)?.worker;
    if (worker === null || worker === undefined || !worker.isConnected()) return;
    worker.send(message);
  }

  #onMessage(slot: number, message: WorkerToPrimary): void {
    switch (message.t) {
      case 'log':
        this.#log({ ...message.line, worker: slot });
        break;
      case 'live':
        this.#setHolder(message.deviceId, slot, message.online);
        break;
      case 'exec':
        this.#route(slot, message.id, message.call);
        break;
      case 'exec.done': {
        const relay = this.#relays.get(message.id);
        if (relay?.target !== slot) break;
        this.#relays.delete(message.id);
        const { t: _t, id: _id, ...answer } = message;
        if (relay.origin === 0) this.#settleOwn(relay.originId, answer);
        else this.#send(relay.origin, { t: 'exec.result', id: relay.originId, ...answer });
        break;
      }
      case 'stats':
        this.#statsWaiters.get(message.id)?.resolve(message.stats);
        this.#statsWaiters.delete(message.id);
        break;
      case 'hello':
      case 'ready':
      case 'failed':
        break;
    }
  }

  #setHolder(deviceId: string, slot: number, online: boolean): void {
    let holders = this.#holders.get(deviceId);
    if (online) {
      if (holders === undefined) {
        holders = new Map<number, number>();
        this.#holders.set(deviceId, holders);
      }
      holders.set(slot, Date.now());
    } else {
      if (holders?.delete(slot) !== true) return;
      if (holders.size === 0) this.#holders.delete(deviceId);
    }
    for (const other of this.#slots.keys()) if (other !== slot) this.#sendPeerLive(other, deviceId);
  }

  /** Tells `slot` whether `deviceId` has a stream on another worker than itself. */
  #sendPeerLive(slot: number, deviceId: string): void {
    let at: number | null = null;
    for (const [holder, since] of this.#holders.get(deviceId) ?? []) if (holder !== slot && (at === null || since > at)) at = since;
    this.#send(slot, { t: 'peer.live', deviceId, at });
  }

  #route(origin: number, originId: number, call: Extract<WorkerToPrimary, { t: 'exec' }>['call']): void {
    let target: number | null = null;
    let newest = -Infinity;
    for (const [holder, since] of this.#holders.get(call.deviceId) ?? []) {
      if (holder !== origin && since > newest && this.#slots.get(holder)?.info != null) {
        target = holder;
        newest = since;
      }
    }
    if (target === null) {
      if (origin === 0) this.#settleOwn(originId, { notHere: true });
      else this.#send(origin, { t: 'exec.result', id: originId, notHere: true });
      return;
    }
    const id = this.#nextRelay++;
    this.#relays.set(id, { origin, originId, target });
    if (origin !== 0) this.#log({ event: 'capability.relayed', device_id: call.deviceId, capability: call.capability, from_worker: origin, to_worker: target });
    this.#send(target, { t: 'exec.run', id, call });
  }

  #watchExit(entry: Slot): void {
    const worker = entry.worker;
    if (worker === null) return;
    // Exited between its ready report and now (while the other workers started)?
    if (worker.process.exitCode !== null || worker.process.signalCode !== null) {
      this.#onExit(entry, worker, worker.process.exitCode, worker.process.signalCode);
      return;
    }
    worker.once('exit', (code, signal) => {
      this.#onExit(entry, worker, code, signal);
    });
  }

  #onExit(entry: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (entry.worker !== worker) return;
    entry.worker = null;
    entry.info = null;
    for (const [deviceId, holders] of [...this.#holders]) if (holders.has(entry.slot)) this.#setHolder(deviceId, entry.slot, false);
    for (const [id, relay] of [...this.#relays]) {
      if (relay.origin === entry.slot) this.#relays.delete(id);
      else if (relay.target === entry.slot) {
        this.#relays.delete(id);
        const error = { code: 'unavailable', message: 'the worker holding the device stream stopped' };
        if (relay.origin === 0) this.#settleOwn(relay.originId, { error });
        else this.#send(relay.origin, { t: 'exec.result', id: relay.originId, error });
      }
    }
    for (const [id, waiter] of [...this.#statsWaiters]) {
      if (waiter.slot !== entry.slot) continue;
      this.#statsWaiters.delete(id);
      waiter.resolve(null);
    }
    if (this.#stopping) return;
    const quick = Date.now() - entry.startedAt < QUICK_EXIT_MS;
    entry.failures = quick ? entry.failures + 1 : 0;
    const delay = entry.failures === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (entry.failures - 1));
    this.#log({ event: 'gateway.worker_exited', worker: entry.slot, pid: worker.process.pid ?? null, code, signal, replace_in_ms: delay });
    entry.replaceTimer = setTimeout(() => {
      entry.replaceTimer = null;
      this.#replace(entry);
    }, delay);
  }

  #replace(entry: Slot): void {
    if (this.#stopping) return;
    const worker = WorkerPool.#fork(entry.slot, this.#options, (message) => {
      if (message.t === 'ready') {
        for (const line of message.startup) this.#log({ ...line, worker: entry.slot });
        entry.info = message.info;
        // What the other workers hold, so this one's listings and relays are right from the start.
        for (const deviceId of this.#holders.keys()) this.#sendPeerLive(entry.slot, deviceId);
        this.#log({ event: 'gateway.worker_started', worker: entry.slot, pid: message.info.pid });
      } else if (message.t === 'failed') {
        for (const line of message.startup) this.#log({ ...line, worker: entry.slot });
        this.#log({ event: 'gateway.worker_failed', worker: entry.slot, code: message.error.code, message: message.error.message });
      } else this.#onMessage(entry.slot, message);
    });
    entry.worker = worker;
    entry.startedAt = Date.now();
    this.#watchExit(entry);
  }

  /**
   * Runs a capability call on the worker holding the device's stream (the operator path of a worker pool, as
   * Gateway.executeCapability is for one process); `node_not_registered` when no worker holds one.
   */
  execute(call: CapabilityCall): Promise<CapabilityResult> {
    const id = this.#nextRelay++;
    return new Promise((resolve, reject) => {
      this.#own.set(id, { resolve, reject });
      this.#route(0, id, call);
    });
  }

  #settleOwn(id: number, answer: { result?: CapabilityResult; error?: WireError; notHere?: boolean }): void {
    const waiter = this.#own.get(id);
    if (waiter === undefined) return;
    this.#own.delete(id);
    if (answer.notHere === true) waiter.reject(new PalyraError('node_not_registered', 'no worker holds a stream of this node'));
    else if (answer.error !== undefined) waiter.reject(errorFrom(answer.error));
    else if (answer.result !== undefined) waiter.resolve({ ...answer.result, outputJson: new Uint8Array(answer.result.outputJson) });
    else waiter.reject(new PalyraError('internal', 'relayed capability call answered without a result'));
  }

  /** Each running worker's resource use (benchmarks), by worker number. */
  async stats(): Promise<Map<number, WorkerStats>> {
    const entries = await Promise.all(
      [...this.#slots.values()]
        .filter((entry) => entry.info !== null)
        .map(async (entry) => {
          const id = this.#nextStats++;
          const stats = await new Promise<WorkerStats | null>((resolve) => {
            this.#statsWaiters.set(id, { slot: entry.slot, resolve });
            this.#send(entry.slot, { t: 'stats', id });
          });
          return [entry.slot, stats] as const;
        }),
    );
    return new Map(entries.filter((e): e is readonly [number, WorkerStats] => e[1] !== null));
  }

  /** Stops every worker (they end their streams and calls), then removes gateway.v1.json; bounded by `deadlineMs`. */
  async stop(deadlineMs: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const workers: Worker[] = [];
    for (const entry of this.#slots.values()) {
      if (entry.replaceTimer !== null) clearTimeout(entry.replaceTimer);
      if (entry.worker !== null) workers.push(entry.worker);
    }
    const exited = Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.process.exitCode !== null || w.process.signalCode !== null) resolve();
            else
              w.once('exit', () => {
                resolve();
              });
          }),
      ),
    );
    for (const w of workers) if (w.isConnected()) w.send({ t: 'stop' } satisfies PrimaryToWorker);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => {
        resolve('late');
      }, deadlineMs);
    });
    const outcome = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (outcome === 'late') await WorkerPool.#killAll(workers);
    await removeGatewayInfo(this.#options.stateDir).catch(() => undefined);
  }
}
