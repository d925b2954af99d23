/** The event publication the app's parts share: checked against the contract's schema once, then fanned out. */

import { toPalyraError } from '../core/errors.js';
import { EVENTS } from '../ipc/contract.js';
import type { EventName, EventPayload } from '../ipc/contract.js';
import { errorsForRenderer } from './ipc-router.js';
import type { IpcLog } from './ipc-router.js';

export type Publish = <E extends EventName>(event: E, payload: EventPayload<E>) => void;
export type Listener = (event: EventName, payload: unknown) => void;

/** Listeners of every event of the contract. */
export class EventHub {
  readonly #listeners = new Set<Listener>();
  readonly #log: IpcLog;

  constructor(log: IpcLog) {
    this.#log = log;
  }

  on(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Every event is checked against its schema here, once, before any transport sees it, and its `{code, message}`
   * errors are made fit for the renderer as call results are (no internal text, no local paths).
   */
  readonly publish: Publish = (event, payload) => {
    const checked = EVENTS[event].safeParse(payload);
    if (!checked.success) {
      this.#log({ event: 'ipc.invalid_event', name: event });
      return;
    }
    const data = errorsForRenderer(checked.data, (incident, message) => {
      this.#log({ event: 'ipc.internal_error_in_event', name: event, incident, message });
    }) as typeof checked.data;
    for (const listener of [...this.#listeners]) {
      try {
        listener(event, data);
      } catch (error) {
        this.#log({ event: 'ipc.listener_failed', name: event, message: toPalyraError(error).message });
      }
    }
  };

  clear(): void {
    this.#listeners.clear();
  }
}
