import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { isCanonicalId } from '../../../main/core/ids.js';
import {
  clampCodeTtlMs,
  loadPinVerifier,
  pinCodeMatches,
  DEFAULT_CODE_TTL_MS,
  hashPairingCode,
  isPairingCodeExpired,
  MAX_CODE_TTL_MS,
  MIN_CODE_TTL_MS,
  mintPin,
  mintQrToken,
  newPairingCodeRecord,
  pairingCodeMatches,
  parseTtl,
  validatePairingProof,
} from '../../../main/core/pairing-codes.js';

function u32be(value: number): Uint8Array {
  return new Uint8Array([value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255]);
}

/** A random source that replays the given chunks in order. */
function scripted(...chunks: Uint8Array[]): (length: number) => Uint8Array {
  let next = 0;
  return (length) => {
    const chunk = chunks[next++];
    if (chunk?.length !== length) throw new Error(`unexpected draw of ${length} bytes`);
    return chunk;
  };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof PalyraError ? error.code : 'non-palyra-error';
  }
  return undefined;
}

function proofCode(kind: 'pin' | 'qr', proof: string): string | undefined {
  return codeOf(() => {
    validatePairingProof(kind, proof);
  });
}

describe('mintPin', () => {
  it('returns six ASCII digits from the CSPRNG', () => {
    for (let i = 0; i < 200; i++) expect(mintPin()).toMatch(/^[0-9]{6}$/);
  });

  it('maps every accepted 32-bit draw to its value mod 10^6, zero-padded', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_293_999_999 }), (value) => {
        expect(mintPin(scripted(u32be(value)))).toBe(String(value % 1_000_000).padStart(6, '0'));
      }),
      { numRuns: 500 },
    );
    expect(mintPin(scripted(u32be(42)))).toBe('000042');
    expect(mintPin(scripted(u32be(4_293_999_999)))).toBe('999999');
  });

  it('rejects draws at or above 4 294 000 000 so that all 10^6 PINs are equally likely', () => {
    // 4 294 000 000 = 4294 · 10^6: the accepted range holds every residue exactly 4294 times.
    expect(mintPin(scripted(u32be(4_294_000_000), u32be(7)))).toBe('000007');
    expect(mintPin(scripted(u32be(0xffff_ffff), u32be(4_294_967_000), u32be(123_456)))).toBe('123456');
  });

  it('gives up with a cryptographic error when the random source never yields an acceptable value', () => {
    expect(codeOf(() => mintPin(() => u32be(0xffff_ffff)))).toBe('cryptographic');
  });
});

describe('mintQrToken', () => {
  it('writes 128 random bits as 26 Crockford characters that pass the QR proof rule', () => {
    const token = mintQrToken();
    expect(isCanonicalId(token)).toBe(true);
    expect(() => {
      validatePairingProof('qr', token);
    }).not.toThrow();
  });

  it('encodes the random bytes it draws', () => {
    expect(mintQrToken(scripted(new Uint8Array(16)))).toBe('0'.repeat(26));
    expect(mintQrToken(scripted(new Uint8Array(16).fill(255)))).toBe('7' + 'Z'.repeat(25));
  });

  it('does not repeat itself', () => {
    const tokens = new Set(Array.from({ length: 100 }, () => mintQrToken()));
    expect(tokens.size).toBe(100);
  });
});

describe('hashPairingCode', () => {
  it('is the lowercase hex SHA-256 of the UTF-8 code', () => {
    expect(hashPairingCode('123456')).toBe('8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92');
  });

  it('matches only the code it was made from', () => {
    const hash = hashPairingCode('123456');
    expect(pairingCodeMatches(hash, '123456')).toBe(true);
    expect(pairingCodeMatches(hash, '123457')).toBe(false);
    expect(pairingCodeMatches(hash.slice(0, 63), '123456')).toBe(false);
  });
});

describe('clampCodeTtlMs', () => {
  it('defaults to 10 minutes', () => {
    expect(clampCodeTtlMs()).toBe(DEFAULT_CODE_TTL_MS);
    expect(DEFAULT_CODE_TTL_MS).toBe(600_000);
  });

  it('clamps to 30 s .. 24 h and truncates fractions', () => {
    expect(clampCodeTtlMs(1)).toBe(MIN_CODE_TTL_MS);
    expect(clampCodeTtlMs(-5)).toBe(30_000);
    expect(clampCodeTtlMs(30_000)).toBe(30_000);
    expect(clampCodeTtlMs(45_000.9)).toBe(45_000);
    expect(clampCodeTtlMs(86_400_000)).toBe(86_400_000);
    expect(clampCodeTtlMs(10 ** 12)).toBe(MAX_CODE_TTL_MS);
    expect(clampCodeTtlMs(Number.POSITIVE_INFINITY)).toBe(MAX_CODE_TTL_MS);
  });

  it('refuses NaN', () => {
    expect(codeOf(() => clampCodeTtlMs(Number.NaN))).toBe('invalid_argument');
  });
});

describe('parseTtl', () => {
  it.each([
    ['10m', 600_000],
    ['30s', 30_000],
    ['2h', 7_200_000],
    ['600000ms', 600_000],
    ['1d', 86_400_000],
    ['0s', 0],
  ])('reads %s as %i ms', (text, ms) => {
    expect(parseTtl(text)).toBe(ms);
  });

  it.each(['', '10', '10 m', ' 10m', '-5s', '+5s', '1.5h', '10M', '1w', 's', 'm10', '10mm', '999999999999999d'])(
    'refuses %j',
    (text) => {
      expect(codeOf(() => parseTtl(text))).toBe('invalid_argument');
    },
  );
});

describe('validatePairingProof', () => {
  it.each(['000000', '123456', '999999'])('accepts the PIN %s', (pin) => {
    expect(proofCode('pin', pin)).toBeUndefined();
  });

  it.each(['12345', '1234567', '12345a', ' 12345', '１２３４５６', '', '12 456'])('refuses the PIN %j', (pin) => {
    expect(proofCode('pin', pin)).toBe('invalid_pairing_proof');
  });

  it('accepts QR tokens of 16 to 128 UTF-8 bytes and refuses shorter or longer ones', () => {
    expect(proofCode('qr', 'a'.repeat(16))).toBeUndefined();
    expect(proofCode('qr', 'a'.repeat(128))).toBeUndefined();
    expect(proofCode('qr', 'a'.repeat(15))).toBe('invalid_pairing_proof');
    expect(proofCode('qr', 'a'.repeat(129))).toBe('invalid_pairing_proof');
  });

  it('counts QR token length in bytes, not characters', () => {
    expect(proofCode('qr', 'é'.repeat(8))).toBeUndefined(); // 16 bytes
    expect(proofCode('qr', 'é'.repeat(7) + 'a')).toBe('invalid_pairing_proof'); // 15 bytes
    expect(proofCode('qr', 'é'.repeat(65))).toBe('invalid_pairing_proof'); // 130 bytes
  });
});

describe('newPairingCodeRecord', () => {
  const now = 1_700_000_000_000;

  it('stores a PIN only as its SPAKE2+ verifier under a random key, never the PIN or its hash', async () => {
    const { code, record } = newPairingCodeRecord({ method: 'pin', kind: 'desktop', issuedBy: 'operator', now });
    expect(code).toMatch(/^[0-9]{6}$/);
    expect(record.codeHash).toMatch(/^pin:[0-9a-f]{32}$/);
    const json = JSON.stringify(record);
    expect(json).not.toContain(code);
    expect(json).not.toContain(hashPairingCode(code));
    expect(record).toEqual({
      codeHash: record.codeHash,
      pin: { saltB64: expect.any(String), w0B64: expect.any(String), lB64: expect.any(String) },
      method: 'pin',
      kind: 'desktop',
      issuedBy: 'operator',
      createdAtUnixMs: now,
      expiresAtUnixMs: now + DEFAULT_CODE_TTL_MS,
    });
    const v = loadPinVerifier(record.pin!);
    expect([v.salt.length, v.w0.length, v.L.length]).toEqual([16, 32, 65]);
    // The v1 path recomputes the verifier from a given PIN and the salt.
    expect(await pinCodeMatches(record, code)).toBe(true);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    expect(await pinCodeMatches(record, wrong)).toBe(false);
    expect(await pinCodeMatches(record, 'abcdef')).toBe(false);
  });

  it('stores a QR token as its hash', () => {
    const { code, record } = newPairingCodeRecord({ method: 'qr', kind: null, issuedBy: 'operator', now });
    expect(record.codeHash).toBe(hashPairingCode(code));
    expect(record.pin).toBeUndefined();
  });

  it('mints a QR token for the qr method and clamps the TTL', () => {
    const { code, record } = newPairingCodeRecord({ method: 'qr', kind: null, issuedBy: '  cli  ', ttlMs: 1_000, now });
    expect(isCanonicalId(code)).toBe(true);
    expect(record.kind).toBeNull();
    expect(record.issuedBy).toBe('cli');
    expect(record.expiresAtUnixMs).toBe(now + MIN_CODE_TTL_MS);
  });

  it('refuses an empty issuer, an unknown kind and a bad time', () => {
    expect(codeOf(() => newPairingCodeRecord({ method: 'pin', kind: null, issuedBy: '  ', now }))).toBe(
      'invalid_argument',
    );
    expect(
      codeOf(() => newPairingCodeRecord({ method: 'pin', kind: 'phone' as never, issuedBy: 'op', now })),
    ).toBe('invalid_argument');
    expect(codeOf(() => newPairingCodeRecord({ method: 'pin', kind: null, issuedBy: 'op', now: -1 }))).toBe(
      'invalid_argument',
    );
  });

  it('treats a code as expired from its expiry instant on', () => {
    const { record } = newPairingCodeRecord({ method: 'pin', kind: null, issuedBy: 'op', ttlMs: 60_000, now });
    expect(isPairingCodeExpired(record, now + 59_999)).toBe(false);
    expect(isPairingCodeExpired(record, now + 60_000)).toBe(true);
  });
});
