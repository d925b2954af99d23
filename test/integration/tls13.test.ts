// TLS 1.3 only (issue 17): the gateway port refuses a TLS 1.2 client at the handshake, and our clients refuse a
// server that offers no more than TLS 1.2.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_TLS_SERVER_NAME, probeGatewayCertificateChain } from '../../main/rpc/tls-client.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import { startGateway } from '../helpers/gateway.js';
import { withDeadline } from '../helpers/wait.js';

type Outcome = { kind: 'connected'; protocol: string | null } | { kind: 'failed'; message: string };

function handshake(port: number, version: tls.SecureVersion): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: GATEWAY_TLS_SERVER_NAME,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      minVersion: version,
      maxVersion: version,
    });
    socket.once('secureConnect', () => {
      resolve({ kind: 'connected', protocol: socket.getProtocol() });
      socket.destroy();
    });
    socket.once('error', (error: Error) => {
      resolve({ kind: 'failed', message: error.message });
    });
  });
}

describe('the gateway port speaks TLS 1.3 only', () => {
  let gateway: Gateway;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ gateway, cleanup } = await startGateway());
  });
  afterAll(async () => {
    await cleanup();
  });

  it('refuses a TLS 1.2 client at the handshake with a protocol-version alert', async () => {
    const outcome = await withDeadline(handshake(gateway.port, 'TLSv1.2'), { what: 'the TLS 1.2 handshake to end' });
    expect(outcome.kind).toBe('failed');
    expect(outcome.kind === 'failed' ? outcome.message : '').toMatch(/protocol version|unsupported protocol/i);
  });

  it('completes a TLS 1.3 handshake', async () => {
    expect(await withDeadline(handshake(gateway.port, 'TLSv1.3'), { what: 'the TLS 1.3 handshake' })).toEqual({ kind: 'connected', protocol: 'TLSv1.3' });
  });
});

describe('our clients refuse a server capped at TLS 1.2', () => {
  let server: tls.Server;
  let port: number;

  beforeAll(async () => {
    // A real gateway server certificate, so that only the version can make the handshake fail.
    const gatewayForMaterial = await startGateway();
    const pems = gatewayForMaterial.gateway.caCertificatePem;
    const key = await gatewayForMaterial.gateway.admin.identity.issueGatewayServerCertificate({ commonName: GATEWAY_TLS_SERVER_NAME, dnsNames: [GATEWAY_TLS_SERVER_NAME], ipAddresses: ['127.0.0.1'] });
    await gatewayForMaterial.cleanup();
    server = tls.createServer({ cert: `${key.certificatePem.trim()}\n${pems.trim()}\n`, key: key.privateKeyPem, maxVersion: 'TLSv1.2', ALPNProtocols: ['h2'] });
    server.on('tlsClientError', () => undefined);
    port = await new Promise<number>((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        resolve((server.address() as { port: number }).port);
      });
    });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  });

  it('the pin probe fails with tls_handshake_failed instead of reading the chain', async () => {
    const failure = await probeGatewayCertificateChain('127.0.0.1', port).then(
      () => null,
      (error: unknown) => (error as { code?: string }).code,
    );
    expect(failure).toBe('tls_handshake_failed');
  });
});
