/**
 * A state document persisted as an encrypted snapshot plus an encrypted append-only journal of operations.
 *
 * Why: rewriting a whole 10 000-device bundle on every pairing or revocation costs tens of milliseconds and grows
 * with the fleet; appending one small record does not. Other processes on the same state directory catch up by
 * reading only the records appended since they last looked. The snapshot is rewritten (compaction) every
 * `compactEvery` records, which amortises its cost.
 *
 * Journal file: `IDJ1` then frames `u32 BE length ‖ u64 BE generation ‖ 12-byte nonce ‖ AES-256-GCM ciphertext ‖
 * 16-byte tag`, AAD = `<snapshot key>#journal#<generation>`, so a record cannot be moved to another position or
 * another document. A frame cut short at the end of the file (a writer killed mid-append) was never acknowledged:
 * it is ignored and truncated by the next writer. A damaged frame anywhere else is `state_corrupt`.
 *
 * Callers hold the state lock around `refresh` and `commit` (see state-lock.ts).
 */

import { open, stat, truncate } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { AEAD_KEY_LENGTH, AEAD_OVERHEAD, open as openSealed, seal } from './aead.js';
import { fsyncDir } from './atomic-file.js';
import type { SecretStore } from './secret-store.js';

const JOURNAL_MAGIC = Buffer.from('IDJ1', 'ascii');
const FRAME_HEADER = 12; // u32 length + u64 generation
/** Records between snapshots; a compaction costs about one full bundle write. */
export const DEFAULT_COMPACT_EVERY = 512;

export interface JournalCodec<S, Op> {
  empty(): S;
  parseSnapshot(json: unknown): { state: S; generation: number };
  snapshot(state: S, generation: number): unknown;
  apply(state: S, op: Op): void;
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

async function stampOf(file: string): Promise<FileStamp | null> {
  try {
    const s = await stat(file);
    return { ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function sameStamp(a: FileStamp | null, b: FileStamp | null): boolean {
  return a === b || (a !== null && b !== null && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs);
}

export interface JournaledStateOptions<S, Op> {
  store: SecretStore;
  snapshotKey: string;
  codec: JournalCodec<S, Op>;
  /** AES-256 key for journal frames; without it (or without a statable store) every commit rewrites the snapshot. */
  journalKey?: Uint8Array;
  compactEvery?: number;
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
  /** Size of a torn tail after #journalOffset, to be truncated before the next append. */
  #tornTail = false;
  #recordsSinceSnapshot = 0;
  #snapshotFound = false;

  constructor(options: JournaledStateOptions<S, Op>) {
    this.#store = options.store;
    this.#snapshotKey = options.snapshotKey;
    this.#codec = options.codec;
    this.#compactEvery = Math.max(1, options.compactEvery ?? DEFAULT_COMPACT_EVERY);
    const key = options.journalKey !== undefined && isStatable(options.store) ? options.journalKey : null;
    if (key !== null && key.length !== AEAD_KEY_LENGTH) throw new PalyraError('internal', 'journal key must be 32 bytes');
    const journaled = key !== null;
    this.#key = key;
    this.#journalFile = journaled ? (options.store as StatableSecretStore).pathFor(`${options.snapshotKey}.journal`) : null;
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

  /** Whether the files changed since the last load, by two stats and without the lock (for cheap polling). */
  async changedOnDisk(): Promise<boolean> {
    if (!this.#loaded || !isStatable(this.#store)) return true;
    const snapshotStamp = await this.#store.statSecret(this.#snapshotKey);
    const journalStamp = this.#journalFile === null ? null : await stampOf(this.#journalFile);
    return !sameStamp(snapshotStamp, this.#snapshotStamp) || !sameStamp(journalStamp, this.#journalStamp);
  }

  /**
   * Brings the in-memory state up to what is on disk. Cheap when nothing changed (two stats); reads only new
   * journal records when only the journal grew. Returns whether the state changed.
   */
  async refresh(): Promise<boolean> {
    const before = this.#generation;
    const snapshotStamp = isStatable(this.#store) ? await this.#store.statSecret(this.#snapshotKey) : null;
    const journalStamp = this.#journalFile === null ? null : await stampOf(this.#journalFile);
    const statable = isStatable(this.#store);
    if (this.#loaded && statable && sameStamp(snapshotStamp, this.#snapshotStamp)) {
      if (sameStamp(journalStamp, this.#journalStamp)) return false;
      const shrunk = journalStamp === null || this.#journalStamp === null || journalStamp.ino !== this.#journalStamp.ino || journalStamp.size < this.#journalOffset;
      if (!shrunk) {
        await this.#readJournal(false);
        this.#journalStamp = journalStamp;
        return this.#generation !== before;
      }
    }
    await this.#fullLoad(snapshotStamp);
    return this.#generation !== before || !statable;
  }

  async #fullLoad(snapshotStamp: FileStamp | null): Promise<void> {
    const previous = this.#loaded ? this.#generation : null;
    let parsed: { state: S; generation: number };
    let found = false;
    try {
      const bytes = await this.#store.readSecret(this.#snapshotKey);
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
      } catch (e) {
        throw new PalyraError('state_corrupt', `identity state ${this.#snapshotKey} is not valid JSON`, { cause: e });
      }
      parsed = this.#codec.parseSnapshot(json);
      found = true;
    } catch (e) {
      if (!(e instanceof PalyraError && e.code === 'secret_not_found')) throw e;
      parsed = { state: this.#codec.empty(), generation: 0 };
    }
    const saved = { state: this.#state, generation: this.#generation };
    this.#state = parsed.state;
    this.#generation = parsed.generation;
    this.#journalOffset = 0;
    this.#tornTail = false;
    this.#recordsSinceSnapshot = 0;
    try {
      if (this.#journalFile !== null) {
        await this.#readJournal(true);
        this.#journalStamp = await stampOf(this.#journalFile);
      }
    } catch (e) {
      this.#state = saved.state;
      this.#generation = saved.generation;
      throw e;
    }
    if (previous !== null && this.#generation < previous) {
      const found = this.#generation;
      this.#state = saved.state;
      this.#generation = saved.generation;
      throw new PalyraError('state_rollback', `identity state generation went backwards: saw ${previous}, found ${found} on disk`, {
        details: { seen: previous, found },
      });
    }
    this.#snapshotStamp = snapshotStamp ?? (isStatable(this.#store) ? await this.#store.statSecret(this.#snapshotKey) : null);
    this.#snapshotFound = found;
    this.#loaded = true;
  }

  async #readJournal(fromStart: boolean): Promise<void> {
    const file = this.#journalFile!;
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    try {
      const { size } = await handle.stat();
      const start = fromStart ? 0 : this.#journalOffset;
      if (size <= start) return;
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      let pos = 0;
      if (start === 0) {
        if (buf.length < JOURNAL_MAGIC.length) {
          this.#tornTail = true;
          return;
        }
        if (!buf.subarray(0, 4).equals(JOURNAL_MAGIC)) throw new PalyraError('state_corrupt', `journal ${file} has no IDJ1 header`);
        pos = 4;
        this.#journalOffset = 4;
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
        if (length < AEAD_OVERHEAD || end > buf.length) {
          this.#tornTail = true;
          break;
        }
        let ops: Op[];
        try {
          ops = this.#open(generation, buf.subarray(pos + FRAME_HEADER, end));
        } catch (e) {
          if (end === buf.length) {
            // The last frame was being written when its writer died: not acknowledged, so not applied.
            this.#tornTail = true;
            break;
          }
          throw new PalyraError('state_corrupt', `journal ${file} has a damaged record at byte ${start + pos}`, { cause: e });
        }
        if (generation > this.#generation) {
          if (generation !== this.#generation + 1) {
            throw new PalyraError('state_corrupt', `journal ${file} skips from generation ${this.#generation} to ${generation}`);
          }
          for (const op of ops) this.#codec.apply(this.#state, op);
          this.#generation = generation;
          this.#recordsSinceSnapshot++;
        }
        pos = end;
        this.#journalOffset = start + pos;
      }
    } finally {
      await handle.close();
    }
  }

  #aad(generation: number): Buffer {
    return Buffer.from(`${this.#snapshotKey}#journal#${generation}`, 'utf8');
  }

  #open(generation: number, payload: Buffer): Op[] {
    const plain = openSealed(this.#key!, payload, this.#aad(generation));
    const ops = JSON.parse(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).toString('utf8')) as unknown;
    if (!Array.isArray(ops)) throw new PalyraError('state_corrupt', 'journal record is not a list of operations');
    return ops as Op[];
  }

  #seal(generation: number, ops: readonly Op[]): Buffer {
    const sealed = seal(this.#key!, Buffer.from(JSON.stringify(ops), 'utf8'), this.#aad(generation));
    const header = Buffer.alloc(FRAME_HEADER);
    header.writeUInt32BE(sealed.length, 0);
    header.writeBigUInt64BE(BigInt(generation), 4);
    return Buffer.concat([header, sealed]);
  }

  /**
   * Persists `ops` as generation + 1 and applies them in memory. The in-memory state changes only after the record
   * is durable, so a failed write leaves both disk and memory as they were. Call `refresh` first (under the lock).
   */
  async commit(ops: readonly Op[]): Promise<void> {
    if (!this.#loaded) throw new PalyraError('internal', 'journaled state committed before it was loaded');
    const generation = this.#generation + 1;
    if (this.#journalFile === null || this.#snapshotStamp === null) {
      // Test stores and the very first write go straight to a snapshot.
      const next = this.#cloneWith(ops);
      await this.#writeSnapshot(next, generation);
      this.#state = next;
      this.#generation = generation;
      this.#snapshotFound = true;
      return;
    }
    await this.#append(generation, ops);
    for (const op of ops) this.#codec.apply(this.#state, op);
    this.#generation = generation;
    this.#recordsSinceSnapshot++;
    if (this.#recordsSinceSnapshot >= this.#compactEvery) await this.compact();
  }

  /** Rewrites the snapshot at the current generation and empties the journal. */
  async compact(): Promise<void> {
    await this.#writeSnapshot(this.#state, this.#generation);
    if (this.#journalFile !== null) {
      // A crash between the snapshot and this truncate is harmless: records ≤ the snapshot's generation are skipped.
      try {
        await truncate(this.#journalFile, JOURNAL_MAGIC.length);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      this.#journalOffset = JOURNAL_MAGIC.length;
      this.#tornTail = false;
      this.#journalStamp = await stampOf(this.#journalFile);
    }
    this.#recordsSinceSnapshot = 0;
  }

  #cloneWith(ops: readonly Op[]): S {
    // Replaying the snapshot form gives a deep copy without knowing the state's shape.
    const copy = this.#codec.parseSnapshot(JSON.parse(JSON.stringify(this.#codec.snapshot(this.#state, this.#generation)))).state;
    for (const op of ops) this.#codec.apply(copy, op);
    return copy;
  }

  async #writeSnapshot(state: S, generation: number): Promise<void> {
    const json = JSON.stringify(this.#codec.snapshot(state, generation));
    await this.#store.writeSecret(this.#snapshotKey, Buffer.from(json, 'utf8'));
    if (isStatable(this.#store)) this.#snapshotStamp = await this.#store.statSecret(this.#snapshotKey);
  }

  async #append(generation: number, ops: readonly Op[]): Promise<void> {
    const file = this.#journalFile!;
    const frame = this.#seal(generation, ops);
    const handle = await open(file, 'a+', 0o600);
    try {
      let { size } = await handle.stat();
      if (size < JOURNAL_MAGIC.length) {
        await handle.truncate(0);
        await handle.write(JOURNAL_MAGIC, 0, JOURNAL_MAGIC.length, null);
        size = JOURNAL_MAGIC.length;
        this.#journalOffset = size;
      } else if (size !== this.#journalOffset) {
        if (!this.#tornTail && size > this.#journalOffset) {
          throw new PalyraError('internal', 'journal grew since the last refresh; commit must follow refresh() under the state lock');
        }
        await handle.truncate(this.#journalOffset);
      }
      this.#tornTail = false;
      await handle.write(frame, 0, frame.length, null);
      await handle.sync();
      this.#journalOffset += frame.length;
    } finally {
      await handle.close();
    }
    // The first append created the file: make its directory entry durable (guarded where directories cannot be opened).
    if (this.#journalStamp === null) await fsyncDir(path.dirname(file));
    this.#journalStamp = await stampOf(file);
  }
}
