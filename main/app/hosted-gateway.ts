/**
 * The gateway the desktop app hosts on its state dir when the user turns it on (settings.json remembers the
 * choice), and the local AdminTarget over that state dir, which works whether the hosted gateway runs, another
 * process runs one, or none does (the CLI's way too). Start, stop and reconfigure are serialised.
 */

import { stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { LocalAdminTarget } from '../admin/local-admin.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { formatHostPort, parseHostPort } from '../core/net-address.js';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayEvent } from '../gateway/gateway.js';
import { GatewayAdmin } from '../gateway/gateway-admin.js';
import { readRunningGateway } from '../gateway/gateway-info.js';
import type { ChannelResult } from '../ipc/contract.js';
import { operatorName } from '../platform/operator.js';
import { ensurePrivateDir } from '../store/atomic-file.js';
import type { Keychain } from '../store/keychain.js';
import { redactDatabaseUrl, validateDatabaseUrl } from '../store/pg/pg-errors.js';
import type { PgStateLocation } from '../store/pg/pg-open.js';
import { DATABASE_SECRETS_DIR, HostedDatabaseSecret } from './hosted-database.js';
import type { IpcLog, ParsedChannelArgs } from './ipc-router.js';
import { listenFor, networkOf, normalizeListen, normalizeName } from './settings.js';
import type { AppSettings, GatewaySettings, SettingsFile } from './settings.js';

/** Whether this machine can bind a dual-stack IPv6 wildcard socket (`[::]` accepting IPv4 too). */
function dualStackAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => {
      resolve(false);
    });
    probe.listen({ port: 0, host: '::', ipv6Only: false }, () => {
      probe.close(() => {
        resolve(true);
      });
    });
  });
}

/** The address actually bound: `0.0.0.0` (every interface) becomes dual-stack `[::]` where IPv6 is available. */
async function bindAddress(listen: string): Promise<string> {
  const parsed = parseHostPort(listen, { allowPortZero: true });
  if (parsed.host !== '0.0.0.0' || !(await dualStackAvailable())) return listen;
  return formatHostPort({ host: '::', port: parsed.port });
}

function sameSettings(a: GatewaySettings, b: GatewaySettings): boolean {
  return a.listen === b.listen && a.name === b.name && (a.announce ?? true) === (b.announce ?? true) && (a.database ?? null) === (b.database ?? null);
}

export interface HostedGatewayOptions {
  readonly stateDir: string;
  /** The OS keychain for the store key; null = key file in the state dir. */
  readonly keychain: Keychain | null;
  readonly settingsFile: SettingsFile;
  readonly settings: AppSettings;
  /**
   * Where a PostgreSQL-hosted gateway keeps what is not in the database: the URL's sealed record (key-file mode), the
   * database's store key file (key-file mode) and its local directory (`state/`: published CRL, running-gateway
   * file), apart from the file backend's state dir, which stays as it was. Default `<stateDir>/../gateway-database`.
   */
  readonly databaseDir?: string;
  readonly log: IpcLog;
  readonly onEvent: (event: GatewayEvent) => void;
}

export class HostedGateway {
  readonly stateDir: string;
  /** The local admin target over the state dir (the hosted gateway's admin while it runs). */
  readonly local: LocalAdminTarget;
  readonly #o: HostedGatewayOptions;
  #settings: AppSettings;
  #gateway: Gateway | null = null;
  /** The settings the running gateway was started with (port 0 stays 0 here). */
  #startedWith: GatewaySettings | null = null;
  /** The CA of the state directory as the hosted gateway last reported it (it stays when the gateway stops). */
  #knownCa: { fingerprint: string; pin: string } | null = null;
  #error: { code: string; message: string } | null = null;
  #standaloneAdmin: Promise<GatewayAdmin> | null = null;
  /** A read's open of the database's existing state, while in flight. */
  #existingPg: Promise<GatewayAdmin | null> | null = null;
  /** The database URL of the current settings (read from the keychain once); undefined = not read yet. */
  #databaseUrl: string | null | undefined = undefined;
  readonly #secret: HostedDatabaseSecret;
  #ops: Promise<unknown> = Promise.resolve();

  constructor(options: HostedGatewayOptions) {
    this.#o = options;
    this.stateDir = options.stateDir;
    this.#settings = options.settings;
    this.#secret = new HostedDatabaseSecret({
      dir: options.databaseDir ?? path.join(path.dirname(path.resolve(options.stateDir)), DATABASE_SECRETS_DIR),
      stateDir: options.stateDir,
      keychain: options.keychain,
    });
    this.local = new LocalAdminTarget(
      {
        stateDir: options.stateDir,
        forWrite: () => this.#writeAdmin(),
        forRead: () => this.#readAdmin(),
        runningGateway: async () => {
          const hosted = this.#gateway;
          if (hosted !== null) return { listen: hosted.listen, name: hosted.name };
          const running = await readRunningGateway(this.stateDir);
          return running === null ? null : { listen: running.listen, name: running.name ?? null };
        },
        liveNodes: () => this.#gateway?.liveNodes() ?? new Map<string, number>(),
      },
      { issuedBy: operatorName('desktop'), noGatewayHint: 'turn on the gateway first' },
    );
  }

  /** The hosted gateway while it runs. */
  get gateway(): Gateway | null {
    return this.#gateway;
  }

  /** Why the gateway is not running as configured (a start failure, an unreadable settings file). */
  set error(error: { code: string; message: string } | null) {
    this.#error = error;
  }

  /** Whether the device has a live stream to the hosted gateway. */
  isOnline(deviceId: string): boolean {
    return this.#gateway?.liveNodes().has(deviceId) ?? false;
  }

  status(remote: { address: string; name: string | null } | null): ChannelResult<'gateway.status'> {
    const gateway = this.#gateway;
    const settings = this.#settings.gateway;
    const shownRemote = gateway === null ? remote : null;
    return {
      enabled: settings.enabled,
      running: gateway !== null,
      listen: gateway?.listen ?? settings.listen,
      name: gateway?.name ?? settings.name,
      // The CA outlives the gateway process: once known, it is shown while the gateway is off too.
      ca_fingerprint: gateway?.caFingerprint ?? this.#knownCa?.fingerprint ?? null,
      ca_pin: gateway?.caPin ?? this.#knownCa?.pin ?? null,
      mtls_required: gateway?.mtlsRequired ?? true,
      insecure_opt_out: gateway === null ? false : !gateway.mtlsRequired,
      state_dir: this.stateDir,
      key_location: gateway?.admin.keyLocation ?? null,
      rollback_protection: gateway?.admin.rollbackProtection ?? null,
      error: this.#error,
      managed: gateway !== null ? 'hosted' : shownRemote !== null ? 'remote' : 'local_state',
      remote_gateway: shownRemote === null ? null : { address: shownRemote.address, name: shownRemote.name },
      network: networkOf(settings.listen),
      addresses: gateway?.addresses ?? [],
      announced: gateway !== null && gateway.announcedAs !== null,
      announce: settings.announce ?? true,
      backend: settings.database === undefined || settings.database === null ? 'file' : 'postgres',
      database: settings.database ?? null,
    };
  }

  /** The local directory of the PostgreSQL-hosted gateway (CRL, running-gateway file), created on first use. */
  async #databaseStateDir(): Promise<string> {
    const dir = path.join(this.#secret.dir, 'state');
    await ensurePrivateDir(dir);
    return dir;
  }

  /** The configured PostgreSQL state, or null for the file backend; the URL comes from the keychain / secret store. */
  async #database(): Promise<PgStateLocation | null> {
    const redacted = this.#settings.gateway.database ?? null;
    if (redacted === null) return null;
    this.#databaseUrl ??= await this.#secret.expect(redacted);
    return await this.#secret.location(this.#databaseUrl);
  }

  /**
   * Opens (creating on first use, as starting would) the state in `url` and closes it again: an unreachable server, a
   * refused login, a missing database or a wrong store key fails here, before anything is changed.
   */
  async #checkDatabase(url: string): Promise<void> {
    const admin = await GatewayAdmin.openPg({ database: await this.#secret.location(url), stateDir: await this.#databaseStateDir(), keychain: this.#o.keychain });
    await admin.close();
  }

  /** Drops the admin opened on the state while no gateway ran (the backend changed). */
  async #dropStandaloneAdmin(): Promise<void> {
    const standalone = this.#standaloneAdmin;
    this.#standaloneAdmin = null;
    if (standalone === null) return;
    const admin = await standalone.catch(() => null);
    await admin?.close().catch(() => undefined);
  }

  /** Runs `op` after every earlier start/stop/configure. */
  enqueue<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#ops.then(op, op);
    this.#ops = next.catch(() => undefined);
    return next;
  }

  /** Starts the gateway if the settings say so (at app start). */
  startIfEnabled(): Promise<void> {
    return this.#settings.gateway.enabled ? this.enqueue(() => this.#start()) : Promise.resolve();
  }

  /** Stops the gateway and closes the admin opened while none ran (at app exit: a database pool must not linger). */
  stop(): Promise<void> {
    return this.enqueue(async () => {
      await this.#stop();
      await this.#dropStandaloneAdmin();
    });
  }

  /**
   * Saves the new settings and starts, stops or restarts the gateway to match; `after` runs inside the queue once
   * the gateway is in its new state. Values are checked before queueing, so a bad one fails at once, changing nothing.
   */
  async configure<T>(args: ParsedChannelArgs<'gateway.configure'>, o: { isDisposed: () => boolean; after: () => Promise<T> }): Promise<T> {
    const listen = args.listen === undefined ? undefined : normalizeListen(args.listen.trim());
    const name = args.name === undefined ? undefined : normalizeName(args.name);
    if (listen !== undefined && args.network !== undefined && networkOf(listen) !== args.network) {
      throw new PalyraError('invalid_argument', `listen ${listen} does not match network '${args.network}' (${args.network === 'local' ? 'loopback' : 'beyond loopback'} expected)`);
    }
    const databaseUrl = args.database_url;
    if (databaseUrl !== undefined && databaseUrl !== null) validateDatabaseUrl(databaseUrl);
    return this.enqueue(async () => {
      if (o.isDisposed()) throw new PalyraError('unavailable', 'the app is shutting down');
      // Merged inside the queue: concurrent calls each change only what they name.
      const current = this.#settings.gateway;
      const chosen = listen ?? current.listen;
      const next: GatewaySettings = {
        enabled: args.enabled,
        listen: args.network === undefined ? chosen : listenFor(chosen, args.network),
        name: name === undefined ? current.name : name,
      };
      const announce = args.announce ?? current.announce;
      if (announce !== undefined) next.announce = announce;
      const currentDatabase = current.database ?? null;
      let databaseChanged = false;
      // The stored URL, to tell a new password from the same URL (read only when a URL is given).
      const known = currentDatabase === null || typeof databaseUrl !== 'string' ? null : await this.#secret.read().catch(() => null);
      if (databaseUrl === undefined || (databaseUrl === null && currentDatabase === null)) {
        if (currentDatabase !== null) next.database = currentDatabase;
      } else if (databaseUrl === null) {
        databaseChanged = true;
      } else {
        if (known !== databaseUrl) {
          try {
            await this.#checkDatabase(databaseUrl);
          } catch (error) {
            // Nothing changed: the settings, the stored URL and the running gateway stay as they were.
            const e = toPalyraError(error);
            this.#error = { code: e.code, message: e.message };
            this.#o.log({ event: 'gateway.database_refused', code: e.code, message: e.message });
            return o.after();
          }
          databaseChanged = true;
        }
        next.database = redactDatabaseUrl(databaseUrl);
      }
      // The URL is stored before settings.json names it, and forgotten only after settings.json stopped naming it.
      const storeUrl = databaseChanged && typeof databaseUrl === 'string';
      if (storeUrl) await this.#secret.write(databaseUrl);
      try {
        await this.#o.settingsFile.save({ ...this.#settings, gateway: next });
      } catch (error) {
        // settings.json still names the old database (or none): the stored URL goes back to match it.
        if (storeUrl) await (known === null ? this.#secret.clear() : this.#secret.write(known)).catch(() => undefined);
        throw error;
      }
      this.#settings = { ...this.#settings, gateway: next };
      if (databaseChanged) {
        this.#databaseUrl = databaseUrl ?? null;
        // Another state: another CA, and the admin opened on the old one must not serve the new one.
        this.#knownCa = null;
        await this.#dropStandaloneAdmin();
        if (databaseUrl === null) await this.#secret.clear().catch(() => undefined);
      }
      // A password change keeps the redacted form: the running gateway still restarts on the new URL.
      const forceRestart = databaseChanged;
      // A changed network or announce restarts the listener on the same state dir: pairings stay.
      const started = this.#startedWith;
      const unchanged = started !== null && sameSettings(started, next) && !forceRestart;
      if (!next.enabled || !unchanged) await this.#stop();
      if (next.enabled && !unchanged) await this.#start();
      // Off, or running as configured: an earlier failure (a refused database) is over.
      if (!next.enabled || unchanged) this.#error = null;
      return o.after();
    });
  }

  /** A failure is kept in the status, not thrown. */
  async #start(): Promise<void> {
    const settings = this.#settings.gateway;
    const { listen, name } = settings;
    const log = this.#o.log;
    try {
      const database = await this.#database();
      const gateway = await Gateway.start({
        stateDir: database === null ? this.stateDir : await this.#databaseStateDir(),
        database,
        listen: parseHostPort(await bindAddress(listen), { allowPortZero: true }),
        name,
        // Devices on the network find it without typing an address; on loopback nobody else could dial it anyway.
        announce: networkOf(listen) === 'lan' && settings.announce !== false,
        insecureNodeRpcOptOut: false,
        allowServerGeneratedKeys: false,
        allowLegacyDeviceIds: false,
        keychain: this.#o.keychain,
        log: (line) => {
          log({ source: 'gateway', ...line });
        },
      });
      gateway.events.on('event', (event: GatewayEvent) => {
        this.#o.onEvent(event);
      });
      this.#gateway = gateway;
      this.#knownCa = { fingerprint: gateway.caFingerprint, pin: gateway.caPin };
      this.#startedWith = { ...settings };
      this.#error = null;
      log({ event: 'gateway.started', listen: gateway.listen, backend: gateway.admin.backendKind });
    } catch (error) {
      const e = toPalyraError(error);
      this.#error = { code: e.code, message: e.message };
      log({ event: 'gateway.start_failed', code: e.code, message: e.message });
    }
  }

  async #stop(): Promise<void> {
    const gateway = this.#gateway;
    if (gateway === null) return;
    this.#gateway = null;
    this.#startedWith = null;
    gateway.events.removeAllListeners('event');
    await gateway.stop();
    this.#o.log({ event: 'gateway.stopped' });
  }

  /** The admin for a change: the hosted gateway's, else one on the state (created on first use, as the CLI does). */
  async #writeAdmin(): Promise<GatewayAdmin> {
    if (this.#gateway !== null) return this.#gateway.admin;
    this.#standaloneAdmin ??= this.#openStandalone();
    const opening = this.#standaloneAdmin;
    let admin: GatewayAdmin;
    try {
      admin = await opening;
    } catch (error) {
      if (this.#standaloneAdmin === opening) this.#standaloneAdmin = null;
      throw error;
    }
    await admin.refresh();
    return admin;
  }

  async #openStandalone(): Promise<GatewayAdmin> {
    const database = await this.#database();
    if (database === null) return GatewayAdmin.open({ stateDir: this.stateDir, keychain: this.#o.keychain });
    return GatewayAdmin.openPg({ database, stateDir: await this.#databaseStateDir(), keychain: this.#o.keychain });
  }

  /** The admin for a read; null when no gateway state exists yet (looking must not create a CA). */
  async #readAdmin(): Promise<GatewayAdmin | null> {
    if (this.#gateway !== null) return this.#gateway.admin;
    if (this.#standaloneAdmin !== null) return this.#writeAdmin();
    if ((this.#settings.gateway.database ?? null) !== null) {
      // A look at a database that holds no state yet creates none (no CA); concurrent looks share one open.
      this.#existingPg ??= this.#openExistingPg().finally(() => {
        this.#existingPg = null;
      });
      const existing = await this.#existingPg;
      return existing === null ? null : this.#writeAdmin();
    }
    try {
      await stat(this.stateDir);
    } catch {
      return null;
    }
    return this.#writeAdmin();
  }

  /** The database's existing state as the standalone admin (kept, unless the backend changed meanwhile), or null. */
  async #openExistingPg(): Promise<GatewayAdmin | null> {
    const database = await this.#database();
    if (database === null) return null;
    const existing = await GatewayAdmin.openExistingPg({ database, stateDir: await this.#databaseStateDir(), keychain: this.#o.keychain });
    if (existing === null) return null;
    if (this.#standaloneAdmin === null && this.#settings.gateway.database === redactDatabaseUrl(database.databaseUrl) && this.#databaseUrl === database.databaseUrl) {
      this.#standaloneAdmin = Promise.resolve(existing);
    } else {
      await existing.close();
    }
    return existing;
  }
}
