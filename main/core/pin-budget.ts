/**
 * The PIN guessing budget (PROTOCOL.md §3). Every failed PIN or token lookup is recorded; 20 failures within 15
 * minutes from one source address, or 20 within 15 minutes in total, trip the budget. A tripped budget stays tripped,
 * whatever the time, until an operator mints a new code (`reset`), and the caller voids all outstanding PIN codes
 * when `recordFailure` reports the trip.
 *
 * Why 20: the budget trips on the 20th failure, so at most 20 guesses reach one code inside a window, and a guess hits
 * one of 10⁶ uniform PINs with probability 10⁻⁶: success chance ≤ 20 · 10⁻⁶ = 2·10⁻⁵ per code. The bound holds for a
 * code that lives no longer than the window (the 10-minute default TTL); a code with a longer TTL can meet one
 * budget per elapsed window (⌈TTL / 15 min⌉ · 2·10⁻⁵, about 1.9·10⁻³ for the 24 h maximum), and k outstanding PIN
 * codes multiply the chance by k.
 *
 * With equal per-source and global limits the global count always trips first (a source's failures are also global
 * ones); the per-source limit matters when `maxGlobalFailures` is set higher. Memory stays bounded: timestamps outside
 * the window are pruned, at most `maxSources` sources are kept (least recently failing evicted first).
 */

import { PalyraError } from './errors.js';
import { assertUnixMs } from './pairing-codes.js';

export const DEFAULT_PIN_MAX_FAILURES = 20;
export const DEFAULT_PIN_WINDOW_MS = 15 * 60_000;
export const DEFAULT_PIN_MAX_SOURCES = 10_000;
/** Longest source key (an IP address is far shorter); keeps a hostile caller from storing large strings. */
const MAX_SOURCE_LENGTH = 256;

export interface PinGuessBudgetOptions {
  /** Failures from one source within the window that trip the budget. */
  readonly maxFailures?: number;
  /** Failures from all sources within the window that trip the budget (default: maxFailures). */
  readonly maxGlobalFailures?: number;
  readonly windowMs?: number;
  /** Distinct sources remembered at once. */
  readonly maxSources?: number;
}

/** Plain-JSON form of the counters, for the gateway to persist across restarts. */
export interface PinGuessBudgetSnapshot {
  readonly version: 1;
  readonly trippedAtUnixMs: number | null;
  readonly globalFailures: readonly number[];
  /** Least recently failing first. */
  readonly sources: readonly { readonly source: string; readonly failures: readonly number[] }[];
}

function positiveInteger(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new PalyraError('invalid_argument', `${what} must be a positive integer`);
  }
  return value;
}

function assertSource(source: string): void {
  if (source.length === 0 || source.length > MAX_SOURCE_LENGTH) {
    throw new PalyraError('invalid_argument', `source must be 1 to ${MAX_SOURCE_LENGTH} characters`);
  }
}

export class PinGuessBudget {
  readonly maxFailures: number;
  readonly maxGlobalFailures: number;
  readonly windowMs: number;
  readonly maxSources: number;

  #trippedAtUnixMs: number | null = null;
  #globalFailures: number[] = [];
  /** Map order is least recently failing first: a source is re-inserted on every failure. */
  #sources = new Map<string, number[]>();

  constructor(options: PinGuessBudgetOptions = {}) {
    this.maxFailures = positiveInteger(options.maxFailures, DEFAULT_PIN_MAX_FAILURES, 'maxFailures');
    this.maxGlobalFailures = positiveInteger(options.maxGlobalFailures, this.maxFailures, 'maxGlobalFailures');
    this.windowMs = positiveInteger(options.windowMs, DEFAULT_PIN_WINDOW_MS, 'windowMs');
    this.maxSources = positiveInteger(options.maxSources, DEFAULT_PIN_MAX_SOURCES, 'maxSources');
  }

  /**
   * Counts one failed lookup from `source` (the peer's IP address, without the port). Returns true exactly when this
   * failure tripped the budget — the caller then voids every outstanding PIN code. Failures after the trip are not
   * counted.
   */
  recordFailure(source: string, now: number): boolean {
    assertSource(source);
    assertUnixMs(now);
    if (this.#trippedAtUnixMs !== null) return false;
    const inWindow = (t: number): boolean => t > now - this.windowMs;

    this.#globalFailures = this.#globalFailures.filter(inWindow);
    this.#globalFailures.push(now);

    const failures = (this.#sources.get(source) ?? []).filter(inWindow);
    failures.push(now);
    this.#sources.delete(source);
    this.#sources.set(source, failures);
    this.#evict(inWindow);

    if (failures.length >= this.maxFailures || this.#globalFailures.length >= this.maxGlobalFailures) {
      this.#trippedAtUnixMs = now;
      this.#globalFailures = [];
      this.#sources.clear();
      return true;
    }
    return false;
  }

  /** Throws pairing_budget_exhausted while the budget is tripped; call before looking up a PIN. */
  check(source: string, now: number): void {
    assertSource(source);
    assertUnixMs(now);
    if (this.#trippedAtUnixMs !== null) {
      const details = { trippedAtUnixMs: this.#trippedAtUnixMs };
      throw new PalyraError('pairing_budget_exhausted', undefined, { details });
    }
  }

  /** Time does not heal a tripped budget; `now` is accepted for call-site symmetry only. */
  isTripped(_now?: number): boolean {
    return this.#trippedAtUnixMs !== null;
  }

  get trippedAtUnixMs(): number | null {
    return this.#trippedAtUnixMs;
  }

  /** An operator minted a new code: PIN pairing is allowed again and all counters start over. */
  reset(): void {
    this.#trippedAtUnixMs = null;
    this.#globalFailures = [];
    this.#sources.clear();
  }

  snapshot(): PinGuessBudgetSnapshot {
    return {
      version: 1,
      trippedAtUnixMs: this.#trippedAtUnixMs,
      globalFailures: [...this.#globalFailures],
      sources: [...this.#sources].map(([source, failures]) => ({ source, failures: [...failures] })),
    };
  }

  /** Replaces the counters with a persisted snapshot; a malformed one is state_corrupt and changes nothing. */
  restore(snapshot: unknown): void {
    const parsed = this.#parseSnapshot(snapshot);
    this.#trippedAtUnixMs = parsed.trippedAtUnixMs;
    this.#globalFailures = [...parsed.globalFailures];
    this.#sources = new Map(parsed.sources.map((s) => [s.source, [...s.failures]]));
  }

  /** Drops sources whose latest failure left the window (they sit at the front), then the oldest beyond the cap. */
  #evict(inWindow: (t: number) => boolean): void {
    for (const [source, failures] of this.#sources) {
      if (this.#sources.size > this.maxSources || !failures.some(inWindow)) this.#sources.delete(source);
      else break;
    }
  }

  #parseSnapshot(value: unknown): PinGuessBudgetSnapshot {
    const corrupt = (why: string): never => {
      throw new PalyraError('state_corrupt', `PIN guessing budget snapshot is invalid: ${why}`);
    };
    const maxTimestamps = Math.max(this.maxFailures, this.maxGlobalFailures);
    const isTime = (t: unknown): t is number => typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;
    const timestamps = (list: unknown, what: string): number[] => {
      if (!Array.isArray(list) || list.length > maxTimestamps || !list.every(isTime)) {
        return corrupt(`${what} must be at most ${maxTimestamps} unix-ms times`);
      }
      return list;
    };
    if (typeof value !== 'object' || value === null) return corrupt('not an object');
    const record = value as Record<string, unknown>;
    if (record.version !== 1) return corrupt('unknown version');
    const trippedAt = record.trippedAtUnixMs;
    if (trippedAt !== null && !isTime(trippedAt)) return corrupt('trippedAtUnixMs must be null or a unix-ms time');
    const globalFailures = timestamps(record.globalFailures, 'globalFailures');
    const rawSources = record.sources;
    if (!Array.isArray(rawSources) || rawSources.length > this.maxSources) {
      return corrupt(`sources must be a list of at most ${this.maxSources} entries`);
    }
    const seen = new Set<string>();
    const sources = rawSources.map((entry: unknown) => {
      if (typeof entry !== 'object' || entry === null) return corrupt('a source entry is not an object');
      const { source, failures } = entry as Record<string, unknown>;
      if (typeof source !== 'string' || source.length === 0 || source.length > MAX_SOURCE_LENGTH || seen.has(source)) {
        return corrupt('a source key is empty, too long or repeated');
      }
      seen.add(source);
      return { source, failures: timestamps(failures, `failures of a source`) };
    });
    return { version: 1, trippedAtUnixMs: trippedAt, globalFailures, sources };
  }
}
