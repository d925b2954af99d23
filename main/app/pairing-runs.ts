/**
 * The desktop app's pairing runs: each `device.pairStart` becomes one run of the device agent, with a pairing id the
 * renderer follows through `device.pairing` events. One pairing at a time: a new one cancels those still running
 * and starts once they have ended, since both would write the same device state.
 */

import { randomUUID } from 'node:crypto';
import type { ClientKind } from '../core/client-kind.js';
import { normalizeDeviceName } from '../core/device-name.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { formatHostPort, parseHostPort } from '../core/net-address.js';
import { parsePairingUri, parseScannedPayload } from '../core/pairing-uri.js';
import type { AgentEvent, DeviceAgent } from '../device/device-agent.js';
import type { PairingProgress, PairingTarget } from '../device/pairing-client.js';
import type { ChannelResult } from '../ipc/contract.js';
import type { IpcLog, ParsedChannelArgs } from './ipc-router.js';
import type { Publish } from './publish.js';

interface PairingRun {
  readonly id: string;
  readonly controller: AbortController;
  /** A terminal progress event (paired, rejected, expired, failed) was published. */
  finished: boolean;
  done: Promise<void>;
}

const PAIRING_PROGRESS_TYPES = new Set<string>(['connecting', 'verifying_gateway', 'awaiting_approval', 'reconnecting', 'paired', 'rejected', 'expired', 'failed']);
const TERMINAL_PROGRESS = new Set<string>(['paired', 'rejected', 'expired', 'failed']);

export function isPairingProgress(event: AgentEvent): event is PairingProgress {
  return PAIRING_PROGRESS_TYPES.has(event.type);
}

export interface PairingRunsOptions {
  readonly agent: DeviceAgent;
  readonly clock: () => number;
  readonly log: IpcLog;
  readonly publish: Publish;
  readonly isDisposed: () => boolean;
  /** A run ended (device status may have changed). */
  readonly onFinished: () => void;
  /** A run paired the device. */
  readonly onPaired: () => void;
  /** After a run: connected mode for a paired device. */
  readonly startAgentIfPaired: () => Promise<void>;
}

export class PairingRuns {
  readonly #o: PairingRunsOptions;
  readonly #runs = new Map<string, PairingRun>();
  /** The run the agent is executing now (runs execute one after another). */
  #agentRun: PairingRun | null = null;
  /** The last started run's completion: the next run starts after it. Never rejects. */
  #chain: Promise<void> = Promise.resolve();

  constructor(options: PairingRunsOptions) {
    this.#o = options;
  }

  /** Routes the agent's pairing progress to the run it belongs to; false when no run is executing. */
  onAgentProgress(progress: PairingProgress): boolean {
    const run = this.#agentRun;
    if (run === null) return false;
    this.#onProgress(run, progress);
    return true;
  }

  parseScan(args: ParsedChannelArgs<'device.parseScan'>): ChannelResult<'device.parseScan'> {
    const scanned = parseScannedPayload(args.text, { now: this.#o.clock() });
    if (scanned.type === 'token') return { type: 'token', token: scanned.token };
    const uri = scanned.uri;
    return {
      type: 'uri',
      uri: args.text.trim(),
      gateways: uri.gateways.map(formatHostPort),
      gateway_name: uri.name,
      ca_pin: uri.caPin,
      kind: uri.kind,
      expires_at_unix_ms: uri.expiresAtUnixS * 1000,
    };
  }

  /** Throws for a bad code or address: everything checkable is checked before a pairing id exists. */
  start(args: ParsedChannelArgs<'device.pairStart'>): ChannelResult<'device.pairStart'> {
    if (this.#o.isDisposed()) throw new PalyraError('unavailable', 'the app is shutting down');
    let target: PairingTarget;
    let kind: ClientKind;
    if (args.method === 'uri') {
      const uri = parsePairingUri(args.uri.trim(), { now: this.#o.clock() });
      target = { method: 'qr', uri };
      kind = args.kind ?? uri.kind;
    } else {
      const gateway = formatHostPort(parseHostPort(args.gateway.trim()));
      target = args.method === 'token' ? { method: 'qr-token', token: args.token, gateway } : { method: 'pin', pin: args.pin, gateway };
      kind = args.kind ?? 'desktop';
    }
    // Checked before a pairing id exists; blank means "let the gateway choose".
    const deviceName = args.device_name === undefined || args.device_name.trim() === '' ? undefined : normalizeDeviceName(args.device_name);
    this.cancelAll();
    const run: PairingRun = { id: randomUUID(), controller: new AbortController(), finished: false, done: Promise.resolve() };
    run.done = this.#chain.then(() => this.#execute(run, target, kind, deviceName));
    this.#chain = run.done;
    this.#runs.set(run.id, run);
    return { pairing_id: run.id };
  }

  /** Aborts a run and reports it cancelled at once (the agent may take a moment to notice). */
  cancel(pairingId: string): boolean {
    const run = this.#runs.get(pairingId);
    if (run === undefined || run.finished) return false;
    run.controller.abort();
    this.#onProgress(run, { type: 'failed', code: 'cancelled', message: 'pairing was cancelled' });
    return true;
  }

  /** Whether a pairing run is going (the agent's connected mode is stopped for it). */
  get active(): boolean {
    return [...this.#runs.values()].some((run) => !run.finished);
  }

  cancelAll(): void {
    for (const id of this.#runs.keys()) this.cancel(id);
  }

  /** For shutdown: aborts every run without reporting, and waits for them at most `waitMs`. */
  async abortAll(waitMs: number): Promise<void> {
    for (const run of this.#runs.values()) run.controller.abort();
    // A run blocked in a long poll notices the abort only when the poll returns; do not hold the shutdown for it.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#runs.values()].map((r) => r.done)), new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  #onProgress(run: PairingRun, progress: PairingProgress): void {
    // Progress of a cancelled run (already reported as cancelled) is not news any more.
    if (run.finished) return;
    if (TERMINAL_PROGRESS.has(progress.type)) run.finished = true;
    this.#o.publish('device.pairing', { pairing_id: run.id, progress });
    if (run.finished) this.#o.onFinished();
    if (progress.type === 'paired') this.#o.onPaired();
  }

  async #execute(run: PairingRun, target: PairingTarget, kind: ClientKind, deviceName: string | undefined): Promise<void> {
    const { agent } = this.#o;
    try {
      if (run.controller.signal.aborted) return;
      // The agent pairs only while its connected mode is stopped; it is started again below.
      await agent.stop();
      this.#agentRun = run;
      await agent.pair(target, { kind, signal: run.controller.signal, ...(deviceName === undefined ? {} : { deviceName }) });
    } catch (error) {
      const e = toPalyraError(error);
      // The agent reports its own failures as progress; this covers anything that failed before it could.
      if (!run.finished) this.#onProgress(run, { type: 'failed', code: e.code, message: e.message });
      this.#o.log({ event: 'device.pairing_ended', code: e.code });
    } finally {
      this.#agentRun = null;
      this.#runs.delete(run.id);
    }
    if (!this.#o.isDisposed()) await this.#o.startAgentIfPaired();
    this.#o.onFinished();
  }
}
