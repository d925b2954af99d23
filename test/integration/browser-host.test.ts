// The browser-mode host as an automation client (or an attacker on the same machine) meets it: real HTTP and
// WebSocket on 127.0.0.1, the real DesktopServices behind it. Every channel is called, every bad argument refused,
// the one-time link, session cookie, credential, Host and Origin rules enforced, and events delivered to every
// authenticated tab.
import http from 'node:http';
import net from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { contentSecurityPolicy, MAX_MESSAGE_BYTES, sessionCookieName, startBrowserHost } from '../../main/app/browser-host.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { DeviceStore } from '../../main/device/device-store.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import { CHANNEL_NAMES } from '../../main/ipc/contract.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';
import { tempDir } from '../helpers/identity.js';
import { connectIpc, openSocket } from '../helpers/ipc-client.js';
import { stubServices, STUB_APP_INFO } from '../helpers/stub-services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function app(options: { rendererDir?: string } = {}): Promise<TestApp> {
  const a = await openTestApp(options);
  cleanups.push(() => a.cleanup());
  return a;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface RequestOptions {
  method?: string;
  host?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

function request(port: number, target: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = { host: options.host ?? `127.0.0.1:${port}`, ...options.headers };
    const req = http.request({ host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The one-time token of a link `http://127.0.0.1:PORT/#token=…`. */
function tokenOf(url: string): string {
  const token = /^#token=([A-Za-z0-9_-]{43})$/.exec(new URL(url).hash)?.[1];
  if (token === undefined) throw new Error(`not a browser-mode link: ${url}`);
  return token;
}

/** What the page does with its link: POST the token to /session from its own origin. */
function exchange(port: number, token: unknown, options: { origin?: string | null; host?: string; contentType?: string; body?: string } = {}): Promise<Reply> {
  const host = options.host ?? `127.0.0.1:${port}`;
  const origin = options.origin === undefined ? `http://${host}` : options.origin;
  return request(port, '/session', {
    method: 'POST',
    host,
    headers: { 'content-type': options.contentType ?? 'application/json', ...(origin === null ? {} : { origin }) },
    body: options.body ?? JSON.stringify({ token }),
  });
}

/** The `name=value` of the session cookie a 204 exchange set; fails the test unless its attributes are exactly ours. */
function sessionCookieOf(reply: Reply, port: number): string {
  const set = reply.headers['set-cookie'];
  expect(set).toHaveLength(1);
  const match = new RegExp(`^(${sessionCookieName(port)}=[A-Za-z0-9_-]{43}); HttpOnly; SameSite=Strict; Path=/$`).exec(set?.[0] ?? '');
  expect(match, set?.[0]).not.toBeNull();
  return match![1]!;
}

function errorCodeOf(reply: Reply): unknown {
  return (JSON.parse(reply.body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
}

const A_ID = '01HZY3V4J6K8M9N0P1Q2R3S4T5';

describe('the page', () => {
  it('serves a built-in page saying the renderer is not built, with the strict CSP', async () => {
    const a = await app();
    const page = await request(a.host.port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(contentSecurityPolicy(a.host.port));
    expect(page.headers['content-security-policy']).toBe(
      "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
        `connect-src 'self' ws://127.0.0.1:${a.host.port}; media-src 'self'; worker-src 'self'; manifest-src 'self'; frame-src 'none'; ` +
        "child-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.body.toString()).toContain('renderer is not built');
    expect(page.body.toString()).not.toContain(tokenOf(a.host.url));
    expect(page.body.toString()).not.toContain(a.host.credential);
    expect((await request(a.host.port, '/index.html')).status).toBe(200);
    const head = await request(a.host.port, '/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it('serves the built renderer with the right content types, and nothing outside it nor of another type', async () => {
    const { dir, cleanup } = await tempDir('palyra-renderer-');
    cleanups.push(cleanup);
    const rendererDir = path.join(dir, 'renderer');
    await mkdir(path.join(rendererDir, 'assets'), { recursive: true });
    await writeFile(path.join(rendererDir, 'index.html'), '<!doctype html><title>built</title><script type="module" src="./assets/app.js"></script>');
    await writeFile(path.join(rendererDir, 'assets/app.js'), 'export {};');
    await writeFile(path.join(rendererDir, 'assets/app.css'), 'body{}');
    await writeFile(path.join(rendererDir, 'assets/logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(path.join(rendererDir, 'assets/qr.wasm'), Buffer.from([0, 97, 115, 109]));
    await writeFile(path.join(rendererDir, 'assets/blob.xyz'), 'x');
    await writeFile(path.join(dir, 'secret.txt'), 'outside the renderer');
    const a = await app({ rendererDir });
    const port = a.host.port;

    const index = await request(port, '/');
    expect(index.status).toBe(200);
    expect(index.body.toString()).toContain('<title>built</title>');
    expect(index.headers['content-security-policy']).toBe(contentSecurityPolicy(port));
    const types: [string, string][] = [
      ['/assets/app.js', 'text/javascript; charset=utf-8'],
      ['/assets/app.css', 'text/css; charset=utf-8'],
      ['/assets/logo.svg', 'image/svg+xml'],
      ['/assets/qr.wasm', 'application/wasm'],
      ['/assets/app.js?v=2', 'text/javascript; charset=utf-8'],
    ];
    for (const [target, type] of types) {
      const reply = await request(port, target);
      expect(reply.status, target).toBe(200);
      expect(reply.headers['content-type'], target).toBe(type);
      expect(reply.headers['content-security-policy'], target).toBe(contentSecurityPolicy(port));
    }
    for (const target of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/assets%5c..%5c..%5csecret.txt', '/%00', '/assets', '/nope.js', '/%E0%A4%A', '/assets/blob.xyz']) {
      const reply = await request(port, target);
      expect(reply.status, target).toBe(404);
      expect(reply.body.toString()).not.toContain('outside the renderer');
    }
    expect((await request(port, '/', { method: 'POST' })).status).toBe(405);
  });

  it('refuses requests whose Host is not ours (DNS rebinding), also for the page', async () => {
    const a = await app();
    const port = a.host.port;
    expect((await request(port, '/', { host: `localhost:${port}` })).status).toBe(200);
    for (const host of [`evil.example:${port}`, '127.0.0.1', `127.0.0.1:${port + 1}`, `LOCALHOST:${port}`, `127.0.0.1:${port}.evil.example`]) {
      expect((await request(port, '/', { host })).status, host).toBe(403);
    }
    // No Host header at all (HTTP/1.0 allows that): still not the page.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end('GET / HTTP/1.0\r\n\r\n');
      });
      let text = '';
      socket.setEncoding('utf8').on('data', (c: string) => (text += c));
      socket.on('end', () => { resolve(text); }).on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.[01] 4\d\d /);
    expect(raw).not.toContain('Palyra Desktop');
  });
});

describe('the one-time link', () => {
  it('exchanges the token once for an HttpOnly SameSite=Strict session cookie; a second use is 410 browser_link_used', async () => {
    const a = await app();
    const port = a.host.port;
    const token = tokenOf(a.host.url);
    expect(new URL(a.host.url).origin).toBe(a.host.origin);
    expect(token).not.toBe(a.host.credential);

    const first = await exchange(port, token);
    expect(first.status).toBe(204);
    expect(first.body.length).toBe(0);
    expect(first.headers['cache-control']).toBe('no-store');
    // A session cookie (no Expires / Max-Age), only for HTTP, never sent cross-site, for the whole origin.
    const cookie = sessionCookieOf(first, port);
    expect(cookie).not.toContain(token);
    expect(cookie).not.toContain(a.host.credential);

    // The same token again, as from the browser's history: spent.
    for (let i = 0; i < 2; i++) {
      const again = await exchange(port, token);
      expect(again.status).toBe(410);
      expect(again.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(again.headers['set-cookie']).toBeUndefined();
      expect(errorCodeOf(again)).toBe('browser_link_used');
      expect(again.body.toString()).toContain('npm start -- --new-link');
    }
    // Even from localhost, the other name of this host.
    expect((await exchange(port, token, { host: `localhost:${port}` })).status).toBe(410);

    // The cookie opens the WebSocket (checked at the upgrade) and answers the page's session check.
    const tab = await connectIpc(a.host, { cookie, credential: null });
    cleanups.push(() => tab.close());
    expect(await tab.call('app.info')).toMatchObject({ ok: true, result: { mode: 'browser' } });
    expect((await request(port, '/session', { headers: { cookie: `other=1; ${cookie}` } })).status).toBe(204);
    const noSession = await request(port, '/session');
    expect(noSession.status).toBe(401);
    expect(errorCodeOf(noSession)).toBe('unauthenticated');
    // A second tab of the same browser profile shares the cookie.
    const sameProfile = await connectIpc(a.host, { cookie, credential: null });
    cleanups.push(() => sameProfile.close());
    expect((await sameProfile.call('app.info')).ok).toBe(true);
    // A credential in the auth message must be right even with the cookie.
    const mixed = await connectIpc(a.host, { cookie, credential: 'wrong', awaitReady: false });
    expect((await mixed.closed).code).toBe(4401);
    // Nothing secret in the log.
    const logged = a.logs.join('\n');
    for (const secret of [token, cookie.split('=')[1]!, a.host.credential]) expect(logged).not.toContain(secret);
  });

  it('refuses an exchange from another origin, host, content type or body, and leaves the link unspent', async () => {
    const a = await app();
    const port = a.host.port;
    const token = tokenOf(a.host.url);
    const refused: [Parameters<typeof exchange>[2], number][] = [
      [{ origin: 'http://evil.example' }, 403],
      [{ origin: null }, 403],
      [{ origin: `http://localhost:${port}` }, 403],
      [{ origin: `http://127.0.0.1:${port + 1}` }, 403],
      [{ origin: 'null' }, 403],
      [{ host: `evil.example:${port}`, origin: `http://evil.example:${port}` }, 403],
      [{ contentType: 'text/plain' }, 415],
      [{ contentType: 'application/x-www-form-urlencoded', body: `token=${token}` }, 415],
      [{ body: '{not json' }, 400],
      [{ body: JSON.stringify([token]) }, 400],
      [{ body: JSON.stringify({ token: 42 }) }, 400],
      [{ body: JSON.stringify({ token, pad: 'x'.repeat(5000) }) }, 413],
    ];
    for (const [options, status] of refused) {
      const reply = await exchange(port, token, options);
      expect(reply.status, JSON.stringify(options).slice(0, 80)).toBe(status);
      expect(reply.headers['set-cookie']).toBeUndefined();
    }
    // A token this host never made: not "used", just not ours.
    const unknown = await exchange(port, 'y'.repeat(43));
    expect(unknown.status).toBe(401);
    expect(errorCodeOf(unknown)).toBe('unauthenticated');
    expect((await request(port, '/session', { method: 'PUT' })).status).toBe(405);
    // None of that spent the link.
    expect((await exchange(port, token)).status).toBe(204);
  });

  it('mints a fresh link for the automation credential only; the fresh one works once, the earlier ones do not', async () => {
    const a = await app();
    const port = a.host.port;
    const original = tokenOf(a.host.url);
    expect((await exchange(port, original)).status).toBe(204);

    const mint = (headers: Record<string, string>, method = 'POST'): Promise<Reply> => request(port, '/link', { method, headers });
    for (const authorization of [undefined, 'Bearer wrong', `Bearer ${original}`, a.host.credential, `Basic ${a.host.credential}`]) {
      const reply = await mint(authorization === undefined ? {} : { authorization });
      expect(reply.status, authorization).toBe(401);
      expect(errorCodeOf(reply)).toBe('unauthenticated');
    }
    expect((await mint({ authorization: `Bearer ${a.host.credential}`, origin: 'http://evil.example' })).status).toBe(403);
    expect((await mint({ authorization: `Bearer ${a.host.credential}` }, 'GET')).status).toBe(405);

    const minted = await mint({ authorization: `Bearer ${a.host.credential}` });
    expect(minted.status).toBe(200);
    const fresh = (JSON.parse(minted.body.toString('utf8')) as { url: string }).url;
    expect(new URL(fresh).origin).toBe(a.host.origin);
    const freshToken = tokenOf(fresh);
    expect(freshToken).not.toBe(original);
    // A fresh link supersedes an unused one: only the newest works.
    const newest = a.host.newLink();
    expect((await exchange(port, freshToken)).status).toBe(410);
    const second = await exchange(port, tokenOf(newest));
    expect(second.status).toBe(204);
    expect((await exchange(port, tokenOf(newest))).status).toBe(410);
    expect((await exchange(port, original)).status).toBe(410);
    // Each exchange is its own session; both work.
    const cookie = sessionCookieOf(second, port);
    const tab = await connectIpc(a.host, { cookie, credential: null });
    cleanups.push(() => tab.close());
    expect((await tab.call('app.info')).ok).toBe(true);
  });

  it('accepts the automation credential as the cookie or in the auth message, and a cookie only on its own host', async () => {
    const a = await app();
    const other = await startBrowserHost({ services: stubServices(), rendererDir: path.join(a.dir, 'none') });
    cleanups.push(() => other.close());
    const viaCookie = await connectIpc(a.host, { cookie: `${sessionCookieName(a.host.port)}=${a.host.credential}`, credential: null });
    cleanups.push(() => viaCookie.close());
    expect((await viaCookie.call('app.info')).ok).toBe(true);
    expect((await a.client.call('app.info')).ok).toBe(true);

    // Browsers send 127.0.0.1 cookies to every port: a session of one instance is nothing to another.
    const reply = await exchange(a.host.port, tokenOf(a.host.url));
    const cookie = sessionCookieOf(reply, a.host.port);
    const value = cookie.split('=')[1]!;
    for (const foreign of [cookie, `${sessionCookieName(other.port)}=${value}`, `${sessionCookieName(other.port)}=${a.host.credential}`]) {
      const tab = await connectIpc(other, { cookie: foreign, credential: null, awaitReady: false });
      expect((await tab.closed).code, foreign).toBe(4401);
    }
    const own = await connectIpc(other, {});
    cleanups.push(() => own.close());
    expect(await own.call('app.info')).toEqual({ ok: true, result: STUB_APP_INFO });
  });
});

describe('the WebSocket guard', () => {
  it('closes with 4401 and serves nothing without a session cookie or with a wrong credential', async () => {
    const a = await app();
    const before = a.client.messages.length;
    // No auth message: the first message is a call.
    const noAuth = await connectIpc(a.host, { noAuthMessage: true });
    noAuth.sendRaw({ id: '1', channel: 'app.info', args: {} });
    noAuth.sendRaw({ id: '2', channel: 'device.status', args: {} });
    expect((await noAuth.closed).code).toBe(4401);
    expect(noAuth.messages).toEqual([]);
    // `{type:'auth'}` without a cookie, or with a cookie that is no session of this host.
    for (const cookie of [undefined, `${sessionCookieName(a.host.port)}=${'x'.repeat(43)}`, `${sessionCookieName(a.host.port + 1)}=${a.host.credential}`]) {
      const cookieless = await connectIpc(a.host, { credential: null, awaitReady: false, ...(cookie === undefined ? {} : { cookie }) });
      cookieless.sendRaw({ id: '1', channel: 'app.info', args: {} });
      expect((await cookieless.closed).code, cookie).toBe(4401);
      expect(cookieless.messages).toEqual([]);
    }
    // Wrong credentials: a different one, one character off, a prefix, a non-string, and the link's one-time token
    // (it is for the exchange only).
    const c = a.host.credential;
    for (const credential of ['x'.repeat(43), `${c.slice(0, -1)}${c.endsWith('A') ? 'B' : 'A'}`, c.slice(0, 20), 12345, tokenOf(a.host.url)]) {
      const wrong = await connectIpc(a.host, { credential, awaitReady: false });
      wrong.sendRaw({ id: '1', channel: 'app.info', args: {} });
      expect((await wrong.closed).code).toBe(4401);
      expect(wrong.messages).toEqual([]);
    }
    // The link still works after all that: none of it spent it.
    expect((await exchange(a.host.port, tokenOf(a.host.url))).status).toBe(204);
    // The authenticated tab is unaffected.
    expect((await a.client.call('app.info')).ok).toBe(true);
    expect(a.client.messages.length).toBe(before + 1);
  });

  it('refuses the upgrade for a wrong or missing Origin, a foreign Host, or another path', async () => {
    const a = await app();
    const port = a.host.port;
    const refused = async (options: Parameters<typeof openSocket>[1]): Promise<number> => {
      try {
        const ws = await openSocket(port, options);
        ws.terminate();
        return 101;
      } catch (error) {
        return (error as { status?: number }).status ?? -1;
      }
    };
    expect(await refused({ origin: 'http://evil.example' })).toBe(403);
    expect(await refused({ origin: null })).toBe(403);
    expect(await refused({ origin: `http://127.0.0.1:${port + 1}` })).toBe(403);
    expect(await refused({ origin: `https://127.0.0.1:${port}` })).toBe(403);
    expect(await refused({ origin: `http://localhost:${port}` })).toBe(403); // Host says 127.0.0.1
    expect(await refused({ origin: 'null' })).toBe(403);
    expect(await refused({ hostHeader: `evil.example:${port}`, origin: `http://evil.example:${port}` })).toBe(403);
    expect(await refused({ path: '/ipc?token=x' })).toBe(404);
    expect(await refused({ path: '/' })).toBe(404);
    // localhost is ours too, with its own origin.
    const viaLocalhost = await connectIpc(a.host, { hostHeader: `localhost:${port}` });
    expect((await viaLocalhost.call('app.info')).ok).toBe(true);
    await viaLocalhost.close();
  });

  it('closes a socket that sends more than 1 MiB or a binary frame, and keeps serving the others', async () => {
    const a = await app();
    const big = await connectIpc(a.host);
    big.sendRaw({ id: '1', channel: 'device.parseScan', args: { text: 'x'.repeat(MAX_MESSAGE_BYTES) } });
    expect((await big.closed).code).toBe(1009);
    const binary = await connectIpc(a.host);
    binary.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await binary.closed).code).toBe(1003);
    expect((await a.client.call('app.info')).ok).toBe(true);
  });

  it('answers malformed messages with an error envelope and keeps the socket', async () => {
    const a = await app();
    a.client.sendRaw('{not json');
    a.client.sendRaw({ channel: 'app.info', args: {} });
    a.client.sendRaw({ id: { nested: true }, channel: 'app.info' });
    a.client.sendRaw([1, 2, 3]);
    await expect.poll(() => a.client.messages.filter((m) => m.id === null).length).toBe(4);
    for (const m of a.client.messages.filter((x) => x.id === null)) expect(m.envelope).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect((await a.client.call('app.info')).ok).toBe(true);
  });
});

/** A valid call of every channel on a fresh app (no hosted gateway, unpaired device) and what it answers. */
const EVERY_CHANNEL: Record<string, { args: unknown; expect: { ok: true; result?: unknown } | { ok: false; code: string } }> = {
  'app.info': { args: {}, expect: { ok: true, result: expect.objectContaining({ name: 'Palyra Desktop', mode: 'browser', electron_version: null }) } },
  'app.firstRun': { args: {}, expect: { ok: true, result: { choice: null, needed: true } } },
  'app.chooseStart': { args: { choice: 'join' }, expect: { ok: true, result: { choice: 'join', needed: false } } },
  'device.status': { args: {}, expect: { ok: true, result: expect.objectContaining({ paired: false, revoked: false, keychain: 'os', connection: 'offline', revocation: null }) } },
  'device.parseScan': { args: { text: 'ABCDEFGHJKMNPQRSTVWXYZ0123' }, expect: { ok: true, result: { type: 'token', token: 'ABCDEFGHJKMNPQRSTVWXYZ0123' } } },
  'device.pairStart': { args: { method: 'pin', pin: '123456', gateway: '127.0.0.1:1' }, expect: { ok: true, result: { pairing_id: expect.any(String) } } },
  'device.pairCancel': { args: { pairing_id: 'unknown' }, expect: { ok: true, result: { cancelled: false } } },
  'device.unpair': { args: {}, expect: { ok: true, result: { unpaired: false } } },
  'device.reconnect': { args: {}, expect: { ok: false, code: 'device_not_paired' } },
  'gateway.status': { args: {}, expect: { ok: true, result: expect.objectContaining({ enabled: false, running: false, listen: '127.0.0.1:7444', error: null }) } },
  'gateway.configure': { args: { enabled: false, name: 'Desk' }, expect: { ok: true, result: expect.objectContaining({ enabled: false, running: false, name: 'Desk' }) } },
  'gateway.mintCode': { args: { method: 'qr' }, expect: { ok: false, code: 'gateway_unreachable' } },
  'gateway.listCodes': { args: {}, expect: { ok: true, result: { codes: [] } } },
  'gateway.listRequests': { args: { state: 'pending_approval' }, expect: { ok: true, result: { requests: [] } } },
  'gateway.approve': { args: { request_id: A_ID }, expect: { ok: false, code: 'pairing_request_not_found' } },
  'gateway.reject': { args: { request_id: A_ID, reason: 'no' }, expect: { ok: false, code: 'pairing_request_not_found' } },
  'gateway.listDevices': { args: {}, expect: { ok: true, result: { devices: [], revoked_certificate_fingerprints: [] } } },
  'gateway.revokeDevice': { args: { device_id: A_ID }, expect: { ok: true, result: { device_id: A_ID } } },
  'gateway.removeDevice': { args: { device_id: A_ID }, expect: { ok: false, code: 'not_found' } },
  'gateway.unbanDevice': { args: { device_id: '01HZY3V4J6K8M9N0P1Q2R3S4T6' }, expect: { ok: false, code: 'not_found' } },
  'gateway.renameDevice': { args: { device_id: '01HZY3V4J6K8M9N0P1Q2R3S4T6', name: 'Kitchen Pi' }, expect: { ok: false, code: 'not_found' } },
  'gateway.grantAdmin': { args: { device_id: A_ID }, expect: { ok: false, code: 'device_not_paired' } },
  'gateway.revokeAdmin': { args: { device_id: A_ID }, expect: { ok: false, code: 'device_not_paired' } },
  'discovery.list': { args: { timeout_ms: 500 }, expect: { ok: false, code: 'unavailable' } },
  'gateway.auditTail': { args: { count: 10 }, expect: { ok: true, result: expect.objectContaining({ chain: expect.objectContaining({ ok: true }) }) } },
};

/** An argument each channel's schema refuses. */
const BAD_ARGS: Record<string, unknown[]> = {
  'app.info': [{ extra: 1 }, 42],
  'app.firstRun': [{ extra: 1 }],
  'app.chooseStart': [{}, { choice: 'both' }, { choice: 'join', again: true }],
  'device.status': [{ extra: 1 }, 'text'],
  'device.parseScan': [{}, { text: '' }, { text: 'x'.repeat(4097) }, { text: 1 }],
  'device.pairStart': [{ method: 'pin', pin: '12345', gateway: '127.0.0.1:1' }, { method: 'uri' }, { method: 'token', token: 'short', gateway: '127.0.0.1:1' }, { method: 'carrier-pigeon' }, { method: 'uri', uri: 'palyra://pair', kind: 'toaster' }],
  'device.pairCancel': [{}, { pairing_id: '' }, { pairing_id: 'x'.repeat(65) }],
  'device.unpair': [{ force: true }],
  'device.reconnect': [{ now: true }, 'soon'],
  'gateway.status': [{ extra: 1 }],
  'gateway.configure': [{}, { enabled: 'yes' }, { enabled: true, listen: 'x' }, { enabled: true, name: 'n'.repeat(65) }, { enabled: true, insecure: true }],
  'gateway.mintCode': [{}, { method: 'sms' }, { method: 'pin', ttl_ms: 1 }, { method: 'qr', kind: 'toaster' }],
  'gateway.listCodes': [{ all: true }],
  'gateway.listRequests': [{ state: 'weird' }],
  'gateway.approve': [{}, { request_id: 'nope' }, { request_id: A_ID, reason: 'r'.repeat(513) }],
  'gateway.reject': [{ request_id: A_ID.toLowerCase() }],
  'gateway.listDevices': [{ page: 2 }],
  'gateway.revokeDevice': [{ device_id: 'x' }, {}],
  'gateway.removeDevice': [{}, { device_id: `${A_ID}0` }],
  'gateway.unbanDevice': [{ device_id: 42 }],
  'gateway.renameDevice': [{ device_id: A_ID }, { device_id: A_ID, name: 'n'.repeat(257) }, { device_id: 'x', name: 'ok' }],
  'gateway.grantAdmin': [{}, { device_id: 'x' }, { device_id: A_ID, role: 'admin' }],
  'gateway.revokeAdmin': [{ device_id: A_ID.toLowerCase() }, { device_id: null }],
  'gateway.auditTail': [{}, { count: 0 }, { count: 1001 }, { count: 1.5 }],
  'discovery.list': [{ timeout_ms: 1 }, { timeout_ms: 10_001 }, { timeout_ms: 'soon' }, { scope: 'all' }],
};

describe('every channel through the host', () => {
  it('the tables cover every channel of the contract', () => {
    expect(Object.keys(EVERY_CHANNEL).sort()).toEqual([...CHANNEL_NAMES].sort());
    expect(Object.keys(BAD_ARGS).sort()).toEqual([...CHANNEL_NAMES].sort());
  });

  it('answers a valid call of every channel with its result or a coded error', async () => {
    const a = await app();
    for (const channel of CHANNEL_NAMES) {
      const spec = EVERY_CHANNEL[channel]!;
      const envelope = await a.client.call(channel, spec.args);
      if (spec.expect.ok) expect(envelope, channel).toEqual({ ok: true, result: spec.expect.result });
      else expect(envelope, channel).toMatchObject({ ok: false, error: { code: spec.expect.code } });
    }
    // The PIN pairing started above ended as a pairing event, not a failed call: device.unpair cancelled it, unless
    // it had already failed against the closed port. Exactly one terminal event either way.
    const failed = await a.client.next('device.pairing', (p) => p.progress.type === 'failed', 10_000);
    expect(failed.progress).toMatchObject({ code: expect.stringMatching(/^(cancelled|gateway_unreachable|tls_handshake_failed|unavailable)$/) });
    // A negative check (no second terminal event): a short pause, since no later event would prove its absence.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(a.client.received('device.pairing').filter((p) => p.progress.type === 'failed')).toHaveLength(1);
  });

  it('refuses a bad argument of every channel with invalid_argument, and keeps serving', async () => {
    const a = await app();
    for (const channel of CHANNEL_NAMES) {
      for (const args of BAD_ARGS[channel]!) {
        const envelope = await a.client.call(channel, args);
        expect(envelope, `${channel} ${JSON.stringify(args).slice(0, 80)}`).toMatchObject({ ok: false, error: { code: 'invalid_argument', message: expect.any(String) } });
      }
    }
    for (const channel of ['nope.nothing', '__proto__', 'app.info ', '', 7, null]) {
      expect(await a.client.call(channel, {}), String(channel)).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    }
    // Nothing was started or changed by all that.
    expect(a.client.received('device.pairing')).toEqual([]);
    expect(await a.client.call('gateway.status')).toMatchObject({ ok: true, result: { enabled: false, running: false } });
    expect((await a.client.call('app.info')).ok).toBe(true);
  });
});

describe('events', () => {
  it('reach every authenticated tab: gateway.status, gateway.event request.created for a device pairing with the hosted gateway, app.deepLink', async () => {
    const a = await app();
    const second = await connectIpc(a.host);
    cleanups.push(() => second.close());
    const status = await a.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0', name: 'Events' });
    for (const tab of [a.client, second]) await tab.next('gateway.status', (p) => p.running, 5_000);

    // A device (the pairing client on its own, as the CLI would be) pairs with the hosted gateway.
    const { dir, cleanup } = await tempDir('palyra-dev-');
    cleanups.push(cleanup);
    const store = await DeviceStore.open({ deviceDir: dir, keychain: 'os', osKeychain: new MemoryKeychain() });
    const minted = await a.ok('gateway.mintCode', { method: 'qr', kind: 'node' });
    const pairing = pairDevice({ store, target: { method: 'qr', uri: parsePairingUri(minted.uri ?? '', { now: Date.now() }) }, kind: 'node' });
    const created = await second.next('gateway.event', (e) => e.type === 'request.created');
    if (created.type !== 'request.created') throw new Error('unreachable');
    expect(created.request).toMatchObject({ client_kind: 'node', state: 'pending_approval' });
    expect(await a.client.next('gateway.event', (e) => e.type === 'request.created', 5_000)).toEqual(created);
    expect((await a.client.call('gateway.approve', { request_id: created.request.request_id })).ok).toBe(true);
    const result = await pairing;
    await second.next('gateway.event', (e) => e.type === 'device.paired' && e.device_id === result.deviceId, 10_000);
    expect(status.listen).toBe(result.state.gateway?.addresses[0]);

    a.services.deepLink('palyra://pair?v=1&gw=127.0.0.1:1');
    a.services.deepLink('https://evil.example/');
    for (const tab of [a.client, second]) expect(await tab.next('app.deepLink', () => true, 5_000)).toEqual({ uri: 'palyra://pair?v=1&gw=127.0.0.1:1' });
    expect(second.received('app.deepLink')).toHaveLength(1);
  });

  it('a closed tab stops receiving, the others go on', async () => {
    const a = await app();
    const second = await connectIpc(a.host);
    await second.close();
    a.services.openRequests(null);
    expect(await a.client.next('app.openRequests', () => true, 5_000)).toEqual({ request_id: null });
    expect(second.events).toEqual([]);
  });
});
