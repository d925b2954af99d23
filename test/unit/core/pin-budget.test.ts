import { describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { PinGuessBudget } from '../../../main/core/pin-budget.js';

const T0 = 1_700_000_000_000;
const WINDOW = 15 * 60_000;

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof PalyraError ? error.code : 'non-palyra-error';
  }
  return undefined;
}

function checkCode(budget: PinGuessBudget, source: string, now: number): string | undefined {
  return errorCode(() => {
    budget.check(source, now);
  });
}

/** Records `count` failures from `source`, `stepMs` apart from `start`; returns the trip flags. */
function fail(budget: PinGuessBudget, source: string, count: number, start = T0, stepMs = 1_000): boolean[] {
  return Array.from({ length: count }, (_, i) => budget.recordFailure(source, start + i * stepMs));
}

describe('PinGuessBudget', () => {
  it('allows 19 failures from one source and trips on the 20th', () => {
    const budget = new PinGuessBudget();
    expect(fail(budget, '203.0.113.7', 19)).toEqual(Array(19).fill(false));
    expect(budget.isTripped(T0 + 19_000)).toBe(false);
    expect(checkCode(budget, '203.0.113.7', T0 + 19_000)).toBeUndefined();

    expect(budget.recordFailure('203.0.113.7', T0 + 19_000)).toBe(true);
    expect(budget.isTripped(T0 + 19_000)).toBe(true);
    expect(budget.trippedAtUnixMs).toBe(T0 + 19_000);
  });

  it('refuses every source with pairing_budget_exhausted once tripped', () => {
    const budget = new PinGuessBudget();
    fail(budget, 'a', 20);
    for (const source of ['a', 'b']) {
      expect(checkCode(budget, source, T0 + 30_000)).toBe('pairing_budget_exhausted');
    }
  });

  it('does not trip on failures spread so that no 15-minute window holds 20', () => {
    const budget = new PinGuessBudget();
    // 48 s apart: any 15-minute window holds at most 19 of them, and 60 failures span 47 minutes.
    expect(fail(budget, 'a', 60, T0, 48_000)).not.toContain(true);
    expect(budget.isTripped(T0 + 60 * 48_000)).toBe(false);
  });

  it('stops counting a failure exactly one window after it', () => {
    const early = new PinGuessBudget();
    fail(early, 'a', 19, T0, 0);
    expect(early.recordFailure('a', T0 + WINDOW)).toBe(false);

    const late = new PinGuessBudget();
    fail(late, 'a', 19, T0, 0);
    expect(late.recordFailure('a', T0 + WINDOW - 1)).toBe(true);
  });

  it('trips globally at 20 failures in total from different sources', () => {
    const budget = new PinGuessBudget();
    expect(fail(budget, '198.51.100.1', 10)).not.toContain(true);
    expect(fail(budget, '198.51.100.2', 9, T0 + 10_000)).not.toContain(true);
    expect(budget.recordFailure('198.51.100.3', T0 + 20_000)).toBe(true);
  });

  it('trips on one source alone when the global limit is higher', () => {
    const budget = new PinGuessBudget({ maxGlobalFailures: 100 });
    for (const source of ['a', 'b', 'c', 'd', 'e']) expect(fail(budget, source, 19)).not.toContain(true);
    expect(budget.isTripped()).toBe(false);
    expect(budget.recordFailure('c', T0 + 60_000)).toBe(true);
  });

  it('stays tripped however much time passes, and reports the trip only once', () => {
    const budget = new PinGuessBudget();
    fail(budget, 'a', 20);
    const aYearLater = T0 + 365 * 24 * 3_600_000;
    expect(budget.isTripped(aYearLater)).toBe(true);
    expect(budget.recordFailure('a', aYearLater)).toBe(false);
    expect(checkCode(budget, 'b', aYearLater)).toBe('pairing_budget_exhausted');
  });

  it('starts over after reset (an operator minted a new code)', () => {
    const budget = new PinGuessBudget();
    fail(budget, 'a', 20);
    budget.reset();
    expect(budget.isTripped()).toBe(false);
    expect(checkCode(budget, 'a', T0 + 21_000)).toBeUndefined();
    expect(fail(budget, 'a', 19, T0 + 21_000)).not.toContain(true);
    expect(budget.recordFailure('a', T0 + 50_000)).toBe(true);
  });

  it('carries its counters through a JSON snapshot', () => {
    const budget = new PinGuessBudget();
    fail(budget, 'a', 12);
    fail(budget, 'b', 7, T0 + 12_000);
    const restored = new PinGuessBudget();
    restored.restore(JSON.parse(JSON.stringify(budget.snapshot())));
    expect(restored.snapshot()).toEqual(budget.snapshot());
    expect(restored.recordFailure('c', T0 + 30_000)).toBe(true);

    const tripped = new PinGuessBudget();
    tripped.restore(JSON.parse(JSON.stringify(restored.snapshot())));
    expect(tripped.isTripped()).toBe(true);
    expect(tripped.trippedAtUnixMs).toBe(T0 + 30_000);
  });

  const a1 = { source: 'a', failures: [1] };
  const a2 = { source: 'a', failures: [2] };
  const empty = { source: '', failures: [] };
  it.each([
    ['null', null],
    ['an unknown version', { version: 2, trippedAtUnixMs: null, globalFailures: [], sources: [] }],
    ['a string time', { version: 1, trippedAtUnixMs: null, globalFailures: ['1'], sources: [] }],
    ['too many timestamps', { version: 1, trippedAtUnixMs: null, globalFailures: Array(21).fill(1), sources: [] }],
    ['a repeated source', { version: 1, trippedAtUnixMs: null, globalFailures: [], sources: [a1, a2] }],
    ['an empty source key', { version: 1, trippedAtUnixMs: null, globalFailures: [], sources: [empty] }],
    ['a negative trip time', { version: 1, trippedAtUnixMs: -1, globalFailures: [], sources: [] }],
  ])('refuses to restore %s and keeps its state', (_what, snapshot) => {
    const budget = new PinGuessBudget();
    fail(budget, 'a', 3);
    const before = budget.snapshot();
    expect(errorCode(() => {
      budget.restore(snapshot);
    })).toBe('state_corrupt');
    expect(budget.snapshot()).toEqual(before);
  });

  it('keeps at most maxSources sources, evicting the least recently failing', () => {
    const budget = new PinGuessBudget({ maxFailures: 5, maxGlobalFailures: 1_000, maxSources: 3 });
    for (let i = 0; i < 10; i++) budget.recordFailure(`10.0.0.${i}`, T0 + i);
    budget.recordFailure('10.0.0.7', T0 + 10);
    expect(budget.snapshot().sources.map((s) => s.source)).toEqual(['10.0.0.8', '10.0.0.9', '10.0.0.7']);
  });

  it('forgets sources and timestamps that left the window', () => {
    const budget = new PinGuessBudget();
    for (let i = 0; i < 15; i++) budget.recordFailure(`10.0.0.${i}`, T0);
    budget.recordFailure('10.0.0.99', T0 + WINDOW);
    const snapshot = budget.snapshot();
    expect(snapshot.sources).toEqual([{ source: '10.0.0.99', failures: [T0 + WINDOW] }]);
    expect(snapshot.globalFailures).toEqual([T0 + WINDOW]);
  });

  it('refuses an empty source, a bad time and bad options', () => {
    const budget = new PinGuessBudget();
    expect(errorCode(() => budget.recordFailure('', T0))).toBe('invalid_argument');
    expect(errorCode(() => budget.recordFailure('a'.repeat(257), T0))).toBe('invalid_argument');
    expect(errorCode(() => budget.recordFailure('a', Number.NaN))).toBe('invalid_argument');
    expect(errorCode(() => new PinGuessBudget({ maxFailures: 0 }))).toBe('invalid_argument');
    expect(errorCode(() => new PinGuessBudget({ windowMs: 1.5 }))).toBe('invalid_argument');
  });
});
