/**
 * The HTTP/2 stream under a grpc-js server call, for the one thing grpc-js does not tell: when a status we sent has
 * left. grpc-js reports a call over as soon as its trailers are queued; the HTTP/2 stream closes only once they were
 * written and the peer closed its side (or reset the stream), which is when destroying the socket loses nothing.
 */

import { EventEmitter } from 'node:events';
import type http2 from 'node:http2';

/** How far down grpc-js's interceptor chain (`call` → `nextCall` …) the lookup goes. */
const MAX_CHAIN = 16;

function isHttp2Stream(value: unknown): value is http2.ServerHttp2Stream {
  return value instanceof EventEmitter && 'session' in value && 'rstCode' in value && 'closed' in value;
}

/**
 * The HTTP/2 stream of a server call, found through grpc-js's private fields (`call`, `nextCall`, `stream`, as of
 * grpc-js 1.14); null when the layout is not that, so callers fall back to a bounded wait.
 */
export function http2StreamOf(call: object): http2.ServerHttp2Stream | null {
  let node: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < MAX_CHAIN && typeof node === 'object' && node !== null; depth++) {
    const stream = (node as { stream?: unknown }).stream;
    if (isHttp2Stream(stream)) return stream;
    node = (node as { nextCall?: unknown }).nextCall;
  }
  return null;
}

/**
 * Resolves once the call's HTTP/2 stream has closed, or after `graceMs` (also when the stream cannot be found or the
 * peer never answers). Never rejects.
 */
export function whenTransportClosed(call: object, graceMs: number): Promise<void> {
  const stream = http2StreamOf(call);
  if (stream?.closed === true || stream?.destroyed === true) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stream?.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, graceMs));
    stream?.once('close', done);
  });
}
