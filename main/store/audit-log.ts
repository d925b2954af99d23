/**
 * The hash-chained audit log of security decisions (PROTOCOL.md §5, last bullet): `root/audit.v1.jsonl`, one JSON
 * entry per line, each entry's hash covering the previous hash, so editing, removing or reordering an entry shows.
 *
 * hash = hex SHA-256(UTF-8 of `prev` (64 hex chars) ‖ canonical JSON of {seq, ts_ms, event, fields}), where canonical
 * JSON sorts object keys; `prev` of the first entry (seq 1) is 64 zeros.
 *
 * The log is plaintext on purpose (operators read it), so callers pass only non-secret fields: device ids,
 * fingerprints, request ids, outcomes — never PINs, QR tokens, keys or certificates' private parts.
 * Appenders hold the state lock (withStateLock), since the CLI, daemon and app append to the same file.
 */

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { ensurePrivateDir, errnoOf, fsyncDir, messageOf, PRIVATE_FILE_MODE } from './atomic-file.js';

export const AUDIT_LOG_FILE = 'audit.v1.jsonl';
export const AUDIT_GENESIS_PREV = '0'.repeat(64);

export type AuditFieldValue = string | number | boolean | null;

export interface AuditEntry {
  seq: number;
  ts_ms: number;
  event: string;
  fields: Record<string, AuditFieldValue>;
  prev: string;
  hash: string;
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
  return {
    seq: e.seq as number,
    ts_ms: e.ts_ms as number,
    event: e.event,
    fields: fields as Record<string, AuditFieldValue>,
    prev: e.prev,
    hash: e.hash,
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
    for (const byte of chunk) if (byte === NEWLINE) newlines += 1;
    buffer = Buffer.concat([chunk, buffer]);
  }
  const lastNewline = buffer.lastIndexOf(NEWLINE);
  if (lastNewline < 0) return { lines: [], completeEnd: 0 };
  const segments = buffer.subarray(0, lastNewline).toString('utf8').split('\n');
  // Unless we reached the start of the file, the first segment is the tail of a line we did not read whole.
  if (start > 0) segments.shift();
  return { lines: segments.slice(-count), completeEnd: start + lastNewline + 1 };
}

export class AuditLog {
  readonly file: string;

  private constructor(file: string) {
    this.file = file;
  }

  static async open(root: string): Promise<AuditLog> {
    await ensurePrivateDir(root);
    return new AuditLog(path.join(path.resolve(root), AUDIT_LOG_FILE));
  }

  /**
   * Appends one entry after the last one on disk (another process may have appended since we last looked) and
   * fsyncs it. A torn final line, left by a writer killed mid-append, was never acknowledged and is cut off first.
   * The caller holds withStateLock.
   */
  async append(event: string, fields: AuditEntry['fields'], now: number): Promise<AuditEntry> {
    validateInput(event, fields, now);
    let handle: FileHandle | undefined;
    try {
      // Read-write, created if missing, without O_APPEND: a torn tail is truncated and overwritten in place.
      handle = await open(this.file, constants.O_RDWR | constants.O_CREAT, PRIVATE_FILE_MODE);
      const { size } = await handle.stat();
      const created = size === 0;
      const { lines, completeEnd } = await readLastLines(handle, size, 1);
      if (completeEnd < size) await handle.truncate(completeEnd);
      const last = lines[0] === undefined ? null : parseEntry(lines[0]);
      if (lines[0] !== undefined && last === null) {
        throw new PalyraError('audit_chain_broken', `audit log ${this.file} ends with an entry that does not parse`, {
          details: { path: this.file },
        });
      }
      const seq = last === null ? 1 : last.seq + 1;
      const prev = last === null ? AUDIT_GENESIS_PREV : last.hash;
      const ownFields = { ...fields };
      const entry: AuditEntry = { seq, ts_ms: now, event, fields: ownFields, prev, hash: auditEntryHash(prev, seq, now, event, ownFields) };
      const line = Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
      await handle.write(line, 0, line.length, completeEnd);
      await handle.sync();
      // The first entry also created the file: make its directory entry durable too.
      if (created) await fsyncDir(path.dirname(this.file));
      return entry;
    } catch (error) {
      if (error instanceof PalyraError) throw error;
      throw new PalyraError('store_io_failed', `failed to append to audit log ${this.file}: ${messageOf(error)}`, {
        cause: error,
        details: { path: this.file },
      });
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /** The last `n` acknowledged entries, oldest first (a torn final line is not one); unparseable lines are skipped. */
  async tail(n: number): Promise<AuditEntry[]> {
    if (!Number.isSafeInteger(n) || n <= 0) return [];
    let handle: FileHandle;
    try {
      handle = await open(this.file, 'r');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return [];
      throw new PalyraError('store_io_failed', `failed to read audit log ${this.file}: ${messageOf(error)}`, { cause: error });
    }
    try {
      const { size } = await handle.stat();
      const { lines } = await readLastLines(handle, size, n);
      return lines.map(parseEntry).filter((e): e is AuditEntry => e !== null);
    } finally {
      await handle.close();
    }
  }

  /** Recomputes the whole chain; reports the first entry that does not follow from the one before it. */
  async verify(): Promise<AuditVerification> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return { ok: true, entries: 0 };
      throw new PalyraError('store_io_failed', `failed to read audit log ${this.file}: ${messageOf(error)}`, { cause: error });
    }
    const lines = text.split('\n');
    lines.pop(); // the text after the last newline: empty, or a torn line that was never acknowledged
    let prev = AUDIT_GENESIS_PREV;
    let expectedSeq = 1;
    for (const line of lines) {
      const broken = (reason: string): AuditVerification => ({ ok: false, entries: expectedSeq - 1, brokenAtSeq: expectedSeq, reason });
      const entry = parseEntry(line);
      if (entry === null) return broken('entry does not parse');
      if (entry.seq !== expectedSeq) return broken(`expected seq ${expectedSeq}, found ${entry.seq}`);
      if (entry.prev !== prev) return broken('prev does not match the previous entry hash');
      if (entry.hash !== auditEntryHash(prev, entry.seq, entry.ts_ms, entry.event, entry.fields)) {
        return broken('hash does not match the entry contents');
      }
      prev = entry.hash;
      expectedSeq += 1;
    }
    return { ok: true, entries: expectedSeq - 1 };
  }
}
