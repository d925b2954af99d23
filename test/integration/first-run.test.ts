// Issue 13, the first-run choice in the main process: app.firstRun says to ask while nothing was chosen and the app
// has neither a pairing nor a hosted gateway; app.chooseStart keeps the answer in <userData>/first-run.json, so a
// restarted app does not ask again; a bad choice is refused and nothing is written; an unreadable file asks again.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBrowserHost } from '../../main/app/browser-host.js';
import { FIRST_RUN_FILE } from '../../main/app/first-run.js';
import { DesktopServices } from '../../main/app/services.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import { tempDir } from '../helpers/identity.js';
import { connectIpc } from '../helpers/ipc-client.js';
import type { IpcClient } from '../helpers/ipc-client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** One app on `userDataDir` (opened again on the same dir = a restart). */
async function open(userDataDir: string): Promise<IpcClient> {
  const services = await DesktopServices.open({
    log: () => undefined,
    userDataDir,
    keychain: 'os',
    osKeychain: new MemoryKeychain(),
    gatewayKeychain: null,
    mode: 'browser',
    discovery: 'off',
  });
  const host = await startBrowserHost({ services, rendererDir: path.join(userDataDir, 'no-renderer') });
  const client = await connectIpc(host);
  cleanups.push(async () => {
    await client.close();
    await host.close();
    await services.dispose();
  });
  return client;
}

async function ok(client: IpcClient, channel: string, args: Record<string, unknown> = {}): Promise<unknown> {
  const envelope = await client.call(channel, args);
  if (!envelope.ok) throw Object.assign(new Error(`${channel}: ${envelope.error.code}`), { code: envelope.error.code });
  return envelope.result;
}

describe('app.firstRun / app.chooseStart', () => {
  it('asks on a fresh app, keeps the choice across a restart', async () => {
    const { dir, cleanup } = await tempDir('palyra-first-run-');
    cleanups.push(cleanup);
    const userData = path.join(dir, 'userData');
    const first = await open(userData);
    expect(await ok(first, 'app.firstRun')).toEqual({ choice: null, needed: true });
    expect(await first.call('app.chooseStart', { choice: 'both' })).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect(await ok(first, 'app.firstRun')).toEqual({ choice: null, needed: true });

    expect(await ok(first, 'app.chooseStart', { choice: 'host' })).toEqual({ choice: 'host', needed: false });
    expect(JSON.parse(await readFile(path.join(userData, FIRST_RUN_FILE), 'utf8'))).toMatchObject({ version: 1, choice: 'host' });
    await cleanups.pop()!();

    const again = await open(userData);
    expect(await ok(again, 'app.firstRun')).toEqual({ choice: 'host', needed: false });
  });

  it('does not ask when a gateway is hosted here; asks again after an unreadable file', async () => {
    const { dir, cleanup } = await tempDir('palyra-first-run-');
    cleanups.push(cleanup);
    const userData = path.join(dir, 'userData');
    const app = await open(userData);
    await ok(app, 'gateway.configure', { enabled: true, listen: '127.0.0.1:0' });
    expect(await ok(app, 'app.firstRun')).toEqual({ choice: null, needed: false });
    await ok(app, 'gateway.configure', { enabled: false });
    expect(await ok(app, 'app.firstRun')).toEqual({ choice: null, needed: true });

    await writeFile(path.join(userData, FIRST_RUN_FILE), '{"version": 1, "choice": "maybe"');
    expect(await ok(app, 'app.firstRun')).toEqual({ choice: null, needed: true });
    expect(await ok(app, 'app.chooseStart', { choice: 'join' })).toEqual({ choice: 'join', needed: false });
    expect(await ok(app, 'app.firstRun')).toEqual({ choice: 'join', needed: false });
  });
});
