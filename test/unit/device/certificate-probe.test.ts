// How the agent tells "my certificate is refused" from "the gateway is away": one TLS attempt with the same
// certificate against real node:tls servers on 127.0.0.1 (test/helpers/mtls.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../../main/core/certificate-authority.js';
import { createCertificateSigningRequest } from '../../../main/core/csr.js';
import { newUlid } from '../../../main/core/ids.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../../main/core/x509-keys.js';
import { probeClientCertificate, verdictForSocketError } from '../../../main/device/certificate-probe.js';
import { NODE_RPC_SERVER_NAME, startMtlsServer } from '../../helpers/mtls.js';
import type { MtlsServer, ServerMaterial } from '../../helpers/mtls.js';

const now = Date.now();
let ca: CertificateAuthority;
let material: ServerMaterial;
let good: { cert: string; key: string };
let revoked: { cert: string; key: string };
const servers: MtlsServer[] = [];

async function enrol(): Promise<{ cert: string; key: string; serialHex: string }> {
  const keys = await generateP256KeyPair();
  const deviceId = newUlid(now);
  const issued = await ca.issueClientCertificate({ csrDer: await createCertificateSigningRequest({ keys, deviceId }), deviceId, now });
  return { cert: issued.certificatePem, key: await exportPrivateKeyPem(keys.privateKey), serialHex: issued.serialHex };
}

beforeAll(async () => {
  ca = await CertificateAuthority.load(await createCertificateAuthority({ now }));
  const server = await ca.issueServerCertificate({ commonName: NODE_RPC_SERVER_NAME, ipAddresses: ['127.0.0.1'], now });
  good = await enrol();
  const bad = await enrol();
  revoked = bad;
  const crl = await ca.createCrl({ revoked: [{ serialHex: bad.serialHex, revokedAtUnixMs: now }], now });
  material = { key: server.privateKeyPem, cert: server.certificatePem, ca: ca.certificatePem, crl };
});

afterAll(async () => {
  for (const server of servers) await server.close();
});

async function server(mode: 'required' | 'optional'): Promise<MtlsServer> {
  const s = await startMtlsServer(material, mode);
  servers.push(s);
  return s;
}

function probe(port: number, credentials: { cert: string; key: string }) {
  return probeClientCertificate({ host: '127.0.0.1', port, caCertificatePem: ca.certificatePem, certificatePem: credentials.cert, privateKeyPem: credentials.key });
}

describe('probeClientCertificate', () => {
  it('says accepted when the server talks after the handshake', async () => {
    const s = await server('optional');
    expect(await probe(s.port, good)).toEqual({ kind: 'accepted' });
  });

  it('says refused when a verifying TLS server hangs up on a revoked certificate after the TLS 1.3 handshake', async () => {
    const s = await server('required');
    expect((await probe(s.port, revoked)).kind).toBe('refused');
    expect(await probe(s.port, good)).toEqual({ kind: 'accepted' });
  });

  it('takes an alert that names revocation (what a rustls gateway sends) for revoked, before or after the handshake', () => {
    const alert = 'error:0A000414:SSL routines::sslv3 alert certificate revoked';
    expect(verdictForSocketError(alert, false)).toEqual({ kind: 'revoked', detail: alert });
    expect(verdictForSocketError(alert, true)).toEqual({ kind: 'revoked', detail: alert });
    expect(verdictForSocketError('read ECONNRESET', true).kind).toBe('refused');
    expect(verdictForSocketError('connect ECONNREFUSED 127.0.0.1:1', false).kind).toBe('failed');
  });

  it('says refused when the server completes the handshake and drops the connection silently (our gateway)', async () => {
    const s = await server('optional');
    expect((await probe(s.port, revoked)).kind).toBe('refused');
    expect(s.rejections).toContain('CERT_REVOKED');
  });

  it('says failed when nothing listens, or when the server is not the gateway we trust', async () => {
    const s = await server('optional');
    const port = s.port;
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    expect((await probe(port, good)).kind).toBe('failed');
    const other = await CertificateAuthority.load(await createCertificateAuthority({ now }));
    const impostor = await other.issueServerCertificate({ commonName: NODE_RPC_SERVER_NAME, now });
    const s2 = await startMtlsServer({ key: impostor.privateKeyPem, cert: impostor.certificatePem, ca: other.certificatePem }, 'optional');
    servers.push(s2);
    expect((await probe(s2.port, good)).kind).toBe('failed');
  });
});
