// Reconnect delays: exponential ceilings from 200 ms to 10 s with full jitter, reset after a success.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_CAP_MS } from '../../../main/device/backoff.js';

describe('Backoff', () => {
  it('doubles its ceiling from 200 ms up to the 10 s cap', () => {
    const backoff = new Backoff({ random: () => 0.999_999 });
    const delays = Array.from({ length: 10 }, () => backoff.next());
    expect(delays).toEqual([200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000]);
    expect(DEFAULT_BACKOFF_BASE_MS).toBe(200);
    expect(DEFAULT_BACKOFF_CAP_MS).toBe(10_000);
  });

  it('draws every delay uniformly below the current ceiling (full jitter)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 40 }), (draws) => {
        let i = 0;
        const backoff = new Backoff({ random: () => draws[i++ % draws.length]! });
        for (let n = 0; n < draws.length; n++) {
          const ceiling = backoff.ceilingMs();
          const delay = backoff.next();
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(ceiling);
          expect(ceiling).toBe(Math.min(10_000, 200 * 2 ** n));
        }
      }),
    );
  });

  it('starts from the base again after a reset and counts failures', () => {
    const backoff = new Backoff({ random: () => 0.5 });
    backoff.next();
    backoff.next();
    backoff.next();
    expect(backoff.failures).toBe(3);
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(backoff.next()).toBe(100);
  });

  it('survives a broken random source and refuses nonsense bounds', () => {
    expect(new Backoff({ random: () => Number.NaN }).next()).toBe(0);
    expect(new Backoff({ random: () => 7 }).next()).toBe(200);
    expect(() => new Backoff({ baseMs: 0 })).toThrow(/backoff/);
    expect(() => new Backoff({ baseMs: 500, capMs: 100 })).toThrow(/backoff/);
  });
});
