import { statSync } from 'node:fs';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { FilesystemSecretStore } from '../../../main/store/fs-secret-store.js';
import { JournaledState } from '../../../main/store/state-journal.js';
import type { JournalCodec } from '../../../main/store/state-journal.js';
import { tempDir } from '../../helpers/identity.js';

type Op = { set: string; value: number } | { del: string };
type Doc = Map<string, number>;

const codec: JournalCodec<Doc, Op> = {
  empty: () => new Map(),
  parseSnapshot: (json) => {
    const o = json as { generation: number; values: Record<string, number> };
    return { state: new Map(Object.entries(o.values)), generation: o.generation };
  },
  snapshot: (state, generation) => ({ generation, values: Object.fromEntries(state) }),
  apply: (state, op) => {
    if ('set' in op) state.set(op.set, op.value);
    else state.delete(op.del);
  },
};

const KEY = new Uint8Array(32).fill(7);

async function openDoc(dir: string, compactEvery = 100): Promise<JournaledState<Doc, Op>> {
  const store = await FilesystemSecretStore.open(dir, { key: KEY });
  const doc = new JournaledState<Doc, Op>({ store, snapshotKey: 'test/doc.json', codec, journalKey: KEY, compactEvery });
  await doc.refresh();
  return doc;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e instanceof PalyraError ? e.code : String(e);
  }
}

describe('JournaledState', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  it('replays snapshot plus journal in a second reader, reading only what is new', async () => {
    const a = await openDoc(dir);
    for (let i = 0; i < 5; i++) {
      await a.refresh();
      await a.commit([{ set: `k${i}`, value: i }]);
    }
    const b = await openDoc(dir);
    expect(b.generation).toBe(5);
    expect([...b.state.entries()]).toEqual([...a.state.entries()]);
    await a.refresh();
    await a.commit([{ del: 'k0' }]);
    expect(await b.refresh()).toBe(true);
    expect(b.state.has('k0')).toBe(false);
    expect(await b.refresh()).toBe(false);
  });

  it('does not take its own write in flight for another process\'s change, but sees the other process\'s', async () => {
    const a = await openDoc(dir);
    const b = await openDoc(dir);
    await a.refresh();
    await a.commit([{ set: 'first', value: 0 }]);
    await b.refresh();
    // Asked while the append is under way (the file grew, the fsync and the stamps did not follow yet): it waits for
    // its own write instead of reporting it as news.
    const journal = (await FilesystemSecretStore.open(dir, { key: KEY })).pathFor('test/doc.json.journal');
    const before = statSync(journal).size;
    const progress = { settled: false };
    const committing = a.commit([{ set: 'k', value: 1 }]).finally(() => {
      progress.settled = true;
    });
    for (let i = 0; i < 100_000 && !progress.settled && statSync(journal).size === before; i++) await new Promise(setImmediate);
    const during = a.changedOnDisk();
    await committing;
    expect(await during).toBe(false);
    expect(await a.changedOnDisk()).toBe(false);
    expect(await b.changedOnDisk()).toBe(true);
    await b.refresh();
    await b.commit([{ set: 'k', value: 2 }]);
    expect(await a.changedOnDisk()).toBe(true);
    expect(await a.refresh()).toBe(true);
    expect(a.state.get('k')).toBe(2);
    expect(await a.changedOnDisk()).toBe(false);
  });

  it('compacts into the snapshot and keeps the same state', async () => {
    const a = await openDoc(dir, 3);
    for (let i = 0; i < 7; i++) {
      await a.refresh();
      await a.commit([{ set: `k${i}`, value: i }]);
      // Compaction is the caller's, once the records' audit entries are in the audit log.
      if (a.compactionDue) await a.compact();
    }
    const journal = (await FilesystemSecretStore.open(dir, { key: KEY })).pathFor('test/doc.json.journal');
    expect((await stat(journal)).size).toBeLessThan(200);
    const b = await openDoc(dir, 3);
    expect(b.generation).toBe(7);
    expect(b.state.size).toBe(7);
  });

  it('ignores a torn final record and truncates it on the next append', async () => {
    const a = await openDoc(dir);
    await a.commit([{ set: 'x', value: 1 }]);
    await a.refresh();
    await a.commit([{ set: 'y', value: 2 }]);
    const journal = (await FilesystemSecretStore.open(dir, { key: KEY })).pathFor('test/doc.json.journal');
    await appendFile(journal, Buffer.from([0, 0, 0, 90, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    const b = await openDoc(dir);
    expect(b.generation).toBe(2);
    await b.commit([{ set: 'z', value: 3 }]);
    const c = await openDoc(dir);
    expect(c.generation).toBe(3);
    expect(c.state.get('z')).toBe(3);
  });

  it('reports a damaged record in the middle of the journal as state_corrupt', async () => {
    const a = await openDoc(dir);
    await a.commit([{ set: 'x', value: 1 }]); // snapshot
    for (let i = 0; i < 3; i++) {
      await a.refresh();
      await a.commit([{ set: `k${i}`, value: i }]);
      // Compaction is the caller's, once the records' audit entries are in the audit log.
      if (a.compactionDue) await a.compact();
    }
    const journal = (await FilesystemSecretStore.open(dir, { key: KEY })).pathFor('test/doc.json.journal');
    const bytes = await readFile(journal);
    bytes[4 + 12 + 14] = bytes[4 + 12 + 14]! ^ 1; // inside the first record's ciphertext
    await writeFile(journal, bytes);
    expect(await codeOf(openDoc(dir))).toBe('state_corrupt');
  });

  it('refuses a record moved to another position (generation is authenticated)', async () => {
    const a = await openDoc(dir);
    await a.commit([{ set: 'x', value: 1 }]);
    await a.refresh();
    await a.commit([{ set: 'a', value: 1 }]);
    await a.refresh();
    await a.commit([{ set: 'b', value: 2 }]);
    const journal = (await FilesystemSecretStore.open(dir, { key: KEY })).pathFor('test/doc.json.journal');
    const bytes = await readFile(journal);
    const first = bytes.readUInt32BE(4) + 12;
    // Rewrite the second record's generation field to claim it is the first (3 → 2), then drop the real first.
    const second = Buffer.from(bytes.subarray(4 + first));
    second.writeBigUInt64BE(2n, 4);
    await writeFile(journal, Buffer.concat([bytes.subarray(0, 4), second, Buffer.from(bytes.subarray(4, 4 + first))]));
    expect(await codeOf(openDoc(dir))).toBe('state_corrupt');
  });

  it('leaves memory unchanged when the append fails', async () => {
    const a = await openDoc(dir);
    await a.commit([{ set: 'x', value: 1 }]);
    await a.refresh();
    const store = await FilesystemSecretStore.open(dir, { key: KEY });
    // Make the journal path a directory so opening it for append fails.
    const fs = await import('node:fs/promises');
    await fs.rm(store.pathFor('test/doc.json.journal'));
    await fs.mkdir(store.pathFor('test/doc.json.journal'));
    await expect(a.commit([{ set: 'y', value: 2 }])).rejects.toThrow();
    expect(a.state.has('y')).toBe(false);
    expect(a.generation).toBe(1);
  });
});
