import type { DeviceEvent, DeviceStatus, PalyraApi } from './api.js';
import { toUiError, type UiError } from './errors.js';
import { refCounted } from './ref-count.js';

/** This device: status from `device.status`, kept live by the `device.status` and `device.event` events. */
export class DeviceStore {
  status = $state<DeviceStatus | null>(null);
  loading = $state(false);
  error = $state<UiError | null>(null);
  /** From the last `connection` event: when the agent retries, if it said so. */
  retryInMs = $state<number | null>(null);
  /** Code of the last failed renewal, cleared by a successful one. */
  renewalError = $state<string | null>(null);
  /** Reason the gateway gave when it revoked this device, if an event told us. */
  revokedReason = $state<string | null>(null);
  /** Set by `reauth_required`: the gateway no longer accepts this device's credentials. */
  reauthReason = $state<string | null>(null);
  unpairing = $state(false);

  readonly #api: PalyraApi;
  readonly attach: () => () => void;

  constructor(api: PalyraApi) {
    this.#api = api;
    this.attach = refCounted(() => {
      const offStatus = api.on('device.status', (status) => {
        this.status = status;
        this.error = null;
      });
      const offEvent = api.on('device.event', (event) => {
        this.#onEvent(event);
      });
      void this.refresh();
      return () => {
        offStatus();
        offEvent();
      };
    });
  }

  async refresh(): Promise<void> {
    this.loading = true;
    try {
      this.status = await this.#api.deviceStatus({});
      this.error = null;
    } catch (error) {
      this.error = toUiError(error);
    } finally {
      this.loading = false;
    }
  }

  /** Forgets the pairing on this device. Returns whether it worked; a failure is in `error`. */
  async unpair(): Promise<boolean> {
    this.unpairing = true;
    try {
      await this.#api.deviceUnpair({});
      this.revokedReason = null;
      this.reauthReason = null;
      await this.refresh();
      return true;
    } catch (error) {
      this.error = toUiError(error);
      return false;
    } finally {
      this.unpairing = false;
    }
  }

  #onEvent(event: DeviceEvent): void {
    const status = this.status;
    switch (event.type) {
      case 'connection':
        this.retryInMs = event.retry_in_ms ?? null;
        if (status !== null) this.status = { ...status, connection: event.state };
        break;
      case 'renewed':
        this.renewalError = null;
        if (status !== null) this.status = { ...status, cert_expires_at_unix_ms: event.cert_expires_at_unix_ms, renewal: 'idle' };
        break;
      case 'renewal_failed':
        this.renewalError = event.code;
        if (status !== null) this.status = { ...status, renewal: 'failed' };
        break;
      case 'revoked':
        this.revokedReason = event.reason;
        if (status !== null) this.status = { ...status, revoked: true, connection: 'offline' };
        void this.refresh();
        break;
      case 'reauth_required':
        this.reauthReason = event.reason;
        void this.refresh();
        break;
      case 'unpaired':
        void this.refresh();
        break;
      case 'capability':
        break;
    }
  }
}
