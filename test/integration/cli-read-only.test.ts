// Read-only commands (devices list, pairing list) create nothing, write no lock marker, and answer while another
// process holds the state lock.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withStateLock } from '../../main/store/state-lock.js';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function newDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-cli-ro-');
  cleanups.push(cleanup);
  return dir;
}

const env = cliEnv({ PALYRA_KEYCHAIN: 'file' });

describe('read-only commands', () => {
  it('list nothing on a state directory that does not exist, and create nothing', async () => {
    const stateDir = path.join(await newDir(), 'absent');
    const devices = await runCliJson(['devices', 'list', '--state-dir', stateDir], { env });
    expect(devices.code).toBe(0);
    expect(devices.json).toEqual({ devices: [], revoked_certificate_fingerprints: [] });
    const pairing = await runCliJson(['pairing', 'list', '--state-dir', stateDir], { env });
    expect(pairing.code).toBe(0);
    expect(pairing.json).toEqual({ codes: [], requests: [] });
    await expect(stat(stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answer while another process holds the state lock, and leave no lock file behind', async () => {
    const stateDir = await newDir();
    // Create the state (a write), then hold the lock from this process while the CLI reads.
    expect((await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir], { env })).code).toBe(0);
    const listed = await withStateLock(stateDir, () => runCliJson(['pairing', 'list', '--state-dir', stateDir], { env }), { timeoutMs: 0 });
    expect(listed.code).toBe(0);
    expect((listed.json as { codes: unknown[] }).codes).toHaveLength(1);
    expect((await readdir(stateDir)).filter((name) => name.endsWith('.lock'))).toEqual([]);
  });
});
