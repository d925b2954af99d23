/**
 * AdminTarget over the gateway state directory on this machine (GatewayAdmin). Used by the CLI's operator commands
 * and by the desktop app, whether the app hosts the gateway or another process (or none) runs it.
 */

import type { EventEmitter } from 'node:events';
import { PalyraError } from '../core/errors.js';
import type { PairingRequestState } from '../core/pairing-requests.js';
import type { GatewayAdmin } from '../gateway/gateway-admin.js';
import type { GatewayEvent } from '../gateway/gateway.js';
import { reachableAddresses } from '../gateway/lan-addresses.js';
import type {
  AdminLocation,
  AdminTarget,
  AdminWatch,
  AdminWatchHandlers,
  AuditTail,
  CodeView,
  DeviceListing,
  DeviceView,
  MintCodeRequest,
  MintCodeResult,
  RequestView,
} from './admin-target.js';

export interface LocalAdminSource {
  readonly stateDir: string;
  /** The admin for a change (the state is created on first use, as the gateway does); current as of this call. */
  forWrite(): Promise<GatewayAdmin>;
  /** The admin for a read; null when there is no state yet and looking must not create it. */
  forRead(): Promise<GatewayAdmin | null>;
  /** The gateway serving this state dir now (its listen address and name), or null when none runs. */
  runningGateway(): Promise<{ listen: string; name: string | null } | null>;
  /** On a state database: the addresses of its live replicas (for the QR's gw= list); omitted = none. */
  replicaAddresses?(): Promise<string[]>;
  /** Devices with a live stream to a gateway in this process (device id → last seen); omitted = none known. */
  liveNodes?(): ReadonlyMap<string, number>;
  /** Events ('event': GatewayEvent) of a gateway in this process; omitted = no event source. */
  readonly events?: EventEmitter;
}

export interface LocalAdminOptions {
  /** Who mints codes, for the audit log and listings (`cli:<user>`, `desktop:<user>`). */
  readonly issuedBy: string;
  /** Appended to the "no gateway is running" refusal of a QR code: what the user can do about it. */
  readonly noGatewayHint: string;
}

const NO_LIVE_NODES: ReadonlyMap<string, number> = new Map();

export class LocalAdminTarget implements AdminTarget {
  readonly location: AdminLocation;
  readonly #source: LocalAdminSource;
  readonly #options: LocalAdminOptions;

  constructor(source: LocalAdminSource, options: LocalAdminOptions) {
    this.#source = source;
    this.#options = options;
    this.location = { kind: 'local', stateDir: source.stateDir };
  }

  #live(): ReadonlyMap<string, number> {
    return this.#source.liveNodes?.() ?? NO_LIVE_NODES;
  }

  async listCodes(): Promise<CodeView[]> {
    return (await this.#source.forRead())?.listCodes() ?? [];
  }

  async listRequests(filter: { state?: PairingRequestState } = {}): Promise<RequestView[]> {
    return (await this.#source.forRead())?.listRequests(filter) ?? [];
  }

  async mintCode(request: MintCodeRequest): Promise<MintCodeResult> {
    const running = await this.#source.runningGateway();
    let addresses = [...request.gatewayAddresses];
    let loopbackOnly = false;
    if (addresses.length === 0 && running !== null) {
      // Every address another machine can dial (a wildcard listener has one per network interface).
      const reachable = reachableAddresses(running.listen);
      addresses = reachable.addresses;
      loopbackOnly = reachable.reachable === 'this_computer';
    }
    if (request.method === 'qr' && this.#source.replicaAddresses !== undefined) {
      // Every live replica of the state database, so the device can fail over (`gw=A,B,C`).
      for (const a of await this.#source.replicaAddresses().catch(() => [])) if (!addresses.includes(a)) addresses.push(a);
    }
    if (addresses.length === 0 && request.method === 'qr') {
      throw new PalyraError(
        'gateway_unreachable',
        `no gateway is running on ${this.#source.stateDir}, so there is no address for the QR code; ${this.#options.noGatewayHint}`,
      );
    }
    const admin = await this.#source.forWrite();
    const minted = await admin.mintCode({
      method: request.method,
      kind: request.kind,
      ...(request.ttlMs === undefined ? {} : { ttlMs: request.ttlMs }),
      issuedBy: this.#options.issuedBy,
      gatewayAddresses: addresses,
      gatewayName: running?.name ?? null,
    });
    return { minted, addresses, gatewayRunning: running !== null, loopbackOnly };
  }

  async approve(requestId: string, reason?: string): Promise<RequestView> {
    return (await this.#source.forWrite()).approve(requestId, reason);
  }

  async reject(requestId: string, reason?: string): Promise<RequestView> {
    return (await this.#source.forWrite()).reject(requestId, reason);
  }

  async listDevices(): Promise<DeviceListing> {
    const admin = await this.#source.forRead();
    if (admin === null) return { devices: [], revoked_certificate_fingerprints: [] };
    const live = this.#live();
    const listing = admin.listDevices(live);
    return {
      devices: listing.devices.map((d) => ({ ...d, online: d.status === 'paired' && live.has(d.device_id) })),
      revoked_certificate_fingerprints: listing.revoked_certificate_fingerprints,
    };
  }

  async revokeDevice(deviceId: string, reason: string): Promise<DeviceView> {
    const admin = await this.#source.forWrite();
    await admin.revokeDevice(deviceId, reason);
    const device = admin.listDevices(this.#live()).devices.find((d) => d.device_id === deviceId && d.status === 'revoked');
    if (device === undefined) throw new PalyraError('internal', `device ${deviceId} was revoked but is not listed as revoked`);
    return device;
  }

  async removeDevice(deviceId: string): Promise<void> {
    await (await this.#source.forWrite()).removeDevice(deviceId);
  }

  async renameDevice(deviceId: string, name: string): Promise<DeviceView> {
    return (await this.#source.forWrite()).renameDevice(deviceId, name, this.#live());
  }

  async unbanDevice(deviceId: string): Promise<void> {
    await (await this.#source.forWrite()).unbanDevice(deviceId);
  }

  async grantAdmin(deviceId: string): Promise<DeviceView> {
    return (await this.#source.forWrite()).grantAdmin(deviceId);
  }

  async revokeAdmin(deviceId: string): Promise<DeviceView> {
    return (await this.#source.forWrite()).revokeAdmin(deviceId);
  }

  async auditTail(count: number): Promise<AuditTail> {
    const admin = await this.#source.forRead();
    if (admin === null) return { entries: [], chain: { ok: true, entries: 0 } };
    return admin.auditTail(count);
  }

  watchEvents(handlers: AdminWatchHandlers): AdminWatch {
    const events = this.#source.events;
    if (events === undefined) return { cancel: () => undefined };
    let active = true;
    const listener = (event: GatewayEvent): void => {
      if (active) handlers.onEvent(event);
    };
    events.on('event', listener);
    queueMicrotask(() => {
      if (active) handlers.onOpen?.();
    });
    return {
      cancel: () => {
        active = false;
        events.off('event', listener);
      },
    };
  }

  close(): void {
    // GatewayAdmin holds no connection; the state is closed with the process.
  }
}

/**
 * A source over a state dir that opens it once per kind of use: reads load an existing state without the lock and
 * create nothing (null when there is none); the first write opens it for changes, creating it as the gateway does.
 */
export function stateDirSource(o: {
  stateDir: string;
  open: () => Promise<GatewayAdmin>;
  openExisting: () => Promise<GatewayAdmin | null>;
  runningGateway: () => Promise<{ listen: string; name: string | null } | null>;
  replicaAddresses?: () => Promise<string[]>;
}): LocalAdminSource {
  let writer: Promise<GatewayAdmin> | null = null;
  let reader: Promise<GatewayAdmin | null> | null = null;
  // A failed open is forgotten, so the next call tries again.
  const forWrite = (): Promise<GatewayAdmin> => {
    writer ??= o.open().catch((error: unknown) => {
      writer = null;
      throw error;
    });
    return writer;
  };
  const forRead = (): Promise<GatewayAdmin | null> => {
    if (writer !== null) return writer;
    reader ??= o.openExisting().catch((error: unknown) => {
      reader = null;
      throw error;
    });
    return reader;
  };
  return { stateDir: o.stateDir, forWrite, forRead, runningGateway: o.runningGateway, ...(o.replicaAddresses === undefined ? {} : { replicaAddresses: o.replicaAddresses }) };
}
