// Test helper: an automation client of the browser-mode host, speaking its WebSocket protocol exactly as a test
// driver or the page's adapter would (Host and Origin headers, the session cookie or the automation credential in
// the first message, calls by id, events).
import WebSocket from 'ws';
import type { EventName, EventPayload, IpcEnvelope } from '../../main/ipc/contract.js';

export interface Closed {
  code: number;
  reason: string;
}

export interface IpcEvent {
  event: string;
  payload: unknown;
}

/** A reply, event or anything else the host sent, as parsed JSON. */
export type HostMessage = Record<string, unknown>;

export interface IpcClient {
  ws: WebSocket;
  /** Every event received since the socket opened, in order. */
  events: IpcEvent[];
  /** Raw replies (parsed JSON) of any kind, in order. */
  messages: HostMessage[];
  closed: Promise<Closed>;
  call(channel: unknown, args?: unknown): Promise<IpcEnvelope<unknown>>;
  /** Sends any JSON (or a raw string) without waiting for a reply. */
  sendRaw(message: unknown): void;
  /** Resolves with the first event (already received or later) that matches; rejects after `timeoutMs`. */
  waitForEvent(match: (e: IpcEvent) => boolean, timeoutMs?: number, what?: string): Promise<IpcEvent>;
  /** Typed: the first payload of `event` that matches. */
  next<E extends EventName>(event: E, match?: (payload: EventPayload<E>) => boolean, timeoutMs?: number): Promise<EventPayload<E>>;
  /** Typed: every payload of `event` received so far. */
  received<E extends EventName>(event: E): EventPayload<E>[];
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Default: the host's own origin. null = no Origin header. */
  origin?: string | null;
  /** Default `127.0.0.1:PORT`. */
  hostHeader?: string;
  path?: string;
  /** The Cookie header of the upgrade (e.g. `palyra_session_PORT=…`); none by default. */
  cookie?: string;
  /**
   * The first message is `{type:'auth', credential}`; default the host's automation credential. null: `{type:'auth'}`
   * without one (the cookie authenticates). Any other value is sent as is (a test of wrong ones).
   */
  credential?: unknown;
  /** No auth message at all: the first message is whatever the test sends. */
  noAuthMessage?: boolean;
  /** Wait for `{type:'ready'}` (default true when an auth message is sent). */
  awaitReady?: boolean;
}

/** Opens a socket; rejects with `{status}` when the upgrade is refused. */
export function openSocket(port: number, options: ConnectOptions = {}): Promise<WebSocket> {
  const hostHeader = options.hostHeader ?? `127.0.0.1:${port}`;
  const origin = options.origin === undefined ? `http://${hostHeader}` : options.origin;
  const ws = new WebSocket(`ws://127.0.0.1:${port}${options.path ?? '/ipc'}`, {
    headers: { host: hostHeader, ...(options.cookie === undefined ? {} : { cookie: options.cookie }) },
    ...(origin === null ? {} : { origin }),
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      resolve(ws);
    });
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

export async function connectIpc(host: { port: number; credential: string }, options: ConnectOptions = {}): Promise<IpcClient> {
  const ws = await openSocket(host.port, options);
  const events: IpcEvent[] = [];
  const messages: HostMessage[] = [];
  const pending = new Map<string, (envelope: IpcEnvelope<unknown>) => void>();
  const waiters = new Set<{ match: (e: IpcEvent) => boolean; resolve: (e: IpcEvent) => void }>();
  let nextId = 1;
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (readyResolve = resolve));
  const closed = new Promise<Closed>((resolve) => {
    ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on('error', () => undefined);
  ws.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString('utf8')) as HostMessage;
    messages.push(message);
    if (message.type === 'ready') readyResolve();
    else if (typeof message.event === 'string') {
      const event = { event: message.event, payload: message.payload };
      events.push(event);
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.delete(w);
          w.resolve(event);
        }
      }
    } else if (typeof message.id === 'string' || typeof message.id === 'number') {
      const id = String(message.id);
      pending.get(id)?.(message.envelope as IpcEnvelope<unknown>);
      pending.delete(id);
    }
  });
  const sendAuth = options.noAuthMessage !== true;
  if (sendAuth) {
    const credential = options.credential === undefined ? host.credential : options.credential;
    ws.send(JSON.stringify(credential === null ? { type: 'auth' } : { type: 'auth', credential }));
  }
  if (sendAuth && (options.awaitReady ?? true)) {
    await Promise.race([
      ready,
      closed.then((c) => {
        throw new Error(`closed before ready: ${c.code} ${c.reason}`);
      }),
    ]);
  }
  const waitForEvent = (match: (e: IpcEvent) => boolean, timeoutMs = 20_000, what = 'event'): Promise<IpcEvent> => {
    const seen = events.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (e: IpcEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no ${what} within ${timeoutMs} ms; events: ${events.map((e) => `${e.event}:${JSON.stringify(e.payload).slice(0, 80)}`).join(', ')}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };
  return {
    ws,
    events,
    messages,
    closed,
    call(channel: unknown, args: unknown = {}): Promise<IpcEnvelope<unknown>> {
      const id = String(nextId++);
      return new Promise((resolve, reject) => {
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, channel, args }), (error) => {
          if (error) reject(error);
        });
        void closed.then((c) => {
          if (pending.delete(id)) reject(new Error(`socket closed (${c.code}) before the reply to ${String(channel)}`));
        });
      });
    },
    sendRaw(message: unknown): void {
      ws.send(typeof message === 'string' ? message : JSON.stringify(message));
    },
    waitForEvent,
    async next<E extends EventName>(event: E, match: (payload: EventPayload<E>) => boolean = () => true, timeoutMs = 20_000): Promise<EventPayload<E>> {
      const found = await waitForEvent((e) => e.event === event && match(e.payload as EventPayload<E>), timeoutMs, event);
      return found.payload as EventPayload<E>;
    },
    received<E extends EventName>(event: E): EventPayload<E>[] {
      return events.filter((e) => e.event === event).map((e) => e.payload as EventPayload<E>);
    },
    async close(): Promise<void> {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2_000))]);
      ws.terminate();
    },
  };
}
