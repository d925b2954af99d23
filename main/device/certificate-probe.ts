/**
 * Why did a connection with our client certificate fail? gRPC only says "UNAVAILABLE"; this opens one TLS
 * connection with the same material and watches how the gateway ends it:
 *   - an alert naming revocation (OpenSSL text "...certificate revoked", as a rustls gateway sends) → revoked;
 *   - the handshake completes and the gateway closes without a byte (our gateway's listener judges the client
 *     certificate after the TLS 1.3 handshake and drops it silently) → refused;
 *   - the gateway's HTTP/2 preface arrives → accepted (the failure was something else);
 *   - no TCP connection, or our own check of the server failed → failed.
 * Nothing is sent over the connection.
 */

import tls from 'node:tls';

/** The name the gateway's server certificate carries, whatever address is dialled (REFERENCE.md §5.2). */
const GATEWAY_TLS_SERVER_NAME = 'palyrad-node-rpc';
export const DEFAULT_CERTIFICATE_PROBE_TIMEOUT_MS = 3_000;

export type CertificateProbeVerdict =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'revoked'; readonly detail: string }
  | { readonly kind: 'refused'; readonly detail: string }
  | { readonly kind: 'failed'; readonly detail: string };

const REVOKED = /revoked/i;

/** A socket error as a verdict: revocation named by an alert wins; after the handshake anything else is a refusal. */
export function verdictForSocketError(message: string, handshakeDone: boolean): CertificateProbeVerdict {
  if (REVOKED.test(message)) return { kind: 'revoked', detail: message };
  return handshakeDone ? { kind: 'refused', detail: message } : { kind: 'failed', detail: message };
}

export function probeClientCertificate(o: {
  readonly host: string;
  readonly port: number;
  readonly caCertificatePem: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}): Promise<CertificateProbeVerdict> {
  return new Promise((resolve) => {
    let settled = false;
    let handshakeDone = false;
    let socket: tls.TLSSocket | null = null;
    const onAbort = (): void => {
      finish({ kind: 'failed', detail: 'the probe was cancelled' });
    };
    const finish = (verdict: CertificateProbeVerdict): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      socket?.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => {
      finish({ kind: 'failed', detail: 'no answer from the gateway in time' });
    }, o.timeoutMs ?? DEFAULT_CERTIFICATE_PROBE_TIMEOUT_MS);
    if (o.signal?.aborted === true) {
      onAbort();
      return;
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      socket = tls.connect({
        host: o.host,
        port: o.port,
        servername: GATEWAY_TLS_SERVER_NAME,
        ca: o.caCertificatePem,
        cert: o.certificatePem,
        key: o.privateKeyPem,
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.3',
        checkServerIdentity: (_host, certificate) => tls.checkServerIdentity(GATEWAY_TLS_SERVER_NAME, certificate),
      });
    } catch (error) {
      finish({ kind: 'failed', detail: error instanceof Error ? error.message : String(error) });
      return;
    }
    socket.once('secureConnect', () => {
      handshakeDone = true;
    });
    socket.once('data', () => {
      finish({ kind: 'accepted' });
    });
    socket.on('error', (error: Error) => {
      finish(verdictForSocketError(error.message, handshakeDone));
    });
    socket.once('close', () => {
      if (handshakeDone) finish({ kind: 'refused', detail: 'the gateway closed the connection right after the TLS handshake' });
      else finish({ kind: 'failed', detail: 'the connection closed before the TLS handshake finished' });
    });
  });
}
