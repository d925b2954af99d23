// The wrappers' own contracts; their edge cases against independent data are in test/vectors/wycheproof.test.ts.
import { ed25519 as curvesEd25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ed25519PublicKey, ed25519Sign, ed25519Verify, hkdfSha256, hmacSha256Verify, isEd25519PublicKey, p256Verify, x25519 } from '../../../main/core/crypto.js';
import { codeOf } from '../../helpers/errors.js';

describe('crypto wrappers', () => {
  it('Ed25519 on @noble/ed25519 agrees with @noble/curves for random seeds and messages', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }), (seed, message) => {
        const publicKey = ed25519PublicKey(seed);
        expect(publicKey).toEqual(curvesEd25519.getPublicKey(seed));
        const signature = ed25519Sign(message, seed);
        expect(signature).toEqual(curvesEd25519.sign(message, seed));
        expect(ed25519Verify(signature, message, publicKey)).toBe(true);
        expect(curvesEd25519.verify(signature, message, publicKey, { zip215: false })).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('ed25519Verify never throws and refuses small-order keys even with a "valid" equation', () => {
    // The identity point (y = 1) as public key: R = identity and S = 0 satisfy the cofactored equation.
    const identity = Uint8Array.of(1, ...new Array<number>(31).fill(0));
    const forged = Uint8Array.of(...identity, ...new Array<number>(32).fill(0));
    expect(isEd25519PublicKey(identity)).toBe(false);
    expect(ed25519Verify(forged, Uint8Array.of(1, 2, 3), identity)).toBe(false);
    expect(ed25519Verify(new Uint8Array(63), new Uint8Array(0), identity)).toBe(false);
    expect(ed25519Verify(null as unknown as Uint8Array, new Uint8Array(0), identity)).toBe(false);
  });

  it('x25519 refuses an all-zero peer key with weak_key_exchange and wrong lengths with invalid_argument', () => {
    expect(codeOf(() => x25519(new Uint8Array(32).fill(5), new Uint8Array(32)))).toBe('weak_key_exchange');
    expect(codeOf(() => x25519(new Uint8Array(31), new Uint8Array(32).fill(9)))).toBe('invalid_argument');
  });

  it('p256Verify refuses an unknown format and returns false on garbage', () => {
    expect(codeOf(() => p256Verify(new Uint8Array(64), new Uint8Array(0), new Uint8Array(65), 'raw' as 'der'))).toBe('invalid_argument');
    expect(p256Verify(new Uint8Array(64), new Uint8Array(0), new Uint8Array(65), 'p1363')).toBe(false);
    expect(p256Verify(new Uint8Array(8), new Uint8Array(0), new Uint8Array(65), 'der')).toBe(false);
  });

  it('hkdfSha256 and hmacSha256Verify refuse unsupported sizes with invalid_argument', () => {
    for (const length of [0, -1, 1.5, 8161]) expect(codeOf(() => hkdfSha256(new Uint8Array(32), new Uint8Array(0), new Uint8Array(0), length))).toBe('invalid_argument');
    expect(hkdfSha256(new Uint8Array(32), new Uint8Array(0), new Uint8Array(0), 8160).length).toBe(8160);
    expect(codeOf(() => hmacSha256Verify(new Uint8Array(32), new Uint8Array(0), new Uint8Array(16)))).toBe('invalid_argument');
  });
});
