// The device agent against a real in-process gateway over TLS on 127.0.0.1: pairing, connected mode, capabilities,
// reconnects across a gateway restart, revocation, renewal with a fresh key, an expired certificate, unpair.
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { DeviceAgent } from '../../main/device/device-agent.js';
import type { AgentEvent, DeviceAgentOptions } from '../../main/device/device-agent.js';
import { Gateway } from '../../main/gateway/gateway.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import type { GatewayEvent, GatewayStartOptions } from '../../main/gateway/gateway.js';
import type { NodeEventResponse__Output } from '../../main/rpc/node-service.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import { tempDir } from '../helpers/identity.js';
import { withDeadline } from '../helpers/wait.js';

/** Generous bound for anything that should take milliseconds on an idle machine. */
const SOON_MS = 10_000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function newGateway(extra: Partial<GatewayStartOptions> = {}): Promise<{ gateway: Gateway; stateDir: string; events: GatewayEvent[] }> {
  const { dir, cleanup } = await tempDir('palyra-agent-gw-');
  const gateway = await Gateway.start({
    stateDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    name: 'Agent Test Gateway',
    insecureNodeRpcOptOut: false,
    allowServerGeneratedKeys: false,
    allowLegacyDeviceIds: false,
    keychain: null,
    ...extra,
  });
  const events: GatewayEvent[] = [];
  gateway.events.on('event', (e: GatewayEvent) => events.push(e));
  cleanups.push(async () => {
    await gateway.stop();
    await cleanup();
  });
  return { gateway, stateDir: dir, events };
}

interface TestAgent {
  agent: DeviceAgent;
  dir: string;
  events: AgentEvent[];
}

async function newAgent(extra: Partial<DeviceAgentOptions> = {}): Promise<TestAgent> {
  const { dir, cleanup } = await tempDir('palyra-agent-dev-');
  const agent = await DeviceAgent.open({ deviceDir: dir, keychain: 'os', osKeychain: new MemoryKeychain(), heartbeatMs: 100, ...extra });
  const events: AgentEvent[] = [];
  agent.on((e) => events.push(e));
  cleanups.push(async () => {
    await agent.stop();
    await cleanup();
  });
  return { agent, dir, events };
}

/** Pairs by QR and approves as soon as the request arrives. */
async function pairAgent(gateway: Gateway, agent: DeviceAgent): Promise<string> {
  const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: gateway.name });
  const uri = parsePairingUri(minted.uri!, { now: Date.now() });
  const unsubscribe = agent.on((e) => {
    if (e.type === 'awaiting_approval') void gateway.admin.approve(e.request_id);
  });
  try {
    const result = await agent.pair({ method: 'qr', uri }, { kind: 'node' });
    return result.deviceId;
  } finally {
    unsubscribe();
  }
}

/** Resolves with the first event that matches, or fails after `ms`. */
function waitFor<T>(events: T[], subscribe: (listener: (e: T) => void) => () => void, match: (e: T) => boolean, ms = SOON_MS, what = 'event'): Promise<T> {
  const seen = events.find(match);
  if (seen !== undefined) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no ${what} within ${ms} ms; saw ${JSON.stringify(events.slice(-20))}`));
    }, ms);
    const unsubscribe = subscribe((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(e);
    });
  });
}

function waitForAgent(t: TestAgent, match: (e: AgentEvent) => boolean, ms = SOON_MS, what = 'agent event'): Promise<AgentEvent> {
  return waitFor(t.events, (l) => t.agent.on(l), match, ms, what);
}

function waitForGateway(gateway: Gateway, events: GatewayEvent[], match: (e: GatewayEvent) => boolean, ms = SOON_MS, what = 'gateway event'): Promise<GatewayEvent> {
  return waitFor(
    events,
    (l) => {
      gateway.events.on('event', l);
      return () => gateway.events.off('event', l);
    },
    match,
    ms,
    what,
  );
}

/** Polls `check` every 20 ms until it holds (bounded). */
async function until(check: () => boolean, what: string, ms = SOON_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const isOnline = (e: AgentEvent): boolean => e.type === 'connection' && e.state === 'online';

function decode(bytes: Uint8Array): unknown {
  return bytes.length === 0 ? null : JSON.parse(Buffer.from(bytes).toString('utf8'));
}

/** Pairs a new agent, starts it and waits until the gateway has it online. */
async function onlineAgent(g: { gateway: Gateway; events: GatewayEvent[] }, extra: Partial<DeviceAgentOptions> = {}): Promise<TestAgent & { deviceId: string }> {
  const t = await newAgent(extra);
  const deviceId = await pairAgent(g.gateway, t.agent);
  t.agent.start();
  await waitForAgent(t, isOnline, SOON_MS, 'online');
  await waitForGateway(g.gateway, g.events, (e) => e.type === 'node.online' && e.device_id === deviceId, SOON_MS, 'node.online');
  return { ...t, deviceId };
}

describe('device agent: connected mode', () => {
  it('comes online after pairing and serves echo and system.identity', async () => {
    const g = await newGateway();
    const t = await onlineAgent(g);
    const status = await t.agent.status();
    expect(status).toMatchObject({ device_id: t.deviceId, paired: true, revoked: false, connection: 'online', renewal: 'idle', keychain: 'os', pinned_by: 'qr' });
    expect(status.gateway).toBe(g.gateway.listen);
    expect(status.ca_fingerprint).toBe(g.gateway.caFingerprint);

    const echo = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'echo', input: { hello: 'world', n: [1, 2, 3] } });
    expect(echo.success).toBe(true);
    expect(decode(echo.outputJson)).toEqual({ hello: 'world', n: [1, 2, 3] });

    const identity = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'system.identity', input: null });
    expect(identity.success).toBe(true);
    const device = g.gateway.admin.identity.pairedDevice(t.deviceId)!;
    expect(decode(identity.outputJson)).toMatchObject({
      device_id: t.deviceId,
      identity_fingerprint: status.identity_fingerprint,
      certificate_fingerprint: device.current_certificate.fingerprint,
      gateway_ca_fingerprint: g.gateway.caFingerprint,
    });

    const health = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'system.health', input: null });
    expect(decode(health.outputJson)).toMatchObject({ status: 'ok' });
    const unknown = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'no.such.thing', input: null });
    expect(unknown).toMatchObject({ success: false, error: "unknown capability 'no.such.thing'" });

    expect(g.gateway.listDevices().devices.find((d) => d.device_id === t.deviceId)?.capabilities).toEqual([
      'echo',
      'system.health',
      'system.identity',
      'desktop.notify',
      'desktop.open_url',
    ]);
    const states = t.events.flatMap((e) => (e.type === 'capability' ? [`${e.capability}:${e.state}`] : []));
    expect(states).toEqual(expect.arrayContaining(['echo:started', 'echo:succeeded', 'system.identity:succeeded', 'no.such.thing:failed']));
  });
});

describe('device agent: capabilities', () => {
  it('accepts a capability result only from the device the request was dispatched to (two agents)', async () => {
    const g = await newGateway();
    let confirm: (ok: boolean) => void = () => undefined;
    const asked: string[] = [];
    const a = await onlineAgent(g, {
      confirmOpenUrl: (url) => {
        asked.push(url);
        return new Promise<boolean>((resolve) => (confirm = resolve));
      },
    });
    const b = await onlineAgent(g);
    const running = g.gateway.executeCapability({ deviceId: a.deviceId, capability: 'desktop.open_url', input: { url: 'https://example.org/a' } });
    const started = await waitForAgent(a, (e) => e.type === 'capability' && e.capability === 'desktop.open_url' && e.state === 'started');
    const requestId = started.type === 'capability' ? started.request_id : '';
    const stateOf = (): string | undefined => g.gateway.dispatcher.list().find((r) => r.requestId === requestId)?.state;
    await until(() => stateOf() === 'awaiting_local_mediation', 'the gateway to see awaiting_local_mediation');
    expect(asked).toEqual(['https://example.org/a']);

    // B forges A's result on its own authenticated stream: refused, and the stream is ended.
    const bState = (await b.agent.store.readState())!;
    const bKey = (await b.agent.store.loadTlsPrivateKeyPem())!;
    const client = createNodeServiceClient(
      g.gateway.listen,
      createGatewayChannelCredentials({ caCertificatePem: g.gateway.caCertificatePem, clientCertificatePem: bState.certificate_pem!, clientPrivateKeyPem: bKey }),
    );
    try {
      const stream = client.StreamNodeEvents();
      const failed = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
      stream.on('data', (_r: NodeEventResponse__Output) => undefined);
      const payload = { request_id: requestId, success: true, output_json: { forged: true }, error: '' };
      stream.write({ v: 1, device_id: { ulid: b.deviceId }, event_name: 'capability.result', payload_json: Buffer.from(JSON.stringify(payload)) });
      const error = await failed;
      expect(error.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(error.metadata.get('palyra-error-code')).toEqual(['permission_denied']);
    } finally {
      client.close();
    }
    expect(stateOf()).toBe('awaiting_local_mediation');

    confirm(true);
    const result = await running;
    expect(result.success).toBe(true);
    expect(decode(result.outputJson)).toEqual({ opened: true, url: 'https://example.org/a' });
    expect(asked).toEqual(['https://example.org/a']);
    // B's agent is not disturbed by the refused forgery on another stream.
    expect(b.events.filter((e) => e.type === 'revoked')).toEqual([]);
  });

  it('denies desktop.open_url without a local confirmation and opens only http(s) URLs after one', async () => {
    const g = await newGateway();
    const headless = await onlineAgent(g);
    const denied = await g.gateway.executeCapability({ deviceId: headless.deviceId, capability: 'desktop.open_url', input: { url: 'https://example.org/' } });
    expect(denied).toMatchObject({ success: false, error: 'denied locally' });
    expect(headless.events.flatMap((e) => (e.type === 'capability' ? [e.state] : []))).toEqual(['started', 'denied']);

    const answers = [false, true];
    const asked: string[] = [];
    const desktop = await onlineAgent(g, {
      confirmOpenUrl: (url) => {
        asked.push(url);
        return Promise.resolve(answers.shift() ?? false);
      },
    });
    const refused = await g.gateway.executeCapability({ deviceId: desktop.deviceId, capability: 'desktop.open_url', input: { url: 'https://example.org/1' } });
    expect(refused).toMatchObject({ success: false, error: 'denied locally' });
    const opened = await g.gateway.executeCapability({ deviceId: desktop.deviceId, capability: 'desktop.open_url', input: { url: 'https://example.org/2' } });
    expect(opened.success).toBe(true);
    expect(decode(opened.outputJson)).toEqual({ opened: true, url: 'https://example.org/2' });
    const file = await g.gateway.executeCapability({ deviceId: desktop.deviceId, capability: 'desktop.open_url', input: { url: 'file:///etc/passwd' } });
    expect(file.success).toBe(false);
    expect(file.error).toMatch(/http or https/);
    expect(asked).toEqual(['https://example.org/1', 'https://example.org/2']);
  });

  it('replaces an output larger than max_payload_bytes by an error, and delivers desktop.notify', async () => {
    const g = await newGateway();
    const notes: [string, string][] = [];
    const t = await onlineAgent(g, { notify: (title, body) => notes.push([title, body]) });
    const small = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'system.identity', input: null, maxPayloadBytes: 64 });
    expect(small).toMatchObject({ success: false, error: 'capability output exceeds max_payload_bytes=64' });
    expect(small.outputJson.length).toBe(0);
    const fits = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'echo', input: 'x'.repeat(60), maxPayloadBytes: 64 });
    expect(fits.success).toBe(true);
    const notified = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'desktop.notify', input: { title: 'Hi', body: 'there' } });
    expect(notified.success).toBe(true);
    expect(notes).toEqual([['Hi', 'there']]);
  });
});

describe('device agent: connection, revocation, renewal, expiry, unpair', () => {
  it('reconnects after the gateway restarts on the same port and state directory', async () => {
    const g = await newGateway();
    const t = await onlineAgent(g);
    const port = g.gateway.port;
    await g.gateway.stop();
    await waitForAgent(t, (e) => e.type === 'connection' && e.state === 'offline', SOON_MS, 'offline');
    const before = t.events.length;
    const restarted = await Gateway.start({
      stateDir: g.stateDir,
      listen: { host: '127.0.0.1', port },
      name: 'Agent Test Gateway',
      insecureNodeRpcOptOut: false,
      allowServerGeneratedKeys: false,
      allowLegacyDeviceIds: false,
      keychain: null,
    });
    cleanups.push(() => restarted.stop());
    // The gateway accepts connections before start() resolves, so the node may already be back at this point.
    await waitFor(t.events.slice(before), (l) => t.agent.on(l), isOnline, 15_000, 'online after restart');
    await until(() => restarted.liveNodes().has(t.deviceId), 'the restarted gateway to have the node live');
    // How long the reconnect takes is reported by test/bench/device.bench.mjs, not asserted here.
    const echo = await restarted.executeCapability({ deviceId: t.deviceId, capability: 'echo', input: 'again' });
    expect(decode(echo.outputJson)).toBe('again');
    // The gateway was unreachable, never refusing: no revocation was inferred.
    expect(t.events.some((e) => e.type === 'revoked')).toBe(false);
    expect((await t.agent.status()).paired).toBe(true);
  });

  it('stops and records the revocation when the operator revokes the device', async () => {
    const g = await newGateway();
    const t = await onlineAgent(g);
    await g.gateway.admin.revokeDevice(t.deviceId, 'lost laptop');
    const revoked = await waitForAgent(t, (e) => e.type === 'revoked', SOON_MS, 'revoked');
    // Pushed on the open stream, not found out at a later handshake: the stream ended with PERMISSION_DENIED and
    // palyra-error-code device_revoked (its message is the reason), and the agent never tried to connect again.
    expect(revoked).toEqual({ type: 'revoked', reason: 'device is revoked' });
    expect(t.events.filter((e) => e.type === 'connection' && e.state === 'connecting')).toHaveLength(1);
    const state = await t.agent.store.readState();
    expect(state).toMatchObject({ revoked: true, paired: false });
    expect(await t.agent.status()).toMatchObject({ revoked: true, paired: false, connection: 'offline' });
    expect(t.agent.running).toBe(false);
    // Starting again does not reconnect: the recorded revocation is reported at once.
    const count = t.events.length;
    t.agent.start();
    await waitFor(t.events.slice(count), (l) => t.agent.on(l), (e) => e.type === 'revoked', SOON_MS, 'revoked again');
    expect(t.events.slice(count).some((e) => e.type === 'connection' && e.state === 'connecting')).toBe(false);
  });

  it('stops promptly even while a connect attempt hangs on a silent address', async () => {
    const g = await newGateway();
    const t = await newAgent();
    await pairAgent(g.gateway, t.agent);
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => {
            resolve();
          });
        }),
    );
    const state = (await t.agent.store.readState())!;
    await t.agent.store.writeState({ ...state, gateway: { ...state.gateway!, addresses: [`127.0.0.1:${(silent.address() as net.AddressInfo).port}`] } });
    const accepted = new Promise<void>((resolve) => silent.once('connection', () => { resolve(); }));
    t.agent.start();
    await waitForAgent(t, (e) => e.type === 'connection' && e.state === 'connecting');
    // The TCP connection is open and its TLS handshake will never be answered: the attempt hangs from here on.
    await withDeadline(accepted, { what: 'the connect attempt to reach the silent address' });
    const fromStop = t.events.length;
    await withDeadline(t.agent.stop(), { what: 'agent.stop() while a connect attempt hangs' });
    expect(t.agent.running).toBe(false);
    expect((await t.agent.status()).connection).toBe('offline');
    // stop() did not wait for the hung attempt to give up: a failed attempt is reported as offline with a retry delay,
    // and none was, before or after; the only transition is the stop's own offline.
    expect(t.events.filter((e) => e.type === 'connection' && e.retry_in_ms !== undefined)).toEqual([]);
    expect(t.events.slice(fromStop).filter((e) => e.type === 'connection')).toEqual([{ type: 'connection', state: 'offline' }]);
  });

  it('finds out at the next handshake that it was revoked while it was offline', async () => {
    const g = await newGateway();
    const t = await onlineAgent(g);
    const port = g.gateway.port;
    await g.gateway.stop();
    await waitForAgent(t, (e) => e.type === 'connection' && e.state === 'offline', SOON_MS, 'offline');
    // Another process on the state directory (the CLI) revokes it while no gateway runs.
    const admin = await GatewayAdmin.open({ stateDir: g.stateDir, keychain: null });
    await admin.revokeDevice(t.deviceId, 'revoked while offline');
    const restarted = await Gateway.start({
      stateDir: g.stateDir,
      listen: { host: '127.0.0.1', port },
      name: null,
      insecureNodeRpcOptOut: false,
      allowServerGeneratedKeys: false,
      allowLegacyDeviceIds: false,
      keychain: null,
    });
    cleanups.push(() => restarted.stop());
    const revoked = await waitForAgent(t, (e) => e.type === 'revoked', 15_000, 'revoked after reconnecting');
    // The gateway now says so with a coded status (certificate_revoked) instead of dropping the connection.
    expect(revoked).toMatchObject({ reason: expect.stringMatching(/certificate is revoked/) });
    expect(await t.agent.store.readState()).toMatchObject({ revoked: true, paired: false });
    expect(t.agent.running).toBe(false);
  }, 30_000);

  it('renews its certificate over mTLS before it expires and stays online', async () => {
    const g = await newGateway({ certificateValidityMs: 20_000 });
    const t = await onlineAgent(g);
    const before = (await t.agent.store.readState())!;
    const offlineBefore = g.events.filter((e) => e.type === 'node.offline').length;
    const renewed = await waitForAgent(t, (e) => e.type === 'renewed', 25_000, 'renewed');
    const renewedAt = Date.now();
    // Before expiry: the renewal went over mTLS with the old certificate, which the gateway accepts only while valid,
    // and the node never went offline (checked below).
    const after = (await t.agent.store.readState())!;
    expect(after.certificate_fingerprint).not.toBe(before.certificate_fingerprint);
    expect(renewed).toEqual({ type: 'renewed', cert_expires_at_unix_ms: after.cert_expires_at_unix_ms });
    expect(after.cert_expires_at_unix_ms!).toBeGreaterThan(before.cert_expires_at_unix_ms!);
    // Renewal happens about two thirds into the certificate's life.
    const life = before.cert_expires_at_unix_ms! - before.cert_issued_at_unix_ms!;
    expect(renewedAt - before.cert_issued_at_unix_ms!).toBeGreaterThan(life * 0.5);
    expect(g.gateway.admin.identity.pairedDevice(t.deviceId)?.current_certificate.fingerprint).toBe(after.certificate_fingerprint);
    expect(g.gateway.listDevices().revoked_certificate_fingerprints).toContain(before.certificate_fingerprint);
    // Served on the new channel, and the node never went offline.
    const echo = await g.gateway.executeCapability({ deviceId: t.deviceId, capability: 'system.identity', input: null });
    expect(decode(echo.outputJson)).toMatchObject({ certificate_fingerprint: after.certificate_fingerprint });
    expect(g.events.filter((e) => e.type === 'node.offline').length).toBe(offlineBefore);
    expect(t.events.filter((e) => e.type === 'connection' && e.state !== 'online')).toEqual([{ type: 'connection', state: 'connecting', attempt: 1 }]);
    expect((await t.agent.status()).renewal).toBe('idle');
  }, 60_000);

  it('asks for a new pairing when the certificate expired before it could be renewed', async () => {
    const g = await newGateway({ certificateValidityMs: 3_000 });
    const t = await newAgent();
    await pairAgent(g.gateway, t.agent);
    await g.gateway.stop();
    t.agent.start();
    const reauth = await waitForAgent(t, (e) => e.type === 'reauth_required', 8_000, 'reauth_required');
    expect(reauth).toMatchObject({ reason: expect.stringMatching(/expired/) });
    const state = (await t.agent.store.readState())!;
    expect(state).toMatchObject({ paired: false, certificate_pem: null, certificate_fingerprint: null, cert_expires_at_unix_ms: null });
    expect(state.gateway).not.toBeNull();
    expect(t.agent.running).toBe(false);
  }, 30_000);

  it('unpairs: the gateway revokes the device and the local material is wiped', async () => {
    const g = await newGateway();
    const t = await onlineAgent(g);
    const result = await t.agent.unpair();
    expect(result, JSON.stringify(result)).toEqual({ device_id: t.deviceId, revoked_at_gateway: true, gateway_error: null });
    expect(t.events.at(-1)).toEqual({ type: 'unpaired' });
    expect(g.gateway.listDevices().devices.find((d) => d.device_id === t.deviceId)?.status).toBe('revoked');
    expect((await readdir(t.dir)).filter((n) => !n.startsWith('.'))).toEqual([]);
    expect(await t.agent.status()).toMatchObject({ device_id: null, paired: false, gateway: null });
    expect(t.events.some((e) => e.type === 'revoked')).toBe(false);
  });

  it('unpairs with the gateway unreachable: wipes anyway and says so', async () => {
    const g = await newGateway();
    const t = await onlineAgent(g);
    await g.gateway.stop();
    const result = await t.agent.unpair();
    expect(result.revoked_at_gateway).toBe(false);
    expect(result.gateway_error?.code).toBe('gateway_unreachable');
    expect(await t.agent.store.readState()).toBeNull();
  });
});
