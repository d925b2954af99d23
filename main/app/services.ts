/**
 * DesktopServices: what the main process does for the renderer, behind every channel of the IPC contract and
 * publishing every event of it. Transport-free: Electron's ipcMain and the browser-mode host both drive `handlers`
 * (through the IpcRouter) and forward `onEvent`.
 *
 * It owns one DeviceAgent (this machine as a device, in the device dir), its pairing runs (pairing-runs.ts), the
 * gateway it may host on the state dir (hosted-gateway.ts; `<userData>/settings.json` remembers that choice) and,
 * when this device administers the gateway it is paired with, the remote session (remote-admin-session.ts). The
 * gateway channels act on one AdminTarget: the hosted gateway's state when it runs; else the remote gateway when
 * this device administers one; else the state dir as the CLI does (another process may run its gateway).
 *
 * Logs carry event names, channel names, error codes and addresses, never codes, tokens, URIs or key material.
 */

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdminTarget } from '../admin/admin-target.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { DeviceAgent } from '../device/device-agent.js';
import type { AgentEvent } from '../device/device-agent.js';
import type { KeychainMode } from '../device/device-store.js';
import { discoverGateways } from '../gateway/discovery.js';
import type { Gateway, GatewayEvent } from '../gateway/gateway.js';
import type { ChannelResult } from '../ipc/contract.js';
import type { Keychain } from '../store/keychain.js';
import { createChannelHandlers, deviceStatusView, revokedReasonOf } from './channel-handlers.js';
import { FirstRunFile } from './first-run.js';
import { DATABASE_SECRETS_DIR } from './hosted-database.js';
import { HostedGateway } from './hosted-gateway.js';
import type { ChannelHandlers, IpcLog, ParsedChannelArgs } from './ipc-router.js';
import { PairingRuns, isPairingProgress } from './pairing-runs.js';
import { EventHub } from './publish.js';
import type { Listener } from './publish.js';
import { RemoteAdminSession } from './remote-admin-session.js';
import { defaultSettings, SettingsFile } from './settings.js';
import { installNodeCrypto } from '../platform/node-crypto.js';
import type { AppSettings } from './settings.js';

export const APP_NAME = 'Palyra Desktop';
/** The package whose version app.info reports. */
const PACKAGE_NAME = 'palyra-desktop';
/** dispose() waits this long for pairing runs to notice their cancellation (a long poll may hold one 25 s). */
const DISPOSE_PAIRING_WAIT_MS = 1_500;
/** `palyra://pair?…` links the app accepts from the OS (deep links). */
const DEEP_LINK_PREFIX = 'palyra://pair?';

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
  /** 'off': no multicast DNS from this app (discovery.list fails with `unavailable`); default: env PALYRA_DISCOVERY. */
  discovery?: 'multicast' | 'off';
}

export class DesktopServices {
  readonly userDataDir: string;
  readonly stateDir: string;
  readonly deviceDir: string;
  readonly mode: 'electron' | 'browser';
  readonly handlers: ChannelHandlers;
  readonly agent: DeviceAgent;
  readonly #version: string;
  readonly #log: IpcLog;
  readonly #hub: EventHub;
  readonly #pairing: PairingRuns;
  readonly #hosted: HostedGateway;
  readonly #remote: RemoteAdminSession;
  /** Coalesces device.status publications: one read at a time, one more queued. */
  #statusRefresh: Promise<void> | null = null;
  #statusAgain = false;
  #unsubscribeAgent: () => void = () => undefined;
  #disposed: Promise<void> | null = null;

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
    const options = o.options;
    this.userDataDir = o.userDataDir;
    this.#firstRunFile = new FirstRunFile(o.userDataDir);
    this.stateDir = o.stateDir;
    this.deviceDir = o.deviceDir;
    this.mode = options.mode;
    this.agent = o.agent;
    this.#version = o.version;
    const log = options.log ?? (() => undefined);
    this.#log = log;
    this.#hub = new EventHub(log);
    const publish = this.#hub.publish;
    const isDisposed = (): boolean => this.#disposed !== null;
    const gatewayKeychain = options.gatewayKeychain !== undefined ? options.gatewayKeychain : options.keychain === 'os' ? (options.osKeychain ?? null) : null;
    this.#hosted = new HostedGateway({
      stateDir: o.stateDir,
      keychain: gatewayKeychain,
      databaseDir: path.join(o.userDataDir, DATABASE_SECRETS_DIR),
      settingsFile: o.settingsFile,
      settings: o.settings,
      log,
      onEvent: (event) => {
        this.#onGatewayEvent(event);
      },
    });
    this.#remote = new RemoteAdminSession({
      agent: o.agent,
      log,
      isHosting: () => this.#hosted.gateway !== null,
      isDisposed,
      onChange: () => {
        publish('gateway.status', this.#status());
      },
      onEvent: (event) => {
        this.#onGatewayEvent(event);
      },
    });
    this.#pairing = new PairingRuns({
      agent: o.agent,
      clock: options.clock ?? Date.now,
      log,
      publish,
      isDisposed,
      onFinished: () => {
        this.#refreshStatus();
      },
      onPaired: () => void this.#remote.evaluate(),
      startAgentIfPaired: () => this.#startAgentIfPaired(),
    });
    this.handlers = createChannelHandlers({
      agent: o.agent,
      pairing: this.#pairing,
      log,
      appInfo: () => this.#appInfo(),
      target: () => this.#target(),
      isOnline: (deviceId) => this.#hosted.isOnline(deviceId),
      gatewayStatus: async () => {
        if (this.#hosted.gateway === null && this.#remote.current === null) await this.#remote.awaitProbe();
        return this.#status();
      },
      configure: (args) => this.#configure(args),
      afterUnpair: async () => {
        this.#refreshStatus();
        await this.#remote.evaluate();
      },
      reconnect: () => this.#reconnectDevice(),
      firstRun: () => this.#firstRun(),
      chooseStart: async (choice) => {
        await this.#firstRunFile.save(choice, Date.now());
        this.#log({ event: 'app.start_chosen', choice });
        return this.#firstRun();
      },
      discover: (timeoutMs) => {
        if ((options.discovery ?? (process.env.PALYRA_DISCOVERY === 'off' ? 'off' : 'multicast')) === 'off') {
          return Promise.reject(new PalyraError('unavailable', 'finding gateways nearby is turned off here (PALYRA_DISCOVERY=off); enter the address'));
        }
        return discoverGateways({ timeoutMs });
      },
    });
  }

  /** Loads the settings, opens the device agent, and starts the hosted gateway when it is enabled. */
  static async open(options: DesktopServicesOptions): Promise<DesktopServices> {
    // The desktop app's main process runs the crypto fast path (same answers as @noble, main/core/crypto.ts).
    installNodeCrypto();
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
    if (settingsError !== null) services.#hosted.error = { code: settingsError.code, message: settingsError.message };
    services.#unsubscribeAgent = agent.on((event) => {
      services.#onAgentEvent(event);
    });
    // The hosted gateway first: this device may be paired with it.
    await services.#hosted.startIfEnabled();
    await services.#startAgentIfPaired();
    void services.#remote.evaluate();
    services.#remote.startRecheck();
    return services;
  }

  /** The hosted gateway while it runs. */
  get gateway(): Gateway | null {
    return this.#hosted.gateway;
  }

  /** Subscribes to every event of the contract; returns the unsubscribe function. */
  onEvent(listener: Listener): () => void {
    return this.#hub.on(listener);
  }

  /** A `palyra://pair` link the OS handed to the app: the UI asks the user before pairing with it. */
  deepLink(uri: string): void {
    if (!uri.toLowerCase().startsWith(DEEP_LINK_PREFIX) || uri.length > 2048) {
      this.#log({ event: 'app.deep_link_ignored' });
      return;
    }
    this.#hub.publish('app.deepLink', { uri });
  }

  /** The shell asks the UI to show the approval view (a notification or tray click); null = the list. */
  openRequests(requestId: string | null): void {
    this.#hub.publish('app.openRequests', { request_id: requestId });
  }

  /** Cancels pairing runs, stops the device agent and the hosted gateway. Idempotent. */
  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      this.#unsubscribeAgent();
      const runs = this.#pairing.abortAll(DISPOSE_PAIRING_WAIT_MS);
      await Promise.allSettled([this.agent.stop(), this.#hosted.stop(), this.#remote.dispose()]);
      await runs;
      this.#hub.clear();
    })();
    return this.#disposed;
  }

  /** The one place that decides where the gateway channels act. */
  #target(): AdminTarget {
    if (this.#hosted.gateway !== null) return this.#hosted.local;
    return this.#remote.current?.target ?? this.#hosted.local;
  }

  #status(): ChannelResult<'gateway.status'> {
    return this.#hosted.status(this.#remote.current);
  }

  #configure(args: ParsedChannelArgs<'gateway.configure'>): Promise<ChannelResult<'gateway.configure'>> {
    return this.#hosted.configure(args, {
      isDisposed: () => this.#disposed !== null,
      after: async () => {
        // Hosting takes over from remote management; without it, this device may manage its remote gateway again.
        if (this.#hosted.gateway !== null) this.#remote.end();
        else await this.#remote.evaluate();
        const status = this.#status();
        this.#hub.publish('gateway.status', status);
        return status;
      },
    });
  }

  #onGatewayEvent(event: GatewayEvent): void {
    this.#hub.publish('gateway.event', event);
  }

  #onAgentEvent(event: AgentEvent): void {
    if (isPairingProgress(event)) {
      // Outside a pairing, 'failed' is the connected mode giving up (it is logged by the agent).
      if (!this.#pairing.onAgentProgress(event)) this.#log({ event: 'device.agent_stopped', code: event.type === 'failed' ? event.code : event.type });
    } else {
      this.#hub.publish('device.event', event);
      // Pairing state or reachability changed: whether this device administers a remote gateway may have too.
      if ((event.type === 'connection' && event.state === 'online') || event.type === 'renewed' || event.type === 'revoked' || event.type === 'reauth_required' || event.type === 'unpaired') {
        void this.#remote.evaluate();
      }
    }
    this.#refreshStatus();
  }

  /** Publishes device.status from a fresh read; calls while one runs are coalesced into one more read. */
  #refreshStatus(): void {
    if (this.#statusRefresh !== null) {
      this.#statusAgain = true;
      return;
    }
    this.#statusRefresh = Promise.all([this.agent.status(), revokedReasonOf(this.agent)])
      .then(([status, reason]) => {
        if (this.#disposed === null) this.#hub.publish('device.status', deviceStatusView(status, reason));
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

  readonly #firstRunFile: FirstRunFile;

  /** Whether to ask "Join a gateway" / "Host a gateway here" (app.firstRun). */
  async #firstRun(): Promise<ChannelResult<'app.firstRun'>> {
    const choice = await this.#firstRunFile.load();
    if (choice !== null) return { choice, needed: false };
    const device = await this.agent.status();
    return { choice: null, needed: !device.paired && !device.revoked && !this.#status().enabled };
  }

  #reconnecting: Promise<ChannelResult<'device.reconnect'>> | null = null;

  /**
   * "Reconnect now": a paired device that is not online restarts its connected mode, so it dials the gateway at once
   * with a fresh backoff (its waits start again from the first step). Online already: nothing to do (`reconnecting:
   * false`). Not paired: `device_not_paired`; revoked: `device_revoked`; while a pairing runs: `unavailable`. Calls
   * made while one is in progress share it.
   */
  #reconnectDevice(): Promise<ChannelResult<'device.reconnect'>> {
    if (this.#reconnecting !== null) return this.#reconnecting;
    const run = this.#reconnectOnce().finally(() => {
      this.#reconnecting = null;
    });
    this.#reconnecting = run;
    return run;
  }

  async #reconnectOnce(): Promise<ChannelResult<'device.reconnect'>> {
    // Functions, so the checks after each await are not narrowed away.
    const disposed = (): boolean => this.#disposed !== null;
    const pairing = (): boolean => this.#pairing.active;
    if (disposed()) throw new PalyraError('unavailable', 'the app is shutting down');
    if (pairing()) throw new PalyraError('unavailable', 'a pairing is in progress; reconnect once it has ended');
    const status = await this.agent.status();
    if (status.revoked) throw new PalyraError('device_revoked', 'this device is revoked by its gateway; it cannot reconnect');
    if (!status.paired) throw new PalyraError('device_not_paired', 'this device is not paired; pair it with a gateway first');
    if (status.connection === 'online') return { reconnecting: false };
    this.#log({ event: 'device.reconnect_now', from: status.connection });
    await this.agent.stop();
    if (disposed() || pairing()) return { reconnecting: false };
    this.agent.start();
    return { reconnecting: true };
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
      host_name: os.hostname(),
    };
  }
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
