/**
 * One connected period of a node (REFERENCE.md §3.7–§3.8): an mTLS channel with the device's current certificate,
 * RegisterNode, then a StreamNodeEvents stream that opens with `node.started` and heartbeats. The first event asks for
 * pushed dispatch (PROTOCOL.md §4.9): a gateway that agrees sends work the moment it is queued, and heartbeats are
 * only a liveness signal (`heartbeatMs`, 15 s by default, with HTTP/2 keepalive under it); one that does not (a
 * reference gateway) hands work out in its answers to our events, so we poll at POLL_HEARTBEAT_MS at the slowest.
 * The session ends once — on a gateway status (whose `palyra-error-code`
 * tells revocation from failure), a silent gateway, or a local close — and `ended` says how.
 */

import * as grpc from '@grpc/grpc-js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { PAIRING_PROTOCOL_VERSION } from '../core/handshake.js';
import type {
  NodeCapabilityDispatch__Output,
  NodeEventRequest,
  NodeEventResponse__Output,
  NodeServiceClient,
  RegisterNodeResponse__Output,
} from '../rpc/node-service.js';
import { callUnary, fromServiceError } from '../rpc/rpc-errors.js';
import { DEVICE_KEEPALIVE_OPTIONS } from '../rpc/keepalive.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../rpc/tls-client.js';

/** Deadline of RegisterNode and of the first answer on the stream. */
export const SESSION_RPC_TIMEOUT_MS = 10_000;
/** A gateway that has not answered for this many heartbeats (and at least MIN_SILENCE_MS) is taken for gone. */
const SILENT_HEARTBEATS = 3;
const MIN_SILENCE_MS = 5_000;
/** Slowest heartbeat towards a gateway that does not push: its answers are the only way work reaches us. */
export const POLL_HEARTBEAT_MS = 1_000;
/** A heartbeat's payload, `{}`: encoded into each message, so one buffer serves them all. */
const HEARTBEAT_PAYLOAD = Buffer.from('{}', 'utf8');

/** The heartbeat interval and silence timeout of a session, from the configured interval and the negotiation. */
export function sessionTiming(heartbeatMs: number, pushed: boolean): { intervalMs: number; silenceMs: number } {
  const intervalMs = pushed ? heartbeatMs : Math.min(heartbeatMs, POLL_HEARTBEAT_MS);
  return { intervalMs, silenceMs: Math.max(intervalMs * SILENT_HEARTBEATS, MIN_SILENCE_MS) };
}

export interface SessionEnd {
  readonly error: PalyraError;
  /** We closed it (stop, or replaced after a renewal). */
  readonly local: boolean;
}

export interface NodeSessionOptions {
  readonly address: string;
  readonly deviceId: string;
  readonly caCertificatePem: string;
  readonly certificatePem: string;
  readonly certificateFingerprint: string;
  readonly privateKeyPem: string;
  readonly platform: string;
  readonly capabilities: readonly string[];
  /** First event on the stream (`node.started`, or `node.reconnected` after a renewal). */
  readonly firstEvent: { readonly name: string; readonly payload: Record<string, unknown> };
  /** Heartbeat interval once the gateway pushes dispatch (else at most POLL_HEARTBEAT_MS). */
  readonly heartbeatMs: number;
  /** Ask for pushed dispatch (default true; false behaves like a reference node). */
  readonly pushDispatch?: boolean;
  readonly onDispatch: (dispatch: NodeCapabilityDispatch__Output) => void;
  /** Aborting gives up the opening at once (the agent is stopping). */
  readonly signal?: AbortSignal;
}

type EventStream = grpc.ClientDuplexStream<NodeEventRequest, NodeEventResponse__Output>;

export class NodeSession {
  readonly address: string;
  readonly client: NodeServiceClient;
  readonly certificateFingerprint: string;
  readonly ended: Promise<SessionEnd>;
  /** The same `device_id` message on every event (encoded per write; never mutated). */
  readonly #deviceIdMessage: { readonly ulid: string };
  #resolveEnded: (end: SessionEnd) => void = () => undefined;
  #stream: EventStream | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #lastHeard = performance.now();
  #end: SessionEnd | null = null;
  #draining = false;
  #firstAnswer: { resolve: () => void; reject: (error: PalyraError) => void } | null = null;
  #pushed = false;
  #intervalMs = 0;

  private constructor(options: NodeSessionOptions) {
    this.address = options.address;
    this.#deviceIdMessage = { ulid: options.deviceId };
    this.certificateFingerprint = options.certificateFingerprint;
    this.client = createNodeServiceClient(
      options.address,
      createGatewayChannelCredentials({
        caCertificatePem: options.caCertificatePem,
        clientCertificatePem: options.certificatePem,
        clientPrivateKeyPem: options.privateKeyPem,
      }),
      DEVICE_KEEPALIVE_OPTIONS,
    );
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
  }

  /** Registers the node and opens its event stream; resolves once the gateway answered the first event. */
  static async open(options: NodeSessionOptions): Promise<NodeSession> {
    let session: NodeSession | null = null;
    const onAbort = (): void => {
      session?.close();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (options.signal?.aborted === true) throw new PalyraError('cancelled', 'the device agent is stopping');
      session = new NodeSession(options);
      const client = session.client;
      const request = {
        v: PAIRING_PROTOCOL_VERSION,
        device_id: { ulid: options.deviceId },
        platform: options.platform,
        capabilities: options.capabilities.map((name) => ({ name, available: true })),
      };
      // Closed while registering (the agent stops): give up now rather than at the call's deadline.
      const closedEarly = session.ended.then((end): never => {
        throw end.error;
      });
      closedEarly.catch(() => undefined);
      const registered = await Promise.race([
        callUnary<RegisterNodeResponse__Output>((md, opts, cb) => client.RegisterNode(request, md, opts, cb), SESSION_RPC_TIMEOUT_MS),
        closedEarly,
      ]);
      if (!registered.accepted) {
        throw new PalyraError('permission_denied', `the gateway did not register this node: ${registered.reason || 'no reason given'}`);
      }
      await session.#openStream(options);
      return session;
    } catch (error) {
      const err = fromServiceError(error);
      if (session !== null) session.#finish(err, true);
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  get isOpen(): boolean {
    return this.#end === null;
  }

  /** The gateway agreed to push dispatch on this session's stream. */
  get pushed(): boolean {
    return this.#pushed;
  }

  /** The heartbeat interval in use (0 before the stream's first answer). */
  get heartbeatIntervalMs(): number {
    return this.#intervalMs;
  }

  /** Sends one node event; false when the session is over. */
  send(eventName: string, payload: unknown, pushDispatch = false): boolean {
    return this.#write(eventName, Buffer.from(JSON.stringify(payload), 'utf8'), pushDispatch);
  }

  #write(eventName: string, payloadJson: Buffer, pushDispatch: boolean): boolean {
    const stream = this.#stream;
    if (this.#end !== null || this.#draining || stream === null) return false;
    const event: NodeEventRequest = { v: PAIRING_PROTOCOL_VERSION, device_id: this.#deviceIdMessage, event_name: eventName, payload_json: payloadJson };
    if (pushDispatch) event.push_dispatch = true;
    try {
      stream.write(event);
    } catch (error) {
      this.#finish(toPalyraError(error), false);
      return false;
    }
    return true;
  }

  /** Ends the session from our side at once (idempotent); answers still in flight are dropped. */
  close(): void {
    this.#finish(new PalyraError('cancelled', 'the node session was closed locally'), true);
  }

  /**
   * Ends the session gracefully: no more events from us, but answers the gateway already sent (which may carry a
   * dispatch) are still received until the gateway closes the stream, or `graceMs` passes.
   */
  drain(graceMs: number = SESSION_RPC_TIMEOUT_MS): void {
    if (this.#end !== null || this.#draining) return;
    this.#draining = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    const timer = setTimeout(() => {
      this.close();
    }, graceMs);
    void this.ended.then(() => {
      clearTimeout(timer);
    });
    try {
      this.#stream?.end();
    } catch {
      this.close();
    }
  }

  async #openStream(options: NodeSessionOptions): Promise<void> {
    const stream = this.client.StreamNodeEvents();
    this.#stream = stream;
    const firstAnswer = new Promise<void>((resolve, reject) => {
      this.#firstAnswer = { resolve, reject };
    });
    // Rejected by #finish even after a timeout already decided the race below.
    firstAnswer.catch(() => undefined);
    stream.on('data', (response: NodeEventResponse__Output) => {
      this.#lastHeard = performance.now();
      if (response.push_dispatch) this.#pushed = true;
      this.#firstAnswer?.resolve();
      this.#firstAnswer = null;
      const dispatch = response.dispatch;
      if (dispatch !== null && (dispatch.request_id?.ulid ?? '') !== '') options.onDispatch(dispatch);
    });
    stream.on('error', (error: unknown) => {
      this.#finish(fromServiceError(error), false);
    });
    stream.on('status', (status: grpc.StatusObject) => {
      // A non-OK status also arrives as 'error' (first); an OK one means the gateway simply ended the stream.
      if (status.code === grpc.status.OK) this.#finish(new PalyraError('unavailable', 'the gateway ended the event stream'), false);
    });
    stream.on('close', () => {
      // 'error'/'status' come first when the gateway sent a status; give them that turn.
      setImmediate(() => {
        this.#finish(new PalyraError('gateway_unreachable', 'the event stream to the gateway closed'), false);
      });
    });
    this.send(options.firstEvent.name, options.firstEvent.payload, options.pushDispatch ?? true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new PalyraError('timeout', `the gateway did not answer on the event stream within ${SESSION_RPC_TIMEOUT_MS} ms`));
      }, SESSION_RPC_TIMEOUT_MS);
    });
    try {
      await Promise.race([firstAnswer, timeout]);
    } finally {
      clearTimeout(timer);
    }
    const { intervalMs, silenceMs } = sessionTiming(options.heartbeatMs, this.#pushed);
    this.#intervalMs = intervalMs;
    this.#heartbeat = setInterval(() => {
      if (performance.now() - this.#lastHeard > silenceMs) {
        this.#finish(new PalyraError('timeout', `the gateway did not answer for ${silenceMs} ms`), false);
        return;
      }
      this.#write('node.heartbeat', HEARTBEAT_PAYLOAD, false);
    }, intervalMs);
  }

  #finish(error: PalyraError, local: boolean): void {
    if (this.#end !== null) return;
    const end: SessionEnd = { error, local };
    this.#end = end;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    this.#firstAnswer?.reject(error);
    this.#firstAnswer = null;
    const stream = this.#stream;
    if (stream !== null) {
      try {
        stream.cancel();
      } catch {
        // Already over.
      }
    }
    this.client.close();
    this.#resolveEnded(end);
  }
}
