import path from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startBrowserHost } from '../../../main/app/browser-host.js';
import type { BrowserHost } from '../../../main/app/browser-host.js';
import { createPalyraApi } from '../../../main/ipc/contract.js';
import type { PalyraApi } from '../../../main/ipc/contract.js';
import { sessionCookieName } from '../../../main/app/browser-host.js';
import { createWebSocketTransport, installWebSocketBridge, takeTokenFromLocation } from '../../../renderer/src/bridge/ws-bridge.js';
import type { BridgeWindow, FetchFunction, WebSocketConstructor } from '../../../renderer/src/bridge/ws-bridge.js';
import { STUB_APP_INFO, stubServices } from '../../helpers/stub-services.js';

const hosts: BrowserHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.close();
  delete (globalThis as { WebSocket?: unknown }).WebSocket;
});

async function host(services = stubServices()) {
  const h = await startBrowserHost({ services, rendererDir: path.join(import.meta.dirname, 'no-such-renderer') });
  hosts.push(h);
  return { host: h, services };
}

/** A browser profile's cookie jar as far as the bridge needs it: the Set-Cookie `name=value`s, sent back as a Cookie. */
class CookieJar {
  readonly cookies = new Map<string, string>();
  header(): string | undefined {
    return this.cookies.size === 0 ? undefined : [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  /** fetch with this jar and the Origin a page on `origin` sends. */
  fetch(origin: string): FetchFunction {
    return async (url, init) => {
      const cookie = this.header();
      const res = await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), origin, ...(cookie === undefined ? {} : { cookie }) } });
      for (const set of res.headers.getSetCookie()) {
        const pair = set.split(';', 1)[0]!;
        const eq = pair.indexOf('=');
        this.cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
      }
      return res;
    };
  }
}

/** The `ws` client as the browser's WebSocket: same constructor shape, the Origin a page on the host sends, and the jar's cookies. */
function browserWebSocket(origin: string, jar?: CookieJar): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      const cookie = jar?.header();
      super(url, { origin, ...(cookie === undefined ? {} : { headers: { cookie } }) });
    }
  } as unknown as WebSocketConstructor;
}

function fakeWindow(href: string): BridgeWindow & { replaced: string[] } {
  const url = new URL(href);
  const replaced: string[] = [];
  const win = {
    replaced,
    location: { hash: url.hash, host: url.host, protocol: url.protocol, pathname: url.pathname, search: url.search },
    history: {
      state: null,
      replaceState: (_state: unknown, _title: string, target: string) => {
        replaced.push(target);
        win.location.hash = '';
      },
    },
  };
  return win as unknown as BridgeWindow & { replaced: string[] };
}

describe('takeTokenFromLocation', () => {
  it('takes the token from the fragment and removes it from the address bar, keeping it nowhere', () => {
    const win = fakeWindow('http://127.0.0.1:5000/?lang=en#token=abc_DEF-123');
    expect(takeTokenFromLocation(win)).toBe('abc_DEF-123');
    expect(win.replaced).toEqual(['/?lang=en']);
    expect(win.location.hash).toBe('');
    // A reload: no fragment any more, and no copy of the token (the session cookie is what a reload uses).
    expect(takeTokenFromLocation(win)).toBeNull();
    expect(win.replaced).toHaveLength(1);
  });

  it('returns null when neither the fragment nor the tab has a token', () => {
    expect(takeTokenFromLocation(fakeWindow('http://127.0.0.1:5000/'))).toBeNull();
    expect(takeTokenFromLocation(fakeWindow('http://127.0.0.1:5000/#token='))).toBeNull();
  });
});

describe('the WebSocket transport against a real browser-mode host', () => {
  it('authenticates, queues calls made before the host is ready, and delivers events to subscribers', async () => {
    const { host: h, services } = await host();
    const transport = createWebSocketTransport({ url: `ws://127.0.0.1:${h.port}/ipc`, credential: h.credential, WebSocket: browserWebSocket(h.origin) });
    const api = createPalyraApi(transport);
    const early = api.appInfo({});
    await transport.ready;
    expect(await early).toEqual(STUB_APP_INFO);
    const received: unknown[] = [];
    const off = api.on('app.deepLink', (payload) => received.push(payload));
    services.emit('app.deepLink', { uri: 'palyra://pair?v=1' });
    await expect.poll(() => received).toEqual([{ uri: 'palyra://pair?v=1' }]);
    off();
    services.emit('app.deepLink', { uri: 'palyra://pair?v=2' });
    // A failed call rejects with the coded error of the envelope.
    await expect(api.deviceStatus({})).rejects.toMatchObject({ name: 'PalyraIpcError', code: 'not_found' });
    expect(received).toHaveLength(1);
    transport.close();
    await expect(api.appInfo({})).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('fails every call with unauthenticated when the host refuses the socket, and stops trying', async () => {
    const { host: h, services } = await host();
    // No credential and no cookie, as a tab of a browser without a session.
    const transport = createWebSocketTransport({ url: `ws://127.0.0.1:${h.port}/ipc`, WebSocket: browserWebSocket(h.origin) });
    const api = createPalyraApi(transport);
    const call = api.appInfo({});
    await expect(transport.ready).rejects.toThrow(/refused this tab/);
    await expect(call).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(api.appInfo({})).rejects.toMatchObject({ code: 'unauthenticated' });
    expect(services.calls).toEqual([]);
  });

  it('reconnects when the host comes back; calls in flight when it went away fail with unavailable', async () => {
    const { host: first } = await host(stubServices({ 'device.unpair': () => new Promise(() => undefined) }));
    const transport = createWebSocketTransport({ url: `ws://127.0.0.1:${first.port}/ipc`, credential: first.credential, WebSocket: browserWebSocket(first.origin) });
    const api = createPalyraApi(transport);
    await transport.ready;
    const hanging = api.deviceUnpair({});
    await first.close();
    await expect(hanging).rejects.toMatchObject({ code: 'unavailable' });
    // The same port and credential again, as after a restart of the host process.
    const second = await startBrowserHost({ services: stubServices(), port: first.port, credential: first.credential, rendererDir: path.join(import.meta.dirname, 'none') });
    hosts.push(second);
    expect(await api.appInfo({})).toEqual(STUB_APP_INFO);
    transport.close();
  });
});

/** The API installWebSocketBridge returned; fails the test when it returned a link problem. */
function apiOf(result: PalyraApi | { problem: string }): PalyraApi {
  if ('problem' in result) throw new Error(`expected the API, got the problem ${result.problem}`);
  return result;
}

describe('installWebSocketBridge', () => {
  it('keeps the API preload installed', async () => {
    const existing = createPalyraApi({ invoke: () => Promise.resolve({ ok: true, result: null }), subscribe: () => () => undefined });
    const win = Object.assign(fakeWindow('http://127.0.0.1:1/#token=t'), { palyra: existing });
    expect(await installWebSocketBridge(win)).toBe(existing);
    expect(win.replaced).toEqual([]);
  });

  it('trades the link for a session cookie, installs window.palyra over it, and a reload uses the cookie', async () => {
    const { host: h } = await host();
    const jar = new CookieJar();
    const deps = { fetch: jar.fetch(h.origin), WebSocket: browserWebSocket(h.origin, jar) };
    const win = fakeWindow(h.url);
    const api = await installWebSocketBridge(win, deps);
    expect(win.palyra).toBe(api);
    expect(win.replaced).toEqual(['/']);
    expect([...jar.cookies.keys()]).toEqual([sessionCookieName(h.port)]);
    expect(await apiOf(api).appInfo({})).toEqual(STUB_APP_INFO);
    // A reload of the tab: no fragment, the cookie.
    const reloaded = fakeWindow(`${h.origin}/#/gateway`);
    const again = await installWebSocketBridge(reloaded, deps);
    expect(reloaded.replaced).toEqual([]);
    expect(await apiOf(again).appInfo({})).toEqual(STUB_APP_INFO);
    // The original link in the same profile (its session is still valid): the app, not a refusal.
    expect(await installWebSocketBridge(fakeWindow(h.url), deps)).toHaveProperty('appInfo');
  });

  it('returns link_used for a spent link in a browser without a session, link_invalid for a foreign one, no_session without a link', async () => {
    const { host: h } = await host();
    const first = new CookieJar();
    await installWebSocketBridge(fakeWindow(h.url), { fetch: first.fetch(h.origin), WebSocket: browserWebSocket(h.origin, first) });
    // Another browser profile opens the same link from history.
    const other = new CookieJar();
    const deps = { fetch: other.fetch(h.origin), WebSocket: browserWebSocket(h.origin, other) };
    const win = fakeWindow(h.url);
    expect(await installWebSocketBridge(win, deps)).toEqual({ problem: 'link_used' });
    expect(win.palyra).toBeUndefined();
    expect(win.replaced).toEqual(['/']);
    expect(other.cookies.size).toBe(0);
    expect(await installWebSocketBridge(fakeWindow(`${h.origin}/#token=${'z'.repeat(43)}`), deps)).toEqual({ problem: 'link_invalid' });
    expect(await installWebSocketBridge(fakeWindow(`${h.origin}/`), deps)).toEqual({ problem: 'no_session' });
    // A fresh link opens it in that profile too.
    expect(await installWebSocketBridge(fakeWindow(h.newLink()), deps)).toHaveProperty('appInfo');
  });
});
