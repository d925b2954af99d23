// The node:crypto backend (main/platform/node-crypto.ts) against the @noble reference: the raw OpenSSL answers on every
// Wycheproof case (an OpenSSL accept must imply @noble's accept, which is what lets crypto.ts ask @noble about a
// refusal), the byte-level Ed25519 pre-checks against @noble's point decoding on every edge encoding, and a
// mixed-order Ed25519 key where OpenSSL (cofactorless) and @noble (cofactored) differ, answered as @noble does.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 as curvesEd25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cryptoBackend,
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  hkdfSha256,
  hmacSha256,
  isEd25519PublicKey,
  p256Verify,
  setCryptoBackend,
  x25519,
  x25519PublicKey,
} from '../../../main/core/crypto.js';
import { installNodeCrypto, nodeCryptoBackend } from '../../../main/platform/node-crypto.js';
import { codeOf } from '../../helpers/errors.js';

const wycheproof = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../vectors/wycheproof');
interface Case {
  tcId: number;
  result: string;
  [field: string]: unknown;
}
interface Group {
  tests: Case[];
  [field: string]: unknown;
}
const load = (file: string): Array<{ group: Group; test: Case }> =>
  (JSON.parse(readFileSync(path.join(wycheproof, file), 'utf8')) as { testGroups: Group[] }).testGroups.flatMap((group) =>
    group.tests.map((test) => ({ group, test })),
  );
const hex = (text: unknown): Uint8Array => Uint8Array.from(Buffer.from(text as string, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

type BackendName = 'noble' | 'node';
const raw = nodeCryptoBackend!;
const useCryptoBackend = (name: BackendName): void => {
  setCryptoBackend(name === 'node' ? raw : null);
};

/** The answer of `fn` under `backend`: its value, or `throws:<code>`. */
function under<T>(backend: BackendName, fn: () => T): T | string {
  useCryptoBackend(backend);
  try {
    return fn();
  } catch (error) {
    return `throws:${codeOf(() => {
      throw error;
    })}`;
  } finally {
    setCryptoBackend(null);
  }
}

/** Both backends give the same answer for `fn`. */
function same<T>(fn: () => T): { noble: T | string; node: T | string } {
  const show = (value: T | string): T | string => (value instanceof Uint8Array ? toHex(value) : value);
  return { noble: show(under('noble', fn)), node: show(under('node', fn)) };
}

afterEach(() => {
  setCryptoBackend(null);
});

describe('node:crypto backend', () => {
  it('passes its self-test on this Node; @noble is the default until a main-process entry point installs it', () => {
    expect(raw).toBeDefined();
    expect(cryptoBackend()).toBe('noble');
    expect(installNodeCrypto()).toBe(true);
    expect(cryptoBackend()).toBe('node:crypto');
    setCryptoBackend(null);
    expect(cryptoBackend()).toBe('noble');
  });

  it('the palyra CLI installs it before running a command', async () => {
    const { main } = await import('../../../main/cli/main.js');
    expect(cryptoBackend()).toBe('noble');
    const code = await main(['--help'], { streams: { stdout: () => undefined, stderr: () => undefined, stdoutIsTty: false } });
    expect(code).toBe(0);
    expect(cryptoBackend()).toBe('node:crypto');
  });

  it('Ed25519 raw: every OpenSSL accept on Wycheproof is a @noble accept, and they agree on every case', () => {
    const disagree = load('ed25519_test.json').filter(({ group, test }) => {
      const [sig, msg, pk] = [hex(test.sig), hex(test.msg), hex((group.publicKey as { pk: string }).pk)];
      const node = sig.length === 64 && pk.length === 32 && raw.ed25519Verify(sig, msg, pk);
      const noble = under('noble', () => ed25519Verify(sig, msg, pk));
      return node !== noble;
    });
    expect(disagree.map((c) => c.test.tcId)).toEqual([]);
  });

  it('P-256 raw: every OpenSSL accept on Wycheproof (DER and P1363) is a @noble accept, and they agree on every case', () => {
    for (const [file, format] of [
      ['ecdsa_secp256r1_sha256_test.json', 'der'],
      ['ecdsa_secp256r1_sha256_p1363_test.json', 'p1363'],
    ] as const) {
      const disagree = load(file).filter(({ group, test }) => {
        const [sig, msg, pk] = [hex(test.sig), hex(test.msg), hex((group.publicKey as { uncompressed: string }).uncompressed)];
        return raw.p256Verify(sig, msg, pk, format) !== under('noble', () => p256Verify(sig, msg, pk, format));
      });
      expect(disagree.map((c) => `${format}:${c.test.tcId}`)).toEqual([]);
    }
  });

  it('X25519 raw: OpenSSL gives @noble\'s shared secret on every Wycheproof case, and refuses exactly the all-zero ones', () => {
    const disagree = load('x25519_test.json').filter(({ test }) => {
      const [priv, pub] = [hex(test.private), hex(test.public)];
      let node: string;
      try {
        node = toHex(raw.x25519(priv, pub));
      } catch {
        node = 'refused';
      }
      const noble = under('noble', () => toHex(x25519(priv, pub)));
      return (noble === 'throws:weak_key_exchange' ? 'refused' : noble) !== (node === '00'.repeat(32) ? 'refused' : node);
    });
    expect(disagree.map((c) => c.test.tcId)).toEqual([]);
  });

  it('the Ed25519 byte pre-checks agree with @noble on every edge encoding of the key and of S', () => {
    const p = 2n ** 255n - 19n;
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const le = (value: bigint, sign = 0): Uint8Array => {
      const out = new Uint8Array(32);
      for (let i = 0, v = value; i < 32; i++, v >>= 8n) out[i] = Number(v & 0xffn);
      out[31]! |= sign << 7;
      return out;
    };
    const order8 = ed.Point.fromBytes(hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'));
    const torsion = Array.from({ length: 8 }, (_, i) => (i === 0 ? ed.Point.ZERO : order8.multiply(BigInt(i))).toBytes());
    const keys: Uint8Array[] = [...torsion];
    // Every non-canonical y (p … 2^255 − 1) with both signs, the small-order y values with both signs, y = 2..9.
    for (let y = p; y < 2n ** 255n; y++) keys.push(le(y), le(y, 1));
    for (const t of torsion) keys.push(Uint8Array.from(t, (b, i) => (i === 31 ? b ^ 0x80 : b)));
    for (let y = 2n; y < 10n; y++) keys.push(le(y), le(y, 1));
    const seed = new Uint8Array(32).fill(3);
    const good = ed25519PublicKey(seed);
    keys.push(good);
    const message = Uint8Array.of(9, 9);
    const valid = ed25519Sign(message, seed);
    // S = L, L + 1, 2^256 − 1, L − 1 (in range, wrong value) with the valid R.
    const signatures = [valid, ...[L, L + 1n, 2n ** 256n - 1n, L - 1n].map((s) => Uint8Array.of(...valid.subarray(0, 32), ...le(s & (2n ** 256n - 1n))))];
    // @noble's own small-order forgery: R = identity, S = 0.
    signatures.push(Uint8Array.of(...torsion[0]!, ...new Uint8Array(32)));
    const disagree: string[] = [];
    for (const key of keys) {
      for (const signature of signatures) {
        const answers = same(() => ed25519Verify(signature, message, key));
        if (answers.noble !== answers.node) disagree.push(`${toHex(key)}/${toHex(signature)}`);
      }
      const decoded = same(() => isEd25519PublicKey(key));
      if (decoded.noble !== decoded.node) disagree.push(`isEd25519PublicKey ${toHex(key)}`);
    }
    expect(disagree).toEqual([]);
    expect(same(() => ed25519Verify(valid, message, good))).toEqual({ noble: true, node: true });
    for (const t of torsion) expect(under('noble', () => isEd25519PublicKey(t))).toBe(false);
  });

  it('a mixed-order key (large order, with a torsion part): OpenSSL refuses what @noble accepts, and ed25519Verify answers as @noble', () => {
    const order8 = ed.Point.fromBytes(hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'));
    const L = ed.Point.CURVE().n;
    const le = (bytes: Uint8Array): bigint => BigInt(`0x${toHex(Uint8Array.from(bytes).reverse()) || '0'}`);
    const toLe = (value: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((value >> BigInt(8 * i)) & 0xffn));
    const a = 123456789123456789n;
    const A = ed.Point.BASE.multiply(a).add(order8).toBytes();
    const message = Uint8Array.of(1, 2, 3);
    let found = false;
    for (let r = 5n; r < 64n && !found; r++) {
      const R = ed.Point.BASE.multiply(r).toBytes();
      const k = le(sha512(Uint8Array.of(...R, ...A, ...message))) % L;
      if (k % 8n === 0n) continue; // then the torsion part cancels and both equations hold
      const signature = Uint8Array.of(...R, ...toLe((r + k * a) % L));
      expect(curvesEd25519.verify(signature, message, A, { zip215: false })).toBe(true);
      expect(raw.ed25519Verify(signature, message, A)).toBe(false);
      expect(same(() => ed25519Verify(signature, message, A))).toEqual({ noble: true, node: true });
      found = true;
    }
    expect(found).toBe(true);
  });

  it('random keys and messages: Ed25519, X25519, HKDF and HMAC give byte-identical results on both backends', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (s1, s2, message) => {
        expect(same(() => ed25519PublicKey(s1))).toEqual(same(() => curvesEd25519.getPublicKey(s1)));
        const pk = same(() => ed25519PublicKey(s1));
        expect(pk.node).toBe(pk.noble);
        const sig = same(() => ed25519Sign(message, s1));
        expect(sig.node).toBe(sig.noble);
        expect(same(() => ed25519Verify(hex(sig.noble), message, hex(pk.noble)))).toEqual({ noble: true, node: true });
        const tampered = Uint8Array.from(message.length === 0 ? [1] : message, (b, i) => (i === 0 ? b ^ 1 : b));
        expect(same(() => ed25519Verify(hex(sig.noble), tampered, hex(pk.noble)))).toEqual({ noble: false, node: false });
        const xp = same(() => x25519PublicKey(s2));
        expect(xp.node).toBe(xp.noble);
        const shared = same(() => x25519(s1, hex(xp.noble)));
        expect(shared.node).toBe(shared.noble);
        const okm = same(() => hkdfSha256(s1, s2, message, 1 + (message.length % 100)));
        expect(okm.node).toBe(okm.noble);
        const tag = same(() => hmacSha256(s2, message));
        expect(tag.node).toBe(tag.noble);
      }),
      { numRuns: 30 },
    );
  });

  it('P-256: random signatures, high S and compressed keys verify on both backends; wrong messages do not', () => {
    const sk = p256.utils.randomSecretKey();
    const message = Uint8Array.of(5, 6, 7);
    for (const format of ['der', 'compact'] as const) {
      const signature = p256.sign(message, sk, { format, prehash: true });
      const ours = format === 'der' ? 'der' : 'p1363';
      for (const key of [p256.getPublicKey(sk, false), p256.getPublicKey(sk, true)]) {
        expect(same(() => p256Verify(signature, message, key, ours))).toEqual({ noble: true, node: true });
        expect(same(() => p256Verify(signature, Uint8Array.of(5, 6), key, ours))).toEqual({ noble: false, node: false });
      }
      const sig = p256.Signature.fromBytes(p256.sign(message, sk, { format: 'compact', prehash: true }), 'compact');
      const high = new p256.Signature(sig.r, p256.Point.CURVE().n - sig.s).toBytes(format);
      expect(same(() => p256Verify(high, message, p256.getPublicKey(sk, false), ours))).toEqual({ noble: true, node: true });
    }
  });

  it('the wrappers\' argument errors are the same on both backends', () => {
    for (const fn of [
      () => ed25519PublicKey(new Uint8Array(31)),
      () => ed25519Sign(new Uint8Array(1), new Uint8Array(33)),
      () => x25519PublicKey(new Uint8Array(0)),
      () => x25519(new Uint8Array(32).fill(5), new Uint8Array(32)),
      () => hkdfSha256(new Uint8Array(1), new Uint8Array(0), new Uint8Array(0), 8161),
      () => hmacSha256('key' as unknown as Uint8Array, new Uint8Array(0)),
    ]) {
      const answers = same(fn);
      expect(answers.node).toBe(answers.noble);
      expect(String(answers.noble)).toMatch(/^throws:/);
    }
  });
});
