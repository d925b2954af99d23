// Gateway CA certificates on real node:tls sockets (127.0.0.1): mutual auth, CRL revocation with a hot swap,
// server-name checks, and the CA pin (REFERENCE.md §5.2, §7 items 45–47; PROTOCOL.md §3, §5).
import { createHash, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url } from '../../main/core/bytes.js';
import { CertificateAuthority, createCertificateAuthority } from '../../main/core/certificate-authority.js';
import type { IssuedCertificate } from '../../main/core/certificate-authority.js';
import { parseCertificate, spkiPin } from '../../main/core/certificates.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { newUlid } from '../../main/core/ids.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { attemptHandshake, NODE_RPC_SERVER_NAME, startMtlsServer } from '../helpers/mtls.js';
import type { MtlsServer, ServerMaterial } from '../helpers/mtls.js';

interface DeviceCredentials {
  readonly issued: IssuedCertificate;
  readonly cert: string;
  readonly key: string;
}

/** A device as PROTOCOL.md §2 has it: its own P-256 key, certified through a CSR. */
async function enrolDevice(ca: CertificateAuthority, now: number): Promise<DeviceCredentials> {
  const deviceId = newUlid(now);
  const keys = await generateP256KeyPair();
  const csrDer = await createCertificateSigningRequest({ keys, deviceId });
  const issued = await ca.issueClientCertificate({ csrDer, deviceId, now });
  return { issued, cert: issued.certificatePem, key: await exportPrivateKeyPem(keys.privateKey) };
}

function sha256Hex(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

// TLS verifies against the real clock, so certificates are issued at the real time.
const now = Date.now();
let ca: CertificateAuthority;
let foreignCa: CertificateAuthority;
let serverMaterial: ServerMaterial;
let serverFingerprint: string;
let deviceA: DeviceCredentials;
let deviceB: DeviceCredentials;
let foreignDevice: DeviceCredentials;

beforeAll(async () => {
  ca = await CertificateAuthority.load(await createCertificateAuthority({ now }));
  foreignCa = await CertificateAuthority.load(await createCertificateAuthority({ now }));
  const server = await ca.issueServerCertificate({ commonName: NODE_RPC_SERVER_NAME, ipAddresses: ['127.0.0.1'], now });
  serverMaterial = { key: server.privateKeyPem, cert: server.certificatePem, ca: ca.certificatePem };
  serverFingerprint = server.fingerprint;
  deviceA = await enrolDevice(ca, now);
  deviceB = await enrolDevice(ca, now);
  foreignDevice = await enrolDevice(foreignCa, now);
});

describe.each(['required', 'optional'] as const)('an mTLS server with client auth %s', (clientAuth) => {
  let server: MtlsServer;

  beforeAll(async () => {
    server = await startMtlsServer(serverMaterial, clientAuth);
  });

  afterAll(async () => {
    await server.close();
  });

  it('completes the handshake with a CSR-issued device certificate and sees exactly that certificate', async () => {
    const outcome = await attemptHandshake({ port: server.port, ca: ca.certificatePem, cert: deviceA.cert, key: deviceA.key });

    expect(outcome).toEqual({ ok: true, clientFingerprintSeenByServer: deviceA.issued.fingerprint, serverFingerprint });
    expect(parseCertificate(deviceA.cert).fingerprint).toBe(deviceA.issued.fingerprint);
  });

  it('refuses at the handshake a client certificate issued by a different CA', async () => {
    const outcome = await attemptHandshake({
      port: server.port,
      ca: ca.certificatePem,
      cert: foreignDevice.cert,
      key: foreignDevice.key,
    });

    expect(outcome.ok).toBe(false);
    if (clientAuth === 'optional') expect(server.rejections.at(-1)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('refuses a revoked certificate once the CRL is swapped in, while another device still connects', async () => {
    const before = await attemptHandshake({ port: server.port, ca: ca.certificatePem, cert: deviceB.cert, key: deviceB.key });
    expect(before.ok).toBe(true);

    const crl = await ca.createCrl({ revoked: [{ serialHex: deviceB.issued.serialHex, revokedAtUnixMs: now }], now });
    server.setMaterial({ ...serverMaterial, crl });
    try {
      const revoked = await attemptHandshake({ port: server.port, ca: ca.certificatePem, cert: deviceB.cert, key: deviceB.key });
      const other = await attemptHandshake({ port: server.port, ca: ca.certificatePem, cert: deviceA.cert, key: deviceA.key });

      expect(revoked.ok).toBe(false);
      if (clientAuth === 'optional') expect(server.rejections.at(-1)).toBe('CERT_REVOKED');
      expect(other).toEqual({ ok: true, clientFingerprintSeenByServer: deviceA.issued.fingerprint, serverFingerprint });
    } finally {
      server.setMaterial(serverMaterial);
    }
  });

  it('refuses an expired device certificate', async () => {
    const deviceId = newUlid(now);
    const expired = await ca.issueClientCertificateWithGeneratedKey({ deviceId, now: now - 7_200_000, validityMs: 3_600_000 });

    const outcome = await attemptHandshake({
      port: server.port,
      ca: ca.certificatePem,
      cert: expired.certificatePem,
      key: expired.privateKeyPem,
    });

    expect(outcome.ok).toBe(false);
    if (clientAuth === 'optional') expect(server.rejections.at(-1)).toBe('CERT_HAS_EXPIRED');
  });

  it(
    clientAuth === 'required'
      ? 'refuses a client that presents no certificate'
      : 'admits a client without a certificate (pairing RPCs need no certificate)',
    async () => {
      const outcome = await attemptHandshake({ port: server.port, ca: ca.certificatePem });

      if (clientAuth === 'required') expect(outcome.ok).toBe(false);
      else expect(outcome).toEqual({ ok: true, clientFingerprintSeenByServer: null, serverFingerprint });
    },
  );
});

describe('the client side of the gateway TLS', () => {
  let server: MtlsServer;

  beforeAll(async () => {
    server = await startMtlsServer(serverMaterial, 'optional');
  });

  afterAll(async () => {
    await server.close();
  });

  it(`verifies the server as '${NODE_RPC_SERVER_NAME}' and refuses another name`, async () => {
    const good = await attemptHandshake({ port: server.port, ca: ca.certificatePem, servername: NODE_RPC_SERVER_NAME });
    const wrongName = await attemptHandshake({ port: server.port, ca: ca.certificatePem, servername: 'gateway.example' });

    expect(good.ok).toBe(true);
    expect(wrongName).toMatchObject({ ok: false, error: expect.stringContaining('does not match') });
  });

  it('verifies the server by its IP SAN when dialling 127.0.0.1 without SNI', async () => {
    const outcome = await attemptHandshake({ port: server.port, ca: ca.certificatePem, servername: null });

    expect(outcome.ok).toBe(true);
  });

  it('refuses a server whose certificate comes from another CA', async () => {
    const outcome = await attemptHandshake({ port: server.port, ca: foreignCa.certificatePem });

    // The server sends its CA along with the leaf, so OpenSSL reports an untrusted root in the chain.
    expect(outcome).toMatchObject({ ok: false, error: expect.stringMatching(/self-signed certificate in certificate chain|unable to verify/) });
  });

  it('gets the gateway CA pin from the certificate that signed the server leaf', async () => {
    const peerChain = await new Promise<tls.DetailedPeerCertificate>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: server.port, servername: NODE_RPC_SERVER_NAME, ca: ca.certificatePem });
      socket.once('secureConnect', () => {
        resolve(socket.getPeerCertificate(true));
        socket.destroy();
      });
      socket.once('error', reject);
    });

    expect(sha256Hex(peerChain.raw)).toBe(serverFingerprint);
    expect(spkiPin(new Uint8Array(peerChain.issuerCertificate.raw))).toBe(ca.spkiPin);
  });
});

describe('certificate material as Node reads it', () => {
  it('computes the CA pin as base64url(SHA-256(SubjectPublicKeyInfo)), matching node:crypto', () => {
    const spki = new X509Certificate(ca.certificatePem).publicKey.export({ type: 'spki', format: 'der' });
    const independent = toBase64Url(createHash('sha256').update(spki).digest());

    expect(ca.spkiPin).toBe(independent);
    expect(spkiPin(ca.certificatePem)).toBe(independent);
    expect(ca.spkiPin).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('writes a CRL that Node loads as the crl option only under the X509 CRL label', async () => {
    const crl = await ca.createCrl({ revoked: [{ serialHex: deviceA.issued.serialHex, revokedAtUnixMs: now }], now });
    const libraryLabel = crl.replaceAll('X509 CRL', 'CRL');

    expect(crl.startsWith('-----BEGIN X509 CRL-----\n')).toBe(true);
    expect(() => tls.createSecureContext({ ...serverMaterial, crl })).not.toThrow();
    expect(() => tls.createSecureContext({ ...serverMaterial, crl: libraryLabel })).toThrow();
  });

  it('issues a server leaf with DNS node1.lan and IP 192.168.50.10 whose SANs Node matches (item 45)', async () => {
    const leaf = await ca.issueServerCertificate({
      commonName: NODE_RPC_SERVER_NAME,
      dnsNames: ['node1.lan'],
      ipAddresses: ['192.168.50.10'],
      now,
    });
    const nodeView = new X509Certificate(leaf.certificatePem);

    expect(parseCertificate(leaf.certificatePem).ipAddresses).toEqual(['192.168.50.10']);
    expect(nodeView.checkIP('192.168.50.10')).toBe('192.168.50.10');
    expect(nodeView.checkHost('node1.lan')).toBe('node1.lan');
    expect(nodeView.checkIssued(new X509Certificate(ca.certificatePem))).toBe(true);
  });
});
