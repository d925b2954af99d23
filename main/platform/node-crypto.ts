/**
 * The node:crypto (OpenSSL) fast path behind main/core/crypto.ts (its `CryptoBackend`): the same curve maths as the
 * @noble reference, several times faster. Only maths run here; every strictness rule stays in crypto.ts, and each
 * function answers "yes" only where @noble would too (see crypto.ts `CryptoBackend`), so installing it changes no
 * result. test/vectors/wycheproof.test.ts runs every Wycheproof case through both, and
 * test/unit/platform/node-crypto.test.ts compares these raw functions with @noble case by case.
 *
 * Main process only (the CLI and the desktop app call `installNodeCrypto` at start); the renderer keeps @noble.
 */

import * as nodeCrypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { setCryptoBackend, type CryptoBackend } from '../core/crypto.js';

type NodeCryptoModule = typeof nodeCrypto;

/** PKCS#8 DER prefixes of raw Ed25519 / X25519 private keys (RFC 8410): the self-test's reference import. */
const ED25519_PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20);
const X25519_PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20);
/** 32 zero bytes, base64url: the placeholder `x` of a private JWK (see `okpPrivateKey`). */
const ZERO_X = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

type OkpCurve = 'Ed25519' | 'X25519';

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

function asBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function makeBackend(c: NodeCryptoModule): CryptoBackend {
  /**
   * A raw OKP private key. Keys are imported as JWK because OpenSSL 3's DER decoders cost ≈ 10× more than the raw
   * import Node uses for JWK. Node requires the JWK's `x` but builds the key from `d` alone (OpenSSL derives the
   * public half itself), so `x` is a placeholder; `selfTest` proves at load that the key, its public half and its
   * signatures equal those of the PKCS#8 import, and the backend is not used otherwise.
   */
  const okpPrivateKey = (crv: OkpCurve, d: Uint8Array): KeyObject =>
    c.createPrivateKey({ key: { kty: 'OKP', crv, d: b64url(d), x: ZERO_X }, format: 'jwk' });
  const okpPublicKey = (crv: OkpCurve, x: Uint8Array): KeyObject =>
    c.createPublicKey({ key: { kty: 'OKP', crv, x: b64url(x) }, format: 'jwk' });
  const rawPublic = (key: KeyObject): Uint8Array =>
    Uint8Array.from(Buffer.from(c.createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url'));
  return {
    name: 'node:crypto',
    ed25519PublicKey: (seed) => rawPublic(okpPrivateKey('Ed25519', seed)),
    ed25519Sign: (message, seed) => asBytes(c.sign(null, message, okpPrivateKey('Ed25519', seed))),
    ed25519Verify(signature, message, key) {
      try {
        return c.verify(null, message, okpPublicKey('Ed25519', key), signature);
      } catch {
        return false;
      }
    },
    x25519PublicKey: (secret) => rawPublic(okpPrivateKey('X25519', secret)),
    x25519: (secret, peer) => asBytes(c.diffieHellman({ privateKey: okpPrivateKey('X25519', secret), publicKey: okpPublicKey('X25519', peer) })),
    p256Verify(signature, message, point, format) {
      // Uncompressed points only (what our devices send); a compressed one is left to @noble.
      if (point.length !== 65 || point[0] !== 0x04) return false;
      // OpenSSL's P1363 conversion pads short halves; only the exact 64-byte form is r ‖ s.
      if (format === 'p1363' && signature.length !== 64) return false;
      try {
        // Node sets the JWK's affine coordinates with EC_KEY_set_public_key_affine_coordinates, which checks the point.
        const key = c.createPublicKey({
          key: { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33)) },
          format: 'jwk',
        });
        return c.verify('sha256', message, { key, dsaEncoding: format === 'der' ? 'der' : 'ieee-p1363' }, signature);
      } catch {
        return false;
      }
    },
    hmacSha256: (key, message) => asBytes(c.createHmac('sha256', key).update(message).digest()),
    };
}

/** The JWK shortcut must give exactly what the PKCS#8 import gives (keys, public halves, signatures). */
function selfTest(c: NodeCryptoModule, backend: CryptoBackend): boolean {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
  const reference = (prefix: Uint8Array): KeyObject => {
    const der = new Uint8Array(prefix.length + seed.length);
    der.set(prefix, 0);
    der.set(seed, prefix.length);
    return c.createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  };
  const edReference = reference(ED25519_PKCS8_PREFIX);
  const xReference = reference(X25519_PKCS8_PREFIX);
  const publicOf = (key: KeyObject): string => c.createPublicKey(key).export({ format: 'jwk' }).x!;
  const message = Uint8Array.of(1, 2, 3);
  const signature = backend.ed25519Sign(message, seed);
  return (
    b64url(backend.ed25519PublicKey(seed)) === publicOf(edReference) &&
    b64url(backend.x25519PublicKey(seed)) === publicOf(xReference) &&
    Buffer.from(signature).equals(c.sign(null, message, edReference)) &&
    backend.ed25519Verify(signature, message, backend.ed25519PublicKey(seed))
  );
}

/** The self-tested backend, or undefined where this Node lacks the algorithms or its JWK import changed. */
export const nodeCryptoBackend: CryptoBackend | undefined = (() => {
  const backend = makeBackend(nodeCrypto);
  try {
    return selfTest(nodeCrypto, backend) ? backend : undefined;
  } catch {
    return undefined;
  }
})();

/** Routes crypto.ts's maths to node:crypto; false (and @noble stays) where the backend is unavailable. */
export function installNodeCrypto(): boolean {
  if (nodeCryptoBackend === undefined) return false;
  setCryptoBackend(nodeCryptoBackend);
  return true;
}
