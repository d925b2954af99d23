/**
 * The IPC handler table of the desktop app: one entry per channel of the contract. The gateway channels go to one
 * AdminTarget — the state dir (hosted gateway or not) or the remote gateway this device administers — chosen in
 * one place by the caller (`target()`), so no handler knows which it is.
 */

import type { AdminTarget } from '../admin/admin-target.js';
import type { AgentStatus, DeviceAgent } from '../device/device-agent.js';
import type { ChannelResult } from '../ipc/contract.js';
import type { ChannelHandlers, IpcLog, ParsedChannelArgs } from './ipc-router.js';
import type { PairingRuns } from './pairing-runs.js';

export interface HandlerContext {
  readonly agent: DeviceAgent;
  readonly pairing: PairingRuns;
  readonly log: IpcLog;
  appInfo(): ChannelResult<'app.info'>;
  /** The admin target the gateway channels use now. */
  target(): AdminTarget;
  /** Whether the device has a live stream to the hosted gateway. */
  isOnline(deviceId: string): boolean;
  gatewayStatus(): Promise<ChannelResult<'gateway.status'>>;
  configure(args: ParsedChannelArgs<'gateway.configure'>): Promise<ChannelResult<'gateway.configure'>>;
  /** Device state changed under the app (status publication, remote-admin re-check). */
  afterUnpair(): Promise<void>;
  /** The first-run choice (app.firstRun) and making it (app.chooseStart). */
  firstRun(): Promise<ChannelResult<'app.firstRun'>>;
  chooseStart(choice: ParsedChannelArgs<'app.chooseStart'>['choice']): Promise<ChannelResult<'app.chooseStart'>>;
  /** "Reconnect now": a new connection attempt at once, backoff reset (device.reconnect). */
  reconnect(): Promise<ChannelResult<'device.reconnect'>>;
  /** Browses DNS-SD for gateways nearby. */
  discover(timeoutMs: number): Promise<ChannelResult<'discovery.list'>['gateways']>;
}

/** How long the Pair view's "Gateways nearby" listens when it does not say. */
const DEFAULT_DISCOVERY_TIMEOUT_MS = 2_000;

/** Runs a synchronous handler body as a promise, so a throw becomes a rejection. */
function settle<T>(body: () => T): Promise<T> {
  return new Promise((resolve) => {
    resolve(body());
  });
}

export function createChannelHandlers(c: HandlerContext): ChannelHandlers {
  return {
    'app.info': () => Promise.resolve(c.appInfo()),
    'app.firstRun': () => c.firstRun(),
    'app.chooseStart': (args) => c.chooseStart(args.choice),
    'device.status': async () => deviceStatusView(await c.agent.status(), await revokedReasonOf(c.agent)),
    'device.parseScan': (args) => settle(() => c.pairing.parseScan(args)),
    'device.pairStart': (args) => settle(() => c.pairing.start(args)),
    'device.pairCancel': (args) => Promise.resolve({ cancelled: c.pairing.cancel(args.pairing_id) }),
    'device.unpair': async () => {
      c.pairing.cancelAll();
      const result = await c.agent.unpair();
      if (result.gateway_error !== null) c.log({ event: 'device.unpair_gateway_error', code: result.gateway_error.code });
      await c.afterUnpair();
      return { unpaired: result.device_id !== null };
    },
    'device.reconnect': () => c.reconnect(),
    'discovery.list': async (args) => ({ gateways: await c.discover(args.timeout_ms ?? DEFAULT_DISCOVERY_TIMEOUT_MS) }),
    'gateway.status': () => c.gatewayStatus(),
    'gateway.configure': (args) => c.configure(args),
    'gateway.mintCode': async (args) => {
      const result = await c.target().mintCode({
        method: args.method,
        kind: args.kind ?? null,
        ...(args.ttl_ms === undefined ? {} : { ttlMs: args.ttl_ms }),
        gatewayAddresses: [],
      });
      return result.minted;
    },
    'gateway.listCodes': async () => {
      // A remote gateway does not list its codes (codes are single-use secrets shown once): none then.
      const codes = (await c.target().listCodes()) ?? [];
      return { codes: codes.map((code) => ({ method: code.method, expires_at_unix_ms: code.expires_at_unix_ms, kind: code.kind })) };
    },
    'gateway.listRequests': async (args) => ({ requests: await c.target().listRequests(args.state === undefined ? {} : { state: args.state }) }),
    'gateway.approve': (args) => c.target().approve(args.request_id, args.reason),
    'gateway.reject': (args) => c.target().reject(args.request_id, args.reason),
    'gateway.listDevices': () => c.target().listDevices(),
    'gateway.revokeDevice': async (args) => {
      await c.target().revokeDevice(args.device_id, args.reason ?? '');
      return { device_id: args.device_id };
    },
    'gateway.removeDevice': async (args) => {
      await c.target().removeDevice(args.device_id);
      return { device_id: args.device_id };
    },
    'gateway.unbanDevice': async (args) => {
      await c.target().unbanDevice(args.device_id);
      return { device_id: args.device_id };
    },
    'gateway.renameDevice': async (args) => {
      const device = await c.target().renameDevice(args.device_id, args.name);
      return { ...device, online: device.status === 'paired' && c.isOnline(args.device_id) };
    },
    // Only the gateway host may change roles: a remote target refuses with permission_denied.
    'gateway.grantAdmin': async (args) => {
      const device = await c.target().grantAdmin(args.device_id);
      return { ...device, online: device.status === 'paired' && c.isOnline(args.device_id) };
    },
    'gateway.revokeAdmin': async (args) => {
      const device = await c.target().revokeAdmin(args.device_id);
      return { ...device, online: device.status === 'paired' && c.isOnline(args.device_id) };
    },
    'gateway.auditTail': async (args) => {
      const tail = await c.target().auditTail(args.count);
      return { entries: tail.entries, chain: tail.chain };
    },
  };
}

/**
 * What the gateway said when it refused this device (the recorded revocation reason), for `revocation`; null when
 * there is none or it cannot be read (shown only: nothing is decided with it).
 */
export async function revokedReasonOf(agent: DeviceAgent): Promise<string | null> {
  try {
    return (await agent.store.peekState())?.revoked_reason ?? null;
  } catch {
    return null;
  }
}

/**
 * `revocation` of a revoked device from the reason its gateway gave: the gateway ends a banned device's stream with
 * "device is revoked" (its id is on the revocation list) and a removed one's with "device certificate is revoked"
 * (only the certificate is; the device may pair again). A refusal at the TLS handshake says neither: `refused`.
 */
export function revocationOf(reason: string | null): 'banned' | 'removed' | 'refused' {
  if (reason === null) return 'refused';
  if (/\bcertificate is revoked\b|\bremoved\b/i.test(reason)) return 'removed';
  if (/\bdevice (?:[0-9A-HJKMNP-TV-Z]{26} )?is revoked\b/i.test(reason)) return 'banned';
  return 'refused';
}

/** The agent's status in the contract's shape (extra fields dropped by the result schema anyway). */
export function deviceStatusView(status: AgentStatus, revokedReason: string | null = null): ChannelResult<'device.status'> {
  return {
    revocation: status.revoked ? revocationOf(revokedReason) : null,
    device_id: status.device_id,
    identity_fingerprint: status.identity_fingerprint,
    paired: status.paired,
    revoked: status.revoked,
    gateway: status.gateway,
    gateway_name: status.gateway_name,
    ca_fingerprint: status.ca_fingerprint,
    pinned_by: status.pinned_by,
    cert_expires_at_unix_ms: status.cert_expires_at_unix_ms,
    keychain: status.keychain,
    connection: status.connection,
    renewal: status.renewal,
  };
}
