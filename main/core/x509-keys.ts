/**
 * ECDSA P-256 keys for TLS (PROTOCOL.md §2: Electron's BoringSSL cannot verify Ed25519 certificates), as WebCrypto
 * keys and PKCS#8 PEM, the form the reference stores and Node's TLS loads.
 */

import { PalyraError } from './errors.js';
import { encodePem, pemToDer, PRIVATE_KEY_PEM_LABEL } from './pem.js';

export const P256_KEY_ALGORITHM: EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };
/** What certificates, CSRs and CRLs are signed with: ecdsa-with-SHA256. */
export const P256_SIGNING_ALGORITHM: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export function subtleCrypto(): SubtleCrypto {
  return globalThis.crypto.subtle;
}

export function isP256Key(key: CryptoKey): boolean {
  const algorithm = key.algorithm as Partial<EcKeyAlgorithm>;
  return algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256';
}

function requireP256(key: CryptoKey, type: KeyType): void {
  if (key.type !== type || !isP256Key(key)) {
    throw new PalyraError('invalid_key_material', `expected an ECDSA P-256 ${type} key`, {
      details: { type: key.type, algorithm: key.algorithm.name },
    });
  }
}

/** Extractable, so the private key can be written to the keychain or the encrypted store as PKCS#8. */
export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return subtleCrypto().generateKey(P256_KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  requireP256(key, 'private');
  if (!key.extractable) throw new PalyraError('invalid_key_material', 'private key is not extractable');
  const der = new Uint8Array(await subtleCrypto().exportKey('pkcs8', key));
  return encodePem(der, PRIVATE_KEY_PEM_LABEL);
}

/** SubjectPublicKeyInfo DER of a P-256 public key. */
export async function exportSpkiDer(publicKey: CryptoKey): Promise<Uint8Array> {
  requireP256(publicKey, 'public');
  return new Uint8Array(await subtleCrypto().exportKey('spki', publicKey));
}

/** Imports a PKCS#8 P-256 key and derives its public half (WebCrypto has no direct private → public call). */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKeyPair> {
  const der = pemToDer(pem, PRIVATE_KEY_PEM_LABEL);
  const subtle = subtleCrypto();
  let privateKey: CryptoKey;
  let jwk: JsonWebKey;
  try {
    privateKey = await subtle.importKey('pkcs8', new Uint8Array(der), P256_KEY_ALGORITHM, true, ['sign']);
    jwk = await subtle.exportKey('jwk', privateKey);
  } catch (cause) {
    throw new PalyraError('private_key_parsing_failed', 'private key is not a PKCS#8 ECDSA P-256 key', { cause });
  }
  if (jwk.x === undefined || jwk.y === undefined) {
    throw new PalyraError('private_key_parsing_failed', 'private key has no public point');
  }
  const publicKey = await subtle.importKey(
    'jwk',
    { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true },
    P256_KEY_ALGORITHM,
    true,
    ['verify'],
  );
  return { privateKey, publicKey };
}
