import type { ChannelArgs, ClientKind, CodeView, GatewayEvent, GatewayStatus, MintedCode, PalyraApi, RequestView } from './api.js';
import { toUiError, type UiError } from './errors.js';
import { refCounted } from './ref-count.js';

export type MintMethod = MintedCode['method'];

export interface MintOptions {
  readonly kind?: ClientKind;
  readonly ttlMs?: number;
}

/** What the person did last and how it went, for the live region under the request list. */
export interface Notice {
  readonly tone: 'ok' | 'warn' | 'error';
  readonly text: string;
}

export interface RevealRequest {
  readonly requestId: string | null;
  readonly listed: boolean;
}

/**
 * The gateway this app hosts: its status, the code last minted here, and the requests waiting for a decision,
 * kept live by `gateway.status` and `gateway.event`.
 */
export class GatewayStore {
  status = $state<GatewayStatus | null>(null);
  statusError = $state<UiError | null>(null);
  /** Pending requests, oldest first. */
  requests = $state<RequestView[]>([]);
  /**
   * Requests that were listed here and then ended without a decision (the device cancelled, or the request expired),
   * newest first: shown as such, with no way to approve them, until dismissed (at most ENDED_KEPT).
   */
  ended = $state<RequestView[]>([]);
  requestsError = $state<UiError | null>(null);
  codes = $state<CodeView[]>([]);
  minted = $state<MintedCode | null>(null);
  /** The code shown here was used: the request it made (the code is spent, so it is no longer shown). */
  usedBy = $state<{ requestId: string; name: string } | null>(null);
  #mintedAt = 0;
  mintOptions = $state<MintOptions>({});
  mintError = $state<UiError | null>(null);
  minting = $state(false);
  configuring = $state(false);
  configureError = $state<UiError | null>(null);
  /** Request ids with an approve or reject call in flight. */
  deciding = $state<Record<string, boolean>>({});
  notice = $state<Notice | null>(null);
  /**
   * A request to bring into view, from `app.openRequests` (a notification's request id, or null for the list as a
   * whole); `listed` once the request list has been refreshed for it. The Gateway view scrolls to it and clears it.
   */
  reveal = $state.raw<RevealRequest | null>(null);

  readonly #api: PalyraApi;
  readonly attach: () => () => void;

  constructor(api: PalyraApi) {
    this.#api = api;
    this.attach = refCounted(() => {
      const offStatus = api.on('gateway.status', (status) => {
        const wasActive = isActive(this.status);
        this.status = status;
        this.statusError = null;
        // A remote gateway's status is published again after its event stream reconnects: reload what was missed.
        if (isActive(status) && (!wasActive || status.managed === 'remote')) void this.refreshRequests();
        if (!isActive(status)) {
          this.requests = [];
          this.ended = [];
        }
      });
      const offEvent = api.on('gateway.event', (event) => {
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
    await this.refreshStatus();
    if (isActive(this.status)) await Promise.all([this.refreshRequests(), this.refreshCodes()]);
  }

  async refreshStatus(): Promise<void> {
    try {
      this.status = await this.#api.gatewayStatus({});
      this.statusError = null;
    } catch (error) {
      this.statusError = toUiError(error);
    }
  }

  async refreshRequests(): Promise<void> {
    try {
      const { requests } = await this.#api.gatewayListRequests({ state: 'pending_approval' });
      this.requests = sortRequests(requests);
      this.requestsError = null;
    } catch (error) {
      this.requestsError = toUiError(error);
    }
  }

  async refreshCodes(): Promise<void> {
    try {
      this.codes = (await this.#api.gatewayListCodes({})).codes;
    } catch {
      // The list is informative only; the mint button reports real failures.
    }
  }

  async configure(change: ChannelArgs<'gateway.configure'>): Promise<boolean> {
    this.configuring = true;
    try {
      this.status = await this.#api.gatewayConfigure(change);
      this.configureError = null;
      if (isActive(this.status)) await this.refreshRequests();
      return true;
    } catch (error) {
      this.configureError = toUiError(error);
      return false;
    } finally {
      this.configuring = false;
    }
  }

  async mint(method: MintMethod, options: MintOptions = this.mintOptions): Promise<void> {
    this.minting = true;
    this.mintOptions = options;
    try {
      this.usedBy = null;
      this.#mintedAt = Date.now();
      const minted = await this.#api.gatewayMintCode({
        method,
        ...(options.kind === undefined ? {} : { kind: options.kind }),
        ...(options.ttlMs === undefined ? {} : { ttl_ms: options.ttlMs }),
      });
      this.minted = minted;
      this.#scheduleRenewal(minted);
      this.mintError = null;
      await this.refreshCodes();
    } catch (error) {
      this.mintError = toUiError(error);
    } finally {
      this.minting = false;
    }
  }

  /** Asks the Gateway view to show this request (or the request list), with the list freshly loaded. */
  async revealRequest(requestId: string | null): Promise<void> {
    const reveal: RevealRequest = { requestId, listed: false };
    this.reveal = reveal;
    await this.refresh();
    if (this.reveal === reveal) this.reveal = { requestId, listed: true };
  }

  /** The view has shown `reveal` (a newer one, meanwhile, stays). */
  revealDone(reveal: RevealRequest): void {
    if (this.reveal === reveal) this.reveal = null;
  }

  clearMinted(): void {
    this.#scheduleRenewal(null);
    this.minted = null;
    this.usedBy = null;
  }

  #renewTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * A QR code on screen is replaced by a new one (same kind and lifetime) when it expires, so the code shown (also
   * in the large view) can always be scanned; the old one has expired on the gateway by then. A PIN is not: its
   * user may be typing it, so it says it expired and offers a new one. Nothing is renewed once the code was used or
   * hidden, or after a failed mint (the error is shown instead).
   */
  #scheduleRenewal(code: MintedCode | null): void {
    if (this.#renewTimer !== null) clearTimeout(this.#renewTimer);
    this.#renewTimer = null;
    if (code === null || code.method !== 'qr') return;
    // setTimeout's longest delay is 2^31-1 ms; a code valid for longer (24 h is allowed) waits in steps.
    const delay = Math.min(Math.max(code.expires_at_unix_ms - Date.now(), 0) + RENEW_AFTER_EXPIRY_MS, MAX_TIMER_MS);
    this.#renewTimer = setTimeout(() => {
      this.#renewTimer = null;
      // (`minted` holds a state proxy of the code, so compare the code itself.)
      if (this.minted?.code !== code.code) return;
      if (Date.now() < code.expires_at_unix_ms) this.#scheduleRenewal(code);
      else if (!this.minting) void this.mint('qr');
    }, delay);
  }

  async approve(requestId: string): Promise<void> {
    await this.#decide(requestId, 'approve');
  }

  async reject(requestId: string, reason?: string): Promise<void> {
    await this.#decide(requestId, 'reject', reason);
  }

  async #decide(requestId: string, action: 'approve' | 'reject', reason?: string): Promise<void> {
    this.deciding = { ...this.deciding, [requestId]: true };
    const listedName = this.requests.find((r) => r.request_id === requestId)?.device_name ?? null;
    const args = { request_id: requestId, ...(reason === undefined || reason === '' ? {} : { reason }) };
    try {
      const request = action === 'approve' ? await this.#api.gatewayApprove(args) : await this.#api.gatewayReject(args);
      this.#upsert(request);
      const who = request.device_name ?? listedName ?? request.device_id;
      this.#setNotice({ tone: 'ok', text: action === 'approve' ? `Approved device ${who}.` : `Rejected device ${who}.` });
    } catch (error) {
      const failure = toUiError(error);
      this.#setNotice({ tone: 'error', text: `Could not ${action} the request: ${failure.message || failure.code}` });
      // The request may have been decided elsewhere (CLI, another window) in the meantime.
      void this.refreshRequests();
    } finally {
      const { [requestId]: _done, ...rest } = this.deciding;
      this.deciding = rest;
    }
  }

  #noticeTimer: ReturnType<typeof setTimeout> | null = null;

  /** A decision's notice goes stale: it clears after a while, or as soon as another device asks to pair. */
  #setNotice(notice: Notice | null): void {
    if (this.#noticeTimer !== null) clearTimeout(this.#noticeTimer);
    this.#noticeTimer = null;
    this.notice = notice;
    if (notice !== null) {
      this.#noticeTimer = setTimeout(() => {
        this.#noticeTimer = null;
        if (this.notice === notice) this.notice = null;
      }, NOTICE_STALE_MS);
    }
  }

  /** A request made with the method of the code on screen, after it was made: that code is spent. */
  #markUsed(request: RequestView): void {
    const minted = this.minted;
    if (minted === null || request.method !== minted.method || request.requested_at_unix_ms < this.#mintedAt - CLOCK_SLACK_MS) return;
    this.#scheduleRenewal(null);
    this.minted = null;
    this.usedBy = { requestId: request.request_id, name: requestName(request) };
  }

  /** Takes an ended request off the screen. */
  dismissEnded(requestId: string): void {
    this.ended = this.ended.filter((r) => r.request_id !== requestId);
  }

  #upsert(request: RequestView): void {
    const wasListed = this.requests.some((r) => r.request_id === request.request_id);
    if (wasListed && (request.state === 'cancelled' || request.state === 'expired')) {
      this.ended = [request, ...this.ended.filter((r) => r.request_id !== request.request_id)].slice(0, ENDED_KEPT);
    }
    const others = this.requests.filter((r) => r.request_id !== request.request_id);
    this.requests = request.state === 'pending_approval' ? sortRequests([...others, request]) : others;
  }

  #onEvent(event: GatewayEvent): void {
    switch (event.type) {
      case 'request.created':
      case 'request.updated':
        this.#upsert(event.request);
        if (event.type === 'request.created') {
          this.#setNotice(null);
          this.#markUsed(event.request);
          void this.refreshCodes();
        } else if (event.request.state === 'cancelled') {
          this.#setNotice({ tone: 'warn', text: `${requestName(event.request)} cancelled its pairing request.` });
        } else if (event.request.state === 'expired') {
          this.#setNotice({ tone: 'warn', text: `The pairing request from ${requestName(event.request)} expired.` });
        }
        break;
      default:
        break;
    }
  }
}

/** How many ended (cancelled, expired) requests stay on screen. */
const ENDED_KEPT = 10;

/** A QR code is replaced this long after it expired (so the gateway surely counts it as expired). */
const RENEW_AFTER_EXPIRY_MS = 250;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Gateway and app clocks may differ a little (a remote gateway). */
const CLOCK_SLACK_MS = 5_000;

function requestName(request: RequestView): string {
  return request.device_name ?? `${request.client_kind} ${request.device_id.slice(-6)}`;
}

/** How long "Approved device X" stays under the request list. */
const NOTICE_STALE_MS = 20_000;

/** A gateway is there to manage: the hosted one runs, or this device administers a remote one. */
export function isActive(status: GatewayStatus | null): boolean {
  return status !== null && (status.running || status.managed === 'remote');
}

function sortRequests(requests: readonly RequestView[]): RequestView[] {
  return [...requests].filter((r) => r.state === 'pending_approval').sort((a, b) => a.requested_at_unix_ms - b.requested_at_unix_ms);
}
