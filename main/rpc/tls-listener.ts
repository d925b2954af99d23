/**
 * The gateway's one node-RPC port (PROTOCOL.md §3): a node:tls server (TLS 1.3 only) that judges each client at the
 * handshake and hands the sockets to grpc-js through connection injectors. Client certificates are requested but
 * optional, so unpaired devices reach the pairing RPCs; a presented certificate must chain to the CA, be unexpired,
 * not in the CRL and not revoked by fingerprint. Where it goes is decided per connection (`TlsListenerRoutes`):
 * authenticated sockets to the main server, certificate-less ones to a server with small limits, refused ones to a
 * server that answers every call with the refusal's code — or, without such a route, the socket is destroyed.
 * Handshakes in progress and connections without an accepted certificate are capped per source address and in total.
 *
 * CRL gotcha: once a `crl` is set, OpenSSL requires a current CRL for every client chain, so a CRL past its
 * nextUpdate makes every certificate-bearing handshake fail (CRL_HAS_EXPIRED). Callers must re-issue the CRL before
 * its nextUpdate and hand it in through `updateSecureContext`.
 */

import type net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { certificateFingerprint } from '../core/certificates.js';
import { PalyraError } from '../core/errors.js';
import { CERTIFICATE_PEM_LABEL, decodePemBlocks } from '../core/pem.js';

/** ALPN protocol of gRPC; clients that do not offer it are refused by the handshake. */
const GRPC_ALPN_PROTOCOLS = ['h2'];
/** Node's default of 120 s lets a silent peer hold a socket for two minutes; honest clients finish in milliseconds. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long `close()` lets in-flight calls finish before it destroys what remains. */
export const DEFAULT_CLOSE_GRACE_MS = 5_000;
/** The only TLS version the port speaks (issue 17); a TLS 1.2 client fails at the handshake with a protocol alert. */
export const TLS_MIN_VERSION = 'TLSv1.3' satisfies tls.SecureVersion;

/** Caps on sockets that have not proven a certificate; authenticated connections are never capped. */
export interface ConnectionLimits {
  /** TCP connections still in the TLS handshake, per source address; more are closed at once. */
  readonly maxPendingHandshakesPerSource: number;
  readonly maxPendingHandshakesTotal: number;
  /** Connections past the handshake without an accepted client certificate (none, or refused), per source. */
  readonly maxUnauthenticatedConnectionsPerSource: number;
  readonly maxUnauthenticatedConnectionsTotal: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxPendingHandshakesPerSource: 128,
  maxPendingHandshakesTotal: 1024,
  maxUnauthenticatedConnectionsPerSource: 64,
  maxUnauthenticatedConnectionsTotal: 512,
};

/** Where sockets go by their handshake verdict; a missing server means the default named on each field. */
export interface TlsListenerRoutes {
  /** No client certificate (default: the main `grpcServer`). */
  readonly unauthenticated?: grpc.Server;
  /** A certificate refused as revoked (CRL, fingerprint, failed revocation check); default: the socket is destroyed. */
  readonly certificateRevoked?: grpc.Server;
  /** A certificate refused for any other reason (foreign CA, expired, resumed session); default: destroyed. */
  readonly certificateUnknown?: grpc.Server;
}

export interface TlsListenerMaterial {
  /** PEM of the server leaf; if it holds only the leaf, the CA is sent after it so clients can check the CA pin. */
  readonly serverCertificatePem: string;
  readonly serverPrivateKeyPem: string;
  /** The gateway CA: client certificates must chain to it. */
  readonly caCertificatePem: string;
  /** See the CRL gotcha above: once set, it must be kept current. */
  readonly crlPem?: string;
}

/** What happened to one connection; for logs and counters, never needed for correctness. */
export type TlsListenerEvent =
  | { readonly kind: 'accepted'; readonly fingerprint: string | null; readonly remoteAddress: string | null }
  | {
      readonly kind: 'refused';
      /** OpenSSL's verify code (`CERT_REVOKED`, `CERT_HAS_EXPIRED`, …) or one of ours (see `RefusalReason`). */
      readonly reason: string;
      readonly fingerprint: string | null;
      readonly remoteAddress: string | null;
    }
  | { readonly kind: 'handshake_error'; readonly message: string; readonly remoteAddress: string | null }
  | { readonly kind: 'socket_error'; readonly message: string; readonly fingerprint: string | null }
  | { readonly kind: 'listener_error'; readonly message: string };

/** Our refusal reasons beside OpenSSL's verify codes. */
export const RefusalReason = {
  revokedFingerprint: 'FINGERPRINT_REVOKED',
  revocationCheckFailed: 'REVOCATION_CHECK_FAILED',
  resumedSession: 'RESUMED_SESSION_WITH_CERTIFICATE',
  noHttp2: 'ALPN_NOT_H2',
  handshakeLimit: 'HANDSHAKE_LIMIT',
  connectionLimit: 'UNAUTHENTICATED_CONNECTION_LIMIT',
} as const;

/** Verdicts that mean "revoked" (the rest mean "not a certificate of ours"). */
const REVOKED_VERDICTS: ReadonlySet<string> = new Set(['CERT_REVOKED', RefusalReason.revokedFingerprint, RefusalReason.revocationCheckFailed]);

/** The address a socket came from, with IPv4-mapped IPv6 folded to IPv4 so one host counts once. */
function sourceOf(socket: net.Socket): string {
  const address = socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function connectionKey(socket: net.Socket): string {
  return `${socket.remoteAddress ?? ''}|${String(socket.remotePort ?? 0)}`;
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

export interface TlsListenerOptions extends TlsListenerMaterial {
  readonly host: string;
  /** 0 = any free port; `TlsListener.port` tells the bound one. */
  readonly port: number;
  /** Services already added; it is neither bound nor shut down by the listener. */
  readonly grpcServer: grpc.Server;
  /** false = the insecure opt-out: client certificates are never asked for, every handler sees no fingerprint. */
  readonly requestClientCertificates: boolean;
  /** Checked at every handshake in addition to the CRL; a throw counts as revoked (fail closed). */
  readonly isCertificateRevoked?: (fingerprint: string) => boolean;
  /** Must not throw; a throw is swallowed so that logging can never break the accept path. */
  readonly onEvent?: (event: TlsListenerEvent) => void;
  readonly routes?: TlsListenerRoutes;
  readonly limits?: Partial<ConnectionLimits>;
}

function countCertificates(pem: string): number {
  return decodePemBlocks(pem, 'certificate_parsing_failed').filter((block) => block.label === CERTIFICATE_PEM_LABEL)
    .length;
}

/** The server chain as sent: leaf, then the CA unless the caller already gave a chain. */
function serverChainPem(material: TlsListenerMaterial): string {
  if (countCertificates(material.serverCertificatePem) > 1) return material.serverCertificatePem;
  return `${material.serverCertificatePem.trim()}\n${material.caCertificatePem.trim()}\n`;
}

function secureContextOptions(material: TlsListenerMaterial): tls.SecureContextOptions {
  return {
    cert: serverChainPem(material),
    key: material.serverPrivateKeyPem,
    ca: material.caCertificatePem,
    ...(material.crlPem === undefined ? {} : { crl: material.crlPem }),
    minVersion: TLS_MIN_VERSION,
  };
}

/** Builds the context once to surface bad PEMs, mismatched keys and bad CRLs as one error before anything changes. */
function validatedContextOptions(material: TlsListenerMaterial): tls.SecureContextOptions {
  const options = secureContextOptions(material);
  try {
    tls.createSecureContext(options);
  } catch (cause) {
    throw new PalyraError('invalid_key_material', 'the TLS listener certificate, key, CA or CRL was refused', { cause });
  }
  return options;
}

function validateAddress(host: string, port: number): void {
  if (host.trim().length === 0) throw new PalyraError('invalid_argument', 'TLS listener host must not be empty');
  if (!Number.isSafeInteger(port) || port < 0 || port > 65_535) {
    throw new PalyraError('invalid_argument', 'TLS listener port must be an integer in 0..65535', { details: { port } });
  }
}

/** DER of the certificate the client presented, or null; `getPeerCertificate()` is `{}` when there is none. */
function presentedCertificateDer(socket: tls.TLSSocket): Uint8Array | null {
  const raw: unknown = (socket.getPeerCertificate() as Partial<tls.PeerCertificate>).raw;
  return raw instanceof Uint8Array && raw.length > 0 ? raw : null;
}

export class TlsListener {
  readonly host: string;
  readonly port: number;
  readonly #server: tls.Server;
  readonly #injector: grpc.ConnectionInjector;
  readonly #unauthenticatedInjector: grpc.ConnectionInjector;
  readonly #revokedInjector: grpc.ConnectionInjector | null;
  readonly #unknownInjector: grpc.ConnectionInjector | null;
  readonly #limits: ConnectionLimits;
  /** Raw sockets still in the handshake, by connection key, and their counts per source. */
  readonly #pending = new Map<string, string>();
  readonly #pendingBySource = new Map<string, number>();
  /** Sockets without an accepted certificate (none, or refused but routed), per source and in total. */
  readonly #unauthenticatedBySource = new Map<string, number>();
  #unauthenticatedTotal = 0;
  /** Refused sockets routed to a refusal server; not in #live (they authenticate nothing). */
  readonly #refused = new Set<tls.TLSSocket>();
  readonly #requestClientCertificates: boolean;
  readonly #isCertificateRevoked: ((fingerprint: string) => boolean) | undefined;
  readonly #onEvent: ((event: TlsListenerEvent) => void) | undefined;
  #material: TlsListenerMaterial;
  /** Every accepted TCP socket until it closes, so `close()` can also end handshakes still in progress. */
  readonly #rawSockets = new Set<net.Socket>();
  /** Sockets handed to gRPC, with the fingerprint they authenticated with. */
  readonly #live = new Map<tls.TLSSocket, string | null>();
  /** Index for `closeConnections`: fingerprint → its live sockets; cert-less ones apart. */
  readonly #byFingerprint = new Map<string, Set<tls.TLSSocket>>();
  readonly #withoutCertificate = new Set<tls.TLSSocket>();
  #closing: Promise<void> | undefined;

  private constructor(options: TlsListenerOptions, server: tls.Server, port: number, material: TlsListenerMaterial) {
    this.host = options.host;
    this.port = port;
    this.#server = server;
    const insecure = grpc.ServerCredentials.createInsecure();
    this.#injector = options.grpcServer.createConnectionInjector(insecure);
    const routes = options.routes ?? {};
    this.#unauthenticatedInjector =
      routes.unauthenticated === undefined ? this.#injector : routes.unauthenticated.createConnectionInjector(insecure);
    this.#revokedInjector = routes.certificateRevoked?.createConnectionInjector(insecure) ?? null;
    this.#unknownInjector = routes.certificateUnknown?.createConnectionInjector(insecure) ?? null;
    this.#limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
    this.#requestClientCertificates = options.requestClientCertificates;
    this.#isCertificateRevoked = options.isCertificateRevoked;
    this.#onEvent = options.onEvent;
    this.#material = material;
    server.on('connection', (raw: net.Socket) => {
      this.#onConnection(raw);
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.#onSecureConnection(socket);
    });
    // Node destroys the socket itself after a failed handshake; this only reports it.
    server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
      this.#emit({ kind: 'handshake_error', message: error.message, remoteAddress: socket.remoteAddress ?? null });
    });
    server.on('error', (error: Error) => {
      this.#emit({ kind: 'listener_error', message: error.message });
    });
  }

  /** Binds `host:port` and starts judging handshakes; rejects if the material is refused or the bind fails. */
  static async start(options: TlsListenerOptions): Promise<TlsListener> {
    validateAddress(options.host, options.port);
    const material: TlsListenerMaterial = {
      serverCertificatePem: options.serverCertificatePem,
      serverPrivateKeyPem: options.serverPrivateKeyPem,
      caCertificatePem: options.caCertificatePem,
      ...(options.crlPem === undefined ? {} : { crlPem: options.crlPem }),
    };
    const server = tls.createServer({
      ...validatedContextOptions(material),
      requestCert: options.requestClientCertificates,
      // We judge presented certificates ourselves so that a client without one is still let through.
      rejectUnauthorized: false,
      ALPNProtocols: GRPC_ALPN_PROTOCOLS,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    });
    const port = await new Promise<number>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(
          new PalyraError('unavailable', `cannot listen on ${options.host}:${options.port}: ${error.message}`, {
            details: { host: options.host, port: options.port, errno: error.code ?? null },
            cause: error,
          }),
        );
      };
      server.once('error', onError);
      server.listen(options.port, options.host, () => {
        server.off('error', onError);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
    // Handlers attach in the constructor, still within the listen callback's turn: no connection can arrive before.
    return new TlsListener(options, server, port, material);
  }

  /**
   * Swaps certificate, key, CA and/or CRL for new handshakes without a restart (absent fields keep their value);
   * live connections keep the material they were accepted with. Throws, changing nothing, if the result is refused.
   */
  updateSecureContext(update: Partial<TlsListenerMaterial>): void {
    const crlPem = update.crlPem ?? this.#material.crlPem;
    const next: TlsListenerMaterial = {
      serverCertificatePem: update.serverCertificatePem ?? this.#material.serverCertificatePem,
      serverPrivateKeyPem: update.serverPrivateKeyPem ?? this.#material.serverPrivateKeyPem,
      caCertificatePem: update.caCertificatePem ?? this.#material.caCertificatePem,
      ...(crlPem === undefined ? {} : { crlPem }),
    };
    const current = this.#material;
    // Every state change hands the CRL in again (gateway.ts); rebuilding an identical context costs ≈ 2–5 ms of CPU
    // (PEM parsing, key import) per pairing for nothing.
    if (
      next.serverCertificatePem === current.serverCertificatePem &&
      next.serverPrivateKeyPem === current.serverPrivateKeyPem &&
      next.caCertificatePem === current.caCertificatePem &&
      next.crlPem === current.crlPem
    ) {
      return;
    }
    this.#server.setSecureContext(validatedContextOptions(next));
    this.#material = next;
  }

  /**
   * Destroys every live socket whose fingerprint (null = no client certificate) matches; their gRPC calls and streams
   * end at once. The predicate runs once per distinct fingerprint, not per socket. Returns how many were closed.
   */
  closeConnections(predicate: (fingerprint: string | null) => boolean): number {
    const victims: tls.TLSSocket[] = [];
    for (const [fingerprint, sockets] of this.#byFingerprint) {
      if (predicate(fingerprint)) victims.push(...sockets);
    }
    if (this.#withoutCertificate.size > 0 && predicate(null)) victims.push(...this.#withoutCertificate);
    for (const socket of victims) {
      this.#untrack(socket);
      socket.destroy();
    }
    return victims.length;
  }

  /** Sockets handed to gRPC and not yet closed (refused ones routed to a refusal server not included). */
  liveConnectionCount(): number {
    return this.#live.size;
  }

  /** Connections without an accepted certificate now open, and handshakes in progress (for tests and logs). */
  unauthenticatedCounts(): { connections: number; pendingHandshakes: number } {
    return { connections: this.#unauthenticatedTotal, pendingHandshakes: this.#pending.size };
  }

  /**
   * Stops accepting, lets gRPC drain its sessions for `graceMs`, then destroys whatever remains (handshakes in
   * progress included). Resolves once the port is released; later calls return the same promise.
   */
  close(graceMs: number = DEFAULT_CLOSE_GRACE_MS): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
    this.#injector.drain(graceMs);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, graceMs));
    });
    await Promise.race([closed, graceOver]);
    clearTimeout(timer);
    for (const socket of [...this.#live.keys(), ...this.#refused]) {
      this.#untrack(socket);
      socket.destroy();
    }
    this.#refused.clear();
    for (const raw of this.#rawSockets) raw.destroy();
    const injectors = new Set([this.#injector, this.#unauthenticatedInjector, this.#revokedInjector, this.#unknownInjector]);
    for (const injector of injectors) injector?.destroy();
    await closed;
  }

  #onConnection(raw: net.Socket): void {
    this.#rawSockets.add(raw);
    const source = sourceOf(raw);
    const key = connectionKey(raw);
    raw.once('close', () => {
      this.#rawSockets.delete(raw);
      this.#handshakeOver(key);
    });
    const limits = this.#limits;
    if ((this.#pendingBySource.get(source) ?? 0) >= limits.maxPendingHandshakesPerSource || this.#pending.size >= limits.maxPendingHandshakesTotal) {
      raw.destroy();
      this.#emit({ kind: 'refused', reason: RefusalReason.handshakeLimit, fingerprint: null, remoteAddress: source });
      return;
    }
    this.#pending.set(key, source);
    increment(this.#pendingBySource, source);
  }

  #handshakeOver(key: string): void {
    const source = this.#pending.get(key);
    if (source === undefined) return;
    this.#pending.delete(key);
    decrement(this.#pendingBySource, source);
  }

  /** Counts a socket without an accepted certificate; false (and nothing counted) when a cap is reached. */
  #admitUnauthenticated(socket: tls.TLSSocket): boolean {
    const source = sourceOf(socket);
    const limits = this.#limits;
    if ((this.#unauthenticatedBySource.get(source) ?? 0) >= limits.maxUnauthenticatedConnectionsPerSource) return false;
    if (this.#unauthenticatedTotal >= limits.maxUnauthenticatedConnectionsTotal) return false;
    increment(this.#unauthenticatedBySource, source);
    this.#unauthenticatedTotal += 1;
    socket.once('close', () => {
      decrement(this.#unauthenticatedBySource, source);
      this.#unauthenticatedTotal -= 1;
    });
    return true;
  }

  #onSecureConnection(socket: tls.TLSSocket): void {
    this.#handshakeOver(connectionKey(socket));
    let fingerprint: string | null = null;
    // Registered first: a client's error after this point must never become an unhandled 'error' event.
    socket.on('error', (error: Error) => {
      this.#emit({ kind: 'socket_error', message: error.message, fingerprint });
    });
    if (socket.destroyed) return;
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    const remoteAddress = socket.remoteAddress ?? null;
    // Without a request the client sends no certificate, and grpc-js reports none (the socket is not `authorized`).
    const der = this.#requestClientCertificates ? presentedCertificateDer(socket) : null;
    let refusal: string | null = null;
    if (der !== null) {
      fingerprint = certificateFingerprint(der);
      refusal = this.#refusalReason(socket, fingerprint);
    }
    // Without ALPN h2 the HTTP/2 server would only answer 403 and hold the socket for its 10 s unknown-protocol timeout.
    if (socket.alpnProtocol !== 'h2') {
      socket.destroy();
      this.#emit({ kind: 'refused', reason: refusal ?? RefusalReason.noHttp2, fingerprint, remoteAddress });
      return;
    }
    if (refusal !== null) {
      this.#emit({ kind: 'refused', reason: refusal, fingerprint, remoteAddress });
      // The handshake had to complete (pairing needs no certificate), so the verdict is told as a gRPC status.
      const injector = REVOKED_VERDICTS.has(refusal) ? this.#revokedInjector : this.#unknownInjector;
      if (injector === null || !this.#admitUnauthenticated(socket)) {
        socket.destroy();
        return;
      }
      this.#refused.add(socket);
      socket.once('close', () => this.#refused.delete(socket));
      injector.injectConnection(socket);
      return;
    }
    const unauthenticated = fingerprint === null && this.#unauthenticatedInjector !== this.#injector;
    if (unauthenticated && !this.#admitUnauthenticated(socket)) {
      socket.destroy();
      this.#emit({ kind: 'refused', reason: RefusalReason.connectionLimit, fingerprint, remoteAddress });
      return;
    }
    this.#track(socket, fingerprint);
    this.#emit({ kind: 'accepted', fingerprint, remoteAddress });
    (unauthenticated ? this.#unauthenticatedInjector : this.#injector).injectConnection(socket);
  }

  #refusalReason(socket: tls.TLSSocket, fingerprint: string): string | null {
    if (!socket.authorized) return String(socket.authorizationError);
    // OpenSSL re-uses a resumed session's original verdict, so expiry since then would go unnoticed; grpc-js never
    // resumes, and a material swap voids old tickets anyway, so refusing costs honest clients nothing.
    if (socket.isSessionReused()) return RefusalReason.resumedSession;
    if (this.#isCertificateRevoked === undefined) return null;
    try {
      return this.#isCertificateRevoked(fingerprint) ? RefusalReason.revokedFingerprint : null;
    } catch {
      return RefusalReason.revocationCheckFailed;
    }
  }

  #track(socket: tls.TLSSocket, fingerprint: string | null): void {
    this.#live.set(socket, fingerprint);
    if (fingerprint === null) {
      this.#withoutCertificate.add(socket);
    } else {
      let sockets = this.#byFingerprint.get(fingerprint);
      if (sockets === undefined) {
        sockets = new Set();
        this.#byFingerprint.set(fingerprint, sockets);
      }
      sockets.add(socket);
    }
    socket.once('close', () => {
      this.#untrack(socket);
    });
  }

  #untrack(socket: tls.TLSSocket): void {
    if (!this.#live.has(socket)) return;
    const fingerprint = this.#live.get(socket) ?? null;
    this.#live.delete(socket);
    if (fingerprint === null) {
      this.#withoutCertificate.delete(socket);
      return;
    }
    const sockets = this.#byFingerprint.get(fingerprint);
    sockets?.delete(socket);
    if (sockets?.size === 0) this.#byFingerprint.delete(fingerprint);
  }

  #emit(event: TlsListenerEvent): void {
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch {
      // A failing log sink must not take the accept path down with it.
    }
  }
}

/**
 * Hex SHA-256 of the DER of the certificate the peer authenticated with, or null when it presented none (grpc-js
 * reports a certificate only for an `authorized` TLS socket, i.e. never in the opt-out mode).
 */
export function callPeerFingerprint(call: { getAuthContext(): unknown }): string | null {
  const context = call.getAuthContext();
  if (typeof context !== 'object' || context === null || !('sslPeerCertificate' in context)) return null;
  const peer = context.sslPeerCertificate;
  if (typeof peer !== 'object' || peer === null || !('raw' in peer)) return null;
  const raw = peer.raw;
  return raw instanceof Uint8Array && raw.length > 0 ? certificateFingerprint(raw) : null;
}
