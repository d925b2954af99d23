/**
 * This device as an administrator of the gateway it is paired with (hosted gateway off): whether it may manage that
 * gateway is asked with a ListDevices call over mTLS (PERMISSION_DENIED = not admin; unreachable = not now, asked
 * again later), and while it may, the gateway's WatchEvents stream feeds the app's gateway.event. A stream ending
 * with a refusal means the role was lost. A role granted later has no event here, so a timer asks again.
 */

import type { AdminWatch, GatewayEvent } from '../admin/admin-target.js';
import { connectRemoteAdminWithStore } from '../admin/remote-admin.js';
import type { RemoteAdminTarget } from '../admin/remote-admin.js';
import type { PalyraError } from '../core/errors.js';
import { toPalyraError } from '../core/errors.js';
import { Backoff } from '../device/backoff.js';
import type { DeviceAgent } from '../device/device-agent.js';
import type { IpcLog } from './ipc-router.js';

/** How often a paired, non-hosting app asks whether it has been made an admin of its gateway. */
const REMOTE_RECHECK_MS = 30_000;
/** The probe's call deadline (a gateway.status call waits for it at most REMOTE_PROBE_WAIT_MS). */
const REMOTE_PROBE_TIMEOUT_MS = 5_000;
const REMOTE_PROBE_WAIT_MS = 1_500;
/** WatchEvents reconnect backoff. */
const WATCH_RETRY_BASE_MS = 500;
const WATCH_RETRY_CAP_MS = 30_000;
/** Codes that mean this device may not administer the gateway (any more). */
const NOT_ADMIN_CODES = new Set<string>(['permission_denied', 'unauthenticated', 'device_revoked', 'certificate_revoked', 'remote_admin_requires_mtls']);

interface Session {
  readonly target: RemoteAdminTarget;
  readonly address: string;
  readonly name: string | null;
  /** The device certificate the session was established with (a new one = a new session). */
  readonly certificate: string;
  watch: AdminWatch | null;
  retryTimer: NodeJS.Timeout | null;
  readonly backoff: Backoff;
}

export interface RemoteAdminSessionOptions {
  readonly agent: DeviceAgent;
  readonly log: IpcLog;
  /** The app hosts the gateway itself: no remote management then. */
  readonly isHosting: () => boolean;
  readonly isDisposed: () => boolean;
  /** The session began, ended, or its stream came back after a gap (views reload on a status publication). */
  readonly onChange: () => void;
  readonly onEvent: (event: GatewayEvent) => void;
}

export class RemoteAdminSession {
  readonly #o: RemoteAdminSessionOptions;
  #session: Session | null = null;
  /** The running evaluation; another is queued when asked again meanwhile. */
  #check: Promise<void> | null = null;
  #checkAgain = false;
  #recheck: NodeJS.Timeout | null = null;

  constructor(options: RemoteAdminSessionOptions) {
    this.#o = options;
  }

  /** The remote gateway being managed, or null. */
  get current(): { readonly target: RemoteAdminTarget; readonly address: string; readonly name: string | null } | null {
    return this.#session;
  }

  /** Starts the periodic re-check (a role granted later is noticed within REMOTE_RECHECK_MS). */
  startRecheck(): void {
    this.#recheck = setInterval(() => {
      if (!this.#o.isHosting() && this.#session === null) void this.evaluate();
    }, REMOTE_RECHECK_MS);
    this.#recheck.unref();
  }

  /** Waits for an evaluation at most REMOTE_PROBE_WAIT_MS (it goes on and reports what it finds). */
  async awaitProbe(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.evaluate(), new Promise((resolve) => (timer = setTimeout(resolve, REMOTE_PROBE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Runs one probe at a time; asking while one runs queues one more. Never rejects. */
  evaluate(): Promise<void> {
    if (this.#check !== null) {
      this.#checkAgain = true;
      return this.#check;
    }
    const check = (async () => {
      do {
        this.#checkAgain = false;
        try {
          await this.#probe();
        } catch (error) {
          this.#o.log({ event: 'remote_admin.check_failed', code: toPalyraError(error).code });
        }
      } while (this.#wantsAnotherCheck());
    })();
    this.#check = check;
    void check.finally(() => {
      if (this.#check === check) this.#check = null;
    });
    return check;
  }

  /** Stops the timer and the session, and waits for a running probe. */
  async dispose(): Promise<void> {
    if (this.#recheck !== null) clearInterval(this.#recheck);
    this.end();
    await Promise.allSettled([this.#check]);
    this.end();
  }

  /** Stops managing the remote gateway (no onChange; the caller publishes). */
  end(): void {
    const session = this.#session;
    if (session === null) return;
    this.#session = null;
    if (session.retryTimer !== null) clearTimeout(session.retryTimer);
    session.watch?.cancel();
    session.watch = null;
    session.target.close();
    this.#o.log({ event: 'remote_admin.ended', address: session.address });
  }

  /** Read after an await, so not narrowed away. */
  #wantsAnotherCheck(): boolean {
    return this.#checkAgain && !this.#o.isDisposed();
  }

  /** Manages the remote gateway iff: not hosting, device paired and not revoked, and a ListDevices call succeeds. */
  async #probe(): Promise<void> {
    const before = this.#session;
    if (this.#o.isDisposed() || this.#o.isHosting()) {
      this.end();
    } else {
      const { agent } = this.#o;
      const status = await agent.status();
      const state = status.paired && !status.revoked ? await agent.store.readState() : null;
      const certificate = state?.certificate_pem ?? null;
      if (certificate === null || status.gateway === null) {
        this.end();
      } else if (this.#session === null || this.#session.certificate !== certificate) {
        this.end();
        await this.#connect(certificate, status.gateway_name);
      } else if (this.#session.watch === null && this.#session.retryTimer === null) {
        // Established: the WatchEvents stream tells when the role is lost. Ask again only if the stream is down.
        this.#watch(this.#session);
      }
    }
    if (this.#session !== before && !this.#o.isDisposed()) this.#o.onChange();
  }

  async #connect(certificate: string, name: string | null): Promise<void> {
    const { log } = this.#o;
    let target: RemoteAdminTarget;
    try {
      target = await connectRemoteAdminWithStore(this.#o.agent.store, {
        callTimeoutMs: REMOTE_PROBE_TIMEOUT_MS,
        // A refusal for lack of the role: ask again at once.
        onCallError: (error) => {
          if (NOT_ADMIN_CODES.has(error.code)) void this.evaluate();
        },
      });
    } catch (error) {
      log({ event: 'remote_admin.unavailable', code: toPalyraError(error).code });
      return;
    }
    try {
      await target.listDevices();
    } catch (error) {
      target.close();
      const code = toPalyraError(error).code;
      log({ event: NOT_ADMIN_CODES.has(code) ? 'remote_admin.not_admin' : 'remote_admin.unreachable', code, address: target.address });
      return;
    }
    if (this.#o.isDisposed() || this.#o.isHosting()) {
      target.close();
      return;
    }
    const session: Session = {
      target,
      address: target.address,
      name,
      certificate,
      watch: null,
      retryTimer: null,
      backoff: new Backoff({ baseMs: WATCH_RETRY_BASE_MS, capMs: WATCH_RETRY_CAP_MS }),
    };
    this.#session = session;
    log({ event: 'remote_admin.started', address: target.address });
    this.#watch(session);
  }

  /** Opens the session's WatchEvents stream; reconnects with backoff, ends the session when the role is lost. */
  #watch(session: Session): void {
    session.retryTimer = null;
    if (this.#session !== session) return;
    session.watch = session.target.watchEvents({
      onOpen: () => {
        const reconnected = session.backoff.failures > 0;
        session.backoff.reset();
        // Events may have been missed while the stream was down.
        if (reconnected && this.#session === session) this.#o.onChange();
      },
      onEvent: (event) => {
        if (this.#session === session && !this.#o.isHosting()) this.#o.onEvent(event);
      },
      onEnd: (error: PalyraError) => {
        session.watch = null;
        if (this.#session !== session) return;
        if (NOT_ADMIN_CODES.has(error.code)) {
          this.#o.log({ event: 'remote_admin.role_lost', code: error.code });
          this.end();
          this.#o.onChange();
          return;
        }
        const delay = session.backoff.next();
        this.#o.log({ event: 'remote_admin.watch_lost', code: error.code, retry_in_ms: delay });
        session.retryTimer = setTimeout(() => {
          this.#watch(session);
        }, delay);
        session.retryTimer.unref();
      },
    });
  }
}
