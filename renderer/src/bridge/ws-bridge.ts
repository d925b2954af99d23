/**
 * Browser mode's stand-in for preload: the same typed `window.palyra` API (createPalyraApi from the contract), carried
 * over the loopback WebSocket of the browser-mode host (main/app/browser-host.ts) instead of Electron IPC.
 *
 * The host prints a one-time link `http://127.0.0.1:PORT/#token=…`. The token is read from the fragment (never sent
 * to the server in a URL) and removed from the address bar at once, then POSTed to `/session`: the host spends it and
 * sets an HttpOnly session cookie, which a reload, and any tab of this browser profile, then uses. A spent link (410
 * `browser_link_used`) or a browser without a session gets a page saying how to get a fresh link, not the app.
 *
 * The first WebSocket message is `{"type":"auth"}` (the cookie sent with the upgrade authenticates); calls sent
 * before the host answered `ready` wait in a queue. A dropped connection is retried with backoff (calls in flight
 * fail with `unavailable`); a refusal (close 4401) is final.
 *
 * Imports only the contract and browser globals.
 */

import { createPalyraApi, EventListeners, isEventName } from '../../../main/ipc/contract.js';
import type { ChannelName, EventName, IpcEnvelope, PalyraApi } from '../../../main/ipc/contract.js';

/** Close code the host uses for a missing or wrong credential. */
export const CLOSE_UNAUTHORIZED = 4401;
/** The host's exchange endpoint (main/app/browser-host.ts). */
const SESSION_PATH = '/session';
const REFUSED_MESSAGE = 'the browser-mode host refused this tab (its session is not valid, e.g. after a restart); get a fresh link with `npm start -- --new-link`';
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;

/** The part of the WebSocket constructor the bridge uses (the DOM one; tests may pass the `ws` package's). */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface WebSocketTransport {
  invoke(channel: ChannelName, args: unknown): Promise<IpcEnvelope<unknown>>;
  subscribe(event: EventName, listener: (payload: unknown) => void): () => void;
  /** Resolves once the host accepted the socket; rejects when it refused it. */
  readonly ready: Promise<void>;
  /** Stops reconnecting and fails every pending call. */
  close(): void;
}

export interface WebSocketTransportOptions {
  /** `ws://127.0.0.1:PORT/ipc` */
  url: string;
  /** An automation credential for the auth message; without it the session cookie authenticates. */
  credential?: string;
  WebSocket?: WebSocketConstructor;
  /** Retry after a dropped connection (default true). */
  reconnect?: boolean;
}

function failure(code: 'unauthenticated' | 'unavailable', message: string): IpcEnvelope<unknown> {
  return { ok: false, error: { code, message } };
}

function isEnvelope(value: unknown): value is IpcEnvelope<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (v.ok === true) return 'result' in v;
  const error = v.error as Record<string, unknown> | null | undefined;
  return v.ok === false && typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string';
}

export function createWebSocketTransport(options: WebSocketTransportOptions): WebSocketTransport {
  const Ctor = options.WebSocket ?? globalThis.WebSocket;
  const reconnect = options.reconnect ?? true;
  const listeners = new EventListeners();
  /** Calls sent on the current socket, by id. */
  const inFlight = new Map<string, (envelope: IpcEnvelope<unknown>) => void>();
  /** Calls waiting for an authenticated socket. */
  let queue: { id: string; channel: ChannelName; args: unknown; resolve: (envelope: IpcEnvelope<unknown>) => void }[] = [];
  let socket: WebSocket | null = null;
  let authenticated = false;
  let closed = false;
  let refused = false;
  let nextId = 1;
  let retryMs = RECONNECT_MIN_MS;
  let retryTimer: ReturnType<typeof setTimeout> | null = null;
  let resolveReady: () => void = () => undefined;
  let rejectReady: (error: Error) => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // A caller that never awaits `ready` must not see an unhandled rejection.
  ready.catch(() => undefined);

  const failAll = (envelope: IpcEnvelope<unknown>, includeQueued: boolean): void => {
    for (const resolve of inFlight.values()) resolve(envelope);
    inFlight.clear();
    if (includeQueued) {
      for (const call of queue) call.resolve(envelope);
      queue = [];
    }
  };

  const flush = (): void => {
    if (socket === null || !authenticated) return;
    const pending = queue;
    queue = [];
    for (const call of pending) {
      inFlight.set(call.id, call.resolve);
      socket.send(JSON.stringify({ id: call.id, channel: call.channel, args: call.args }));
    }
  };

  const dispatchEvent = (event: EventName, payload: unknown): void => {
    listeners.emit(event, payload, (error) => {
      console.error(`palyra: a listener of ${event} threw`, error);
    });
  };

  const onMessage = (data: unknown): void => {
    if (typeof data !== 'string') return;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof message !== 'object' || message === null) return;
    const m = message as Record<string, unknown>;
    if (m.type === 'ready') {
      authenticated = true;
      retryMs = RECONNECT_MIN_MS;
      resolveReady();
      flush();
      return;
    }
    if (typeof m.id === 'string') {
      const resolve = inFlight.get(m.id);
      if (resolve === undefined) return;
      inFlight.delete(m.id);
      resolve(isEnvelope(m.envelope) ? m.envelope : { ok: false, error: { code: 'internal', message: 'the host sent a malformed reply' } });
      return;
    }
    if (isEventName(m.event)) dispatchEvent(m.event, m.payload);
  };

  const connect = (): void => {
    retryTimer = null;
    if (closed) return;
    authenticated = false;
    const ws = new Ctor(options.url);
    socket = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify(options.credential === undefined ? { type: 'auth' } : { type: 'auth', credential: options.credential }));
    };
    ws.onmessage = (event: MessageEvent) => {
      onMessage(event.data);
    };
    ws.onclose = (event: CloseEvent) => {
      if (socket !== ws) return;
      socket = null;
      authenticated = false;
      if (event.code === CLOSE_UNAUTHORIZED) {
        refused = true;
        closed = true;
        rejectReady(new Error(REFUSED_MESSAGE));
        failAll(failure('unauthenticated', REFUSED_MESSAGE), true);
        return;
      }
      failAll(failure('unavailable', 'the connection to the browser-mode host was lost'), !reconnect || closed);
      if (reconnect && !closed) {
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RECONNECT_MAX_MS);
      }
    };
    ws.onerror = () => {
      // The close event that follows reports it.
    };
  };

  connect();

  return {
    ready,
    invoke(channel: ChannelName, args: unknown): Promise<IpcEnvelope<unknown>> {
      if (refused) return Promise.resolve(failure('unauthenticated', REFUSED_MESSAGE));
      if (closed) return Promise.resolve(failure('unavailable', 'the connection to the browser-mode host is closed'));
      return new Promise((resolve) => {
        queue.push({ id: String(nextId++), channel, args, resolve });
        flush();
      });
    },
    subscribe(event: EventName, listener: (payload: unknown) => void): () => void {
      return listeners.subscribe(event, listener);
    },
    close(): void {
      closed = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      rejectReady(new Error('the transport was closed'));
      failAll(failure('unavailable', 'the connection to the browser-mode host is closed'), true);
      const ws = socket;
      socket = null;
      ws?.close(1000, 'closed');
    },
  };
}

/**
 * The token of a one-time link `#token=…`, removed from the address bar (history.replaceState, so the current
 * history entry no longer holds it); null when the fragment has none.
 */
export function takeTokenFromLocation(win: Pick<Window, 'location' | 'history'>): string | null {
  const hash = win.location.hash.startsWith('#') ? win.location.hash.slice(1) : win.location.hash;
  const token = new URLSearchParams(hash).get('token');
  if (token === null || token === '') return null;
  win.history.replaceState(win.history.state, '', `${win.location.pathname}${win.location.search}`);
  return token;
}

/** Why the page cannot open the app: a spent link, a link this host never made, or no link and no session. */
export type LinkProblem = 'link_used' | 'link_invalid' | 'no_session';

/** The part of fetch the exchange uses (the DOM one; tests may pass one that keeps cookies). */
export type FetchFunction = (url: string, init: RequestInit) => Promise<Pick<Response, 'status'>>;

/**
 * Trades the link's token for the session cookie, or checks the cookie this browser already has. A used link in a
 * browser that still has a session opens the app: whoever holds the session needs no link.
 */
export async function openBrowserSession(win: Pick<Window, 'location' | 'history'>, fetchFn: FetchFunction): Promise<'ok' | LinkProblem> {
  const endpoint = `${win.location.protocol}//${win.location.host}${SESSION_PATH}`;
  const hasSession = async (): Promise<boolean> => (await fetchFn(endpoint, { method: 'GET', credentials: 'same-origin', cache: 'no-store' })).status === 204;
  const token = takeTokenFromLocation(win);
  if (token === null) return (await hasSession()) ? 'ok' : 'no_session';
  const exchanged = await fetchFn(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (exchanged.status === 204) return 'ok';
  if (await hasSession()) return 'ok';
  return exchanged.status === 410 ? 'link_used' : 'link_invalid';
}

/** The window as the bridge sees it; `palyra` is read through this type, not a global declaration. */
export type BridgeWindow = Pick<Window, 'location' | 'history'> & { palyra?: PalyraApi };

export interface BridgeDependencies {
  fetch?: FetchFunction;
  WebSocket?: WebSocketConstructor;
}

/**
 * Installs `window.palyra` over the browser-mode WebSocket unless preload already provided it, and returns the API;
 * or, when this browser has no session and the link cannot give it one, installs nothing and returns the problem.
 * Call once, before the app mounts.
 */
export async function installWebSocketBridge(win: BridgeWindow = window, deps: BridgeDependencies = {}): Promise<PalyraApi | { problem: LinkProblem }> {
  if (win.palyra !== undefined) return win.palyra;
  const session = await openBrowserSession(win, deps.fetch ?? ((url, init) => fetch(url, init)));
  if (session !== 'ok') return { problem: session };
  const transport = createWebSocketTransport({ url: `ws://${win.location.host}/ipc`, ...(deps.WebSocket === undefined ? {} : { WebSocket: deps.WebSocket }) });
  const api = createPalyraApi(transport);
  Object.defineProperty(win, 'palyra', { value: api, writable: false, configurable: false, enumerable: true });
  return api;
}
