import path from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startBrowserHost } from '../../../main/app/browser-host.js';
import type { BrowserHost } from '../../../main/app/browser-host.js';
import { createPalyraApi } from '../../../main/ipc/contract.js';
import { createWebSocketTransport, installWebSocketBridge, takeTokenFromLocation } from '../../../renderer/src/bridge/ws-bridge.js';
import type { BridgeWindow, WebSocketConstructor } from '../../../renderer/src/bridge/ws-bridge.js';
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

/** The `ws` client as the browser's WebSocket: same constructor shape, and the Origin a page on the host sends. */
function browserWebSocket(origin: string): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { origin });
    }
  } as unknown as WebSocketConstructor;
}

function fakeWindow(href: string): BridgeWindow & { replaced: string[]; storage: Map<string, string> } {
  const url = new URL(href);
  const storage = new Map<string, string>();
  const replaced: string[] = [];
  const win = {
    replaced,
    storage,
    location: { hash: url.hash, host: url.host, pathname: url.pathname, search: url.search },
    history: {
      state: null,
      replaceState: (_state: unknown, _title: string, target: string) => {
        replaced.push(target);
        win.location.hash = '';
      },
    },
    sessionStorage: {
      getItem: (k: string) => storage.get(k) ?? null,
      setItem: (k: string, v: string) => storage.set(k, v),
    },
  };
  return win as unknown as BridgeWindow & { replaced: string[]; storage: Map<string, string> };
}

describe('takeTokenFromLocation', () => {
  it('takes the token from the fragment, removes it from the address bar and keeps it for a reload of the tab', () => {
    const win = fakeWindow('http://127.0.0.1:5000/?lang=en#token=abc_DEF-123');
    expect(takeTokenFromLocation(win)).toBe('abc_DEF-123');
    expect(win.replaced).toEqual(['/?lang=en']);
    expect(win.location.hash).toBe('');
    // A reload: no fragment any more, the tab's storage still has it.
    expect(takeTokenFromLocation(win)).toBe('abc_DEF-123');
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
    const transport = createWebSocketTransport({ url: `ws://127.0.0.1:${h.port}/ipc`, token: h.token, WebSocket: browserWebSocket(h.origin) });
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

  it('fails every call with unauthenticated when the host refuses the token, and stops trying', async () => {
    const { host: h, services } = await host();
    const transport = createWebSocketTransport({ url: `ws://127.0.0.1:${h.port}/ipc`, token: 'wrong', WebSocket: browserWebSocket(h.origin) });
    const api = createPalyraApi(transport);
    const call = api.appInfo({});
    await expect(transport.ready).rejects.toThrow(/refused the token/);
    await expect(call).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(api.appInfo({})).rejects.toMatchObject({ code: 'unauthenticated' });
    expect(services.calls).toEqual([]);
  });

  it('reconnects when the host comes back; calls in flight when it went away fail with unavailable', async () => {
    const { host: first } = await host(stubServices({ 'device.unpair': () => new Promise(() => undefined) }));
    const transport = createWebSocketTransport({ url: `ws://127.0.0.1:${first.port}/ipc`, token: first.token, WebSocket: browserWebSocket(first.origin) });
    const api = createPalyraApi(transport);
    await transport.ready;
    const hanging = api.deviceUnpair({});
    await first.close();
    await expect(hanging).rejects.toMatchObject({ code: 'unavailable' });
    // The same port and token again, as after a restart of the host process.
    const second = await startBrowserHost({ services: stubServices(), port: first.port, token: first.token, rendererDir: path.join(import.meta.dirname, 'none') });
    hosts.push(second);
    expect(await api.appInfo({})).toEqual(STUB_APP_INFO);
    transport.close();
  });
});

describe('installWebSocketBridge', () => {
  it('keeps the API preload installed', () => {
    const existing = createPalyraApi({ invoke: () => Promise.resolve({ ok: true, result: null }), subscribe: () => () => undefined });
    const win = Object.assign(fakeWindow('http://127.0.0.1:1/#token=t'), { palyra: existing });
    expect(installWebSocketBridge(win)).toBe(existing);
    expect(win.replaced).toEqual([]);
  });

  it('installs window.palyra over the host named by the page location', async () => {
    const { host: h } = await host();
    (globalThis as { WebSocket?: unknown }).WebSocket = browserWebSocket(h.origin);
    const win = fakeWindow(h.url);
    const api = installWebSocketBridge(win);
    expect(win.palyra).toBe(api);
    expect(win.replaced).toEqual(['/']);
    expect(await api.appInfo({})).toEqual(STUB_APP_INFO);
  });

  it('without a token, installs an API whose calls fail with unauthenticated', async () => {
    const api = installWebSocketBridge(fakeWindow('http://127.0.0.1:1/'));
    await expect(api.appInfo({})).rejects.toMatchObject({ code: 'unauthenticated' });
  });
});

