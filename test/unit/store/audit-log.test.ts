import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPalyraError } from '../../../main/core/errors.js';
import { AUDIT_GENESIS_PREV, AUDIT_LOG_FILE, AuditLog } from '../../../main/store/audit-log.js';
import type { AuditEntry } from '../../../main/store/audit-log.js';

let root: string;
let file: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'palyra-audit-'));
  file = path.join(root, AUDIT_LOG_FILE);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function appendMany(log: AuditLog, n: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let i = 0; i < n; i++) out.push(await log.append('pairing.approve', { request_id: `r${i}`, ok: true, n: i, note: null }, 1_000 + i));
  return out;
}

async function lines(): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0);
}

describe('AuditLog', () => {
  it('chains entries: seq from 1, first prev is 64 zeros, each prev is the previous hash', async () => {
    const log = await AuditLog.open(root);
    const entries = await appendMany(log, 3);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entries[0]!.prev).toBe(AUDIT_GENESIS_PREV);
    expect(entries[1]!.prev).toBe(entries[0]!.hash);
    expect(entries[2]!.prev).toBe(entries[1]!.hash);
    expect(await log.verify()).toEqual({ ok: true, entries: 3 });
    if (process.platform !== 'win32') expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('hashes prev followed by the canonical (key-sorted) JSON of seq, ts_ms, event and fields', async () => {
    const log = await AuditLog.open(root);
    const entry = await log.append('device.revoke', { z: 1, a: 'x' }, 42);
    const canonical = '{"event":"device.revoke","fields":{"a":"x","z":1},"seq":1,"ts_ms":42}';
    expect(entry.hash).toBe(createHash('sha256').update(AUDIT_GENESIS_PREV + canonical).digest('hex'));
  });

  it('continues the chain across instances, as another process appending to the same file would', async () => {
    await appendMany(await AuditLog.open(root), 2);
    const second = await AuditLog.open(root);
    const next = await second.append('device.remove', { device_id: 'D' }, 5_000);
    expect(next.seq).toBe(3);
    expect((await second.verify()).ok).toBe(true);
  });

  it('returns the last n entries oldest first, fewer when the log is shorter, none when absent', async () => {
    const log = await AuditLog.open(root);
    expect(await log.tail(5)).toEqual([]);
    const entries = await appendMany(log, 6);
    expect(await log.tail(2)).toEqual(entries.slice(4));
    expect(await log.tail(50)).toEqual(entries);
  });

  it('reads the tail of a log larger than one read chunk', async () => {
    const log = await AuditLog.open(root);
    const big = 'x'.repeat(40_000);
    for (let i = 0; i < 4; i++) await log.append('bulk', { big, i }, i);
    const tail = await log.tail(3);
    expect(tail.map((e) => e.fields.i)).toEqual([1, 2, 3]);
    expect((await log.append('after', {}, 9)).seq).toBe(5);
  });

  it('detects an edited entry as a broken chain at that entry', async () => {
    const log = await AuditLog.open(root);
    await appendMany(log, 4);
    const all = await lines();
    all[1] = all[1]!.replace('"request_id":"r1"', '"request_id":"forged"');
    await writeFile(file, `${all.join('\n')}\n`);
    const result = await log.verify();
    expect(result.ok).toBe(false);
    expect(result.brokenAtSeq).toBe(2);
    expect(result.entries).toBe(1);
  });

  it('detects a removed entry and a re-hashed edit (whose successor no longer links to it)', async () => {
    const log = await AuditLog.open(root);
    await appendMany(log, 4);
    const all = await lines();
    await writeFile(file, `${[all[0], all[2], all[3]].join('\n')}\n`);
    expect(await log.verify()).toMatchObject({ ok: false, brokenAtSeq: 2 });

    await writeFile(file, `${all.join('\n')}\n`);
    const edited = JSON.parse(all[1]!) as AuditEntry;
    edited.fields.request_id = 'forged';
    const { seq, ts_ms, event, fields } = edited;
    const canonical = JSON.stringify({ event, fields: Object.fromEntries(Object.entries(fields).sort(([a], [b]) => a.localeCompare(b))), seq, ts_ms });
    edited.hash = createHash('sha256').update(edited.prev + canonical).digest('hex');
    all[1] = JSON.stringify(edited);
    await writeFile(file, `${all.join('\n')}\n`);
    expect(await log.verify()).toMatchObject({ ok: false, brokenAtSeq: 3 });
  });

  it('covers a field named __proto__ by the hash', async () => {
    const log = await AuditLog.open(root);
    await log.append('odd', JSON.parse('{"__proto__":"original"}') as AuditEntry['fields'], 1);
    const [line] = await lines();
    await writeFile(file, `${line!.replace('original', 'forged')}\n`);
    expect((await log.verify()).ok).toBe(false);
  });

  it('ignores a torn final line in verify and tail, and append cuts it off before writing', async () => {
    const log = await AuditLog.open(root);
    await appendMany(log, 2);
    await appendFile(file, '{"seq":3,"ts_ms":9,"ev');
    expect(await log.verify()).toEqual({ ok: true, entries: 2 });
    expect((await log.tail(5)).length).toBe(2);
    const next = await log.append('after.crash', {}, 10);
    expect(next.seq).toBe(3);
    expect(await lines()).toHaveLength(3);
    expect(await log.verify()).toEqual({ ok: true, entries: 3 });
  });

  it('treats a file holding only a torn line as empty', async () => {
    await writeFile(file, '{"seq":1');
    const log = await AuditLog.open(root);
    expect((await log.append('first', {}, 1)).prev).toBe(AUDIT_GENESIS_PREV);
    expect(await log.verify()).toEqual({ ok: true, entries: 1 });
  });

  it('refuses to append after a last line that is not an entry', async () => {
    await writeFile(file, 'not json\n');
    const log = await AuditLog.open(root);
    const error: unknown = await log.append('x', {}, 1).catch((e: unknown) => e);
    expect(isPalyraError(error, 'audit_chain_broken')).toBe(true);
  });

  it('answers head from what it wrote, yet sees a same-size edit of the last line made right after the write', async () => {
    const log = await AuditLog.open(root);
    const [, last] = await appendMany(log, 2);
    expect(await log.head()).toEqual({ seq: 2, hash: last!.hash });
    // Same length, same inode, within the same clock tick as the write: only the bytes differ.
    const text = await readFile(file, 'utf8');
    const at = text.lastIndexOf(last!.hash);
    const flipped = last!.hash[0] === 'a' ? 'b' : 'a';
    const handle = await open(file, 'r+');
    await handle.write(flipped, at);
    await handle.close();
    const error: unknown = await log.head().catch((e: unknown) => e);
    expect(isPalyraError(error, 'audit_chain_broken')).toBe(true);
    const appendError: unknown = await log.append('x', {}, 3).catch((e: unknown) => e);
    expect(isPalyraError(appendError, 'audit_chain_broken')).toBe(true);
    expect(await lines()).toHaveLength(2);
  });

  it('sees entries another instance appended after its own write (its remembered head no longer applies)', async () => {
    const first = await AuditLog.open(root);
    await appendMany(first, 1);
    const second = await AuditLog.open(root);
    const theirs = await second.append('device.remove', { device_id: 'D' }, 5_000);
    expect(await first.head()).toEqual({ seq: 2, hash: theirs.hash });
    const mine = await first.append('device.revoke', { device_id: 'D' }, 6_000);
    expect(mine.seq).toBe(3);
    expect(mine.prev).toBe(theirs.hash);
    expect((await first.verify()).ok).toBe(true);
  });

  it('rejects field values that are not JSON scalars', async () => {
    const log = await AuditLog.open(root);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const error: unknown = await log.append('x', { bad }, 1).catch((e: unknown) => e);
      expect(isPalyraError(error, 'invalid_argument')).toBe(true);
    }
    const error: unknown = await log.append('', {}, 1).catch((e: unknown) => e);
    expect(isPalyraError(error, 'invalid_argument')).toBe(true);
  });

  it('verifies any sequence of appended entries (property)', async () => {
    const scalar = fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ event: fc.string({ minLength: 1 }), fields: fc.dictionary(fc.string(), scalar, { maxKeys: 4 }) }), { maxLength: 6 }),
        async (items) => {
          await rm(file, { force: true });
          const log = await AuditLog.open(root);
          for (const [i, item] of items.entries()) await log.append(item.event, item.fields, i);
          const result = await log.verify();
          expect(result).toEqual({ ok: true, entries: items.length });
          expect((await log.tail(items.length)).map((e) => e.event)).toEqual(items.map((i) => i.event));
        },
      ),
      { numRuns: 40 },
    );
  });
});
