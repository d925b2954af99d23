// Named devices through the IPC contract with two desktop apps in browser mode: B pairs with the name typed in its
// Pair view (device.pairStart device_name), A's approval card and device list show it with method, paired-at and
// last address, A renames it (gateway.renameDevice, audited), and bad names are coded refusals that change nothing.
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventPayload } from '../../main/ipc/contract.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';

type GatewayEvent = EventPayload<'gateway.event'>;

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

async function app(): Promise<TestApp> {
  const a = await openTestApp();
  apps.push(a);
  return a;
}

describe('device names through the IPC contract', () => {
  it('pairs with the typed name, shows it on the host with method, paired-at and last address, and renames it', async () => {
    const a = await app();
    const b = await app();
    expect((await b.ok('app.info')).host_name).toBe(os.hostname());
    await a.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0', name: 'Office' });
    await a.client.next('gateway.status', (p) => p.running, 10_000);
    const minted = await a.ok('gateway.mintCode', { method: 'qr', kind: 'desktop' });

    // A name the gateway would refuse is refused in the call itself: no pairing id, the code is still there.
    const bad = await b.client.call('device.pairStart', { method: 'uri', uri: minted.uri ?? '', device_name: 'tab\there' });
    expect(bad).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect((await a.ok('gateway.listCodes')).codes).toHaveLength(1);

    const { pairing_id: run } = await b.ok('device.pairStart', { method: 'uri', uri: minted.uri ?? '', device_name: ' Ana’s laptop ' });
    const created = (await a.client.next('gateway.event', (e) => e.type === 'request.created', 20_000)) as Extract<GatewayEvent, { type: 'request.created' }>;
    expect(created.request.device_name).toBe('Ana’s laptop');
    expect((await a.ok('gateway.listRequests', { state: 'pending_approval' })).requests[0]).toMatchObject({ device_name: 'Ana’s laptop' });
    await a.ok('gateway.approve', { request_id: created.request.request_id });
    await b.client.next('device.pairing', (p) => p.pairing_id === run && p.progress.type === 'paired', 20_000);
    await b.client.next('device.event', (e) => e.type === 'connection' && e.state === 'online', 20_000);

    const deviceId = created.request.device_id;
    await expect
      .poll(async () => (await a.ok('gateway.listDevices')).devices.find((d) => d.device_id === deviceId)?.last_address ?? null, { timeout: 10_000 })
      .toBe('127.0.0.1');
    const listed = (await a.ok('gateway.listDevices')).devices.find((d) => d.device_id === deviceId);
    expect(listed).toMatchObject({ name: 'Ana’s laptop', method: 'qr', platform: expect.stringMatching(/.+/) as string, online: true });
    expect(listed!.paired_at_unix_ms).toEqual(expect.any(Number));

    const renamed = await a.ok('gateway.renameDevice', { device_id: deviceId, name: 'Studio laptop' });
    expect(renamed).toMatchObject({ device_id: deviceId, name: 'Studio laptop', online: true });
    const audit = await a.ok('gateway.auditTail', { count: 50 });
    expect(audit.entries.filter((e) => e.event === 'device_renamed').map((e) => e.fields)).toEqual([{ device_id: deviceId, name: 'Studio laptop' }]);

    const invalid = await a.client.call('gateway.renameDevice', { device_id: deviceId, name: 'two\nlines' });
    expect(invalid).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    const unknown = await a.client.call('gateway.renameDevice', { device_id: '01HZY3V4J6K8M9N0P1Q2R3S4T6', name: 'Ghost' });
    expect(unknown).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect((await a.ok('gateway.listDevices')).devices.find((d) => d.device_id === deviceId)?.name).toBe('Studio laptop');
  }, 90_000);
});
