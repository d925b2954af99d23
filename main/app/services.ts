/**
 * DesktopServices: what the main process does for the renderer, behind every channel of the IPC contract and
 * publishing every event of it. Transport-free: Electron's ipcMain and the browser-mode host both drive
 * `handlers` (through the IpcRouter) and forward `onEvent`.
 *
 * It owns one DeviceAgent (this machine as a device, in the device dir) and, when the user turns it on, a hosted
 * Gateway on the state dir; `<userData>/settings.json` remembers that choice. Gateway admin channels work on the
 * state dir whether or not the hosted gateway runs (the CLI or another process may run it), as the CLI does — unless
 * this device is paired, as an administrator, with a gateway: then (hosted gateway off) they manage that remote
 * gateway over `palyra.admin.v1.GatewayAdmin` with the device's mTLS identity, and its WatchEvents stream feeds
 * gateway.event. Admin is detected with a ListDevices call (PERMISSION_DENIED = not admin; unreachable = not now,
 * asked again on the next gateway.status or device event); a stream ending with PERMISSION_DENIED means the role was
 * lost.
 *
 * Logs carry event names, channel names, error codes and addresses, never codes, tokens, URIs or key material.
 */

import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { advertisedAddress } from '../cli/commands/pairing.js';
import type { ClientKind } from '../core/client-kind.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { formatHostPort, parseHostPort, parsePairingUri, parseScannedPayload } from '../core/pairing-uri.js';
import { DeviceAgent } from '../device/device-agent.js';
import type { AgentEvent, AgentStatus } from '../device/device-agent.js';
import type { KeychainMode } from '../device/device-store.js';
import type { PairingProgress, PairingTarget } from '../device/pairing-client.js';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayEvent } from '../gateway/gateway.js';
import { GatewayAdmin } from '../gateway/gateway-admin.js';
import type { DeviceView } from '../gateway/gateway-admin.js';
import { readRunningGateway } from '../gateway/gateway-info.js';
import { EVENTS } from '../ipc/contract.js';
import type { ChannelResult, EventName, EventPayload } from '../ipc/contract.js';
import type { Keychain } from '../store/keychain.js';
import type { ChannelHandlers, IpcLog, ParsedChannelArgs } from './ipc-router.js';
import { defaultSettings, normalizeListen, normalizeName, SettingsFile } from './settings.js';
import type { AppSettings } from './settings.js';
import { operatorName } from '../cli/operator.js';
import { connectRemoteAdminWithStore } from '../cli/remote-admin.js';
import type { RemoteAdmin, RemoteWatch } from '../cli/remote-admin.js';

export const APP_NAME = 'Palyra Desktop';
/** The package whose version app.info reports. */
const PACKAGE_NAME = 'palyra-desktop';

export interface DesktopServicesOptions {
  /** Where settings.json lives; also the parent of the default state and device dirs. */
  userDataDir: string;
  /** The gateway state directory (default `<userData>/gateway`, the CLI's default too). */
  stateDir?: string;
  /** This machine's device directory (default `<userData>/device`). */
  deviceDir?: string;
  /** Where the device's secrets go. */
  keychain: KeychainMode;
  /** The OS keychain (mode 'os'); omitted = the agent opens it; null = none. */
  osKeychain?: Keychain | null;
  /** The OS keychain for the hosted gateway's store key; null = key file in the state dir. Default: osKeychain in mode 'os', else null. */
  gatewayKeychain?: Keychain | null;
  mode: 'electron' | 'browser';
  /** Defaults to this package's version. */
  appVersion?: string;
  /** Asked before the agent opens a URL a capability requests (Electron: a dialog). */
  confirmOpenUrl?: (url: string) => Promise<boolean>;
  /** OS notifications (Electron); browser mode has none. */
  notify?: (title: string, body: string) => void;
  log?: IpcLog;
  clock?: () => number;
}

type Listener = (event: EventName, payload: unknown) => void;

interface PairingRun {
  readonly id: string;
  readonly controller: AbortController;
  /** A terminal progress event (paired, rejected, expired, failed) was published. */
  finished: boolean;
  done: Promise<void>;
}

const PAIRING_PROGRESS_TYPES = new Set<string>(['connecting', 'verifying_gateway', 'awaiting_approval', 'paired', 'rejected', 'expired', 'failed']);
const TERMINAL_PROGRESS = new Set<string>(['paired', 'rejected', 'expired', 'failed']);
/** dispose() waits this long for pairing runs to notice their cancellation (a long poll may hold one 25 s). */
const DISPOSE_PAIRING_WAIT_MS = 1_500;

function isPairingProgress(event: AgentEvent): event is PairingProgress {
  return PAIRING_PROGRESS_TYPES.has(event.type);
}

/** How often a paired, non-hosting app asks whether it has been made an admin of its gateway. */
const REMOTE_RECHECK_MS = 30_000;
/** The remote-admin probe's deadline (a gateway.status call waits for it at most REMOTE_PROBE_WAIT_MS). */
const REMOTE_PROBE_TIMEOUT_MS = 5_000;
const REMOTE_PROBE_WAIT_MS = 1_500;
/** WatchEvents reconnect backoff. */
const WATCH_RETRY_MIN_MS = 500;
const WATCH_RETRY_MAX_MS = 30_000;
/** Codes that mean this device may not administer the gateway (any more). */
const NOT_ADMIN_CODES = new Set<string>(['permission_denied', 'unauthenticated', 'device_revoked', 'certificate_revoked', 'remote_admin_requires_mtls']);

interface RemoteSession {
  readonly admin: RemoteAdmin;
  readonly address: string;
  readonly name: string | null;
  /** The device certificate the session was established with (a new one = a new session). */
  readonly certificate: string;
  watch: RemoteWatch | null;
  retryTimer: NodeJS.Timeout | null;
  retries: number;
}

/** `palyra://pair?…` links the app accepts from the OS (deep links). */
const DEEP_LINK_PREFIX = 'palyra://pair?';

export class DesktopServices {
  readonly userDataDir: string;
  readonly stateDir: string;
  readonly deviceDir: string;
  readonly mode: 'electron' | 'browser';
  readonly handlers: ChannelHandlers;
  readonly agent: DeviceAgent;
  readonly #settingsFile: SettingsFile;
  #settings: AppSettings;
  readonly #gatewayKeychain: Keychain | null;
  readonly #version: string;
  readonly #log: IpcLog;
  readonly #clock: () => number;
  readonly #listeners = new Set<Listener>();
  readonly #runs = new Map<string, PairingRun>();
  /** The run the agent is executing now (runs execute one after another). */
  #agentRun: PairingRun | null = null;
  /** The last started run's completion: the next run starts after it. Never rejects. */
  #pairingChain: Promise<void> = Promise.resolve();
  /** Coalesces device.status publications: one read at a time, one more queued. */
  #statusRefresh: Promise<void> | null = null;
  #statusAgain = false;
  #gateway: Gateway | null = null;
  /** The settings the running gateway was started with (port 0 stays 0 here). */
  #gatewayStartedWith: { listen: string; name: string | null } | null = null;
  #gatewayError: { code: string; message: string } | null = null;
  #standaloneAdmin: Promise<GatewayAdmin> | null = null;
  /** Serialises gateway start/stop/configure. */
  #gatewayOps: Promise<unknown> = Promise.resolve();
  #unsubscribeAgent: () => void = () => undefined;
  #disposed: Promise<void> | null = null;
  /** Re-asks the gateway whether this device became an admin (a role granted later has no event here). */
  #remoteRecheck: NodeJS.Timeout | null = null;
  /** The remote gateway managed as an administrator (hosted gateway off, device paired with the admin role). */
  #remote: RemoteSession | null = null;
  /** The running remote-admin evaluation; another is queued when asked again meanwhile. */
  #remoteCheck: Promise<void> | null = null;
  #remoteCheckAgain = false;

  private constructor(o: {
    options: DesktopServicesOptions;
    userDataDir: string;
    stateDir: string;
    deviceDir: string;
    settingsFile: SettingsFile;
    settings: AppSettings;
    agent: DeviceAgent;
    version: string;
  }) {
    this.userDataDir = o.userDataDir;
    this.stateDir = o.stateDir;
    this.deviceDir = o.deviceDir;
    this.mode = o.options.mode;
    this.agent = o.agent;
    this.#settingsFile = o.settingsFile;
    this.#settings = o.settings;
    this.#version = o.version;
    this.#log = o.options.log ?? (() => undefined);
    this.#clock = o.options.clock ?? Date.now;
    this.#gatewayKeychain = o.options.gatewayKeychain !== undefined ? o.options.gatewayKeychain : o.options.keychain === 'os' ? (o.options.osKeychain ?? null) : null;
    this.handlers = this.#createHandlers();
  }

  /** Loads the settings, opens the device agent, and starts the hosted gateway when it is enabled. */
  static async open(options: DesktopServicesOptions): Promise<DesktopServices> {
    const userDataDir = path.resolve(options.userDataDir);
    const stateDir = path.resolve(options.stateDir ?? path.join(userDataDir, 'gateway'));
    const deviceDir = path.resolve(options.deviceDir ?? path.join(userDataDir, 'device'));
    const log = options.log ?? (() => undefined);
    const settingsFile = new SettingsFile(userDataDir);
    // A broken settings file must not keep the app from starting: defaults (hosted gateway off) until the user
    // configures again, and the gateway status says what is wrong with the file.
    let settings: AppSettings;
    let settingsError: PalyraError | null = null;
    try {
      settings = await settingsFile.load();
    } catch (error) {
      settingsError = toPalyraError(error);
      settings = defaultSettings();
      log({ event: 'settings.unreadable', code: settingsError.code, message: settingsError.message });
    }
    const agent = await DeviceAgent.open({
      deviceDir,
      keychain: options.keychain,
      ...(options.osKeychain === undefined ? {} : { osKeychain: options.osKeychain }),
      ...(options.confirmOpenUrl === undefined ? {} : { confirmOpenUrl: options.confirmOpenUrl }),
      ...(options.notify === undefined ? {} : { notify: options.notify }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      log: (line) => {
        log({ source: 'device', ...line });
      },
    });
    const version = options.appVersion ?? (await packageVersion());
    const services = new DesktopServices({ options, userDataDir, stateDir, deviceDir, settingsFile, settings, agent, version });
    if (settingsError !== null) services.#gatewayError = { code: settingsError.code, message: settingsError.message };
    services.#unsubscribeAgent = agent.on((event) => {
      services.#onAgentEvent(event);
    });
    // The hosted gateway first: this device may be paired with it.
    if (settings.gateway.enabled) await services.#enqueueGatewayOp(() => services.#startGateway());
    await services.#startAgentIfPaired();
    void services.#evaluateRemote();
    services.#remoteRecheck = setInterval(() => {
      if (services.#gateway === null && services.#remote === null) void services.#evaluateRemote();
    }, REMOTE_RECHECK_MS);
    services.#remoteRecheck.unref();
    return services;
  }

  /** The hosted gateway while it runs. */
  get gateway(): Gateway | null {
    return this.#gateway;
  }

  /** Subscribes to every event of the contract; returns the unsubscribe function. */
  onEvent(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A `palyra://pair` link the OS handed to the app: the UI asks the user before pairing with it. */
  deepLink(uri: string): void {
    if (!uri.toLowerCase().startsWith(DEEP_LINK_PREFIX) || uri.length > 2048) {
      this.#log({ event: 'app.deep_link_ignored' });
      return;
    }
    this.#publish('app.deepLink', { uri });
  }

  /** The shell asks the UI to show the approval view (a notification or tray click); null = the list. */
  openRequests(requestId: string | null): void {
    this.#publish('app.openRequests', { request_id: requestId });
  }

  /** Cancels pairing runs, stops the device agent and the hosted gateway. Idempotent. */
  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      for (const run of this.#runs.values()) run.controller.abort();
      if (this.#remoteRecheck !== null) clearInterval(this.#remoteRecheck);
      this.#unsubscribeAgent();
      this.#endRemote();
      await Promise.allSettled([this.agent.stop(), this.#enqueueGatewayOp(() => this.#stopGateway()), this.#remoteCheck]);
      this.#endRemote();
      // A run blocked in a long poll notices the abort only when the poll returns; do not hold the shutdown for it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.#runs.values()].map((r) => r.done)), new Promise((resolve) => (timer = setTimeout(resolve, DISPOSE_PAIRING_WAIT_MS)))]);
      clearTimeout(timer);
      this.#listeners.clear();
    })();
    return this.#disposed;
  }

  // --- events ------------------------------------------------------------------------------------------------------

  /** Every event is checked against its schema here, once, before any transport sees it. */
  #publish<E extends EventName>(event: E, payload: EventPayload<E>): void {
    const checked = EVENTS[event].safeParse(payload);
    if (!checked.success) {
      this.#log({ event: 'ipc.invalid_event', name: event });
      return;
    }
    for (const listener of [...this.#listeners]) {
      try {
        listener(event, checked.data);
      } catch (error) {
        this.#log({ event: 'ipc.listener_failed', name: event, message: toPalyraError(error).message });
      }
    }
  }

  #onAgentEvent(event: AgentEvent): void {
    if (isPairingProgress(event)) {
      const run = this.#agentRun;
      if (run !== null) {
        this.#onPairingProgress(run, event);
        return;
      }
      // Outside a pairing, 'failed' is the connected mode giving up (it is logged by the agent).
      this.#log({ event: 'device.agent_stopped', code: event.type === 'failed' ? event.code : event.type });
    } else {
      this.#publish('device.event', event);
      // Pairing state or reachability changed: whether this device administers a remote gateway may have too.
      if ((event.type === 'connection' && event.state === 'online') || event.type === 'renewed' || event.type === 'revoked' || event.type === 'reauth_required' || event.type === 'unpaired') {
        void this.#evaluateRemote();
      }
    }
    this.#refreshStatus();
  }

  #onPairingProgress(run: PairingRun, progress: PairingProgress): void {
    // Progress of a cancelled run (already reported as cancelled) is not news any more.
    if (run.finished) return;
    if (TERMINAL_PROGRESS.has(progress.type)) run.finished = true;
    this.#publish('device.pairing', { pairing_id: run.id, progress });
    if (run.finished) this.#refreshStatus();
    if (progress.type === 'paired') void this.#evaluateRemote();
  }

  /** Publishes device.status from a fresh read; calls while one runs are coalesced into one more read. */
  #refreshStatus(): void {
    if (this.#statusRefresh !== null) {
      this.#statusAgain = true;
      return;
    }
    this.#statusRefresh = this.agent
      .status()
      .then((status) => {
        if (this.#disposed === null) this.#publish('device.status', deviceStatusView(status));
      })
      .catch((error: unknown) => {
        this.#log({ event: 'device.status_failed', code: toPalyraError(error).code });
      })
      .finally(() => {
        this.#statusRefresh = null;
        if (this.#statusAgain) {
          this.#statusAgain = false;
          this.#refreshStatus();
        }
      });
  }

  /** Connected mode (RegisterNode, event stream, renewal) for a paired device; an unpaired one stays idle. */
  async #startAgentIfPaired(): Promise<void> {
    try {
      const status = await this.agent.status();
      if (status.paired && this.#disposed === null) this.agent.start();
    } catch (error) {
      this.#log({ event: 'device.start_failed', code: toPalyraError(error).code });
    }
  }

  #onGatewayEvent(event: GatewayEvent): void {
    this.#publish('gateway.event', event);
  }

  // --- handlers ----------------------------------------------------------------------------------------------------

  #createHandlers(): ChannelHandlers {
    return {
      'app.info': () => Promise.resolve(this.#appInfo()),
      'device.status': async () => deviceStatusView(await this.agent.status()),
      'device.parseScan': (args) => settle(() => this.#parseScan(args)),
      'device.pairStart': (args) => settle(() => this.#pairStart(args)),
      'device.pairCancel': (args) => Promise.resolve({ cancelled: this.#pairCancel(args.pairing_id) }),
      'device.unpair': async () => {
        for (const id of this.#runs.keys()) this.#pairCancel(id);
        const result = await this.agent.unpair();
        if (result.gateway_error !== null) this.#log({ event: 'device.unpair_gateway_error', code: result.gateway_error.code });
        this.#refreshStatus();
        await this.#evaluateRemote();
        return { unpaired: result.device_id !== null };
      },
      'gateway.status': async () => {
        if (this.#gateway === null && this.#remote === null) await this.#awaitRemoteProbe();
        return this.#gatewayStatus();
      },
      'gateway.configure': (args) => this.#configure(args),
      'gateway.mintCode': (args) => this.#mintCode(args),
      'gateway.listCodes': async () => {
        // A remote gateway does not list its codes (codes are single-use secrets shown once).
        if (this.#remoteAdmin() !== null) return { codes: [] };
        const admin = await this.#readAdmin();
        return { codes: admin === null ? [] : admin.listCodes().map((c) => ({ method: c.method, expires_at_unix_ms: c.expires_at_unix_ms, kind: c.kind })) };
      },
      'gateway.listRequests': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) return { requests: await this.#remoteCall(remote.listRequests(args.state === undefined ? {} : { state: args.state })) };
        const admin = await this.#readAdmin();
        return { requests: admin === null ? [] : admin.listRequests(args.state === undefined ? {} : { state: args.state }) };
      },
      'gateway.approve': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) return this.#remoteCall(remote.approve(args.request_id, args.reason));
        return (await this.#writeAdmin()).approve(args.request_id, args.reason);
      },
      'gateway.reject': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) return this.#remoteCall(remote.reject(args.request_id, args.reason));
        return (await this.#writeAdmin()).reject(args.request_id, args.reason);
      },
      'gateway.listDevices': () => this.#listDevices(),
      'gateway.revokeDevice': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) await this.#remoteCall(remote.revokeDevice(args.device_id, args.reason ?? ''));
        else await (await this.#writeAdmin()).revokeDevice(args.device_id, args.reason ?? '');
        return { device_id: args.device_id };
      },
      'gateway.removeDevice': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) await this.#remoteCall(remote.removeDevice(args.device_id));
        else await (await this.#writeAdmin()).removeDevice(args.device_id);
        return { device_id: args.device_id };
      },
      'gateway.unbanDevice': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) await this.#remoteCall(remote.unbanDevice(args.device_id));
        else await (await this.#writeAdmin()).unbanDevice(args.device_id);
        return { device_id: args.device_id };
      },
      'gateway.grantAdmin': (args) => this.#setAdmin(args.device_id, true),
      'gateway.revokeAdmin': (args) => this.#setAdmin(args.device_id, false),
      'gateway.auditTail': async (args) => {
        const remote = this.#remoteAdmin();
        if (remote !== null) return this.#remoteCall(remote.auditTail(args.count));
        const admin = await this.#readAdmin();
        if (admin === null) return { entries: [], chain: { ok: true, entries: 0 } };
        const tail = await admin.auditTail(args.count);
        return { entries: tail.entries, chain: tail.chain };
      },
    };
  }

  #appInfo(): ChannelResult<'app.info'> {
    return {
      name: APP_NAME,
      version: this.#version,
      mode: this.mode,
      platform: process.platform,
      node_version: process.versions.node,
      electron_version: (process.versions as Readonly<Record<string, string | undefined>>).electron ?? null,
      device_dir: this.deviceDir,
      state_dir: this.stateDir,
    };
  }

  #parseScan(args: ParsedChannelArgs<'device.parseScan'>): ChannelResult<'device.parseScan'> {
    const scanned = parseScannedPayload(args.text, { now: this.#clock() });
    if (scanned.type === 'token') return { type: 'token', token: scanned.token };
    const uri = scanned.uri;
    return {
      type: 'uri',
      uri: args.text.trim(),
      gateways: uri.gateways.map(formatHostPort),
      gateway_name: uri.name,
      ca_pin: uri.caPin,
      kind: uri.kind,
      expires_at_unix_ms: uri.expiresAtUnixS * 1000,
    };
  }

  /** Throws for a bad code or address. */
  #pairStart(args: ParsedChannelArgs<'device.pairStart'>): ChannelResult<'device.pairStart'> {
    if (this.#disposed !== null) throw new PalyraError('unavailable', 'the app is shutting down');
    let target: PairingTarget;
    let kind: ClientKind;
    // Everything checkable is checked before a pairing id exists, so a bad code fails the call itself.
    if (args.method === 'uri') {
      const uri = parsePairingUri(args.uri.trim(), { now: this.#clock() });
      target = { method: 'qr', uri };
      kind = args.kind ?? uri.kind;
    } else {
      const gateway = formatHostPort(parseHostPort(args.gateway.trim()));
      target = args.method === 'token' ? { method: 'qr-token', token: args.token, gateway } : { method: 'pin', pin: args.pin, gateway };
      kind = args.kind ?? 'desktop';
    }
    // One pairing at a time: a new one replaces those still running (the user scanned another code). It starts
    // once the replaced one has ended, since both would write the same device state.
    for (const id of this.#runs.keys()) this.#pairCancel(id);
    const run: PairingRun = { id: randomUUID(), controller: new AbortController(), finished: false, done: Promise.resolve() };
    run.done = this.#pairingChain.then(() => this.#executeRun(run, target, kind));
    this.#pairingChain = run.done;
    this.#runs.set(run.id, run);
    return { pairing_id: run.id };
  }

  async #executeRun(run: PairingRun, target: PairingTarget, kind: ClientKind): Promise<void> {
    try {
      if (run.controller.signal.aborted) return;
      // The agent pairs only while its connected mode is stopped; it is started again below.
      await this.agent.stop();
      this.#agentRun = run;
      await this.agent.pair(target, { kind, signal: run.controller.signal });
    } catch (error) {
      const e = toPalyraError(error);
      // The agent reports its own failures as progress; this covers anything that failed before it could.
      if (!run.finished) this.#onPairingProgress(run, { type: 'failed', code: e.code, message: e.message });
      this.#log({ event: 'device.pairing_ended', code: e.code });
    } finally {
      this.#agentRun = null;
      this.#runs.delete(run.id);
    }
    if (this.#disposed === null) await this.#startAgentIfPaired();
    this.#refreshStatus();
  }

  /** Aborts a run and reports it cancelled at once (the agent may take a moment to notice). */
  #pairCancel(pairingId: string): boolean {
    const run = this.#runs.get(pairingId);
    if (run === undefined || run.finished) return false;
    run.controller.abort();
    this.#onPairingProgress(run, { type: 'failed', code: 'cancelled', message: 'pairing was cancelled' });
    return true;
  }

  // --- hosted gateway ----------------------------------------------------------------------------------------------

  #gatewayStatus(): ChannelResult<'gateway.status'> {
    const gateway = this.#gateway;
    const settings = this.#settings.gateway;
    const remote = gateway === null ? this.#remote : null;
    return {
      enabled: settings.enabled,
      running: gateway !== null,
      listen: gateway?.listen ?? settings.listen,
      name: gateway?.name ?? settings.name,
      ca_fingerprint: gateway?.caFingerprint ?? null,
      ca_pin: gateway?.caPin ?? null,
      mtls_required: gateway?.mtlsRequired ?? true,
      insecure_opt_out: gateway === null ? false : !gateway.mtlsRequired,
      state_dir: this.stateDir,
      key_location: gateway?.admin.keyLocation ?? null,
      error: this.#gatewayError,
      managed: gateway !== null ? 'hosted' : remote !== null ? 'remote' : 'local_state',
      remote_gateway: remote === null ? null : { address: remote.address, name: remote.name },
    };
  }

  #enqueueGatewayOp<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#gatewayOps.then(op, op);
    this.#gatewayOps = next.catch(() => undefined);
    return next;
  }

  async #configure(args: ParsedChannelArgs<'gateway.configure'>): Promise<ChannelResult<'gateway.configure'>> {
    // Checked before queueing, so a bad value fails at once and changes nothing.
    const listen = args.listen === undefined ? undefined : normalizeListen(args.listen.trim());
    const name = args.name === undefined ? undefined : normalizeName(args.name);
    return this.#enqueueGatewayOp(async () => {
      if (this.#disposed !== null) throw new PalyraError('unavailable', 'the app is shutting down');
      // Merged inside the queue: concurrent calls each change only what they name.
      const current = this.#settings.gateway;
      const next = { enabled: args.enabled, listen: listen ?? current.listen, name: name === undefined ? current.name : name };
      await this.#settingsFile.save({ ...this.#settings, gateway: next });
      this.#settings = { ...this.#settings, gateway: next };
      const started = this.#gatewayStartedWith;
      const unchanged = started !== null && started.listen === next.listen && started.name === next.name;
      if (!next.enabled || !unchanged) await this.#stopGateway();
      if (next.enabled && !unchanged) await this.#startGateway();
      if (!next.enabled) this.#gatewayError = null;
      // Hosting takes over from remote management; without it, this device may manage its remote gateway again.
      if (this.#gateway !== null) this.#endRemote();
      else await this.#evaluateRemote();
      const status = this.#gatewayStatus();
      this.#publish('gateway.status', status);
      return status;
    });
  }

  /** Starts the hosted gateway from the settings; a failure is kept in the status, not thrown. */
  async #startGateway(): Promise<void> {
    const { listen, name } = this.#settings.gateway;
    try {
      const gateway = await Gateway.start({
        stateDir: this.stateDir,
        listen: parseHostPort(listen, { allowPortZero: true }),
        name,
        insecureNodeRpcOptOut: false,
        allowServerGeneratedKeys: false,
        allowLegacyDeviceIds: false,
        keychain: this.#gatewayKeychain,
        log: (line) => {
          this.#log({ source: 'gateway', ...line });
        },
      });
      gateway.events.on('event', (event: GatewayEvent) => {
        this.#onGatewayEvent(event);
      });
      this.#gateway = gateway;
      this.#gatewayStartedWith = { listen, name };
      this.#gatewayError = null;
      this.#log({ event: 'gateway.started', listen: gateway.listen });
    } catch (error) {
      const e = toPalyraError(error);
      this.#gatewayError = { code: e.code, message: e.message };
      this.#log({ event: 'gateway.start_failed', code: e.code, message: e.message });
    }
  }

  async #stopGateway(): Promise<void> {
    const gateway = this.#gateway;
    if (gateway === null) return;
    this.#gateway = null;
    this.#gatewayStartedWith = null;
    gateway.events.removeAllListeners('event');
    await gateway.stop();
    this.#log({ event: 'gateway.stopped' });
  }

  /** The admin for a change: the hosted gateway's, else one on the state dir (created on first use, as the CLI does). */
  async #writeAdmin(): Promise<GatewayAdmin> {
    if (this.#gateway !== null) return this.#gateway.admin;
    this.#standaloneAdmin ??= GatewayAdmin.open({ stateDir: this.stateDir, keychain: this.#gatewayKeychain });
    let admin: GatewayAdmin;
    try {
      admin = await this.#standaloneAdmin;
    } catch (error) {
      this.#standaloneAdmin = null;
      throw error;
    }
    await admin.refresh();
    return admin;
  }

  /** The admin for a read; null when no gateway state exists yet (looking must not create a CA). */
  async #readAdmin(): Promise<GatewayAdmin | null> {
    if (this.#gateway !== null) return this.#gateway.admin;
    try {
      await stat(this.stateDir);
    } catch {
      return null;
    }
    return this.#writeAdmin();
  }

  async #mintCode(args: ParsedChannelArgs<'gateway.mintCode'>): Promise<ChannelResult<'gateway.mintCode'>> {
    const remote = this.#remoteAdmin();
    if (remote !== null) {
      // The remote gateway fills in its own addresses, name and CA pin.
      return this.#remoteCall(
        remote.mintCode({ method: args.method, kind: args.kind ?? null, ...(args.ttl_ms === undefined ? {} : { ttlMs: args.ttl_ms }), gatewayAddresses: [] }),
      );
    }
    const hosted = this.#gateway;
    const running = hosted === null ? await readRunningGateway(this.stateDir) : null;
    const listen = hosted?.listen ?? running?.listen ?? null;
    if (listen === null && args.method === 'qr') {
      throw new PalyraError('gateway_unreachable', 'no gateway is running, so there is no address for the QR code; turn on the gateway first');
    }
    const admin = await this.#writeAdmin();
    return admin.mintCode({
      method: args.method,
      kind: args.kind ?? null,
      ...(args.ttl_ms === undefined ? {} : { ttlMs: args.ttl_ms }),
      issuedBy: operatorName('desktop'),
      gatewayAddresses: listen === null ? [] : [advertisedAddress(listen).address],
      gatewayName: hosted?.name ?? running?.name ?? null,
    });
  }

  async #listDevices(): Promise<ChannelResult<'gateway.listDevices'>> {
    const remote = this.#remoteAdmin();
    if (remote !== null) {
      const listing = await this.#remoteCall(remote.listDevices());
      const online = new Set(listing.online_device_ids);
      return {
        devices: listing.devices.map((d) => ({ ...d, online: d.status === 'paired' && online.has(d.device_id) })),
        revoked_certificate_fingerprints: listing.revoked_certificate_fingerprints,
      };
    }
    const hosted = this.#gateway;
    const live = hosted?.liveNodes() ?? new Map<string, number>();
    let listing: { devices: DeviceView[]; revoked_certificate_fingerprints: string[] };
    if (hosted !== null) {
      listing = hosted.admin.listDevices(live);
    } else {
      const admin = await this.#readAdmin();
      listing = admin === null ? { devices: [], revoked_certificate_fingerprints: [] } : admin.listDevices();
    }
    return {
      devices: listing.devices.map((d) => ({ ...d, online: d.status === 'paired' && live.has(d.device_id) })),
      revoked_certificate_fingerprints: listing.revoked_certificate_fingerprints,
    };
  }

  /**
   * Grants or withdraws a paired device's admin role on the gateway state this app holds (the hosted gateway's, or
   * the state dir's). Only the gateway host may: as a remote admin this app refuses.
   */
  async #setAdmin(deviceId: string, granted: boolean): Promise<ChannelResult<'gateway.grantAdmin'>> {
    if (this.#remoteAdmin() !== null) throw new PalyraError('permission_denied', 'granting the admin role needs the gateway host (its state directory)');
    const admin = await this.#writeAdmin();
    const device = granted ? await admin.grantAdmin(deviceId) : await admin.revokeAdmin(deviceId);
    const online = device.status === 'paired' && (this.#gateway?.liveNodes().has(deviceId) ?? false);
    return { ...device, online };
  }

  // --- remote gateway (this device as an administrator) -----------------------------------------------------------

  /** The remote admin the operator channels use now, or null (hosted gateway or local state dir). */
  #remoteAdmin(): RemoteAdmin | null {
    return this.#gateway === null ? (this.#remote?.admin ?? null) : null;
  }

  /** A remote call; a refusal for lack of the role ends remote management at once. */
  async #remoteCall<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (error) {
      const e = toPalyraError(error);
      if (NOT_ADMIN_CODES.has(e.code)) void this.#evaluateRemote();
      throw e;
    }
  }

  /** Waits for a remote-admin probe at most REMOTE_PROBE_WAIT_MS (it goes on and publishes what it finds). */
  async #awaitRemoteProbe(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#evaluateRemote(), new Promise((resolve) => (timer = setTimeout(resolve, REMOTE_PROBE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Runs #probeRemote, one at a time; asking while one runs queues one more. Never rejects. */
  #evaluateRemote(): Promise<void> {
    if (this.#remoteCheck !== null) {
      this.#remoteCheckAgain = true;
      return this.#remoteCheck;
    }
    const check = (async () => {
      do {
        this.#remoteCheckAgain = false;
        try {
          await this.#probeRemote();
        } catch (error) {
          this.#log({ event: 'remote_admin.check_failed', code: toPalyraError(error).code });
        }
      } while (this.#wantsAnotherCheck());
    })();
    this.#remoteCheck = check;
    void check.finally(() => {
      if (this.#remoteCheck === check) this.#remoteCheck = null;
    });
    return check;
  }

  /** Whether #evaluateRemote was asked again while a check ran (read after an await, so not narrowed away). */
  #wantsAnotherCheck(): boolean {
    return this.#remoteCheckAgain && this.#disposed === null;
  }

  /**
   * Decides whether this device manages a remote gateway: hosted gateway off, device paired and not revoked, and a
   * ListDevices call over mTLS succeeds. Publishes gateway.status when the answer changes.
   */
  async #probeRemote(): Promise<void> {
    const before = this.#remote;
    if (this.#disposed !== null || this.#gateway !== null) {
      this.#endRemote();
    } else {
      const status = await this.agent.status();
      const state = status.paired && !status.revoked ? await this.agent.store.readState() : null;
      const certificate = state?.certificate_pem ?? null;
      if (certificate === null || status.gateway === null) {
        this.#endRemote();
      } else if (this.#remote === null || this.#remote.certificate !== certificate) {
        this.#endRemote();
        await this.#connectRemote(certificate, status.gateway_name);
      } else {
        // Established: the WatchEvents stream tells when the role is lost. Ask again only if the stream is down.
        if (this.#remote.watch === null && this.#remote.retryTimer === null) this.#watchRemote(this.#remote);
      }
    }
    if (this.#remote !== before && this.#disposed === null) this.#publish('gateway.status', this.#gatewayStatus());
  }

  async #connectRemote(certificate: string, name: string | null): Promise<void> {
    let admin: RemoteAdmin;
    try {
      admin = await connectRemoteAdminWithStore(this.agent.store, { callTimeoutMs: REMOTE_PROBE_TIMEOUT_MS });
    } catch (error) {
      this.#log({ event: 'remote_admin.unavailable', code: toPalyraError(error).code });
      return;
    }
    try {
      await admin.listDevices();
    } catch (error) {
      admin.close();
      const code = toPalyraError(error).code;
      this.#log({ event: NOT_ADMIN_CODES.has(code) ? 'remote_admin.not_admin' : 'remote_admin.unreachable', code, address: admin.address });
      return;
    }
    if (this.#disposed !== null || this.#gateway !== null) {
      admin.close();
      return;
    }
    const session: RemoteSession = { admin, address: admin.address, name, certificate, watch: null, retryTimer: null, retries: 0 };
    this.#remote = session;
    this.#log({ event: 'remote_admin.started', address: admin.address });
    this.#watchRemote(session);
  }

  /** Opens the WatchEvents stream of the session; reconnects with backoff, ends the session when the role is lost. */
  #watchRemote(session: RemoteSession): void {
    session.retryTimer = null;
    if (this.#remote !== session) return;
    session.watch = session.admin.watchEvents({
      onOpen: () => {
        const reconnected = session.retries > 0;
        session.retries = 0;
        // Events may have been missed while the stream was down: the views reload on a status publication.
        if (reconnected && this.#remote === session) this.#publish('gateway.status', this.#gatewayStatus());
      },
      onEvent: (event) => {
        if (this.#remote === session && this.#gateway === null) this.#onGatewayEvent(event);
      },
      onEnd: (error) => {
        session.watch = null;
        if (this.#remote !== session) return;
        if (NOT_ADMIN_CODES.has(error.code)) {
          this.#log({ event: 'remote_admin.role_lost', code: error.code });
          this.#endRemote();
          this.#publish('gateway.status', this.#gatewayStatus());
          return;
        }
        const delay = Math.min(WATCH_RETRY_MAX_MS, WATCH_RETRY_MIN_MS * 2 ** session.retries);
        session.retries++;
        this.#log({ event: 'remote_admin.watch_lost', code: error.code, retry_in_ms: delay });
        session.retryTimer = setTimeout(() => {
          this.#watchRemote(session);
        }, delay);
        session.retryTimer.unref();
      },
    });
  }

  /** Stops managing the remote gateway (no publication; the caller publishes). */
  #endRemote(): void {
    const session = this.#remote;
    if (session === null) return;
    this.#remote = null;
    if (session.retryTimer !== null) clearTimeout(session.retryTimer);
    session.watch?.cancel();
    session.watch = null;
    session.admin.close();
    this.#log({ event: 'remote_admin.ended', address: session.address });
  }
}

/** Runs a synchronous handler body as a promise, so a throw becomes a rejection. */
function settle<T>(body: () => T): Promise<T> {
  return new Promise((resolve) => {
    resolve(body());
  });
}

/** The agent's status in the contract's shape (extra fields dropped by the result schema anyway). */
function deviceStatusView(status: AgentStatus): ChannelResult<'device.status'> {
  return {
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


/** This package's version, from the nearest package.json named palyra-desktop above this module (src or dist). */
async function packageVersion(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here; look further up.
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}
