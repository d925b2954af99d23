import type { DeviceEvent, DeviceStatus, PalyraApi } from './api.js';
import { describeError, toUiError, type UiError } from './errors.js';
import { refCounted } from './ref-count.js';

export interface UnpairNotice {
  readonly tone: 'ok' | 'warn';
  readonly text: string;
}

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
  /** A "Reconnect now" call is in flight. */
  reconnecting = $state(false);
  /** Why the last "Reconnect now" was refused, until the next try or the device comes online. */
  reconnectError = $state<UiError | null>(null);
  /** How the last unpair went, for the notice the Device view shows until the device is paired again. */
  unpairNotice = $state<UnpairNotice | null>(null);

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

  /**
   * Forgets the pairing on this device: main asks the gateway to revoke it (when it can reach it and the device is
   * not revoked already), then wipes the certificate, the identity key and the gateway settings here. The gateway
   * step never stops the local wipe: a resolved call means the wipe is done. Returns whether the device is unpaired;
   * a failure is in `error`, what happened in `unpairNotice`.
   */
  async unpair(): Promise<boolean> {
    const wasRevoked = this.status?.revoked === true;
    this.unpairing = true;
    this.unpairNotice = null;
    try {
      await this.#api.deviceUnpair({});
      this.#forgetPairing();
      this.unpairNotice = wasRevoked
        ? {
            tone: 'warn',
            text: 'Unpaired on this device: its certificate and keys are removed. The gateway was not contacted, since it refuses this revoked device; it keeps it on its revocation list.',
          }
        : { tone: 'ok', text: 'Unpaired: this device’s certificate and keys are removed. Pair again to use a gateway.' };
      await this.refresh();
      return true;
    } catch (error) {
      const failure = toUiError(error);
      await this.refresh();
      const status = this.status;
      if (status !== null && status.keychain !== 'locked' && status.device_id === null && !status.paired && !status.revoked) {
        // The local material is gone all the same: only telling the gateway failed.
        this.#forgetPairing();
        this.unpairNotice = {
          tone: 'warn',
          text: `Unpaired on this device, but the gateway could not be told: ${describeError(failure)} Ask its operator to revoke this device there.`,
        };
        return true;
      }
      this.error = failure;
      return false;
    } finally {
      this.unpairing = false;
    }
  }

  /**
   * "Reconnect now" (`device.reconnect`): an offline device dials its gateway at once, its backoff reset. Returns
   * whether a new attempt started (false when already online); a refusal is in `reconnectError`.
   */
  async reconnect(): Promise<boolean> {
    if (this.reconnecting) return false;
    this.reconnecting = true;
    this.reconnectError = null;
    try {
      const { reconnecting } = await this.#api.deviceReconnect({});
      return reconnecting;
    } catch (error) {
      this.reconnectError = toUiError(error);
      return false;
    } finally {
      this.reconnecting = false;
    }
  }

  /** Whether "Reconnect now" can help: paired, not revoked, and offline. */
  get canReconnect(): boolean {
    const status = this.status;
    return status !== null && status.paired && !status.revoked && status.connection === 'offline';
  }

  #forgetPairing(): void {
    this.revokedReason = null;
    this.reauthReason = null;
    this.renewalError = null;
    this.retryInMs = null;
  }

  #onEvent(event: DeviceEvent): void {
    const status = this.status;
    switch (event.type) {
      case 'connection':
        this.retryInMs = event.retry_in_ms ?? null;
        if (event.state === 'online') this.reconnectError = null;
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
