/**
 * The device side of the node-RPC port: channel credentials that trust only the gateway CA and verify the server as
 * `palyrad-node-rpc` whatever address was dialled (REFERENCE.md §5.2), the typed client, and an unverified probe that
 * reads the server's chain so the device can check the CA pin before it trusts anything (PROTOCOL.md §3).
 */

import { GATEWAY_TLS_SERVER_NAME } from '../core/net-address.js';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { PalyraError } from '../core/errors.js';
import { NODE_RPC_MESSAGE_SIZE_OPTIONS, NodeServiceClient } from './node-service.js';

/** The DNS name in the gateway's server certificate that clients verify, whatever address they dial. */
export { GATEWAY_TLS_SERVER_NAME };
/** How long `probeGatewayCertificateChain` waits for connect + handshake by default. */
export const DEFAULT_PROBE_TIMEOUT_MS = 5_000;
/** A gateway sends leaf + CA; anything much longer is not ours, and the bound keeps the walk finite. */
const MAX_PROBED_CHAIN_LENGTH = 8;

/** Ignores the dialled host: the gateway is identified by its name, not by how it was reached. */
function checkGatewayIdentity(_dialledHost: string, certificate: tls.PeerCertificate): Error | undefined {
  return tls.checkServerIdentity(GATEWAY_TLS_SERVER_NAME, certificate);
}

/**
 * Credentials that verify the server chain against `caCertificatePem` only (no system roots) and the name
 * `palyrad-node-rpc`; with a client certificate and key they also authenticate the device (mTLS).
 */
export function createGatewayChannelCredentials(options: {
  readonly caCertificatePem: string;
  readonly clientCertificatePem?: string;
  readonly clientPrivateKeyPem?: string;
}): grpc.ChannelCredentials {
  const { caCertificatePem, clientCertificatePem, clientPrivateKeyPem } = options;
  if ((clientCertificatePem === undefined) !== (clientPrivateKeyPem === undefined)) {
    throw new PalyraError('invalid_argument', 'a client certificate and its private key must be given together');
  }
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({
      ca: caCertificatePem,
      ...(clientCertificatePem === undefined ? {} : { cert: clientCertificatePem }),
      ...(clientPrivateKeyPem === undefined ? {} : { key: clientPrivateKeyPem }),
      minVersion: 'TLSv1.3',
    });
  } catch (cause) {
    throw new PalyraError('invalid_key_material', 'the gateway CA or the client certificate/key was refused', { cause });
  }
  return grpc.credentials.createFromSecureContext(secureContext, { checkServerIdentity: checkGatewayIdentity });
}

/**
 * A NodeService client for `host:port` with the 4 MiB message limits (overridable through `options`); SNI and the
 * name check always use `palyrad-node-rpc`.
 */
export function createNodeServiceClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
): NodeServiceClient {
  return new NodeServiceClient(address, credentials, {
    ...NODE_RPC_MESSAGE_SIZE_OPTIONS,
    ...options,
    'grpc.ssl_target_name_override': GATEWAY_TLS_SERVER_NAME,
  });
}

/** DERs from the leaf up as the server presented them; Node marks a self-signed root as its own issuer. */
function presentedChain(socket: tls.TLSSocket): Uint8Array[] {
  const chain: Uint8Array[] = [];
  let certificate: Partial<tls.DetailedPeerCertificate> = socket.getPeerCertificate(true);
  for (let depth = 0; depth < MAX_PROBED_CHAIN_LENGTH; depth += 1) {
    const raw = certificate.raw;
    if (raw === undefined || raw.length === 0) break;
    chain.push(new Uint8Array(raw));
    const issuer: Partial<tls.DetailedPeerCertificate> | undefined = certificate.issuerCertificate;
    if (issuer?.raw === undefined || issuer === certificate || issuer.raw.equals(raw)) break;
    certificate = issuer;
  }
  return chain;
}

/**
 * Opens TLS to `host:port` WITHOUT verifying anything and returns the certificates the server presented, leaf first.
 * Only for checking the CA pin of a pairing code before trusting the gateway; nothing is sent over the connection.
 */
export function probeGatewayCertificateChain(
  host: string,
  port: number,
  timeoutMs: number = DEFAULT_PROBE_TIMEOUT_MS,
): Promise<{ chainDer: Uint8Array[] }> {
  if (host.trim().length === 0) throw new PalyraError('invalid_argument', 'gateway host must not be empty');
  if (!Number.isSafeInteger(port) || port < 1 || port > 65_535) {
    throw new PalyraError('invalid_argument', 'gateway port must be an integer in 1..65535', { details: { port } });
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new PalyraError('invalid_argument', 'probe timeout must be a positive number of milliseconds');
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    let tcpConnected = false;
    const socket = tls.connect({
      host,
      port,
      servername: GATEWAY_TLS_SERVER_NAME,
      // Deliberately unverified: the caller checks the CA pin on the returned chain before trusting anything.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
    });
    const finish = (outcome: { chainDer: Uint8Array[] } | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => {
      finish(new PalyraError('timeout', `no TLS handshake with the gateway at ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      tcpConnected = true;
    });
    socket.once('secureConnect', () => {
      const chainDer = presentedChain(socket);
      finish(
        chainDer.length > 0
          ? { chainDer }
          : new PalyraError('tls_handshake_failed', `the gateway at ${host}:${port} presented no certificate`),
      );
    });
    socket.on('error', (error: Error) => {
      const code = tcpConnected ? 'tls_handshake_failed' : 'gateway_unreachable';
      finish(new PalyraError(code, `${host}:${port}: ${error.message}`, { cause: error }));
    });
    socket.once('close', () => {
      finish(new PalyraError('gateway_unreachable', `${host}:${port} closed the connection before the TLS handshake`));
    });
  });
}
