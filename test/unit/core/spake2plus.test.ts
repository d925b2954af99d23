// SPAKE2+ behaviour beyond the RFC vectors (test/vectors/spake2plus.test.ts): refusals of invalid shares, wrong
// passwords, replays from earlier exchanges and the context binding, each seen from both sides.
import { p256 } from '@noble/curves/nist.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { describe, expect, it } from 'vitest';
import { concatBytes, utf8 } from '../../../main/core/bytes.js';
import { hmacSha256 } from '../../../main/core/crypto.js';
import {
  computeW0W1,
  proverFinish,
  proverSharedPoints,
  proverStart,
  ProverState,
  registration,
  SPAKE2PLUS_M_COMPRESSED_HEX,
  SPAKE2PLUS_N_COMPRESSED_HEX,
  spake2plusKeySchedule,
  spake2plusTranscript,
  verifierFinish,
  verifierRespond,
  type PakeContext,
  type ProverSecret,
} from '../../../main/core/spake2plus.js';
import { codeOf } from '../../helpers/errors.js';

const Point = p256.Point;
const FIELD_PRIME = Point.CURVE().p;

const ctx: PakeContext = { context: utf8('palyra test context'), idProver: utf8('device'), idVerifier: utf8('gateway') };

function secretFrom(fill: number): ProverSecret {
  return computeW0W1(new Uint8Array(80).fill(fill));
}

const right = secretFrom(7);
const wrong = secretFrom(8);
const record = registration(right.w0, right.w1);

/** What a prover holding `secret` would send as confirmP for this exchange, confirmV or not. */
function confirmPOf(secret: ProverSecret, x: Uint8Array, shareP: Uint8Array, shareV: Uint8Array, c: PakeContext): Uint8Array {
  const points = proverSharedPoints(secret, x, shareV);
  const keys = spake2plusKeySchedule(spake2plusTranscript(c, shareP, shareV, points, secret.w0));
  return hmacSha256(keys.K_confirmP, shareV);
}

const scalar = (n: bigint): Uint8Array => numberToBytesBE(n, 32);

describe('SPAKE2+ exchange', () => {
  it('an honest exchange ends with the same 32-byte key on both sides, fresh for every exchange', () => {
    const keys = [0, 1].map(() => {
      const { shareP, state } = proverStart(right);
      const response = verifierRespond(record, shareP, ctx);
      const prover = proverFinish(state, response.shareV, response.confirmV, ctx);
      const verifierKey = verifierFinish(response.state, prover.confirmP);
      expect(verifierKey).toEqual(prover.sharedKey);
      expect(prover.sharedKey).toHaveLength(32);
      return prover.sharedKey;
    });
    expect(keys[0]).not.toEqual(keys[1]);
  });

  it('a wrong password fails confirmation on the prover side and on the verifier side', () => {
    const x = scalar(12345n);
    const { shareP, state } = proverStart(wrong, x);
    const response = verifierRespond(record, shareP, ctx);
    expect(codeOf(() => proverFinish(state, response.shareV, response.confirmV, ctx))).toBe('pake_confirmation_failed');
    // A prover that skipped its check and sent the confirmP its keys give is refused too.
    const confirmP = confirmPOf(wrong, x, shareP, response.shareV, ctx);
    expect(codeOf(() => verifierFinish(response.state, confirmP))).toBe('pake_confirmation_failed');
  });

  it('the error text says what a person needs to know', () => {
    const { shareP, state } = proverStart(wrong);
    const response = verifierRespond(record, shareP, ctx);
    expect(() => proverFinish(state, response.shareV, response.confirmV, ctx)).toThrow(
      'wrong PIN, or someone is intercepting this connection',
    );
  });

  it('a flipped bit in confirmV, confirmP or a share fails the exchange', () => {
    for (const target of ['confirmV', 'confirmP', 'shareV'] as const) {
      const { shareP, state } = proverStart(right);
      const response = verifierRespond(record, shareP, ctx);
      const flip = (b: Uint8Array): Uint8Array => {
        const copy = Uint8Array.from(b);
        copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 1;
        return copy;
      };
      if (target === 'confirmP') {
        const prover = proverFinish(state, response.shareV, response.confirmV, ctx);
        expect(codeOf(() => verifierFinish(response.state, flip(prover.confirmP)))).toBe('pake_confirmation_failed');
      } else if (target === 'confirmV') {
        expect(codeOf(() => proverFinish(state, response.shareV, flip(response.confirmV), ctx))).toBe('pake_confirmation_failed');
      } else {
        // The last byte of Y flipped is (almost always) off the curve, else a different point: refused either way.
        const code = codeOf(() => proverFinish(state, flip(response.shareV), response.confirmV, ctx));
        expect(['pake_invalid_share', 'pake_confirmation_failed']).toContain(code);
      }
    }
  });

  it('confirmations of the wrong length are refused, not compared as equal', () => {
    const { shareP, state } = proverStart(right);
    const response = verifierRespond(record, shareP, ctx);
    expect(codeOf(() => proverFinish(state, response.shareV, response.confirmV.subarray(0, 31), ctx))).toBe('pake_confirmation_failed');
    expect(codeOf(() => verifierFinish(response.state, new Uint8Array(0)))).toBe('pake_confirmation_failed');
  });
});

describe('SPAKE2+ replays', () => {
  it('a shareV and confirmV recorded from an earlier exchange fail against a new prover exchange', () => {
    const earlier = proverStart(right);
    const earlierResponse = verifierRespond(record, earlier.shareP, ctx);
    proverFinish(earlier.state, earlierResponse.shareV, earlierResponse.confirmV, ctx);

    const now = proverStart(right);
    expect(codeOf(() => proverFinish(now.state, earlierResponse.shareV, earlierResponse.confirmV, ctx))).toBe('pake_confirmation_failed');
  });

  it('a shareP and confirmP recorded from an earlier exchange fail against a new verifier exchange', () => {
    const earlier = proverStart(right);
    const earlierResponse = verifierRespond(record, earlier.shareP, ctx);
    const earlierProver = proverFinish(earlier.state, earlierResponse.shareV, earlierResponse.confirmV, ctx);

    const replayed = verifierRespond(record, earlier.shareP, ctx);
    expect(replayed.shareV).not.toEqual(earlierResponse.shareV);
    expect(codeOf(() => verifierFinish(replayed.state, earlierProver.confirmP))).toBe('pake_confirmation_failed');
  });

  it('a prover state is single use: a second finish is refused', () => {
    const { shareP, state } = proverStart(right);
    const response = verifierRespond(record, shareP, ctx);
    proverFinish(state, response.shareV, response.confirmV, ctx);
    expect(state.consumed).toBe(true);
    expect(codeOf(() => proverFinish(state, response.shareV, response.confirmV, ctx))).toBe('invalid_argument');
  });

  it('a failed confirmation consumes the prover state too (a retry needs a fresh x)', () => {
    const { shareP, state } = proverStart(right);
    const response = verifierRespond(record, shareP, ctx);
    expect(codeOf(() => proverFinish(state, response.shareV, new Uint8Array(32), ctx))).toBe('pake_confirmation_failed');
    expect(codeOf(() => proverFinish(state, response.shareV, response.confirmV, ctx))).toBe('invalid_argument');
  });

  it('the prover state never shows its secrets when logged or serialised', () => {
    const { state } = proverStart(right, scalar(0xabcdefn));
    expect(JSON.stringify(state)).toBe('{"consumed":false}');
    expect(String((state as unknown as Record<symbol, () => string>)[Symbol.for('nodejs.util.inspect.custom')]?.())).not.toMatch(/abcdef/i);
  });
});

describe('SPAKE2+ context binding', () => {
  const variants: [string, PakeContext][] = [
    ['Context', { ...ctx, context: utf8('palyra test contexT') }],
    ['idProver', { ...ctx, idProver: utf8('another device') }],
    ['idVerifier', { ...ctx, idVerifier: utf8('a proxy CA') }],
    ['empty Context', { ...ctx, context: new Uint8Array(0) }],
    // Moving a byte from one field to the next keeps the concatenation, not the length-framed transcript.
    ['a shifted boundary', { context: utf8('palyra test contex'), idProver: utf8('tdevice'), idVerifier: utf8('gateway') }],
  ];

  it.each(variants)('a different %s on the prover side fails confirmation on both sides', (_name, proverCtx) => {
    const x = scalar(987654321n);
    const { shareP, state } = proverStart(right, x);
    const response = verifierRespond(record, shareP, ctx);
    expect(codeOf(() => proverFinish(state, response.shareV, response.confirmV, proverCtx))).toBe('pake_confirmation_failed');
    const confirmP = confirmPOf(right, x, shareP, response.shareV, proverCtx);
    expect(codeOf(() => verifierFinish(response.state, confirmP))).toBe('pake_confirmation_failed');
  });
});

describe('SPAKE2+ share validation', () => {
  const honestShare = proverStart(right).shareP;
  const G = Point.BASE.toBytes(false);

  /** A point whose x is small enough that x + p still fits in 32 bytes, encoded with x + p. */
  function pointWithNonCanonicalX(): Uint8Array {
    for (let x = 1n; x < 1000n; x++) {
      const rhs = Point.Fp.create(x * x * x + Point.CURVE().a * x + Point.CURVE().b);
      let y: bigint;
      try {
        y = Point.Fp.sqrt(rhs);
      } catch {
        continue;
      }
      return concatBytes(Uint8Array.of(4), numberToBytesBE(x + FIELD_PRIME, 32), numberToBytesBE(y, 32));
    }
    throw new Error('no small x found');
  }

  const w0M = Point.fromHex(SPAKE2PLUS_M_COMPRESSED_HEX).multiply(bytesToNumberBE(right.w0)).toBytes(false);
  const w0N = Point.fromHex(SPAKE2PLUS_N_COMPRESSED_HEX).multiply(bytesToNumberBE(right.w0)).toBytes(false);
  const offCurve = Uint8Array.from(honestShare);
  offCurve[64] = (offCurve[64] ?? 0) ^ 1;

  const invalid: [string, Uint8Array][] = [
    ['the identity as SEC1 0x00', Uint8Array.of(0)],
    ['65 zero bytes', new Uint8Array(65)],
    ['0x04 and zero coordinates', concatBytes(Uint8Array.of(4), new Uint8Array(64))],
    ['an off-curve point', offCurve],
    ['a truncated share', honestShare.subarray(0, 64)],
    ['a share with a trailing byte', concatBytes(honestShare, Uint8Array.of(0))],
    ['an empty share', new Uint8Array(0)],
    ['a compressed point', Point.BASE.toBytes(true)],
    ['a hybrid-encoded point (0x06/0x07)', concatBytes(Uint8Array.of(6 | Number(Point.BASE.y & 1n)), G.subarray(1))],
    ['a coordinate ≥ p', pointWithNonCanonicalX()],
  ];

  it.each(invalid)('the verifier refuses %s as shareP with pake_invalid_share', (_name, share) => {
    expect(codeOf(() => verifierRespond(record, share, ctx))).toBe('pake_invalid_share');
  });

  it.each(invalid)('the prover refuses %s as shareV with pake_invalid_share and keeps its state', (_name, share) => {
    const { shareP, state } = proverStart(right);
    expect(codeOf(() => proverFinish(state, share, new Uint8Array(32), ctx))).toBe('pake_invalid_share');
    expect(state.consumed).toBe(false);
    // The real answer still completes the exchange.
    const response = verifierRespond(record, shareP, ctx);
    expect(proverFinish(state, response.shareV, response.confirmV, ctx).sharedKey).toHaveLength(32);
  });

  it('refuses a shareP = w0·M and a shareV = w0·N, which cancel the password mask (Z would be the identity)', () => {
    expect(codeOf(() => verifierRespond(record, w0M, ctx))).toBe('pake_invalid_share');
    const { state } = proverStart(right);
    expect(codeOf(() => proverFinish(state, w0N, new Uint8Array(32), ctx))).toBe('pake_invalid_share');
  });

  it('refuses non-bytes shares with pake_invalid_share', () => {
    expect(codeOf(() => verifierRespond(record, 'abc' as unknown as Uint8Array, ctx))).toBe('pake_invalid_share');
  });
});

describe('SPAKE2+ argument checks', () => {
  it('refuses injected scalars outside [1, n-1] with invalid_argument', () => {
    const n = Point.CURVE().n;
    for (const bad of [scalar(0n), scalar(n), scalar(n + 1n), new Uint8Array(31)]) {
      expect(codeOf(() => proverStart(right, bad))).toBe('invalid_argument');
      expect(codeOf(() => verifierRespond(record, proverStart(right).shareP, ctx, bad))).toBe('invalid_argument');
    }
  });

  it('refuses a password hash output that is short or odd with invalid_argument', () => {
    expect(codeOf(() => computeW0W1(new Uint8Array(78)))).toBe('invalid_argument');
    expect(codeOf(() => computeW0W1(new Uint8Array(81)))).toBe('invalid_argument');
    expect(computeW0W1(new Uint8Array(128).fill(3)).w0).toHaveLength(32);
  });

  it('refuses a password hash that reduces to zero, and records with bad w0 or L, with invalid_key_material', () => {
    const n = numberToBytesBE(Point.CURVE().n, 40);
    expect(codeOf(() => computeW0W1(concatBytes(n, new Uint8Array(40).fill(1))))).toBe('invalid_key_material');
    expect(codeOf(() => registration(new Uint8Array(32), right.w1))).toBe('invalid_key_material');
    const share = proverStart(right).shareP;
    expect(codeOf(() => verifierRespond({ w0: record.w0, L: record.L.subarray(1) }, share, ctx))).toBe('invalid_key_material');
    expect(codeOf(() => verifierRespond({ w0: new Uint8Array(32), L: record.L }, share, ctx))).toBe('invalid_key_material');
  });

  it('refuses a missing context or a context field that is not bytes with invalid_argument', () => {
    const share = proverStart(right).shareP;
    expect(codeOf(() => verifierRespond(record, share, undefined as unknown as PakeContext))).toBe('invalid_argument');
    expect(codeOf(() => verifierRespond(record, share, { ...ctx, idProver: 'device' as unknown as Uint8Array }))).toBe('invalid_argument');
    expect(codeOf(() => proverFinish({} as unknown as ProverState, share, new Uint8Array(32), ctx))).toBe('invalid_argument');
  });

  it('the record does not change while the verifier answers', () => {
    const before = { w0: Uint8Array.from(record.w0), L: Uint8Array.from(record.L) };
    verifierRespond(record, proverStart(right).shareP, ctx);
    expect(record).toEqual(before);
  });
});
