// Issue 13, truthful device states from the main process: a device its gateway removed says `revocation: removed`
// (it may pair again, and does, with a new code), one its gateway revoked says `banned` (refused until unbanned; after
// the unban it pairs again); the host's lists agree: removed = gone from the devices and not on the revocation list,
// banned = revoked there.
import { afterEach, describe, expect, it } from 'vitest';
import { revocationOf } from '../../main/app/channel-handlers.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

async function app(): Promise<TestApp> {
  const a = await openTestApp();
  apps.push(a);
  return a;
}

/** Requests already approved (client.next also matches events received before it is called). */
const approved = new Set<string>();

/** B pairs with A's gateway by PIN, A approves; resolves once B is online. */
async function pair(a: TestApp, b: TestApp, listen: string): Promise<string> {
  const pin = await a.ok('gateway.mintCode', { method: 'pin' });
  const { pairing_id: run } = await b.ok('device.pairStart', { method: 'pin', pin: pin.code, gateway: listen });
  const created = await a.client.next('gateway.event', (e) => e.type === 'request.created' && !approved.has(e.request.request_id), 20_000);
  if (created.type !== 'request.created') throw new Error('unexpected event');
  approved.add(created.request.request_id);
  await a.ok('gateway.approve', { request_id: created.request.request_id });
  await b.client.next('device.pairing', (p) => p.pairing_id === run && p.progress.type === 'paired', 20_000);
  await expect.poll(async () => (await b.ok('device.status')).connection, { timeout: 20_000 }).toBe('online');
  return (await b.ok('device.status')).device_id!;
}

describe('revoked, removed and unbanned as the device and the host say them', () => {
  it('removed: the device says removed (not banned) and pairs again with a new code', async () => {
    const a = await app();
    const b = await app();
    const { listen } = await a.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0' });
    const deviceId = await pair(a, b, listen!);
    expect((await b.ok('device.status')).revocation).toBeNull();

    await a.ok('gateway.removeDevice', { device_id: deviceId });
    await expect.poll(async () => (await b.ok('device.status')).revoked, { timeout: 20_000 }).toBe(true);
    expect(await b.ok('device.status')).toMatchObject({ revoked: true, paired: false, revocation: 'removed' });
    // The pushed status says the same.
    await b.client.next('device.status', (s) => s.revoked && s.revocation === 'removed', 10_000);
    // The host: gone from the devices, not banned.
    const listed = await a.ok('gateway.listDevices');
    expect(listed.devices.filter((d) => d.device_id === deviceId && d.status === 'paired')).toEqual([]);
    expect(listed.devices.filter((d) => d.device_id === deviceId && d.status === 'revoked')).toEqual([]);

    await b.ok('device.unpair');
    await expect.poll(async () => (await b.ok('device.status')).paired, { timeout: 10_000 }).toBe(false);
    await pair(a, b, listen!);
    expect(await b.ok('device.status')).toMatchObject({ paired: true, revoked: false, revocation: null });
  });

  it('banned: the device says banned; its host lists it revoked; after the unban it pairs again', async () => {
    const a = await app();
    const b = await app();
    const { listen } = await a.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0' });
    const deviceId = await pair(a, b, listen!);

    await a.ok('gateway.revokeDevice', { device_id: deviceId, reason: 'lost' });
    await expect.poll(async () => (await b.ok('device.status')).revoked, { timeout: 20_000 }).toBe(true);
    expect(await b.ok('device.status')).toMatchObject({ revoked: true, paired: false, revocation: 'banned' });
    expect((await a.ok('gateway.listDevices')).devices).toEqual([expect.objectContaining({ device_id: deviceId, status: 'revoked' })]);

    await a.ok('gateway.unbanDevice', { device_id: deviceId });
    await b.ok('device.unpair');
    await expect.poll(async () => (await b.ok('device.status')).revocation ?? null, { timeout: 10_000 }).toBeNull();
    await pair(a, b, listen!);
    expect(await b.ok('device.status')).toMatchObject({ paired: true, revoked: false, revocation: null });
  });
});

describe('revocationOf', () => {
  it.each([
    ['device is revoked', 'banned'],
    ['device 01J8ZK4Q6N3V7W2X9Y5T1R0M8P is revoked', 'banned'],
    ['device certificate is revoked', 'removed'],
    ['the device was removed by the operator', 'removed'],
    ["the gateway refuses this device's certificate at the TLS handshake (revoked)", 'refused'],
    [null, 'refused'],
  ] as const)('%s → %s', (reason, expected) => {
    expect(revocationOf(reason)).toBe(expected);
  });
});
