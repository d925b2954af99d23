import type { PairingProgress, PairStartArgs, PalyraApi } from './api.js';
import { toUiError, type UiError } from './errors.js';
import { refCounted } from './ref-count.js';

/**
 * Where one pairing attempt is. `starting` is the time between `devicePairStart` being called and its id coming
 * back; `progress` covers connecting → verifying gateway → awaiting approval; the rest are terminal.
 */
export type PairingPhase = 'idle' | 'starting' | 'progress' | 'paired' | 'rejected' | 'expired' | 'failed' | 'cancelled';

/** The steps shown to the person, in order. */
export const PAIRING_STEPS = ['connecting', 'verifying_gateway', 'awaiting_approval', 'paired'] as const;
export type PairingStep = (typeof PAIRING_STEPS)[number];

export interface GatewayCheck {
  readonly gateway: string;
  readonly caFingerprint: string;
  readonly caPin: string;
  /** true: the CA matched the pin from the QR code; false: first contact (PIN or bare token), compare by eye. */
  readonly pinned: boolean;
}

export interface AwaitingApproval {
  readonly sas: string;
  readonly requestId: string;
  readonly gateway: string;
  readonly gatewayName: string | null;
  /** 'pin': PIN pairing v2 verified the gateway, no SAS to compare; 'tofu': v1 fallback, compare the SAS. */
  readonly verifiedBy: 'qr' | 'pin' | 'tofu' | null;
}

export interface PairedResult {
  readonly deviceId: string;
  readonly gateway: string;
  readonly certExpiresAtUnixMs: number;
}

type PairingEvent = { pairing_id: string; progress: PairingProgress };

/** One pairing at a time, driven by `device.pairing` events for the id `devicePairStart` returned. */
export class PairingStore {
  phase = $state<PairingPhase>('idle');
  step = $state<PairingStep | null>(null);
  pairingId = $state<string | null>(null);
  gateway = $state<string | null>(null);
  check = $state<GatewayCheck | null>(null);
  awaiting = $state<AwaitingApproval | null>(null);
  /** While waiting for approval the gateway went away: the request is kept and the device keeps trying. */
  reconnecting = $state<{ attempt: number; retryInMs: number } | null>(null);
  paired = $state<PairedResult | null>(null);
  rejectedReason = $state<string | null>(null);
  error = $state<UiError | null>(null);
  /** What the last start was called with; Retry starts it again. */
  lastArgs = $state<PairStartArgs | null>(null);
  /**
   * The display name this device sends when it pairs ("This device's name"): the host name until the person edits
   * it. Blank sends none (the gateway then names the device after its kind and id).
   */
  deviceName = $state('');
  #nameEdited = false;
  #nameLoaded = false;

  readonly #api: PalyraApi;
  readonly attach: () => () => void;
  /** Events that arrived before `devicePairStart` resolved with their id (the main process may be that fast). */
  #early: PairingEvent[] = [];
  #cancelRequested = false;
  /** Increments with every start so a stale start's late answer is ignored. */
  #attempt = 0;

  constructor(api: PalyraApi) {
    this.#api = api;
    this.attach = refCounted(() => {
      void this.#loadDefaultName();
      return api.on('device.pairing', (event) => {
        this.#onEvent(event);
      });
    });
  }

  /** The person typed a name: the host name no longer replaces it. */
  setDeviceName(name: string): void {
    this.#nameEdited = true;
    this.deviceName = name;
  }

  async #loadDefaultName(): Promise<void> {
    if (this.#nameLoaded) return;
    this.#nameLoaded = true;
    try {
      const info = await this.#api.appInfo({});
      if (!this.#nameEdited) this.deviceName = info.host_name;
    } catch {
      // Without the host name the field starts empty; pairing still works (the gateway picks a name).
      this.#nameLoaded = false;
    }
  }

  /** `args` with this device's name, unless they carry one or the name is blank. */
  #withName(args: PairStartArgs): PairStartArgs {
    const name = this.deviceName.trim();
    return name === '' || args.device_name !== undefined ? args : { ...args, device_name: name };
  }

  get active(): boolean {
    return this.phase === 'starting' || this.phase === 'progress';
  }

  get terminal(): boolean {
    return this.phase !== 'idle' && !this.active;
  }

  async start(given: PairStartArgs): Promise<void> {
    if (this.active) return;
    const args = this.#withName(given);
    this.#clear();
    const attempt = ++this.#attempt;
    this.lastArgs = args;
    this.phase = 'starting';
    this.step = 'connecting';
    this.gateway = 'gateway' in args ? args.gateway : null;
    try {
      const { pairing_id } = await this.#api.devicePairStart(args);
      if (attempt !== this.#attempt) return;
      this.pairingId = pairing_id;
      if (!this.#cancelRequested) this.phase = 'progress';
      const early = this.#early.filter((e) => e.pairing_id === pairing_id);
      this.#early = [];
      for (const event of early) this.#apply(event.progress);
      if (this.#cancelRequested) await this.#sendCancel(pairing_id);
    } catch (error) {
      if (attempt !== this.#attempt) return;
      if (this.#cancelRequested) this.phase = 'cancelled';
      else this.#fail(toUiError(error));
    }
  }

  async cancel(): Promise<void> {
    if (!this.active) return;
    this.#cancelRequested = true;
    this.phase = 'cancelled';
    const id = this.pairingId;
    // Without an id yet, start() sends the cancel as soon as the id arrives.
    if (id !== null) await this.#sendCancel(id);
  }

  async retry(): Promise<void> {
    const args = this.lastArgs;
    if (args === null || this.active) return;
    await this.start(args);
  }

  /** Back to the scanner. */
  reset(): void {
    if (this.active) return;
    this.#attempt += 1;
    this.#clear();
    this.lastArgs = null;
  }

  async #sendCancel(id: string): Promise<void> {
    try {
      await this.#api.devicePairCancel({ pairing_id: id });
    } catch {
      // Already finished on the main side; the phase stays `cancelled` either way.
    }
  }

  #clear(): void {
    this.phase = 'idle';
    this.step = null;
    this.pairingId = null;
    this.gateway = null;
    this.check = null;
    this.awaiting = null;
    this.reconnecting = null;
    this.paired = null;
    this.rejectedReason = null;
    this.error = null;
    this.#early = [];
    this.#cancelRequested = false;
  }

  #onEvent(event: PairingEvent): void {
    if (this.phase === 'starting' && this.pairingId === null) {
      this.#early.push(event);
      return;
    }
    if (event.pairing_id !== this.pairingId || !this.active) return;
    this.#apply(event.progress);
  }

  #apply(progress: PairingProgress): void {
    if (!this.active) return;
    if (progress.type === 'reconnecting') {
      this.reconnecting = { attempt: progress.attempt, retryInMs: progress.retry_in_ms };
      return;
    }
    this.reconnecting = null;
    switch (progress.type) {
      case 'connecting':
        this.phase = 'progress';
        this.step = 'connecting';
        this.gateway = progress.gateway;
        break;
      case 'verifying_gateway':
        this.phase = 'progress';
        this.step = 'verifying_gateway';
        this.gateway = progress.gateway;
        this.check = { gateway: progress.gateway, caFingerprint: progress.ca_fingerprint, caPin: progress.ca_pin, pinned: progress.pinned };
        break;
      case 'awaiting_approval':
        this.phase = 'progress';
        this.step = 'awaiting_approval';
        this.gateway = progress.gateway;
        this.awaiting = { sas: progress.sas, requestId: progress.request_id, gateway: progress.gateway, gatewayName: progress.gateway_name, verifiedBy: progress.verified_by ?? null };
        break;
      case 'paired':
        this.phase = 'paired';
        this.step = 'paired';
        this.paired = { deviceId: progress.device_id, gateway: progress.gateway, certExpiresAtUnixMs: progress.cert_expires_at_unix_ms };
        break;
      case 'rejected':
        this.phase = 'rejected';
        this.rejectedReason = progress.reason;
        this.error = { code: 'pairing_rejected', message: progress.reason ?? '' };
        break;
      case 'expired':
        this.phase = 'expired';
        this.error = { code: 'pairing_expired', message: '' };
        break;
      case 'failed':
        this.#fail({ code: progress.code, message: progress.message });
        break;
    }
  }

  #fail(error: UiError): void {
    if (error.code === 'cancelled' && this.#cancelRequested) {
      this.phase = 'cancelled';
      return;
    }
    this.error = error;
    if (error.code === 'pairing_rejected') {
      this.phase = 'rejected';
      this.rejectedReason = error.message === '' ? null : error.message;
    } else if (error.code === 'pairing_expired') {
      this.phase = 'expired';
    } else {
      this.phase = 'failed';
    }
  }
}
