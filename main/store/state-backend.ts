/**
 * The one seam between the gateway's logic and persistence. IdentityManager, the pairing runtime and the audit log
 * reach their storage only through a StateBackend: load (refresh), mutate against fresh state, run an exclusive
 * section, and the rollback anchor. FileStateBackend implements it over the state directory (lock file, journaled
 * documents, audit log, keychain anchor) and, without a directory, in memory for tests.
 *
 * A mutation is durable together with its audit entries: they travel in the same journal record, and are copied to
 * the audit log right after; a crash in between is repaired at the next load by appending the entries the journal
 * holds and the log lacks (each exactly once). Mutations of one document that arrive together share one lock
 * acquisition, one journal write and one fsync (group commit); every caller is answered only after its record is
 * durable.
 */

import { toPalyraError } from '../core/errors.js';
import type { AuditHead, AuditIntent, AuditLog, PreparedAuditEntry } from './audit-log.js';
import { EMPTY_AUDIT_HEAD, prepareAuditEntries } from './audit-log.js';
import type { AnchorRecord, StateAnchor } from './state-anchor.js';
import { checkAgainstAnchor, laterAnchor } from './state-anchor.js';
import type { JournaledState } from './state-journal.js';
import { withStateLock } from './state-lock.js';
import type { StateLockOptions } from './state-lock.js';

export interface MutationPlan<T, Op> {
  readonly ops: readonly Op[];
  readonly result: T;
  readonly audit?: readonly AuditIntent[];
  /** A revocation, role withdrawal or CA change: the rollback anchor is updated before the caller is answered. */
  readonly removesTrust?: boolean;
}

export type Planner<S, Op, T> = (state: S, now: number) => Promise<MutationPlan<T, Op>> | MutationPlan<T, Op>;

/** Inside `exclusive`: commit records directly (the lock is already held). */
export interface ExclusiveSection {
  commit<S, Op>(doc: JournaledState<S, Op>, ops: readonly Op[], audit?: readonly AuditIntent[]): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- documents of any state and operation type
type AnyDoc = JournaledState<any, any>;

/**
 * What the gateway and the CLI use of an audit log: the file log (AuditLog) and the database's (PgAuditLog) both
 * provide it. `file` names where it lives, for messages.
 */
export type AuditStore = Pick<AuditLog, 'file' | 'keyed' | 'setKeyedFrom' | 'head' | 'appendPrepared' | 'tail' | 'tailChecked' | 'verify' | 'verifyChain'>;

export type StateBackendKind = 'file' | 'memory' | 'postgres';

export interface StateBackend {
  readonly kind: StateBackendKind;
  /** 'keychain': rollback behind the anchor is detected; 'none': whoever can write the state dir can roll it back. */
  readonly rollbackProtection: 'keychain' | 'none';
  readonly audit: AuditStore | null;
  register(doc: AnyDoc): void;
  /** Refreshes every document under the lock (repairing audit entries a crash kept from the log); names changed. */
  refresh(): Promise<ReadonlySet<string>>;
  /**
   * Refreshes one document under the lock, leaving the others as they are (so their owners still see their own
   * changes as news). Returns whether it changed.
   */
  refreshDocument(doc: AnyDoc): Promise<boolean>;
  /**
   * Told (after the current locked section) whenever a load finds documents changed by someone else — also the
   * loads a mutation does first — so no owner misses another process's change. Returns the unsubscribe function.
   */
  onExternalChange(listener: (names: ReadonlySet<string>) => void): () => void;
  /** Runs `plan` on fresh state under the lock; commits and audits what it returns. */
  mutate<S, Op, T>(doc: JournaledState<S, Op>, plan: Planner<S, Op, T>): Promise<T>;
  /** Runs `fn` under the lock with every document refreshed. */
  exclusive<T>(fn: (section: ExclusiveSection) => Promise<T>): Promise<T>;
  /** Checks the documents as loaded against the anchor (no lock, no writes). */
  checkAnchor(): Promise<void>;
  /** Writes the anchor now if it lags. */
  flushAnchor(): Promise<void>;
  /** Lock acquisitions that committed mutations so far (group commit makes it smaller than the mutations). */
  readonly commitBatches: number;
  close(): Promise<void>;
}

interface Pending {
  readonly doc: AnyDoc;
  readonly plan: Planner<unknown, unknown, unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export interface FileStateBackendOptions {
  /** The state directory (lock file); null = an in-process queue (tests, throwaway gateways). */
  readonly stateDir: string | null;
  readonly audit: AuditStore | null;
  /** The keychain anchor; null = no rollback protection (key file mode, tests). */
  readonly anchor: StateAnchor | null;
  readonly lock?: StateLockOptions;
  readonly clock?: () => number;
  /** Longest the anchor may lag behind mutations that do not remove trust (0: anchored before answering). */
  readonly anchorLagMs?: number;
}

/** Most mutations one lock acquisition serves. */
const MAX_BATCH = 256;
export const DEFAULT_ANCHOR_LAG_MS = 2_000;

const memoryQueues = new WeakMap<object, Promise<unknown>>();

export class FileStateBackend implements StateBackend {
  readonly kind: 'file' | 'memory';
  readonly rollbackProtection: 'keychain' | 'none';
  readonly audit: AuditStore | null;
  readonly #stateDir: string | null;
  readonly #anchor: StateAnchor | null;
  readonly #lock: StateLockOptions;
  readonly #clock: () => number;
  readonly #anchorLagMs: number;
  readonly #docs: AnyDoc[] = [];
  #queue: Pending[] = [];
  #draining = false;
  /** The highest anchor known to be written (by anyone); null until read. */
  #anchored: AnchorRecord | null = null;
  #anchorRead = false;
  #anchorTimer: NodeJS.Timeout | null = null;
  #anchorDirty = false;
  /** Lock acquisitions that committed mutations (fewer than the mutations when they were grouped). */
  #batches = 0;
  readonly #changeListeners = new Set<(names: ReadonlySet<string>) => void>();

  constructor(options: FileStateBackendOptions) {
    this.#stateDir = options.stateDir;
    this.kind = options.stateDir === null ? 'memory' : 'file';
    this.audit = options.audit;
    this.#anchor = options.anchor;
    this.rollbackProtection = options.anchor === null ? 'none' : 'keychain';
    this.#lock = options.lock ?? {};
    this.#clock = options.clock ?? Date.now;
    this.#anchorLagMs = options.anchorLagMs ?? DEFAULT_ANCHOR_LAG_MS;
  }

  /** How many group commits wrote mutations so far. */
  get commitBatches(): number {
    return this.#batches;
  }

  register(doc: AnyDoc): void {
    if (!this.#docs.includes(doc)) this.#docs.push(doc);
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#stateDir !== null) return withStateLock(this.#stateDir, fn, this.#lock);
    const previous = memoryQueues.get(this) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    memoryQueues.set(this, run.catch(() => undefined));
    return run;
  }

  async #head(): Promise<AuditHead> {
    return this.audit === null ? EMPTY_AUDIT_HEAD : this.audit.head();
  }

  /** Refreshes every document, checks the anchor once, and appends audit entries the journals hold and the log lacks. */
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

  async #prepare(): Promise<Set<string>> {
    const changed = new Set<string>();
    for (const doc of this.#docs) if (await doc.refresh()) changed.add(doc.name);
    this.#notify(changed);
    if (!this.#anchorRead) await this.checkAnchor();
    await this.#redoAudit();
    return changed;
  }

  /** The journals' audit entries above the log's head, in seq order. */
  #pendingAudit(head: AuditHead): PreparedAuditEntry[] {
    const pending: PreparedAuditEntry[] = [];
    for (const doc of this.#docs) for (const e of doc.journalAudit) if (e.seq > head.seq) pending.push(e);
    return pending.sort((a, b) => a.seq - b.seq);
  }

  async #redoAudit(): Promise<void> {
    if (this.audit === null) return;
    const pending = this.#pendingAudit(await this.audit.head());
    if (pending.length > 0) await this.audit.appendPrepared(pending);
  }

  async checkAnchor(): Promise<void> {
    if (this.#anchor === null) {
      this.#anchorRead = true;
      return;
    }
    const anchor = await this.#anchor.read();
    if (anchor !== null) {
      const head = await this.#head();
      // Entries a crash kept from the log are still in the journals: they count as written.
      const lastSeq = this.#pendingAudit(head).at(-1)?.seq ?? head.seq;
      const audit = lastSeq === head.seq ? head : { seq: lastSeq, hash: lastSeq === anchor.audit.seq ? anchor.audit.hash : '' };
      checkAgainstAnchor(anchor, { docs: this.#generations(), audit }, this.#stateDir ?? 'memory');
    }
    this.#anchored = laterAnchor(this.#anchored, anchor ?? { docs: {}, audit: EMPTY_AUDIT_HEAD });
    this.#anchorRead = true;
  }

  #generations(): Record<string, number> {
    return Object.fromEntries(this.#docs.map((d) => [d.name, d.generation]));
  }

  async refresh(): Promise<ReadonlySet<string>> {
    return this.#locked(() => this.#prepare());
  }

  async refreshDocument(doc: AnyDoc): Promise<boolean> {
    const changed = await this.#locked(() => doc.refresh());
    if (changed) this.#notify(new Set([doc.name]));
    return changed;
  }

  async exclusive<T>(fn: (section: ExclusiveSection) => Promise<T>): Promise<T> {
    return this.#locked(async () => {
      await this.#prepare();
      return fn({
        commit: async (doc, ops, intents = []) => {
          const entries = this.audit === null ? [] : prepareAuditEntries(await this.audit.head(), intents, this.#clock());
          await doc.commit(ops, entries);
          await this.#afterWrite([doc], false);
        },
      });
    });
  }

  mutate<S, Op, T>(doc: JournaledState<S, Op>, plan: Planner<S, Op, T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ doc, plan: plan as Planner<unknown, unknown, unknown>, resolve: resolve, reject });
      if (!this.#draining) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        // One document per batch: its records share one append, so a failed flush leaves none of the batch on disk
        // (two documents' flushes could half-succeed, and the audit entries they number would then have a gap).
        const doc = this.#queue[0]!.doc;
        let size = 1;
        while (size < MAX_BATCH && size < this.#queue.length && this.#queue[size]!.doc === doc) size += 1;
        const batch = this.#queue.splice(0, size);
        const answered = new Set<Pending>();
        try {
          await this.#locked(() => this.#runBatch(batch, answered));
        } catch (error) {
          for (const p of batch) if (!answered.has(p)) p.reject(error);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  async #runBatch(batch: readonly Pending[], answered: Set<Pending>): Promise<void> {
    await this.#prepare();
    let nextSeq = (await this.#head()).seq;
    const staged: { p: Pending; result: unknown }[] = [];
    const touched = new Set<AnyDoc>();
    let removesTrust = false;
    for (const p of batch) {
      const now = this.#clock();
      let planned: MutationPlan<unknown, unknown>;
      try {
        planned = await p.plan(p.doc.state, now);
      } catch (error) {
        answered.add(p);
        p.reject(error);
        continue;
      }
      const intents = planned.audit ?? [];
      if (planned.ops.length === 0 && intents.length === 0) {
        answered.add(p);
        p.resolve(planned.result);
        continue;
      }
      const entries = this.audit === null ? [] : prepareAuditEntries({ seq: nextSeq, hash: '' }, intents, now);
      nextSeq += entries.length;
      await p.doc.prepareForRecords();
      p.doc.stage({ ops: planned.ops, audit: entries });
      touched.add(p.doc);
      removesTrust ||= planned.removesTrust === true;
      staged.push({ p, result: planned.result });
    }
    if (staged.length === 0) return;
    this.#batches += 1;
    try {
      for (const doc of touched) await doc.flush();
    } catch (error) {
      // What was staged is not durable: reload before anyone reads the state again, and fail every staged caller.
      for (const doc of touched) await doc.refresh().catch(() => undefined);
      throw error;
    }
    // Durable from here on (the journal holds the audit entries too): every staged caller succeeds.
    try {
      await this.#afterWrite([...touched], removesTrust);
    } finally {
      for (const { p, result } of staged) {
        answered.add(p);
        p.resolve(result);
      }
    }
  }

  /** After records are durable: copy their audit entries to the log, compact what is due, advance the anchor. */
  async #afterWrite(docs: readonly AnyDoc[], removesTrust: boolean): Promise<void> {
    try {
      await this.#redoAudit();
    } catch {
      // The entries are durable in the journal and are appended at the next load; compaction waits until then.
      return;
    }
    for (const doc of docs) if (doc.compactionDue) await doc.compact();
    if (this.#anchor === null) return;
    this.#anchorDirty = true;
    if (removesTrust || this.#anchorLagMs === 0) await this.flushAnchor();
    else this.#scheduleAnchor();
  }

  #scheduleAnchor(): void {
    if (this.#anchorTimer !== null) return;
    this.#anchorTimer = setTimeout(() => {
      this.#anchorTimer = null;
      void this.flushAnchor().catch(() => undefined);
    }, this.#anchorLagMs);
    this.#anchorTimer.unref();
  }

  async flushAnchor(): Promise<void> {
    if (this.#anchor === null || !this.#anchorDirty) return;
    this.#anchorDirty = false;
    const record = laterAnchor(this.#anchored, { docs: this.#generations(), audit: await this.#head() });
    try {
      await this.#anchor.write(record, this.#clock());
      this.#anchored = record;
    } catch (error) {
      this.#anchorDirty = true;
      throw toPalyraError(error);
    }
  }

  /** For `state repair --accept-loss`: replaces the anchor with what is on disk now (it may move back). */
  async reanchor(): Promise<void> {
    if (this.#anchor === null) return;
    const record: AnchorRecord = { docs: this.#generations(), audit: await this.#head() };
    await this.#anchor.write(record, this.#clock());
    this.#anchored = record;
    this.#anchorDirty = false;
  }

  /** The locked section of `state repair`: `fn` runs without the usual refresh (which would refuse the damage). */
  async repairSection<T>(fn: () => Promise<T>): Promise<T> {
    return this.#locked(fn);
  }

  async close(): Promise<void> {
    if (this.#anchorTimer !== null) {
      clearTimeout(this.#anchorTimer);
      this.#anchorTimer = null;
    }
    await this.flushAnchor().catch(() => undefined);
  }
}
