/**
 * Capability dispatch to nodes (REFERENCE.md §3.8–§3.9 with PROTOCOL.md §5 fixes): work is queued per device and
 * handed out one item per inbound node event, or pushed at once to a stream that negotiated it (`onQueued` fires on
 * every queueing and every requeue; the gateway pushes from there). It is completed only by a result from the device
 * it was dispatched to. A dispatch whose send failed goes back to the head of the queue; a request that times out is
 * removed from the queue, the in-flight set and the waiters. Payloads are bounded both ways. All in memory: a
 * capability call lives for seconds, and a gateway restart fails it cleanly.
 */

import { PalyraError } from '../core/errors.js';
import { newUlid } from '../core/ids.js';

export const DEFAULT_CAPABILITY_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;
/** Hard ceiling for either direction: below the 4 MiB gRPC message limit. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
/** Finished requests remembered for listings. */
const HISTORY_LIMIT = 1000;

export type CapabilityState = 'queued' | 'dispatched' | 'awaiting_local_mediation' | 'succeeded' | 'failed' | 'timed_out';

export interface CapabilityDispatch {
  requestId: string;
  capability: string;
  inputJson: Uint8Array;
  maxPayloadBytes: number;
}

export interface CapabilityRecord {
  requestId: string;
  deviceId: string;
  capability: string;
  state: CapabilityState;
  createdAtUnixMs: number;
  updatedAtUnixMs: number;
  dispatchedAtUnixMs: number | null;
  completedAtUnixMs: number | null;
  maxPayloadBytes: number;
  error: string | null;
}

export interface CapabilityResult {
  success: boolean;
  outputJson: Uint8Array;
  error: string;
}

interface Pending {
  record: CapabilityRecord;
  dispatch: CapabilityDispatch;
  resolve: (result: CapabilityResult) => void;
  reject: (error: PalyraError) => void;
  timer: NodeJS.Timeout;
}

export class CapabilityDispatcher {
  readonly #clock: () => number;
  readonly #queues = new Map<string, Pending[]>();
  readonly #pending = new Map<string, Pending>();
  readonly #history: CapabilityRecord[] = [];
  readonly #onQueued: (deviceId: string) => void;

  constructor(o: { clock?: () => number; onQueued?: (deviceId: string) => void } = {}) {
    this.#clock = o.clock ?? Date.now;
    this.#onQueued = o.onQueued ?? (() => undefined);
  }

  /** Queues work for `deviceId` and resolves with the node's result, or rejects on timeout/cancel. */
  execute(o: { deviceId: string; capability: string; inputJson: Uint8Array; maxPayloadBytes?: number; timeoutMs?: number }): Promise<CapabilityResult> {
    const capability = o.capability.trim();
    if (capability.length === 0 || capability.length > 128) throw new PalyraError('invalid_argument', 'capability must be 1 to 128 characters');
    const maxPayloadBytes = o.maxPayloadBytes === undefined || o.maxPayloadBytes === 0 ? DEFAULT_MAX_PAYLOAD_BYTES : o.maxPayloadBytes;
    if (!Number.isSafeInteger(maxPayloadBytes) || maxPayloadBytes < 1 || maxPayloadBytes > MAX_PAYLOAD_BYTES) {
      throw new PalyraError('invalid_argument', `max_payload_bytes must be 1..${MAX_PAYLOAD_BYTES}`);
    }
    if (o.inputJson.length > maxPayloadBytes) {
      throw new PalyraError('payload_too_large', `capability input exceeds max_payload_bytes=${maxPayloadBytes}`);
    }
    const now = this.#clock();
    const requestId = newUlid(now);
    const record: CapabilityRecord = {
      requestId,
      deviceId: o.deviceId,
      capability,
      state: 'queued',
      createdAtUnixMs: now,
      updatedAtUnixMs: now,
      dispatchedAtUnixMs: null,
      completedAtUnixMs: null,
      maxPayloadBytes,
      error: null,
    };
    return new Promise<CapabilityResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#finish(requestId, 'timed_out', 'timed out waiting for node capability result');
        reject(new PalyraError('capability_timeout', 'timed out waiting for node capability result'));
      }, o.timeoutMs ?? DEFAULT_CAPABILITY_TIMEOUT_MS);
      timer.unref();
      const pending: Pending = { record, dispatch: { requestId, capability, inputJson: o.inputJson, maxPayloadBytes }, resolve, reject, timer };
      this.#pending.set(requestId, pending);
      const queue = this.#queues.get(o.deviceId) ?? [];
      queue.push(pending);
      this.#queues.set(o.deviceId, queue);
      this.#onQueued(o.deviceId);
    });
  }

  /** Takes the next queued item for a device (marking it dispatched), or null. */
  next(deviceId: string): CapabilityDispatch | null {
    const queue = this.#queues.get(deviceId);
    const pending = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.#queues.delete(deviceId);
    if (pending === undefined) return null;
    const now = this.#clock();
    pending.record.state = 'dispatched';
    pending.record.dispatchedAtUnixMs = now;
    pending.record.updatedAtUnixMs = now;
    return pending.dispatch;
  }

  /** The send of a dispatch failed: put it back at the head of its device's queue. */
  requeue(deviceId: string, dispatch: CapabilityDispatch): void {
    const pending = this.#pending.get(dispatch.requestId);
    if (pending?.record.deviceId !== deviceId) return;
    pending.record.state = 'queued';
    pending.record.updatedAtUnixMs = this.#clock();
    const queue = this.#queues.get(deviceId) ?? [];
    queue.unshift(pending);
    this.#queues.set(deviceId, queue);
    // Another stream of the device that takes pushed work may send it now.
    this.#onQueued(deviceId);
  }

  hasQueued(deviceId: string): boolean {
    return (this.#queues.get(deviceId)?.length ?? 0) > 0;
  }

  /** `capability.awaiting_local_mediation` from the device the request was dispatched to. */
  markAwaitingMediation(deviceId: string, requestId: string): void {
    const pending = this.#owned(deviceId, requestId);
    pending.record.state = 'awaiting_local_mediation';
    pending.record.updatedAtUnixMs = this.#clock();
  }

  /** `capability.result`: accepted only from the device the request was dispatched to. */
  complete(deviceId: string, requestId: string, result: CapabilityResult): void {
    const pending = this.#owned(deviceId, requestId);
    if (result.outputJson.length > pending.record.maxPayloadBytes) {
      this.#finish(requestId, 'failed', `capability output exceeds max_payload_bytes=${pending.record.maxPayloadBytes}`);
      pending.resolve({ success: false, outputJson: new Uint8Array(), error: `capability output exceeds max_payload_bytes=${pending.record.maxPayloadBytes}` });
      return;
    }
    this.#finish(requestId, result.success ? 'succeeded' : 'failed', result.success ? null : result.error);
    pending.resolve(result);
  }

  /** Fails every queued or dispatched request of a device (revoked, or the gateway is stopping). */
  cancelDevice(deviceId: string, reason: string): void {
    for (const pending of [...this.#pending.values()]) {
      if (pending.record.deviceId !== deviceId) continue;
      this.#finish(pending.record.requestId, 'failed', reason);
      pending.reject(new PalyraError('cancelled', reason));
    }
  }

  cancelAll(reason: string): void {
    for (const deviceId of new Set([...this.#pending.values()].map((p) => p.record.deviceId))) this.cancelDevice(deviceId, reason);
  }

  list(): CapabilityRecord[] {
    return [...[...this.#pending.values()].map((p) => ({ ...p.record })), ...this.#history];
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  #owned(deviceId: string, requestId: string): Pending {
    const pending = this.#pending.get(requestId);
    if (pending === undefined) throw new PalyraError('not_found', `capability request ${requestId} is not pending`);
    if (pending.record.deviceId !== deviceId || pending.record.state === 'queued') {
      throw new PalyraError('permission_denied', 'capability result is not from the device the request was dispatched to');
    }
    return pending;
  }

  #finish(requestId: string, state: CapabilityState, error: string | null): void {
    const pending = this.#pending.get(requestId);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#pending.delete(requestId);
    const queue = this.#queues.get(pending.record.deviceId);
    if (queue !== undefined) {
      const index = queue.indexOf(pending);
      if (index >= 0) queue.splice(index, 1);
      if (queue.length === 0) this.#queues.delete(pending.record.deviceId);
    }
    const now = this.#clock();
    Object.assign(pending.record, { state, error, updatedAtUnixMs: now, completedAtUnixMs: now });
    this.#history.unshift({ ...pending.record });
    if (this.#history.length > HISTORY_LIMIT) this.#history.length = HISTORY_LIMIT;
  }
}
