import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DesktopServices } from '../../../main/app/services.js';
import type { DesktopServicesOptions } from '../../../main/app/services.js';
import { MemoryKeychain } from '../../../main/store/keychain.js';
import { tempDir } from '../../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(extra: Partial<DesktopServicesOptions> = {}): Promise<{ services: DesktopServices; userData: string; events: [string, unknown][] }> {
  const { dir, cleanup } = await tempDir('palyra-services-');
  cleanups.push(cleanup);
  const userData = extra.userDataDir ?? path.join(dir, 'userData');
  const services = await DesktopServices.open({ userDataDir: userData, keychain: 'os', osKeychain: new MemoryKeychain(), gatewayKeychain: null, mode: 'browser', ...extra });
  cleanups.push(() => services.dispose());
  const events: [string, unknown][] = [];
  services.onEvent((event, payload) => events.push([event, payload]));
  return { services, userData, events };
}

describe('DesktopServices', () => {
  it('has a handler for every channel and uses the default dirs under userData', async () => {
    const { services, userData } = await open();
    expect(services.stateDir).toBe(path.join(userData, 'gateway'));
    expect(services.deviceDir).toBe(path.join(userData, 'device'));
    const info = await services.handlers['app.info']({});
    expect(info).toMatchObject({ name: 'Palyra Desktop', mode: 'browser', version: expect.stringMatching(/^\d+\.\d+\.\d+/), state_dir: services.stateDir });
  });

  it('creates no gateway state just because the UI looked at the gateway views', async () => {
    const { services } = await open();
    expect(await services.handlers['gateway.listDevices']({})).toEqual({ devices: [], revoked_certificate_fingerprints: [] });
    expect(await services.handlers['gateway.listRequests']({})).toEqual({ requests: [] });
    expect(await services.handlers['gateway.listCodes']({})).toEqual({ codes: [] });
    expect(await services.handlers['gateway.auditTail']({ count: 5 })).toEqual({ entries: [], chain: { ok: true, entries: 0 } });
    await expect(stat(services.stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('starts even with a corrupt settings file, says so in the gateway status, and leaves the file alone until the user configures', async () => {
    const { dir, cleanup } = await tempDir('palyra-services-');
    cleanups.push(cleanup);
    const userData = path.join(dir, 'userData');
    await mkdir(userData, { recursive: true });
    await writeFile(path.join(userData, 'settings.json'), '{"version":1,"gateway":');
    const { services } = await open({ userDataDir: userData });
    const status = await services.handlers['gateway.status']({});
    expect(status).toMatchObject({ enabled: false, running: false, error: { code: 'state_corrupt' } });
    expect(await readFile(path.join(userData, 'settings.json'), 'utf8')).toBe('{"version":1,"gateway":');
    const configured = await services.handlers['gateway.configure']({ enabled: false, name: 'Fixed' });
    expect(configured).toMatchObject({ enabled: false, name: 'Fixed', error: null });
    expect(JSON.parse(await readFile(path.join(userData, 'settings.json'), 'utf8'))).toMatchObject({ version: 1, gateway: { enabled: false, name: 'Fixed' } });
  });

  it('refuses a listen address that is not HOST:PORT before touching the settings', async () => {
    const { services, userData } = await open();
    await expect(services.handlers['gateway.configure']({ enabled: true, listen: 'no-port' })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(stat(path.join(userData, 'settings.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(services.gateway).toBeNull();
  });

  it('keeps what each of two concurrent configure calls named', async () => {
    const { services, userData } = await open();
    await Promise.all([
      services.handlers['gateway.configure']({ enabled: false, name: 'Named' }),
      services.handlers['gateway.configure']({ enabled: false, listen: '127.0.0.1:7555' }),
    ]);
    expect(await services.handlers['gateway.status']({})).toMatchObject({ name: 'Named', listen: '127.0.0.1:7555' });
    expect(JSON.parse(await readFile(path.join(userData, 'settings.json'), 'utf8'))).toEqual({ version: 1, gateway: { enabled: false, listen: '127.0.0.1:7555', name: 'Named', network: 'local' } });
  });

  it('publishes palyra://pair deep links only, and app.openRequests', async () => {
    const { services, events } = await open();
    services.deepLink('https://evil.example/?palyra://pair?');
    services.deepLink('javascript:alert(1)');
    services.deepLink(`palyra://pair?${'x'.repeat(3000)}`);
    services.deepLink('palyra://pair?v=1');
    services.openRequests('01HZY3V4J6K8M9N0P1Q2R3S4T5');
    expect(events).toEqual([
      ['app.deepLink', { uri: 'palyra://pair?v=1' }],
      ['app.openRequests', { request_id: '01HZY3V4J6K8M9N0P1Q2R3S4T5' }],
    ]);
  });

  it('refuses a bad pairing code in the call itself, before any pairing id exists', async () => {
    const { services, events } = await open();
    await expect(services.handlers['device.pairStart']({ method: 'uri', uri: 'palyra://pair?v=2' })).rejects.toMatchObject({ code: 'pairing_uri_unsupported_version' });
    await expect(services.handlers['device.pairStart']({ method: 'pin', pin: '123456', gateway: 'no port' })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(services.handlers['device.parseScan']({ text: 'palyra://pair?v=1' })).rejects.toMatchObject({ code: expect.stringMatching(/^pairing_uri_/) });
    expect(events).toEqual([]);
  });

  it('dispose stops the hosted gateway, is idempotent, and refuses new work afterwards', async () => {
    const { services } = await open();
    await services.handlers['gateway.configure']({ enabled: true, listen: '127.0.0.1:0' });
    expect(services.gateway).not.toBeNull();
    await Promise.all([services.dispose(), services.dispose()]);
    expect(services.gateway).toBeNull();
    await expect(services.handlers['gateway.configure']({ enabled: true })).rejects.toMatchObject({ code: 'unavailable' });
    await expect(services.handlers['device.pairStart']({ method: 'pin', pin: '123456', gateway: '127.0.0.1:1' })).rejects.toMatchObject({ code: 'unavailable' });
  });
});
