import type { DeviceView, GatewayEvent, PalyraApi } from './api.js';
import { baseName } from './device-names.js';
import { toUiError, type UiError } from './errors.js';
import { refCounted } from './ref-count.js';

/** Events after which the device list must be fetched again; node.online/offline only flip a dot. */
const RELOAD_ON: ReadonlySet<GatewayEvent['type']> = new Set(['device.paired', 'device.revoked', 'devices.changed']);

/** The gateway's devices (paired and revoked) and revoked certificate fingerprints, live from `gateway.event`. */
export class DevicesStore {
  devices = $state<DeviceView[]>([]);
  revokedCertificateFingerprints = $state<string[]>([]);
  loaded = $state(false);
  error = $state<UiError | null>(null);
  actionError = $state<UiError | null>(null);
  /**
   * What the last revoke, remove or unban did, in the words the device uses too (banned / removed / unbanned), until
   * the next action.
   */
  notice = $state<string | null>(null);
  /** Device ids with a rename/revoke/remove/unban/admin-role call in flight. */
  busy = $state<Record<string, boolean>>({});

  readonly paired = $derived(this.devices.filter((d) => d.status === 'paired'));
  readonly revoked = $derived(this.devices.filter((d) => d.status === 'revoked'));

  readonly #api: PalyraApi;
  readonly attach: () => () => void;
  #loading: Promise<void> | null = null;
  #stale = false;

  constructor(api: PalyraApi) {
    this.#api = api;
    this.attach = refCounted(() => {
      const offEvent = api.on('gateway.event', (event) => {
        this.#onEvent(event);
      });
      const offStatus = api.on('gateway.status', (status) => {
        if (status.running || status.managed === 'remote') void this.refresh();
      });
      void this.refresh();
      return () => {
        offEvent();
        offStatus();
      };
    });
  }

  /** Fetches the list; calls made while a fetch runs coalesce into one more fetch after it. */
  refresh(): Promise<void> {
    if (this.#loading !== null) {
      this.#stale = true;
      return this.#loading;
    }
    this.#loading = this.#load().finally(() => {
      this.#loading = null;
      if (this.#stale) {
        this.#stale = false;
        void this.refresh();
      }
    });
    return this.#loading;
  }

  async #load(): Promise<void> {
    try {
      const result = await this.#api.gatewayListDevices({});
      this.devices = result.devices;
      this.revokedCertificateFingerprints = result.revoked_certificate_fingerprints;
      this.error = null;
    } catch (error) {
      this.error = toUiError(error);
    } finally {
      this.loaded = true;
    }
  }

  async revoke(deviceId: string, reason?: string): Promise<boolean> {
    const name = this.#nameOf(deviceId);
    const done = await this.#act(deviceId, () => this.#api.gatewayRevokeDevice({ device_id: deviceId, ...(reason === undefined || reason === '' ? {} : { reason }) }));
    if (done) this.notice = `Revoked ${name}: it is banned and cannot pair again until you unban it (Revocation).`;
    return done;
  }

  async remove(deviceId: string): Promise<boolean> {
    const name = this.#nameOf(deviceId);
    const done = await this.#act(deviceId, () => this.#api.gatewayRemoveDevice({ device_id: deviceId }));
    if (done) this.notice = `Removed ${name}: it is not banned and may pair again with a new code.`;
    return done;
  }

  async unban(deviceId: string): Promise<boolean> {
    const name = this.#nameOf(deviceId);
    const done = await this.#act(deviceId, () => this.#api.gatewayUnbanDevice({ device_id: deviceId }));
    if (done) this.notice = `Unbanned ${name}: it may pair again with a new code.`;
    return done;
  }

  #nameOf(deviceId: string): string {
    const device = this.devices.find((d) => d.device_id === deviceId);
    return device === undefined ? deviceId : baseName({ device_id: device.device_id, name: device.name, client_kind: device.client_kind });
  }

  /** Sets the device's display name (the gateway trims and checks it; a bad one fails with invalid_argument). */
  async rename(deviceId: string, name: string): Promise<boolean> {
    return this.#act(deviceId, () => this.#api.gatewayRenameDevice({ device_id: deviceId, name }));
  }

  /** Grants the device the admin role (only the gateway host may; a remote admin is refused). */
  async grantAdmin(deviceId: string): Promise<boolean> {
    return this.#act(deviceId, () => this.#api.gatewayGrantAdmin({ device_id: deviceId }));
  }

  async revokeAdmin(deviceId: string): Promise<boolean> {
    return this.#act(deviceId, () => this.#api.gatewayRevokeAdmin({ device_id: deviceId }));
  }

  async #act(deviceId: string, call: () => Promise<unknown>): Promise<boolean> {
    this.busy = { ...this.busy, [deviceId]: true };
    this.notice = null;
    try {
      await call();
      this.actionError = null;
      // The gateway also announces the change as an event; refreshing here covers a missed one.
      void this.refresh();
      return true;
    } catch (error) {
      this.actionError = toUiError(error);
      return false;
    } finally {
      const { [deviceId]: _done, ...rest } = this.busy;
      this.busy = rest;
    }
  }

  #onEvent(event: GatewayEvent): void {
    if (event.type === 'node.online' || event.type === 'node.offline') {
      const online = event.type === 'node.online';
      const known = this.devices.some((d) => d.device_id === event.device_id);
      if (!known) {
        void this.refresh();
        return;
      }
      this.devices = this.devices.map((d) => (d.device_id === event.device_id ? { ...d, online, ...(online ? { last_seen_at_unix_ms: Date.now() } : {}) } : d));
      return;
    }
    if (RELOAD_ON.has(event.type) || (event.type === 'request.updated' && event.request.state === 'completed')) void this.refresh();
  }
}
