/**
 * Browser mode (ARCHITECTURE.md): the same main-process services and IPC contract, served to the same renderer in
 * any browser over loopback. Plain Node, no Electron.
 *
 * - HTTP on 127.0.0.1:PORT serves the built renderer (dist/renderer) under the renderer policy Electron serves it
 *   with too (renderer-policy.ts: the CSP, file types, path rules), or a built-in page saying the renderer is not
 *   built yet. Requests whose Host is not ours are refused (DNS rebinding).
 * - A printed link `http://127.0.0.1:PORT/#token=…` carries a random 32-byte one-time token in its fragment. The
 *   page POSTs it to `/session` (same origin, JSON); the first exchange spends it and answers 204 with a session
 *   cookie (`palyra_session_PORT`, HttpOnly, SameSite=Strict, Path=/, no expiry); any later one answers 410
 *   `browser_link_used`. At most one link is live: `newLink()` spends the previous one. So a link found in the
 *   browser's history opens nothing.
 * - Automation uses the automation credential instead (browser-main writes it to a 0600 file), as that cookie or in
 *   the auth message. It also authorises `POST /link` (Bearer), which mints a fresh link.
 * - WebSocket at /ipc. The upgrade needs Host `127.0.0.1:PORT` or `localhost:PORT` and Origin exactly
 *   `http://<that host>`; anything else is refused before the WebSocket exists. The first message is
 *   `{"type":"auth"}` (authenticated by the cookie sent with the upgrade) or `{"type":"auth","credential":"…"}`;
 *   anything else closes the socket with code 4401 and nothing is served on it; success is answered
 *   `{"type":"ready"}`.
 * - Then calls `{"id","channel","args"}` → `{"id","envelope"}` (the contract's envelope, through the IpcRouter), and
 *   events `{"event","payload"}` pushed to every authenticated socket. Messages are bounded (1 MiB).
 *
 * Secrets are compared with timingSafeEqual on SHA-256 digests; only digests are kept.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import type { EventName, IpcEnvelope } from '../ipc/contract.js';
import { IpcRouter } from './ipc-router.js';
import type { ChannelHandlers, IpcLog } from './ipc-router.js';
import { readRendererFile, rendererContentSecurityPolicy, rendererEntryFile, rendererFileForPath, rendererResponseHeaders } from './renderer-policy.js';

/** Largest WebSocket message either way; a QR payload or any contract argument is far below. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Close code for a missing or wrong credential (4000–4999 are the application's; 401 as in HTTP). */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code for a frame that is not a JSON text message. */
const CLOSE_UNSUPPORTED = 1003;
/** A socket that has not authenticated by then is closed, so idle unauthenticated sockets cannot pile up. */
const AUTH_TIMEOUT_MS = 10_000;
/** An authenticated socket this far behind on events is closed rather than buffering without bound. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Longest call id echoed back. */
const MAX_CALL_ID_LENGTH = 64;
export const IPC_PATH = '/ipc';
/** Where the page exchanges its one-time link token for the session cookie (POST), or checks the cookie (GET). */
export const SESSION_PATH = '/session';
/** Where automation mints a fresh one-time link (POST, `Authorization: Bearer <automation credential>`). */
export const LINK_PATH = '/link';
/** Largest request body the host reads (an exchange is `{"token":"<43 characters>"}`). */
const MAX_BODY_BYTES = 4096;
/** Spent links remembered, to tell "already used" from "never ours"; each needs the credential to mint. */
const MAX_SPENT_LINKS = 256;
/** Browser sessions kept; each needs a link, so this is only a backstop. The oldest is dropped first. */
const MAX_SESSIONS = 1024;
/** Longest secret even compared. */
const MAX_SECRET_LENGTH = 1024;

/**
 * The session cookie's name. The port is part of it because browsers scope cookies by host, not port: two
 * instances on 127.0.0.1 must not overwrite each other's session.
 */
export function sessionCookieName(port: number): string {
  return `palyra_session_${port}`;
}

/** What the host needs from the services: the channel handlers and the event stream. */
export interface HostedServices {
  readonly handlers: ChannelHandlers;
  onEvent(listener: (event: EventName, payload: unknown) => void): () => void;
}

export interface BrowserHostOptions {
  services: HostedServices;
  /** 0 (default) = any free port. */
  port?: number;
  /** The renderer's build output (index.html + assets). */
  rendererDir: string;
  /** The automation credential; defaults to 32 random bytes, base64url. */
  credential?: string;
  log?: IpcLog;
}

export interface BrowserHost {
  /** `http://127.0.0.1:PORT/#token=…`: the first one-time link. */
  readonly url: string;
  readonly port: number;
  readonly origin: string;
  /** For automation: as the session cookie, in the auth message, or as the Bearer of `POST /link`. */
  readonly credential: string;
  /** A fresh one-time link; the previous link stops working if it was not used yet. */
  newLink(): string;
  /** Closes every socket and the server. */
  close(): Promise<void>;
}

/**
 * The page's Content-Security-Policy: the one renderer policy Electron serves too (renderer-policy.ts), whose only
 * difference here is connect-src naming our own IPC WebSocket, `ws://127.0.0.1:PORT`.
 */
export function contentSecurityPolicy(port: number): string {
  return rendererContentSecurityPolicy({ ipcWebSocketPort: port });
}

/**
 * Every HTTP response's headers: the renderer's (the CSP above, nosniff, COOP, CORP, no referrer), plus what a
 * browser needs told that Electron enforces itself (no framing, the camera only, no caching of the page).
 */
export function browserResponseHeaders(port: number): Readonly<Record<string, string>> {
  return Object.freeze({
    ...rendererResponseHeaders({ ipcWebSocketPort: port }),
    'X-Frame-Options': 'DENY',
    'Permissions-Policy': 'camera=(self), microphone=(), geolocation=()',
    'Cache-Control': 'no-store',
  });
}

/** Shown when dist/renderer has no index.html yet. Unstyled, no script: the CSP refuses inline ones. */
const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Palyra Desktop</title></head>
<body>
<h1>Palyra Desktop</h1>
<p id="renderer-not-built">The renderer is not built yet. Run <code>npm run build:renderer</code> (or <code>npm start</code>, which builds
what is missing), then reload this page.</p>
<p>The main-process services are running: automation clients can use the WebSocket at <code>/ipc</code>.</p>
</body>
</html>
`;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Constant-time comparison whatever the lengths. */
function secretMatches(given: unknown, expected: Buffer): boolean {
  return typeof given === 'string' && given.length <= MAX_SECRET_LENGTH && timingSafeEqual(digest(given), expected);
}

/** Digests of secrets, the oldest dropped beyond `limit`; membership is checked against every entry. */
class DigestSet {
  readonly #digests: Buffer[] = [];
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  add(value: Buffer): void {
    this.#digests.push(value);
    if (this.#digests.length > this.#limit) this.#digests.shift();
  }

  has(given: unknown): boolean {
    if (typeof given !== 'string' || given.length > MAX_SECRET_LENGTH) return false;
    const d = digest(given);
    let found = false;
    for (const candidate of this.#digests) found = timingSafeEqual(d, candidate) || found;
    return found;
  }
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The values of every cookie named `name` in a Cookie header. */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function isCallId(value: unknown): value is string | number {
  return (typeof value === 'string' && value.length > 0 && value.length <= MAX_CALL_ID_LENGTH) || (typeof value === 'number' && Number.isSafeInteger(value));
}

function refuseUpgrade(socket: Socket, status: number, reason: string): void {
  socket.on('error', () => undefined);
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${reason.length}\r\n\r\n${reason}`);
  socket.destroySoon();
}

export async function startBrowserHost(options: BrowserHostOptions): Promise<BrowserHost> {
  const log = options.log ?? (() => undefined);
  const router = new IpcRouter(options.services.handlers, { log });
  const credential = options.credential ?? newSecret();
  const automation = digest(credential);
  const sessions = new DigestSet(MAX_SESSIONS);
  const spentLinks = new DigestSet(MAX_SPENT_LINKS);
  let liveLink: Buffer | null = null;
  const rendererDir = path.resolve(options.rendererDir);
  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false, clientTracking: true });
  let port = 0;
  let origin = '';
  const allowedHosts = (): string[] => [`127.0.0.1:${port}`, `localhost:${port}`];
  const isCredential = (given: unknown): boolean => sessions.has(given) || secretMatches(given, automation);
  const hasSessionCookie = (req: IncomingMessage): boolean => cookieValues(req.headers.cookie, sessionCookieName(port)).some(isCredential);

  const newLink = (): string => {
    if (liveLink !== null) spentLinks.add(liveLink);
    const token = newSecret();
    liveLink = digest(token);
    return `${origin}/#token=${token}`;
  };

  /** Spends the live link when `token` is it. */
  const exchangeLink = (token: unknown): 'exchanged' | 'used' | 'unknown' => {
    if (liveLink !== null && secretMatches(token, liveLink)) {
      spentLinks.add(liveLink);
      liveLink = null;
      return 'exchanged';
    }
    return spentLinks.has(token) ? 'used' : 'unknown';
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void serveHttp(req, res).catch((error: unknown) => {
      log({ event: 'browser_host.http_error', message: error instanceof Error ? error.message : String(error) });
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('internal error');
    });
  });

  async function serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const common = browserResponseHeaders(port);
    const text = (status: number, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { ...common, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (status: number, value: unknown, extra: Record<string, string> = {}): void => {
      const body = JSON.stringify(value);
      res.writeHead(status, { ...common, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const error = (status: number, code: string, message: string, extra: Record<string, string> = {}): void => {
      json(status, { error: { code, message } }, extra);
    };
    const host = req.headers.host ?? '';
    if (!allowedHosts().includes(host)) {
      text(403, 'forbidden host\n');
      return;
    }
    const pathname = (req.url ?? '/').split('?', 1)[0];
    if (pathname === SESSION_PATH) {
      await serveSession(req, host, error, (status, extra) => {
        res.writeHead(status, { ...common, ...extra });
        res.end();
      });
      return;
    }
    if (pathname === LINK_PATH) {
      await serveLink(req, host, error, json);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      text(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    const file = rendererFileForPath(pathname ?? '/', rendererDir);
    if (file.kind === 'not_found') {
      text(404, 'not found\n');
      return;
    }
    let body = await readRendererFile(file);
    if (body === null && file.path === rendererEntryFile(rendererDir)) body = Buffer.from(NOT_BUILT_PAGE, 'utf8');
    if (body === null && file.path === path.join(rendererDir, 'favicon.ico')) {
      // Browsers ask for it on their own; no icon is not an error worth a console line.
      res.writeHead(204, common);
      res.end();
      return;
    }
    if (body === null) {
      text(404, 'not found\n');
      return;
    }
    res.writeHead(200, { ...common, 'Content-Type': file.contentType, 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  type ErrorReply = (status: number, code: string, message: string, extra?: Record<string, string>) => void;

  /**
   * GET: 204 when the request carries a valid session cookie, else 401. POST `{"token":"…"}` from our own origin:
   * the one-time exchange.
   */
  async function serveSession(req: IncomingMessage, host: string, error: ErrorReply, empty: (status: number, extra: Record<string, string>) => void): Promise<void> {
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (hasSessionCookie(req)) empty(204, {});
      else error(401, 'unauthenticated', 'this browser has no Palyra session; open a fresh link');
      return;
    }
    if (req.method !== 'POST') {
      error(405, 'invalid_argument', 'GET, HEAD or POST', { Allow: 'GET, HEAD, POST' });
      return;
    }
    if (req.headers.origin !== `http://${host}`) {
      error(403, 'permission_denied', 'the exchange must come from the page itself');
      return;
    }
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      error(415, 'invalid_argument', 'the body must be application/json');
      return;
    }
    let token: unknown;
    try {
      const parsed: unknown = JSON.parse((await readBody(req)).toString('utf8'));
      token = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>).token : undefined;
    } catch (cause) {
      if (cause instanceof BodyTooLarge) {
        error(413, 'invalid_argument', 'the body is too large', { Connection: 'close' });
        return;
      }
      token = undefined;
    }
    if (typeof token !== 'string' || token === '') {
      error(400, 'invalid_argument', 'the body is {"token":"…"}, the token from the link');
      return;
    }
    const outcome = exchangeLink(token);
    if (outcome === 'used') {
      log({ event: 'browser_host.link_refused', reason: 'used' });
      error(410, 'browser_link_used', 'this link was already used; get a fresh one with `npm start -- --new-link` (or restart `npm start`)');
      return;
    }
    if (outcome === 'unknown') {
      log({ event: 'browser_host.link_refused', reason: 'unknown' });
      error(401, 'unauthenticated', 'this link is not one this Palyra printed (an earlier run?); get a fresh one with `npm start -- --new-link`');
      return;
    }
    const session = newSecret();
    sessions.add(digest(session));
    log({ event: 'browser_host.link_exchanged' });
    empty(204, { 'Set-Cookie': `${sessionCookieName(port)}=${session}; HttpOnly; SameSite=Strict; Path=/` });
  }

  /** POST with `Authorization: Bearer <automation credential>`: `{"url"}`, a fresh one-time link. */
  async function serveLink(req: IncomingMessage, host: string, error: ErrorReply, json: (status: number, value: unknown) => void): Promise<void> {
    if (req.method !== 'POST') {
      error(405, 'invalid_argument', 'POST only', { Allow: 'POST' });
      return;
    }
    if (req.headers.origin !== undefined && req.headers.origin !== `http://${host}`) {
      error(403, 'permission_denied', 'not from another origin');
      return;
    }
    const authorization = req.headers.authorization ?? '';
    const bearer = authorization.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : undefined;
    if (!secretMatches(bearer, automation)) {
      log({ event: 'browser_host.new_link_refused' });
      error(401, 'unauthenticated', 'a fresh link needs the automation credential (Authorization: Bearer …)');
      return;
    }
    try {
      await readBody(req);
    } catch {
      // The body is ignored either way.
    }
    log({ event: 'browser_host.new_link' });
    json(200, { url: newLink() });
  }

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const host = req.headers.host ?? '';
    if (req.url !== IPC_PATH) {
      refuseUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (!allowedHosts().includes(host) || req.headers.origin !== `http://${host}`) {
      refuseUpgrade(socket, 403, 'Forbidden');
      return;
    }
    // Checked now, used by the first message: a session ended later does not matter to this socket.
    const cookieAuthenticated = hasSessionCookie(req);
    wss.handleUpgrade(req, socket, head, (ws) => {
      onConnection(ws, cookieAuthenticated);
    });
  });

  function onConnection(ws: WebSocket, cookieAuthenticated: boolean): void {
    let authenticated = false;
    let unsubscribe: (() => void) | null = null;
    const send = (message: unknown): void => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        ws.close(1013, 'too far behind');
        return;
      }
      ws.send(JSON.stringify(message));
    };
    const authTimer = setTimeout(() => {
      ws.close(CLOSE_UNAUTHORIZED, 'authentication timed out');
    }, AUTH_TIMEOUT_MS);
    authTimer.unref();
    ws.on('error', () => undefined);
    ws.on('close', () => {
      clearTimeout(authTimer);
      unsubscribe?.();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        ws.close(CLOSE_UNSUPPORTED, 'text messages only');
        return;
      }
      let message: unknown;
      try {
        message = JSON.parse(rawText(data));
      } catch {
        message = undefined;
      }
      const fields = typeof message === 'object' && message !== null && !Array.isArray(message) ? (message as Record<string, unknown>) : {};
      if (!authenticated) {
        clearTimeout(authTimer);
        // A credential in the message must be right even when the cookie is.
        const accepted = fields.type === 'auth' && ('credential' in fields ? isCredential(fields.credential) : cookieAuthenticated);
        if (!accepted) {
          log({ event: 'browser_host.auth_refused' });
          ws.close(CLOSE_UNAUTHORIZED, 'unauthorized');
          return;
        }
        authenticated = true;
        unsubscribe = options.services.onEvent((event, payload) => {
          send({ event, payload });
        });
        send({ type: 'ready' });
        return;
      }
      if (!isCallId(fields.id)) {
        send({ id: null, envelope: { ok: false, error: { code: 'invalid_argument', message: 'a call is a JSON object {id, channel, args} with a string or integer id' } } });
        return;
      }
      const id = fields.id;
      void router.handle(fields.channel, fields.args).then((envelope: IpcEnvelope<unknown>) => {
        send({ id, envelope });
      });
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  const url = newLink();
  let closing: Promise<void> | null = null;

  return {
    url,
    port,
    origin,
    credential,
    newLink,
    close(): Promise<void> {
      closing ??= (async () => {
        for (const client of wss.clients) client.close(1001, 'host is shutting down');
        const closed = new Promise<void>((resolve) => server.close(() => {
          resolve();
        }));
        // Sockets that do not finish the closing handshake promptly are cut.
        const cut = setTimeout(() => {
          for (const client of wss.clients) client.terminate();
          server.closeAllConnections();
        }, 500);
        server.closeIdleConnections();
        await closed;
        clearTimeout(cut);
        await new Promise<void>((resolve) => { wss.close(() => {
          resolve();
        }); });
      })();
      return closing;
    },
  };
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
