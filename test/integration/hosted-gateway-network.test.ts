// The hosted gateway's network setting: "this computer only" (loopback) or "devices on this network" (every
// interface). Changing it restarts the listener on the same state: the CA, codes and pairings stay. Announcing is off
// here (no multicast outside a network namespace); discovery-netns.test.ts covers DNS-SD.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { openTestApp } from '../helpers/desktop-app.js';
import type { TestApp } from '../helpers/desktop-app.js';

let app: TestApp | null = null;

afterEach(async () => {
  await app?.cleanup();
  app = null;
});

describe('hosted gateway network', () => {
  it('moves from this computer to the network and back, keeping the CA and the codes, and QR codes follow', async () => {
    app = await openTestApp();
    const local = await app.ok('gateway.configure', { enabled: true, listen: '127.0.0.1:0' });
    expect(local).toMatchObject({ running: true, network: 'local', announced: false });
    expect(local.addresses).toEqual([local.listen]);
    const pin = await app.ok('gateway.mintCode', { method: 'pin' });

    const lan = await app.ok('gateway.configure', { enabled: true, network: 'lan', announce: false });
    expect(lan).toMatchObject({ running: true, network: 'lan', announced: false, announce: false, ca_fingerprint: local.ca_fingerprint });
    expect(lan.listen).toMatch(/^(0\.0\.0\.0|\[::\]):[1-9][0-9]*$/);
    expect(lan.addresses?.length).toBeGreaterThan(0);
    expect(lan.addresses?.some((a) => a.startsWith('0.0.0.0') || a.startsWith('[::]'))).toBe(false);
    expect((await app.ok('gateway.listCodes')).codes).toEqual([expect.objectContaining({ method: 'pin', expires_at_unix_ms: pin.expires_at_unix_ms })]);
    const qr = await app.ok('gateway.mintCode', { method: 'qr' });
    const uri = parsePairingUri(qr.uri ?? '', { now: Date.now() });
    expect(uri.gateways.map((g) => (g.host.includes(':') ? `[${g.host}]:${g.port}` : `${g.host}:${g.port}`))).toEqual(lan.addresses);

    const settings = JSON.parse(await readFile(path.join(app.dir, 'userData', 'settings.json'), 'utf8')) as { gateway: Record<string, unknown> };
    expect(settings.gateway).toMatchObject({ enabled: true, network: 'lan', announce: false, listen: '0.0.0.0:0' });

    const back = await app.ok('gateway.configure', { enabled: true, network: 'local' });
    expect(back).toMatchObject({ running: true, network: 'local', ca_fingerprint: local.ca_fingerprint });
    expect(back.listen).toMatch(/^127\.0\.0\.1:[1-9][0-9]*$/);
    // Turned off, the gateway still has its CA: the status keeps showing it (not "created when it first starts").
    const off = await app.ok('gateway.configure', { enabled: false });
    expect(off).toMatchObject({ running: false, ca_fingerprint: local.ca_fingerprint, ca_pin: local.ca_pin });
  });

  it('refuses a listen address that contradicts the network, changing nothing', async () => {
    app = await openTestApp();
    const before = await app.ok('gateway.configure', { enabled: false, listen: '127.0.0.1:7444' });
    const envelope = await app.client.call('gateway.configure', { enabled: true, listen: '127.0.0.1:0', network: 'lan' });
    expect(envelope).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect(await app.ok('gateway.status')).toMatchObject({ enabled: false, running: false, listen: before.listen, network: 'local' });
  });
});
