// Platforms that cannot open a directory for fsync (Windows answers EPERM or EISDIR) must still write: every
// directory fsync of the store, the state journal's included, goes through atomic-file.ts's guarded fsyncDir.
// Simulated here by making node:fs/promises refuse to open directories.
import { statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const refusal = vi.hoisted(() => ({ code: undefined as string | undefined, directoryOpens: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof actual.open = async (file, ...rest) => {
    let isDirectory = false;
    try {
      isDirectory = statSync(file).isDirectory();
    } catch {
      // Not there yet: a file about to be created.
    }
    if (isDirectory && refusal.code !== undefined) {
      refusal.directoryOpens++;
      throw Object.assign(new Error(`${refusal.code}: simulated, open '${String(file)}'`), { code: refusal.code });
    }
    return actual.open(file, ...rest);
  };
  return { ...actual, default: { ...actual, open }, open };
});

const { PalyraError } = await import('../../../main/core/errors.js');
const { fsyncDir } = await import('../../../main/store/atomic-file.js');
const { FilesystemSecretStore } = await import('../../../main/store/fs-secret-store.js');
const { JournaledState } = await import('../../../main/store/state-journal.js');
const { tempDir } = await import('../../helpers/identity.js');

type Op = { set: string; value: number };
const codec = {
  empty: (): Map<string, number> => new Map(),
  parseSnapshot: (json: unknown) => {
    const o = json as { generation: number; values: Record<string, number> };
    return { state: new Map(Object.entries(o.values)), generation: o.generation };
  },
  snapshot: (state: Map<string, number>, generation: number) => ({ generation, values: Object.fromEntries(state) }),
  apply: (state: Map<string, number>, op: Op) => {
    state.set(op.set, op.value);
  },
};
const KEY = new Uint8Array(32).fill(9);

describe.skipIf(process.platform === 'win32')('directory fsync where directories cannot be opened', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    refusal.directoryOpens = 0;
  });
  afterEach(async () => {
    refusal.code = undefined;
    await cleanup();
  });

  it.each(['EPERM', 'EISDIR'])('the journal creates, appends and reloads with %s on directory open', async (code) => {
    const store = await FilesystemSecretStore.open(dir, { key: KEY });
    refusal.code = code;
    const doc = new JournaledState({ store, snapshotKey: 'test/doc.json', codec, journalKey: KEY });
    await doc.refresh();
    await doc.commit([{ set: 'a', value: 1 }]); // first write: a snapshot (writeFileAtomic)
    await doc.refresh();
    await doc.commit([{ set: 'b', value: 2 }]); // creates the journal file: its directory is synced
    await doc.refresh();
    await doc.commit([{ set: 'c', value: 3 }]);
    // The guard was exercised (the journal's first append included), not bypassed.
    expect(refusal.directoryOpens).toBeGreaterThanOrEqual(2);
    refusal.code = undefined;
    const reader = new JournaledState({ store: await FilesystemSecretStore.open(dir, { key: KEY }), snapshotKey: 'test/doc.json', codec, journalKey: KEY });
    await reader.refresh();
    expect(reader.generation).toBe(3);
    expect(Object.fromEntries(reader.state)).toEqual({ a: 1, b: 2, c: 3 });
  });

  it('still reports a real failure to open the directory as store_io_failed', async () => {
    refusal.code = 'EIO';
    const error = await fsyncDir(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PalyraError);
    expect((error as InstanceType<typeof PalyraError>).code).toBe('store_io_failed');
  });
});
