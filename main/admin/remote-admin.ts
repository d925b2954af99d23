/**
 * AdminTarget for a remote gateway: `palyra.admin.v1.GatewayAdmin` on the gateway port, called with an admin
 * device's mTLS identity (its device dir: certificate, TLS key and the gateway CA it pinned). It returns the same
 * view objects the local target returns, so a front end prints exactly what it prints locally. Failures become
 * PalyraErrors with the gateway's own code (metadata `palyra-error-code`), so e.g. `pairing_request_not_pending`
 * reads as it does locally and a device without the admin role gets `permission_denied`.
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { isClientKind } from '../core/client-kind.js';
import type { ClientKind } from '../core/client-kind.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import type { PairingMethodKind } from '../core/pairing-codes.js';
import { defaultSasStatus, parsePairingRequestState, SAS_STATUSES } from '../core/pairing-requests.js';
import type { PairingRequestState, SasStatus } from '../core/pairing-requests.js';
import { DeviceStore } from '../device/device-store.js';
import type { AuditEntry } from '../store/audit-log.js';
import { createGatewayAdminClient } from '../rpc/admin-service.js';
import type {
  AdminDevice__Output,
  AdminGatewayEvent__Output,
  GetAuditLogResponse__Output,
  AdminPairingRequest__Output,
  DecidePairingRequestResponse__Output,
  DeviceStatusResponse__Output,
  GatewayAdminClient,
  ListDevicesResponse__Output,
  ListPairingRequestsResponse__Output,
  MintPairingCodeResponse__Output,
  RevokeDeviceResponse__Output,
} from '../rpc/admin-service.js';
import type { RenameDeviceResponse__Output } from '../rpc/generated/palyra/admin/v1/RenameDeviceResponse.js';
import { callUnary, fromServiceError } from '../rpc/rpc-errors.js';
import { createGatewayChannelCredentials } from '../rpc/tls-client.js';
import type {
  AdminLocation,
  AdminTarget,
  AdminWatch,
  AdminWatchHandlers,
  AuditTail,
  DeviceListing,
  DeviceView,
  GatewayEvent,
  MintCodeRequest,
  MintCodeResult,
  RequestView,
} from './admin-target.js';

/** Deadline of one remote admin call. */
export const REMOTE_ADMIN_CALL_TIMEOUT_MS = 15_000;

function validClientKind(value: string, field: string): ClientKind {
  if (!isClientKind(value)) throw new PalyraError('internal', `the gateway sent an unknown ${field} '${value.slice(0, 32)}'`);
  return value;
}

function validMethod(value: string): PairingMethodKind {
  if (value !== 'qr' && value !== 'pin') throw new PalyraError('internal', `the gateway sent an unknown pairing method '${value.slice(0, 32)}'`);
  return value;
}

const orNull = (value: string): string | null => (value === '' ? null : value);
const numberOrNull = (value: number): number | null => (value === 0 ? null : value);

export function requestViewOf(r: AdminPairingRequest__Output): RequestView {
  return {
    request_id: r.request_id,
    device_id: r.device_id,
    client_kind: validClientKind(r.client_kind, 'client_kind'),
    state: parsePairingRequestState(r.state),
    method: validMethod(r.method),
    sas: r.sas,
    sas_verifiable: r.sas_verifiable,
    sas_status: (SAS_STATUSES as readonly string[]).includes(r.sas_status) ? (r.sas_status as SasStatus) : defaultSasStatus(r.sas_verifiable),
    identity_fingerprint: r.identity_fingerprint,
    requested_at_unix_ms: r.requested_at_unix_ms,
    expires_at_unix_ms: r.expires_at_unix_ms,
    decided_at_unix_ms: numberOrNull(r.decided_at_unix_ms),
    reason: orNull(r.reason),
    device_name: orNull(r.device_name),
  };
}

export function deviceViewOf(d: AdminDevice__Output): DeviceView {
  if (d.status !== 'paired' && d.status !== 'revoked') throw new PalyraError('internal', `the gateway sent an unknown device status '${d.status.slice(0, 32)}'`);
  return {
    device_id: d.device_id,
    client_kind: d.client_kind === '' ? null : validClientKind(d.client_kind, 'client_kind'),
    status: d.status,
    identity_fingerprint: orNull(d.identity_fingerprint),
    certificate_fingerprint: orNull(d.certificate_fingerprint),
    cert_expires_at_unix_ms: numberOrNull(d.cert_expires_at_unix_ms),
    last_seen_at_unix_ms: numberOrNull(d.last_seen_at_unix_ms),
    capabilities: [...d.capabilities],
    roles: [...d.roles],
    paired_at_unix_ms: numberOrNull(d.paired_at_unix_ms),
    revoked_at_unix_ms: numberOrNull(d.revoked_at_unix_ms),
    revoked_reason: orNull(d.revoked_reason),
    platform: orNull(d.platform),
    name: orNull(d.name),
    method: d.method === '' ? null : validMethod(d.method),
    last_address: orNull(d.last_address),
  };
}

/** A WatchEvents message as the local gateway's event; null for a type this client does not know. */
export function gatewayEventOf(e: AdminGatewayEvent__Output): GatewayEvent | null {
  switch (e.type) {
    case 'request.created':
    case 'request.updated':
      return e.request === null ? null : { type: e.type, request: requestViewOf(e.request) };
    case 'device.revoked':
      return { type: e.type, device_id: e.device_id, reason: e.reason };
    case 'devices.changed':
      return { type: e.type };
    case 'device.paired':
    case 'node.online':
    case 'node.offline':
      return { type: e.type, device_id: e.device_id };
    default:
      return null;
  }
}

export interface RemoteAdminOptions {
  /** Deadline of one call (default REMOTE_ADMIN_CALL_TIMEOUT_MS). */
  readonly callTimeoutMs?: number;
  /**
   * A QR code minted without explicit addresses carries the address dialled (the CLI); otherwise (the default) the
   * gateway fills in its own listen address.
   */
  readonly advertiseDialledAddress?: boolean;
  /** Told of every failed call (the desktop app ends remote management when the admin role is gone). */
  readonly onCallError?: (error: PalyraError) => void;
}

/** The remote gateway, administered over palyra.admin.v1.GatewayAdmin. */
export class RemoteAdminTarget implements AdminTarget {
  /** The HOST:PORT dialled. */
  readonly address: string;
  readonly location: AdminLocation;
  readonly #client: GatewayAdminClient;
  readonly #options: RemoteAdminOptions;

  constructor(address: string, client: GatewayAdminClient, options: RemoteAdminOptions = {}) {
    this.address = address;
    this.location = { kind: 'remote', address };
    this.#client = client;
    this.#options = options;
  }

  async #call<Res>(invoke: Parameters<typeof callUnary<Res>>[0]): Promise<Res> {
    try {
      return await callUnary(invoke, this.#options.callTimeoutMs ?? REMOTE_ADMIN_CALL_TIMEOUT_MS);
    } catch (error) {
      const e = toPalyraError(error);
      this.#options.onCallError?.(e);
      throw e;
    }
  }

  /** The remote service does not list pairing codes (each is a single-use secret shown once, where it was minted). */
  listCodes(): Promise<null> {
    return Promise.resolve(null);
  }

  /** Newest `count` audit entries and the chain check, as the local GatewayAdmin.auditTail returns them. */
  async auditTail(count: number): Promise<AuditTail> {
    const response = await this.#call<GetAuditLogResponse__Output>((md, opts, cb) => this.#client.GetAuditLog({ tail: count }, md, opts, cb));
    const entries = response.entries.map((e): AuditEntry => {
      let fields: AuditEntry['fields'] = {};
      try {
        const parsed = JSON.parse(e.fields_json) as unknown;
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) fields = parsed as AuditEntry['fields'];
      } catch {
        // A malformed field set shows as empty rather than failing the whole tail.
      }
      return { seq: e.seq, ts_ms: e.ts_ms, event: e.event, fields, prev: e.prev, hash: e.hash };
    });
    const c = response.chain;
    const chain = c === null ? { ok: true, entries: entries.length } : c.ok ? { ok: true, entries: c.entries } : { ok: false, entries: c.entries, brokenAtSeq: c.broken_at_seq, reason: c.reason };
    return { entries, chain };
  }

  /** Subscribes to the gateway's events (WatchEvents); ends with `onEnd` unless cancelled. */
  watchEvents(handlers: AdminWatchHandlers): AdminWatch {
    const call = this.#client.WatchEvents({});
    let done = false;
    const end = (error: PalyraError): void => {
      if (done) return;
      done = true;
      handlers.onEnd(error);
    };
    call.on('metadata', () => {
      if (!done) handlers.onOpen?.();
    });
    call.on('data', (message: AdminGatewayEvent__Output) => {
      if (done) return;
      const event = gatewayEventOf(message);
      if (event !== null) handlers.onEvent(event);
    });
    call.on('error', (error: unknown) => {
      end(fromServiceError(error));
    });
    call.on('end', () => {
      end(new PalyraError('gateway_unreachable', 'the gateway ended the event stream'));
    });
    return {
      cancel: () => {
        if (done) return;
        done = true;
        call.cancel();
      },
    };
  }

  async mintCode(options: MintCodeRequest): Promise<MintCodeResult> {
    const addresses = options.gatewayAddresses.length > 0 ? [...options.gatewayAddresses] : this.#options.advertiseDialledAddress === true ? [this.address] : [];
    const request = { method: options.method, client_kind: options.kind ?? '', ttl_ms: options.ttlMs ?? 0, gateway_addresses: addresses };
    const minted = await this.#call<MintPairingCodeResponse__Output>((md, opts, cb) => this.#client.MintPairingCode(request, md, opts, cb));
    return {
      minted: { method: validMethod(minted.method), code: minted.code, uri: orNull(minted.uri), expires_at_unix_ms: minted.expires_at_unix_ms },
      addresses,
      gatewayRunning: null,
      loopbackOnly: false,
    };
  }

  async listRequests(filter: { state?: PairingRequestState } = {}): Promise<RequestView[]> {
    const response = await this.#call<ListPairingRequestsResponse__Output>((md, opts, cb) =>
      this.#client.ListPairingRequests({ state: filter.state ?? '' }, md, opts, cb),
    );
    return response.requests.map(requestViewOf);
  }

  async approve(requestId: string, reason?: string): Promise<RequestView> {
    return this.#decide('approve', requestId, reason);
  }

  async reject(requestId: string, reason?: string): Promise<RequestView> {
    return this.#decide('reject', requestId, reason);
  }

  async #decide(verb: 'approve' | 'reject', requestId: string, reason: string | undefined): Promise<RequestView> {
    const request = { request_id: requestId, reason: reason ?? '' };
    const response = await this.#call<DecidePairingRequestResponse__Output>((md, opts, cb) =>
      verb === 'approve' ? this.#client.ApproveNodePairingRequest(request, md, opts, cb) : this.#client.RejectNodePairingRequest(request, md, opts, cb),
    );
    if (response.request === null) throw new PalyraError('internal', 'the gateway answered without the request');
    return requestViewOf(response.request);
  }

  async listDevices(): Promise<DeviceListing> {
    const response = await this.#call<ListDevicesResponse__Output>((md, opts, cb) => this.#client.ListDevices({}, md, opts, cb));
    return {
      devices: response.devices.map((d) => ({ ...deviceViewOf(d), online: d.status === 'paired' && d.online })),
      revoked_certificate_fingerprints: [...response.revoked_certificate_fingerprints],
    };
  }

  /** Bans the device; resolves with the device after the change (status "revoked"). */
  async revokeDevice(deviceId: string, reason: string): Promise<DeviceView> {
    const response = await this.#call<RevokeDeviceResponse__Output>((md, opts, cb) =>
      this.#client.RevokeDevice({ device_id: deviceId, reason }, md, opts, cb),
    );
    if (response.device === null) throw new PalyraError('internal', `device ${deviceId} was revoked but the gateway did not return it`);
    return deviceViewOf(response.device);
  }

  async removeDevice(deviceId: string): Promise<void> {
    await this.#call<DeviceStatusResponse__Output>((md, opts, cb) => this.#client.RemoveDevice({ device_id: deviceId }, md, opts, cb));
  }

  /** Sets the device's display name; resolves with the device after the change. */
  async renameDevice(deviceId: string, name: string): Promise<DeviceView> {
    const response = await this.#call<RenameDeviceResponse__Output>((md, opts, cb) => this.#client.RenameDevice({ device_id: deviceId, name }, md, opts, cb));
    if (response.device === null) throw new PalyraError('internal', `device ${deviceId} was renamed but the gateway did not return it`);
    return deviceViewOf(response.device);
  }

  async unbanDevice(deviceId: string): Promise<void> {
    await this.#call<DeviceStatusResponse__Output>((md, opts, cb) => this.#client.UnbanDevice({ device_id: deviceId }, md, opts, cb));
  }

  grantAdmin(): Promise<DeviceView> {
    return Promise.reject(new PalyraError('permission_denied', 'granting the admin role needs the gateway host (its state directory)'));
  }

  revokeAdmin(): Promise<DeviceView> {
    return Promise.reject(new PalyraError('permission_denied', 'withdrawing the admin role needs the gateway host (its state directory)'));
  }

  close(): void {
    this.#client.close();
  }
}

function remoteOptions(o: RemoteAdminOptions): RemoteAdminOptions {
  return {
    ...(o.callTimeoutMs === undefined ? {} : { callTimeoutMs: o.callTimeoutMs }),
    ...(o.advertiseDialledAddress === undefined ? {} : { advertiseDialledAddress: o.advertiseDialledAddress }),
    ...(o.onCallError === undefined ? {} : { onCallError: o.onCallError }),
  };
}

/** Connects to a gateway as the admin device of `deviceDir` (its certificate, key and the gateway CA it pinned). */
export async function connectRemoteAdmin(o: { deviceDir: string; keychain: 'os' | 'file'; gateway?: string } & RemoteAdminOptions): Promise<RemoteAdminTarget> {
  const deviceDir = path.resolve(o.deviceDir);
  if (!existsSync(deviceDir)) throw new PalyraError('device_not_paired', `no device dir at ${deviceDir}; pair it first with 'palyra device pair'`);
  const store = await DeviceStore.open({ deviceDir, keychain: o.keychain });
  return connectRemoteAdminWithStore(store, o);
}

/** Connects to a gateway as the device of an open store (the desktop app's agent store). */
export async function connectRemoteAdminWithStore(store: DeviceStore, options: { gateway?: string } & RemoteAdminOptions = {}): Promise<RemoteAdminTarget> {
  const deviceDir = store.deviceDir;
  const state = await store.readState();
  if (state?.gateway == null || state.certificate_pem === null) {
    throw new PalyraError('device_not_paired', `the device in ${deviceDir} is not paired with a gateway; pair it first with 'palyra device pair'`);
  }
  const key = await store.loadTlsPrivateKeyPem();
  if (key === null) throw new PalyraError('device_not_paired', `the device in ${deviceDir} has no TLS key for its certificate`);
  const address = options.gateway ?? state.gateway.addresses[0];
  if (address === undefined) throw new PalyraError('device_not_paired', `the device in ${deviceDir} stores no gateway address; pass --gateway HOST:PORT`);
  const credentials = createGatewayChannelCredentials({
    caCertificatePem: state.gateway.ca_certificate_pem,
    clientCertificatePem: state.certificate_pem,
    clientPrivateKeyPem: key,
  });
  return new RemoteAdminTarget(address, createGatewayAdminClient(address, credentials), remoteOptions(options));
}
