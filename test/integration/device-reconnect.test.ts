// Issue 13, "Reconnect now": device.reconnect through the IPC contract, with two in-process desktop apps (A hosts a
// gateway, B is paired with it by PIN). While A's gateway is off, B's agent retries with a growing backoff; a
// reconnect starts over at once (its next failure is attempt 1 again). Once A is back, B comes online; a reconnect
// while online does nothing. Not paired and revoked are refused with their codes, and nothing changes.
import { afterEach, describe, expect, it } from 'vitest';
import type { EventPayload } from '../../main/ipc/contract.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';

type Connection = Extract<EventPayload<'device.event'>, { type: 'connection' }>;

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

async function app(): Promise<TestApp> {
  const a = await openTestApp();
  apps.push(a);
  return a;
}

/** B's connection events received after index `from`. */
function connectionsSince(b: TestApp, from: number): Connection[] {
  return b.client.events
    .slice(from)
    .filter((e) => e.event === 'device.event' && (e.payload as { type?: string }).type === 'connection')
    .map((e) => e.payload as Connection);
}

/** A hosts a gateway on loopback; B pairs with it by PIN and comes online. */
async function pairedPair(): Promise<{ a: TestApp; b: TestApp; listen: string; deviceId: string }> {
  const a = await app();
  const b = await app();
  const status = await a.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0', name: 'Lab' });
  const listen = status.listen!;
  const pin = await a.ok('gateway.mintCode', { method: 'pin' });
  const { pairing_id: run } = await b.ok('device.pairStart', { method: 'pin', pin: pin.code, gateway: listen });
  const created = await a.client.next('gateway.event', (e) => e.type === 'request.created', 20_000);
  if (created.type !== 'request.created') throw new Error('unexpected event');
  await a.ok('gateway.approve', { request_id: created.request.request_id });
  await b.client.next('device.pairing', (p) => p.pairing_id === run && p.progress.type === 'paired', 20_000);
  await b.client.next('device.event', (e) => e.type === 'connection' && e.state === 'online', 20_000);
  const deviceId = (await b.ok('device.status')).device_id!;
  return { a, b, listen, deviceId };
}

describe('device.reconnect ("Reconnect now")', () => {
  it('resets the backoff of an offline device at once, brings it online when the gateway is back, and does nothing while online', async () => {
    const { a, b, listen } = await pairedPair();
    expect(await b.ok('device.reconnect')).toEqual({ reconnecting: false });

    // A's gateway goes away: B retries with a growing backoff.
    const beforeStop = b.client.events.length;
    await a.ok('gateway.configure', { enabled: false });
    await expect.poll(() => connectionsSince(b, beforeStop).some((c) => c.state === 'offline' && (c.attempt ?? 0) >= 3), { timeout: 30_000 }).toBe(true);
    expect((await b.ok('device.status')).connection).not.toBe('online');

    // Reconnect now: a fresh attempt at once, counted from 1 again.
    const beforeReconnect = b.client.events.length;
    expect(await b.ok('device.reconnect')).toEqual({ reconnecting: true });
    await expect.poll(() => connectionsSince(b, beforeReconnect).find((c) => c.state === 'offline' && c.attempt !== undefined)?.attempt, { timeout: 20_000 }).toBe(1);
    expect(connectionsSince(b, beforeReconnect).find((c) => c.state === 'connecting')).toMatchObject({ attempt: 1 });

    // The gateway is back on the same address; B comes online and a reconnect is then a no-op.
    await a.ok('gateway.configure', { enabled: true, listen });
    expect(await b.ok('device.reconnect')).toMatchObject({ reconnecting: expect.any(Boolean) });
    await expect.poll(async () => (await b.ok('device.status')).connection, { timeout: 30_000 }).toBe('online');
    expect(await b.ok('device.reconnect')).toEqual({ reconnecting: false });
    expect(b.logs.some((l) => l.includes('"device.reconnect_now"'))).toBe(true);
  });

  it('refuses a device that is not paired (device_not_paired) and a revoked one (device_revoked), changing nothing', async () => {
    const lone = await app();
    expect(await lone.client.call('device.reconnect', {})).toMatchObject({ ok: false, error: { code: 'device_not_paired' } });
    expect(await lone.ok('device.status')).toMatchObject({ paired: false, revoked: false, connection: 'offline' });
    expect(await lone.client.call('device.reconnect', { now: true })).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });

    const { a, b, deviceId } = await pairedPair();
    await a.ok('gateway.revokeDevice', { device_id: deviceId, reason: 'lost' });
    await b.client.next('device.event', (e) => e.type === 'revoked', 20_000);
    await expect.poll(async () => (await b.ok('device.status')).revoked, { timeout: 10_000 }).toBe(true);
    expect(await b.client.call('device.reconnect', {})).toMatchObject({ ok: false, error: { code: 'device_revoked' } });
    expect(await b.ok('device.status')).toMatchObject({ revoked: true, paired: false, connection: 'offline' });
  });
});
