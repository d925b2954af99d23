// The audit log rotates into chained segments: the chain continues across files, a tail reads only what it shows,
// and removing, reordering or editing a sealed segment is a broken chain.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_LOG_FILE, AuditLog, auditSegmentBytesFromEnv, auditSegmentName, DEFAULT_AUDIT_SEGMENT_BYTES } from '../../../main/store/audit-log.js';
import type { AuditEntry } from '../../../main/store/audit-log.js';

const SEGMENT_BYTES = 4096;
let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'palyra-audit-seg-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const open = () => AuditLog.open(root, { storeKey: new Uint8Array(32).fill(7), segmentBytes: SEGMENT_BYTES });

async function appendMany(log: AuditLog, n: number, from = 0): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let i = from; i < from + n; i++) out.push(await log.append('code_lookup_failed', { source: '127.0.0.1', n: i }, 1_000 + i));
  return out;
}

async function segmentFiles(): Promise<string[]> {
  return (await readdir(root)).filter((name) => /^audit\.v1\.\d{16}\.jsonl$/.test(name)).sort();
}

describe('audit log segments', () => {
  it('seals the active file into segments and keeps one chain across them', async () => {
    const log = await open();
    const written = await appendMany(log, 200);
    const segments = await segmentFiles();
    expect(segments.length).toBeGreaterThan(2);
    expect(segments[0]).toBe(auditSegmentName(1));
    for (const name of [...segments, AUDIT_LOG_FILE]) expect((await readFile(path.join(root, name))).length).toBeLessThanOrEqual(SEGMENT_BYTES);
    expect(await log.verifyChain()).toMatchObject({ ok: true, entries: 200, head: { seq: 200, hash: written.at(-1)!.hash } });
    expect(await log.head()).toEqual({ seq: 200, hash: written.at(-1)!.hash });
    const tail = await log.tailChecked(120);
    expect(tail.entries.map((e) => e.seq)).toEqual(Array.from({ length: 120 }, (_, i) => 81 + i));
    expect(tail.chain).toMatchObject({ ok: true, entries: 200, checked: 120 });
    expect((await log.tail(300)).map((e) => e.seq)).toEqual(written.map((e) => e.seq));
    expect((await log.tailChecked(500)).chain).toMatchObject({ ok: true, checked: 200 });
  });

  it('answers a tail without reading older segments', async () => {
    const log = await open();
    await appendMany(log, 200);
    const [oldest] = await segmentFiles();
    await writeFile(path.join(root, oldest!), randomBytes(3000));
    const tail = await log.tailChecked(5);
    expect(tail.chain.ok).toBe(true);
    expect(tail.entries.map((e) => e.seq)).toEqual([196, 197, 198, 199, 200]);
    expect(await log.verify()).toMatchObject({ ok: false, brokenAtSeq: 1 });
  });

  it('reports a removed middle segment, a removed first segment and an edited sealed entry', async () => {
    const log = await open();
    await appendMany(log, 200);
    const segments = await segmentFiles();
    const middle = path.join(root, segments[1]!);
    const saved = await readFile(middle);
    await unlink(middle);
    const gap = await log.verify();
    expect(gap.ok).toBe(false);
    expect(gap.reason).toContain('starts at entry');
    expect((await log.tailChecked(500)).chain.ok).toBe(false);
    await writeFile(middle, saved);

    const first = path.join(root, segments[0]!);
    const firstSaved = await readFile(first);
    await unlink(first);
    expect(await log.verify()).toMatchObject({ ok: false, brokenAtSeq: 1 });
    expect((await log.tailChecked(500)).chain).toMatchObject({ ok: false, brokenAtSeq: 1 });
    await writeFile(first, firstSaved);

    const text = saved.toString('utf8').replace('"n":', '"n":1');
    await writeFile(middle, text);
    const edited = await log.verify();
    expect(edited.ok).toBe(false);
    expect(edited.reason).toContain('MAC');
    await writeFile(middle, saved);
    expect((await log.verify()).ok).toBe(true);
  });

  it('continues after a crash between sealing and the new active file, and refuses a torn sealed segment', async () => {
    const log = await open();
    const written = await appendMany(log, 10);
    // What a crash right after the seal's rename leaves: a segment and no active file.
    await rename(path.join(root, AUDIT_LOG_FILE), path.join(root, auditSegmentName(1)));
    expect(await log.head()).toEqual({ seq: 10, hash: written.at(-1)!.hash });
    const [next] = await appendMany(log, 1, 10);
    expect(next).toMatchObject({ seq: 11, prev: written.at(-1)!.hash });
    expect(await log.verifyChain()).toMatchObject({ ok: true, entries: 11 });
    const segment = path.join(root, auditSegmentName(1));
    await writeFile(segment, `${await readFile(segment, 'utf8')}{"seq":`);
    expect((await log.verify()).reason).toContain('partial line');
  });

  it('cuts the chain after an entry across segments for repair', async () => {
    const log = await open();
    const written = await appendMany(log, 200);
    expect(await log.truncateAfter(50)).toBe(150);
    expect(await log.verifyChain()).toMatchObject({ ok: true, entries: 50, head: { seq: 50, hash: written[49]!.hash } });
    const [next] = await appendMany(log, 1, 50);
    expect(next).toMatchObject({ seq: 51, prev: written[49]!.hash });
    expect((await log.verify()).ok).toBe(true);
  });

  it('reads the segment size from PALYRA_AUDIT_SEGMENT_BYTES, refusing nonsense with a coded error', () => {
    expect(auditSegmentBytesFromEnv({})).toBe(DEFAULT_AUDIT_SEGMENT_BYTES);
    expect(auditSegmentBytesFromEnv({ PALYRA_AUDIT_SEGMENT_BYTES: '65536' })).toBe(65536);
    for (const bad of ['12', 'lots', '-1', '99999999999']) {
      expect(() => auditSegmentBytesFromEnv({ PALYRA_AUDIT_SEGMENT_BYTES: bad })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    }
  });
});
