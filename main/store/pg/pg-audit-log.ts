/**
 * The keyed audit chain in the palyra_audit table: one row per entry (seq, the entry as JSON with its prev and
 * hash, and the hash again for the head query). Entries are chained and MACed exactly as the file log does
 * (HMAC-SHA256 with the key derived from the store key), so `audit verify` means the same on both backends.
 * Appends run inside the mutation's transaction (PgContext), so an entry exists if and only if its change does.
 */

import { PalyraError } from '../../core/errors.js';
import { AUDIT_GENESIS_PREV, AUDIT_KEYED_ALG, EMPTY_AUDIT_HEAD, auditEntryMac, auditKey } from '../audit-log.js';
import type { AuditEntry, AuditHead, AuditVerification, PreparedAuditEntry } from '../audit-log.js';
import type { PgContext } from './pg-context.js';

/** Rows read per step by verifyChain (bounded memory whatever the chain's length). */
const VERIFY_PAGE = 5_000;
/** Rows per INSERT when importing a file log. */
const IMPORT_PAGE = 1_000;

export class PgAuditLog {
  readonly #db: PgContext;
  readonly #key: Uint8Array;
  /** Where the log lives, for messages (no password). */
  readonly file: string;

  constructor(db: PgContext, storeKey: Uint8Array) {
    this.#db = db;
    this.#key = auditKey(storeKey);
    this.file = `${db.where}#palyra_audit`;
  }

  get keyed(): boolean {
    return true;
  }

  /** Every entry in the database is keyed (the table starts keyed); kept for the AuditStore shape. */
  setKeyedFrom(_seq: number): void {
    // nothing to do
  }

  async head(): Promise<AuditHead> {
    const rows = await this.#db.query<{ seq: string; hash: string }>('SELECT seq, hash FROM palyra_audit ORDER BY seq DESC LIMIT 1');
    const row = rows[0];
    return row === undefined ? EMPTY_AUDIT_HEAD : { seq: Number(row.seq), hash: row.hash };
  }

  /** Chains and inserts the entries above the head (in the caller's transaction); a gap is `audit_chain_broken`. */
  async appendPrepared(entries: readonly PreparedAuditEntry[]): Promise<AuditEntry[]> {
    if (entries.length === 0) return [];
    const head = await this.head();
    const pending = entries.filter((e) => e.seq > head.seq);
    let prev = head.hash;
    let expected = head.seq + 1;
    const written: AuditEntry[] = [];
    for (const e of pending) {
      if (e.seq !== expected) {
        throw new PalyraError('audit_chain_broken', `audit log ${this.file}: entry ${expected} is missing (the next one to write is ${e.seq})`);
      }
      const fields = { ...e.fields };
      const hash = auditEntryMac(this.#key, prev, e.seq, e.ts_ms, e.event, fields);
      written.push({ seq: e.seq, ts_ms: e.ts_ms, event: e.event, fields, prev, hash, alg: AUDIT_KEYED_ALG });
      prev = hash;
      expected += 1;
    }
    if (written.length === 0) return [];
    await this.#db.query(
      'INSERT INTO palyra_audit (seq, entry, hash) SELECT * FROM unnest($1::bigint[], $2::jsonb[], $3::text[])',
      [written.map((w) => w.seq), written.map((w) => JSON.stringify(w)), written.map((w) => w.hash)],
    );
    return written;
  }

  /**
   * `state migrate --from-dir`: copies a file log's entries as they are (prev, hash and alg unchanged, so the chain
   * still verifies under the same store key), in the caller's transaction. Only into an empty table.
   */
  async importEntries(entries: readonly AuditEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += IMPORT_PAGE) {
      const page = entries.slice(i, i + IMPORT_PAGE);
      await this.#db.query(
        'INSERT INTO palyra_audit (seq, entry, hash) SELECT * FROM unnest($1::bigint[], $2::jsonb[], $3::text[])',
        [page.map((e) => e.seq), page.map((e) => JSON.stringify(e)), page.map((e) => e.hash)],
      );
    }
  }

  async tail(n: number): Promise<AuditEntry[]> {
    if (!Number.isSafeInteger(n) || n <= 0) return [];
    const rows = await this.#db.query<{ entry: AuditEntry }>('SELECT entry FROM palyra_audit ORDER BY seq DESC LIMIT $1', [n]);
    return rows.map((r) => r.entry).reverse();
  }

  /** Why `entry` does not follow `before` (or the genesis), or null when it does. */
  #fault(entry: AuditEntry, prevHash: string, expectedSeq: number): string | null {
    if (entry.seq !== expectedSeq) return `expected seq ${expectedSeq}, found ${entry.seq}`;
    if (entry.prev !== prevHash) return 'prev does not match the previous entry hash';
    if (entry.alg !== AUDIT_KEYED_ALG) return `entry ${entry.seq} is not keyed`;
    if (entry.hash !== auditEntryMac(this.#key, entry.prev, entry.seq, entry.ts_ms, entry.event, entry.fields)) return 'MAC does not match the entry contents';
    return null;
  }

  async tailChecked(n: number): Promise<{ entries: AuditEntry[]; chain: AuditVerification & { checked: number } }> {
    if (!Number.isSafeInteger(n) || n <= 0) return { entries: [], chain: { ok: true, entries: 0, checked: 0 } };
    const rows = await this.#db.query<{ entry: AuditEntry }>('SELECT entry FROM palyra_audit ORDER BY seq DESC LIMIT $1', [n + 1]);
    const all = rows.map((r) => r.entry).reverse();
    const entries = all.slice(-n);
    const total = all.at(-1)?.seq ?? 0;
    let prev: AuditEntry | null = all.length > n ? all[0]! : null;
    for (const entry of entries) {
      const fault = this.#fault(entry, prev === null ? AUDIT_GENESIS_PREV : prev.hash, prev === null ? 1 : prev.seq + 1);
      if (fault !== null) return { entries, chain: { ok: false, entries: total, checked: 0, brokenAtSeq: entry.seq, reason: fault } };
      prev = entry;
    }
    return { entries, chain: { ok: true, entries: total, checked: entries.length } };
  }

  async verify(): Promise<AuditVerification> {
    const { head: _head, ...result } = await this.verifyChain();
    return result;
  }

  /** The whole chain from entry 1, page by page. */
  async verifyChain(): Promise<AuditVerification & { head: AuditHead }> {
    let prev = AUDIT_GENESIS_PREV;
    let expected = 1;
    for (;;) {
      const rows = await this.#db.query<{ entry: AuditEntry }>('SELECT entry FROM palyra_audit WHERE seq >= $1 ORDER BY seq LIMIT $2', [expected, VERIFY_PAGE]);
      if (rows.length === 0) break;
      for (const { entry } of rows) {
        const fault = this.#fault(entry, prev, expected);
        if (fault !== null) return { ok: false, entries: expected - 1, brokenAtSeq: expected, reason: fault, head: { seq: expected - 1, hash: prev } };
        prev = entry.hash;
        expected += 1;
      }
    }
    return { ok: true, entries: expected - 1, head: { seq: expected - 1, hash: prev } };
  }
}
