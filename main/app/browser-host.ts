/**
 * Browser mode (ARCHITECTURE.md): the same main-process services and IPC contract, served to the same renderer in
 * any browser over loopback. Plain Node, no Electron.
 *
 * - HTTP on 127.0.0.1:PORT serves the built renderer (dist/renderer) with a strict CSP, or a built-in page saying
 *   the renderer is not built yet. Requests whose Host is not ours are refused (DNS rebinding).
 * - WebSocket at /ipc. The upgrade needs Host `127.0.0.1:PORT` or `localhost:PORT` and Origin exactly
 *   `http://<that host>`; anything else is refused before the WebSocket exists.
 * - A random 32-byte token, printed once in the URL's fragment (`http://127.0.0.1:PORT/#token=…`), which browsers
 *   never send to the server. The page's first WebSocket message carries it: `{"type":"auth","token":"…"}`. A wrong
 *   or missing token closes the socket with code 4401 and nothing is served on it; a right one is answered with
 *   `{"type":"ready"}`. Each tab authenticates on its own.
 * - Then calls `{"id","channel","args"}` → `{"id","envelope"}` (the contract's envelope, through the IpcRouter), and
 *   events `{"event","payload"}` pushed to every authenticated socket. Messages are bounded (1 MiB).
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import type { EventName, IpcEnvelope } from '../ipc/contract.js';
import { IpcRouter } from './ipc-router.js';
import type { ChannelHandlers, IpcLog } from './ipc-router.js';

/** Largest WebSocket message either way; a QR payload or any contract argument is far below. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Close code for a missing or wrong token (4000–4999 are the application's; 401 as in HTTP). */
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
  /** Defaults to 32 random bytes, base64url. */
  token?: string;
  log?: IpcLog;
}

export interface BrowserHost {
  /** `http://127.0.0.1:PORT/#token=…`: the one URL to open. */
  readonly url: string;
  readonly port: number;
  readonly origin: string;
  readonly token: string;
  /** Closes every socket and the server. */
  close(): Promise<void>;
}

/**
 * The page's Content-Security-Policy: nothing but our own origin, our WebSocket, and the camera's media streams.
 * 'wasm-unsafe-eval' lets the QR worker compile zxing-wasm's WebAssembly (served from this origin); it allows no
 * JavaScript eval.
 */
export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    `connect-src 'self' ws://127.0.0.1:${port}`,
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Shown when dist/renderer has no index.html yet (no script: the CSP would refuse an inline one anyway). */
const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Palyra Desktop</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#eee;padding:0 .25rem}</style>
</head>
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
function tokenMatches(given: unknown, expected: Buffer): boolean {
  return typeof given === 'string' && given.length <= 1024 && timingSafeEqual(digest(given), expected);
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
  const token = options.token ?? randomBytes(32).toString('base64url');
  const expected = digest(token);
  const rendererDir = path.resolve(options.rendererDir);
  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false, clientTracking: true });
  let port = 0;
  const allowedHosts = (): string[] => [`127.0.0.1:${port}`, `localhost:${port}`];

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void serveHttp(req, res).catch((error: unknown) => {
      log({ event: 'browser_host.http_error', message: error instanceof Error ? error.message : String(error) });
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('internal error');
    });
  });

  async function serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const common = {
      'Content-Security-Policy': contentSecurityPolicy(port),
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Frame-Options': 'DENY',
      'Permissions-Policy': 'camera=(self), microphone=(), geolocation=()',
      'Cache-Control': 'no-store',
    };
    const text = (status: number, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { ...common, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (!allowedHosts().includes(req.headers.host ?? '')) {
      text(403, 'forbidden host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      text(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    const file = resolveStaticPath(rendererDir, req.url ?? '/');
    if (file === null) {
      text(404, 'not found\n');
      return;
    }
    let body: Buffer | null = null;
    try {
      if ((await stat(file)).isFile()) body = await readFile(file);
    } catch {
      body = null;
    }
    if (body === null && file === path.join(rendererDir, 'index.html')) body = Buffer.from(NOT_BUILT_PAGE, 'utf8');
    if (body === null && file === path.join(rendererDir, 'favicon.ico')) {
      // Browsers ask for it on their own; no icon is not an error worth a console line.
      res.writeHead(204, common);
      res.end();
      return;
    }
    if (body === null) {
      text(404, 'not found\n');
      return;
    }
    res.writeHead(200, { ...common, 'Content-Type': contentTypeOf(file), 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
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
    wss.handleUpgrade(req, socket, head, (ws) => {
      onConnection(ws);
    });
  });

  function onConnection(ws: WebSocket): void {
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
      const fields = typeof message === 'object' && message !== null ? (message as Record<string, unknown>) : {};
      if (!authenticated) {
        clearTimeout(authTimer);
        if (fields.type !== 'auth' || !tokenMatches(fields.token, expected)) {
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
  const origin = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | null = null;

  return {
    url: `${origin}/#token=${token}`,
    port,
    origin,
    token,
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

/**
 * The file a request path names under `root`, or null for anything that could leave it (`..`, encoded slashes,
 * NUL). `/` is index.html. Query strings are ignored.
 */
export function resolveStaticPath(root: string, url: string): string | null {
  const pathname = url.split('?', 1)[0] ?? '';
  if (!pathname.startsWith('/')) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s === '.')) return null;
  if (decoded.endsWith('/')) segments.push('index.html');
  if (segments.length === 0) segments.push('index.html');
  const file = path.join(root, ...segments);
  return file.startsWith(root + path.sep) ? file : null;
}
