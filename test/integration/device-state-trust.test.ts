// A device whose device.v1.json was tampered with never dials (PROTOCOL.md §13): a real gateway on 127.0.0.1 sits
// behind a counting TCP relay (the address the device was paired with), an attacker's listener waits on another port,
// and after each tampering neither sees a connection, from the DeviceAgent or from `palyra device run`. Unpairing
// recovers. Device dirs use --keychain file so the CLI child can open them; the seal logic is the same in both modes
// (test/unit/device/device-state-trust.test.ts runs both).
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../main/core/certificate-authority.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { DeviceAgent } from '../../main/device/device-agent.js';
import type { AgentEvent } from '../../main/device/device-agent.js';
import { deviceKeychainAccount, DeviceStore } from '../../main/device/device-store.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import { KEYCHAIN_SERVICE, openOsKeychain } from '../../main/store/keychain.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import { startGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

interface Listener {
  address: string;
  connections: () => number;
}

/** A TCP listener on 127.0.0.1 that counts connections and relays them to `upstreamPort` (or just holds them). */
async function countingListener(upstreamPort: number | null): Promise<Listener> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections += 1;
    sockets.add(client);
    client.on('error', () => client.destroy());
    if (upstreamPort === null) return;
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  );
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

interface Setup {
  gateway: Gateway;
  relay: Listener;
  attacker: Listener;
  deviceDir: string;
  deviceId: string;
}

/** A gateway behind a relay, and a device paired with it through the relay (QR, auto-approved). */
function pairedDevice(): Promise<Setup> {
  return pairedDeviceIn('file');
}

async function pairedDeviceIn(mode: 'file' | 'os'): Promise<Setup> {
  const { gateway, cleanup } = await startGateway();
  cleanups.push(cleanup);
  const relay = await countingListener(gateway.port);
  const attacker = await countingListener(null);
  const { dir, cleanup: removeDir } = await tempDir('palyra-trust-dev-');
  cleanups.push(removeDir);
  const deviceDir = path.join(dir, 'device');
  const store = await DeviceStore.open({ deviceDir, keychain: mode });
  const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'test', gatewayAddresses: [relay.address], gatewayName: gateway.name });
  const result = await pairDevice({
    store,
    target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) },
    kind: 'node',
    onProgress: (event) => {
      if (event.type === 'awaiting_approval') void gateway.admin.approve(event.request_id);
    },
  });
  return { gateway, relay, attacker, deviceDir, deviceId: result.deviceId };
}

/** Starts an agent on the dir and resolves with its events once it went online or failed. */
async function runAgent(deviceDir: string): Promise<AgentEvent[]> {
  const agent = await DeviceAgent.open({ deviceDir, keychain: 'file' });
  const events: AgentEvent[] = [];
  agent.on((event) => events.push(event));
  try {
    agent.start();
    await waitFor(() => events.some((e) => e.type === 'failed' || (e.type === 'connection' && e.state === 'online')), {
      what: 'the agent to go online or fail',
      detail: () => JSON.stringify(events),
    });
  } finally {
    await agent.stop();
  }
  return events;
}

const statePath = (s: Setup): string => path.join(s.deviceDir, 'device.v1.json');

async function readDoc(s: Setup): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(statePath(s), 'utf8')) as Record<string, unknown>;
}

describe('a tampered device state never reaches the network', () => {
  it('an untouched paired device connects through the relay (the counter works)', async () => {
    const s = await pairedDevice();
    const before = s.relay.connections();
    const events = await runAgent(s.deviceDir);
    expect(events).toContainEqual(expect.objectContaining({ type: 'connection', state: 'online' }));
    expect(s.relay.connections()).toBeGreaterThan(before);
  });

  const tamperings: [string, (s: Setup) => Promise<void>][] = [
    [
      'one flipped byte in the pinned CA certificate',
      async (s) => {
        const bytes = await readFile(statePath(s));
        const at = bytes.indexOf('-----BEGIN CERTIFICATE-----') + 40;
        bytes[at] = bytes[at]! ^ 0x01;
        await writeFile(statePath(s), bytes);
      },
    ],
    [
      "the pinned CA swapped for the attacker's CA, and the address for the attacker's",
      async (s) => {
        const ca = await CertificateAuthority.load(await createCertificateAuthority({ now: Date.now(), commonName: 'Palyra Gateway CA' }));
        const doc = await readDoc(s);
        const gateway = doc.gateway as Record<string, unknown>;
        await writeFile(
          statePath(s),
          JSON.stringify({
            ...doc,
            gateway: { ...gateway, addresses: [s.attacker.address], ca_certificate_pem: ca.certificatePem, ca_fingerprint: ca.fingerprint, ca_pin: ca.spkiPin },
          }),
        );
      },
    ],
    [
      'an older copy restored after a later write',
      async (s) => {
        const older = `${statePath(s)}.older`;
        await copyFile(statePath(s), older);
        const store = await DeviceStore.open({ deviceDir: s.deviceDir, keychain: 'file' });
        await store.updateState((current) => ({ ...current!, updated_at_unix_ms: current!.updated_at_unix_ms + 1 }));
        await copyFile(older, statePath(s));
        await rm(older);
      },
    ],
    [
      'the file deleted',
      async (s) => {
        await rm(statePath(s));
      },
    ],
  ];

  it.each(tamperings)('%s: the agent fails with device_state_corrupt and dials nobody', async (_name, tamper) => {
    const s = await pairedDevice();
    await tamper(s);
    const [relayBefore, attackerBefore] = [s.relay.connections(), s.attacker.connections()];
    const events = await runAgent(s.deviceDir);
    expect(events).toEqual([expect.objectContaining({ type: 'failed', code: 'device_state_corrupt' })]);
    const failed = events[0] as { message: string };
    expect(failed.message).toContain(statePath(s));
    expect(failed.message).toContain('palyra device unpair');
    expect(s.relay.connections()).toBe(relayBefore);
    expect(s.attacker.connections()).toBe(attackerBefore);
  });

  it('`palyra device run` refuses before connecting, names the file and the way out, and unpair recovers', async () => {
    const s = await pairedDevice();
    const doc = await readDoc(s);
    const gateway = doc.gateway as Record<string, unknown>;
    await writeFile(statePath(s), JSON.stringify({ ...doc, gateway: { ...gateway, addresses: [s.attacker.address] } }));
    const [relayBefore, attackerBefore] = [s.relay.connections(), s.attacker.connections()];
    const dirArgs = ['--device-dir', s.deviceDir, '--keychain', 'file'];

    const run = await runCli(['device', 'run', ...dirArgs]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error\[device_state_corrupt\]: /m);
    expect(run.stderr).toContain(statePath(s));
    expect(run.stderr).toContain(`palyra device unpair --device-dir ${s.deviceDir} --keychain file`);
    const status = await runCliJson(['device', 'status', ...dirArgs]);
    expect(status.code).toBe(1);
    expect(status.json).toMatchObject({ error: { code: 'device_state_corrupt' } });

    const unpair = await runCli(['device', 'unpair', ...dirArgs]);
    expect(unpair.code).toBe(0);
    expect(unpair.stderr).toContain('the gateway it names was not contacted');
    expect(unpair.stdout).toContain(`Unpaired device ${s.deviceId}`);
    expect(s.relay.connections()).toBe(relayBefore);
    expect(s.attacker.connections()).toBe(attackerBefore);

    const after = await runCliJson(['device', 'status', ...dirArgs]);
    expect(after.code).toBe(0);
    expect(after.json).toMatchObject({ device_id: null, paired: false });
  });

  it('a device dir from before sealing keeps its pairing: sealed on first start with a notice, then connects', async () => {
    const s = await pairedDevice();
    // What an older version left: the plain state, and no state key among the secrets.
    const { generation: _g, mac: _m, ...plain } = await readDoc(s);
    await writeFile(statePath(s), `${JSON.stringify(plain, null, 2)}\n`);
    const { FilesystemSecretStore } = await import('../../main/store/fs-secret-store.js');
    const { DEVICE_STATE_SEAL_SECRET } = await import('../../main/device/device-store.js');
    await (await FilesystemSecretStore.open(path.join(s.deviceDir, 'secrets'), { keychain: null })).deleteSecret(DEVICE_STATE_SEAL_SECRET);

    const status = await runCliJson(['device', 'status', '--device-dir', s.deviceDir, '--keychain', 'file']);
    expect(status.json).toMatchObject({ device_id: s.deviceId, paired: true });
    expect(status.stderr).toMatch(/^notice: sealed .*device\.v1\.json \(written by an older version\)/m);
    expect(await readDoc(s)).toMatchObject({ generation: 1, mac: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const before = s.relay.connections();
    expect(await runAgent(s.deviceDir)).toContainEqual(expect.objectContaining({ type: 'connection', state: 'online' }));
    expect(s.relay.connections()).toBeGreaterThan(before);
  });
});

const secretService = process.env.PALYRA_TEST_SECRET_SERVICE === '1';

describe.skipIf(!secretService)('the seal keyed from the real OS keychain (gnome-keyring via keytar)', () => {
  it('keeps the state key and generation in the device entry, and refuses a rollback and a deletion', async () => {
    const keychain = await openOsKeychain();
    if (keychain === null) throw new Error('PALYRA_TEST_SECRET_SERVICE=1 but the Secret Service is not usable');
    const s = await pairedDeviceIn('os');
    const account = await deviceKeychainAccount(s.deviceDir);
    cleanups.push(async () => {
      await keychain.delete(KEYCHAIN_SERVICE, account);
    });
    const entry = JSON.parse((await keychain.get(KEYCHAIN_SERVICE, account))!) as Record<string, unknown>;
    const doc = await readDoc(s);
    expect(entry).toMatchObject({ state_mac_key_b64: expect.stringMatching(/^[A-Za-z0-9+/]{43}$/), state_generation: doc.generation });
    expect(JSON.stringify(doc)).not.toContain(entry.state_mac_key_b64 as string);

    const older = `${statePath(s)}.older`;
    await copyFile(statePath(s), older);
    const store = await DeviceStore.open({ deviceDir: s.deviceDir, keychain: 'os' });
    await store.updateState((current) => ({ ...current!, updated_at_unix_ms: current!.updated_at_unix_ms + 1 }));
    await copyFile(older, statePath(s));
    const reopened = await DeviceStore.open({ deviceDir: s.deviceDir, keychain: 'os' });
    await expect(reopened.readState()).rejects.toMatchObject({ code: 'device_state_corrupt', message: expect.stringContaining('behind the') });
    await rm(statePath(s));
    await expect(reopened.loadIdentity()).rejects.toMatchObject({ code: 'device_state_corrupt', message: expect.stringContaining('is missing') });

    const before = s.relay.connections();
    const agent = await DeviceAgent.open({ deviceDir: s.deviceDir, keychain: 'os' });
    const events: AgentEvent[] = [];
    agent.on((event) => events.push(event));
    agent.start();
    await waitFor(() => events.find((e) => e.type === 'failed'), { what: 'the agent to fail', detail: () => JSON.stringify(events) });
    await agent.stop();
    expect(events).toEqual([expect.objectContaining({ type: 'failed', code: 'device_state_corrupt' })]);
    expect(s.relay.connections()).toBe(before);
    await reopened.wipe();
  }, 60_000);
});
