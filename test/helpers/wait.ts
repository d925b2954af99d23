// Waiting in tests: on the event itself, or on a condition checked at short ticks, always under a liveness deadline
// far above any real figure. A deadline only turns a hang into a failure that names what did not happen; it is never
// the thing a test checks (how long something took is a benchmark's business: test/bench).
import type { EventEmitter } from 'node:events';

/** Default liveness deadline: minutes of headroom over what takes milliseconds on an idle machine. */
export const LIVENESS_MS = 20_000;
/** How often a condition without an event to listen to is checked. */
const TICK_MS = 10;

export interface WaitOptions {
  /** Fail after this long (default LIVENESS_MS). */
  deadlineMs?: number;
  /** What is awaited, for the failure message ("the stream to end"). */
  what: string;
  /** Extra context for the failure message, computed when it fails. */
  detail?: () => string;
}

function deadlineError(o: WaitOptions, ms: number): Error {
  const detail = o.detail?.();
  return new Error(`timed out after ${ms} ms waiting for ${o.what}${detail === undefined || detail === '' ? '' : `\n${detail}`}`);
}

/**
 * Resolves with the first truthy value of `check` (sync or async), checked now and then every few ms; fails after the
 * deadline with a message naming `what`. A check that throws fails the wait at once.
 */
export async function waitFor<T>(check: () => T | null | undefined | false | Promise<T | null | undefined | false>, o: WaitOptions): Promise<T> {
  const ms = o.deadlineMs ?? LIVENESS_MS;
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== null && value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw deadlineError(o, ms);
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
}

/** `promise`, or a failure naming `what` if it has not settled by the deadline. */
export async function withDeadline<T>(promise: Promise<T>, o: WaitOptions): Promise<T> {
  const ms = o.deadlineMs ?? LIVENESS_MS;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(deadlineError(o, ms));
    }, ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The first `name` event of `emitter` whose first argument matches (every one when `match` is omitted). */
export function waitForEvent<T = unknown>(emitter: EventEmitter, name: string, o: WaitOptions & { match?: (value: T) => boolean }): Promise<T> {
  let listener: ((value: T) => void) | undefined;
  const seen = new Promise<T>((resolve) => {
    listener = (value: T): void => {
      if (o.match !== undefined && !o.match(value)) return;
      emitter.off(name, listener!);
      resolve(value);
    };
    emitter.on(name, listener);
  });
  return withDeadline(seen, o).finally(() => emitter.off(name, listener!));
}

/**
 * Tracks whether `promise` has settled yet, for ordering checks ("A happened while B was still pending"), which prove
 * what a duration bound only suggests.
 */
export function settledFlag(promise: Promise<unknown>): { settled: () => boolean } {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  return { settled: () => done };
}
