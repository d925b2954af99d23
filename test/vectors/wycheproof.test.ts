// Every case of the vendored Wycheproof files (wycheproof/README.md) through the project's own wrappers:
// main/core/crypto.ts (with each of its two backends, @noble and node:crypto) and main/store/aead.ts. "valid" must be accepted with the expected output, "invalid" refused.
// The only "acceptable" cases are X25519's, and the rule for them is asserted (so a library change is noticed):
//   - an all-zero shared secret (low-order public key) is refused with weak_key_exchange: a peer must not be able
//     to fix the handshake's key-derivation input;
//   - every other acceptable case (twist points, non-canonical u ≥ p, edge-case multiplications) gives exactly the
//     expected shared secret, as RFC 7748 specifies.
// Parameters a wrapper does not support are asserted as refused with a coded error, never skipped: AES-GCM with a
// 128/192-bit key or a nonce other than 96 bits, HMAC tags shorter than 256 bits, HKDF outputs above 8160 bytes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cryptoBackend,
  ed25519Verify,
  hkdfSha256,
  hmacSha256,
  hmacSha256Verify,
  p256Verify,
  setCryptoBackend,
  x25519,
} from '../../main/core/crypto.js';
import { nodeCryptoBackend } from '../../main/platform/node-crypto.js';
import { PalyraError } from '../../main/core/errors.js';
import { decryptWithNonce, encryptWithNonce, open } from '../../main/store/aead.js';

type Result = 'valid' | 'invalid' | 'acceptable';

interface Case {
  tcId: number;
  result: Result;
  flags: string[];
  [field: string]: unknown;
}

interface Group {
  tests: Case[];
  [field: string]: unknown;
}

interface Suite {
  numberOfTests: number;
  testGroups: Group[];
}

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'wycheproof');
const hex = (text: unknown): Uint8Array => Uint8Array.from(Buffer.from(text as string, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function load(file: string): { suite: Suite; cases: Array<{ group: Group; test: Case }> } {
  const suite = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Suite;
  const cases = suite.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
  // No case may go missing between the file and the assertions below.
  if (cases.length !== suite.numberOfTests) throw new Error(`${file}: ${cases.length} cases, header says ${suite.numberOfTests}`);
  return { suite, cases };
}

function count(cases: ReadonlyArray<{ test: Case }>): string {
  const by = (r: Result): number => cases.filter((c) => c.test.result === r).length;
  const acceptable = by('acceptable');
  return `${cases.length} cases: ${by('valid')} valid, ${by('invalid')} invalid${acceptable > 0 ? `, ${acceptable} acceptable` : ''}`;
}

/** 'ok' when `fn` returns, the PalyraError code when it throws one; anything else thrown fails the test. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    if (error instanceof PalyraError) return error.code;
    throw error;
  }
}

/** Runs `check` over `cases` and collects the tcIds that failed it, so one assertion reports all of them. */
function failing<T extends { test: Case }>(cases: readonly T[], check: (c: T) => boolean): number[] {
  return cases.filter((c) => !check(c)).map((c) => c.test.tcId);
}

function split<T extends { test: Case }>(cases: readonly T[]): Record<Result, T[]> {
  return {
    valid: cases.filter((c) => c.test.result === 'valid'),
    invalid: cases.filter((c) => c.test.result === 'invalid'),
    acceptable: cases.filter((c) => c.test.result === 'acceptable'),
  };
}

// The curve and hash suites run once per backend (crypto.ts): the @noble reference and the node:crypto fast path
// must give the same answer on every case.
const BACKENDS = [
  ['noble', null],
  ['node:crypto', nodeCryptoBackend ?? null],
] as const;

for (const [name, backend] of BACKENDS) describe(`${name} backend`, () => {
  beforeAll(() => {
    setCryptoBackend(backend);
  });
  afterAll(() => {
    setCryptoBackend(null);
  });
  it('is the backend in use', () => {
    expect(cryptoBackend()).toBe(name);
  });

  {
    const file = 'ed25519_test.json';
    const { cases } = load(file);
    const { valid, invalid, acceptable } = split(cases);
    const verify = ({ group, test }: { group: Group; test: Case }): boolean =>
      ed25519Verify(hex(test.sig), hex(test.msg), hex((group.publicKey as { pk: string }).pk));

    describe(`Wycheproof ${file} (${count(cases)}) through ed25519Verify`, () => {
      it(`accepts all ${valid.length} valid signatures`, () => {
        expect(failing(valid, verify)).toEqual([]);
      });
      it(`refuses all ${invalid.length} invalid signatures (malleable S, non-canonical points, truncation, garbage)`, () => {
        expect(failing(invalid, (c) => !verify(c))).toEqual([]);
      });
      it('has no acceptable cases', () => {
        expect(acceptable).toEqual([]);
      });
    });
  }

  {
    const file = 'x25519_test.json';
    const { cases } = load(file);
    const { valid, invalid, acceptable } = split(cases);
    const zero = '00'.repeat(32);
    const run = ({ test }: { test: Case }): string => {
      let shared: Uint8Array | undefined;
      const result = outcome(() => {
        shared = x25519(hex(test.private), hex(test.public));
      });
      return result === 'ok' ? toHex(shared!) : `refused:${result}`;
    };
    const zeroShared = acceptable.filter((c) => c.test.shared === zero);
    const otherAcceptable = acceptable.filter((c) => c.test.shared !== zero);

    describe(`Wycheproof ${file} (${count(cases)}) through x25519`, () => {
      it(`computes the expected shared secret for all ${valid.length} valid cases`, () => {
        expect(failing(valid, (c) => run(c) === c.test.shared)).toEqual([]);
      });
      it('has no invalid cases', () => {
        expect(invalid).toEqual([]);
      });
      it(`acceptable, all-zero shared secret: refuses all ${zeroShared.length} with weak_key_exchange`, () => {
        expect(zeroShared.length).toBeGreaterThan(0);
        expect(failing(zeroShared, (c) => run(c) === 'refused:weak_key_exchange')).toEqual([]);
        expect(failing(zeroShared, (c) => c.test.flags.includes('LowOrderPublic'))).toEqual([]);
      });
      it(`acceptable, non-zero shared secret (twist, non-canonical u, edge cases): all ${otherAcceptable.length} give the expected output`, () => {
        expect(failing(otherAcceptable, (c) => run(c) === c.test.shared)).toEqual([]);
      });
    });
  }

  for (const [file, format] of [
    ['ecdsa_secp256r1_sha256_test.json', 'der'],
    ['ecdsa_secp256r1_sha256_p1363_test.json', 'p1363'],
  ] as const) {
    const { cases } = load(file);
    const { valid, invalid, acceptable } = split(cases);
    const verify = ({ group, test }: { group: Group; test: Case }): boolean =>
      p256Verify(hex(test.sig), hex(test.msg), hex((group.publicKey as { uncompressed: string }).uncompressed), format);

    describe(`Wycheproof ${file} (${count(cases)}) through p256Verify(${format})`, () => {
      it('uses P-256 with SHA-256 throughout', () => {
        const groups = new Set(cases.map(({ group }) => `${(group.publicKey as { curve: string }).curve}/${group.sha as string}`));
        expect([...groups]).toEqual(['secp256r1/SHA-256']);
      });
      it(`accepts all ${valid.length} valid signatures (high S included)`, () => {
        expect(failing(valid, verify)).toEqual([]);
      });
      it(`refuses all ${invalid.length} invalid signatures (${format === 'der' ? 'BER and other non-strict DER, ' : ''}out-of-range r/s, wrong values)`, () => {
        expect(failing(invalid, (c) => !verify(c))).toEqual([]);
      });
      it('has no acceptable cases', () => {
        expect(acceptable).toEqual([]);
      });
    });
  }

  {
    const file = 'hkdf_sha256_test.json';
    const { cases } = load(file);
    const { valid, invalid, acceptable } = split(cases);
    const derive = ({ test }: { test: Case }): Uint8Array => hkdfSha256(hex(test.ikm), hex(test.salt), hex(test.info), test.size as number);

    describe(`Wycheproof ${file} (${count(cases)}) through hkdfSha256`, () => {
      it(`derives the expected output for all ${valid.length} valid cases (up to 8160 bytes)`, () => {
        expect(failing(valid, (c) => toHex(derive(c)) === c.test.okm)).toEqual([]);
      });
      it(`refuses all ${invalid.length} invalid cases (output above 255 × 32 bytes) with invalid_argument`, () => {
        expect(failing(invalid, (c) => c.test.flags.includes('SizeTooLarge') && outcome(() => derive(c)) === 'invalid_argument')).toEqual([]);
      });
      it('has no acceptable cases', () => {
        expect(acceptable).toEqual([]);
      });
    });
  }

  {
    const file = 'hmac_sha256_test.json';
    const { cases } = load(file);
    const full = cases.filter(({ group }) => group.tagSize === 256);
    const truncated = cases.filter(({ group }) => group.tagSize !== 256);
    const { valid, invalid, acceptable } = split(full);
    const args = ({ test }: { test: Case }): [Uint8Array, Uint8Array, Uint8Array] => [hex(test.key), hex(test.msg), hex(test.tag)];

    describe(`Wycheproof ${file} (${count(cases)}) through hmacSha256 / hmacSha256Verify`, () => {
      it(`256-bit tags: computes and verifies all ${valid.length} valid cases (any key length)`, () => {
        expect(failing(valid, (c) => toHex(hmacSha256(hex(c.test.key), hex(c.test.msg))) === c.test.tag && hmacSha256Verify(...args(c)))).toEqual([]);
      });
      it(`256-bit tags: refuses all ${invalid.length} invalid tags`, () => {
        expect(failing(invalid, (c) => !hmacSha256Verify(...args(c)))).toEqual([]);
      });
      it(`truncated tags, refused by design: all ${truncated.length} (${count(truncated)}) throw invalid_argument`, () => {
        expect(truncated.length).toBeGreaterThan(0);
        expect(failing(truncated, (c) => outcome(() => hmacSha256Verify(...args(c))) === 'invalid_argument')).toEqual([]);
        // The full tag still begins with every valid truncated one: only the length is refused.
        const truncatedValid = truncated.filter((c) => c.test.result === 'valid');
        expect(failing(truncatedValid, (c) => toHex(hmacSha256(hex(c.test.key), hex(c.test.msg))).startsWith(c.test.tag as string))).toEqual([]);
      });
      it('has no acceptable cases', () => {
        expect(acceptable).toEqual([]);
      });
    });
  }
});

{
  const file = 'aes_gcm_test.json';
  const { cases } = load(file);
  const supported = cases.filter(({ group }) => group.keySize === 256 && group.ivSize === 96 && group.tagSize === 128);
  const unsupported = cases.filter((c) => !supported.includes(c));
  const { valid, invalid, acceptable } = split(supported);
  type AeadCase = { test: Case };
  const parts = ({ test }: AeadCase) => ({
    key: hex(test.key),
    iv: hex(test.iv),
    aad: hex(test.aad),
    msg: hex(test.msg),
    sealedBody: hex(`${test.ct as string}${test.tag as string}`),
  });

  describe(`Wycheproof ${file} (${count(cases)}) through main/store/aead.ts`, () => {
    it(`AES-256, 96-bit nonce: seals and opens all ${valid.length} valid cases byte for byte`, () => {
      expect(
        failing(valid, (c) => {
          const { key, iv, aad, msg, sealedBody } = parts(c);
          const opened = decryptWithNonce(key, iv, sealedBody, aad);
          const viaOpen = open(key, Uint8Array.from([...iv, ...sealedBody]), aad);
          return toHex(encryptWithNonce(key, iv, msg, aad)) === toHex(sealedBody) && toHex(opened) === toHex(msg) && toHex(viaOpen) === toHex(msg);
        }),
      ).toEqual([]);
    });
    it(`AES-256, 96-bit nonce: refuses all ${invalid.length} invalid cases with cryptographic`, () => {
      expect(
        failing(invalid, (c) => {
          const { key, iv, aad, sealedBody } = parts(c);
          return outcome(() => decryptWithNonce(key, iv, sealedBody, aad)) === 'cryptographic';
        }),
      ).toEqual([]);
    });
    it(`other key or nonce sizes, refused by design: all ${unsupported.length} (${count(unsupported)}) throw invalid_argument`, () => {
      expect(unsupported.every(({ group }) => group.tagSize === 128)).toBe(true);
      expect(
        failing(unsupported, (c) => {
          const { key, iv, aad, msg, sealedBody } = parts(c);
          return outcome(() => encryptWithNonce(key, iv, msg, aad)) === 'invalid_argument' && outcome(() => decryptWithNonce(key, iv, sealedBody, aad)) === 'invalid_argument';
        }),
      ).toEqual([]);
    });
    it('has no acceptable cases', () => {
      expect(acceptable).toEqual([]);
    });
  });
}
