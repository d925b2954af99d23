// The desktop app as the administrator of a remote gateway, through the IPC contract: A (browser mode, no hosted
// gateway) pairs with an in-process gateway and gets the admin role, and from then on its gateway.* channels manage
// that gateway: A mints a code, B pairs with it, A sees the request live (WatchEvents → gateway.event), approves it
// after comparing the SAS, revokes B; when A loses the role it falls back to its local state dir.
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../main/gateway/gateway.js';
import { EVENTS } from '../../main/ipc/contract.js';
import type { EventPayload } from '../../main/ipc/contract.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';
import { startGateway } from '../helpers/gateway.js';
import type { IpcClient } from '../helpers/ipc-client.js';
import { LIVENESS_MS, waitFor } from '../helpers/wait.js';

type Progress = EventPayload<'device.pairing'>['progress'];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  // Apps first, so their event streams end before the gateway stops.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function app(): Promise<TestApp> {
  const a = await openTestApp();
  cleanups.push(() => a.cleanup());
  return a;
}

async function gatewayWithLog(): Promise<{ gateway: Gateway; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const started = await startGateway({ log: (line) => lines.push(line) });
  cleanups.push(started.cleanup);
  return { gateway: started.gateway, lines };
}

async function progress<T extends Progress['type']>(client: IpcClient, run: string, type: T, timeoutMs = 20_000): Promise<Extract<Progress, { type: T }>> {
  const event = await client.next('device.pairing', (p) => p.pairing_id === run && p.progress.type === type, timeoutMs);
  return event.progress as Extract<Progress, { type: T }>;
}

async function until(check: () => boolean, what: string, timeoutMs = LIVENESS_MS): Promise<void> {
  await waitFor(check, { what, deadlineMs: timeoutMs });
}

describe('the desktop app administering a remote gateway', () => {
  it('pairs as admin, manages the remote gateway live, approves a remote request, revokes, and falls back when the role is lost', async () => {
    const { gateway, lines } = await gatewayWithLog();
    const a = await app();
    const b = await app();

    // Unpaired, not hosting: the local state dir.
    expect(await a.ok('gateway.status')).toMatchObject({ running: false, managed: 'local_state', remote_gateway: null });

    // A pairs by QR with the gateway, approved on the gateway itself.
    const code = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: gateway.name });
    const { pairing_id: runA } = await a.ok('device.pairStart', { method: 'uri', uri: code.uri ?? '' });
    const awaitingA = await progress(a.client, runA, 'awaiting_approval');
    await gateway.admin.approve(awaitingA.request_id);
    await progress(a.client, runA, 'paired');
    const deviceA = await a.ok('device.status');
    expect(deviceA.paired).toBe(true);
    if (deviceA.device_id === null) throw new Error('A has no device id');

    // Paired but not an admin: still the local state dir (the gateway said PERMISSION_DENIED).
    expect(await a.ok('gateway.status')).toMatchObject({ managed: 'local_state', remote_gateway: null });

    // The admin role: A now manages the remote gateway and watches its events.
    await gateway.admin.grantAdmin(deviceA.device_id);
    const remote = await a.ok('gateway.status');
    expect(remote).toMatchObject({ running: false, managed: 'remote', remote_gateway: { address: gateway.listen, name: 'Test Gateway' } });
    await until(() => lines.some((l) => l.event === 'admin.watch_started' && l.device_id === deviceA.device_id), 'the WatchEvents stream');

    // Codes come from the remote gateway (its address and CA pin in the URI); it does not list them.
    const minted = await a.ok('gateway.mintCode', { method: 'qr', kind: 'desktop' });
    expect(minted.uri).toMatch(/^palyra:\/\/pair\?/);
    expect((await a.ok('gateway.listCodes')).codes).toEqual([]);
    const scanned = await b.ok('device.parseScan', { text: minted.uri ?? '' });
    expect(scanned).toMatchObject({ type: 'uri', gateways: [gateway.listen], gateway_name: 'Test Gateway' });

    // B pairs; A sees the request arrive through WatchEvents, with the SAS B shows.
    const { pairing_id: runB } = await b.ok('device.pairStart', { method: 'uri', uri: minted.uri ?? '' });
    const awaitingB = await progress(b.client, runB, 'awaiting_approval');
    const created = await a.client.next('gateway.event', (e) => e.type === 'request.created', 20_000);
    if (created.type !== 'request.created') throw new Error('unreachable');
    expect(created.request.request_id).toBe(awaitingB.request_id);
    expect(created.request.sas).toBe(awaitingB.sas);
    const pending = (await a.ok('gateway.listRequests', { state: 'pending_approval' })).requests;
    expect(pending.map((r) => r.request_id)).toEqual([awaitingB.request_id]);

    const approved = await a.ok('gateway.approve', { request_id: awaitingB.request_id });
    expect(approved).toMatchObject({ request_id: awaitingB.request_id, state: 'approved' });
    await progress(b.client, runB, 'paired');
    const deviceB = await b.ok('device.status');
    if (deviceB.device_id === null) throw new Error('B has no device id');
    const idB = deviceB.device_id;
    await a.client.next('gateway.event', (e) => e.type === 'device.paired' && e.device_id === idB, 20_000);

    const listing = await a.ok('gateway.listDevices');
    expect(listing.devices.find((d) => d.device_id === idB)).toMatchObject({ status: 'paired' });
    expect(listing.devices.find((d) => d.device_id === deviceA.device_id)).toMatchObject({ status: 'paired', roles: ['admin'] });
    const audit = await a.ok('gateway.auditTail', { count: 50 });
    expect(audit.chain.ok).toBe(true);
    expect(audit.entries.length).toBeGreaterThan(0);

    // The admin role is granted only on the gateway host: a remote admin may not grant or withdraw it.
    for (const channel of ['gateway.grantAdmin', 'gateway.revokeAdmin'] as const) {
      expect(await a.client.call(channel, { device_id: idB }), channel).toMatchObject({ ok: false, error: { code: 'permission_denied', message: expect.stringMatching(/gateway host/) } });
    }
    expect(gateway.admin.listDevices().devices.find((d) => d.device_id === idB)).toMatchObject({ roles: [] });
    expect(await a.ok('gateway.status')).toMatchObject({ managed: 'remote' });

    // A revokes B on the remote gateway; B is told.
    expect(await a.ok('gateway.revokeDevice', { device_id: idB, reason: 'lost laptop' })).toEqual({ device_id: idB });
    const revoked = await b.client.next('device.event', (e) => e.type === 'revoked', 20_000);
    expect(revoked).toMatchObject({ type: 'revoked' });
    expect(gateway.admin.listDevices().devices.find((d) => d.device_id === idB)).toMatchObject({ status: 'revoked', revoked_reason: 'lost laptop' });

    // The role is taken away on the gateway: the stream ends with PERMISSION_DENIED and A falls back.
    await gateway.admin.revokeAdmin(deviceA.device_id);
    await a.client.next('gateway.status', (s) => s.managed === 'local_state', 20_000);
    expect(await a.ok('gateway.status')).toMatchObject({ managed: 'local_state', remote_gateway: null });

    for (const client of [a.client, b.client]) {
      for (const e of client.events) {
        expect(EVENTS[e.event as keyof typeof EVENTS].safeParse(e.payload).success, `${e.event} ${JSON.stringify(e.payload)}`).toBe(true);
      }
    }
  }, 90_000);
});
