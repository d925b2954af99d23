// The desktop app hosting a PostgreSQL replica: gateway.configure with a database_url moves the hosted gateway onto
// the database (the URL in the app's secret store, only its redacted form in settings.json), the CLI sees the same
// state with --database-url, switching back finds the file state as it was, and a database that cannot be used is a
// coded error in GatewayStatus.error with nothing changed.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Gateway } from '../../main/gateway/gateway.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { KEYCHAIN_SERVICE, MemoryKeychain } from '../../main/store/keychain.js';
import { pgStoreKeyAccount } from '../../main/store/pg/pg-open.js';
import { tempDir } from '../helpers/identity.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';
import { cliEnv, runCliJson } from '../helpers/cli.js';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';
import { anonymousClient, pairRawDevice } from '../helpers/raw-pairing.js';
import { ensureBuilt } from '../helpers/build.js';

let server: PostgresServer | undefined;
let app: TestApp | null = null;
const PASSWORD = 'Hunter2-not-for-files';

afterEach(async () => {
  await app?.cleanup();
  app = null;
});

afterAll(async () => {
  await server?.stop();
}, 120_000);

/** A database owned by a role that logs in with PASSWORD; returns its URL with the password in it. */
async function passwordDatabase(name: string): Promise<{ url: string; redacted: string }> {
  await server!.createPasswordUser(name, PASSWORD);
  await server!.sql(`CREATE DATABASE "${name}" OWNER "${name}"`);
  return { url: `postgres://${name}:${PASSWORD}@127.0.0.1:${server!.port}/${name}`, redacted: `postgres://${name}@127.0.0.1:${server!.port}/${name}` };
}

/** Every file under `dir`, as text (a temporary file renamed away meanwhile, e.g. a CRL being published, is skipped). */
async function everyFile(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    try {
      out.push(await readFile(path.join(entry.parentPath, entry.name), 'latin1'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  expect(out.length).toBeGreaterThan(0);
  return out;
}

function hosted(a: TestApp): Gateway {
  const gateway = a.services.gateway;
  if (gateway === null) throw new Error('the hosted gateway is not running');
  return gateway;
}

describeWithPostgres('hosted gateway on PostgreSQL', () => {
  beforeAll(async () => {
    server = await startPostgres();
    await ensureBuilt();
  }, 300_000);

  it('moves onto a database and back, the CLI sees the same state, and the password is in no file', async () => {
    app = await openTestApp();
    const { url, redacted } = await passwordDatabase('hosted_app');
    const onFiles = await app.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0' });
    expect(onFiles).toMatchObject({ running: true, backend: 'file', database: null, error: null });
    const fileCode = await app.ok('gateway.mintCode', { method: 'pin' });

    const onPg = await app.ok('gateway.configure', { enabled: true, database_url: url });
    expect(onPg).toMatchObject({ running: true, backend: 'postgres', database: redacted, error: null });
    expect(onPg.ca_fingerprint).not.toBe(onFiles.ca_fingerprint);
    expect(hosted(app).admin.backendKind).toBe('postgres');
    expect((await app.ok('gateway.listCodes')).codes).toEqual([]);
    const pgCode = await app.ok('gateway.mintCode', { method: 'qr' });
    const gateway = hosted(app);
    const client = anonymousClient(gateway);
    const paired = await pairRawDevice(gateway, client);
    client.close();
    const devices = await app.ok('gateway.listDevices');
    expect(devices.devices.map((d) => d.device_id)).toEqual([paired.deviceId]);

    // The CLI on the same database (the store key file the app made in key-file mode) sees the device and the code.
    const storeKeyFile = path.join(app.dir, 'userData', 'gateway-database', 'pg-store-key.v1');
    const cliArgs = ['--database-url', url, '--store-key-file', storeKeyFile, '--state-dir', path.join(app.dir, 'cli-state')];
    const listed = await runCliJson(['devices', 'list', ...cliArgs], { env: cliEnv() });
    expect(listed.code, listed.stderr).toBe(0);
    expect((listed.json as { devices: { device_id: string }[] }).devices.map((d) => d.device_id)).toEqual([paired.deviceId]);
    const pairing = await runCliJson(['pairing', 'list', ...cliArgs], { env: cliEnv() });
    expect(pairing.code, pairing.stderr).toBe(0);
    expect((pairing.json as { codes: { expires_at_unix_ms: number }[] }).codes.map((c) => c.expires_at_unix_ms)).toContain(pgCode.expires_at_unix_ms);
    // A change the CLI makes reaches the app's view of the database.
    const revoked = await runCliJson(['devices', 'revoke', paired.deviceId, ...cliArgs], { env: cliEnv() });
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await app.ok('gateway.listDevices')).devices).toEqual([expect.objectContaining({ device_id: paired.deviceId, status: 'revoked' })]);

    // settings.json names the database only by its redacted URL; no file of the app and no log line has the password.
    const settingsText = await readFile(path.join(app.dir, 'userData', 'settings.json'), 'utf8');
    expect(settingsText).not.toContain(PASSWORD);
    expect((JSON.parse(settingsText) as { gateway: Record<string, unknown> }).gateway).toMatchObject({ enabled: true, database: redacted });
    for (const text of await everyFile(path.join(app.dir, 'userData'))) expect(text).not.toContain(PASSWORD);
    for (const line of app.logs) expect(line).not.toContain(PASSWORD);
    expect(JSON.stringify(await app.ok('gateway.status'))).not.toContain(PASSWORD);

    // Back to the files: the file state is as it was (its CA, its code), the database keeps its own.
    const back = await app.ok('gateway.configure', { enabled: true, database_url: null });
    expect(back).toMatchObject({ running: true, backend: 'file', database: null, error: null, ca_fingerprint: onFiles.ca_fingerprint });
    expect((await app.ok('gateway.listCodes')).codes).toEqual([expect.objectContaining({ method: 'pin', expires_at_unix_ms: fileCode.expires_at_unix_ms })]);
    expect((await app.ok('gateway.listDevices')).devices).toEqual([]);
    const settingsBack = JSON.parse(await readFile(path.join(app.dir, 'userData', 'settings.json'), 'utf8')) as { gateway: Record<string, unknown> };
    expect(settingsBack.gateway.database).toBeUndefined();

    // Turned off on the database, the local admin still reads the database's state.
    const again = await app.ok('gateway.configure', { enabled: false, database_url: url });
    expect(again).toMatchObject({ running: false, backend: 'postgres', database: redacted, error: null });
    expect((await app.ok('gateway.listDevices')).devices.map((d) => d.device_id)).toEqual([paired.deviceId]);
    const restarted = await app.ok('gateway.configure', { enabled: true });
    expect(restarted).toMatchObject({ running: true, backend: 'postgres', ca_fingerprint: onPg.ca_fingerprint });
  }, 180_000);

  it('with an OS keychain: the URL and the store key are keychain entries, and after a restart the app is back on the database', async () => {
    const keychain = new MemoryKeychain();
    const { dir, cleanup } = await tempDir('palyra-app-pg-');
    try {
      const { url, redacted } = await passwordDatabase('hosted_keychain');
      app = await openTestApp({ dir, gatewayKeychain: keychain });
      const onPg = await app.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0', database_url: url });
      expect(onPg).toMatchObject({ running: true, backend: 'postgres', database: redacted, error: null, key_location: 'os' });
      const code = await app.ok('gateway.mintCode', { method: 'pin' });
      expect(await keychain.get(KEYCHAIN_SERVICE, pgStoreKeyAccount(url))).not.toBeNull();
      // In keychain mode no key file and no sealed URL record are made.
      await expect(readdir(path.join(dir, 'userData', 'gateway-database'))).resolves.not.toContain('pg-store-key.v1');
      await app.cleanup();
      app = null;

      // What the CLI does with the same keychain (openExistingPg, the store key by the URL's account) sees the code.
      const admin = await GatewayAdmin.openExistingPg({ database: { databaseUrl: url, storeKeyFile: null }, stateDir: path.join(dir, 'cli-state'), keychain });
      expect(admin?.listCodes().map((c) => c.expires_at_unix_ms)).toEqual([code.expires_at_unix_ms]);
      await admin?.close();

      // Restarted on the same user data: the URL comes back from the keychain, the same CA and code are there.
      app = await openTestApp({ dir, gatewayKeychain: keychain });
      expect(await app.ok('gateway.status')).toMatchObject({ running: true, backend: 'postgres', database: redacted, ca_fingerprint: onPg.ca_fingerprint, error: null });
      expect((await app.ok('gateway.listCodes')).codes.map((c) => c.expires_at_unix_ms)).toEqual([code.expires_at_unix_ms]);
      await app.cleanup();
      app = null;

      // A keychain without the URL: a coded error, not a silent fall back to the files.
      app = await openTestApp({ dir, gatewayKeychain: new MemoryKeychain() });
      expect(await app.ok('gateway.status')).toMatchObject({ running: false, backend: 'postgres', database: redacted, error: { code: 'not_found' } });
      await app.cleanup();
      app = null;
    } finally {
      await cleanup();
    }
  }, 180_000);

  it('a wrong password, an unreachable server or a missing database is a coded error, changing nothing; a malformed URL is refused', async () => {
    app = await openTestApp();
    const { redacted } = await passwordDatabase('hosted_refused');
    const before = await app.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0' });
    const settingsBefore = await readFile(path.join(app.dir, 'userData', 'settings.json'), 'utf8');

    const wrong = await app.ok('gateway.configure', { enabled: true, database_url: `postgres://hosted_refused:wrong-${PASSWORD}@127.0.0.1:${server!.port}/hosted_refused` });
    expect(wrong).toMatchObject({ running: true, backend: 'file', database: null, ca_fingerprint: before.ca_fingerprint, listen: before.listen });
    expect(wrong.error).toMatchObject({ code: 'state_unavailable' });
    expect(wrong.error?.message).toContain('password authentication failed');
    expect(wrong.error?.message).not.toContain(PASSWORD);
    expect(wrong.error?.message).not.toContain(redacted.replace('postgres://', 'postgres://hosted_refused:'));

    const missing = await app.ok('gateway.configure', { enabled: true, database_url: server!.url('no_such_database') });
    expect(missing).toMatchObject({ running: true, backend: 'file', error: { code: 'state_unavailable' } });

    const closed = await app.ok('gateway.configure', { enabled: false, database_url: 'postgres://palyra@127.0.0.1:1/palyra' });
    expect(closed).toMatchObject({ running: true, enabled: true, backend: 'file', error: { code: 'state_unavailable' } });

    for (const bad of ['mysql://root@127.0.0.1/db', 'postgres://127.0.0.1', 'not a url']) {
      const envelope = await app.client.call('gateway.configure', { enabled: true, database_url: bad });
      expect(envelope).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    }
    expect(await readFile(path.join(app.dir, 'userData', 'settings.json'), 'utf8')).toBe(settingsBefore);
    for (const line of app.logs) expect(line).not.toContain(PASSWORD);

    // A configure that works clears the error.
    const fine = await app.ok('gateway.configure', { enabled: true });
    expect(fine).toMatchObject({ running: true, backend: 'file', error: null });
  }, 120_000);
});
