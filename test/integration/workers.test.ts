// `palyra gateway run --workers N` (issue 16 "All cores"): real child processes on one port. Devices are paired into
// the state directory beforehand (as a finished pairing leaves them) and hold raw mTLS event streams; each worker's
// log lines carry `worker`, so `node.online` says which worker holds which stream. Checked: one ready line with
// `workers`, a clean stop, a worker killed mid-run is replaced and its devices come back, a CLI revoke ends the stream
// on each worker with PERMISSION_DENIED, ExecuteCapability arriving on a worker that does not hold the device's stream
// is relayed to the one that does, and a bad --workers is a usage error.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../main/core/bytes.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import type { NodeEventResponse__Output, NodeServiceClient } from '../../main/rpc/node-service.js';
import type { GatewayAdminClient } from '../../main/rpc/admin-service.js';
import { createGatewayAdminClient } from '../../main/rpc/admin-service.js';
import { createGatewayChannelCredentials } from '../../main/rpc/tls-client.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';
import { certifiedClient, failureOf, nodeEvent, ok, openRawStream, rpc } from '../helpers/raw-pairing.js';
import type { RawEventStream, RpcFailure } from '../helpers/raw-pairing.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Device {
  deviceId: string;
  certificatePem: string;
  privateKeyPem: string;
}

const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A state directory with `count` paired devices (own P-256 key, CSR-issued certificate). */
async function stateWithDevices(count: number, admins = 0): Promise<{ stateDir: string; devices: Device[] }> {
  const { dir, cleanup } = await tempDir('palyra-workers-');
  cleanups.push(cleanup);
  const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
  const devices: Device[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const identity = DeviceIdentity.generate();
      const keys = await generateP256KeyPair();
      const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
      const issued = await admin.identity.finalizeVerifiedPairing({
        verified: { deviceId: identity.deviceId, clientKind: 'node', identityFingerprint: identity.fingerprint, signingPublicKeyHex: toHex(identity.signingPublicKey) },
        csrDer,
      });
      devices.push({ deviceId: identity.deviceId, certificatePem: issued.certificate.certificatePem, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) });
      if (i < admins) await admin.grantAdmin(identity.deviceId);
    }
  } finally {
    await admin.close();
  }
  return { stateDir: dir, devices };
}

async function runWorkers(stateDir: string, workers: number): Promise<GatewayProcess & { caCertificatePem: string }> {
  const gateway = await startGatewayProcess(stateDir, ['--workers', String(workers)]);
  cleanups.push(() => gateway.kill());
  const caPem = await runCli(['ca', 'export', '--pem', '--state-dir', stateDir]);
  expect(caPem.code).toBe(0);
  return Object.assign(gateway, { caCertificatePem: caPem.stdout });
}

type Line = Record<string, unknown>;
const endpoint = (gateway: GatewayProcess & { caCertificatePem: string }) => ({ listen: gateway.ready.listen, caCertificatePem: gateway.caCertificatePem });
const parsed = (gateway: GatewayProcess): Line[] => gateway.lines.map((l) => JSON.parse(l) as Line);

/** The worker of the newest `node.online` line for `deviceId` after line index `from`. */
function onlineWorker(gateway: GatewayProcess, deviceId: string, from = 0): number | null {
  const hits = parsed(gateway)
    .slice(from)
    .filter((l) => l.event === 'node.online' && l.device_id === deviceId);
  const last = hits[hits.length - 1];
  return typeof last?.worker === 'number' ? last.worker : null;
}

interface Held {
  device: Device;
  client: NodeServiceClient;
  stream: RawEventStream;
  worker: number;
}

/** Registers the device and opens a pushed event stream on a fresh connection; resolves once a worker logged it online. */
async function hold(gateway: GatewayProcess & { caCertificatePem: string }, device: Device, from = 0): Promise<Held> {
  const client = certifiedClient(endpoint(gateway), device.certificatePem, device.privateKeyPem);
  cleanups.push(() => {
    client.close();
  });
  await ok(rpc.register(client, { v: 1, device_id: { ulid: device.deviceId }, platform: 'test' }));
  const stream = openRawStream(client);
  cleanups.push(() => {
    stream.cancel();
  });
  const first = await withDeadline(stream.roundTrip({ ...nodeEvent(device.deviceId, 'node.started'), push_dispatch: true }), { what: 'the first answer' });
  expect(first).toMatchObject({ accepted: true, push_dispatch: true });
  const worker = await waitFor(() => onlineWorker(gateway, device.deviceId, from), { what: `node.online for ${device.deviceId}`, detail: () => gateway.lines.join('\n') });
  return { device, client, stream, worker };
}

/** Streams for `devices` until there is one on each of workers 1..n (round robin makes that quick). */
async function holdOnEachWorker(gateway: GatewayProcess & { caCertificatePem: string }, devices: Device[], n: number): Promise<Held[]> {
  const held: Held[] = [];
  for (const device of devices) {
    held.push(await hold(gateway, device));
    if (new Set(held.map((h) => h.worker)).size === n) return held;
  }
  throw new Error(`streams landed on workers ${held.map((h) => h.worker).join(',')} only`);
}

describe('palyra gateway run --workers N', () => {
  it('prints one ready line with workers when every worker listens, and stops them all on SIGTERM', async () => {
    const { stateDir } = await stateWithDevices(0);
    const gateway = await runWorkers(stateDir, 2);
    expect(gateway.ready).toMatchObject({ event: 'gateway.ready', mtls_required: true, state_dir: stateDir, backend: 'file', workers: 2, announced: false, reachable: 'this_computer' });
    expect(Object.keys(gateway.ready)).toEqual(['event', 'listen', 'ca_pin', 'ca_fingerprint', 'mtls_required', 'state_dir', 'rollback_protection', 'addresses', 'reachable', 'announced', 'backend', 'workers']);
    const started = parsed(gateway).filter((l) => l.event === 'gateway.worker_started');
    expect(started.map((l) => l.worker).sort()).toEqual([1, 2]);
    expect(parsed(gateway).filter((l) => l.event === 'gateway.ready')).toHaveLength(1);
    // gateway.v1.json names the primary, and goes with it.
    const infoFile = path.join(stateDir, 'gateway.v1.json');
    expect(JSON.parse(await readFile(infoFile, 'utf8'))).toMatchObject({ listen: gateway.ready.listen, pid: gateway.child.pid });
    gateway.child.kill('SIGTERM');
    const status = await withDeadline(gateway.exited, { what: 'the gateway to exit' });
    expect(status.code).toBe(0);
    expect(parsed(gateway).at(-1)).toEqual({ event: 'gateway.stopped', signal: 'SIGTERM' });
    expect(existsSync(infoFile)).toBe(false);
    for (const l of started) {
      await waitFor(
        () => {
          try {
            process.kill(l.pid as number, 0);
            return false;
          } catch {
            return true;
          }
        },
        { what: `worker ${String(l.worker)} to be gone` },
      );
    }
  });

  it('replaces a worker killed mid-run; its devices come back and the other worker keeps its streams', async () => {
    const { stateDir, devices } = await stateWithDevices(6);
    const gateway = await runWorkers(stateDir, 2);
    const held = await holdOnEachWorker(gateway, devices, 2);
    const victim = held.find((h) => h.worker === 1)!;
    const survivor = held.find((h) => h.worker === 2)!;
    const pid = parsed(gateway).find((l) => l.event === 'gateway.worker_started' && l.worker === 1)!.pid as number;
    const mark = gateway.lines.length;
    process.kill(pid, 'SIGKILL');
    const failure = await withDeadline(victim.stream.ended, { what: "the killed worker's stream to end" });
    expect(failure).not.toBeNull();
    await waitFor(() => parsed(gateway).slice(mark).find((l) => l.event === 'gateway.worker_exited' && l.worker === 1 && l.signal === 'SIGKILL'), {
      what: 'gateway.worker_exited',
      detail: () => gateway.lines.join('\n'),
    });
    const replaced = await waitFor(() => parsed(gateway).slice(mark).find((l) => l.event === 'gateway.worker_started' && l.worker === 1), {
      what: 'the replacement worker',
      detail: () => gateway.lines.join('\n'),
    });
    expect(replaced.pid).not.toBe(pid);
    // The survivor's stream never noticed.
    const answer: NodeEventResponse__Output = await withDeadline(survivor.stream.roundTrip(nodeEvent(survivor.device.deviceId, 'node.heartbeat')), { what: 'a heartbeat answer' });
    expect(answer.accepted).toBe(true);
    // The victim reconnects (as devices do) and is served again, on whichever worker the connection lands.
    const back = await hold(gateway, victim.device, mark);
    expect([1, 2]).toContain(back.worker);
    expect(gateway.child.exitCode).toBeNull();
  });

  it('palyra devices revoke ends the stream on whichever worker holds it, with PERMISSION_DENIED', async () => {
    const { stateDir, devices } = await stateWithDevices(6);
    const gateway = await runWorkers(stateDir, 2);
    const held = await holdOnEachWorker(gateway, devices, 2);
    for (const worker of [1, 2]) {
      const target = held.find((h) => h.worker === worker)!;
      const revoke = await runCli(['devices', 'revoke', target.device.deviceId, '--state-dir', stateDir]);
      expect(revoke.code, revoke.stderr).toBe(0);
      const failure = await withDeadline(target.stream.ended, { what: `the stream on worker ${worker} to end` });
      expect(failure).toMatchObject({ code: grpc.status.PERMISSION_DENIED, palyraCode: 'device_revoked' });
    }
  });

  it('ExecuteCapability on a worker without the device stream is relayed to the worker that holds it', async () => {
    const { stateDir, devices } = await stateWithDevices(1);
    const gateway = await runWorkers(stateDir, 2);
    const node = await hold(gateway, devices[0]!);
    // The node answers every pushed dispatch with its input.
    node.stream.responses.length = 0;
    const answered = new Set<string>();
    const answering = setInterval(() => {
      for (const r of node.stream.responses) {
        const id = r.dispatch?.request_id?.ulid ?? '';
        if (id === '' || answered.has(id)) continue;
        answered.add(id);
        node.stream.send(nodeEvent(node.device.deviceId, 'capability.result', { request_id: id, success: true, output_json: JSON.parse(Buffer.from(r.dispatch!.input_json).toString('utf8')) as unknown }));
      }
    }, 10);
    cleanups.push(() => {
      clearInterval(answering);
    });
    // Fresh connections alternate between the workers: some of these calls arrive on the other one.
    const relayedBefore = (): Line[] => parsed(gateway).filter((l) => l.event === 'capability.relayed' && l.device_id === node.device.deviceId);
    for (let n = 1; n <= 8 && relayedBefore().length === 0; n++) {
      const client = certifiedClient(endpoint(gateway), node.device.certificatePem, node.device.privateKeyPem);
      try {
        const result = await ok(rpc.execute(client, { v: 1, device_id: { ulid: node.device.deviceId }, capability: 'echo', input_json: Buffer.from(JSON.stringify({ n })), max_payload_bytes: 0 }));
        expect(result.success).toBe(true);
        expect(JSON.parse(Buffer.from(result.output_json).toString('utf8'))).toEqual({ n });
      } finally {
        client.close();
      }
    }
    const relayed = relayedBefore();
    expect(relayed.length).toBeGreaterThan(0);
    expect(relayed[0]).toMatchObject({ capability: 'echo', to_worker: node.worker, from_worker: node.worker === 1 ? 2 : 1 });
  });

  it('a role withdrawn by the CLI ends admin watches on every worker; listings show a device online whatever worker answers', async () => {
    const { stateDir, devices } = await stateWithDevices(2, 1);
    const [adminDevice, nodeDevice] = devices as [Device, Device];
    const gateway = await runWorkers(stateDir, 2);
    await hold(gateway, nodeDevice);
    const adminClient = (): GatewayAdminClient => {
      const client = createGatewayAdminClient(
        gateway.ready.listen,
        createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: adminDevice.certificatePem, clientPrivateKeyPem: adminDevice.privateKeyPem }),
        { 'grpc.use_local_subchannel_pool': 1 },
      );
      cleanups.push(() => {
        client.close();
      });
      return client;
    };
    // Fresh connections alternate between the workers: both answer that the node is online.
    for (let i = 0; i < 4; i++) {
      const client = adminClient();
      const listed = await withDeadline(
        new Promise<{ devices: { device_id: string; online: boolean }[] }>((resolve, reject) => {
          client.ListDevices({}, (error, response) => {
            if (error !== null) reject(error);
            else resolve(response as { devices: { device_id: string; online: boolean }[] });
          });
        }),
        { what: 'ListDevices' },
      );
      expect(listed.devices.find((d) => d.device_id === nodeDevice.deviceId)).toMatchObject({ online: true });
    }
    // Watches until one is on each worker.
    const watches: { ended: Promise<RpcFailure | null> }[] = [];
    const watchWorkers = (): Set<unknown> => new Set(parsed(gateway).filter((l) => l.event === 'admin.watch_started').map((l) => l.worker));
    for (let i = 0; i < 6 && watchWorkers().size < 2; i++) {
      const stream = adminClient().WatchEvents({});
      cleanups.push(() => {
        stream.cancel();
      });
      const ended = new Promise<RpcFailure | null>((resolve) => {
        stream.on('error', (error: grpc.ServiceError) => {
          resolve(failureOf(error));
        });
        stream.on('end', () => {
          resolve(null);
        });
      });
      stream.on('data', () => undefined);
      const count = parsed(gateway).filter((l) => l.event === 'admin.watch_started').length;
      await waitFor(() => parsed(gateway).filter((l) => l.event === 'admin.watch_started').length > count, { what: 'admin.watch_started' });
      watches.push({ ended });
    }
    expect(watchWorkers()).toEqual(new Set([1, 2]));
    const revoke = await runCli(['devices', 'revoke-admin', adminDevice.deviceId, '--state-dir', stateDir]);
    expect(revoke.code, revoke.stderr).toBe(0);
    // Acknowledged means refused everywhere at once: calls on fresh connections (both workers) right after the CLI
    // exited, before any change watcher need have fired, are all denied.
    for (let i = 0; i < 4; i++) {
      const client = adminClient();
      const refused = await withDeadline(
        new Promise<RpcFailure | null>((resolve) => {
          client.ListDevices({}, (error) => {
            resolve(error === null ? null : failureOf(error));
          });
        }),
        { what: 'ListDevices after revoke-admin' },
      );
      expect(refused).toMatchObject({ code: grpc.status.PERMISSION_DENIED, palyraCode: 'permission_denied' });
    }
    for (const w of watches) {
      expect(await withDeadline(w.ended, { what: 'a WatchEvents stream to end' })).toMatchObject({ code: grpc.status.PERMISSION_DENIED, palyraCode: 'permission_denied' });
    }
  });

  it.each([['0'], ['-1'], ['abc'], ['1.5'], ['65'], ['']])('--workers %j is a usage error (exit 2)', async (value) => {
    const { dir, cleanup } = await tempDir('palyra-workers-usage-');
    cleanups.push(cleanup);
    const result = await runCli(['gateway', 'run', '--state-dir', dir, '--listen', '127.0.0.1:0', `--workers=${value}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error\[usage\]: --workers: /);
    expect(result.stdout).toBe('');
  });
});
