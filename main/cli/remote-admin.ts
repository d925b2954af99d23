/**
 * Remote administration for `palyra pairing …` and `palyra devices list|revoke|remove|unban`: the operations those
 * commands use, over `palyra.admin.v1.GatewayAdmin` with an admin device's mTLS identity (its device dir), returning
 * the same view objects the local GatewayAdmin returns so the commands print exactly what they print locally.
 *
 * The choice (`chooseAdminTarget`): remote when `--device-dir DIR` is given explicitly (never from
 * PALYRA_DEVICE_DIR, so an operator's environment does not silently redirect a command to another gateway); the
 * gateway is `--gateway HOST:PORT` or else the first address stored in the device dir. Otherwise the local state dir.
 * Failures become PalyraErrors with the gateway's own code (metadata `palyra-error-code`), so e.g.
 * `error[pairing_request_not_pending]` prints as it does locally and a non-admin device gets `error[permission_denied]`.
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { isClientKind } from '../core/client-kind.js';
import type { ClientKind } from '../core/client-kind.js';
import { PalyraError } from '../core/errors.js';
import type { PairingMethodKind } from '../core/pairing-codes.js';
import { parsePairingRequestState } from '../core/pairing-requests.js';
import type { PairingRequestState } from '../core/pairing-requests.js';
import { formatHostPort, parseHostPort } from '../core/pairing-uri.js';
import { DeviceStore } from '../device/device-store.js';
import type { DeviceView, MintedCode, RequestView } from '../gateway/gateway-admin.js';
import type { GatewayEvent } from '../gateway/gateway.js';
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
import { callUnary, fromServiceError } from '../rpc/rpc-errors.js';
import { createGatewayChannelCredentials } from '../rpc/tls-client.js';
import type { OptionSpec, ParsedCommand } from './args.js';
import { oneOf, parseOptionValue, usageError } from './args.js';
import type { CliContext } from './context.js';

/** Deadline of one remote admin call. */
export const REMOTE_ADMIN_CALL_TIMEOUT_MS = 15_000;

/** The options that select a remote gateway, for the specs of the commands that support it. */
export const REMOTE_ADMIN_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  gateway: { type: 'string' },
  'device-dir': { type: 'string' },
  keychain: { type: 'string' },
};

/** Help lines for REMOTE_ADMIN_OPTIONS (pairing code documents its own --gateway). */
export const REMOTE_ADMIN_HELP = `Remote gateway (instead of the state directory):
  --device-dir DIR        administer the gateway this admin device is paired with, over mTLS with its identity
                          (the device needs the admin role: 'palyra devices grant-admin ID' on the gateway host)
  --gateway HOST:PORT     the gateway to dial (default: the first gateway address stored in the device dir)
  --keychain os|file      where the device's secrets live (default os; env PALYRA_KEYCHAIN=file forces file)`;

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
    identity_fingerprint: r.identity_fingerprint,
    requested_at_unix_ms: r.requested_at_unix_ms,
    expires_at_unix_ms: r.expires_at_unix_ms,
    decided_at_unix_ms: numberOrNull(r.decided_at_unix_ms),
    reason: orNull(r.reason),
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

/** An open WatchEvents subscription. */
export interface RemoteWatch {
  /** Ends the subscription; `onEnd` is not called afterwards. */
  cancel(): void;
}

export interface RemoteWatchHandlers {
  /** The gateway accepted the subscription (response headers arrived). */
  onOpen?: () => void;
  onEvent: (event: GatewayEvent) => void;
  /** The stream ended by the gateway or the network (never after cancel()); the error carries the gateway's code. */
  onEnd: (error: PalyraError) => void;
}

/** The remote counterpart of the GatewayAdmin operations the pairing/devices commands use. */
export class RemoteAdmin {
  /** The HOST:PORT dialled. */
  readonly address: string;
  readonly #client: GatewayAdminClient;
  readonly #timeoutMs: number;

  constructor(address: string, client: GatewayAdminClient, options: { callTimeoutMs?: number } = {}) {
    this.address = address;
    this.#client = client;
    this.#timeoutMs = options.callTimeoutMs ?? REMOTE_ADMIN_CALL_TIMEOUT_MS;
  }

  #call<Res>(invoke: Parameters<typeof callUnary<Res>>[0]): Promise<Res> {
    return callUnary(invoke, this.#timeoutMs);
  }

  /** Newest `count` audit entries and the chain check, as the local GatewayAdmin.auditTail returns them. */
  async auditTail(count: number): Promise<{ entries: AuditEntry[]; chain: { ok: boolean; entries: number; brokenAtSeq?: number; reason?: string } }> {
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
  watchEvents(handlers: RemoteWatchHandlers): RemoteWatch {
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

  async mintCode(options: { method: PairingMethodKind; kind: ClientKind | null; ttlMs?: number; gatewayAddresses: readonly string[] }): Promise<MintedCode> {
    const request = { method: options.method, client_kind: options.kind ?? '', ttl_ms: options.ttlMs ?? 0, gateway_addresses: [...options.gatewayAddresses] };
    const minted = await this.#call<MintPairingCodeResponse__Output>((md, opts, cb) => this.#client.MintPairingCode(request, md, opts, cb));
    return { method: validMethod(minted.method), code: minted.code, uri: orNull(minted.uri), expires_at_unix_ms: minted.expires_at_unix_ms };
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

  async listDevices(): Promise<{ devices: DeviceView[]; revoked_certificate_fingerprints: string[]; online_device_ids: string[] }> {
    const response = await this.#call<ListDevicesResponse__Output>((md, opts, cb) => this.#client.ListDevices({}, md, opts, cb));
    return {
      devices: response.devices.map(deviceViewOf),
      revoked_certificate_fingerprints: [...response.revoked_certificate_fingerprints],
      online_device_ids: response.devices.filter((d) => d.online).map((d) => d.device_id),
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

  async unbanDevice(deviceId: string): Promise<void> {
    await this.#call<DeviceStatusResponse__Output>((md, opts, cb) => this.#client.UnbanDevice({ device_id: deviceId }, md, opts, cb));
  }

  close(): void {
    this.#client.close();
  }
}

/** Connects to a gateway as the admin device of `deviceDir` (its certificate, key and the gateway CA it pinned). */
export async function connectRemoteAdmin(options: { deviceDir: string; keychain: 'os' | 'file'; gateway?: string }): Promise<RemoteAdmin> {
  const deviceDir = path.resolve(options.deviceDir);
  if (!existsSync(deviceDir)) throw new PalyraError('device_not_paired', `no device dir at ${deviceDir}; pair it first with 'palyra device pair'`);
  const store = await DeviceStore.open({ deviceDir, keychain: options.keychain });
  return connectRemoteAdminWithStore(store, options.gateway === undefined ? {} : { gateway: options.gateway });
}

/** Connects to a gateway as the device of an open store (the desktop app's agent store). */
export async function connectRemoteAdminWithStore(store: DeviceStore, options: { gateway?: string; callTimeoutMs?: number } = {}): Promise<RemoteAdmin> {
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
  return new RemoteAdmin(address, createGatewayAdminClient(address, credentials), options.callTimeoutMs === undefined ? {} : { callTimeoutMs: options.callTimeoutMs });
}

/**
 * Remote when `--device-dir` is given (the gateway: `--gateway`, else the device dir's first address); null means
 * "use the local state dir". `--gateway`/`--keychain` without `--device-dir` are usage errors, except that the caller
 * may say `--gateway` has its own meaning then (`pairing code`). `--state-dir` with `--device-dir` is a usage error.
 */
export async function chooseAdminTarget(args: ParsedCommand, context: CliContext, options: { gatewayHasLocalMeaning?: boolean } = {}): Promise<RemoteAdmin | null> {
  const command = args.spec.name;
  const deviceDir = args.string('device-dir');
  const gatewayTexts = args.strings('gateway').flatMap((list) => list.split(','));
  if (deviceDir === undefined) {
    if (gatewayTexts.length > 0 && options.gatewayHasLocalMeaning !== true) {
      throw usageError('--gateway needs --device-dir DIR (the admin device that administers the remote gateway)', command);
    }
    if (args.string('keychain') !== undefined) throw usageError('--keychain applies to --device-dir', command);
    return null;
  }
  if (deviceDir === '') throw usageError('--device-dir must not be empty', command);
  if (args.stateDir !== undefined) throw usageError('--state-dir and --device-dir exclude each other (local state dir or remote gateway)', command);
  const first = gatewayTexts[0];
  let gateway: string | undefined;
  if (first !== undefined) {
    if (gatewayTexts.length > 1) throw usageError('--gateway: give one HOST:PORT to dial with --device-dir', command);
    if (first.trim() === '') throw usageError('--gateway: empty address', command);
    gateway = parseOptionValue('--gateway', command, () => formatHostPort(parseHostPort(first.trim())));
  }
  const keychain = remoteKeychainMode(args, context.env);
  return connectRemoteAdmin({ deviceDir, keychain, ...(gateway === undefined ? {} : { gateway }) });
}

/**
 * `--keychain` (default os); env PALYRA_KEYCHAIN=file forces the encrypted store in the device dir, as for
 * `palyra device …` (kept here so the operator commands do not load the device command module).
 */
function remoteKeychainMode(args: ParsedCommand, env: NodeJS.ProcessEnv): 'os' | 'file' {
  const command = args.spec.name;
  const setting = env.PALYRA_KEYCHAIN ?? '';
  if (setting !== '' && setting !== 'os' && setting !== 'file') {
    throw usageError(`environment variable PALYRA_KEYCHAIN must be 'os' or 'file' (got '${setting.slice(0, 32)}')`, command);
  }
  const flag = args.string('keychain');
  const chosen = flag === undefined ? 'os' : oneOf('--keychain', flag, ['os', 'file'] as const, command);
  return setting === 'file' ? 'file' : chosen;
}

/** Runs `action` against the remote admin and closes its channel afterwards. */
export async function withRemote<T>(remote: RemoteAdmin, action: (remote: RemoteAdmin) => Promise<T>): Promise<T> {
  try {
    return await action(remote);
  } finally {
    remote.close();
  }
}
