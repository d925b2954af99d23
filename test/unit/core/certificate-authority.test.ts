// The gateway CA: creation, loading, client and server leaves, sequence and serials, CRLs
// (PROTOCOL.md §2, §5; REFERENCE.md §1.3, §1.4, §7 items 2, 3).
import 'reflect-metadata';
import { X509Certificate as NodeCertificate } from 'node:crypto';
import { KeyUsageFlags, KeyUsagesExtension, X509Certificate } from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateAuthority,
  createCertificateAuthority,
  SERVER_CERT_BACKDATE_MS,
  serverDnsNames,
  type StoredCertificateAuthority,
} from '../../../main/core/certificate-authority.js';
import { parseCertificate } from '../../../main/core/certificates.js';
import { DEFAULT_CRL_VALIDITY_MS, parseCrl, verifyCrlSignature } from '../../../main/core/crl.js';
import { createCertificateSigningRequest } from '../../../main/core/csr.js';
import { isPalyraError, type ErrorCode } from '../../../main/core/errors.js';
import { exportSpkiDer, generateP256KeyPair, importPrivateKeyPem } from '../../../main/core/x509-keys.js';

const NOW = Date.UTC(2026, 0, 15, 12, 30, 45, 678);
const DEVICE_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isPalyraError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

async function csrFor(deviceId: string): Promise<{ csrDer: Uint8Array; keys: CryptoKeyPair }> {
  const keys = await generateP256KeyPair();
  return { csrDer: await createCertificateSigningRequest({ keys, deviceId }), keys };
}

let stored: StoredCertificateAuthority;
let ca: CertificateAuthority;

beforeAll(async () => {
  stored = await createCertificateAuthority({ now: NOW });
  ca = await CertificateAuthority.load(stored);
});

describe('createCertificateAuthority', () => {
  it('makes a self-signed P-256 CA named Palyra Gateway CA with CA:true and keyCertSign, cRLSign, digitalSignature', async () => {
    const cert = new X509Certificate(stored.certificatePem);
    const info = parseCertificate(stored.certificatePem);
    const usages = cert.getExtension(KeyUsagesExtension)?.usages;

    expect(info.subjectCommonName).toBe('Palyra Gateway CA');
    expect(info.issuerCommonName).toBe('Palyra Gateway CA');
    expect(info.isCa).toBe(true);
    expect(usages).toBe(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature);
    expect(cert.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(await cert.isSelfSigned()).toBe(true);
    expect(stored.privateKeyPem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
    expect(stored.sequence).toBe(0);
  });

  it('is valid from five minutes before now (clock skew) until ten calendar years from now, floored to the second', () => {
    const info = parseCertificate(stored.certificatePem);

    expect(new Date(info.notBeforeUnixMs).toISOString()).toBe('2026-01-15T12:25:45.000Z');
    expect(new Date(info.notAfterUnixMs).toISOString()).toBe('2036-01-15T12:30:45.000Z');
    expect(ca.notAfterUnixMs).toBe(info.notAfterUnixMs);
  });

  it('takes a custom common name and refuses blank or unencodable ones', async () => {
    const custom = await createCertificateAuthority({ now: NOW, commonName: 'Office Gateway CA' });

    expect(parseCertificate(custom.certificatePem).subjectCommonName).toBe('Office Gateway CA');
    await expectCode(createCertificateAuthority({ now: NOW, commonName: '   ' }), 'invalid_argument');
    await expectCode(createCertificateAuthority({ now: NOW, commonName: 'a"b' }), 'invalid_argument');
    await expectCode(createCertificateAuthority({ now: NOW, commonName: 'x'.repeat(65) }), 'invalid_argument');
  });

  it('refuses a time that is not a unix-ms integer', async () => {
    await expectCode(createCertificateAuthority({ now: Number.NaN }), 'invalid_argument');
    await expectCode(createCertificateAuthority({ now: -1 }), 'invalid_argument');
  });
});

describe('CertificateAuthority.load', () => {
  it('round-trips through toStored and exposes the fingerprint Node computes', async () => {
    const nodeFingerprint = new NodeCertificate(stored.certificatePem).fingerprint256.replaceAll(':', '').toLowerCase();
    const reloaded = await CertificateAuthority.load(ca.toStored());

    expect(ca.toStored()).toEqual(stored);
    expect(ca.fingerprint).toBe(nodeFingerprint);
    expect(reloaded.fingerprint).toBe(ca.fingerprint);
    expect(reloaded.spkiPin).toBe(ca.spkiPin);
  });

  it('refuses a private key that belongs to another CA', async () => {
    const other = await createCertificateAuthority({ now: NOW });

    await expectCode(CertificateAuthority.load({ ...stored, privateKeyPem: other.privateKeyPem }), 'invalid_key_material');
  });

  it('refuses unreadable certificate or key PEM', async () => {
    await expectCode(CertificateAuthority.load({ ...stored, certificatePem: 'not a pem' }), 'certificate_parsing_failed');
    await expectCode(
      CertificateAuthority.load({ ...stored, certificatePem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }),
      'certificate_parsing_failed',
    );
    await expectCode(CertificateAuthority.load({ ...stored, privateKeyPem: 'garbage' }), 'private_key_parsing_failed');
  });

  it('refuses a P-384 private key', async () => {
    const p384 = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign']);
    const der = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', p384.privateKey));
    const pem = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`;

    await expectCode(CertificateAuthority.load({ ...stored, privateKeyPem: pem }), 'private_key_parsing_failed');
  });

  it('refuses a leaf certificate posing as the CA', async () => {
    const leaf = await ca.issueServerCertificate({ commonName: 'palyrad-node-rpc', now: NOW });

    await expectCode(
      CertificateAuthority.load({ certificatePem: leaf.certificatePem, privateKeyPem: leaf.privateKeyPem, sequence: 0 }),
      'certificate_parsing_failed',
    );
  });

  it('refuses a negative or fractional sequence', async () => {
    await expectCode(CertificateAuthority.load({ ...stored, sequence: -1 }), 'invalid_argument');
    await expectCode(CertificateAuthority.load({ ...stored, sequence: 1.5 }), 'invalid_argument');
  });
});

describe('client certificates', () => {
  it('gives a 3600 s leaf notAfter − notBefore within 3595..3605 s and expires_at within 2 s of notAfter (item 2)', async () => {
    const { csrDer } = await csrFor(DEVICE_ID);
    const issued = await ca.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now: NOW, validityMs: 3_600_000 });
    const info = parseCertificate(issued.certificatePem);
    const spanSeconds = (info.notAfterUnixMs - info.notBeforeUnixMs) / 1000;

    expect(spanSeconds).toBeGreaterThanOrEqual(3595);
    expect(spanSeconds).toBeLessThanOrEqual(3605);
    expect(Math.abs(issued.expiresAtUnixMs / 1000 - info.notAfterUnixMs / 1000)).toBeLessThanOrEqual(2);
    expect(issued.expiresAtUnixMs).toBe(info.notAfterUnixMs);
    expect(issued.issuedAtUnixMs).toBe(info.notBeforeUnixMs);
  });

  it('binds the CSR key to the device: CN, O, device URI, clientAuth only, signed by the CA', async () => {
    const { csrDer, keys } = await csrFor(DEVICE_ID);
    const issued = await ca.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now: NOW });
    const info = parseCertificate(issued.certificatePem);
    const cert = new X509Certificate(issued.certificatePem);
    const nodeView = new NodeCertificate(issued.certificatePem);

    expect(issued.subject).toBe(`device:${DEVICE_ID}`);
    expect(info.subjectCommonName).toBe(`Palyra Device ${DEVICE_ID}`);
    expect(cert.subjectName.getField('O')).toEqual(['Palyra']);
    expect(info.uris).toEqual([`urn:palyra:device:${DEVICE_ID}`]);
    expect(info.deviceId).toBe(DEVICE_ID);
    expect(info.extendedKeyUsages).toEqual(['clientAuth']);
    expect(cert.getExtension(KeyUsagesExtension)?.usages).toBe(KeyUsageFlags.digitalSignature);
    expect(info.isCa).toBe(false);
    expect(info.issuerCommonName).toBe('Palyra Gateway CA');
    expect(info.fingerprint).toBe(issued.fingerprint);
    expect(info.serialHex).toBe(issued.serialHex);
    expect(new Uint8Array(cert.publicKey.rawData)).toEqual(await exportSpkiDer(keys.publicKey));
    expect(nodeView.checkIssued(new NodeCertificate(ca.certificatePem))).toBe(true);
    expect(nodeView.verify(new NodeCertificate(ca.certificatePem).publicKey)).toBe(true);
    expect(await ca.hasIssued(issued.certificatePem)).toBe(true);
  });

  it('defaults to a 24 h validity', async () => {
    const { csrDer } = await csrFor(DEVICE_ID);
    const issued = await ca.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now: NOW });

    expect(issued.expiresAtUnixMs - issued.issuedAtUnixMs).toBe(86_400_000);
  });

  it('in compat mode generates a key whose PEM matches the certificate', async () => {
    const issued = await ca.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: NOW });
    const keys = await importPrivateKeyPem(issued.privateKeyPem);

    expect(new Uint8Array(new X509Certificate(issued.certificatePem).publicKey.rawData)).toEqual(
      await exportSpkiDer(keys.publicKey),
    );
    expect(parseCertificate(issued.certificatePem).deviceId).toBe(DEVICE_ID);
  });

  it('refuses a non-canonical device id, a CSR for nothing, and bad validities', async () => {
    const { csrDer } = await csrFor(DEVICE_ID);

    await expectCode(ca.issueClientCertificate({ csrDer, deviceId: 'not-an-id', now: NOW }), 'invalid_canonical_id');
    await expectCode(ca.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID.toLowerCase(), now: NOW }), 'invalid_canonical_id');
    await expectCode(ca.issueClientCertificate({ csrDer: new Uint8Array([0x30, 0x00]), deviceId: DEVICE_ID, now: NOW }), 'csr_invalid');
    for (const validityMs of [0, -1000, 1500.5, Number.NaN, 999]) {
      await expectCode(ca.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now: NOW, validityMs }), 'invalid_argument');
    }
  });

  it('never lets a leaf outlive the CA', async () => {
    const nearCaExpiry = ca.notAfterUnixMs - 60_000;
    const issued = await ca.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: nearCaExpiry });

    expect(issued.expiresAtUnixMs).toBe(ca.notAfterUnixMs);
    await expectCode(ca.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: ca.notAfterUnixMs }), 'invalid_argument');
  });
});

describe('server certificates', () => {
  it('start five minutes before now, so a device whose clock lags still accepts them; device certificates do not', async () => {
    const server = parseCertificate((await ca.issueServerCertificate({ commonName: 'palyrad-node-rpc', now: NOW + 3_600_000 })).certificatePem);
    expect(SERVER_CERT_BACKDATE_MS).toBe(300_000);
    expect(server.notBeforeUnixMs).toBe(Math.floor((NOW + 3_600_000) / 1000) * 1000 - SERVER_CERT_BACKDATE_MS);
    const keys = await generateP256KeyPair();
    const csrDer = await createCertificateSigningRequest({ keys, deviceId: DEVICE_ID });
    const client = parseCertificate((await ca.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now: NOW + 3_600_000 })).certificatePem);
    expect(client.notBeforeUnixMs).toBe(Math.floor((NOW + 3_600_000) / 1000) * 1000);
  });

  it('never start before the CA itself', async () => {
    const server = parseCertificate((await ca.issueServerCertificate({ commonName: 'palyrad-node-rpc', now: NOW })).certificatePem);
    expect(server.notBeforeUnixMs).toBe(ca.notBeforeUnixMs);
  });

  it('lists localhost, the CN, one node1.lan and the IP (item 3)', async () => {
    const issued = await ca.issueServerCertificate({
      commonName: 'palyrad-node-rpc',
      dnsNames: ['palyrad-node-rpc', ' node1.lan ', 'NODE1.LAN', '  ', ''],
      ipAddresses: ['192.168.1.24'],
      now: NOW,
    });
    const info = parseCertificate(issued.certificatePem);

    expect(info.dnsNames).toEqual(['localhost', 'palyrad-node-rpc', 'node1.lan']);
    expect(info.dnsNames.filter((n) => n.toLowerCase() === 'node1.lan')).toHaveLength(1);
    expect(info.ipAddresses).toEqual(['192.168.1.24']);
    expect(info.subjectCommonName).toBe('palyrad-node-rpc');
    expect(info.extendedKeyUsages).toEqual(['serverAuth']);
    expect(info.isCa).toBe(false);
    expect(issued.subject).toBe('server:palyrad-node-rpc');
  });

  it('keeps the first spelling of a name and adds each IP once, whatever its spelling', async () => {
    const issued = await ca.issueServerCertificate({
      commonName: 'Gateway.Local',
      dnsNames: ['gateway.local', 'LOCALHOST', 'b.lan'],
      ipAddresses: ['::1', '0:0:0:0:0:0:0:1', '10.0.0.1', ' 10.0.0.1 '],
      now: NOW,
    });
    const info = parseCertificate(issued.certificatePem);

    expect(info.dnsNames).toEqual(['localhost', 'Gateway.Local', 'b.lan']);
    expect(info.ipAddresses).toEqual(['::1', '10.0.0.1']);
  });

  it('refuses a blank common name, a name that is not a DNS name, and a bad IP', async () => {
    await expectCode(ca.issueServerCertificate({ commonName: ' ', now: NOW }), 'invalid_argument');
    await expectCode(ca.issueServerCertificate({ commonName: 'two words', now: NOW }), 'invalid_argument');
    await expectCode(ca.issueServerCertificate({ commonName: 'gw', dnsNames: ['bad/name'], now: NOW }), 'invalid_argument');
    await expectCode(ca.issueServerCertificate({ commonName: 'gw', ipAddresses: ['1a.2.3.4'], now: NOW }), 'invalid_argument');
    await expectCode(ca.issueServerCertificate({ commonName: 'gw', ipAddresses: ['256.0.0.1'], now: NOW }), 'invalid_argument');
  });

  it('orders SANs the reference way as a pure function', () => {
    expect(serverDnsNames('cn.example', ['', 'CN.example', 'x.example', 'x.example'])).toEqual(['localhost', 'cn.example', 'x.example']);
  });
});

describe('sequence and serial numbers', () => {
  it('increments the sequence for every leaf, client or server, and persists it through toStored', async () => {
    const fresh = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
    const { csrDer } = await csrFor(DEVICE_ID);

    const first = await fresh.issueClientCertificate({ csrDer, deviceId: DEVICE_ID, now: NOW });
    const second = await fresh.issueServerCertificate({ commonName: 'palyrad-node-rpc', now: NOW });
    const third = await fresh.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: NOW });
    const reloaded = await CertificateAuthority.load(fresh.toStored());
    const fourth = await reloaded.issueServerCertificate({ commonName: 'palyrad-node-rpc', now: NOW });

    expect([first.sequence, second.sequence, third.sequence, fourth.sequence]).toEqual([1, 2, 3, 4]);
    expect(fresh.sequence).toBe(3);
    expect(reloaded.toStored().sequence).toBe(4);
  });

  it('leaves the sequence unchanged when an issue is refused', async () => {
    const fresh = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
    const { csrDer } = await csrFor(DEVICE_ID);
    const tampered = csrDer.slice();
    tampered[tampered.length - 1]! ^= 0x01;

    await expectCode(fresh.issueClientCertificate({ csrDer: tampered, deviceId: DEVICE_ID, now: NOW }), 'csr_invalid');
    expect(fresh.sequence).toBe(0);
  });

  it('gives concurrent issues distinct sequence numbers', async () => {
    const fresh = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
    const issued = await Promise.all(
      Array.from({ length: 8 }, () => fresh.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: NOW })),
    );

    expect(issued.map((i) => i.sequence).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('raises but never lowers the counter with withSequenceAtLeast', async () => {
    const fresh = await CertificateAuthority.load({ ...stored, sequence: 5 });

    expect(fresh.withSequenceAtLeast(2).sequence).toBe(5);
    expect(fresh.withSequenceAtLeast(9).sequence).toBe(9);
    expect(fresh.sequence).toBe(5);
    expect(() => fresh.withSequenceAtLeast(-1)).toThrow();
  });

  it('draws positive, 16-byte, distinct serials', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const issued = await ca.issueServerCertificate({ commonName: 'palyrad-node-rpc', now: NOW });
      expect(issued.serialHex).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(issued.serialHex.startsWith('00')).toBe(false);
      serials.add(issued.serialHex);
    }

    expect(serials.size).toBe(16);
  });
});

describe('certificate revocation lists', () => {
  it('lists each revoked serial once with its earliest date, signed by the CA, labelled X509 CRL', async () => {
    const a = await ca.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: NOW });
    const b = await ca.issueClientCertificateWithGeneratedKey({ deviceId: DEVICE_ID, now: NOW });
    const crl = await ca.createCrl({
      revoked: [
        { serialHex: a.serialHex.toUpperCase(), revokedAtUnixMs: NOW - 5_000 },
        { serialHex: b.serialHex, revokedAtUnixMs: NOW - 1_000 },
        { serialHex: `00${a.serialHex}`, revokedAtUnixMs: NOW - 9_000 },
      ],
      now: NOW,
    });
    const info = parseCrl(crl);
    const other = await createCertificateAuthority({ now: NOW });

    expect(crl.split('\n')[0]).toBe('-----BEGIN X509 CRL-----');
    expect(info.issuerCommonName).toBe('Palyra Gateway CA');
    expect(info.revoked).toEqual([
      { serialHex: a.serialHex, revokedAtUnixMs: Math.floor((NOW - 9_000) / 1000) * 1000 },
      { serialHex: b.serialHex, revokedAtUnixMs: Math.floor((NOW - 1_000) / 1000) * 1000 },
    ]);
    expect(info.thisUpdateUnixMs).toBe(Math.floor(NOW / 1000) * 1000);
    expect(info.nextUpdateUnixMs).toBe(info.thisUpdateUnixMs + DEFAULT_CRL_VALIDITY_MS);
    expect(info.crlNumber).toBe(Math.floor(NOW / 1000));
    expect(await verifyCrlSignature(crl, ca.certificatePem)).toBe(true);
    expect(await verifyCrlSignature(crl, other.certificatePem)).toBe(false);
  });

  it('writes an empty CRL and honours nextUpdateMs', async () => {
    const info = parseCrl(await ca.createCrl({ revoked: [], now: NOW, nextUpdateMs: 3_600_000 }));

    expect(info.revoked).toEqual([]);
    expect(info.nextUpdateUnixMs).toBe(info.thisUpdateUnixMs + 3_600_000);
  });

  it('refuses a serial that is not positive hex', async () => {
    for (const serialHex of ['', 'xyz', 'abc', '00', '0000']) {
      await expectCode(ca.createCrl({ revoked: [{ serialHex, revokedAtUnixMs: NOW }], now: NOW }), 'invalid_argument');
    }
  });
});
