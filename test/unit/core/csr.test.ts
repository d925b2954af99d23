// PKCS#10 requests the device sends with CompletePairingSession (PROTOCOL.md §2, §4): only a P-256 key with a valid
// self-signature is accepted.
import 'reflect-metadata';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCertificateSigningRequest, MAX_CSR_DER_BYTES, parseAndVerifyCsr } from '../../../main/core/csr.js';
import { isPalyraError, type ErrorCode } from '../../../main/core/errors.js';
import { exportSpkiDer, generateP256KeyPair } from '../../../main/core/x509-keys.js';

const DEVICE_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
/** The openssl CLI serves only as an independent CSR producer; without it that one test is skipped. */
const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0;

async function expectCode(promise: Promise<unknown>, code: ErrorCode, message?: string): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isPalyraError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
  if (message !== undefined) expect((error as Error).message).toContain(message);
}

/** A CSR for another key type, made with the library directly (our own API refuses to make one). */
async function foreignCsr(algorithm: EcKeyGenParams | Algorithm, signing: Algorithm | EcdsaParams): Promise<Uint8Array> {
  const keys = (await globalThis.crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await Pkcs10CertificateRequestGenerator.create({ name: 'CN=foreign', keys, signingAlgorithm: signing }, globalThis.crypto);
  return new Uint8Array(csr.rawData);
}

describe('createCertificateSigningRequest + parseAndVerifyCsr', () => {
  it('round-trips: the verified key is the device key and the subject names the device', async () => {
    const keys = await generateP256KeyPair();
    const der = await createCertificateSigningRequest({ keys, deviceId: DEVICE_ID });
    const verified = await parseAndVerifyCsr(der);

    expect(verified.spkiDer).toEqual(await exportSpkiDer(keys.publicKey));
    expect(new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', verified.publicKey))).toEqual(verified.spkiDer);
    expect(verified.subject).toContain(`CN=Palyra Device ${DEVICE_ID}`);
    expect(verified.subject).toContain('O=Palyra');
  });

  it.skipIf(!HAS_OPENSSL)('accepts a P-256 CSR made by the openssl command line (interoperability)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'palyra-csr-'));
    try {
      const key = path.join(dir, 'key.pem');
      const csr = path.join(dir, 'csr.der');
      execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
      execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/CN=from-openssl', '-sha256', '-outform', 'DER', '-out', csr]);

      const verified = await parseAndVerifyCsr(new Uint8Array(readFileSync(csr)));

      expect(verified.subject).toBe('CN=from-openssl');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to make a CSR for a non-canonical device id or a non-P-256 key', async () => {
    const keys = await generateP256KeyPair();
    const p384 = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);

    await expectCode(createCertificateSigningRequest({ keys, deviceId: 'short' }), 'invalid_canonical_id');
    await expectCode(createCertificateSigningRequest({ keys: p384, deviceId: DEVICE_ID }), 'invalid_key_material');
  });
});

describe('parseAndVerifyCsr refuses', () => {
  it('a CSR whose signature has one flipped bit', async () => {
    const der = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: DEVICE_ID });
    const tampered = der.slice();
    tampered[tampered.length - 1]! ^= 0x01;

    await expectCode(parseAndVerifyCsr(tampered), 'csr_invalid', 'does not verify');
  });

  it('a CSR whose signed content was altered', async () => {
    const der = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: DEVICE_ID });
    const text = Buffer.from(der);
    const at = text.indexOf(DEVICE_ID);
    expect(at).toBeGreaterThan(0);
    const tampered = new Uint8Array(text);
    tampered[at] = '7'.charCodeAt(0);

    await expectCode(parseAndVerifyCsr(tampered), 'csr_invalid', 'does not verify');
  });

  it('a CSR with an Ed25519 key', async () => {
    await expectCode(parseAndVerifyCsr(await foreignCsr({ name: 'Ed25519' }, { name: 'Ed25519' })), 'csr_invalid');
  });

  it('a CSR with a P-384 key, even when signed with SHA-256', async () => {
    const p384 = { name: 'ECDSA', namedCurve: 'P-384' };

    await expectCode(parseAndVerifyCsr(await foreignCsr(p384, { name: 'ECDSA', hash: 'SHA-256' })), 'csr_invalid', 'P-256');
    await expectCode(parseAndVerifyCsr(await foreignCsr(p384, { name: 'ECDSA', hash: 'SHA-384' })), 'csr_invalid');
  });

  it('a P-256 CSR signed with SHA-384 instead of SHA-256', async () => {
    const der = await foreignCsr({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-384' });

    await expectCode(parseAndVerifyCsr(der), 'csr_invalid', 'ecdsa-with-SHA256');
  });

  it('trailing bytes after the CSR', async () => {
    const der = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: DEVICE_ID });

    await expectCode(parseAndVerifyCsr(new Uint8Array([...der, 0x00])), 'csr_invalid');
  });

  it('empty, oversized and non-CSR input', async () => {
    await expectCode(parseAndVerifyCsr(new Uint8Array(0)), 'csr_invalid');
    await expectCode(parseAndVerifyCsr(new Uint8Array(MAX_CSR_DER_BYTES + 1)), 'csr_invalid');
    await expectCode(parseAndVerifyCsr(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])), 'csr_invalid');
  });

  it('arbitrary bytes, always as csr_invalid and never another error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), async (bytes) => {
        await expectCode(parseAndVerifyCsr(bytes), 'csr_invalid');
      }),
      { numRuns: 200 },
    );
  });

  it('every single-byte corruption of a valid CSR, including the unsigned signature framing', async () => {
    const der = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: DEVICE_ID });
    for (let index = 0; index < der.length; index++) {
      for (const mask of [0x01, 0xff]) {
        const corrupted = der.slice();
        corrupted[index]! ^= mask;
        await expectCode(parseAndVerifyCsr(corrupted), 'csr_invalid');
      }
    }
  });
});
