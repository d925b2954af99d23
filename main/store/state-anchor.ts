/**
 * The anti-rollback anchor: the latest generation of each state document and the audit chain's head, kept outside
 * the state directory — in the OS keychain beside the store key — so that restoring older files (or truncating the
 * journal or the audit log) is noticed at the next load as `state_rollback`.
 *
 * Entry: service `palyra-desktop`, account `anchor:<real path of the state dir>`, value JSON
 *   {"v":1,"docs":{"identity/state.v1.json":G,…},"audit_seq":N,"audit_head":"<64 hex>","updated_at_unix_ms":T}.
 * It only ever moves forward, except when an operator repairs the state (`state repair --accept-loss`).
 *
 * Without an OS keychain (key file mode) there is no anchor: whoever can write the state directory can also roll
 * it back undetected. The gateway says so (`rollback_protection: "none"`).
 */

import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import type { AuditHead } from './audit-log.js';
import type { Keychain } from './keychain.js';
import { KEYCHAIN_SERVICE } from './keychain.js';

export interface AnchorRecord {
  readonly docs: Readonly<Record<string, number>>;
  readonly audit: AuditHead;
}

export async function anchorAccount(stateDir: string): Promise<string> {
  let absolute = path.resolve(stateDir);
  try {
    absolute = await realpath(absolute);
  } catch {
    // Not created yet: the resolved path is what it will be called.
  }
  return `anchor:${absolute}`;
}

function isHead(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

export class StateAnchor {
  readonly #keychain: Keychain;
  readonly #account: string;

  private constructor(keychain: Keychain, account: string) {
    this.#keychain = keychain;
    this.#account = account;
  }

  static async open(stateDir: string, keychain: Keychain): Promise<StateAnchor> {
    return new StateAnchor(keychain, await anchorAccount(stateDir));
  }

  /** null when no anchor was written yet (a new state, or one from before anchoring). */
  async read(): Promise<AnchorRecord | null> {
    const text = await this.#keychain.get(KEYCHAIN_SERVICE, this.#account);
    if (text === null) return null;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new PalyraError('state_corrupt', `the rollback anchor in the OS keychain (${this.#account}) is not JSON`, { cause });
    }
    const v = value as { v?: unknown; docs?: unknown; audit_seq?: unknown; audit_head?: unknown };
    const docs = v.docs;
    if (
      v.v !== 1 ||
      typeof docs !== 'object' ||
      docs === null ||
      !Object.values(docs).every((g) => Number.isSafeInteger(g) && (g as number) >= 0) ||
      !Number.isSafeInteger(v.audit_seq) ||
      !isHead(v.audit_head)
    ) {
      throw new PalyraError('state_corrupt', `the rollback anchor in the OS keychain (${this.#account}) is malformed`);
    }
    return { docs: docs as Record<string, number>, audit: { seq: v.audit_seq as number, hash: v.audit_head } };
  }

  async write(record: AnchorRecord, now: number): Promise<void> {
    const value = { v: 1, docs: record.docs, audit_seq: record.audit.seq, audit_head: record.audit.hash, updated_at_unix_ms: now };
    await this.#keychain.set(KEYCHAIN_SERVICE, this.#account, JSON.stringify(value));
  }

  async clear(): Promise<void> {
    await this.#keychain.delete(KEYCHAIN_SERVICE, this.#account);
  }
}

/**
 * Compares what is on disk with the anchor: any document behind its anchored generation, or an audit chain shorter
 * than (or forked from) the anchored head, is `state_rollback`.
 */
export function checkAgainstAnchor(anchor: AnchorRecord, disk: { docs: Readonly<Record<string, number>>; audit: AuditHead }, stateDir: string): void {
  for (const [doc, anchored] of Object.entries(anchor.docs)) {
    const found = disk.docs[doc];
    if (found !== undefined && found < anchored) {
      throw new PalyraError(
        'state_rollback',
        `${doc} in ${stateDir} is at generation ${found}, behind the ${anchored} recorded in the OS keychain: older state files were restored or the journal was cut; 'palyra state repair --accept-loss' accepts the loss`,
        { details: { document: doc, found, anchored } },
      );
    }
  }
  if (disk.audit.seq < anchor.audit.seq) {
    throw new PalyraError(
      'state_rollback',
      `the audit log in ${stateDir} ends at entry ${disk.audit.seq}, behind the ${anchor.audit.seq} recorded in the OS keychain: entries were removed`,
      { details: { document: 'audit', found: disk.audit.seq, anchored: anchor.audit.seq } },
    );
  }
  if (disk.audit.seq === anchor.audit.seq && disk.audit.hash !== anchor.audit.hash) {
    throw new PalyraError('state_rollback', `the audit log in ${stateDir} does not end in the entry recorded in the OS keychain: it was replaced`, {
      details: { document: 'audit', found: disk.audit.seq, anchored: anchor.audit.seq },
    });
  }
}

/** The later of two anchors, field by field (several processes advance it; it never moves back). */
export function laterAnchor(a: AnchorRecord | null, b: AnchorRecord): AnchorRecord {
  if (a === null) return b;
  const docs: Record<string, number> = { ...a.docs };
  for (const [doc, g] of Object.entries(b.docs)) docs[doc] = Math.max(docs[doc] ?? 0, g);
  return { docs, audit: b.audit.seq >= a.audit.seq ? b.audit : a.audit };
}
