import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, fromBase64, fromBase64Url, fromHex, toBase64, toBase64Url, toHex } from '../../../main/core/bytes.js';
import { codeOf } from '../../helpers/errors.js';

describe('byte encodings', () => {
  it('round-trip any bytes, agreeing with Buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70 }), (bytes) => {
        const buf = Buffer.from(bytes);
        expect(toHex(bytes)).toBe(buf.toString('hex'));
        expect(toBase64(bytes)).toBe(buf.toString('base64'));
        expect(toBase64(bytes, false)).toBe(buf.toString('base64').replace(/=+$/, ''));
        expect(toBase64Url(bytes)).toBe(buf.toString('base64url'));
        expect(fromHex(toHex(bytes))).toEqual(bytes);
        expect(fromBase64(toBase64(bytes))).toEqual(bytes);
        expect(fromBase64(toBase64(bytes, false))).toEqual(bytes);
        expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
      }),
    );
  });

  it('accepts upper-case hex and writes lower case', () => {
    expect(fromHex('ABcd')).toEqual(Uint8Array.of(0xab, 0xcd));
    expect(toHex(Uint8Array.of(0xab))).toBe('ab');
  });

  it('refuses malformed or non-canonical text with invalid_argument', () => {
    for (const bad of ['abc', 'zz', '0x00', ' 00']) expect(codeOf(() => fromHex(bad))).toBe('invalid_argument');
    // 'AB' leaves non-zero bits in its last character; 'A' cannot encode whole bytes; 'AA=' has wrong padding.
    for (const bad of ['AB', 'A', 'AA=', 'AA===', 'A A=', 'AA\n', '-_8']) expect(codeOf(() => fromBase64(bad))).toBe('invalid_argument');
    for (const bad of ['AA==', 'AB', '+/8', 'A']) expect(codeOf(() => fromBase64Url(bad))).toBe('invalid_argument');
  });

  it('compares in constant time over the longer length', () => {
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 3), Uint8Array.of(1, 2))).toBe(false);
  });
});
