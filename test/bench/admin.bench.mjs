// Benchmarks of remote administration (issue 7), against a baseline measured in the same run:
//   1. approve round trip: ApproveNodePairingRequest over mTLS by an admin device (palyra.admin.v1.GatewayAdmin)
//      vs GatewayAdmin.approve in the gateway's own process (the local API the CLI and desktop app use);
//   2. WatchEvents delivery latency: from the gateway emitting an event to the admin client receiving it
//      (target p99 ≤ 50 ms on loopback), next to the in-process EventEmitter delivery as the floor.
// The gateway runs in this process (dist/), on 127.0.0.1 with a temp state directory.
// Run `npm run build && node --expose-gc test/bench/run.mjs admin`.   Options: --approvals=30 --events=400
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';

import { parsePairingUri } from '../../dist/main/core/pairing-uri.js';
import { DeviceStore } from '../../dist/main/device/device-store.js';
import { pairDevice } from '../../dist/main/device/pairing-client.js';
import { Gateway } from '../../dist/main/gateway/gateway.js';
import { createGatewayAdminClient } from '../../dist/main/rpc/admin-service.js';
import { createGatewayChannelCredentials } from '../../dist/main/rpc/tls-client.js';
import { MemoryKeychain } from '../../dist/main/store/keychain.js';

import { fmtMs, fmtRatio, printMachineInfo, printTable, section, settle, summarize } from './lib.mjs';

const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const APPROVALS = Number(option('approvals') ?? 30);
const EVENTS = Number(option('events') ?? 400);
const WARMUP_EVENTS = 20;
const CALL_DEADLINE_MS = 30_000;
const DELIVERY_TARGET_P99_MS = 50;

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

let client;
let watch;
try {
  // The admin device: paired like any device, then granted the role through the local API.
  const first = await pendingRequest(gateway);
  await gateway.admin.approve(first.requestId);
  const adminDevice = await first.done;
  await gateway.admin.grantAdmin(adminDevice.deviceId);
  const state = await first.store.readState();
  const credentials = createGatewayChannelCredentials({
    caCertificatePem: gateway.caCertificatePem,
    clientCertificatePem: state.certificate_pem,
    clientPrivateKeyPem: await first.store.loadTlsPrivateKeyPem(),
  });
  client = createGatewayAdminClient(gateway.listen, credentials);
  await unary((md, o, cb) => client.ListDevices({}, md, o, cb));

  await section('Approve round trip: remote (admin device, mTLS) vs local (in-process GatewayAdmin.approve)', async () => {
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

  await section(`WatchEvents delivery latency (target p99 ≤ ${DELIVERY_TARGET_P99_MS} ms on loopback)`, async () => {
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
} finally {
  watch?.cancel();
  client?.close();
  await gateway.stop();
  await rm(root, { recursive: true, force: true });
}
