/**
 * A state document persisted as an encrypted snapshot plus an encrypted append-only journal of records.
 *
 * Why: rewriting a whole 10 000-device bundle on every pairing or revocation costs tens of milliseconds and grows
 * with the fleet; appending one small record does not. Other processes on the same state directory catch up by
 * reading only the records appended since they last looked. The snapshot is rewritten (compaction) every
 * `compactEvery` records, which amortises its cost.
 *
 * Journal file: a header, then frames.
 *   header  `IDJ2` ‖ u64 BE base generation (the snapshot generation the journal continues from); journals
 *           written before round 2 start with `IDJ1` alone and are still read.
 *   frame   u32 BE length ‖ u64 BE generation ‖ 12-byte nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag,
 *           AAD = `<snapshot key>#journal#<generation>`, so a record cannot be moved to another position or
 *           another document. Plaintext: JSON `{"ops":[…],"audit":[…]}` — the operations and the audit entries
 *           (seq, ts_ms, event, fields) of one mutation, so state change and audit entry are durable together
 *           (older records are a bare array of operations).
 * The snapshot of a journaled document carries `"journal_base": G` (its own generation), and its journal is
 * (re)created with base G whenever the snapshot is written, so from then on a journal must exist.
 *
 * Detect, never guess. Only a torn final frame — shorter than its header or its length prefix, left by a writer
 * killed mid-append, never acknowledged — is dropped (and truncated by the next writer). Everything else refuses:
 * a full frame that fails authentication (anywhere, the last one included), a missing journal or snapshot, a
 * generation gap (`state_corrupt`); a journal based on a newer snapshot than the one present (`state_rollback`).
 *
 * Callers hold the state lock around `refresh` and `commit` (see state-lock.ts).
 */

import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { PalyraError } from '../core/errors.js';
import { faultCompactEvery, ioBoundary } from './io-faults.js';
import { AEAD_KEY_LENGTH, AEAD_OVERHEAD, open as openSealed, seal } from './aead.js';
import { messageOf, writeFileAtomic } from './atomic-file.js';
import type { PreparedAuditEntry } from './audit-log.js';
import type { SecretStore } from './secret-store.js';

const JOURNAL_MAGIC_V1 = Buffer.from('IDJ1', 'ascii');
const JOURNAL_MAGIC = Buffer.from('IDJ2', 'ascii');
const HEADER_V1 = JOURNAL_MAGIC_V1.length;
const HEADER = JOURNAL_MAGIC.length + 8;
const FRAME_HEADER = 12; // u32 length + u64 generation
/** The snapshot field naming the generation its journal continues from. */
const JOURNAL_BASE_FIELD = 'journal_base';
/** Lock-free loads retried this often (with this base pause) before damage is reported. */
const UNLOCKED_LOAD_ATTEMPTS = 4;
const UNLOCKED_RETRY_MS = 25;
/** Records between snapshots; a compaction costs about one full bundle write. */
export const DEFAULT_COMPACT_EVERY = 512;

export interface JournalCodec<S, Op> {
  empty(): S;
  parseSnapshot(json: unknown): { state: S; generation: number };
  snapshot(state: S, generation: number): unknown;
  apply(state: S, op: Op): void;
}

/** One mutation's record: its operations and the audit entries that describe it. */
export interface JournalRecord<Op> {
  readonly ops: readonly Op[];
  readonly audit: readonly PreparedAuditEntry[];
}

interface FileStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

/** A store that can report a secret's file identity cheaply (FilesystemSecretStore). */
export interface StatableSecretStore extends SecretStore {
  statSecret(key: string): Promise<FileStamp | null>;
  pathFor(key: string): string;
}

function isStatable(store: SecretStore): store is StatableSecretStore {
  return typeof (store as Partial<StatableSecretStore>).statSecret === 'function';
}

function stampOf(file: string): FileStamp | null {
  try {
    // Synchronous: one stat is cheaper than the thread-pool round trip of the asynchronous form (polled per call).
    const s = statSync(file);
    return { ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function sameStamp(a: FileStamp | null, b: FileStamp | null): boolean {
  return a === b || (a !== null && b !== null && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs);
}

function journalHeader(base: number): Buffer {
  const header = Buffer.alloc(HEADER);
  JOURNAL_MAGIC.copy(header, 0);
  header.writeBigUInt64BE(BigInt(base), JOURNAL_MAGIC.length);
  return header;
}

function isRecordObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface JournaledStateOptions<S, Op> {
  store: SecretStore;
  snapshotKey: string;
  codec: JournalCodec<S, Op>;
  /** AES-256 key for journal frames; without it (or without a statable store) every commit rewrites the snapshot. */
  journalKey?: Uint8Array;
  compactEvery?: number;
}

/** What a full load found, for `state verify`. */
export interface JournalStatus {
  generation: number;
  snapshot: boolean;
  /** Records in the journal after the snapshot. */
  records: number;
  /** A torn final frame was found (and will be cut off by the next writer). */
  tornTail: boolean;
}

export class JournaledState<S, Op> {
  readonly #store: SecretStore;
  readonly #snapshotKey: string;
  readonly #codec: JournalCodec<S, Op>;
  readonly #key: Uint8Array | null;
  readonly #journalFile: string | null;
  readonly #compactEvery: number;

  #state: S;
  #generation = 0;
  #loaded = false;
  #snapshotStamp: FileStamp | null = null;
  #journalStamp: FileStamp | null = null;
  /** Byte offset after the last good frame read. */
  #journalOffset = 0;
  /** This instance's writes in flight (journal appends, snapshot rewrites), for `changedOnDisk`. */
  readonly #writes = new Set<Promise<void>>();
  /** A torn tail lies after #journalOffset, to be truncated before the next append. */
  #tornTail = false;
  #recordsSinceSnapshot = 0;
  #snapshotFound = false;
  /** Audit entries of the records in the journal (since the snapshot), in order. */
  #audit: PreparedAuditEntry[] = [];
  /** The journal file existed at the last load (a state from before round 2 may have none yet). */
  #journalPresent = false;
  /** Records applied in memory and not written yet (stage → flush). */
  #staged: { generation: number; record: JournalRecord<Op> }[] = [];

  constructor(options: JournaledStateOptions<S, Op>) {
    this.#store = options.store;
    this.#snapshotKey = options.snapshotKey;
    this.#codec = options.codec;
    this.#compactEvery = Math.max(1, options.compactEvery ?? faultCompactEvery() ?? DEFAULT_COMPACT_EVERY);
    const key = options.journalKey !== undefined && isStatable(options.store) ? options.journalKey : null;
    if (key !== null && key.length !== AEAD_KEY_LENGTH) throw new PalyraError('internal', 'journal key must be 32 bytes');
    this.#key = key;
    this.#journalFile = key !== null ? (options.store as StatableSecretStore).pathFor(`${options.snapshotKey}.journal`) : null;
    this.#state = options.codec.empty();
  }

  get state(): S {
    return this.#state;
  }

  get generation(): number {
    return this.#generation;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** Whether the last load found a snapshot (false before the first commit of a new state). */
  get hasSnapshot(): boolean {
    return this.#snapshotFound;
  }

  /** The document's name at rest (for messages). */
  get name(): string {
    return this.#snapshotKey;
  }

  /** Audit entries carried by the journal's records since the snapshot (a crash may have kept them from the log). */
  get journalAudit(): readonly PreparedAuditEntry[] {
    return this.#audit;
  }

  /** Enough records since the snapshot that the next compaction is due. */
  get compactionDue(): boolean {
    return this.#journalFile !== null && this.#recordsSinceSnapshot >= this.#compactEvery;
  }

  status(): JournalStatus {
    return { generation: this.#generation, snapshot: this.#snapshotFound, records: this.#recordsSinceSnapshot, tornTail: this.#tornTail };
  }

  /** Whether the files changed since the last load, by two stats and without the lock (for cheap polling). */
  async changedOnDisk(): Promise<boolean> {
    // This process's own write in flight has moved the files but not yet the stamps: wait for it rather than
    // mistake it for another process's change (which would take the lock only to find nothing new).
    while (this.#writes.size > 0) await Promise.allSettled([...this.#writes]);
    if (!this.#loaded || !isStatable(this.#store)) return true;
    const snapshotStamp = await this.#store.statSecret(this.#snapshotKey);
    const journalStamp = this.#journalFile === null ? null : stampOf(this.#journalFile);
    return !sameStamp(snapshotStamp, this.#snapshotStamp) || !sameStamp(journalStamp, this.#journalStamp);
  }

  /**
   * `refresh` for readers that hold no lock (read-only commands beside a running gateway): a compaction between
   * reading the snapshot and the journal can make a consistent state look damaged for an instant, so a load that
   * fails as corrupt or rolled back is retried a few times before the error stands.
   */
  async refreshUnlocked(): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.refresh();
      } catch (error) {
        const code = error instanceof PalyraError ? error.code : null;
        if (attempt >= UNLOCKED_LOAD_ATTEMPTS || (code !== 'state_corrupt' && code !== 'state_rollback')) throw error;
        await new Promise((resolve) => setTimeout(resolve, UNLOCKED_RETRY_MS * attempt));
      }
    }
  }

  /** Forgets what was loaded: the next refresh reads everything again (after a failed write). */
  invalidate(): void {
    this.#loaded = false;
  }

  /**
   * Brings the in-memory state up to what is on disk. Cheap when nothing changed (two stats); reads only new
   * journal records when only the journal grew. Returns whether the state changed.
   */
  async refresh(): Promise<boolean> {
    const before = this.#generation;
    const snapshotStamp = isStatable(this.#store) ? await this.#store.statSecret(this.#snapshotKey) : null;
    const journalStamp = this.#journalFile === null ? null : stampOf(this.#journalFile);
    const statable = isStatable(this.#store);
    if (this.#loaded && statable && sameStamp(snapshotStamp, this.#snapshotStamp)) {
      if (sameStamp(journalStamp, this.#journalStamp)) return false;
      const shrunk =
        journalStamp === null || this.#journalStamp === null || journalStamp.ino !== this.#journalStamp.ino || journalStamp.size < this.#journalOffset;
      if (!shrunk) {
        await this.#readJournal(false, true);
        this.#journalStamp = journalStamp;
        return this.#generation !== before;
      }
    }
    await this.#fullLoad(snapshotStamp);
    return this.#generation !== before || !statable;
  }

  #corrupt(message: string, cause?: unknown): PalyraError {
    return new PalyraError('state_corrupt', `${this.#snapshotKey}: ${message}`, {
      details: { document: this.#snapshotKey },
      ...(cause === undefined ? {} : { cause }),
    });
  }

  async #fullLoad(snapshotStamp: FileStamp | null): Promise<void> {
    const previous = this.#loaded ? this.#generation : null;
    let parsed: { state: S; generation: number };
    let found = false;
    let journalExpected = false;
    try {
      const bytes = await this.#store.readSecret(this.#snapshotKey);
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
      } catch (e) {
        throw this.#corrupt('the snapshot is not valid JSON', e);
      }
      if (isRecordObject(json) && JOURNAL_BASE_FIELD in json) {
        journalExpected = true;
        const { [JOURNAL_BASE_FIELD]: _base, ...rest } = json;
        json = rest;
      }
      parsed = this.#codec.parseSnapshot(json);
      found = true;
    } catch (e) {
      if (!(e instanceof PalyraError && e.code === 'secret_not_found')) throw e;
      parsed = { state: this.#codec.empty(), generation: 0 };
    }
    const saved = { state: this.#state, generation: this.#generation, audit: this.#audit };
    this.#state = parsed.state;
    this.#generation = parsed.generation;
    this.#journalOffset = 0;
    this.#tornTail = false;
    this.#recordsSinceSnapshot = 0;
    this.#audit = [];
    try {
      if (this.#journalFile !== null) {
        const present = await this.#readJournal(true, journalExpected);
        this.#journalPresent = present;
        if (!found && present) throw this.#corrupt('the snapshot is missing but its journal exists');
        if (journalExpected && !present) throw this.#corrupt('the journal is missing (the snapshot says it has one)');
        this.#journalStamp = stampOf(this.#journalFile);
      }
      if (previous !== null && this.#generation < previous) {
        throw new PalyraError('state_rollback', `${this.#snapshotKey}: the state went backwards: saw generation ${previous}, found ${this.#generation} on disk`, {
          details: { document: this.#snapshotKey, seen: previous, found: this.#generation },
        });
      }
    } catch (e) {
      this.#state = saved.state;
      this.#generation = saved.generation;
      this.#audit = saved.audit;
      throw e;
    }
    this.#snapshotStamp = snapshotStamp ?? (isStatable(this.#store) ? await this.#store.statSecret(this.#snapshotKey) : null);
    this.#snapshotFound = found;
    this.#loaded = true;
  }

  /** Reads frames from the start (or from the last offset); returns whether the journal file exists. */
  async #readJournal(fromStart: boolean, strictHeader: boolean): Promise<boolean> {
    const file = this.#journalFile!;
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    try {
      const { size } = await handle.stat();
      const start = fromStart ? 0 : this.#journalOffset;
      if (size <= start) {
        if (fromStart && strictHeader) throw this.#corrupt('the journal is empty (its header is missing)');
        return true;
      }
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      let pos = 0;
      if (start === 0) {
        if (buf.length >= HEADER_V1 && buf.subarray(0, HEADER_V1).equals(JOURNAL_MAGIC_V1)) {
          pos = HEADER_V1;
        } else if (buf.length >= HEADER && buf.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC)) {
          const base = Number(buf.readBigUInt64BE(JOURNAL_MAGIC.length));
          if (base > this.#generation) {
            throw new PalyraError(
              'state_rollback',
              `${this.#snapshotKey}: the snapshot (generation ${this.#generation}) is older than its journal (based on generation ${base})`,
              { details: { document: this.#snapshotKey, snapshot: this.#generation, journal_base: base } },
            );
          }
          pos = HEADER;
        } else if (!strictHeader && buf.length < HEADER_V1 && JOURNAL_MAGIC_V1.subarray(0, buf.length).equals(buf)) {
          // A legacy journal whose header write was cut short: nothing was ever acknowledged in it.
          this.#tornTail = true;
          return true;
        } else {
          throw this.#corrupt('the journal has no valid header');
        }
        this.#journalOffset = pos;
      }
      this.#tornTail = false;
      while (pos < buf.length) {
        if (buf.length - pos < FRAME_HEADER) {
          this.#tornTail = true;
          break;
        }
        const length = buf.readUInt32BE(pos);
        const generation = Number(buf.readBigUInt64BE(pos + 4));
        const end = pos + FRAME_HEADER + length;
        if (end > buf.length) {
          // Shorter than its length prefix: the last frame was being written when its writer died.
          this.#tornTail = true;
          break;
        }
        if (length < AEAD_OVERHEAD) throw this.#corrupt(`the journal has a malformed record at byte ${start + pos}`);
        let record: JournalRecord<Op>;
        try {
          record = this.#open(generation, buf.subarray(pos + FRAME_HEADER, end));
        } catch (e) {
          throw this.#corrupt(`the journal has a damaged record at byte ${start + pos} (generation ${generation})`, e);
        }
        if (generation > this.#generation) {
          if (generation !== this.#generation + 1) {
            throw this.#corrupt(`the journal skips from generation ${this.#generation} to ${generation}`);
          }
          for (const op of record.ops) this.#codec.apply(this.#state, op);
          this.#audit.push(...record.audit);
          this.#generation = generation;
          this.#recordsSinceSnapshot++;
        }
        pos = end;
        this.#journalOffset = start + pos;
      }
      return true;
    } finally {
      await handle.close();
    }
  }

  #aad(generation: number): Buffer {
    return Buffer.from(`${this.#snapshotKey}#journal#${generation}`, 'utf8');
  }

  #open(generation: number, payload: Buffer): JournalRecord<Op> {
    const plain = openSealed(this.#key!, payload, this.#aad(generation));
    const value = JSON.parse(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).toString('utf8')) as unknown;
    if (Array.isArray(value)) return { ops: value as Op[], audit: [] };
    if (isRecordObject(value) && Array.isArray(value.ops) && (value.audit === undefined || Array.isArray(value.audit))) {
      return { ops: value.ops as Op[], audit: (value.audit ?? []) as PreparedAuditEntry[] };
    }
    throw new PalyraError('state_corrupt', 'journal record is neither a list of operations nor {ops, audit}');
  }

  #seal(generation: number, record: JournalRecord<Op>): Buffer {
    const body = record.audit.length === 0 ? { ops: record.ops } : { ops: record.ops, audit: record.audit };
    const sealed = seal(this.#key!, Buffer.from(JSON.stringify(body), 'utf8'), this.#aad(generation));
    const header = Buffer.alloc(FRAME_HEADER);
    header.writeUInt32BE(sealed.length, 0);
    header.writeBigUInt64BE(BigInt(generation), 4);
    return Buffer.concat([header, sealed]);
  }

  /** Persists one record as generation + 1 (see commitMany). */
  async commit(ops: readonly Op[], audit: readonly PreparedAuditEntry[] = []): Promise<void> {
    await this.commitMany([{ ops, audit }]);
  }

  /**
   * Persists `records` as generations + 1 … + n with one write and one fsync, then applies them in memory: a failed
   * write leaves both disk and memory as they were. (stage() + flush() is the group-commit form, where later
   * mutations must see earlier ones before anything is written.)
   */
  async commitMany(records: readonly JournalRecord<Op>[]): Promise<void> {
    await this.prepareForRecords();
    if (records.length === 0) return;
    if (this.#journalFile === null) {
      // Stores without a journal (tests) write a snapshot per commit, of a copy, so a failed write changes nothing.
      const next = this.#cloneWith(records);
      const generation = this.#generation + records.length;
      await this.#writeSnapshot(next, generation);
      this.#state = next;
      this.#generation = generation;
      return;
    }
    const first = this.#generation + 1;
    await this.#append(records.map((record, i) => this.#seal(first + i, record)));
    for (const record of records) {
      for (const op of record.ops) this.#codec.apply(this.#state, op);
      this.#audit.push(...record.audit);
    }
    this.#generation = first + records.length - 1;
    this.#recordsSinceSnapshot += records.length;
  }

  /** Before the first record of a new state (or of one from before round 2): its empty snapshot and journal. */
  async prepareForRecords(): Promise<void> {
    if (!this.#loaded) throw new PalyraError('internal', 'journaled state committed before it was loaded');
    if (this.#journalFile !== null && this.#staged.length === 0 && (!this.#snapshotFound || !this.#journalPresent)) {
      await this.#writeSnapshot(this.#state, this.#generation);
    }
  }

  /**
   * Applies a record in memory as the next generation, to be written by `flush`. Several mutations staged one after
   * another each see the ones before (group commit). The caller answers nobody until `flush` resolved.
   */
  stage(record: JournalRecord<Op>): void {
    if (!this.#loaded) throw new PalyraError('internal', 'journaled state staged before it was loaded');
    for (const op of record.ops) this.#codec.apply(this.#state, op);
    this.#generation += 1;
    this.#staged.push({ generation: this.#generation, record });
    this.#audit.push(...record.audit);
  }

  /**
   * Writes every staged record with one write and one fsync. If that fails, what was staged is not on disk: the
   * state is reloaded from disk at the next refresh (call it before using the state again) and the error thrown.
   * Compaction is the caller's (`compactionDue`): the audit entries the records carry must reach the audit log
   * before the journal is emptied.
   */
  async flush(): Promise<void> {
    const staged = this.#staged;
    if (staged.length === 0) return;
    this.#staged = [];
    try {
      if (this.#journalFile === null) {
        // Stores without a journal (tests) write a snapshot per commit.
        await this.#writeSnapshot(this.#state, this.#generation);
        return;
      }
      await this.#append(staged.map((s) => this.#seal(s.generation, s.record)));
      this.#recordsSinceSnapshot += staged.length;
    } catch (error) {
      this.#loaded = false;
      throw error;
    }
  }

  /** Rewrites the snapshot at the current generation and starts an empty journal based on it. */
  async compact(): Promise<void> {
    await this.#writeSnapshot(this.#state, this.#generation);
  }

  #cloneWith(records: readonly JournalRecord<Op>[]): S {
    // Replaying the snapshot form gives a deep copy without knowing the state's shape.
    const copy = this.#codec.parseSnapshot(JSON.parse(JSON.stringify(this.#codec.snapshot(this.#state, this.#generation)))).state;
    for (const record of records) for (const op of record.ops) this.#codec.apply(copy, op);
    return copy;
  }

  /**
   * Writes the snapshot, then (journaled) a fresh journal based on it. A crash between the two leaves the new
   * snapshot with the old journal, whose records up to the snapshot's generation are skipped.
   */
  #writeSnapshot(state: S, generation: number): Promise<void> {
    return this.#tracked(this.#writeSnapshotNow(state, generation));
  }

  async #writeSnapshotNow(state: S, generation: number): Promise<void> {
    const document = this.#codec.snapshot(state, generation);
    const json = JSON.stringify(this.#journalFile !== null && isRecordObject(document) ? { ...document, [JOURNAL_BASE_FIELD]: generation } : document);
    await this.#store.writeSecret(this.#snapshotKey, Buffer.from(json, 'utf8'));
    if (isStatable(this.#store)) this.#snapshotStamp = await this.#store.statSecret(this.#snapshotKey);
    if (this.#journalFile !== null) {
      await writeFileAtomic(this.#journalFile, journalHeader(generation));
      this.#journalOffset = HEADER;
      this.#tornTail = false;
      this.#journalStamp = stampOf(this.#journalFile);
      this.#recordsSinceSnapshot = 0;
      this.#audit = [];
      this.#journalPresent = true;
    }
    this.#snapshotFound = true;
  }

  /**
   * Writes `frames` at #journalOffset and fsyncs. On any failure the journal is cut back to #journalOffset, so a
   * record whose write or fsync failed (and whose caller is told so) cannot reappear at the next load; if even that
   * fails, what is left past the offset is a tail the next append truncates, and a reload sees at most records that
   * were fully written.
   */
  #tracked(write: Promise<void>): Promise<void> {
    this.#writes.add(write);
    return write.finally(() => this.#writes.delete(write));
  }

  #append(frames: readonly Buffer[]): Promise<void> {
    return this.#tracked(this.#appendNow(frames));
  }

  async #appendNow(frames: readonly Buffer[]): Promise<void> {
    const file = this.#journalFile!;
    const data = Buffer.concat(frames);
    let handle: FileHandle | undefined;
    let wrote = false;
    try {
      ioBoundary('open', file);
      handle = await open(file, 'r+');
      const { size } = await handle.stat();
      if (size !== this.#journalOffset) {
        if (!this.#tornTail && size > this.#journalOffset) {
          throw new PalyraError('internal', 'journal grew since the last refresh; commit must follow refresh() under the state lock');
        }
        ioBoundary('truncate', file);
        await handle.truncate(this.#journalOffset);
      }
      this.#tornTail = false;
      wrote = true;
      ioBoundary('write', file);
      await handle.write(data, 0, data.length, this.#journalOffset);
      ioBoundary('sync', file);
      await handle.sync();
      this.#journalOffset += data.length;
    } catch (error) {
      if (wrote && handle !== undefined) {
        this.#tornTail = true;
        await handle
          .truncate(this.#journalOffset)
          .then(() => handle!.sync())
          .catch(() => undefined);
      }
      if (error instanceof PalyraError) throw error;
      throw new PalyraError('store_io_failed', `failed to append to journal ${file}: ${messageOf(error)}`, { cause: error, details: { path: file } });
    } finally {
      await handle?.close().catch(() => undefined);
    }
    this.#journalStamp = stampOf(file);
  }

  /**
   * For `state repair --accept-loss`: loads the snapshot and every journal record up to the first one that does
   * not load (dropping it and everything after), in memory only. The caller appends `journalAudit` to the audit
   * log and then calls `compact()`, which rewrites snapshot and journal from the kept state.
   */
  async loadAcceptingLoss(): Promise<{ generation: number; droppedBytes: number }> {
    const file = this.#journalFile;
    if (file === null) throw new PalyraError('internal', 'only a journaled state can be repaired');
    let snapshot: { state: S; generation: number } | null = null;
    try {
      const bytes = await this.#store.readSecret(this.#snapshotKey);
      const json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as unknown;
      const plain = isRecordObject(json) ? Object.fromEntries(Object.entries(json).filter(([k]) => k !== JOURNAL_BASE_FIELD)) : json;
      snapshot = this.#codec.parseSnapshot(plain);
    } catch (e) {
      if (!(e instanceof PalyraError && e.code === 'secret_not_found')) throw e;
    }
    this.#state = snapshot?.state ?? this.#codec.empty();
    this.#generation = snapshot?.generation ?? 0;
    this.#audit = [];
    let size = 0;
    let good = 0;
    try {
      const buf = Buffer.from(await readFileBytes(file));
      size = buf.length;
      let pos = buf.subarray(0, HEADER_V1).equals(JOURNAL_MAGIC_V1) ? HEADER_V1 : buf.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC) && buf.length >= HEADER ? HEADER : buf.length;
      good = pos;
      while (pos + FRAME_HEADER <= buf.length) {
        const length = buf.readUInt32BE(pos);
        const generation = Number(buf.readBigUInt64BE(pos + 4));
        const end = pos + FRAME_HEADER + length;
        if (end > buf.length || length < AEAD_OVERHEAD) break;
        let record: JournalRecord<Op>;
        try {
          record = this.#open(generation, buf.subarray(pos + FRAME_HEADER, end));
        } catch {
          break;
        }
        if (generation > this.#generation) {
          if (generation !== this.#generation + 1) break;
          for (const op of record.ops) this.#codec.apply(this.#state, op);
          this.#audit.push(...record.audit);
          this.#generation = generation;
        }
        pos = end;
        good = pos;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.#snapshotFound = snapshot !== null;
    this.#loaded = true;
    return { generation: this.#generation, droppedBytes: Math.max(0, size - good) };
  }
}

async function readFileBytes(file: string): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buf = Buffer.alloc(size);
    await handle.read(buf, 0, size, 0);
    return buf;
  } finally {
    await handle.close();
  }
}
