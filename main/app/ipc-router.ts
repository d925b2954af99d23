/**
 * The main-process end of every IPC call, whatever carried it (Electron's ipcMain, the browser-mode WebSocket):
 * the channel must be one of the contract's, the arguments must pass its schema before any handler runs, a thrown
 * error becomes `{code, message}` with a catalogue code, and the handler's result is checked against the result
 * schema before it leaves (a bug must not leak odd shapes or extra fields to the renderer).
 *
 * What an error tells the renderer: a coded error keeps its message, with local filesystem paths cut to their last
 * component (local-paths.ts). An `internal` error (a bug, or anything thrown that is not a PalyraError, or a result
 * that fails its schema) crosses as `internal` with a generic message and an incident id only; its own message and
 * stack go to the main-process log (which redacts secrets) under that id, so library text and paths stay out of
 * the renderer. The same holds for `{code, message}` errors inside a result (a failed pairing, the hosted gateway's
 * last error).
 */

import { randomBytes } from 'node:crypto';
import { toPalyraError } from '../core/errors.js';
import { isChannelName, parseChannelArgs, parseChannelResult } from '../ipc/contract.js';
import type { ChannelName, ChannelResult, IpcEnvelope, IpcError } from '../ipc/contract.js';
import { withoutLocalPaths } from './local-paths.js';

/** A channel's arguments after its schema accepted them (defaults applied, unknown keys refused). */
export type ParsedChannelArgs<C extends ChannelName> = Extract<ReturnType<typeof parseChannelArgs<C>>, { ok: true }>['value'];

/** One handler per channel of the contract; the compiler checks that none is missing. */
export type ChannelHandlers = { readonly [C in ChannelName]: (args: ParsedChannelArgs<C>) => Promise<ChannelResult<C>> };

/** What the router tells the log: channel names and error codes, never arguments or results (they may be secret). */
export type IpcLog = (line: Record<string, unknown>) => void;

/** Longest channel name quoted back in an error (the input is untrusted). */
const MAX_QUOTED_CHANNEL = 64;

/** What the renderer is told about an internal error, before its incident id. */
export const INTERNAL_ERROR_MESSAGE = 'Something went wrong inside Palyra; see the log for details';

/** An opaque id tying the renderer's message to the log line: 8 hex characters (too short to be redacted there). */
function newIncidentId(): string {
  return randomBytes(4).toString('hex');
}

/** The renderer's whole message for an internal error. */
export function internalErrorMessage(incident: string): string {
  return `${INTERNAL_ERROR_MESSAGE} (incident ${incident}).`;
}

interface IpcErrorShape {
  readonly code: string;
  readonly message: string;
}

function isErrorShape(value: unknown): value is IpcErrorShape {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  // A catalogue code (snake_case), not some other `code` (a minted PIN is digits and has no message).
  return typeof record.code === 'string' && /^[a-z][a-z0-9_]*$/.test(record.code) && typeof record.message === 'string';
}

/** The string paths a PalyraError names in its details (`path`, `file`, `dir`, …), to be cut exactly. */
function knownPathsOf(details: Readonly<Record<string, unknown>>): string[] {
  return Object.values(details).filter((v): v is string => typeof v === 'string');
}

export class IpcRouter {
  readonly #handlers: ChannelHandlers;
  readonly #log: IpcLog;

  constructor(handlers: ChannelHandlers, options: { log?: IpcLog } = {}) {
    this.#handlers = handlers;
    this.#log = options.log ?? (() => undefined);
  }

  /** Never rejects: every outcome is an envelope. */
  async handle(channel: unknown, args: unknown): Promise<IpcEnvelope<unknown>> {
    if (!isChannelName(channel)) {
      const quoted = typeof channel === 'string' ? `'${channel.slice(0, MAX_QUOTED_CHANNEL)}'` : `of type ${channel === null ? 'null' : typeof channel}`;
      return { ok: false, error: { code: 'invalid_argument', message: withoutLocalPaths(`unknown IPC channel ${quoted}`) } };
    }
    return this.#dispatch(channel, args);
  }

  async #dispatch(channel: ChannelName, args: unknown): Promise<IpcEnvelope<unknown>> {
    const parsed = parseChannelArgs(channel, args);
    if (!parsed.ok) return { ok: false, error: { code: parsed.error.code, message: withoutLocalPaths(parsed.error.message) } };
    let result: unknown;
    try {
      // The schema just produced exactly this channel's argument type; the union of handlers cannot express that.
      const handler = this.#handlers[channel] as (args: unknown) => Promise<unknown>;
      result = await handler(parsed.value);
    } catch (error) {
      return { ok: false, error: this.#errorForRenderer(channel, error) };
    }
    const checked = parseChannelResult(channel, result);
    if (!checked.ok) {
      const incident = newIncidentId();
      this.#log({ event: 'ipc.invalid_result', channel, incident, message: checked.error.message });
      return { ok: false, error: { code: 'internal', message: internalErrorMessage(incident) } };
    }
    return { ok: true, result: this.#resultForRenderer(channel, checked.value) };
  }

  /** A thrown value as the renderer may see it (see the module comment); internal detail goes to the log. */
  #errorForRenderer(channel: ChannelName, thrown: unknown): IpcError {
    const e = toPalyraError(thrown);
    if (e.code !== 'internal') return { code: e.code, message: withoutLocalPaths(e.message, knownPathsOf(e.details)) };
    const incident = newIncidentId();
    // The stack of what was actually thrown: a plain Error is wrapped by toPalyraError, whose own stack says nothing.
    const origin = thrown instanceof Error ? thrown : e;
    this.#log({ event: 'ipc.internal_error', channel, incident, name: origin.name, message: e.message, stack: origin.stack ?? null });
    return { code: 'internal', message: internalErrorMessage(incident) };
  }

  /** The checked result with every `{code, message}` error inside it made fit for the renderer too. */
  #resultForRenderer(channel: ChannelName, value: unknown): unknown {
    return errorsForRenderer(value, (incident, message) => {
      this.#log({ event: 'ipc.internal_error_in_result', channel, incident, message });
    });
  }
}

/**
 * `value` with every `{code, message}` error inside it made fit for the renderer: an `internal` one gets the generic
 * message and a fresh incident id (`logInternal` receives the id and the original message), any other keeps its
 * message with local paths cut to their last component. Results of calls and pushed events both pass through here.
 */
export function errorsForRenderer(value: unknown, logInternal: (incident: string, message: string) => void, depth = 0): unknown {
  if (typeof value !== 'object' || value === null || depth > 8) return value;
  if (Array.isArray(value)) return value.map((item: unknown) => errorsForRenderer(item, logInternal, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) out[key] = errorsForRenderer(field, logInternal, depth + 1);
  if (!isErrorShape(out)) return out;
  if (out.code === 'internal') {
    const incident = newIncidentId();
    logInternal(incident, out.message);
    return { ...out, message: internalErrorMessage(incident) };
  }
  return { ...out, message: withoutLocalPaths(out.message) };
}
