// Test helpers: a real node:tls mTLS server on 127.0.0.1 and a client attempt that reports how the handshake ended.
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

/** The name clients verify the gateway as, whatever address they dial (REFERENCE.md §5.2). */
export const NODE_RPC_SERVER_NAME = 'palyrad-node-rpc';

export interface ServerMaterial {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
  readonly crl?: string;
}

export interface MtlsServer {
  readonly port: number;
  /** `optional` mode: authorizationError codes of client certificates the server refused, oldest first. */
  readonly rejections: string[];
  /** Hot-swaps certificate, CA and CRL for new connections (what the gateway does on renewal/revocation). */
  setMaterial(material: ServerMaterial): void;
  close(): Promise<void>;
}

function secureOptions(material: ServerMaterial): tls.SecureContextOptions {
  return { key: material.key, cert: material.cert, ca: material.ca, ...(material.crl === undefined ? {} : { crl: material.crl }) };
}

function sha256Hex(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * `required`: Node refuses any connection without a valid, unrevoked CA-chained client certificate
 * (`rejectUnauthorized: true`). `optional` (PROTOCOL.md §5, the gateway's mode): a client may come without a
 * certificate, but a presented one must verify, else the connection is dropped right after the handshake — the
 * same point at which `rejectUnauthorized: true` drops it — and the reason is recorded.
 * An accepted client gets one JSON line with the SHA-256 of the certificate the server saw (or null), then the end.
 */
export async function startMtlsServer(material: ServerMaterial, clientAuth: 'required' | 'optional' = 'required'): Promise<MtlsServer> {
  const rejections: string[] = [];
  const options = { ...secureOptions(material), requestCert: true, rejectUnauthorized: clientAuth === 'required' };
  const server = tls.createServer(options, (socket) => {
    const peer = socket.getPeerCertificate();
    const presented = Buffer.isBuffer(peer.raw) && peer.raw.length > 0;
    if (presented && !socket.authorized) {
      rejections.push(String(socket.authorizationError));
      socket.destroy();
      return;
    }
    socket.end(`${JSON.stringify({ clientFingerprint: presented ? sha256Hex(peer.raw) : null })}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    rejections,
    setMaterial: (next) => {
      server.setSecureContext(secureOptions(next));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}

export type HandshakeOutcome =
  | { readonly ok: true; readonly clientFingerprintSeenByServer: string | null; readonly serverFingerprint: string }
  | { readonly ok: false; readonly error: string };

/** Connects to 127.0.0.1 verifying the server as `servername` against `ca`; resolves once the attempt settles. */
export function attemptHandshake(options: {
  readonly port: number;
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  /** Default `palyrad-node-rpc`; null sends no SNI and checks the server against the dialled IP. */
  readonly servername?: string | null;
}): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let received = '';
    let serverFingerprint = '';
    const settle = (outcome: HandshakeOutcome): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(outcome);
    };
    const socket = tls.connect({
      host: '127.0.0.1',
      port: options.port,
      ...(options.servername === null ? {} : { servername: options.servername ?? NODE_RPC_SERVER_NAME }),
      ca: options.ca,
      ...(options.cert === undefined ? {} : { cert: options.cert }),
      ...(options.key === undefined ? {} : { key: options.key }),
      rejectUnauthorized: true,
    });
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      serverFingerprint = sha256Hex(socket.getPeerCertificate().raw);
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('end', () => {
      const line = received.trim();
      if (line === '') {
        settle({ ok: false, error: 'connection ended before the server accepted the client' });
        return;
      }
      const reply = JSON.parse(line) as { clientFingerprint: string | null };
      settle({ ok: true, clientFingerprintSeenByServer: reply.clientFingerprint, serverFingerprint });
    });
    // In TLS 1.3 the client finishes its side before the server judges its certificate, so a refusal shows up
    // afterwards, as an alert or a close without the server's line.
    socket.on('error', (error) => {
      settle({ ok: false, error: error.message });
    });
    socket.on('close', () => {
      settle({ ok: false, error: 'connection closed before the server accepted the client' });
    });
  });
}
