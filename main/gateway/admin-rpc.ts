/**
 * The `palyra.admin.v1.GatewayAdmin` handlers: remote administration by a paired device holding the 'admin' role,
 * on the gateway's one TLS port. Every call is authorised on its own: an mTLS client certificate (none →
 * UNAUTHENTICATED) that is the current certificate of a paired, unbanned device with the 'admin' role (else
 * PERMISSION_DENIED "admin role required"). With the insecure opt-out there is no client certificate to trust, so
 * every call is refused (FAILED_PRECONDITION `remote_admin_requires_mtls`).
 *
 * The operations are GatewayAdmin's — the same validation, state machine, audit entries and error codes as the CLI
 * and the desktop app. WatchEvents streams are kept per admin device; the gateway calls `enforce()` on every identity
 * change, which ends (PERMISSION_DENIED, coded) the streams of devices that are no longer admins.
 */

import type { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { isClientKind } from '../core/client-kind.js';
import type { ClientKind } from '../core/client-kind.js';
import { PalyraError } from '../core/errors.js';
import { parsePairingRequestState } from '../core/pairing-requests.js';
import type {
  AdminDevice,
  AdminGatewayEvent,
  AdminPairingRequest,
  GatewayAdminServiceHandlers,
  WatchEventsRequest__Output,
} from '../rpc/admin-service.js';
import { callPeerFingerprint } from '../rpc/tls-listener.js';
import type { DeviceView, GatewayAdmin, RequestView } from './gateway-admin.js';
import type { GatewayEvent } from './gateway.js';
import { endStreamWithError, toServiceError } from './node-rpc.js';

/** Audit tail bounds for GetAuditLog. */
const DEFAULT_AUDIT_TAIL = 20;
const MAX_AUDIT_TAIL = 1000;

export interface AdminRpcContext {
  admin: GatewayAdmin;
  mtlsRequired: boolean;
  /** The gateway's events ('event' → GatewayEvent), forwarded to WatchEvents streams. */
  events: EventEmitter;
  /** The address the gateway listens on (default for QR codes). */
  gatewayAddress(): string;
  gatewayName: string | null;
  /** Devices with live node streams and when they were last heard from. */
  liveNodes(): ReadonlyMap<string, number>;
  clock: () => number;
  log(event: Record<string, string | number | boolean | null>): void;
}

type AuthCall = { getAuthContext(): unknown };
type WatchStream = grpc.ServerWritableStream<WatchEventsRequest__Output, AdminGatewayEvent>;

interface Watch {
  stream: WatchStream;
  fingerprint: string;
  deviceId: string;
}

const ADMIN_ROLE_REQUIRED = 'admin role required';

export class AdminRpc {
  readonly handlers: GatewayAdminServiceHandlers;
  readonly #ctx: AdminRpcContext;
  /** Open WatchEvents streams by admin device id. */
  readonly #watches = new Map<string, Set<Watch>>();
  readonly #forward: (event: GatewayEvent) => void;

  constructor(ctx: AdminRpcContext) {
    this.#ctx = ctx;
    this.handlers = this.#createHandlers();
    this.#forward = (event) => {
      this.#broadcast(event);
    };
    ctx.events.on('event', this.#forward);
  }

  /** Number of open WatchEvents streams (for tests and the log). */
  get watchCount(): number {
    let n = 0;
    for (const set of this.#watches.values()) n += set.size;
    return n;
  }

  /**
   * The device behind the call's client certificate, if it may administer the gateway now; throws the coded error
   * the caller receives otherwise.
   */
  authorize(call: AuthCall): { deviceId: string; fingerprint: string } {
    const ctx = this.#ctx;
    if (!ctx.mtlsRequired) throw new PalyraError('remote_admin_requires_mtls', 'remote administration requires mTLS');
    const fingerprint = callPeerFingerprint(call);
    if (fingerprint === null) throw new PalyraError('unauthenticated', 'remote administration requires a paired client certificate');
    const deviceId = this.#adminFor(fingerprint);
    if (deviceId === null) throw new PalyraError('permission_denied', ADMIN_ROLE_REQUIRED);
    return { deviceId, fingerprint };
  }

  /**
   * `authorize` on the state as it is now: a role withdrawn or a device revoked by another process (the CLI, a sibling
   * worker, another replica) is refused at once, not only once the change watcher fires. A state that cannot be read
   * now leaves the last one read in force. The refusal comes back as the error, not thrown.
   */
  async #authorizeFresh(call: AuthCall): Promise<string | Error> {
    await this.#ctx.admin.refreshIfChanged().catch(() => undefined);
    try {
      return this.authorize(call).deviceId;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** The admin device whose CURRENT, unrevoked certificate has this fingerprint, else null. */
  #adminFor(fingerprint: string): string | null {
    const identity = this.#ctx.admin.identity;
    if (identity.isCertificateRevoked(fingerprint)) return null;
    const deviceId = identity.deviceIdForCertificateFingerprint(fingerprint);
    if (deviceId === undefined) return null;
    if (identity.pairedDevice(deviceId)?.current_certificate.fingerprint !== fingerprint) return null;
    return this.#ctx.admin.isAdmin(deviceId) ? deviceId : null;
  }

  /** Ends the WatchEvents streams of devices that lost the role, were revoked or removed, or rotated away. */
  enforce(): void {
    for (const [deviceId, set] of this.#watches) {
      for (const watch of set) {
        if (this.#adminFor(watch.fingerprint) !== null) continue;
        set.delete(watch);
        const revoked = this.#ctx.admin.identity.isDeviceRevoked(deviceId);
        endStreamWithError(watch.stream, revoked ? new PalyraError('device_revoked', 'device is revoked') : new PalyraError('permission_denied', ADMIN_ROLE_REQUIRED));
        this.#ctx.log({ event: 'admin.watch_ended', device_id: deviceId, reason: revoked ? 'device_revoked' : 'not_admin' });
      }
      if (set.size === 0) this.#watches.delete(deviceId);
    }
  }

  /** Ends every WatchEvents stream (gateway stop) and stops listening to events. */
  close(error: unknown): void {
    this.#ctx.events.off('event', this.#forward);
    for (const set of this.#watches.values()) for (const watch of set) endStreamWithError(watch.stream, error);
    this.#watches.clear();
  }

  #broadcast(event: GatewayEvent): void {
    if (this.#watches.size === 0) return;
    const message = eventMessage(event, this.#ctx.clock());
    for (const set of this.#watches.values()) for (const watch of set) watch.stream.write(message);
  }

  #createHandlers(): GatewayAdminServiceHandlers {
    const ctx = this.#ctx;
    const admin = ctx.admin;
    const unary = <Req, Res>(name: string, handler: (request: Req, deviceId: string) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> => {
      return (call, callback) => {
        void this.#authorizeFresh(call).then((authorized) => {
          if (authorized instanceof Error) {
            callback(toServiceError(authorized));
            return;
          }
          const deviceId = authorized;
          Promise.resolve()
            .then(() => handler(call.request, deviceId))
            .then(
              (response) => {
                callback(null, response);
              },
              (e: unknown) => {
                ctx.log({ event: 'admin.call_failed', method: name, device_id: deviceId });
                callback(toServiceError(e));
              },
            );
        });
      };
    };

    return {
      MintPairingCode: unary('MintPairingCode', async (req, deviceId) => {
        const methodText = req.method.trim().toLowerCase();
        const method = methodText === '' ? 'qr' : methodText;
        if (method !== 'qr' && method !== 'pin') throw new PalyraError('invalid_argument', 'method must be qr or pin');
        const kindText = req.client_kind.trim().toLowerCase();
        let kind: ClientKind | null = null;
        if (kindText !== '') {
          if (!isClientKind(kindText)) throw new PalyraError('invalid_argument', 'client_kind must be one of cli|desktop|node');
          kind = kindText;
        }
        const addresses = req.gateway_addresses.map((a) => a.trim()).filter((a) => a.length > 0);
        const minted = await admin.mintCode({
          method,
          kind,
          ...(req.ttl_ms === 0 ? {} : { ttlMs: req.ttl_ms }),
          issuedBy: `admin:${deviceId}`,
          gatewayAddresses: addresses.length > 0 ? addresses : [ctx.gatewayAddress()],
          gatewayName: ctx.gatewayName,
        });
        return { method: minted.method, code: minted.code, uri: minted.uri ?? '', expires_at_unix_ms: minted.expires_at_unix_ms };
      }),

      ListPairingRequests: unary('ListPairingRequests', (req) => {
        const stateText = req.state.trim();
        const requests = admin.listRequests(stateText === '' ? {} : { state: parsePairingRequestState(stateText) });
        return { requests: requests.map(requestMessage) };
      }),

      ApproveNodePairingRequest: unary('ApproveNodePairingRequest', async (req) => {
        const reason = req.reason.trim();
        return { request: requestMessage(await admin.approve(req.request_id.trim(), reason === '' ? undefined : reason)) };
      }),

      RejectNodePairingRequest: unary('RejectNodePairingRequest', async (req) => {
        const reason = req.reason.trim();
        return { request: requestMessage(await admin.reject(req.request_id.trim(), reason === '' ? undefined : reason)) };
      }),

      ListDevices: unary('ListDevices', () => {
        const live = ctx.liveNodes();
        const { devices, revoked_certificate_fingerprints } = admin.listDevices(live);
        return { devices: devices.map((d) => deviceMessage(d, live)), revoked_certificate_fingerprints };
      }),

      RevokeDevice: unary('RevokeDevice', async (req) => {
        const deviceId = req.device_id.trim();
        await admin.revokeDevice(deviceId, req.reason);
        const live = ctx.liveNodes();
        const device = admin.listDevices(live).devices.find((d) => d.device_id === deviceId && d.status === 'revoked');
        if (device === undefined) throw new PalyraError('internal', `device ${deviceId} was revoked but is not listed as revoked`);
        return { device: deviceMessage(device, live) };
      }),

      RemoveDevice: unary('RemoveDevice', async (req) => {
        const deviceId = req.device_id.trim();
        await admin.removeDevice(deviceId);
        return { device_id: deviceId, status: 'removed' };
      }),

      RenameDevice: unary('RenameDevice', async (req) => {
        const live = ctx.liveNodes();
        const device = await admin.renameDevice(req.device_id.trim(), req.name, live);
        return { device: deviceMessage(device, live) };
      }),

      UnbanDevice: unary('UnbanDevice', async (req) => {
        const deviceId = req.device_id.trim();
        await admin.unbanDevice(deviceId);
        return { device_id: deviceId, status: 'unbanned' };
      }),

      GetAuditLog: unary('GetAuditLog', async (req) => {
        const tail = req.tail === 0 ? DEFAULT_AUDIT_TAIL : Math.min(req.tail, MAX_AUDIT_TAIL);
        const { entries, chain } = await admin.auditTail(tail);
        return {
          entries: entries.map((e) => ({ seq: e.seq, ts_ms: e.ts_ms, event: e.event, fields_json: JSON.stringify(e.fields), prev: e.prev, hash: e.hash })),
          chain: { ok: chain.ok, entries: chain.entries, broken_at_seq: chain.brokenAtSeq ?? 0, reason: chain.reason ?? '' },
        };
      }),

      WatchEvents: (call) => {
        let auth: { deviceId: string; fingerprint: string };
        try {
          auth = this.authorize(call);
        } catch (e) {
          endStreamWithError(call, e);
          return;
        }
        const watch: Watch = { stream: call, ...auth };
        const set = this.#watches.get(auth.deviceId) ?? new Set<Watch>();
        set.add(watch);
        this.#watches.set(auth.deviceId, set);
        const forget = (): void => {
          const current = this.#watches.get(auth.deviceId);
          if (current === undefined) return;
          current.delete(watch);
          if (current.size === 0) this.#watches.delete(auth.deviceId);
        };
        call.on('cancelled', forget);
        call.on('close', forget);
        call.on('finish', forget);
        call.on('error', () => undefined);
        // Headers now, so the client knows the watch is established before the first event.
        call.sendMetadata(new grpc.Metadata());
        ctx.log({ event: 'admin.watch_started', device_id: auth.deviceId });
      },
    };
  }
}

function requestMessage(r: RequestView): AdminPairingRequest {
  return {
    request_id: r.request_id,
    device_id: r.device_id,
    client_kind: r.client_kind,
    state: r.state,
    method: r.method,
    sas: r.sas,
    sas_verifiable: r.sas_verifiable,
    sas_status: r.sas_status,
    identity_fingerprint: r.identity_fingerprint,
    requested_at_unix_ms: r.requested_at_unix_ms,
    expires_at_unix_ms: r.expires_at_unix_ms,
    decided_at_unix_ms: r.decided_at_unix_ms ?? 0,
    reason: r.reason ?? '',
    device_name: r.device_name ?? '',
  };
}

function deviceMessage(d: DeviceView, live: ReadonlyMap<string, number>): AdminDevice {
  return {
    device_id: d.device_id,
    client_kind: d.client_kind ?? '',
    status: d.status,
    identity_fingerprint: d.identity_fingerprint ?? '',
    certificate_fingerprint: d.certificate_fingerprint ?? '',
    cert_expires_at_unix_ms: d.cert_expires_at_unix_ms ?? 0,
    last_seen_at_unix_ms: d.last_seen_at_unix_ms ?? 0,
    capabilities: [...d.capabilities],
    roles: [...d.roles],
    online: d.status === 'paired' && live.has(d.device_id),
    paired_at_unix_ms: d.paired_at_unix_ms ?? 0,
    revoked_at_unix_ms: d.revoked_at_unix_ms ?? 0,
    revoked_reason: d.revoked_reason ?? '',
    platform: d.platform ?? '',
    name: d.name ?? '',
    method: d.method ?? '',
    last_address: d.last_address ?? '',
  };
}

function eventMessage(event: GatewayEvent, now: number): AdminGatewayEvent {
  switch (event.type) {
    case 'request.created':
    case 'request.updated':
      return { type: event.type, request: requestMessage(event.request), device_id: event.request.device_id, reason: '', at_unix_ms: now };
    case 'device.revoked':
      return { type: event.type, device_id: event.device_id, reason: event.reason, at_unix_ms: now };
    case 'devices.changed':
      return { type: event.type, device_id: '', reason: '', at_unix_ms: now };
    case 'device.paired':
    case 'node.online':
    case 'node.offline':
      return { type: event.type, device_id: event.device_id, reason: '', at_unix_ms: now };
  }
}
