/**
 * Reconnect delays: exponential growth with "full jitter" (a uniform pick between 0 and the current ceiling), so a
 * gateway restart is not met by every device at the same instant.
 */

import { PalyraError } from '../core/errors.js';

/** First ceiling of a reconnect delay. */
export const DEFAULT_BACKOFF_BASE_MS = 200;
/** Largest reconnect delay. */
export const DEFAULT_BACKOFF_CAP_MS = 10_000;

export interface BackoffOptions {
  readonly baseMs?: number;
  readonly capMs?: number;
  /** Uniform in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly #random: () => number;
  #failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
    this.capMs = options.capMs ?? DEFAULT_BACKOFF_CAP_MS;
    if (!Number.isFinite(this.baseMs) || this.baseMs <= 0 || !Number.isFinite(this.capMs) || this.capMs < this.baseMs) {
      throw new PalyraError('invalid_argument', 'backoff needs 0 < baseMs <= capMs');
    }
    this.#random = options.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  /** The ceiling the next delay is drawn under: base · 2^failures, at most the cap. */
  ceilingMs(): number {
    // 2^30 · base overflows no double and is past any sane cap; the exponent stops growing there.
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.#failures, 30));
  }

  /** The delay before the next attempt (counts one more failure). */
  next(): number {
    const ceiling = this.ceilingMs();
    this.#failures += 1;
    const r = this.#random();
    const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
    return Math.round(unit * ceiling);
  }

  /** After a success: the next failure starts from the base again. */
  reset(): void {
    this.#failures = 0;
  }
}
