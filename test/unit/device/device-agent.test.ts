// The agent without a gateway: status never makes an identity, a locked keychain is reported as locked, and the
// connected mode refuses to run for a device that is not paired.
import { readdir } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceAgent } from '../../../main/device/device-agent.js';
import type { AgentEvent } from '../../../main/device/device-agent.js';
import { MemoryKeychain } from '../../../main/store/keychain.js';
import { tempDir } from '../../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function dir(): Promise<string> {
  const d = await tempDir('palyra-agent-unit-');
  cleanups.push(d.cleanup);
  return d.dir;
}

describe('DeviceAgent.status', () => {
  it('reports a fresh device dir as unpaired and creates no identity (file mode)', async () => {
    const deviceDir = await dir();
    const agent = await DeviceAgent.open({ deviceDir, keychain: 'file' });
    expect(await agent.status()).toEqual({
      device_id: null,
      identity_fingerprint: null,
      paired: false,
      revoked: false,
      gateway: null,
      gateway_name: null,
      ca_fingerprint: null,
      pinned_by: null,
      cert_expires_at_unix_ms: null,
      keychain: 'file',
      connection: 'offline',
      renewal: 'idle',
    });
    expect(await readdir(deviceDir)).toEqual([]);
  });

  it('reports an existing identity, and a locked keychain as locked without generating one', async () => {
    const deviceDir = await dir();
    const keychain = new MemoryKeychain();
    const agent = await DeviceAgent.open({ deviceDir, keychain: 'os', osKeychain: keychain });
    const identity = await agent.store.loadOrCreateIdentity();
    expect(await agent.status()).toMatchObject({ device_id: identity.deviceId, identity_fingerprint: identity.fingerprint, paired: false, keychain: 'os' });

    const lockedKeychain = new MemoryKeychain('locked');
    const locked = await DeviceAgent.open({ deviceDir: await dir(), keychain: 'os', osKeychain: lockedKeychain });
    expect(await locked.status()).toMatchObject({ device_id: null, paired: false, keychain: 'locked' });
    expect(lockedKeychain.size).toBe(0);
  });

  it('fails with keychain_unavailable in os mode without any keychain', async () => {
    const agent = await DeviceAgent.open({ deviceDir: await dir(), keychain: 'os', osKeychain: null });
    await expect(agent.status()).rejects.toMatchObject({ code: 'keychain_unavailable' });
  });
});

describe('DeviceAgent.start', () => {
  it('asks for a pairing instead of connecting when the device is not paired', async () => {
    const agent = await DeviceAgent.open({ deviceDir: await dir(), keychain: 'os', osKeychain: new MemoryKeychain() });
    const events: AgentEvent[] = [];
    const done = new Promise<void>((resolve) => {
      agent.on((e) => {
        events.push(e);
        if (e.type === 'reauth_required') resolve();
      });
    });
    agent.start();
    await done;
    await agent.stop();
    expect(events).toEqual([{ type: 'reauth_required', reason: 'this device is not paired; pair it with a gateway first' }]);
    expect(agent.running).toBe(false);
  });

  it('reports a locked keychain as a failure of the connected mode', async () => {
    const keychain = new MemoryKeychain();
    const agent = await DeviceAgent.open({ deviceDir: await dir(), keychain: 'os', osKeychain: keychain });
    await agent.store.loadOrCreateIdentity();
    keychain.setStatus('locked');
    const failed = new Promise<AgentEvent>((resolve) => {
      agent.on((e) => {
        if (e.type === 'failed') resolve(e);
      });
    });
    agent.start();
    expect(await failed).toMatchObject({ type: 'failed', code: 'keychain_locked' });
    await agent.stop();
  });

  it('refuses a heartbeat interval that would flood the gateway', async () => {
    await expect(DeviceAgent.open({ deviceDir: await dir(), keychain: 'file', heartbeatMs: 1 })).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});
