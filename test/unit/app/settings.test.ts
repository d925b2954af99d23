import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_GATEWAY_LISTEN, normalizeListen, normalizeName, SettingsFile } from '../../../main/app/settings.js';
import { tempDir } from '../../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function userData(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-settings-');
  cleanups.push(cleanup);
  return path.join(dir, 'Palyra Desktop');
}

describe('SettingsFile', () => {
  it('reads the defaults when there is no file, without creating one', async () => {
    const dir = await userData();
    const file = new SettingsFile(dir);
    expect(await file.load()).toEqual({ gateway: { enabled: false, listen: DEFAULT_GATEWAY_LISTEN, name: null } });
    await expect(stat(dir)).rejects.toThrow();
  });

  it('saves atomically as a 0600 file in a 0700 directory and reads back what it saved', async () => {
    const dir = await userData();
    const file = new SettingsFile(dir);
    await file.save({ gateway: { enabled: true, listen: '127.0.0.1:0', name: 'Office' } });
    expect(await new SettingsFile(dir).load()).toEqual({ gateway: { enabled: true, listen: '127.0.0.1:0', name: 'Office' } });
    expect((await stat(file.file)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file.file, 'utf8'))).toMatchObject({ version: 1 });
  });

  it('keeps a database by its redacted URL only, also when the file was edited to hold a password', async () => {
    const dir = await userData();
    const file = new SettingsFile(dir);
    await file.save({ gateway: { enabled: true, listen: '127.0.0.1:0', name: null, database: 'postgres://palyra@db:5432/palyra' } });
    expect((await new SettingsFile(dir).load()).gateway.database).toBe('postgres://palyra@db:5432/palyra');
    await writeFile(
      file.file,
      JSON.stringify({ version: 1, gateway: { enabled: true, listen: '127.0.0.1:0', name: null, database: 'postgres://palyra:hand-typed@db:5432/palyra?sslmode=require' } }),
    );
    const loaded = await new SettingsFile(dir).load();
    expect(loaded.gateway.database).toBe('postgres://palyra@db:5432/palyra');
    expect(JSON.stringify(loaded)).not.toContain('hand-typed');
    await file.save({ gateway: { enabled: true, listen: '127.0.0.1:0', name: null } });
    expect((await new SettingsFile(dir).load()).gateway.database).toBeUndefined();
  });

  it('reports a corrupt or foreign file as state_corrupt instead of replacing it', async () => {
    const dir = await userData();
    const file = new SettingsFile(dir);
    await file.save({ gateway: { enabled: false, listen: DEFAULT_GATEWAY_LISTEN, name: null } });
    for (const text of ['{not json', '[]', '{"version":2}', '{"version":1,"gateway":{"enabled":"yes","listen":"127.0.0.1:1","name":null}}', '{"version":1,"gateway":{"enabled":true,"listen":"nowhere","name":null}}']) {
      await writeFile(file.file, text);
      await expect(file.load()).rejects.toMatchObject({ code: 'state_corrupt' });
    }
    expect(await readFile(file.file, 'utf8')).toContain('nowhere');
  });
});

describe('settings values', () => {
  it('normalises listen addresses and refuses anything that is not HOST:PORT', () => {
    expect(normalizeListen('127.0.0.1:0')).toBe('127.0.0.1:0');
    expect(normalizeListen('[::1]:7444')).toBe('[::1]:7444');
    for (const bad of ['127.0.0.1', ':7444', '127.0.0.1:70000', 'host name:1']) expect(() => normalizeListen(bad)).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });

  it('trims names, stores an empty name as null and refuses names over 64 characters', () => {
    expect(normalizeName('  Office  ')).toBe('Office');
    expect(normalizeName('   ')).toBeNull();
    expect(normalizeName(null)).toBeNull();
    expect(() => normalizeName('x'.repeat(65))).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });
});
