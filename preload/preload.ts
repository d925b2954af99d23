/**
 * The renderer's only door to the main process: `window.palyra`, one typed method per contract channel (built by
 * `createPalyraApi` from the channel list, so a new channel needs no change here) plus `on(event, listener)` for the
 * contract's events. There is no generic `invoke(channel)`, and `ipcRenderer` itself never crosses the bridge.
 *
 * The window is sandboxed, so this file runs as one bundled CommonJS script (scripts/build-preload.mjs) that may
 * require nothing but `electron`.
 *
 * contextBridge copies an Error as its message only, so a failed call rejects with a plain, cloneable
 * `{ name: 'PalyraIpcError', code, message }` (see palyra.d.ts) instead of the PalyraIpcError object itself.
 */

import { contextBridge, ipcRenderer } from 'electron';
import { createPalyraApi, EventListeners, isEventName, PalyraIpcError } from '../main/ipc/contract.js';
import type { ChannelName, EventName, IpcEnvelope, PalyraApi } from '../main/ipc/contract.js';
import { IPC_EVENT_CHANNEL, ipcChannelOf, isIpcEventMessage } from '../main/ipc/electron-ipc.js';

type Listener = (payload: unknown) => void;

const listeners = new EventListeners();

ipcRenderer.on(IPC_EVENT_CHANNEL, (_event: unknown, message: unknown) => {
  if (!isIpcEventMessage(message)) return;
  listeners.emit(message.event, message.payload);
});

function isEnvelope(value: unknown): value is IpcEnvelope<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { ok?: unknown; error?: unknown };
  if (v.ok === true) return Object.hasOwn(v, 'result');
  if (v.ok !== false || typeof v.error !== 'object' || v.error === null) return false;
  const e = v.error as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' && typeof e.message === 'string';
}

const api = createPalyraApi({
  async invoke(channel: ChannelName, args: unknown): Promise<IpcEnvelope<unknown>> {
    let reply: unknown;
    try {
      reply = await ipcRenderer.invoke(ipcChannelOf(channel), args);
    } catch {
      return { ok: false, error: { code: 'internal', message: `${channel}: the main process did not answer` } };
    }
    return isEnvelope(reply) ? reply : { ok: false, error: { code: 'internal', message: `${channel}: malformed reply from the main process` } };
  },
  subscribe(event: EventName, listener: Listener): () => void {
    if (!isEventName(event)) throw new TypeError('unknown event');
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    return listeners.subscribe(event, listener);
  },
});

/** What a failed call rejects with across the bridge (an Error would arrive without its code). */
function bridgeError(error: unknown): { name: 'PalyraIpcError'; code: string; message: string } {
  if (error instanceof PalyraIpcError) return { name: 'PalyraIpcError', code: error.code, message: error.message };
  return { name: 'PalyraIpcError', code: 'internal', message: error instanceof Error ? error.message : 'internal error' };
}

/** The API as exposed: each method of `api` with its rejection made bridge-safe; `on` as it is. */
function bridged(source: PalyraApi): PalyraApi {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(source)) {
    if (name === 'on' || typeof value !== 'function') {
      out[name] = value;
      continue;
    }
    const method = value as (args: unknown) => Promise<unknown>;
    out[name] = (args: unknown) =>
      method(args).catch((error: unknown) => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a plain object is the only error shape contextBridge keeps whole
        throw bridgeError(error);
      });
  }
  return Object.freeze(out) as unknown as PalyraApi;
}

contextBridge.exposeInMainWorld('palyra', bridged(api));
