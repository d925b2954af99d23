/**
 * Bounds on the work a caller without a client certificate can make the gateway do (issue 12). Such connections are
 * served by their own grpc.Server whose receive limit is small, so grpc-js refuses an oversized message from its
 * 5-byte length prefix instead of buffering it; on top of that, interceptors admit a bounded number of concurrent
 * calls per connection, per source address and in total, and check field lengths before a handler runs.
 */

import * as grpc from '@grpc/grpc-js';
import { ERROR_CATALOGUE, PalyraError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { ERROR_CODE_METADATA_KEY } from './rpc-errors.js';

/** The limits, in one table so that docs/PROTOCOL.md can quote it. */
export const UNAUTHENTICATED_LIMITS = {
  /** Largest gRPC message a connection without a client certificate may send (grpc-js: RESOURCE_EXHAUSTED). */
  maxMessageBytes: 32 * 1024,
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS on such connections: the hard bound on what one connection buffers. */
  maxConcurrentStreams: 16,
  /** Concurrent calls admitted per connection; the rest answer RESOURCE_EXHAUSTED `unauthenticated_call_limit`. */
  maxCallsPerConnection: 8,
  /** Concurrent calls admitted per source address, over all its connections. */
  maxCallsPerSource: 64,
  /** Concurrent calls admitted without a certificate in total. */
  maxCallsTotal: 512,
  /** Node's per-session memory bound for such connections, in MB (nghttp2 state, header tables, pending writes). */
  maxSessionMemoryMb: 4,
  /** Such connections are closed (HTTP/2 GOAWAY) after this long without a call. */
  maxIdleMs: 60_000,
} as const;

/** Longest value of a string field in a pairing request, by field name; others get `defaultString`. */
export const FIELD_LIMITS = {
  /** UTF-8 bytes of any string field not listed. */
  defaultString: 1024,
  /** Bytes of any bytes field not listed. */
  defaultBytes: 1024,
  qr_token: 256,
  pin_code: 64,
  proof: 256,
  client_kind: 16,
  session_id: 128,
  ulid: 64,
  tls_csr_der: 4096,
  tls_csr_signature: 128,
  /** Nesting depth of messages walked; a deeper request is refused. */
  maxDepth: 8,
  /** Elements of any repeated field. */
  maxRepeated: 64,
} as const;

/**
 * NodeService methods whose requests carry device payloads (capability input, event payloads): their size is bounded
 * by the 4 MiB message limit of authenticated connections, not by field limits.
 */
const PAYLOAD_METHODS: ReadonlySet<string> = new Set(['ExecuteCapability', 'StreamNodeEvents', 'RegisterNode']);

/** A PalyraError as a gRPC status object, with the `palyra-error-code` trailer. */
export function statusOf(err: PalyraError): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, err.code);
  const name = ERROR_CATALOGUE[err.code].grpc;
  return { code: grpc.status[name], details: err.message, metadata };
}

function limitFor(field: string, kind: 'string' | 'bytes'): number {
  const specific = (FIELD_LIMITS as Record<string, number>)[field];
  if (specific !== undefined && !['defaultString', 'defaultBytes', 'maxDepth', 'maxRepeated'].includes(field)) return specific;
  return kind === 'string' ? FIELD_LIMITS.defaultString : FIELD_LIMITS.defaultBytes;
}

/** The first field of `message` over its limit, as a coded error; null when every field is within bounds. */
export function fieldLimitViolation(message: unknown, depth = 0, name = 'request'): PalyraError | null {
  if (depth > FIELD_LIMITS.maxDepth) return new PalyraError('invalid_argument', `${name} is nested too deeply`);
  if (typeof message === 'string') {
    const limit = limitFor(name, 'string');
    // Cheap upper bound first: a UTF-16 length over the limit already is over it in UTF-8.
    if (message.length > limit || Buffer.byteLength(message, 'utf8') > limit) {
      return new PalyraError('invalid_argument', `${name} must be at most ${limit} bytes`, { details: { field: name, limit } });
    }
    return null;
  }
  if (message instanceof Uint8Array) {
    const limit = limitFor(name, 'bytes');
    if (message.length > limit) return new PalyraError('invalid_argument', `${name} must be at most ${limit} bytes`, { details: { field: name, limit } });
    return null;
  }
  if (Array.isArray(message)) {
    if (message.length > FIELD_LIMITS.maxRepeated) {
      return new PalyraError('invalid_argument', `${name} must have at most ${FIELD_LIMITS.maxRepeated} elements`);
    }
    for (const item of message) {
      const violation = fieldLimitViolation(item, depth + 1, name);
      if (violation !== null) return violation;
    }
    return null;
  }
  if (typeof message === 'object' && message !== null) {
    for (const [key, value] of Object.entries(message)) {
      const violation = fieldLimitViolation(value, depth + 1, key);
      if (violation !== null) return violation;
    }
  }
  return null;
}

function methodName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * Refuses a pairing-type request with a field over its limit (INVALID_ARGUMENT, `invalid_argument`) before its
 * handler runs. Device payload methods and the admin service pass unchanged.
 */
export const fieldLimitInterceptor: grpc.ServerInterceptor = (descriptor, call) => {
  const checked = descriptor.path.startsWith('/palyra.node.v1.') && !PAYLOAD_METHODS.has(methodName(descriptor.path));
  return new grpc.ServerInterceptingCall(call, {
    start: (next) => {
      next({
        onReceiveMessage: (message: unknown, forward) => {
          const violation = checked ? fieldLimitViolation(message) : null;
          if (violation === null) forward(message);
          else call.sendStatus(statusOf(violation));
        },
      });
    },
  });
};

/** Counts of admitted calls without a client certificate; one per gateway. */
export class UnauthenticatedCallGate {
  readonly #limits: Pick<typeof UNAUTHENTICATED_LIMITS, 'maxCallsPerConnection' | 'maxCallsPerSource' | 'maxCallsTotal'>;
  readonly #perConnection = new Map<string, number>();
  readonly #perSource = new Map<string, number>();
  #total = 0;

  constructor(limits: Partial<Pick<typeof UNAUTHENTICATED_LIMITS, 'maxCallsPerConnection' | 'maxCallsPerSource' | 'maxCallsTotal'>> = {}) {
    this.#limits = { ...UNAUTHENTICATED_LIMITS, ...limits };
  }

  get total(): number {
    return this.#total;
  }

  /** A release function for an admitted call, or the coded refusal; counts change only when admitted. */
  admit(connection: string, source: string): (() => void) | PalyraError {
    const onConnection = this.#perConnection.get(connection) ?? 0;
    const fromSource = this.#perSource.get(source) ?? 0;
    const refuse = (scope: string, limit: number): PalyraError =>
      new PalyraError('unauthenticated_call_limit', `too many concurrent calls without a client certificate ${scope} (limit: ${limit})`, {
        details: { scope, limit },
      });
    if (onConnection >= this.#limits.maxCallsPerConnection) return refuse('on this connection', this.#limits.maxCallsPerConnection);
    if (fromSource >= this.#limits.maxCallsPerSource) return refuse('from this address', this.#limits.maxCallsPerSource);
    if (this.#total >= this.#limits.maxCallsTotal) return refuse('in total', this.#limits.maxCallsTotal);
    this.#perConnection.set(connection, onConnection + 1);
    this.#perSource.set(source, fromSource + 1);
    this.#total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total -= 1;
      decrement(this.#perConnection, connection);
      decrement(this.#perSource, source);
    };
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/**
 * Admits each call through `gate` when its headers arrive, before its message is read; a refused call answers
 * RESOURCE_EXHAUSTED `unauthenticated_call_limit` and its handler never runs. The slot is freed with the status.
 */
export function admissionInterceptor(gate: UnauthenticatedCallGate): grpc.ServerInterceptor {
  return (_descriptor, call) => {
    const info = call.getConnectionInfo();
    const source = info.remoteAddress ?? 'unknown';
    const connection = `${source}|${String(info.remotePort ?? 0)}`;
    let release: (() => void) | null = null;
    const free = (): void => {
      release?.();
      release = null;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, forward) => {
            const admitted = gate.admit(connection, source);
            if (admitted instanceof PalyraError) {
              call.sendStatus(statusOf(admitted));
              return;
            }
            release = admitted;
            forward(metadata);
          },
          onCancel: free,
        });
      },
      sendStatus: (status, forward) => {
        free();
        forward(status);
      },
    });
  };
}

/** grpc.Server options for connections without a client certificate. */
export function unauthenticatedServerOptions(gate: UnauthenticatedCallGate): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': UNAUTHENTICATED_LIMITS.maxMessageBytes,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc.max_concurrent_streams': UNAUTHENTICATED_LIMITS.maxConcurrentStreams,
    'grpc-node.max_session_memory': UNAUTHENTICATED_LIMITS.maxSessionMemoryMb,
    'grpc.max_connection_idle_ms': UNAUTHENTICATED_LIMITS.maxIdleMs,
    interceptors: [admissionInterceptor(gate), fieldLimitInterceptor],
  };
}

/**
 * Handlers for every method of `service` that answer `err` at once: what a connection with a refused client
 * certificate gets on every call, so the device learns why instead of seeing the connection drop.
 */
export function refusingHandlers(service: grpc.ServiceDefinition, err: PalyraError): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  const fail = (): grpc.ServiceError => {
    const status = statusOf(err);
    return Object.assign(new Error(status.details), status);
  };
  for (const [name, method] of Object.entries(service)) {
    if (method.requestStream) {
      handlers[name] = method.responseStream
        ? (call: grpc.ServerDuplexStream<unknown, unknown>) => call.emit('error', fail())
        : (_call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
            callback(fail());
          };
    } else {
      handlers[name] = method.responseStream
        ? (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', fail())
        : (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
            callback(fail());
          };
    }
  }
  return handlers;
}

/** The refusal a connection gets for a client certificate judged at the handshake. */
export function certificateRefusal(kind: 'revoked' | 'unknown'): PalyraError {
  const code: ErrorCode = kind === 'revoked' ? 'certificate_revoked' : 'certificate_unknown';
  return kind === 'revoked'
    ? new PalyraError(code, 'node RPC client certificate is revoked')
    : new PalyraError(code, 'node RPC client certificate is not issued by this gateway, or has expired');
}
