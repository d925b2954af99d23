/**
 * The `palyra.node.v1.NodeService` handlers (the reference's eight and our CancelPairingRequest) (REFERENCE.md §3 with PROTOCOL.md §4–§5). Validation order,
 * status codes and message texts follow the reference where it has them; device-bound RPCs require a client
 * certificate whose fingerprint is the current certificate of the request's device (O(1) index), unless the
 * insecure opt-out is on.
 */

import * as grpc from '@grpc/grpc-js';
import { isClientKind } from '../core/client-kind.js';
import type { ClientKind } from '../core/client-kind.js';
import { ERROR_CATALOGUE, PalyraError, toPalyraError } from '../core/errors.js';
import type { ErrorCode, GrpcStatusName } from '../core/errors.js';
import { isCanonicalId, newUlid } from '../core/ids.js';
import { verifyCsrBinding } from '../core/handshake.js';
import { parseAndVerifyCsr } from '../core/csr.js';
import { fromHex } from '../core/bytes.js';
import type {
  CanonicalId__Output,
  NodeEventRequest__Output,
  NodeEventResponse,
  NodeServiceHandlers,
} from '../rpc/node-service.js';
import { callPeerFingerprint } from '../rpc/tls-listener.js';
import { ERROR_CODE_METADATA_KEY } from '../rpc/rpc-errors.js';
import { whenTransportClosed } from './call-transport.js';
import type { CapabilityDispatch, CapabilityDispatcher, CapabilityResult } from './capabilities.js';
import type { GatewayAdmin } from './gateway-admin.js';
import type { PairingService } from './pairing-service.js';
import { SPAKE2PLUS_SUITE } from '../core/spake2plus.js';

const STATUS: Record<GrpcStatusName, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  NOT_FOUND: grpc.status.NOT_FOUND,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  CANCELLED: grpc.status.CANCELLED,
  INTERNAL: grpc.status.INTERNAL,
};


/** A PalyraError as a gRPC error: status from the catalogue, the message as details, the code in metadata. */
/**
 * Failures of the gateway's own storage and keychain: their messages name local paths, lock owners and library
 * text, which are nobody's business on the wire. Clients get the code and the catalogue's generic message; the
 * full message stays in the gateway's own log.
 */
const SERVER_SIDE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'internal',
  'store_decrypt_failed',
  'store_truncated',
  'store_plaintext_refused',
  'store_io_failed',
  'state_corrupt',
  'state_rollback',
  'state_lock_timeout',
  'keychain_locked',
  'keychain_unavailable',
  'audit_chain_broken',
  'ca_missing',
]);

/** The message a client may see for `err`. */
export function wireMessage(err: PalyraError): string {
  return SERVER_SIDE_CODES.has(err.code) ? ERROR_CATALOGUE[err.code].message : err.message;
}

export function toServiceError(e: unknown): grpc.ServiceError {
  const err = toPalyraError(e);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, err.code);
  const message = wireMessage(err);
  const error: grpc.ServiceError = Object.assign(new Error(message), { code: STATUS[ERROR_CATALOGUE[err.code].grpc], details: message, metadata });
  return error;
}

/**
 * Ends a server stream with a status the client receives (code, message, `palyra-error-code` trailer). grpc-js
 * sends no status for `destroy(error)`: the client would only see the connection drop, or nothing at all.
 */
export function endStreamWithError(call: { emit(event: 'error', error: grpc.ServiceError): boolean }, e: unknown): void {
  call.emit('error', toServiceError(e));
}

/**
 * `endStreamWithError`, then resolves once the status has left: the call's HTTP/2 stream closed (the peer answered
 * the trailers), or `graceMs` passed. Only after that may the socket be destroyed without the peer losing the status.
 */
export function endStreamAndFlush(call: grpc.ServerDuplexStream<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, e: unknown, graceMs: number): Promise<void> {
  const closed = whenTransportClosed(call, graceMs);
  endStreamWithError(call, e);
  return closed;
}

/** `v = max(request.v, 1)` on every response. */
function version(v: number): number {
  return Math.max(v, 1);
}

function canonicalDeviceId(id: CanonicalId__Output | null): string {
  const ulid = id?.ulid.trim() ?? '';
  if (ulid.length === 0 || !isCanonicalId(ulid)) throw new PalyraError('invalid_argument', 'device_id must be a canonical ULID');
  return ulid;
}

function clientKind(text: string): ClientKind {
  const kind = text.trim().toLowerCase();
  if (!isClientKind(kind)) throw new PalyraError('invalid_argument', 'client_kind must be one of cli|desktop|node');
  return kind;
}

function exactLength(bytes: Uint8Array, n: number, name: string): Uint8Array {
  if (bytes.length !== n) throw new PalyraError('invalid_argument', `${name} must be ${n} bytes`);
  return bytes;
}

export interface NodeRpcContext {
  admin: GatewayAdmin;
  pairing: PairingService;
  dispatcher: CapabilityDispatcher;
  mtlsRequired: boolean;
  allowServerGeneratedKeys: boolean;
  gatewayName: string | null;
  /** Test-only `--disable-pake`: answer the PIN pairing v2 RPCs UNIMPLEMENTED, like a reference gateway. */
  disablePake?: boolean;
  clock: () => number;
  /**
   * Runs an ExecuteCapability call (a `--workers` gateway relays it to the worker holding the device's stream);
   * absent = the dispatcher here.
   */
  execute?(call: { deviceId: string; capability: string; inputJson: Uint8Array; maxPayloadBytes: number }): Promise<CapabilityResult>;
  /** Live node bookkeeping owned by the gateway. */
  /**
   * The stream's first event marked `deviceId` online; `push`, when the stream negotiated pushed dispatch, writes the
   * device's queued work down this stream at once (the gateway calls it when work is queued); false when this stream
   * can take no work (not answered yet, or ending), so another stream of the device should.
   */
  nodeOnline(deviceId: string, stream: grpc.ServerDuplexStream<NodeEventRequest__Output, NodeEventResponse>, push?: () => boolean): () => void;
  nodeSeen(deviceId: string, eventName: string): void;
  /** A device rotated: its previous certificate's connections get a short grace to move to the new one. */
  rotated(previousFingerprint: string): void;
  /**
   * An event stream authenticated by `fingerprint` started (before its first event), so a revocation reaches it even
   * if it never sent one; the returned function unregisters it.
   */
  streamOpened?(fingerprint: string, stream: grpc.ServerDuplexStream<NodeEventRequest__Output, NodeEventResponse>): () => void;
  log(event: Record<string, string | number | boolean | null>): void;
}

type Call = { getAuthContext(): unknown; getPeer(): string };

/**
 * `enforceCertBoundDevice` on the state as it is on disk now: another process on the same state (a sibling worker of
 * `gateway run --workers N`, the CLI, the desktop app) may have paired, rotated or revoked the device since this one
 * last read it — a revocation the CLI has acknowledged must not be accepted here in the moments before the change
 * watcher fires. A stat when nothing changed.
 */
async function enforceCertBoundDeviceFresh(ctx: NodeRpcContext, call: Call, deviceId: string): Promise<void> {
  // A state that cannot be read now (a database outage) leaves the last one read in force, as for established streams.
  await ctx.admin.refreshIfChanged().catch(() => undefined);
  enforceCertBoundDevice(ctx, call, deviceId);
}

/** REFERENCE.md §3.1 `enforce_cert_bound_device`, against the current-certificate index. */
function enforceCertBoundDevice(ctx: NodeRpcContext, call: Call, deviceId: string): void {
  const fingerprint = callPeerFingerprint(call);
  if (fingerprint === null) {
    if (ctx.mtlsRequired) throw new PalyraError('unauthenticated', 'node RPC request requires a paired client certificate');
    return;
  }
  if (ctx.admin.identity.isCertificateRevoked(fingerprint)) throw new PalyraError('certificate_revoked', 'node RPC client certificate fingerprint is revoked');
  const mapped = ctx.admin.identity.deviceIdForCertificateFingerprint(fingerprint);
  if (mapped === undefined) throw new PalyraError('permission_denied', 'node RPC client certificate does not map to a paired device');
  if (mapped !== deviceId) throw new PalyraError('permission_denied', 'node RPC request device_id does not match the authenticated client certificate');
}

function unary<Req, Res>(handler: (request: Req, call: Call) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    handler(call.request, call).then(
      (response) => {
        callback(null, response);
      },
      (e: unknown) => {
        callback(toServiceError(e));
      },
    );
  };
}

function nodeId(now: number): { ulid: string } {
  return { ulid: newUlid(now) };
}

export function createNodeRpcHandlers(ctx: NodeRpcContext): NodeServiceHandlers {
  const handlers = nodeRpcHandlers(ctx);
  if (ctx.disablePake !== true) return handlers;
  // Left out, grpc-js answers them UNIMPLEMENTED: what a reference gateway does.
  const { BeginPinPairingSession: _begin, ExchangePinPake: _exchange, ...v1Only } = handlers;
  return v1Only as NodeServiceHandlers;
}

function nodeRpcHandlers(ctx: NodeRpcContext): NodeServiceHandlers {
  return {
    BeginPairingSession: unary(async (req, call) => {
      const kind = clientKind(req.client_kind);
      const method = req.method;
      if (method === null) throw new PalyraError('invalid_argument', 'pairing method is required');
      let proof: { kind: 'pin' | 'qr'; proof: string };
      if (method.value === 'pin_code') {
        if ((method.pin_code ?? '').trim().length === 0) throw new PalyraError('invalid_argument', 'pin pairing code must not be empty');
        proof = { kind: 'pin', proof: method.pin_code!.trim() };
      } else if (method.value === 'qr_token') {
        if ((method.qr_token ?? '').trim().length === 0) throw new PalyraError('invalid_argument', 'QR pairing token must not be empty');
        proof = { kind: 'qr', proof: method.qr_token!.trim() };
      } else {
        throw new PalyraError('invalid_argument', 'pairing method must be provided');
      }
      const commitment = req.device_x25519_commitment.length === 0 ? null : exactLength(req.device_x25519_commitment, 32, 'device_x25519_commitment');
      const session = await ctx.pairing.begin({ clientKind: kind, method: proof, commitment, source: peerHost(call.getPeer()) });
      return {
        v: version(req.v),
        session_id: session.sessionId,
        client_kind: session.clientKind,
        gateway_ephemeral_public: Buffer.from(session.gatewayEphemeralPublic),
        challenge: Buffer.from(session.challenge),
        expires_at_unix_ms: session.expiresAtUnixMs,
        gateway_name: ctx.gatewayName ?? '',
      };
    }),

    CompletePairingSession: unary(async (req) => {
      const sessionId = req.session_id.trim();
      if (sessionId.length === 0) throw new PalyraError('invalid_argument', 'session_id must not be empty');
      const deviceId = canonicalDeviceId(req.device_id);
      const kind = clientKind(req.client_kind);
      const request = await ctx.pairing.complete({
        sessionId,
        deviceId,
        clientKind: kind,
        protocolVersion: req.v,
        deviceSigningPublic: exactLength(req.device_signing_public, 32, 'device_signing_public'),
        deviceX25519Public: exactLength(req.device_x25519_public, 32, 'device_x25519_public'),
        challengeSignature: exactLength(req.challenge_signature, 64, 'challenge_signature'),
        transcriptMac: exactLength(req.transcript_mac, 32, 'transcript_mac'),
        csrDer: req.tls_csr_der.length === 0 ? null : req.tls_csr_der,
        csrSignature: req.tls_csr_signature.length === 0 ? null : req.tls_csr_signature,
        deviceName: req.device_name,
        pakeConfirmP: req.pake_confirm_p.length === 0 ? null : req.pake_confirm_p,
      });
      ctx.log({ event: 'pairing.request', request_id: request.requestId, device_id: request.deviceId, sas: request.sas, sas_status: request.sasStatus });
      return {
        v: version(req.v),
        paired: false,
        reason: 'pending_approval',
        identity_fingerprint: request.identityFingerprint,
        transcript_hash: request.transcriptHashHex,
        mtls_client_certificate_pem: '',
        mtls_client_private_key_pem: '',
        gateway_ca_certificate_pem: '',
        cert_expires_at_unix_ms: 0,
      };
    }),

    // PIN pairing v2 (SPAKE2+), round 1: a session for the active PIN code; the answer carries the code's salt.
    BeginPinPairingSession: unary(async (req, call) => {
      const kind = clientKind(req.client_kind);
      const deviceId = canonicalDeviceId(req.device_id);
      const commitment = exactLength(req.device_x25519_commitment, 32, 'device_x25519_commitment');
      const { session, salt } = await ctx.pairing.beginPake({ clientKind: kind, deviceId, commitment, source: peerHost(call.getPeer()) });
      return {
        v: version(req.v),
        session_id: session.sessionId,
        client_kind: session.clientKind,
        gateway_ephemeral_public: Buffer.from(session.gatewayEphemeralPublic),
        challenge: Buffer.from(session.challenge),
        expires_at_unix_ms: session.expiresAtUnixMs,
        gateway_name: ctx.gatewayName ?? '',
        pake_suite: SPAKE2PLUS_SUITE,
        pake_salt: Buffer.from(salt),
      };
    }),

    // Round 2: shareP → shareV, confirmV. Malformed shares are pake_invalid_share (INVALID_ARGUMENT).
    ExchangePinPake: unary(async (req) => {
      const sessionId = req.session_id.trim();
      if (sessionId.length === 0) throw new PalyraError('invalid_argument', 'session_id must not be empty');
      const { shareV, confirmV } = await ctx.pairing.exchangePake({ sessionId, shareP: new Uint8Array(req.pake_share_p) });
      return { v: version(req.v), pake_share_v: Buffer.from(shareV), pake_confirm_v: Buffer.from(confirmV) };
    }),

    GetPairingRequestStatus: unary(async (req) => {
      const sessionId = req.session_id.trim();
      if (sessionId.length === 0) throw new PalyraError('invalid_argument', 'session_id must not be empty');
      const deviceId = canonicalDeviceId(req.device_id);
      const { request, material, privateKeyPem } = await ctx.pairing.status({ sessionId, deviceId, waitMs: req.wait_ms });
      return {
        v: version(req.v),
        status: request.state,
        reason: request.decisionReason ?? '',
        paired: request.state === 'completed',
        approval_id: request.approvalId,
        identity_fingerprint: request.identityFingerprint,
        transcript_hash: request.transcriptHashHex,
        mtls_client_certificate_pem: material?.certificatePem ?? '',
        mtls_client_private_key_pem: privateKeyPem ?? '',
        gateway_ca_certificate_pem: material?.caCertificatePem ?? '',
        cert_expires_at_unix_ms: material?.certExpiresAtUnixMs ?? 0,
        sas: request.sas,
        request_expires_at_unix_ms: request.expiresAtUnixMs,
      };
    }),

    // Ours: reachable without a client certificate like the status call; the device proves its key instead.
    CancelPairingRequest: unary(async (req) => {
      const sessionId = req.session_id.trim();
      if (sessionId.length === 0) throw new PalyraError('invalid_argument', 'session_id must not be empty');
      const deviceId = canonicalDeviceId(req.device_id);
      const signature = exactLength(req.cancel_signature, 64, 'cancel_signature');
      const { request, changed } = await ctx.pairing.cancel({ sessionId, deviceId, signature });
      if (changed) ctx.log({ event: 'pairing.cancelled', request_id: request.requestId, device_id: request.deviceId });
      return { v: version(req.v), status: request.state, reason: request.decisionReason ?? '', changed };
    }),

    RotateDeviceCertificate: unary(async (req, call) => {
      const deviceId = canonicalDeviceId(req.device_id);
      await enforceCertBoundDeviceFresh(ctx, call, deviceId);
      await ctx.pairing.markMaterialDelivered(deviceId);
      let csrDer: Uint8Array | null = null;
      if (req.tls_csr_der.length > 0) {
        const device = ctx.admin.identity.pairedDevice(deviceId);
        // Renewal CSRs are bound like pairing CSRs, with the device id in place of the session id.
        if (device === undefined || !verifyCsrBinding({ signature: req.tls_csr_signature, sessionId: deviceId, csrDer: req.tls_csr_der, signingPublicKey: fromHex(device.signing_public_key_hex) })) {
          throw new PalyraError('csr_signature_invalid');
        }
        await parseAndVerifyCsr(req.tls_csr_der);
        csrDer = req.tls_csr_der;
      } else if (!ctx.allowServerGeneratedKeys) {
        throw new PalyraError('server_generated_keys_disabled');
      }
      const previousFingerprint = callPeerFingerprint(call);
      if (previousFingerprint !== null) ctx.rotated(previousFingerprint);
      try {
        const rotated = await ctx.admin.mutateIdentity((identity) => identity.forceRotate(deviceId, { csrDer }));
        return {
          v: version(req.v),
          rotated: true,
          reason: 'rotated',
          mtls_client_certificate_pem: rotated.certificate.certificatePem,
          mtls_client_private_key_pem: rotated.privateKeyPem ?? '',
          cert_expires_at_unix_ms: rotated.certificate.expiresAtUnixMs,
        };
      } catch (e) {
        const err = toPalyraError(e);
        throw new PalyraError(err.code, `device certificate rotation failed: ${err.message}`);
      }
    }),

    RevokeDevicePairing: unary(async (req, call) => {
      const deviceId = canonicalDeviceId(req.device_id);
      await enforceCertBoundDeviceFresh(ctx, call, deviceId);
      await ctx.pairing.markMaterialDelivered(deviceId);
      const reason = req.reason.trim() === '' ? 'revoked_by_device' : req.reason.trim();
      try {
        await ctx.admin.mutateIdentity((identity) => identity.revokeDevice(deviceId, reason));
      } catch (e) {
        const err = toPalyraError(e);
        throw new PalyraError(err.code, `device pairing revocation failed: ${err.message}`);
      }
      return { v: version(req.v), revoked: true, reason: 'revoked' };
    }),

    RegisterNode: unary(async (req, call) => {
      const deviceId = canonicalDeviceId(req.device_id);
      await enforceCertBoundDeviceFresh(ctx, call, deviceId);
      const now = ctx.clock();
      const existing = ctx.admin.runtime.nodes.get(deviceId);
      const capabilities = req.capabilities
        .map((c) => ({ name: c.name.trim(), available: c.available }))
        .filter((c, i, all) => c.name.length > 0 && c.name.length <= 128 && all.findIndex((o) => o.name === c.name) === i)
        .slice(0, 64);
      await ctx.admin.putNode({ deviceId, platform: req.platform.trim().slice(0, 128), capabilities, registeredAtUnixMs: existing?.registeredAtUnixMs ?? now, lastSeenAtUnixMs: now, lastAddress: peerHost(call.getPeer()) });
      await ctx.pairing.markMaterialDelivered(deviceId);
      ctx.nodeSeen(deviceId, 'node.registered');
      return { v: version(req.v), device_id: req.device_id, accepted: true, reason: 'registered' };
    }),

    StreamNodeEvents: function streamNodeEvents(call, refreshed = false) {
      const fingerprint = callPeerFingerprint(call);
      let bound: string | null = null;
      if (fingerprint !== null) {
        if (ctx.admin.identity.isCertificateRevoked(fingerprint)) {
          endStreamWithError(call, new PalyraError('certificate_revoked', 'node RPC client certificate fingerprint is revoked'));
          return;
        }
        bound = ctx.admin.identity.deviceIdForCertificateFingerprint(fingerprint) ?? null;
      }
      if (ctx.mtlsRequired && fingerprint === null) {
        endStreamWithError(call, new PalyraError('unauthenticated', 'node event stream requires a paired client certificate'));
        return;
      }
      if (ctx.mtlsRequired && bound === null && !refreshed) {
        // Paired or rotated by another process since this one read the state? Read it again, then decide (events
        // wait in the stream's buffer meanwhile).
        void ctx.admin
          .refreshIfChanged()
          .catch(() => undefined)
          .then(() => {
            streamNodeEvents(call, true);
          });
        return;
      }
      if (ctx.mtlsRequired && bound === null) {
        endStreamWithError(call, new PalyraError('permission_denied', 'node event stream certificate is not mapped to a paired device'));
        return;
      }
      let offline: (() => void) | null = null;
      const unregister = fingerprint === null ? undefined : ctx.streamOpened?.(fingerprint, call);
      let failed = false;
      // Negotiated by the stream's first event (PROTOCOL.md §4.9): queued work is written down at once.
      let pushed = false;
      let deviceOfStream = '';
      let responseVersion = 1;
      let answered = false;
      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        endStreamWithError(call, e);
      };
      // Events are handled in order. Only the first one awaits (the device's material is marked delivered); the
      // ones that arrive meanwhile wait in `waiting`, every later one is handled synchronously: no promise chain
      // and no closure per heartbeat.
      let waiting: NodeEventRequest__Output[] | null = null;
      /** Keeps `req` for later while an async step runs; false when it can be handled now. */
      const enqueue = (req: NodeEventRequest__Output): boolean => {
        if (waiting === null) return false;
        waiting.push(req);
        return true;
      };
      const step = (req: NodeEventRequest__Output): void => {
        if (failed) return;
        let asyncPart: Promise<void> | undefined;
        try {
          asyncPart = handleEvent(req);
        } catch (e) {
          fail(e);
          return;
        }
        if (asyncPart === undefined) return;
        waiting = [];
        asyncPart.then(
          () => {
            const queued = waiting ?? [];
            waiting = null;
            for (const next of queued) {
              if (!enqueue(next)) step(next);
            }
          },
          (e: unknown) => {
            waiting = null;
            fail(e);
          },
        );
      };
      call.on('data', (req: NodeEventRequest__Output) => {
        if (!enqueue(req)) step(req);
      });
      call.on('end', () => {
        call.end();
      });
      call.on('error', () => undefined);
      call.on('close', () => {
        unregister?.();
        offline?.();
      });

      /** Writes one response; a dispatch whose send fails goes back to the head of the queue (a reference gap). */
      // Ended by us (the node half-closed: a draining session) counts as gone too: nothing more can be written.
      const gone = (): boolean => call.destroyed || call.cancelled || call.writableEnded;
      const send = (deviceId: string, response: NodeEventResponse, dispatch: CapabilityDispatch | null): void => {
        if (gone()) {
          if (dispatch !== null) ctx.dispatcher.requeue(deviceId, dispatch);
          return;
        }
        if (dispatch === null) {
          call.write(response);
          return;
        }
        call.write(response, (error?: Error | null) => {
          if (error) ctx.dispatcher.requeue(deviceId, dispatch);
        });
      };

      /** Push streams: every queued item of the device as an unsolicited response (bounded by the queue). */
      const push = (): boolean => {
        // Nothing unsolicited before the answer to the first event (it tells the node that we push).
        if (failed || !answered || gone()) return false;
        // gone() before each item: one put back by a failed send must not be taken again by this stream.
        while (!gone()) {
          const dispatch = ctx.dispatcher.next(deviceOfStream);
          if (dispatch === null) return true;
          send(deviceOfStream, { v: responseVersion, event_id: nodeId(ctx.clock()), accepted: true, reason: 'dispatch', dispatch: dispatchMessage(dispatch), push_dispatch: true }, dispatch);
        }
        return true;
      };

      // Without mTLS an event may name another device than the first one did (reference behaviour): it is answered
      // with that device's work; pushes go to the device of the first event only.
      const answer = (deviceId: string, req: NodeEventRequest__Output): void => {
        const dispatch = pushed ? null : ctx.dispatcher.next(deviceId);
        const response: NodeEventResponse = { v: version(req.v), event_id: nodeId(ctx.clock()), accepted: true, reason: 'accepted' };
        if (dispatch !== null) response.dispatch = dispatchMessage(dispatch);
        if (pushed) response.push_dispatch = true;
        send(deviceId, response, dispatch);
      };

      const handleEvent = (req: NodeEventRequest__Output): Promise<void> | undefined => {
        const deviceId = canonicalDeviceId(req.device_id);
        if (ctx.mtlsRequired && deviceId !== bound) {
          throw new PalyraError('permission_denied', 'node event stream device_id does not match the authenticated client certificate');
        }
        if (offline === null) {
          deviceOfStream = deviceId;
          pushed = req.push_dispatch;
          responseVersion = version(req.v);
          offline = ctx.nodeOnline(deviceId, call, pushed ? push : undefined);
          return ctx.pairing.markMaterialDelivered(deviceId).then(() => {
            afterChecks(deviceId, req);
          });
        }
        afterChecks(deviceId, req);
        return undefined;
      };

      const afterChecks = (deviceId: string, req: NodeEventRequest__Output): void => {
        handleCapabilityEvent(ctx, deviceId, req);
        ctx.nodeSeen(deviceId, req.event_name);
        answer(deviceId, req);
        answered = true;
        // Work queued before the first answer, or put back after a failed send, goes out now.
        if (pushed) void push();
      };
    },

    ExecuteCapability: unary(async (req, call) => {
      const deviceId = canonicalDeviceId(req.device_id);
      await enforceCertBoundDeviceFresh(ctx, call, deviceId);
      await ctx.pairing.markMaterialDelivered(deviceId);
      // Registered through another process (a sibling worker) since this one last read the state?
      if (!ctx.admin.runtime.nodes.has(deviceId)) await ctx.admin.refreshIfChanged();
      if (!ctx.admin.runtime.nodes.has(deviceId)) throw new PalyraError('node_not_registered', 'node must register before executing capabilities');
      const work = { deviceId, capability: req.capability, inputJson: req.input_json, maxPayloadBytes: req.max_payload_bytes };
      const result = await (ctx.execute === undefined ? ctx.dispatcher.execute(work) : ctx.execute(work));
      return { v: version(req.v), success: result.success, output_json: Buffer.from(result.outputJson), error: result.error };
    }),
  };
}

function dispatchMessage(dispatch: CapabilityDispatch): NonNullable<NodeEventResponse['dispatch']> {
  return { request_id: { ulid: dispatch.requestId }, capability: dispatch.capability, input_json: Buffer.from(dispatch.inputJson), max_payload_bytes: dispatch.maxPayloadBytes };
}

function parsePayload(req: NodeEventRequest__Output): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(req.payload_json).toString('utf8'));
  } catch (e) {
    throw new PalyraError('invalid_argument', `invalid capability lifecycle payload: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PalyraError('invalid_argument', 'invalid capability lifecycle payload: not an object');
  const o = value as Record<string, unknown>;
  if (typeof o.request_id !== 'string' || o.request_id.trim() === '') throw new PalyraError('invalid_argument', 'capability payload missing request_id');
  return o;
}

function handleCapabilityEvent(ctx: NodeRpcContext, deviceId: string, req: NodeEventRequest__Output): void {
  if (req.event_name === 'capability.awaiting_local_mediation') {
    const payload = parsePayload(req);
    ctx.dispatcher.markAwaitingMediation(deviceId, payload.request_id as string);
  } else if (req.event_name === 'capability.result') {
    const payload = parsePayload(req);
    const output = payload.output_json === undefined || payload.output_json === null ? new Uint8Array() : Buffer.from(JSON.stringify(payload.output_json), 'utf8');
    ctx.dispatcher.complete(deviceId, payload.request_id as string, {
      success: payload.success === true,
      outputJson: output,
      error: typeof payload.error === 'string' ? payload.error : '',
    });
  }
}

/** "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555" → the host, for the per-source guessing budget. */
export function peerHost(peer: string): string {
  const m = /^(?:ipv4:|ipv6:)?\[?([^\]]+?)\]?:\d+$/.exec(peer);
  return (m?.[1] ?? peer).slice(0, 256) || 'unknown';
}
