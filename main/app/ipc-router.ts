/**
 * The main-process end of every IPC call, whatever carried it (Electron's ipcMain, the browser-mode WebSocket):
 * the channel must be one of the contract's, the arguments must pass its schema before any handler runs, a thrown
 * error becomes `{code, message}` with a catalogue code, and the handler's result is checked against the result
 * schema before it leaves (a bug must not leak odd shapes or extra fields to the renderer).
 */

import { toPalyraError } from '../core/errors.js';
import { isChannelName, parseChannelArgs, parseChannelResult } from '../ipc/contract.js';
import type { ChannelName, ChannelResult, IpcEnvelope } from '../ipc/contract.js';

/** A channel's arguments after its schema accepted them (defaults applied, unknown keys refused). */
export type ParsedChannelArgs<C extends ChannelName> = Extract<ReturnType<typeof parseChannelArgs<C>>, { ok: true }>['value'];

/** One handler per channel of the contract; the compiler checks that none is missing. */
export type ChannelHandlers = { readonly [C in ChannelName]: (args: ParsedChannelArgs<C>) => Promise<ChannelResult<C>> };

/** What the router tells the log: channel names and error codes, never arguments or results (they may be secret). */
export type IpcLog = (line: Record<string, unknown>) => void;

/** Longest channel name quoted back in an error (the input is untrusted). */
const MAX_QUOTED_CHANNEL = 64;

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
      return { ok: false, error: { code: 'invalid_argument', message: `unknown IPC channel ${quoted}` } };
    }
    return this.#dispatch(channel, args);
  }

  async #dispatch(channel: ChannelName, args: unknown): Promise<IpcEnvelope<unknown>> {
    const parsed = parseChannelArgs(channel, args);
    if (!parsed.ok) return { ok: false, error: parsed.error };
    let result: unknown;
    try {
      // The schema just produced exactly this channel's argument type; the union of handlers cannot express that.
      const handler = this.#handlers[channel] as (args: unknown) => Promise<unknown>;
      result = await handler(parsed.value);
    } catch (error) {
      const e = toPalyraError(error);
      if (e.code === 'internal') this.#log({ event: 'ipc.internal_error', channel, message: e.message });
      return { ok: false, error: { code: e.code, message: e.message } };
    }
    const checked = parseChannelResult(channel, result);
    if (!checked.ok) {
      this.#log({ event: 'ipc.invalid_result', channel });
      return { ok: false, error: checked.error };
    }
    return { ok: true, result: checked.value };
  }
}
