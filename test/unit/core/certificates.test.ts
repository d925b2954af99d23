// Reading certificates and keys: fingerprints, pins, parsing failures, rotation timing, PEM/DER/IP helpers.
import 'reflect-metadata';
import { createHash, createPrivateKey, X509Certificate as NodeCertificate } from 'node:crypto';
import { X509CertificateGenerator } from '@peculiar/x509';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, SERVER_CERT_BACKDATE_MS, createCertificateAuthority } from '../../../main/core/certificate-authority.js';
import {
  certificateFingerprint,
  DEFAULT_CERT_VALIDITY_MS,
  DEFAULT_ROTATION_THRESHOLD_MS,
  parseCertificate,
  pemToDer,
  shouldRotate,
  spkiPin,
} from '../../../main/core/certificates.js';
import { decodeDerInteger, derElementLength, encodeDerInteger } from '../../../main/core/der.js';
import { isPalyraError, type ErrorCode } from '../../../main/core/errors.js';
import { formatIpAddress, normalizeIpAddress, parseIpAddress } from '../../../main/core/net-address.js';
import { decodePemBlocks, encodePem } from '../../../main/core/pem.js';
import {
  exportPrivateKeyPem,
  exportSpkiDer,
  generateP256KeyPair,
  importPrivateKeyPem,
  P256_SIGNING_ALGORITHM,
} from '../../../main/core/x509-keys.js';

const NOW = Date.UTC(2026, 2, 1, 8, 0, 0);

function expectCode(fn: () => unknown, code: ErrorCode): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(isPalyraError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

let ca: CertificateAuthority;
let leafPem: string;

beforeAll(async () => {
  ca = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
  leafPem = (await ca.issueServerCertificate({ commonName: 'palyrad-node-rpc', ipAddresses: ['fe80::1'], now: NOW })).certificatePem;
});

describe('fingerprints and pins', () => {
  it('fingerprints the first certificate of a PEM chain as hex SHA-256 of its DER, the same from PEM or DER', () => {
    const chain = `${leafPem}${ca.certificatePem}`;
    const nodeFingerprint = new NodeCertificate(leafPem).fingerprint256.replaceAll(':', '').toLowerCase();

    expect(certificateFingerprint(chain)).toBe(nodeFingerprint);
    expect(certificateFingerprint(pemToDer(leafPem))).toBe(nodeFingerprint);
  });

  it('pins the SubjectPublicKeyInfo, so a re-issued certificate for the same key keeps the pin', async () => {
    const keys = await generateP256KeyPair();
    const spki = await exportSpkiDer(keys.publicKey);
    const expected = createHash('sha256').update(spki).digest('base64url');
    const make = async (serialNumber: string): Promise<string> =>
      (
        await X509CertificateGenerator.createSelfSigned(
          { name: 'CN=pin', serialNumber, keys, signingAlgorithm: P256_SIGNING_ALGORITHM, notBefore: new Date(NOW), notAfter: new Date(NOW + 60_000) },
          globalThis.crypto,
        )
      ).toString('pem');

    expect(spkiPin(await make('01'))).toBe(expected);
    expect(spkiPin(await make('02'))).toBe(expected);
  });
});

describe('parseCertificate', () => {
  it('reports a server leaf the way Node reads it', () => {
    const info = parseCertificate(leafPem);
    const nodeView = new NodeCertificate(leafPem);

    expect(info.serialHex).toBe(nodeView.serialNumber.toLowerCase());
    expect(info.notBeforeUnixMs).toBe(Date.parse(nodeView.validFrom));
    expect(info.notAfterUnixMs).toBe(Date.parse(nodeView.validTo));
    // A server certificate starts SERVER_CERT_BACKDATE_MS early (clock skew) and ends DEFAULT_CERT_VALIDITY_MS after issue.
    expect(info.notAfterUnixMs - info.notBeforeUnixMs).toBe(DEFAULT_CERT_VALIDITY_MS + SERVER_CERT_BACKDATE_MS);
    expect(info.ipAddresses).toEqual(['fe80::1']);
    expect(info.uris).toEqual([]);
    expect(info.deviceId).toBeUndefined();
    expect(info.spkiPin).toBe(spkiPin(leafPem));
  });

  it('refuses text without a certificate, a truncated certificate and trailing bytes', () => {
    const der = pemToDer(leafPem);

    expectCode(() => parseCertificate('hello'), 'certificate_parsing_failed');
    expectCode(() => parseCertificate(der.subarray(0, der.length - 1)), 'certificate_parsing_failed');
    expectCode(() => parseCertificate(new Uint8Array([...der, 0])), 'certificate_parsing_failed');
    expectCode(() => parseCertificate(encodePem(Uint8Array.of(0x30, 0x00), 'CERTIFICATE')), 'certificate_parsing_failed');
    expectCode(() => spkiPin(Uint8Array.of(1, 2, 3)), 'certificate_parsing_failed');
  });

  it('never throws anything but certificate_parsing_failed on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        expectCode(() => parseCertificate(bytes), 'certificate_parsing_failed');
      }),
      { numRuns: 200 },
    );
  });
});

describe('shouldRotate', () => {
  it('rotates when expiry is at or before now + threshold, not after', () => {
    const now = NOW;

    expect(shouldRotate(now + DEFAULT_ROTATION_THRESHOLD_MS, now, DEFAULT_ROTATION_THRESHOLD_MS)).toBe(true);
    expect(shouldRotate(now + DEFAULT_ROTATION_THRESHOLD_MS + 1, now, DEFAULT_ROTATION_THRESHOLD_MS)).toBe(false);
    expect(shouldRotate(now - 1, now, 0)).toBe(true);
  });

  it('refuses a negative or non-finite input', () => {
    expectCode(() => shouldRotate(NOW, NOW, -1), 'invalid_argument');
    expectCode(() => shouldRotate(Number.NaN, NOW, 0), 'invalid_argument');
  });
});

describe('P-256 keys as PKCS#8 PEM', () => {
  it('round-trips a key that Node loads, deriving a public key that verifies its signatures', async () => {
    const keys = await generateP256KeyPair();
    const pem = await exportPrivateKeyPem(keys.privateKey);
    const imported = await importPrivateKeyPem(pem);
    const message = new TextEncoder().encode('palyra');
    const signature = await globalThis.crypto.subtle.sign(P256_SIGNING_ALGORITHM, imported.privateKey, message);

    expect(pem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
    expect(createPrivateKey(pem).asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(await exportSpkiDer(imported.publicKey)).toEqual(await exportSpkiDer(keys.publicKey));
    expect(await globalThis.crypto.subtle.verify(P256_SIGNING_ALGORITHM, keys.publicKey, signature, message)).toBe(true);
  });

  it('refuses garbage, a certificate and a non-P-256 key as private_key_parsing_failed', async () => {
    const ed = (await globalThis.crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']));
    const edPem = encodePem(new Uint8Array(await globalThis.crypto.subtle.exportKey('pkcs8', ed.privateKey)), 'PRIVATE KEY');

    for (const pem of ['', 'garbage', leafPem, edPem, encodePem(Uint8Array.of(1, 2, 3), 'PRIVATE KEY')]) {
      const error: unknown = await importPrivateKeyPem(pem).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPalyraError(error, 'private_key_parsing_failed'), `for ${pem.slice(0, 30)}: ${String(error)}`).toBe(true);
    }
  });

  it('refuses to export a public key as a private key', async () => {
    const keys = await generateP256KeyPair();
    const error: unknown = await exportPrivateKeyPem(keys.publicKey).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(isPalyraError(error, 'invalid_key_material')).toBe(true);
  });
});

describe('PEM', () => {
  it('round-trips any bytes under any label and picks the requested block', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ minLength: 1, maxLength: 50 }), (a, b) => {
        const text = `junk\n${encodePem(a, 'X509 CRL')}between\r\n${encodePem(b, 'CERTIFICATE').replaceAll('\n', '\r\n')}`;

        expect(pemToDer(text)).toEqual(a);
        expect(pemToDer(text, 'CERTIFICATE')).toEqual(b);
        expect(decodePemBlocks(text).map((block) => block.label)).toEqual(['X509 CRL', 'CERTIFICATE']);
      }),
      { numRuns: 100 },
    );
  });

  it('wraps lines at 64 characters and reports a missing label with the code of what was wanted', () => {
    const pem = encodePem(new Uint8Array(100), 'CERTIFICATE');

    expect(pem.split('\n').every((line) => line.length <= 64)).toBe(true);
    expectCode(() => pemToDer(pem, 'PRIVATE KEY'), 'private_key_parsing_failed');
    expectCode(() => pemToDer(pem, 'CERTIFICATE REQUEST'), 'csr_invalid');
    expectCode(() => pemToDer('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----'), 'invalid_argument');
  });
});

describe('DER helpers', () => {
  it('round-trips non-negative integers through minimal DER', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const der = encodeDerInteger(n);

        expect(decodeDerInteger(der)).toBe(n);
        expect(derElementLength(der)).toBe(der.length);
        if (der.length > 3) expect(der[2] === 0 && der[3]! < 0x80).toBe(false);
      }),
    );
    expect(Array.from(encodeDerInteger(128))).toEqual([0x02, 0x02, 0x00, 0x80]);
  });

  it('refuses non-minimal lengths (strict ECDSA signature DER is covered by the Wycheproof vectors)', () => {
    expect(derElementLength(Uint8Array.of(0x30, 0x81, 0x05))).toBeUndefined();
  });
});

describe('IP addresses', () => {
  it('round-trips any 4 or 16 bytes through canonical text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), (bytes) => {
        const text = formatIpAddress(bytes);

        expect(parseIpAddress(text)).toEqual(bytes);
        expect(normalizeIpAddress(text)).toBe(text);
      }),
    );
  });

  it('writes IPv6 per RFC 5952 and accepts the usual spellings', () => {
    expect(normalizeIpAddress('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(normalizeIpAddress('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(normalizeIpAddress('::ffff:192.168.1.1')).toBe('::ffff:c0a8:101');
    expect(normalizeIpAddress('::')).toBe('::');
    expect(normalizeIpAddress('1:2:3:4:5:6:7:0')).toBe('1:2:3:4:5:6:7:0');
  });

  it('refuses host names, out-of-range parts, leading zeros, zones, brackets and misplaced IPv4', () => {
    for (const text of ['localhost', '256.1.1.1', '1.2.3', '01.2.3.4', '1a.2.3.4', 'fe80::1%eth0', '[::1]', '1::2::3', '1.2.3.4::', '1:2:3:4:5:6:7:8:9', '']) {
      expectCode(() => parseIpAddress(text), 'invalid_argument');
    }
  });
});
