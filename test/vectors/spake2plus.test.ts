// RFC 9383 Appendix C (P256-SHA256-HKDF-SHA256-HMAC-SHA256) byte for byte through main/core/spake2plus.ts, the same
// vectors through the independent BigInt implementation (spake2plus-independent.ts), and the two against each other
// on seeded random runs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../../main/core/bytes.js';
import {
  computeW0W1,
  proverFinish,
  proverSharedPoints,
  proverStart,
  registration,
  spake2plusKeySchedule,
  spake2plusTranscript,
  SPAKE2PLUS_M_COMPRESSED_HEX,
  SPAKE2PLUS_N_COMPRESSED_HEX,
  verifierFinish,
  verifierRespond,
  verifierSharedPoints,
  type PakeContext,
} from '../../main/core/spake2plus.js';
import * as independent from './spake2plus-independent.js';

interface RfcVector {
  M_compressed: string;
  N_compressed: string;
  context_utf8: string;
  idProver_utf8: string;
  idVerifier_utf8: string;
  w0: string;
  w1: string;
  L: string;
  x: string;
  shareP: string;
  y: string;
  shareV: string;
  Z: string;
  V: string;
  TT: string;
  K_main: string;
  K_confirmP: string;
  K_confirmV: string;
  'HMAC(K_confirmP, shareV)': string;
  'HMAC(K_confirmV, shareP)': string;
  K_shared: string;
}

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'spake2plus-rfc9383.json');
const v = JSON.parse(readFileSync(file, 'utf8')) as RfcVector;

const ctx: PakeContext = { context: utf8(v.context_utf8), idProver: utf8(v.idProver_utf8), idVerifier: utf8(v.idVerifier_utf8) };
const secret = { w0: fromHex(v.w0), w1: fromHex(v.w1) };
const buf = (h: string): Buffer => Buffer.from(h, 'hex');
const ORDER = independent.ORDER;

describe('RFC 9383 Appendix C, P256-SHA256-HKDF-SHA256-HMAC-SHA256: main/core', () => {
  it('uses the RFC constants M and N', () => {
    expect(SPAKE2PLUS_M_COMPRESSED_HEX).toBe(v.M_compressed);
    expect(SPAKE2PLUS_N_COMPRESSED_HEX).toBe(v.N_compressed);
  });

  it('reproduces L = w1·P', () => {
    const record = registration(secret.w0, secret.w1);
    expect(toHex(record.L)).toBe(v.L);
    expect(toHex(record.w0)).toBe(v.w0);
  });

  it('computeW0W1 reduces each 40-byte half mod n to the vector scalars', () => {
    const pad = (scalar: string, addOrder: boolean): string => {
      const value = BigInt(`0x${scalar}`) + (addOrder ? ORDER : 0n);
      return value.toString(16).padStart(80, '0');
    };
    expect(computeW0W1(fromHex(pad(v.w0, false) + pad(v.w1, false)))).toEqual(secret);
    // The same scalars plus n: only a reduction mod n gives them back.
    expect(computeW0W1(fromHex(pad(v.w0, true) + pad(v.w1, true)))).toEqual(secret);
  });

  it('reproduces shareP, shareV, Z, V, TT, every key, both confirmations and K_shared', () => {
    const x = fromHex(v.x);
    const y = fromHex(v.y);
    const { shareP, state } = proverStart(secret, x);
    expect(toHex(shareP)).toBe(v.shareP);

    const record = registration(secret.w0, secret.w1);
    const response = verifierRespond(record, shareP, ctx, y);
    expect(toHex(response.shareV)).toBe(v.shareV);
    expect(toHex(response.confirmV)).toBe(v['HMAC(K_confirmV, shareP)']);
    expect(toHex(response.state.expectedConfirmP)).toBe(v['HMAC(K_confirmP, shareV)']);

    const proverPoints = proverSharedPoints(secret, x, response.shareV);
    const verifierPoints = verifierSharedPoints(record, y, shareP);
    expect(toHex(proverPoints.Z)).toBe(v.Z);
    expect(toHex(proverPoints.V)).toBe(v.V);
    expect(toHex(verifierPoints.Z)).toBe(v.Z);
    expect(toHex(verifierPoints.V)).toBe(v.V);

    const tt = spake2plusTranscript(ctx, shareP, response.shareV, proverPoints, secret.w0);
    expect(toHex(tt)).toBe(v.TT);
    const keys = spake2plusKeySchedule(tt);
    expect(toHex(keys.K_main)).toBe(v.K_main);
    expect(toHex(keys.K_confirmP)).toBe(v.K_confirmP);
    expect(toHex(keys.K_confirmV)).toBe(v.K_confirmV);
    expect(toHex(keys.K_shared)).toBe(v.K_shared);

    const prover = proverFinish(state, response.shareV, response.confirmV, ctx);
    expect(toHex(prover.confirmP)).toBe(v['HMAC(K_confirmP, shareV)']);
    expect(toHex(prover.sharedKey)).toBe(v.K_shared);
    expect(toHex(verifierFinish(response.state, prover.confirmP))).toBe(v.K_shared);
  });
});

describe('RFC 9383 Appendix C: the independent implementation', () => {
  it('reproduces M, N and every value', () => {
    expect(independent.M_UNCOMPRESSED.toString('hex')).toBe(v.TT.slice(2 * (8 + 56 + 8 + 6 + 8 + 6 + 8), 2 * (8 + 56 + 8 + 6 + 8 + 6 + 8 + 65)));
    const r = independent.run(
      { context: Buffer.from(v.context_utf8), idProver: Buffer.from(v.idProver_utf8), idVerifier: Buffer.from(v.idVerifier_utf8) },
      buf(v.w0),
      buf(v.w1),
      buf(v.x),
      buf(v.y),
    );
    expect(r.L.toString('hex')).toBe(v.L);
    expect(r.shareP.toString('hex')).toBe(v.shareP);
    expect(r.shareV.toString('hex')).toBe(v.shareV);
    expect(r.Z.toString('hex')).toBe(v.Z);
    expect(r.V.toString('hex')).toBe(v.V);
    expect(r.TT.toString('hex')).toBe(v.TT);
    expect(r.keys.K_main.toString('hex')).toBe(v.K_main);
    expect(r.keys.K_confirmP.toString('hex')).toBe(v.K_confirmP);
    expect(r.keys.K_confirmV.toString('hex')).toBe(v.K_confirmV);
    expect(r.keys.K_shared.toString('hex')).toBe(v.K_shared);
    expect(r.confirmP.toString('hex')).toBe(v['HMAC(K_confirmP, shareV)']);
    expect(r.confirmV.toString('hex')).toBe(v['HMAC(K_confirmV, shareP)']);
  });
});

describe('main/core and the independent implementation agree on random runs', () => {
  const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

  it('on every value of 50 exchanges from random password hashes, scalars and contexts', () => {
    fc.assert(
      fc.property(
        bytes(80, 80),
        fc.bigInt(1n, ORDER - 1n),
        fc.bigInt(1n, ORDER - 1n),
        bytes(0, 80),
        bytes(0, 40),
        bytes(0, 40),
        (pbkdf, xn, yn, context, idProver, idVerifier) => {
          const x = fromHex(xn.toString(16).padStart(64, '0'));
          const y = fromHex(yn.toString(16).padStart(64, '0'));
          const c: PakeContext = { context, idProver, idVerifier };

          const ours = computeW0W1(pbkdf);
          const theirs = independent.computeW0W1(Buffer.from(pbkdf));
          expect(toHex(ours.w0)).toBe(theirs.w0.toString('hex'));
          expect(toHex(ours.w1)).toBe(theirs.w1.toString('hex'));

          const record = registration(ours.w0, ours.w1);
          const { shareP, state } = proverStart(ours, x);
          const response = verifierRespond(record, shareP, c, y);
          const prover = proverFinish(state, response.shareV, response.confirmV, c);
          const sharedKey = verifierFinish(response.state, prover.confirmP);

          const r = independent.run(
            { context: Buffer.from(context), idProver: Buffer.from(idProver), idVerifier: Buffer.from(idVerifier) },
            theirs.w0,
            theirs.w1,
            Buffer.from(x),
            Buffer.from(y),
          );
          expect(toHex(record.L)).toBe(r.L.toString('hex'));
          expect(toHex(shareP)).toBe(r.shareP.toString('hex'));
          expect(toHex(response.shareV)).toBe(r.shareV.toString('hex'));
          const points = proverSharedPoints(ours, x, response.shareV);
          expect(toHex(points.Z)).toBe(r.Z.toString('hex'));
          expect(toHex(points.V)).toBe(r.V.toString('hex'));
          expect(toHex(spake2plusTranscript(c, shareP, response.shareV, points, ours.w0))).toBe(r.TT.toString('hex'));
          expect(toHex(response.confirmV)).toBe(r.confirmV.toString('hex'));
          expect(toHex(prover.confirmP)).toBe(r.confirmP.toString('hex'));
          expect(toHex(prover.sharedKey)).toBe(r.keys.K_shared.toString('hex'));
          expect(toHex(sharedKey)).toBe(r.keys.K_shared.toString('hex'));
        },
      ),
      { numRuns: 50, seed: 9383 },
    );
  });

  it('on random CSPRNG runs too (no injected x, y): both sides end with the same key', () => {
    for (let i = 0; i < 10; i++) {
      const pbkdf = globalThis.crypto.getRandomValues(new Uint8Array(80));
      const secretI = computeW0W1(pbkdf);
      const { shareP, state } = proverStart(secretI);
      const response = verifierRespond(registration(secretI.w0, secretI.w1), shareP, ctx);
      const prover = proverFinish(state, response.shareV, response.confirmV, ctx);
      expect(verifierFinish(response.state, prover.confirmP)).toEqual(prover.sharedKey);
      // The independent side decodes and accepts every share ours produces.
      expect(independent.decodeUncompressed(Buffer.from(shareP))).toBeDefined();
      expect(independent.decodeUncompressed(Buffer.from(response.shareV))).toBeDefined();
    }
  });
});
