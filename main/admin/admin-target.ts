/**
 * One interface for administering a gateway, whichever way it is reached: the gateway state directory on this
 * machine (LocalAdminTarget, over GatewayAdmin) or a remote gateway over `palyra.admin.v1.GatewayAdmin` with an admin
 * device's mTLS identity (RemoteAdminTarget). The CLI's operator commands and the desktop app's gateway channels
 * call it without knowing which it is; both implementations return the same view objects and fail with the same
 * error codes.
 */

import type { ClientKind } from '../core/client-kind.js';
import type { PalyraError } from '../core/errors.js';
import type { PairingMethodKind } from '../core/pairing-codes.js';
import type { PairingRequestState } from '../core/pairing-requests.js';
import type { CodeView, DeviceView, MintedCode, RequestView } from '../gateway/gateway-admin.js';
import type { GatewayEvent } from '../gateway/gateway.js';
import type { AuditEntry } from '../store/audit-log.js';

export type { CodeView, DeviceView, GatewayEvent, MintedCode, RequestView };

/** Where a target points, for messages and status views. */
export type AdminLocation = { readonly kind: 'local'; readonly stateDir: string } | { readonly kind: 'remote'; readonly address: string };

export interface MintCodeRequest {
  readonly method: PairingMethodKind;
  readonly kind: ClientKind | null;
  readonly ttlMs?: number;
  /**
   * Addresses written into a QR URI. Empty: the target's default — locally the address of the gateway running on
   * the state dir (none running → `gateway_unreachable` for a QR code), remotely what the target was configured with.
   */
  readonly gatewayAddresses: readonly string[];
}

export interface MintCodeResult {
  readonly minted: MintedCode;
  /** The addresses the QR URI carries (empty for a PIN without a known gateway). */
  readonly addresses: readonly string[];
  /** Locally: whether a gateway is running on the state dir; null where the target cannot tell (remote). */
  readonly gatewayRunning: boolean | null;
  /** The advertised address reaches this machine only (a loopback listen address). */
  readonly loopbackOnly: boolean;
}

export interface DeviceListing {
  /** `online`: the device has a live stream to the gateway, as far as the target knows. */
  readonly devices: (DeviceView & { online: boolean })[];
  readonly revoked_certificate_fingerprints: string[];
}

export interface AuditChainStatus {
  ok: boolean;
  entries: number;
  brokenAtSeq?: number;
  reason?: string;
}

export interface AuditTail {
  entries: AuditEntry[];
  chain: AuditChainStatus;
}

export interface AdminWatchHandlers {
  /** The subscription is established (remote: response headers arrived). */
  onOpen?: () => void;
  onEvent: (event: GatewayEvent) => void;
  /** The stream ended by the gateway or the network (never after cancel()); the error carries the gateway's code. */
  onEnd: (error: PalyraError) => void;
}

/** An open event subscription. */
export interface AdminWatch {
  /** Ends the subscription; `onEnd` is not called afterwards. */
  cancel(): void;
}

export interface AdminTarget {
  readonly location: AdminLocation;
  /** Active pairing codes (never their values); null where the target does not list them (a remote gateway). */
  listCodes(): Promise<CodeView[] | null>;
  listRequests(filter?: { state?: PairingRequestState }): Promise<RequestView[]>;
  mintCode(request: MintCodeRequest): Promise<MintCodeResult>;
  approve(requestId: string, reason?: string): Promise<RequestView>;
  reject(requestId: string, reason?: string): Promise<RequestView>;
  listDevices(): Promise<DeviceListing>;
  /** Bans the device; resolves with it after the change (status "revoked"). */
  revokeDevice(deviceId: string, reason: string): Promise<DeviceView>;
  /** Unpairs (no ban); not paired → `not_found`. */
  removeDevice(deviceId: string): Promise<void>;
  /** Sets a paired device's display name (audited); not paired → `not_found`, a bad name → `invalid_argument`. */
  renameDevice(deviceId: string, name: string): Promise<DeviceView>;
  /** Lifts a ban; not banned → `not_found`. */
  unbanDevice(deviceId: string): Promise<void>;
  /** Only the gateway host may change roles: a remote target refuses with `permission_denied`. */
  grantAdmin(deviceId: string): Promise<DeviceView>;
  revokeAdmin(deviceId: string): Promise<DeviceView>;
  auditTail(count: number): Promise<AuditTail>;
  /** The gateway's events (request, device and node changes); a target without an event source never calls back. */
  watchEvents(handlers: AdminWatchHandlers): AdminWatch;
  /** Releases connections; the target is not used afterwards. */
  close(): void;
}

/** Runs `action` against `target` and closes it afterwards. */
export async function withAdminTarget<T>(target: AdminTarget, action: (target: AdminTarget) => Promise<T>): Promise<T> {
  try {
    return await action(target);
  } finally {
    target.close();
  }
}

/** The state dir or the remote HOST:PORT. */
export function locationName(location: AdminLocation): string {
  return location.kind === 'local' ? location.stateDir : location.address;
}

/** A short description for messages: `the state directory DIR` or `the remote gateway HOST:PORT`. */
export function describeLocation(location: AdminLocation): string {
  return location.kind === 'local' ? `the state directory ${location.stateDir}` : `the remote gateway ${location.address}`;
}
