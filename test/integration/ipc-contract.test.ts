// The whole product through the IPC contract, the way the renderer (or an automation client) drives it: two desktop
// apps in browser mode, each with its own user-data dir. A hosts a gateway; B pairs with it from A's QR URI; A
// approves after comparing the SAS; both report paired; A revokes and B learns it at once.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBrowserHost } from '../../main/app/browser-host.js';
import { SETTINGS_FILE } from '../../main/app/settings.js';
import { EVENTS } from '../../main/ipc/contract.js';
import type { ChannelResult, EventPayload } from '../../main/ipc/contract.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';
import { connectIpc } from '../helpers/ipc-client.js';
import type { IpcClient } from '../helpers/ipc-client.js';
import { stubServices } from '../helpers/stub-services.js';

type Progress = EventPayload<'device.pairing'>['progress'];
type GatewayEvent = EventPayload<'gateway.event'>;
type DeviceEvent = EventPayload<'device.event'>;

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

async function app(): Promise<TestApp> {
  const a = await openTestApp();
  apps.push(a);
  return a;
}

async function hostGateway(a: TestApp, name = 'Office'): Promise<ChannelResult<'gateway.status'> & { listen: string; ca_pin: string; ca_fingerprint: string }> {
  const status = await a.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0', name });
  expect(status).toMatchObject({ enabled: true, running: true, name, mtls_required: true, insecure_opt_out: false, error: null });
  if (status.listen === null || status.ca_pin === null || status.ca_fingerprint === null) throw new Error('the gateway did not start');
  return { ...status, listen: status.listen, ca_pin: status.ca_pin, ca_fingerprint: status.ca_fingerprint };
}

/** The next progress event of type `type` of the run `run`. */
async function progress<T extends Progress['type']>(client: IpcClient, run: string, type: T, timeoutMs = 20_000): Promise<Extract<Progress, { type: T }>> {
  const event = await client.next('device.pairing', (p) => p.pairing_id === run && p.progress.type === type, timeoutMs);
  return event.progress as Extract<Progress, { type: T }>;
}

/** The first gateway event of type `type` (already received or later) that matches. */
async function gatewayEvent<T extends GatewayEvent['type']>(client: IpcClient, type: T, match: (e: Extract<GatewayEvent, { type: T }>) => boolean = () => true, timeoutMs = 20_000): Promise<Extract<GatewayEvent, { type: T }>> {
  return (await client.next('gateway.event', (e) => e.type === type && match(e as Extract<GatewayEvent, { type: T }>), timeoutMs)) as Extract<GatewayEvent, { type: T }>;
}

async function deviceEvent<T extends DeviceEvent['type']>(client: IpcClient, type: T, match: (e: Extract<DeviceEvent, { type: T }>) => boolean = () => true, timeoutMs = 20_000): Promise<Extract<DeviceEvent, { type: T }>> {
  return (await client.next('device.event', (e) => e.type === type && match(e as Extract<DeviceEvent, { type: T }>), timeoutMs)) as Extract<DeviceEvent, { type: T }>;
}

const TERMINAL = ['paired', 'rejected', 'expired', 'failed'];

/** Every event any client received must satisfy the contract's schema for it. */
function expectEventsValid(a: TestApp): void {
  for (const e of a.client.events) {
    expect(Object.hasOwn(EVENTS, e.event), e.event).toBe(true);
    expect(EVENTS[e.event as keyof typeof EVENTS].safeParse(e.payload).success, `${e.event} ${JSON.stringify(e.payload)}`).toBe(true);
  }
}

describe('pairing two desktop apps through the IPC contract', () => {
  it('QR: A hosts and mints, B pairs from the URI, A approves after comparing the SAS, A revokes and B is told', async () => {
    const a = await app();
    const b = await app();

    const gateway = await hostGateway(a);
    expect(gateway.listen).toMatch(/^127\.0\.0\.1:[1-9][0-9]*$/);
    expect(gateway.ca_pin).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(gateway.state_dir).toBe(a.services.stateDir);
    await a.client.next('gateway.status', (p) => p.running, 5_000);

    const minted = await a.ok('gateway.mintCode', { method: 'qr', kind: 'desktop' });
    expect(minted.method).toBe('qr');
    expect(minted.uri).toMatch(/^palyra:\/\/pair\?/);
    expect((await a.ok('gateway.listCodes')).codes).toEqual([{ method: 'qr', expires_at_unix_ms: minted.expires_at_unix_ms, kind: 'desktop' }]);

    // B scans: what the QR says, before anything is sent.
    const scanned = await b.ok('device.parseScan', { text: `${minted.uri ?? ''}\n` });
    if (scanned.type !== 'uri') throw new Error('not read as a URI');
    expect(scanned).toMatchObject({ type: 'uri', uri: minted.uri, gateways: [gateway.listen], gateway_name: 'Office', ca_pin: gateway.ca_pin, kind: 'desktop' });

    const before = await b.ok('device.status');
    expect(before).toMatchObject({ paired: false, revoked: false, gateway: null, keychain: 'os', connection: 'offline' });

    const { pairing_id: pairingId } = await b.ok('device.pairStart', { method: 'uri', uri: scanned.uri });
    expect(typeof pairingId).toBe('string');

    // A sees the request arrive; B shows the same SAS and request id.
    const { request } = await gatewayEvent(a.client, 'request.created');
    expect(request).toMatchObject({ state: 'pending_approval', method: 'qr', client_kind: 'desktop', sas_verifiable: true });
    const awaiting = await progress(b.client, pairingId, 'awaiting_approval');
    expect(awaiting.sas).toBe(request.sas);
    expect(awaiting.request_id).toBe(request.request_id);
    expect(awaiting.gateway_name).toBe('Office');
    const verifying = await progress(b.client, pairingId, 'verifying_gateway');
    expect(verifying).toMatchObject({ pinned: true, ca_pin: gateway.ca_pin, ca_fingerprint: gateway.ca_fingerprint });
    expect((await a.ok('gateway.listRequests', { state: 'pending_approval' })).requests.map((r) => r.request_id)).toEqual([request.request_id]);

    const approved = await a.ok('gateway.approve', { request_id: request.request_id, reason: 'SAS matched' });
    expect(approved).toMatchObject({ request_id: request.request_id, state: 'approved', reason: 'SAS matched' });

    const paired = await progress(b.client, pairingId, 'paired');
    const deviceId = paired.device_id;
    expect(deviceId).toBe(request.device_id);
    await b.client.next('device.status', (p) => p.paired, 10_000);
    await deviceEvent(b.client, 'connection', (e) => e.state === 'online');
    const status = await b.ok('device.status');
    expect(status).toMatchObject({ device_id: deviceId, paired: true, revoked: false, gateway: gateway.listen, gateway_name: 'Office', ca_fingerprint: gateway.ca_fingerprint, pinned_by: 'qr', connection: 'online' });

    // A: the device is paired and online (its node stream is live).
    await gatewayEvent(a.client, 'device.paired', (p) => p.device_id === deviceId);
    await gatewayEvent(a.client, 'node.online', (p) => p.device_id === deviceId);
    const listed = await a.ok('gateway.listDevices');
    expect(listed.devices).toEqual([expect.objectContaining({ device_id: deviceId, status: 'paired', client_kind: 'desktop', online: true })]);
    expect((await a.ok('gateway.listRequests')).requests[0]).toMatchObject({ request_id: request.request_id, state: 'completed' });
    expect(await a.ok('gateway.listCodes')).toEqual({ codes: [] });

    // A revokes: B's stream ends with the revocation, and B says so.
    expect(await a.ok('gateway.revokeDevice', { device_id: deviceId, reason: 'lost laptop' })).toEqual({ device_id: deviceId });
    const revoked = await deviceEvent(b.client, 'revoked', () => true, 10_000);
    expect(revoked.reason).toMatch(/revoked/i);
    await gatewayEvent(a.client, 'device.revoked', (p) => p.device_id === deviceId && p.reason === 'lost laptop', 10_000);
    await expect.poll(async () => (await b.ok('device.status')).revoked, { timeout: 10_000 }).toBe(true);
    expect(await b.ok('device.status')).toMatchObject({ paired: false, revoked: true, connection: 'offline' });
    const after = await a.ok('gateway.listDevices');
    expect(after.devices).toEqual([expect.objectContaining({ device_id: deviceId, status: 'revoked', revoked_reason: 'lost laptop', online: false })]);
    expect(after.revoked_certificate_fingerprints.length).toBeGreaterThan(0);

    // The audit log has the decisions, and its chain holds.
    const audit = await a.ok('gateway.auditTail', { count: 50 });
    expect(audit.chain.ok).toBe(true);
    expect(audit.entries.map((e) => e.event)).toEqual(expect.arrayContaining(['code_minted', 'pairing_approved']));

    expectEventsValid(a);
    expectEventsValid(b);
    // Neither app logged the code, the URI or the CA pin.
    for (const line of [...a.logs, ...b.logs]) {
      expect(line).not.toContain(minted.code);
      expect(line).not.toContain('palyra://');
      expect(line).not.toContain(gateway.ca_pin);
    }
  });

  it('A (the gateway host) grants B the admin role and withdraws it; both are audited', async () => {
    const a = await app();
    const b = await app();
    await hostGateway(a);
    const minted = await a.ok('gateway.mintCode', { method: 'qr', kind: 'desktop' });
    const { pairing_id: pairingId } = await b.ok('device.pairStart', { method: 'uri', uri: minted.uri ?? '' });
    const { request } = await gatewayEvent(a.client, 'request.created');
    await a.ok('gateway.approve', { request_id: request.request_id });
    const deviceId = (await progress(b.client, pairingId, 'paired')).device_id;
    await gatewayEvent(a.client, 'device.paired', (p) => p.device_id === deviceId);
    expect((await a.ok('gateway.listDevices')).devices).toEqual([expect.objectContaining({ device_id: deviceId, roles: [] })]);

    const granted = await a.ok('gateway.grantAdmin', { device_id: deviceId });
    expect(granted).toMatchObject({ device_id: deviceId, status: 'paired', roles: ['admin'] });
    expect((await a.ok('gateway.listDevices')).devices).toEqual([expect.objectContaining({ device_id: deviceId, roles: ['admin'] })]);
    // Granting twice keeps one role.
    expect((await a.ok('gateway.grantAdmin', { device_id: deviceId })).roles).toEqual(['admin']);

    const withdrawn = await a.ok('gateway.revokeAdmin', { device_id: deviceId });
    expect(withdrawn).toMatchObject({ device_id: deviceId, status: 'paired', roles: [] });
    expect((await a.ok('gateway.listDevices')).devices).toEqual([expect.objectContaining({ device_id: deviceId, status: 'paired', roles: [] })]);

    // An unknown device: the gateway's own error.
    expect(await a.client.call('gateway.grantAdmin', { device_id: '01HZY3V4J6K8M9N0P1Q2R3S4T5' })).toMatchObject({ ok: false, error: { code: 'device_not_paired' } });

    const audit = await a.ok('gateway.auditTail', { count: 50 });
    expect(audit.chain.ok).toBe(true);
    const events = audit.entries.map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['role_granted', 'role_revoked']));
    expect(events.lastIndexOf('role_revoked')).toBeGreaterThan(events.indexOf('role_granted'));
    expectEventsValid(a);
  });

  it('PIN: B verifies the gateway by the PIN exchange (pinned_by pin); a rejected request reaches B as rejected', async () => {
    const a = await app();
    const b = await app();
    const gateway = await hostGateway(a, 'Lab');

    const first = await a.ok('gateway.mintCode', { method: 'pin' });
    expect(first.code).toMatch(/^[0-9]{6}$/);
    expect(first.uri).toBeNull();
    const { pairing_id: rejectedRun } = await b.ok('device.pairStart', { method: 'pin', pin: first.code, gateway: gateway.listen });
    const created = (await gatewayEvent(a.client, 'request.created')).request;
    const verifying = await progress(b.client, rejectedRun, 'verifying_gateway');
    expect(verifying).toMatchObject({ pinned: false, ca_fingerprint: gateway.ca_fingerprint });
    await a.ok('gateway.reject', { request_id: created.request_id, reason: 'not ours' });
    const rejected = await progress(b.client, rejectedRun, 'rejected');
    expect(rejected.reason).toBe('not ours');
    expect((await b.ok('device.status')).paired).toBe(false);

    const second = await a.ok('gateway.mintCode', { method: 'pin' });
    const { pairing_id: run } = await b.ok('device.pairStart', { method: 'pin', pin: second.code, gateway: gateway.listen });
    const next = await gatewayEvent(a.client, 'request.created', (p) => p.request.request_id !== created.request_id);
    await a.ok('gateway.approve', { request_id: next.request.request_id });
    await progress(b.client, run, 'paired');
    expect(await b.ok('device.status')).toMatchObject({ paired: true, pinned_by: 'pin', ca_fingerprint: gateway.ca_fingerprint });

    // B unpairs itself: the gateway revokes it, B is clean again.
    expect(await b.ok('device.unpair')).toEqual({ unpaired: true });
    await deviceEvent(b.client, 'unpaired', () => true, 10_000);
    expect(await b.ok('device.status')).toMatchObject({ paired: false, device_id: null, gateway: null });
    await expect.poll(async () => (await a.ok('gateway.listDevices')).devices.map((d) => d.status), { timeout: 10_000 }).toEqual(['revoked']);
    // A PIN on its own (not as digits inside a longer number such as a timestamp) was never logged.
    for (const line of [...a.logs, ...b.logs]) for (const pin of [first.code, second.code]) expect(line).not.toMatch(new RegExp(`(?<![0-9])${pin}(?![0-9])`));
  });

  it('a pairing can be cancelled by its id: reported at once, and only once', async () => {
    const a = await app();
    const b = await app();
    await hostGateway(a);
    const minted = await a.ok('gateway.mintCode', { method: 'qr' });
    const { pairing_id: run } = await b.ok('device.pairStart', { method: 'uri', uri: minted.uri ?? '' });
    await progress(b.client, run, 'awaiting_approval');
    expect(await b.ok('device.pairCancel', { pairing_id: run })).toEqual({ cancelled: true });
    const failed = await progress(b.client, run, 'failed', 5_000);
    expect(failed).toMatchObject({ code: 'cancelled' });
    expect(await b.ok('device.pairCancel', { pairing_id: run })).toEqual({ cancelled: false });
    expect(await b.ok('device.pairCancel', { pairing_id: 'no-such-run' })).toEqual({ cancelled: false });
    expect(b.client.received('device.pairing').filter((p) => p.pairing_id === run && TERMINAL.includes(p.progress.type))).toHaveLength(1);
    expect((await b.ok('device.status')).paired).toBe(false);
  });

  it('a gateway that cannot start (port taken) reports why in its status, and starts once the port is free', async () => {
    const a = await app();
    const net = await import('node:net');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as import('node:net').AddressInfo).port;
    const failed = await a.ok('gateway.configure', { enabled: true, listen: `127.0.0.1:${port}` });
    expect(failed).toMatchObject({ enabled: true, running: false, ca_pin: null, error: { code: expect.any(String), message: expect.any(String) } });
    expect((await a.ok('gateway.status')).error).toEqual(failed.error);
    await new Promise((resolve) => blocker.close(resolve));
    const started = await a.ok('gateway.configure', { enabled: true });
    expect(started).toMatchObject({ running: true, listen: `127.0.0.1:${port}`, error: null });
  });

  it('turning the hosted gateway off stops it, and the settings survive a restart of the app', async () => {
    const a = await app();
    const on = await hostGateway(a, 'Persisted');
    const off = await a.ok('gateway.configure', { enabled: false });
    // The CA outlives the listener: the host still shows which CA its devices trust.
    expect(off).toMatchObject({ enabled: false, running: false, name: 'Persisted', listen: '127.0.0.1:0', ca_pin: on.ca_pin, ca_fingerprint: on.ca_fingerprint });
    expect(a.services.gateway).toBeNull();
    // Nothing listens on the old port any more.
    const net = await import('node:net');
    const port = Number(on.listen.split(':')[1]);
    await expect(
      new Promise((resolve, reject) => {
        net.connect(port, '127.0.0.1').once('connect', resolve).once('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    await a.ok('gateway.configure', { enabled: true });
    const { DesktopServices } = await import('../../main/app/services.js');
    const { MemoryKeychain } = await import('../../main/store/keychain.js');
    await a.services.dispose();
    const reopened = await DesktopServices.open({ userDataDir: a.services.userDataDir, keychain: 'os', osKeychain: new MemoryKeychain(), gatewayKeychain: null, mode: 'browser' });
    try {
      const status = reopened.gateway;
      expect(status).not.toBeNull();
      expect(status?.name).toBe('Persisted');
      expect(status?.caFingerprint).toBe(on.ca_fingerprint);
    } finally {
      await reopened.dispose();
    }
  });

  it('errors reach the client without local paths: a coded error names the file only, an internal one only an incident', async () => {
    const a = await app();
    // settings.json taken by a folder: saving the configuration fails with store_io_failed, whose message names it.
    await mkdir(path.join(a.dir, 'userData', SETTINGS_FILE), { recursive: true });
    const saved = await a.client.call('gateway.configure', { enabled: false, name: 'Unsaved' });
    expect(saved.ok).toBe(false);
    if (!saved.ok) {
      expect(saved.error.code).toBe('store_io_failed');
      expect(saved.error.message).toContain(SETTINGS_FILE);
      expect(saved.error.message).not.toContain(a.dir);
      expect(saved.error.message).not.toMatch(/(^|[\s'"])\/[^\s'"]+\//);
    }

    // A handler bug: the client gets the code, the generic text and an incident; the host's log gets the rest.
    const logged: Record<string, unknown>[] = [];
    const bug = new TypeError(`Cannot read properties of undefined (reading 'listen') in ${path.join(a.dir, 'main', 'x.js')}`);
    const host = await startBrowserHost({ services: stubServices({ 'gateway.status': () => Promise.reject(bug) }), rendererDir: path.join(a.dir, 'none'), log: (line) => logged.push(line) });
    const client = await connectIpc(host);
    try {
      const envelope = await client.call('gateway.status', {});
      expect(envelope.ok).toBe(false);
      const message = envelope.ok ? '' : envelope.error.message;
      expect(envelope.ok ? null : envelope.error.code).toBe('internal');
      const incident = /^Something went wrong inside Palyra; see the log for details \(incident ([0-9a-f]{8})\)\.$/.exec(message)?.[1];
      expect(incident, message).toBeDefined();
      expect(logged).toContainEqual(expect.objectContaining({ event: 'ipc.internal_error', channel: 'gateway.status', incident, message: bug.message }));
    } finally {
      await client.close();
      await host.close();
    }
  });
});
