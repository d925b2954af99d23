// Device certificates built as DER (main/core/x509-build.ts) are the certificates @peculiar/x509 built before, byte
// for byte in everything that is signed: the same TBSCertificate re-made with the library from the issued
// certificate's serial, times and key must be identical, for UTCTime and GeneralizedTime years alike; the device's
// CSR is the library's CertificationRequestInfo byte for byte; and the lean CSR check (verifyCsr) agrees with the
// full parse.
import 'reflect-metadata';
import { X509Certificate as NodeCertificate } from 'node:crypto';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequestGenerator,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../../main/core/certificate-authority.js';
import { pemToDer } from '../../../main/core/pem.js';
import { createCertificateSigningRequest, parseAndVerifyCsr, verifyCsr } from '../../../main/core/csr.js';
import { derChildren } from '../../../main/core/der.js';
import { p1363ToDer } from '../../../main/core/x509-build.js';
import { generateP256KeyPair, importPrivateKeyPem, P256_KEY_ALGORITHM, P256_SIGNING_ALGORITHM } from '../../../main/core/x509-keys.js';
import { codeOf } from '../../helpers/errors.js';

const DEVICE_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

async function rebuiltWithLibrary(caPem: string, caKeyPem: string, leafPem: string): Promise<Uint8Array> {
  const caCert = new X509Certificate(caPem);
  const leaf = new X509Certificate(leafPem);
  const keys = await importPrivateKeyPem(caKeyPem);
  const publicKey = await globalThis.crypto.subtle.importKey('spki', new Uint8Array(leaf.publicKey.rawData), P256_KEY_ALGORITHM, true, ['verify']);
  const rebuilt = await X509CertificateGenerator.create(
    {
      serialNumber: leaf.serialNumber,
      subject: [{ CN: [`Palyra Device ${DEVICE_ID}`] }, { O: ['Palyra'] }],
      issuer: caCert.subjectName,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: P256_SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth]),
        new SubjectAlternativeNameExtension([{ type: 'url', value: `urn:palyra:device:${DEVICE_ID}` }]),
        await SubjectKeyIdentifierExtension.create(publicKey, false, globalThis.crypto),
        new AuthorityKeyIdentifierExtension(caCert.getExtension(SubjectKeyIdentifierExtension)!.keyId),
      ],
    },
    globalThis.crypto,
  );
  return derChildren(new Uint8Array(rebuilt.rawData))![0]!;
}

describe('device certificates built as DER', () => {
  for (const [label, now, validityMs] of [
    ['UTCTime (2026)', Date.UTC(2026, 0, 15, 12, 30, 45, 678), undefined],
    ['GeneralizedTime notAfter (2049 → 2050)', Date.UTC(2049, 11, 31, 12, 0, 0), 3 * 86_400_000],
  ] as const) {
    it(`sign exactly the TBSCertificate @peculiar/x509 builds for the same inputs: ${label}`, async () => {
      const stored = await createCertificateAuthority({ now });
      const ca = await CertificateAuthority.load(stored);
      const keys = await generateP256KeyPair();
      const csrDer = await createCertificateSigningRequest({ keys, deviceId: DEVICE_ID });
      const issued = await ca.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now, ...(validityMs === undefined ? {} : { validityMs }) });
      const der = pemToDer(issued.certificatePem, 'CERTIFICATE');
      const tbs = derChildren(der)![0]!;
      expect(tbs).toEqual(await rebuiltWithLibrary(stored.certificatePem, stored.privateKeyPem, issued.certificatePem));
      // A valid certificate: OpenSSL parses it, the CA's key verifies it, and the returned facts are its own.
      const node = new NodeCertificate(der);
      expect(node.verify(new NodeCertificate(stored.certificatePem).publicKey)).toBe(true);
      expect(node.subject).toBe(`CN=Palyra Device ${DEVICE_ID}\nO=Palyra`);
      expect(node.subjectAltName).toBe(`URI:urn:palyra:device:${DEVICE_ID}`);
      expect(node.serialNumber.toLowerCase()).toBe(issued.serialHex);
      expect(new Date(node.validTo).getTime()).toBe(issued.expiresAtUnixMs);
      expect(new Date(node.validFrom).getTime()).toBe(issued.issuedAtUnixMs);
      expect(await ca.hasIssued(issued.certificatePem)).toBe(true);
      // The certified key is the CSR's.
      expect(new Uint8Array(new X509Certificate(Uint8Array.from(der)).publicKey.rawData)).toEqual(verifyCsr(csrDer).spkiDer);
    });
  }

  it('a device CSR is the CertificationRequestInfo @peculiar/x509\'s generator writes for the same key, and verifies', async () => {
    const keys = await generateP256KeyPair();
    const ours = await createCertificateSigningRequest({ keys, deviceId: DEVICE_ID });
    const library = await Pkcs10CertificateRequestGenerator.create(
      {
        name: [{ CN: [`Palyra Device ${DEVICE_ID}`] }, { O: ['Palyra'] }],
        keys,
        signingAlgorithm: P256_SIGNING_ALGORITHM,
        extensions: [new SubjectAlternativeNameExtension([{ type: 'url', value: `urn:palyra:device:${DEVICE_ID}` }])],
      },
      globalThis.crypto,
    );
    expect(derChildren(ours)![0]).toEqual(derChildren(new Uint8Array(library.rawData))![0]);
    expect(derChildren(ours)![1]).toEqual(derChildren(new Uint8Array(library.rawData))![1]);
    expect((await parseAndVerifyCsr(ours)).subject).toBe(`CN=Palyra Device ${DEVICE_ID}, O=Palyra`);
  });

  it('p1363ToDer writes minimal INTEGERs (a leading 0x00 only before a set high bit; leading zeros dropped)', () => {
    const sig = new Uint8Array(64);
    sig[0] = 0x80;
    sig[63] = 0x01;
    expect(Buffer.from(p1363ToDer(sig)).toString('hex')).toBe(`302602210080${'00'.repeat(31)}020101`);
    expect(codeOf(() => p1363ToDer(new Uint8Array(63)))).toBe('cryptographic');
  });

  it('verifyCsr agrees with parseAndVerifyCsr on the key, and refuses what it refuses', async () => {
    const keys = await generateP256KeyPair();
    const csrDer = await createCertificateSigningRequest({ keys, deviceId: DEVICE_ID });
    const lean = verifyCsr(csrDer);
    const full = await parseAndVerifyCsr(csrDer);
    expect(lean.spkiDer).toEqual(full.spkiDer);
    expect(lean.publicPoint).toEqual(new Uint8Array(await globalThis.crypto.subtle.exportKey('raw', keys.publicKey)));
    const tampered = Uint8Array.from(csrDer);
    tampered[40]! ^= 1;
    expect(codeOf(() => verifyCsr(tampered))).toBe('csr_invalid');
    expect(codeOf(() => verifyCsr(new Uint8Array([...csrDer, 0])))).toBe('csr_invalid');
    expect(codeOf(() => verifyCsr(new Uint8Array(0)))).toBe('csr_invalid');
  });
});
