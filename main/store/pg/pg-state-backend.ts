/**
 * StateBackend over PostgreSQL: several gateways (and CLIs) on one database behave as one state.
 *
 * A mutation is one transaction: the state lock (pg_advisory_xact_lock, shared by every replica), a reload of the
 * documents another process changed (their row `version` differs from what this process loaded), the plan on
 * that fresh state, the new snapshot row and the audit rows, and `pg_notify('palyra_state', '<doc>:<version>')`.
 * All of it commits or none: no redo step, no lost update (the lock), no double approval (the planner sees the
 * other replica's committed decision). A failed commit leaves memory reloaded from the database at the next use.
 *
 * A LISTEN connection turns other processes' notifications into a refresh and `onExternalChange`; when it drops it
 * reconnects with backoff and resyncs everything (a notification sent while it was away is not lost: the versions
 * are compared, not the notifications counted). The gateway's poll also calls `refresh`, a one-query check.
 */

import pg from 'pg';
import { toPalyraError } from '../../core/errors.js';
import { prepareAuditEntries } from '../audit-log.js';
import type { ExclusiveSection, Planner, StateBackend } from '../state-backend.js';
import type { JournaledState } from '../state-journal.js';
import type { PgAuditLog } from './pg-audit-log.js';
import type { PgContext } from './pg-context.js';
import { PG_CONNECT_TIMEOUT_MS } from './pg-context.js';
import { NOTIFY_CHANNEL } from './pg-schema.js';
import { PgReplicas } from './pg-replicas.js';
import type { PgSecretStore } from './pg-secret-store.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- documents of any state and operation type
type AnyDoc = JournaledState<any, any>;

const RECONNECT_MIN_MS = 200;
const RECONNECT_MAX_MS = 5_000;

export interface PgStateBackendOptions {
  readonly db: PgContext;
  readonly store: PgSecretStore;
  readonly audit: PgAuditLog;
  readonly clock?: () => number;
}

export class PgStateBackend implements StateBackend {
  readonly kind = 'postgres' as const;
  /** The database is the source of truth; rollback protection is the database's (backups, access control). */
  readonly rollbackProtection = 'none' as const;
  readonly audit: PgAuditLog;
  readonly #db: PgContext;
  readonly #store: PgSecretStore;
  readonly #clock: () => number;
  readonly #docs: AnyDoc[] = [];
  /** The row version each document was last loaded at. */
  readonly #versions = new Map<string, number>();
  readonly #changeListeners = new Set<(names: ReadonlySet<string>) => void>();
  /** In-process order of transactions (one at a time; replicas are serialised by the advisory lock). */
  #queue: Promise<unknown> = Promise.resolve();
  #batches = 0;
  #listener: pg.Client | null = null;
  #listening = false;
  #reconnectMs = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;
  #closed = false;
  /** Times the notification connection was (re)established (tests and status). */
  listenConnects = 0;
  /** The replicas seen on this database (a gateway registers itself; anyone may list the live ones). */
  readonly replicas: PgReplicas;

  constructor(options: PgStateBackendOptions) {
    this.#db = options.db;
    this.#store = options.store;
    this.audit = options.audit;
    this.#clock = options.clock ?? Date.now;
    this.replicas = new PgReplicas(options.db);
  }

  get commitBatches(): number {
    return this.#batches;
  }

  register(doc: AnyDoc): void {
    if (!this.#docs.includes(doc)) this.#docs.push(doc);
  }

  onExternalChange(listener: (names: ReadonlySet<string>) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #notify(changed: ReadonlySet<string>): void {
    if (changed.size === 0 || this.#changeListeners.size === 0) return;
    queueMicrotask(() => {
      for (const listener of [...this.#changeListeners]) listener(changed);
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Reloads the documents whose row changed since this process loaded them; returns the names that changed. */
  async #load(docs: readonly AnyDoc[]): Promise<Set<string>> {
    const changed = new Set<string>();
    if (docs.length === 0) return changed;
    const versions = await this.#store.versions(docs.map((d) => d.name));
    for (const doc of docs) {
      const version = versions.get(doc.name) ?? 0;
      if (doc.loaded && this.#versions.get(doc.name) === version) continue;
      const before = doc.loaded ? doc.generation : null;
      await doc.refresh();
      this.#versions.set(doc.name, version);
      if (before === null || doc.generation !== before) changed.add(doc.name);
    }
    return changed;
  }

  #invalidate(docs: readonly AnyDoc[]): void {
    for (const doc of docs) {
      doc.invalidate();
      this.#versions.delete(doc.name);
    }
  }

  /** In the queue like mutations: a reload must not replace state a mutation has staged but not committed. */
  refresh(): Promise<ReadonlySet<string>> {
    return this.#serial(async () => {
      const changed = await this.#load(this.#docs);
      this.#notify(changed);
      return changed;
    });
  }

  refreshDocument(doc: AnyDoc): Promise<boolean> {
    return this.#serial(async () => {
      const changed = await this.#load([doc]);
      this.#notify(changed);
      return changed.size > 0;
    });
  }

  /** Inside a transaction: the new version of `doc`'s row, and the notification every replica listens for. */
  async #published(doc: AnyDoc): Promise<number> {
    const version = (await this.#store.versions([doc.name])).get(doc.name) ?? 0;
    await this.#db.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, `${doc.name}:${version}`]);
    return version;
  }

  mutate<S, Op, T>(doc: JournaledState<S, Op>, plan: Planner<S, Op, T>): Promise<T> {
    return this.#serial(async () => {
      const done: { staged: boolean; version: number | null } = { staged: false, version: null };
      let result: T;
      try {
        result = await this.#db.transaction(async () => {
          this.#notify(await this.#load(this.#docs));
          const now = this.#clock();
          const planned = await plan(doc.state, now);
          const intents = planned.audit ?? [];
          if (planned.ops.length === 0 && intents.length === 0) return planned.result;
          const entries = prepareAuditEntries(await this.audit.head(), intents, now);
          done.staged = true;
          doc.stage({ ops: planned.ops, audit: entries });
          await doc.flush();
          await this.audit.appendPrepared(entries);
          done.version = await this.#published(doc);
          return planned.result;
        });
      } catch (error) {
        // Whatever was applied in memory did not commit: reload before the state is read again.
        if (done.staged) this.#invalidate([doc]);
        throw toPalyraError(error);
      }
      if (done.version !== null) {
        this.#versions.set(doc.name, done.version);
        this.#batches += 1;
      }
      return result;
    });
  }

  exclusive<T>(fn: (section: ExclusiveSection) => Promise<T>): Promise<T> {
    return this.#serial(async () => {
      const written = new Map<AnyDoc, number>();
      try {
        const result = await this.#db.transaction(async () => {
          this.#notify(await this.#load(this.#docs));
          return fn({
            commit: async (doc, ops, intents = []) => {
              const entries = prepareAuditEntries(await this.audit.head(), intents, this.#clock());
              written.set(doc, -1);
              await doc.commit(ops, entries);
              await this.audit.appendPrepared(entries);
              written.set(doc, await this.#published(doc));
            },
          });
        });
        for (const [doc, version] of written) this.#versions.set(doc.name, version);
        if (written.size > 0) this.#batches += 1;
        return result;
      } catch (error) {
        this.#invalidate([...written.keys()]);
        throw toPalyraError(error);
      }
    });
  }

  checkAnchor(): Promise<void> {
    return Promise.resolve();
  }

  flushAnchor(): Promise<void> {
    return Promise.resolve();
  }

  /** Whether the notification connection is up now. */
  get listening(): boolean {
    return this.#listening;
  }

  /**
   * Opens the LISTEN connection (and keeps it: reconnect with backoff, resync after each connect). Resolves after
   * the first attempt, connected or not; the state works without it (the poll refreshes), just less promptly.
   */
  async listen(): Promise<void> {
    if (this.#closed || this.#listener !== null) return;
    const client = new pg.Client({ connectionString: this.#db.url, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, application_name: 'palyra-listen' });
    this.#listener = client;
    let dropped = false;
    const drop = (): void => {
      if (dropped) return;
      dropped = true;
      this.#listening = false;
      if (this.#listener === client) this.#listener = null;
      void client.end().catch(() => undefined);
      this.#scheduleReconnect();
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', () => {
      this.#scheduleRefresh();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch {
      drop();
      return;
    }
    if (this.#isClosed()) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#listening = true;
    this.listenConnects += 1;
    this.#reconnectMs = RECONNECT_MIN_MS;
    // Whatever was notified while we were not listening.
    this.#scheduleRefresh();
  }

  #isClosed(): boolean {
    return this.#closed;
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== null) return;
    const delay = this.#reconnectMs;
    this.#reconnectMs = Math.min(RECONNECT_MAX_MS, this.#reconnectMs * 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      void this.listen();
    }, delay);
    this.#reconnectTimer.unref();
  }

  /** Coalesced: at most one refresh running and one queued. */
  #scheduleRefresh(): void {
    if (this.#closed) return;
    if (this.#refreshing !== null) {
      this.#refreshAgain = true;
      return;
    }
    this.#refreshing = this.refresh()
      .then(() => undefined)
      .catch(() => undefined)
      .finally(() => {
        this.#refreshing = null;
        if (this.#refreshAgain) {
          this.#refreshAgain = false;
          this.#scheduleRefresh();
        }
      });
  }

  /** For tests: drops the notification connection as a network cut would (it reconnects and resyncs). */
  dropNotificationConnection(): void {
    const client = this.#listener;
    if (client !== null) client.emit('error', new Error('notification connection cut'));
  }

  async close(): Promise<void> {
    await this.replicas.unregister();
    this.#closed = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const client = this.#listener;
    this.#listener = null;
    this.#listening = false;
    await client?.end().catch(() => undefined);
    await this.#queue.catch(() => undefined);
    await this.#db.close();
  }
}
