/**
 * The keyed, chained audit log of security decisions: `root/audit.v1.jsonl`, one JSON entry per line, each entry's
 * MAC covering the previous entry's, so editing, removing or reordering an entry shows — and, since the chain is
 * keyed from the store key, nobody without that key can write a chain that verifies.
 *
 * Keyed entries carry `"alg":"hmac-sha256"` and
 *   hash = hex HMAC-SHA256(K, UTF-8 of `prev` (64 hex chars) ‖ canonical JSON of {event, fields, seq, ts_ms}),
 *   K = HKDF-SHA256(ikm = store key, salt = empty, info = "palyra audit chain v1", 32 bytes),
 * where canonical JSON sorts object keys; `prev` of the first entry (seq 1) is 64 zeros. Entries written before the
 * chain was keyed have no `alg` and hash = hex SHA-256(prev ‖ canonical JSON); they may only precede keyed ones, and
 * the first keyed entry's MAC covers them.
 *
 * The log is plaintext on purpose (operators read it), so callers pass only non-secret fields: device ids,
 * fingerprints, request ids, outcomes — never PINs, QR tokens, keys or certificates' private parts.
 * Appenders hold the state lock (withStateLock), since the CLI, daemon and app append to the same file.
 */

import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { ensurePrivateDir, errnoOf, fsyncDir, messageOf, PRIVATE_FILE_MODE } from './atomic-file.js';
import { ioBoundary } from './io-faults.js';

export const AUDIT_LOG_FILE = 'audit.v1.jsonl';
/**
 * Sealed segments of the log: `audit.v1.<seq of its first entry, 16 digits>.jsonl`. When the active file would grow
 * past the segment size it is renamed to its segment name and a new active file starts; the chain (seq and prev)
 * simply continues across files, so segments + active file read in order are one chain.
 */
const SEGMENT_NAME = /^audit\.v1\.(\d{16})\.jsonl$/;
export const DEFAULT_AUDIT_SEGMENT_BYTES = 8 * 1024 * 1024;
const MIN_AUDIT_SEGMENT_BYTES = 4096;

export function auditSegmentName(firstSeq: number): string {
  return `audit.v1.${String(firstSeq).padStart(16, '0')}.jsonl`;
}

/** The segment size in force: PALYRA_AUDIT_SEGMENT_BYTES (4096 … 2^31) or the default. */
export function auditSegmentBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PALYRA_AUDIT_SEGMENT_BYTES;
  if (raw === undefined || raw === '') return DEFAULT_AUDIT_SEGMENT_BYTES;
  const value = Number(raw);
  if (!/^\d{1,10}$/.test(raw) || value < MIN_AUDIT_SEGMENT_BYTES || value > 2 ** 31) {
    throw new PalyraError('invalid_argument', `PALYRA_AUDIT_SEGMENT_BYTES must be a whole number of bytes from ${MIN_AUDIT_SEGMENT_BYTES} to 2147483648 (got '${raw.slice(0, 32)}')`);
  }
  return value;
}
export const AUDIT_GENESIS_PREV = '0'.repeat(64);
export const AUDIT_KEYED_ALG = 'hmac-sha256';
const AUDIT_KEY_INFO = 'palyra audit chain v1';

export type AuditFieldValue = string | number | boolean | null;

export interface AuditEntry {
  seq: number;
  ts_ms: number;
  event: string;
  fields: Record<string, AuditFieldValue>;
  prev: string;
  hash: string;
  /** 'hmac-sha256' for keyed entries; absent for entries written before the chain was keyed. */
  alg?: typeof AUDIT_KEYED_ALG;
}

/** An entry before it is chained: what a state mutation records (its seq is fixed under the state lock). */
export interface AuditIntent {
  event: string;
  fields: Record<string, AuditFieldValue>;
}

export interface PreparedAuditEntry extends AuditIntent {
  seq: number;
  ts_ms: number;
}

/** The chain key derived from the store key. */
export function auditKey(storeKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', storeKey, new Uint8Array(0), AUDIT_KEY_INFO, 32));
}

/** The keyed MAC of an entry. */
export function auditEntryMac(key: Uint8Array, prev: string, seq: number, tsMs: number, event: string, fields: Record<string, AuditFieldValue>): string {
  return createHmac('sha256', key).update(prev + canonicalBody(seq, tsMs, event, fields), 'utf8').digest('hex');
}

export interface AuditVerification {
  ok: boolean;
  /** Entries that verified before the first break (all of them when ok). */
  entries: number;
  brokenAtSeq?: number;
  reason?: string;
}

const NEWLINE = 0x0a;
/** Bytes read per step when scanning backwards for the last lines. */
const TAIL_CHUNK = 64 * 1024;

function canonicalBody(seq: number, tsMs: number, event: string, fields: Record<string, AuditFieldValue>): string {
  // fromEntries defines own properties, so even a field named __proto__ is hashed rather than swallowed.
  const sortedFields = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify({ event, fields: sortedFields, seq, ts_ms: tsMs });
}

export function auditEntryHash(prev: string, seq: number, tsMs: number, event: string, fields: Record<string, AuditFieldValue>): string {
  return createHash('sha256').update(prev + canonicalBody(seq, tsMs, event, fields), 'utf8').digest('hex');
}

function validateInput(event: string, fields: Record<string, AuditFieldValue>, now: number): void {
  if (event.length === 0) throw new PalyraError('invalid_argument', 'audit event name must not be empty');
  if (!Number.isSafeInteger(now) || now < 0) throw new PalyraError('invalid_argument', 'audit timestamp must be unix milliseconds');
  for (const [name, value] of Object.entries(fields)) {
    const ok =
      value === null ||
      typeof value === 'string' ||
      typeof value === 'boolean' ||
      (typeof value === 'number' && Number.isFinite(value));
    if (!ok) throw new PalyraError('invalid_argument', `audit field '${name}' must be a string, finite number, boolean or null`);
  }
}

/** Parses one line into an entry, checking only its shape; null when it is not an entry. */
function parseEntry(line: string): AuditEntry | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const e = value as Record<string, unknown>;
  const fields = e.fields;
  if (
    !Number.isSafeInteger(e.seq) ||
    !Number.isSafeInteger(e.ts_ms) ||
    typeof e.event !== 'string' ||
    typeof e.prev !== 'string' ||
    typeof e.hash !== 'string' ||
    typeof fields !== 'object' ||
    fields === null ||
    Array.isArray(fields)
  ) {
    return null;
  }
  for (const v of Object.values(fields)) {
    if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return null;
  }
  if (e.alg !== undefined && e.alg !== AUDIT_KEYED_ALG) return null;
  return {
    seq: e.seq as number,
    ts_ms: e.ts_ms as number,
    event: e.event,
    fields: fields as Record<string, AuditFieldValue>,
    prev: e.prev,
    hash: e.hash,
    ...(e.alg === AUDIT_KEYED_ALG ? { alg: AUDIT_KEYED_ALG } : {}),
  };
}

/**
 * The last `count` complete lines (each ended by a newline), oldest first, and the offset just past the last
 * newline — where the acknowledged part of the file ends. Reads backwards, so the cost does not grow with the log.
 */
async function readLastLines(handle: FileHandle, size: number, count: number): Promise<{ lines: string[]; completeEnd: number }> {
  let start = size;
  let buffer = Buffer.alloc(0);
  let newlines = 0;
  // count + 1 newlines guarantee `count` whole lines after the first one.
  while (start > 0 && newlines < count + 1) {
    const chunk = Buffer.alloc(Math.min(TAIL_CHUNK, start));
    start -= chunk.length;
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, start);
    if (bytesRead !== chunk.length) throw new Error(`short read at offset ${start}`);
    // indexOf, not a byte loop: this runs on every append, and a JS loop over a whole chunk cost ≈ 5 ms per pairing.
    for (let at = chunk.indexOf(NEWLINE); at >= 0 && newlines < count + 1; at = chunk.indexOf(NEWLINE, at + 1)) newlines += 1;
    buffer = Buffer.concat([chunk, buffer]);
  }
  const lastNewline = buffer.lastIndexOf(NEWLINE);
  if (lastNewline < 0) return { lines: [], completeEnd: 0 };
  // Only the wanted lines are decoded (not the whole chunk), newest first, then put oldest first.
  const lines: string[] = [];
  for (let end = lastNewline; lines.length < count; ) {
    const previous = end > 0 ? buffer.lastIndexOf(NEWLINE, end - 1) : -1;
    if (previous < 0) {
      // Unless we reached the start of the file, the text before the first newline is the tail of a line we did
      // not read whole.
      if (start === 0) lines.push(buffer.toString('utf8', 0, end));
      break;
    }
    lines.push(buffer.toString('utf8', previous + 1, end));
    end = previous;
  }
  return { lines: lines.reverse(), completeEnd: start + lastNewline + 1 };
}

/** The chain head: the last acknowledged entry's seq and hash (seq 0 and the genesis prev for an empty log). */
export interface AuditHead {
  seq: number;
  hash: string;
}

export const EMPTY_AUDIT_HEAD: AuditHead = { seq: 0, hash: AUDIT_GENESIS_PREV };

/** Assigns seq numbers after `head` to intents recorded at `now`. */
export function prepareAuditEntries(head: AuditHead, intents: readonly AuditIntent[], now: number): PreparedAuditEntry[] {
  return intents.map((intent, i) => {
    validateInput(intent.event, intent.fields, now);
    return { seq: head.seq + 1 + i, ts_ms: now, event: intent.event, fields: { ...intent.fields } };
  });
}

/**
 * The head this process last wrote: the active file's inode and size right after the write, and the bytes of the
 * last line. The file still ends with exactly those bytes at that size ⇒ its last entry is the one written (and
 * checked) then. Compared by content, not by timestamps, which a same-size edit within one clock tick would not move.
 */
interface HeadCache {
  readonly ino: bigint;
  readonly size: bigint;
  readonly line: Buffer;
  readonly head: AuditHead;
}

/** Whether the file open as `fd` is still as `cache` says: one fstat and one read of the last line's bytes. */
function stillCached(fd: number, cache: HeadCache): boolean {
  const s = fstatSync(fd, { bigint: true });
  if (s.ino !== cache.ino || s.size !== cache.size) return false;
  const bytes = Buffer.alloc(cache.line.length);
  return readSync(fd, bytes, 0, bytes.length, Number(cache.size) - bytes.length) === bytes.length && bytes.equals(cache.line);
}

export class AuditLog {
  /** The active file, where entries are appended. */
  readonly file: string;
  readonly #dir: string;
  /** The chain key; null = unkeyed SHA-256 chain (stores without a key, e.g. tests). */
  readonly #key: Uint8Array | null;
  readonly #segmentBytes: number;
  /** Entries from this seq on must be keyed (set from the authenticated state); unkeyed logs: never. */
  #keyedFromSeq = Number.MAX_SAFE_INTEGER;
  /**
   * What this process last appended (see HeadCache): while the active file is as it was left, `head` answers from
   * here with an open, a stat and one small read, instead of listing the segments and parsing and checking the last
   * entry again. Anything else (another process appended, an edit, a seal) misses and reads the file as before.
   */
  #headCache: HeadCache | null = null;

  private constructor(file: string, key: Uint8Array | null, segmentBytes: number) {
    this.file = file;
    this.#dir = path.dirname(file);
    this.#key = key;
    this.#segmentBytes = segmentBytes;
  }

  /**
   * `storeKey`: the state's store key, from which the chain key is derived. `segmentBytes`: the active file is sealed
   * into a segment before it would grow past this (default PALYRA_AUDIT_SEGMENT_BYTES, else 8 MiB).
   */
  static async open(root: string, options: { storeKey?: Uint8Array; segmentBytes?: number } = {}): Promise<AuditLog> {
    await ensurePrivateDir(root);
    const segmentBytes = Math.max(MIN_AUDIT_SEGMENT_BYTES, options.segmentBytes ?? auditSegmentBytesFromEnv());
    return new AuditLog(path.join(path.resolve(root), AUDIT_LOG_FILE), options.storeKey === undefined ? null : auditKey(options.storeKey), segmentBytes);
  }

  get keyed(): boolean {
    return this.#key !== null;
  }

  /** From the authenticated state: the first seq whose entry must be keyed (entries before it may be unkeyed). */
  setKeyedFrom(seq: number): void {
    if (this.#key !== null) this.#keyedFromSeq = seq;
  }

  #broken(message: string, file = this.file): PalyraError {
    return new PalyraError('audit_chain_broken', `audit log ${file}: ${message}; run 'palyra audit verify' (and 'palyra state repair --accept-loss' to recover)`, {
      details: { path: file },
    });
  }

  #ioError(what: string, file: string, error: unknown): PalyraError {
    return new PalyraError('store_io_failed', `failed to ${what} audit log ${file}: ${messageOf(error)}`, { cause: error, details: { path: file } });
  }

  /** The sealed segments, oldest first. */
  async segments(): Promise<{ file: string; firstSeq: number }[]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return [];
      throw this.#ioError('list the segments of', this.file, error);
    }
    return names
      .map((name) => ({ name, match: SEGMENT_NAME.exec(name) }))
      .filter((n): n is { name: string; match: RegExpExecArray } => n.match !== null)
      .map(({ name, match }) => ({ file: path.join(this.#dir, name), firstSeq: Number(match[1]) }))
      .sort((a, b) => a.firstSeq - b.firstSeq);
  }

  /** Every file of the chain in order: segments, then the active file. */
  async #files(): Promise<string[]> {
    return [...(await this.segments()).map((segment) => segment.file), this.file];
  }

  /** The hash `entry` must carry after `prev`, or null when it is keyed and this log has no key to check it. */
  #expected(entry: AuditEntry, prev: string): string | null {
    if (entry.alg === AUDIT_KEYED_ALG) {
      return this.#key === null ? null : auditEntryMac(this.#key, prev, entry.seq, entry.ts_ms, entry.event, entry.fields);
    }
    return auditEntryHash(prev, entry.seq, entry.ts_ms, entry.event, entry.fields);
  }

  /**
   * What is wrong with `entry` on its own, once its link to the entry before it checked out (its `prev` is that
   * entry's hash): keyed where it must be, and its MAC (or, before the chain was keyed, its hash) right. `keyedSeen`:
   * a keyed entry came before it. Null when nothing is wrong.
   */
  #entryFault(entry: AuditEntry, keyedSeen: boolean): string | null {
    if (entry.alg !== AUDIT_KEYED_ALG) {
      if (keyedSeen) return 'an unkeyed entry follows keyed ones';
      if (entry.seq >= this.#keyedFromSeq) return `entry ${entry.seq} is not keyed (the chain is keyed from entry ${this.#keyedFromSeq})`;
    }
    const expected = this.#expected(entry, entry.prev);
    if (expected === null) return 'keyed entry, but no store key to check it with';
    if (entry.hash !== expected) return entry.alg === AUDIT_KEYED_ALG ? 'MAC does not match the entry contents' : 'hash does not match the entry contents';
    return null;
  }

  /** Checks the last entry on its own (it parses and its MAC matches its own prev): the cheap check before a write. */
  #checkLast(line: string | undefined, file = this.file): AuditHead {
    if (line === undefined) return EMPTY_AUDIT_HEAD;
    const last = parseEntry(line);
    if (last === null) throw this.#broken('the last entry does not parse', file);
    if (last.alg !== AUDIT_KEYED_ALG && last.seq >= this.#keyedFromSeq) throw this.#broken(`entry ${last.seq} is not keyed`, file);
    const expected = this.#expected(last, last.prev);
    if (expected !== null && expected !== last.hash) throw this.#broken(`entry ${last.seq} does not match its MAC`, file);
    return { seq: last.seq, hash: last.hash };
  }

  /**
   * The last `count` complete lines of the chain, oldest first, reading backwards from the active file into as many
   * segments as it takes — the cost follows `count`, not the log's length.
   */
  async #lastLines(count: number): Promise<{ lines: string[]; file: string }> {
    const files = (await this.#files()).reverse();
    let lines: string[] = [];
    let lastFile = this.file;
    for (const file of files) {
      let handle: FileHandle;
      try {
        handle = await open(file, 'r');
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') continue;
        throw this.#ioError('read', file, error);
      }
      try {
        const { size } = await handle.stat();
        const found = await readLastLines(handle, size, count - lines.length);
        if (lines.length === 0 && found.lines.length > 0) lastFile = file;
        lines = [...found.lines, ...lines];
      } finally {
        await handle.close();
      }
      if (lines.length >= count) break;
    }
    return { lines, file: lastFile };
  }

  #activeStillCached(cache: HeadCache): boolean {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return false;
    }
    try {
      return stillCached(fd, cache);
    } catch {
      return false;
    } finally {
      closeSync(fd);
    }
  }

  /** The chain head, after checking the last entry. A torn final line (never acknowledged) is not an entry. */
  async head(): Promise<AuditHead> {
    const cached = this.#headCache;
    if (cached !== null) {
      if (this.#activeStillCached(cached)) return cached.head;
      this.#headCache = null;
    }
    const { lines, file } = await this.#lastLines(1);
    return this.#checkLast(lines[0], file);
  }

  /** Appends one entry after the last one on disk. The caller holds the state lock. */
  async append(event: string, fields: AuditEntry['fields'], now: number): Promise<AuditEntry> {
    validateInput(event, fields, now);
    const head = await this.head();
    const [entry] = await this.appendPrepared(prepareAuditEntries(head, [{ event, fields }], now));
    return entry!;
  }

  /**
   * Appends the prepared entries that are not in the log yet (seq above its last one), chained and fsynced; entries
   * already present are skipped, so replaying a mutation's entries after a crash appends each exactly once. A gap
   * (an entry missing between the log's last one and these) is `audit_chain_broken`. A torn final line, left by a
   * writer killed mid-append, was never acknowledged and is cut off first. When the active file would grow past the
   * segment size, it is sealed first (renamed to its segment name) and the entries start a new active file. The
   * caller holds the state lock.
   */
  async appendPrepared(entries: readonly PreparedAuditEntry[]): Promise<AuditEntry[]> {
    if (entries.length === 0) return [];
    let handle: FileHandle | undefined;
    let writtenFrom = -1;
    try {
      // Read-write, created if missing, without O_APPEND: a torn tail is truncated and overwritten in place.
      ioBoundary('open', this.file);
      handle = await open(this.file, constants.O_RDWR | constants.O_CREAT, PRIVATE_FILE_MODE);
      const { size } = await handle.stat();
      let created = size === 0;
      // Left as this process wrote it: the file ends with the cached head's complete line.
      const cache = this.#headCache;
      this.#headCache = null;
      const cached = cache !== null && stillCached(handle.fd, cache) ? cache.head : null;
      const active = cached !== null ? null : await readLastLines(handle, size, 1);
      let completeEnd = active === null ? size : active.completeEnd;
      // An empty active file (new log, or just sealed) continues the newest segment's chain.
      const head = cached ?? (active!.lines.length > 0 ? this.#checkLast(active!.lines[0]) : await this.head());
      const pending = entries.filter((e) => e.seq > head.seq);
      if (pending.length === 0) return [];
      let prev = head.hash;
      let expectedSeq = head.seq + 1;
      const written: AuditEntry[] = [];
      for (const e of pending) {
        if (e.seq !== expectedSeq) throw this.#broken(`entry ${expectedSeq} is missing (the next one to write is ${e.seq})`);
        const fields = { ...e.fields };
        const hash =
          this.#key === null ? auditEntryHash(prev, e.seq, e.ts_ms, e.event, fields) : auditEntryMac(this.#key, prev, e.seq, e.ts_ms, e.event, fields);
        written.push({ seq: e.seq, ts_ms: e.ts_ms, event: e.event, fields, prev, hash, ...(this.#key === null ? {} : { alg: AUDIT_KEYED_ALG }) });
        prev = hash;
        expectedSeq += 1;
      }
      const text = Buffer.from(written.map((entry) => `${JSON.stringify(entry)}\n`).join(''), 'utf8');
      if (completeEnd > 0 && completeEnd + text.length > this.#segmentBytes) {
        handle = await this.#seal(handle, size, completeEnd);
        completeEnd = 0;
        created = true;
      } else if (completeEnd < size) {
        ioBoundary('truncate', this.file);
        await handle.truncate(completeEnd);
      }
      writtenFrom = completeEnd;
      ioBoundary('write', this.file);
      await handle.write(text, 0, text.length, completeEnd);
      ioBoundary('sync', this.file);
      await handle.sync();
      writtenFrom = -1;
      // The first entry also created the file: make its directory entry durable too.
      if (created) await fsyncDir(this.#dir);
      const last = written[written.length - 1]!;
      const lastLine = Buffer.from(`${JSON.stringify(last)}\n`, 'utf8');
      this.#headCache = { ino: (await handle.stat({ bigint: true })).ino, size: BigInt(completeEnd + text.length), line: lastLine, head: { seq: last.seq, hash: last.hash } };
      return written;
    } catch (error) {
      // Entries whose write or fsync failed are not acknowledged: cut them off again (best effort; the journal still
      // holds them, and the next writer appends them once more).
      if (writtenFrom >= 0 && handle !== undefined) {
        const h = handle;
        await h
          .truncate(writtenFrom)
          .then(() => h.sync())
          .catch(() => undefined);
      }
      if (error instanceof PalyraError) throw error;
      throw this.#ioError('append to', this.file, error);
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /**
   * Seals the active file (open as `handle`, acknowledged up to `completeEnd`) into its segment and opens a new,
   * empty active file. A crash after the rename leaves no active file: the next append creates it, continuing the
   * chain from the segment's last entry.
   */
  async #seal(handle: FileHandle, size: number, completeEnd: number): Promise<FileHandle> {
    if (completeEnd < size) {
      ioBoundary('truncate', this.file);
      await handle.truncate(completeEnd);
    }
    const first = Buffer.alloc(Math.min(completeEnd, TAIL_CHUNK));
    await handle.read(first, 0, first.length, 0);
    const firstEntry = parseEntry(first.subarray(0, Math.max(0, first.indexOf(NEWLINE))).toString('utf8'));
    if (firstEntry === null) throw this.#broken('the first entry does not parse');
    ioBoundary('sync', this.file);
    await handle.sync();
    await handle.close();
    const segment = path.join(this.#dir, auditSegmentName(firstEntry.seq));
    ioBoundary('rename', segment);
    await rename(this.file, segment);
    await fsyncDir(this.#dir);
    ioBoundary('open', this.file);
    return open(this.file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, PRIVATE_FILE_MODE);
  }

  /**
   * For `state repair --accept-loss`: cuts the log after its first `seq` entries (the ones that verified), removing
   * later segments, and returns how many entries were dropped. The caller holds the state lock.
   */
  async truncateAfter(seq: number): Promise<number> {
    this.#headCache = null;
    let kept = 0;
    let dropped = 0;
    for (const file of await this.#files()) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') continue;
        throw this.#ioError('read', file, error);
      }
      const lines = text.split('\n');
      lines.pop();
      const keep = Math.max(0, Math.min(lines.length, seq - kept));
      kept += keep;
      dropped += lines.length - keep;
      if (keep === lines.length && text.endsWith('\n')) continue;
      try {
        if (keep === 0 && file !== this.file) {
          ioBoundary('unlink', file);
          await unlink(file);
          continue;
        }
        ioBoundary('open', file);
        const handle = await open(file, constants.O_RDWR);
        try {
          ioBoundary('truncate', file);
          await handle.truncate(Buffer.byteLength(lines.slice(0, keep).map((line) => `${line}\n`).join(''), 'utf8'));
          ioBoundary('sync', file);
          await handle.sync();
        } finally {
          await handle.close().catch(() => undefined);
        }
      } catch (error) {
        throw this.#ioError('truncate', file, error);
      }
    }
    await fsyncDir(this.#dir);
    return dropped;
  }

  /** The last `n` acknowledged entries, oldest first (a torn final line is not one); unparseable lines are skipped. */
  async tail(n: number): Promise<AuditEntry[]> {
    if (!Number.isSafeInteger(n) || n <= 0) return [];
    const { lines } = await this.#lastLines(n);
    return lines.map(parseEntry).filter((e): e is AuditEntry => e !== null);
  }

  /**
   * The last `n` entries and a check of exactly those: each one's MAC, and that each follows from the one before it
   * (the entry before the first one included). Costs O(n) whatever the log's length; `verify` checks everything.
   * `entries` in the result is the chain's length as its head says.
   */
  async tailChecked(n: number): Promise<{ entries: AuditEntry[]; chain: AuditVerification & { checked: number } }> {
    if (!Number.isSafeInteger(n) || n <= 0) return { entries: [], chain: { ok: true, entries: 0, checked: 0 } };
    const { lines } = await this.#lastLines(n + 1);
    const parsed = lines.map(parseEntry);
    const entries = parsed.slice(-n).filter((e): e is AuditEntry => e !== null);
    const total = parsed.at(-1)?.seq ?? 0;
    const broken = (seq: number, reason: string) => ({ entries, chain: { ok: false, entries: total, checked: 0, brokenAtSeq: seq, reason } });
    let before: AuditEntry | null = null;
    let keyedSeen = false;
    for (const entry of parsed) {
      if (entry === null) return broken(before === null ? 0 : before.seq + 1, 'entry does not parse');
      if (before !== null) {
        if (entry.seq !== before.seq + 1) return broken(before.seq + 1, `expected seq ${before.seq + 1}, found ${entry.seq}`);
        if (entry.prev !== before.hash) return broken(entry.seq, 'prev does not match the previous entry hash');
      } else if (lines.length <= n && (entry.seq !== 1 || entry.prev !== AUDIT_GENESIS_PREV)) {
        // The whole log was read: its first entry must be the chain's first.
        return broken(1, `the log starts at entry ${entry.seq}`);
      }
      const fault = this.#entryFault(entry, keyedSeen);
      if (fault !== null) return broken(entry.seq, fault);
      keyedSeen ||= entry.alg === AUDIT_KEYED_ALG;
      before = entry;
    }
    return { entries, chain: { ok: true, entries: total, checked: entries.length } };
  }

  /**
   * Recomputes the whole chain; reports the first entry that does not follow from the one before it. With a key,
   * keyed entries are checked by MAC and an unkeyed entry after a keyed one is a break; without one, keyed entries
   * cannot be checked and the chain is reported as not verified.
   */
  async verify(): Promise<AuditVerification> {
    const { head: _head, ...result } = await this.verifyChain();
    return result;
  }

  /**
   * verify(), also returning the head of the verified part (for the rollback anchor and `state verify`). Segments
   * are read in order, each must start where the one before ended (its name says its first seq) and end with a
   * whole line; only the active file may end with a torn line (never acknowledged).
   */
  async verifyChain(): Promise<AuditVerification & { head: AuditHead }> {
    let prev = AUDIT_GENESIS_PREV;
    let expectedSeq = 1;
    let keyedSeen = false;
    const broken = (reason: string): AuditVerification & { head: AuditHead } => ({
      ok: false,
      entries: expectedSeq - 1,
      brokenAtSeq: expectedSeq,
      reason,
      head: { seq: expectedSeq - 1, hash: prev },
    });
    const segments = await this.segments();
    const files = [...segments.map((segment) => ({ file: segment.file, firstSeq: segment.firstSeq })), { file: this.file, firstSeq: null }];
    for (const { file, firstSeq } of files) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') continue;
        throw this.#ioError('read', file, error);
      }
      const name = path.basename(file);
      if (firstSeq !== null && firstSeq !== expectedSeq) return broken(`segment ${name} starts at entry ${firstSeq}, expected ${expectedSeq}`);
      const lines = text.split('\n');
      const torn = lines.pop(); // the text after the last newline: empty, or a torn line that was never acknowledged
      if (firstSeq !== null && torn !== '') return broken(`segment ${name} ends with a partial line`);
      for (const line of lines) {
        const entry = parseEntry(line);
        if (entry === null) return broken('entry does not parse');
        if (entry.seq !== expectedSeq) return broken(`expected seq ${expectedSeq}, found ${entry.seq}`);
        if (entry.prev !== prev) return broken('prev does not match the previous entry hash');
        const fault = this.#entryFault(entry, keyedSeen);
        if (fault !== null) return broken(fault);
        keyedSeen ||= entry.alg === AUDIT_KEYED_ALG;
        prev = entry.hash;
        expectedSeq += 1;
      }
    }
    return { ok: true, entries: expectedSeq - 1, head: { seq: expectedSeq - 1, hash: prev } };
  }
}
