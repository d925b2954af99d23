// Benchmarks of remote administration (issue 7), against a baseline measured in the same run:
//   1. approve round trip: ApproveNodePairingRequest over mTLS by an admin device (palyra.admin.v1.GatewayAdmin)
//      vs GatewayAdmin.approve in the gateway's own process (the local API the CLI and desktop app use);
//   2. WatchEvents delivery latency: from the gateway emitting an event to the admin client receiving it
//      (target p99 ≤ 50 ms on loopback), next to the in-process EventEmitter delivery as the floor;
//   3. how soon a change ends what it must end: the admin role withdrawn → the admin's WatchEvents stream ended, by
//      the local API and by a `palyra devices revoke-admin` child (the gateway learns of it through its state-dir
//      watch); a device revoked by an admin over mTLS (RevokeDevice) → that device's node stream ended, next to the
//      same revocation through the local API.
// The gateway runs in this process (dist/), on 127.0.0.1 with a temp state directory.
// Run `npm run build && node --expose-gc test/bench/run.mjs admin`.
// Options: --approvals=30 --events=400 --changes=10 --only=approve,watch,changes
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';

import { parsePairingUri } from '../../dist/main/core/pairing-uri.js';
import { DeviceStore } from '../../dist/main/device/device-store.js';
import { pairDevice } from '../../dist/main/device/pairing-client.js';
import { Gateway } from '../../dist/main/gateway/gateway.js';
import { createGatewayAdminClient } from '../../dist/main/rpc/admin-service.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../dist/main/rpc/tls-client.js';
import { MemoryKeychain } from '../../dist/main/store/keychain.js';

import { fmtMs, fmtRatio, printMachineInfo, printTable, section, settle, summarize } from './lib.mjs';

const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const APPROVALS = Number(option('approvals') ?? 30);
const EVENTS = Number(option('events') ?? 400);
const WARMUP_EVENTS = 20;
const CALL_DEADLINE_MS = 30_000;
const DELIVERY_TARGET_P99_MS = 50;
const CHANGES = Number(option('changes') ?? 10);
const only = option('only')?.split(',') ?? ['approve', 'watch', 'changes'];
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(repoRoot, 'bin/palyra.js');

if (process.env.PALYRA_BENCH_CHILD !== '1') printMachineInfo();
console.log('# admin.bench.mjs — remote administration: approve round trip, WatchEvents delivery\n');

const now = () => performance.now();
const root = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-admin-'));
let storeCount = 0;

async function newStore() {
  storeCount += 1;
  return DeviceStore.open({ deviceDir: path.join(root, `device-${storeCount}`), keychain: 'os', osKeychain: new MemoryKeychain() });
}

/**
 * Starts pairing a fresh device and resolves, once its request awaits approval, with the request id, the device's
 * store and the pairing's promise (settles after a decision).
 */
async function pendingRequest(gateway) {
  const store = await newStore();
  const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'bench', gatewayAddresses: [gateway.listen], gatewayName: gateway.name });
  let resolveId;
  const id = new Promise((resolve) => (resolveId = resolve));
  const done = pairDevice({
    store,
    target: { method: 'qr', uri: parsePairingUri(minted.uri, { now: Date.now() }) },
    kind: 'desktop',
    onProgress: (event) => {
      if (event.type === 'awaiting_approval') resolveId(event.request_id);
    },
  });
  done.catch(() => undefined);
  return { requestId: await id, store, done };
}

function unary(invoke) {
  return new Promise((resolve, reject) => {
    invoke(new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

const gateway = await Gateway.start({
  stateDir: path.join(root, 'gateway'),
  listen: { host: '127.0.0.1', port: 0 },
  name: 'Bench Gateway',
  insecureNodeRpcOptOut: false,
  allowServerGeneratedKeys: false,
  allowLegacyDeviceIds: false,
  keychain: null,
});

/** A `palyra …` child on the gateway's state directory; resolves with performance.now() at its (successful) exit. */
function runCli(args) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('PALYRA_')) delete env[name];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, env: { ...env, PALYRA_KEYCHAIN: 'file' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve(now()) : reject(new Error(`palyra ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}

/** A WatchEvents stream of `client`, once established; `ended` resolves with performance.now() at its error or end. */
async function openWatch(client) {
  const stream = client.WatchEvents({});
  const ended = new Promise((resolve) => {
    stream.on('error', () => resolve(now()));
    stream.on('end', () => resolve(now()));
  });
  stream.on('data', () => undefined);
  await new Promise((resolve, reject) => {
    stream.once('metadata', resolve);
    stream.once('error', reject);
  });
  return { stream, ended };
}

async function changesSection(gateway, adminClient, adminCredentials, adminStore) {
  const adminId = (await adminStore.readState()).device_id;
  const stateDir = path.join(root, 'gateway');
  const local = [];
  const viaCli = [];
  const viaCliFromSpawn = [];
  for (let i = 0; i < CHANGES + 2; i++) {
    const keep = i >= 2;
    for (const kind of i % 2 === 0 ? ['local', 'cli'] : ['cli', 'local']) {
      if (!gateway.admin.isAdmin(adminId)) await gateway.admin.grantAdmin(adminId);
      // A fresh client per sample: the withdrawn role refuses the next call on the connection, not the connection.
      const c = createGatewayAdminClient(gateway.listen, adminCredentials);
      await unary((md, o, cb) => c.ListDevices({}, md, o, cb));
      const w = await openWatch(c);
      await settle(5);
      if (kind === 'local') {
        const start = now();
        await gateway.admin.revokeAdmin(adminId);
        const endedAt = await w.ended;
        if (keep) local.push(endedAt - start);
      } else {
        const spawnedAt = now();
        const exitedAt = await runCli(['devices', 'revoke-admin', adminId, '--state-dir', stateDir]);
        const endedAt = await w.ended;
        if (keep) {
          viaCli.push(endedAt - exitedAt);
          viaCliFromSpawn.push(endedAt - spawnedAt);
        }
      }
      c.close();
      // Wait until the gateway itself has the change (the CLI's is read from the state directory).
      while (gateway.admin.isAdmin(adminId)) await settle(5);
    }
  }
  await gateway.admin.grantAdmin(adminId);

  // Revocation of a node by the admin over mTLS vs through the local API, as seen by the node.
  const remote = [];
  const direct = [];
  for (let i = 0; i < CHANGES + 2; i++) {
    const keep = i >= 2;
    for (const kind of i % 2 === 0 ? ['remote', 'local'] : ['local', 'remote']) {
      const p = await pendingRequest(gateway);
      await gateway.admin.approve(p.requestId);
      const device = await p.done;
      const state = await p.store.readState();
      const node = createNodeServiceClient(
        gateway.listen,
        createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: state.certificate_pem, clientPrivateKeyPem: await p.store.loadTlsPrivateKeyPem() }),
      );
      await unary((md, o, cb) => node.RegisterNode({ v: 1, device_id: { ulid: device.deviceId }, platform: 'bench' }, md, o, cb));
      const stream = node.StreamNodeEvents();
      const ended = new Promise((resolve) => {
        stream.on('error', () => resolve(now()));
        stream.on('end', () => resolve(now()));
      });
      const first = new Promise((resolve) => stream.once('data', resolve));
      stream.write({ v: 1, device_id: { ulid: device.deviceId }, event_name: 'node.started', payload_json: Buffer.from('{}') });
      await first;
      await settle(5);
      const start = now();
      if (kind === 'remote') await unary((md, o, cb) => adminClient.RevokeDevice({ device_id: device.deviceId, reason: 'bench' }, md, o, cb));
      else await gateway.admin.revokeDevice(device.deviceId, 'bench');
      const endedAt = await ended;
      if (keep) (kind === 'remote' ? remote : direct).push(endedAt - start);
      node.close();
    }
  }

  const l = summarize(local);
  const c = summarize(viaCli);
  const cs = summarize(viaCliFromSpawn);
  const d = summarize(direct);
  const r = summarize(remote);
  printTable({
    title: `How soon a change ends the streams it must end (${CHANGES} samples per row after 2 warm-up)`,
    columns: [
      { key: 'name', label: 'change → stream ended' },
      { key: 'ref', label: 'measured from' },
      { key: 'p50', label: 'p50' },
      { key: 'p99', label: 'p99' },
      { key: 'max', label: 'max' },
      { key: 'ratio', label: 'p50 vs its local row' },
    ],
    rows: [
      { name: 'role withdrawn, local API (GatewayAdmin.revokeAdmin) → WatchEvents', ref: 'the call', p50: fmtMs(l.p50), p99: fmtMs(l.p99), max: fmtMs(l.max), ratio: '1.00× (baseline)' },
      { name: 'role withdrawn, `palyra devices revoke-admin` child → WatchEvents', ref: 'CLI exited', p50: fmtMs(c.p50), p99: fmtMs(c.p99), max: fmtMs(c.max), ratio: fmtRatio(c.p50, l.p50) },
      { name: '  the same', ref: 'CLI spawned', p50: fmtMs(cs.p50), p99: fmtMs(cs.p99), max: fmtMs(cs.max), ratio: fmtRatio(cs.p50, l.p50) },
      { name: 'device revoked, local API (GatewayAdmin.revokeDevice) → node stream', ref: 'the call', p50: fmtMs(d.p50), p99: fmtMs(d.p99), max: fmtMs(d.max), ratio: '1.00× (baseline)' },
      { name: 'device revoked by an admin over mTLS (RevokeDevice) → node stream', ref: 'the call', p50: fmtMs(r.p50), p99: fmtMs(r.p99), max: fmtMs(r.max), ratio: fmtRatio(r.p50, d.p50) },
    ],
    notes: [
      'the integration tests (admin-rpc, cli-remote-admin) check that these streams end, with which status, under a liveness deadline; the figures are here',
      'the CLI row goes through the gateway’s state-directory watch; a negative figure would mean the stream ended before the CLI’s exit was seen',
    ],
  });
}

let client;
let watch;
let credentials;
let first;
try {
  // The admin device: paired like any device, then granted the role through the local API.
  first = await pendingRequest(gateway);
  await gateway.admin.approve(first.requestId);
  const adminDevice = await first.done;
  await gateway.admin.grantAdmin(adminDevice.deviceId);
  const state = await first.store.readState();
  credentials = createGatewayChannelCredentials({
    caCertificatePem: gateway.caCertificatePem,
    clientCertificatePem: state.certificate_pem,
    clientPrivateKeyPem: await first.store.loadTlsPrivateKeyPem(),
  });
  client = createGatewayAdminClient(gateway.listen, credentials);
  await unary((md, o, cb) => client.ListDevices({}, md, o, cb));

  if (only.includes('approve')) await section('Approve round trip: remote (admin device, mTLS) vs local (in-process GatewayAdmin.approve)', async () => {
    const remote = [];
    const local = [];
    // Warm-up: one of each, untimed.
    for (const kind of ['remote', 'local']) {
      const p = await pendingRequest(gateway);
      if (kind === 'remote') await unary((md, o, cb) => client.ApproveNodePairingRequest({ request_id: p.requestId }, md, o, cb));
      else await gateway.admin.approve(p.requestId);
      await p.done;
    }
    for (let i = 0; i < APPROVALS; i++) {
      // Interleaved, so machine load hits both alike; the pairing work around each approval is not timed.
      for (const kind of i % 2 === 0 ? ['remote', 'local'] : ['local', 'remote']) {
        const p = await pendingRequest(gateway);
        await settle(5);
        const start = now();
        if (kind === 'remote') await unary((md, o, cb) => client.ApproveNodePairingRequest({ request_id: p.requestId }, md, o, cb));
        else await gateway.admin.approve(p.requestId);
        (kind === 'remote' ? remote : local).push(now() - start);
        await p.done;
      }
    }
    const r = summarize(remote);
    const l = summarize(local);
    printTable({
      columns: [
        { key: 'name', label: 'approve' },
        { key: 'n', label: 'n' },
        { key: 'p50', label: 'p50' },
        { key: 'p99', label: 'p99' },
        { key: 'ratio', label: 'p50 vs local' },
      ],
      rows: [
        { name: 'local: GatewayAdmin.approve (in process)', n: l.n, p50: fmtMs(l.p50), p99: fmtMs(l.p99), ratio: '1.00×' },
        { name: 'remote: ApproveNodePairingRequest over mTLS', n: r.n, p50: fmtMs(r.p50), p99: fmtMs(r.p99), ratio: fmtRatio(r.p50, l.p50) },
      ],
      notes: ['Both paths run the same GatewayAdmin.approve (state lock, journal commit, audit entry); the remote one adds authorisation, gRPC framing and the loopback round trip on a warm connection.'],
    });
  });

  if (only.includes('watch')) await section(`WatchEvents delivery latency (target p99 ≤ ${DELIVERY_TARGET_P99_MS} ms on loopback)`, async () => {
    const stream = client.WatchEvents({});
    watch = stream;
    await new Promise((resolve, reject) => {
      stream.once('metadata', resolve);
      stream.once('error', reject);
    });
    let waiting = null;
    stream.on('data', (event) => {
      if (waiting !== null && event.device_id === waiting.id) {
        const w = waiting;
        waiting = null;
        w.resolve(now());
      }
    });
    stream.on('error', () => undefined);
    const inProcess = [];
    let inProcessWaiting = null;
    gateway.events.on('event', (event) => {
      if (inProcessWaiting !== null && event.device_id === inProcessWaiting.id) {
        inProcess.push(now() - inProcessWaiting.start);
        inProcessWaiting = null;
      }
    });
    const remote = [];
    for (let i = 0; i < WARMUP_EVENTS + EVENTS; i++) {
      // A synthetic node.online with a unique id, through the gateway's own event emitter (the path real events take).
      const id = `bench-${i}`;
      const received = new Promise((resolve) => (waiting = { id, resolve }));
      const start = now();
      inProcessWaiting = { id, start };
      gateway.events.emit('event', { type: 'node.online', device_id: id });
      const at = await received;
      if (i >= WARMUP_EVENTS) remote.push(at - start);
      if (i % 50 === 0) await settle(5);
    }
    const r = summarize(remote);
    const l = summarize(inProcess.slice(WARMUP_EVENTS));
    printTable({
      columns: [
        { key: 'name', label: 'delivery' },
        { key: 'n', label: 'n' },
        { key: 'p50', label: 'p50' },
        { key: 'p99', label: 'p99' },
        { key: 'max', label: 'max' },
        { key: 'target', label: `p99 ≤ ${DELIVERY_TARGET_P99_MS} ms` },
      ],
      rows: [
        { name: 'in-process listener (gateway.events)', n: l.n, p50: fmtMs(l.p50), p99: fmtMs(l.p99), max: fmtMs(l.max), target: '' },
        { name: 'WatchEvents over mTLS (admin device)', n: r.n, p50: fmtMs(r.p50), p99: fmtMs(r.p99), max: fmtMs(r.max), target: r.p99 <= DELIVERY_TARGET_P99_MS ? 'met' : 'MISSED' },
      ],
      notes: ['Measured from the emit in the gateway process to the client\'s data callback (same process, same clock), one event in flight at a time.'],
    });
  });

  if (only.includes('changes')) await section('Role withdrawn → WatchEvents ended; remote revocation → node stream ended', () => changesSection(gateway, client, credentials, first.store));
} finally {
  watch?.cancel();
  client?.close();
  await gateway.stop();
  await rm(root, { recursive: true, force: true });
}
