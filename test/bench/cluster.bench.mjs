// Gateway cluster on PostgreSQL (issue 15 "Performance"), against the file backend measured in the same run.
// The bench starts its own PostgreSQL 15 (initdb + pg_ctl as the unprivileged `postgres` user when run as root, the
// same recipe as test/helpers/postgres.ts, which is TypeScript and not in dist/), and replicas as
// `palyra gateway run --database-url URL --store-key-file FILE` children on 127.0.0.1:
//   1. mutations/s: GatewayAdmin.renameDevice, one at a time, from this process (the writer, as a CLI or the desktop
//      app is) into the state directory (one file-backend gateway child following it) vs into the database with 1, 2
//      and 3 replicas following it (each reloads on the database's notification);
//   2. pairings/s: the device library (pairDevice, a fresh device store each) with automatic approval by this
//      process's GatewayAdmin; 3 pairings in flight in every row, spread round robin over the replicas;
//   3. revocation: GatewayAdmin.revokeDevice written to the database from this process → a device's node stream on
//      another replica (C) ended, ≥ 20 revocations (target p99 ≤ 100 ms);
//   4. failover: the replica holding a DeviceAgent's stream SIGKILLed → the agent online on another replica (target
//      p50 ≤ 2 s); the killed replica is started again on its port, so three stay up;
//   5. cold start at 10 000 devices: a state directory seeded through the library, moved into an empty database by
//      `palyra state migrate --from-dir`, then `gateway run` spawn → `gateway.ready` line (target p50 ≤ 1 s), next to
//      a file-backend gateway on the same state directory.
// Run `npm run build && node test/bench/run.mjs cluster`. Needs /usr/lib/postgresql/15/bin (or PALYRA_PG_BIN).
// Options: --devices=10000 --revocations=22 --failovers=5 --phase-ms=1000 --only=throughput,revocation,failover,cold
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

import { toHex } from '../../dist/main/core/bytes.js';
import { createCertificateSigningRequest } from '../../dist/main/core/csr.js';
import { DeviceIdentity } from '../../dist/main/core/device-identity.js';
import { parsePairingUri } from '../../dist/main/core/pairing-uri.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../dist/main/core/x509-keys.js';
import { DeviceAgent } from '../../dist/main/device/device-agent.js';
import { DeviceStore } from '../../dist/main/device/device-store.js';
import { pairDevice } from '../../dist/main/device/pairing-client.js';
import { GatewayAdmin } from '../../dist/main/gateway/gateway-admin.js';
import { installNodeCrypto } from '../../dist/main/platform/node-crypto.js';
import { createGatewayAdminClient } from '../../dist/main/rpc/admin-service.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../dist/main/rpc/tls-client.js';
import { MemoryKeychain } from '../../dist/main/store/keychain.js';

import { fmtMs, fmtNum, fmtOps, fmtRatio, median, printMachineInfo, printTable, section, settle, summarize } from './lib.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '../..');
const BIN = path.join(repoRoot, 'bin/palyra.js');
const PG_BIN = process.env.PALYRA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const only = option('only')?.split(',') ?? ['throughput', 'revocation', 'failover', 'cold'];
const COLD_DEVICES = Number(option('devices') ?? 10_000);
const REVOCATIONS = Number(option('revocations') ?? 22);
const FAILOVERS = Number(option('failovers') ?? 5);
const PHASE_MS = Number(option('phase-ms') ?? 1000);
const IN_FLIGHT_PAIRINGS = 3;
const COLD_STARTS = 3;
const ISOLATED = { 'grpc.use_local_subchannel_pool': 1 };

if (process.env.PALYRA_BENCH_CHILD !== '1') printMachineInfo();
installNodeCrypto();
console.log('# cluster.bench.mjs — gateway replicas on PostgreSQL vs the file backend\n');
const loadAtStart = os.loadavg();

const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const tempRoots = [];
const children = new Set();
const closers = [];
let postgres = null;

async function tempDir(label) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `palyra-bench-cluster-${label}-`));
  tempRoots.push(dir);
  return dir;
}

function childEnv() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('PALYRA_')) delete env[name];
  return { ...env, PALYRA_KEYCHAIN: 'file' };
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// --- PostgreSQL ---------------------------------------------------------------------------------------------------

async function startPostgres() {
  if (!existsSync(path.join(PG_BIN, 'initdb'))) throw new Error(`PostgreSQL 15 not found in ${PG_BIN} (set PALYRA_PG_BIN)`);
  const root = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-pg-'));
  const dataDir = path.join(root, 'data');
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const ids = asRoot
    ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) }
    : null;
  if (ids !== null) await chown(root, ids.uid, ids.gid);
  await chmod(root, 0o755);
  const run = (cmd, args) => {
    const full = path.join(PG_BIN, cmd);
    const r = ids === null ? spawnSync(full, args, { encoding: 'utf8', timeout: 70_000 }) : spawnSync('runuser', ['-u', 'postgres', '--', full, ...args], { encoding: 'utf8', timeout: 70_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  };
  run('initdb', ['-D', dataDir, '--auth-local=trust', '--auth-host=trust', '-U', 'palyra', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const options = `-k ${dataDir} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  run('pg_ctl', ['-D', dataDir, '-o', options, '-l', path.join(dataDir, 'server.log'), '-t', '60', 'start', '-w']);
  const url = (db) => `postgres://palyra@127.0.0.1:${port}/${db}`;
  return {
    url,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async stop() {
      try {
        run('pg_ctl', ['-D', dataDir, '-m', 'fast', '-t', '60', 'stop', '-w']);
      } finally {
        await rm(root, { recursive: true, force: true, maxRetries: 5 });
      }
    },
  };
}

// --- gateway children -----------------------------------------------------------------------------------------------

/**
 * `palyra gateway run` on its own state dir (and the database when `db` is given); resolves once the ready line
 * arrived, with the time from spawn to it. Every later stdout line (JSON: node.online, …) goes to `onLine`.
 */
async function startGateway({ stateDir, db = null, port = 0 }) {
  const args = ['gateway', 'run', '--state-dir', stateDir, '--listen', `127.0.0.1:${port}`];
  if (db !== null) args.push('--database-url', db.url, '--store-key-file', db.keyFile);
  const spawnedAt = now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(() => children.delete(child));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const listeners = new Set();
  let buffer = '';
  let resolveReady;
  let readyAt = 0;
  let readyTimer = null;
  const ready = new Promise((resolve, reject) => {
    resolveReady = (line) => {
      clearTimeout(readyTimer);
      resolve(line);
    };
    readyTimer = setTimeout(() => reject(new Error(`gateway not ready within 60 s\n${stderr}`)), 60_000);
    void exited.then(({ code, signal }) => reject(new Error(`gateway exited (${code ?? signal}) before ready\n${stderr}`)));
  });
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffer += chunk;
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
      let parsed = null;
      try {
        parsed = JSON.parse(line);
      } catch {
        continue;
      }
      if (readyAt === 0) {
        readyAt = now();
        resolveReady(parsed);
      } else {
        for (const l of listeners) l(parsed);
      }
    }
  });
  const readyLine = await ready;
  return {
    listen: readyLine.listen,
    port: Number(readyLine.listen.slice(readyLine.listen.lastIndexOf(':') + 1)),
    ready: readyLine,
    startMs: readyAt - spawnedAt,
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function runCli(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      if (code === 0) resolve(stdout);
      else reject(new Error(`palyra ${args.join(' ')} exited ${code}\n${stdout}${stderr}`));
    });
  });
}

// --- devices --------------------------------------------------------------------------------------------------------

/**
 * Devices written straight into the state through IdentityManager.finalizeVerifiedPairing, each with a certificate
 * from its CSR. `sharedKeys`: one P-256 key for all (seeding many devices that never connect), else one key each.
 */
async function pairDevicesInState(admin, count, { sharedKeys = null, progress = null, clientKind = 'node' } = {}) {
  const devices = [];
  for (let i = 0; i < count; i++) {
    const identity = DeviceIdentity.generate();
    const keys = sharedKeys ?? (await generateP256KeyPair());
    const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
    const issued = await admin.identity.finalizeVerifiedPairing({
      verified: { deviceId: identity.deviceId, clientKind, identityFingerprint: identity.fingerprint, signingPublicKeyHex: toHex(identity.signingPublicKey) },
      csrDer,
    });
    devices.push({
      deviceId: identity.deviceId,
      certificatePem: sharedKeys === null ? issued.certificate.certificatePem : null,
      privateKeyPem: sharedKeys === null ? await exportPrivateKeyPem(keys.privateKey) : null,
    });
    if (progress !== null && (i + 1) % 2500 === 0) progress(i + 1);
  }
  return devices;
}

/** A node event stream answered in order; `ended` resolves with the error (or null) and `endedAt` is its time. */
function openStream(listen, caCertificatePem, device) {
  const client = createNodeServiceClient(
    listen,
    createGatewayChannelCredentials({ caCertificatePem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
    ISOLATED,
  );
  const call = client.StreamNodeEvents();
  const waiters = [];
  let failure = null;
  const state = { endedAt: null };
  const ended = new Promise((resolve) => {
    call.on('error', (error) => {
      state.endedAt ??= now();
      failure = error;
      for (const w of waiters.splice(0)) w.reject(error);
      resolve(error);
    });
    call.on('end', () => {
      state.endedAt ??= now();
      resolve(null);
    });
  });
  call.on('data', (response) => waiters.shift()?.resolve(response));
  return {
    state,
    ended,
    close: () => client.close(),
    roundTrip(name) {
      return new Promise((resolve, reject) => {
        if (failure !== null) return reject(failure);
        waiters.push({ resolve, reject });
        call.write({ v: 1, device_id: { ulid: device.deviceId }, event_name: name, payload_json: Buffer.from('{}') });
      });
    },
  };
}

// --- the cluster of this run ------------------------------------------------------------------------------------------

let databases = 0;
async function newDatabase() {
  databases += 1;
  const url = await postgres.createDatabase(`bench_${databases}`);
  const keyFile = path.join(await tempDir('key'), 'store.key');
  return { url, keyFile };
}

async function openPgAdmin(db) {
  const admin = await GatewayAdmin.openPg({ database: { databaseUrl: db.url, storeKeyFile: db.keyFile }, stateDir: await tempDir('pg-admin'), keychain: null });
  closers.push(() => admin.close());
  return admin;
}

async function startReplica(db, port = 0) {
  const replica = await startGateway({ stateDir: await tempDir('replica'), db, port });
  closers.push(() => replica.stop());
  return replica;
}

// --- 1 + 2: mutations/s and pairings/s ----------------------------------------------------------------------------------

/** renameDevice, one at a time, for PHASE_MS; returns ops/s. */
async function mutationRun(admin, deviceIds) {
  let ops = 0;
  const start = now();
  while (now() - start < PHASE_MS) {
    await admin.renameDevice(deviceIds[ops % deviceIds.length], `bench ${ops % 7}`);
    ops += 1;
  }
  return (ops * 1000) / (now() - start);
}

let pairingIndex = 0;

/** IN_FLIGHT_PAIRINGS pairDevice loops for 3 × PHASE_MS, loop i to gateways[i mod n]; approval by `admin`. */
async function pairingRun(admin, gateways, root) {
  let done = 0;
  let failures = 0;
  const start = now();
  const until = start + 3 * PHASE_MS;
  const loop = async (slot) => {
    const gateway = gateways[slot % gateways.length];
    while (now() < until) {
      pairingIndex += 1;
      const store = await DeviceStore.open({ deviceDir: path.join(root, `d${pairingIndex}`), keychain: 'os', osKeychain: new MemoryKeychain() });
      const minted = await admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'bench', gatewayAddresses: [gateway.listen], gatewayName: null });
      try {
        await pairDevice({
          store,
          target: { method: 'qr', uri: parsePairingUri(minted.uri, { now: Date.now() }) },
          kind: 'node',
          onProgress: (event) => {
            if (event.type === 'awaiting_approval') void admin.approve(event.request_id).catch(() => undefined);
          },
        });
        done += 1;
      } catch (error) {
        failures += 1;
        if (process.env.BENCH_DEBUG) console.error(`pairing failed: ${error.code} ${error.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT_PAIRINGS }, (_, slot) => loop(slot)));
  return { perSec: (done * 1000) / (now() - start), done, failures };
}

async function throughputSection() {
  const pairRoot = await tempDir('pair-devices');
  // File backend: this process writes the state directory; one gateway child on it follows the changes.
  const fileDir = await tempDir('file');
  const fileAdmin = await GatewayAdmin.open({ stateDir: fileDir, keychain: null });
  closers.push(() => fileAdmin.close());
  const fileIds = (await pairDevicesInState(fileAdmin, 8)).map((d) => d.deviceId);
  const fileGateway = await startGateway({ stateDir: fileDir });
  closers.push(() => fileGateway.stop());
  // PostgreSQL: the same writer into the database, replicas added one by one.
  const db = await newDatabase();
  const pgAdmin = await openPgAdmin(db);
  const pgIds = (await pairDevicesInState(pgAdmin, 8)).map((d) => d.deviceId);
  const replicas = [];
  const file = { mutations: [], pairings: [], failures: 0 };
  const rows = [];
  // Warm-up: JIT, connections.
  await mutationRun(fileAdmin, fileIds);
  await mutationRun(pgAdmin, pgIds);
  for (let k = 1; k <= 3; k++) {
    replicas.push(await startReplica(db));
    await settle(300);
    const row = { replicas: k, mutations: [], pairings: [], failures: 0 };
    for (let run = 0; run < 3; run++) {
      file.mutations.push(await mutationRun(fileAdmin, fileIds));
      row.mutations.push(await mutationRun(pgAdmin, pgIds));
    }
    const fp = await pairingRun(fileAdmin, [fileGateway], pairRoot);
    file.pairings.push(fp.perSec);
    file.failures += fp.failures;
    const pp = await pairingRun(pgAdmin, replicas, pairRoot);
    row.pairings.push(pp.perSec);
    row.failures += pp.failures;
    rows.push(row);
  }
  const fileMut = median(file.mutations);
  const filePair = median(file.pairings);
  printTable({
    title: `Mutations/s and pairings/s: PostgreSQL with 1–3 replicas vs the file backend (medians; same run, interleaved)`,
    columns: [
      { key: 'backend', label: 'backend', align: 'left' },
      { key: 'mut', label: 'mutations/s' },
      { key: 'mutx', label: 'vs file' },
      { key: 'pair', label: `pairings/s (${IN_FLIGHT_PAIRINGS} in flight)` },
      { key: 'pairx', label: 'vs file' },
      { key: 'fail', label: 'failed pairings' },
    ],
    rows: [
      { backend: 'file, 1 gateway (baseline)', mut: fmtOps(fileMut), mutx: '1.00×', pair: fmtOps(filePair), pairx: '1.00×', fail: fmtNum(file.failures) },
      ...rows.map((r) => ({
        backend: `PostgreSQL, ${r.replicas} replica${r.replicas === 1 ? '' : 's'}`,
        mut: fmtOps(median(r.mutations)),
        mutx: fmtRatio(median(r.mutations), fileMut),
        pair: fmtOps(median(r.pairings)),
        pairx: fmtRatio(median(r.pairings), filePair),
        fail: fmtNum(r.failures),
      })),
    ],
    notes: [
      `mutation = GatewayAdmin.renameDevice, one at a time from this process (the writer, like a CLI): into the state directory with a file gateway child following it, or into the database with the replicas following it (each reloads on the NOTIFY); ${PHASE_MS} ms runs, 3 per replica count, file runs interleaved with them`,
      `pairing = pairDevice() (device library: CA pin, Begin, Complete, status long-poll, certificate stored) with a fresh device store each; automatic approval by this process's GatewayAdmin on awaiting_approval; ${IN_FLIGHT_PAIRINGS} pairings in flight in every row, spread round robin over the replicas; ${fmtNum((3 * PHASE_MS) / 1000)} s per row`,
    ],
  });
}

// --- 3: revocation on one replica (or a writer) → stream on replica C ended --------------------------------------------

function unary(invoke) {
  return new Promise((resolve, reject) => {
    invoke({ deadline: Date.now() + 30_000 }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function revocationSection() {
  const db = await newDatabase();
  const admin = await openPgAdmin(db);
  const a = await startReplica(db);
  const b = await startReplica(db);
  const c = await startReplica(db);
  void b;
  const caPem = admin.identity.caCertificatePem;
  // An admin device (remote administration) calling replica A's palyra.admin.v1.GatewayAdmin over mTLS.
  const [adminDevice] = await pairDevicesInState(admin, 1, { clientKind: 'desktop' });
  await admin.grantAdmin(adminDevice.deviceId);
  const adminClient = createGatewayAdminClient(
    a.listen,
    createGatewayChannelCredentials({ caCertificatePem: caPem, clientCertificatePem: adminDevice.certificatePem, clientPrivateKeyPem: adminDevice.privateKeyPem }),
  );
  closers.push(() => adminClient.close());
  // The admin role reaches A through the database: wait until A lets the device in.
  const deadline = now() + 30_000;
  for (;;) {
    try {
      await unary((o, cb) => adminClient.ListDevices({}, o, cb));
      break;
    } catch (error) {
      if (now() > deadline) throw error;
      await sleep(50);
    }
  }
  const kinds = [
    { name: 'A', label: "RevokeDevice on replica A's admin API (admin device, mTLS)", revoke: (id) => unary((o, cb) => adminClient.RevokeDevice({ device_id: id, reason: 'bench' }, o, cb)) },
    { name: 'writer', label: 'GatewayAdmin.revokeDevice in this process (a writer on the database, like the CLI)', revoke: (id) => admin.revokeDevice(id, 'bench') },
  ];
  const devices = await pairDevicesInState(admin, 2 * (REVOCATIONS + 2));
  const streams = [];
  for (const device of devices) {
    const stream = openStream(c.listen, caPem, device);
    await stream.roundTrip('node.started');
    streams.push({ device, stream });
  }
  const results = new Map(kinds.map((k) => [k.name, { ended: [], call: [], codes: [], early: 0 }]));
  for (const [i, { device, stream }] of streams.entries()) {
    const kind = kinds[i % 2 === Math.floor(i / 2) % 2 ? 0 : 1];
    await settle(30);
    const called = now();
    await kind.revoke(device.deviceId);
    const returned = now();
    const failure = await Promise.race([stream.ended, sleep(10_000).then(() => 'timeout')]);
    if (failure === 'timeout') throw new Error(`stream of ${device.deviceId} on replica C still open 10 s after the revocation`);
    stream.close();
    if (i < 4) continue; // warm-up: two of each
    const r = results.get(kind.name);
    r.ended.push(stream.state.endedAt - called);
    r.call.push(returned - called);
    r.codes.push(failure?.code ?? 'end');
    if (stream.state.endedAt <= returned) r.early += 1;
  }
  const rows = [];
  const notes = [];
  for (const k of kinds) {
    const r = results.get(k.name);
    const call = summarize(r.call);
    const ended = summarize(r.ended);
    rows.push({ what: `${k.label}: the call (baseline)`, n: fmtNum(call.n), p50: fmtMs(call.p50), p99: fmtMs(call.p99), max: fmtMs(call.max), x: '1.00×', target: '' });
    rows.push({
      what: `${k.label}: call → stream on C ended`,
      n: fmtNum(ended.n),
      p50: fmtMs(ended.p50),
      p99: fmtMs(ended.p99),
      max: fmtMs(ended.max),
      x: fmtRatio(ended.p99, call.p99),
      target: `≤ 100 ms (${ended.p99 <= 100 ? 'met' : 'missed'})`,
    });
    const denied = r.codes.filter((code) => code === 7).length;
    notes.push(`${k.name === 'A' ? 'via replica A' : 'via the writer'}: ${denied} of ${r.codes.length} streams ended PERMISSION_DENIED (others: ${r.codes.filter((x) => x !== 7).join(', ') || 'none'}); ${r.early} ended before the call had returned`);
  }
  printTable({
    title: `Revocation on replica A (or by a writer on the database) → the device's node stream on replica C ended (3 replicas; ${REVOCATIONS} revocations each after 2 warm-up, interleaved)`,
    columns: [
      { key: 'what', label: 'measured', align: 'left' },
      { key: 'n', label: 'n' },
      { key: 'p50', label: 'p50' },
      { key: 'p99', label: 'p99' },
      { key: 'max', label: 'max' },
      { key: 'x', label: 'p99 vs the call' },
      { key: 'target', label: 'target p99' },
    ],
    rows,
    notes: [
      ...notes,
      'time from the start of the revoking call; the stream can end before the call returns (replica C acts on the committed change while the caller still waits for its answer)',
    ],
  });
}

// --- 4: failover ----------------------------------------------------------------------------------------------------------

async function failoverSection() {
  const db = await newDatabase();
  const admin = await openPgAdmin(db);
  const replicas = [await startReplica(db), await startReplica(db), await startReplica(db)];
  const holder = new Map(); // replica → whether it saw our device online last
  let deviceId = null;
  const watch = (replica) => {
    replica.onLine((line) => {
      if (line.device_id !== deviceId) return;
      if (line.event === 'node.online') holder.set(replica, now());
      if (line.event === 'node.offline') holder.delete(replica);
    });
  };
  for (const r of replicas) watch(r);
  const minted = await admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'bench', gatewayAddresses: await admin.pairingAddresses([]), gatewayName: null });
  const agent = await DeviceAgent.open({ deviceDir: await tempDir('agent'), keychain: 'os', osKeychain: new MemoryKeychain(), heartbeatMs: 200 });
  closers.push(() => agent.stop());
  let online = 0;
  let onlineAt = 0;
  let onlineWaiter = null;
  agent.on((e) => {
    if (e.type === 'awaiting_approval') void admin.approve(e.request_id).catch(() => undefined);
    if (e.type === 'connection' && e.state === 'online') {
      online += 1;
      onlineAt = now();
      onlineWaiter?.();
    }
  });
  const paired = await agent.pair({ method: 'qr', uri: parsePairingUri(minted.uri, { now: Date.now() }) }, { kind: 'node' });
  deviceId = paired.deviceId ?? (await agent.status()).device_id;
  const waitOnline = (count, what) =>
    new Promise((resolve, reject) => {
      if (online >= count) return resolve();
      const timer = setTimeout(() => reject(new Error(`${what}: not online within 30 s`)), 30_000);
      onlineWaiter = () => {
        if (online >= count) {
          clearTimeout(timer);
          onlineWaiter = null;
          resolve();
        }
      };
    });
  const waitHolder = async () => {
    const deadline = now() + 30_000;
    while (now() < deadline) {
      const [r] = [...holder.entries()].sort((x, y) => y[1] - x[1]).map(([replica]) => replica);
      if (r !== undefined && replicas.includes(r)) return r;
      await sleep(10);
    }
    throw new Error('no replica logged the agent online within 30 s');
  };
  agent.start();
  await waitOnline(1, 'the agent after pairing');
  const samples = [];
  for (let round = 0; round < FAILOVERS; round++) {
    const victim = await waitHolder();
    await settle(200);
    const before = online;
    const killedAt = now();
    await victim.kill();
    holder.delete(victim);
    await waitOnline(before + 1, `round ${round + 1}`);
    samples.push(onlineAt - killedAt);
    // Three replicas again: the killed one comes back on its port (the addresses in the device's QR code).
    const back = await startReplica(db, victim.port);
    watch(back);
    replicas[replicas.indexOf(victim)] = back;
  }
  const s = summarize(samples);
  printTable({
    title: `Failover: the replica holding a DeviceAgent's stream SIGKILLed → the agent online on another replica (${samples.length} rounds, 3 replicas)`,
    columns: [
      { key: 'what', label: 'case', align: 'left' },
      { key: 'p50', label: 'p50' },
      { key: 'max', label: 'max' },
      { key: 'min', label: 'min' },
      { key: 'target', label: 'target p50' },
    ],
    rows: [
      {
        what: 'SIGKILL sent → agent `connection: online` event',
        p50: fmtMs(s.median),
        max: fmtMs(s.max),
        min: fmtMs(s.min),
        target: `≤ 2 s (${s.median <= 2000 ? 'met' : 'missed'})`,
      },
    ],
    notes: [
      'device = DeviceAgent (device library, heartbeat 200 ms) paired by a QR code listing all three replicas; the holder is the replica whose stdout last logged node.online for it; after each round the killed replica is started again on the same port',
    ],
  });
}

// --- 5: cold start at COLD_DEVICES devices ---------------------------------------------------------------------------------

async function coldStartSection() {
  const fileDir = await tempDir('cold-file');
  const admin = await GatewayAdmin.open({ stateDir: fileDir, keychain: null });
  const t0 = now();
  await pairDevicesInState(admin, COLD_DEVICES, {
    sharedKeys: await generateP256KeyPair(),
    progress: (n) => console.log(`_seeded ${fmtNum(n)} devices (${fmtNum((now() - t0) / 1000, 1)} s)_`),
  });
  await admin.close();
  const seedMs = now() - t0;
  const db = await newDatabase();
  const t1 = now();
  await runCli(['state', 'migrate', '--from-dir', fileDir, '--to', db.url, '--store-key-file', db.keyFile, '--json']);
  const migrateMs = now() - t1;
  console.log(`\n_${fmtNum(COLD_DEVICES)} devices seeded in ${fmtNum(seedMs / 1000, 1)} s; state migrate --from-dir in ${fmtNum(migrateMs / 1000, 1)} s_\n`);
  const pgStarts = [];
  const fileStarts = [];
  const floorStarts = [];
  const emptyStarts = [];
  const emptyDb = await newDatabase();
  await (await GatewayAdmin.openPg({ database: { databaseUrl: emptyDb.url, storeKeyFile: emptyDb.keyFile }, stateDir: await tempDir('cold-empty-admin'), keychain: null })).close();
  const emptyStateDir = await tempDir('cold-empty-replica');
  const pgStateDir = await tempDir('cold-replica');
  for (let i = 0; i < COLD_STARTS; i++) {
    await settle(100);
    const t = now();
    await runCli(['--help']);
    floorStarts.push(now() - t);
    await settle(100);
    const f = await startGateway({ stateDir: fileDir });
    fileStarts.push(f.startMs);
    await f.stop();
    await settle(100);
    const r = await startGateway({ stateDir: pgStateDir, db });
    pgStarts.push(r.startMs);
    await r.stop();
    await settle(100);
    const e = await startGateway({ stateDir: emptyStateDir, db: emptyDb });
    emptyStarts.push(e.startMs);
    await e.stop();
  }
  const file = median(fileStarts);
  const pgMs = median(pgStarts);
  printTable({
    title: `Cold start at ${fmtNum(COLD_DEVICES)} paired devices: \`gateway run\` spawned → \`gateway.ready\` line (median of ${COLD_STARTS})`,
    columns: [
      { key: 'backend', label: 'backend', align: 'left' },
      { key: 'p50', label: 'p50' },
      { key: 'all', label: 'runs' },
      { key: 'x', label: 'vs file' },
      { key: 'target', label: 'target' },
    ],
    rows: [
      { backend: '`palyra --help` spawned → exited (process floor)', p50: fmtMs(median(floorStarts)), all: floorStarts.map(fmtMs).join(', '), x: fmtRatio(median(floorStarts), file), target: '' },
      { backend: 'PostgreSQL replica, no devices (CA only)', p50: fmtMs(median(emptyStarts)), all: emptyStarts.map(fmtMs).join(', '), x: fmtRatio(median(emptyStarts), file), target: '' },
      { backend: 'file: state directory (baseline)', p50: fmtMs(file), all: fileStarts.map(fmtMs).join(', '), x: '1.00×', target: '' },
      { backend: 'PostgreSQL replica (same state, migrated)', p50: fmtMs(pgMs), all: pgStarts.map(fmtMs).join(', '), x: fmtRatio(pgMs, file), target: `≤ 1 s (${pgMs <= 1000 ? 'met' : 'missed'})` },
    ],
    notes: [
      'includes node start-up and loading the CLI (a new process each time), opening and decrypting the state, schema check, binding 127.0.0.1, registering the replica; the starts alternate (floor, file, replica, empty replica)',
      `seeded through GatewayAdmin → IdentityManager.finalizeVerifiedPairing (one P-256 key for all seeded devices' CSRs, they never connect), then \`palyra state migrate --from-dir DIR --to URL --store-key-file FILE\``,
    ],
  });
}

// --- run ----------------------------------------------------------------------------------------------------------------

try {
  postgres = await startPostgres();
  if (only.includes('throughput')) await section('Mutations and pairings per second', throughputSection);
  if (only.includes('revocation')) await section('Revocation across replicas', revocationSection);
  if (only.includes('failover')) await section('Failover', failoverSection);
  if (only.includes('cold')) await section('Cold start', coldStartSection);
  const fmtLoad = (l) => l.map((x) => x.toFixed(2)).join(' / ');
  console.log(`_load avg (1 / 5 / 15 min): ${fmtLoad(loadAtStart)} at start, ${fmtLoad(os.loadavg())} at end; ${os.cpus().length} cpus_\n`);
} finally {
  for (const close of closers.reverse()) await Promise.resolve().then(close).catch(() => undefined);
  for (const c of children) c.kill('SIGKILL');
  if (postgres !== null) await postgres.stop().catch((error) => console.error(`stopping PostgreSQL: ${error.message}`));
  for (const dir of tempRoots) await rm(dir, { recursive: true, force: true, maxRetries: 5 });
}
process.exit(0);
