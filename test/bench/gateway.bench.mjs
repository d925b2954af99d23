// Benchmarks of the gateway (issue 3), against baselines measured in the same run:
//   1. unary RegisterNode over mTLS vs the same call on a gateway with the insecure opt-out (TLS, no client cert),
//      64 calls in flight; plus the transport floor (a Begin refused by validation) and new-connection cost;
//   2. full pairing (Begin → Complete → approve → certificate), the human's decision excluded;
//   3. revocation → stream closed: same process, another process (GatewayAdmin), the CLI (`palyra devices revoke`);
//   4. many concurrent node streams (one device certificate each) on a gateway child process: its RSS and the
//      heartbeat round trip.
// Gateways under load run as `palyra gateway run` child processes (dist/), so their RSS and CPU are their own.
// Run `npm run bench` (builds, then runs every bench) or `npm run build && node --expose-gc test/bench/run.mjs gateway`.
// Options: --only=unary,pairing,revocation,streams   --streams=250,1000   --heartbeat-ms=1000
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';

import { createCertificateSigningRequest } from '../../dist/main/core/csr.js';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../dist/main/core/device-identity.js';
import { buildDeviceHello, signCsrBinding } from '../../dist/main/core/handshake.js';
import { parsePairingUri } from '../../dist/main/core/pairing-uri.js';
import { toHex } from '../../dist/main/core/bytes.js';
import { ed25519Verify, p256Verify, setCryptoBackend, x25519, x25519PublicKey } from '../../dist/main/core/crypto.js';
import { verifyCsr } from '../../dist/main/core/csr.js';
import { derChildren, derContent } from '../../dist/main/core/der.js';
import { installNodeCrypto, nodeCryptoBackend } from '../../dist/main/platform/node-crypto.js';
import { exportPrivateKeyPem, generateP256KeyPair, P256_SIGNING_ALGORITHM } from '../../dist/main/core/x509-keys.js';
import { DeviceStore } from '../../dist/main/device/device-store.js';
import { pairDevice } from '../../dist/main/device/pairing-client.js';
import { Gateway } from '../../dist/main/gateway/gateway.js';
import { GatewayAdmin } from '../../dist/main/gateway/gateway-admin.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../dist/main/rpc/tls-client.js';
import { MemoryKeychain } from '../../dist/main/store/keychain.js';

import { fmtMiB, fmtMs, fmtNum, fmtOps, fmtRatio, median, printMachineInfo, printTable, section, settle, summarize } from './lib.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '../..');
const BIN = path.join(repoRoot, 'bin/palyra.js');
const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const only = option('only')?.split(',') ?? ['unary', 'pairing', 'revocation', 'streams', 'flood'];
const STREAM_COUNTS = (option('streams') ?? '250,1000').split(',').map(Number).sort((a, b) => a - b);
const HEARTBEAT_MS = Number(option('heartbeat-ms') ?? 1000);

const IN_FLIGHT = 64;
const UNARY_RUNS = 5;
const UNARY_RUN_MS = 1000;
const PAIRINGS = 40;
const REVOCATIONS = 12;
const BACKGROUND_STREAMS = Number(option('background-streams') ?? 1000);
const HEARTBEAT_PHASE_MS = 8000;
const CALL_DEADLINE_MS = 30_000;
const ISOLATED = { 'grpc.use_local_subchannel_pool': 1 };

if (process.env.PALYRA_BENCH_CHILD !== '1') printMachineInfo();
// As the CLI and the desktop app do (main/platform/node-crypto.ts); section 2 also runs a row on @noble.
installNodeCrypto();
console.log('# gateway.bench.mjs — gateway: node RPC, pairing, revocation, streams\n');

// --- shared helpers ------------------------------------------------------------------------------------------------

const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const tempRoots = [];

async function tempStateDir(label) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `palyra-bench-gw-${label}-`));
  tempRoots.push(dir);
  return dir;
}

/** The CLI's environment for children: key file instead of an OS keychain, no inherited PALYRA_* settings. */
function childEnv() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('PALYRA_')) delete env[name];
  return { ...env, PALYRA_KEYCHAIN: 'file' };
}

const children = new Set();

/** `palyra gateway run` on `stateDir`; resolves once its ready line arrived. Stdout is drained (it logs per node). */
async function startGatewayChild(stateDir, extraArgs = []) {
  const child = spawn(process.execPath, [BIN, 'gateway', 'run', '--state-dir', stateDir, '--listen', '127.0.0.1:0', ...extraArgs], {
    cwd: repoRoot,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => children.delete(child));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const ready = await new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not become ready within 30 s\n${stderr}`)), 30_000);
    const onData = (chunk) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.stdout.resume();
      resolve(JSON.parse(buffer.slice(0, newline)));
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    exited.then(({ code }) => reject(new Error(`gateway exited (${code}) before it was ready\n${stderr}`)));
  });
  // Keep draining: the gateway writes a JSON line per node coming online.
  child.stdout.on('data', () => undefined);
  return {
    pid: child.pid,
    listen: ready.listen,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of a process in bytes (Linux /proc; `ps` elsewhere). */
async function rssOf(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]);
    if (Number.isFinite(kb)) return kb * 1024;
  } catch {
    // not Linux
  }
  const out = await new Promise((resolve) => {
    const ps = spawn('ps', ['-o', 'rss=', '-p', String(pid)]);
    let text = '';
    ps.stdout.on('data', (c) => (text += c));
    ps.on('close', () => resolve(text));
  });
  return Number(out.trim()) * 1024;
}

/** CPU seconds (user + system) a process used so far, from /proc (null elsewhere). */
async function cpuSecondsOf(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return null;
  }
}

/**
 * CPU seconds a process and all its descendants used so far (a multi-worker gateway does its work in worker
 * processes, not in the primary): the live tree from /proc, plus what reaped children left in cutime/cstime.
 */
async function treeCpuSecondsOf(pid) {
  let names;
  try {
    names = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  } catch {
    return null;
  }
  const stats = new Map();
  for (const name of names) {
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(name), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) });
    } catch {
      // gone in between
    }
  }
  if (!stats.has(pid)) return null;
  let ticks = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop();
    ticks += stats.get(p).ticks;
    for (const [child, s] of stats) if (s.ppid === p) todo.push(child);
  }
  return ticks / 100;
}

function unary(invoke) {
  return new Promise((resolve, reject) => {
    invoke({ deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function anonymousClient(listen, caCertificatePem) {
  return createNodeServiceClient(listen, createGatewayChannelCredentials({ caCertificatePem }), ISOLATED);
}

function certifiedClient(listen, caCertificatePem, device) {
  return createNodeServiceClient(
    listen,
    createGatewayChannelCredentials({ caCertificatePem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
    ISOLATED,
  );
}

/**
 * Devices paired the way a finished pairing leaves them (own P-256 key, certificate from its CSR), written straight
 * into the state directory through GatewayAdmin → IdentityManager.finalizeVerifiedPairing. CSRs are made in batches.
 */
async function pairDevicesInState(admin, count) {
  const devices = [];
  const BATCH = 25;
  for (let start = 0; start < count; start += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, count - start) }, async () => {
        const identity = DeviceIdentity.generate();
        const keys = await generateP256KeyPair();
        const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
        return { identity, csrDer, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
      }),
    );
    for (const d of batch) {
      const issued = await admin.identity.finalizeVerifiedPairing({
        verified: {
          deviceId: d.identity.deviceId,
          clientKind: 'node',
          identityFingerprint: d.identity.fingerprint,
          signingPublicKeyHex: toHex(d.identity.signingPublicKey),
        },
        csrDer: d.csrDer,
      });
      devices.push({ deviceId: d.identity.deviceId, certificatePem: issued.certificate.certificatePem, privateKeyPem: d.privateKeyPem });
    }
  }
  return devices;
}

/** A node event stream with request/response pairing by order (the gateway answers each event once, in order). */
function openStream(client, deviceId) {
  const call = client.StreamNodeEvents();
  const waiters = [];
  let endedAt = null;
  let failure = null;
  const ended = new Promise((resolve) => {
    call.on('error', (error) => {
      endedAt ??= now();
      failure = error;
      for (const w of waiters.splice(0)) w.reject(error);
      resolve(error);
    });
    call.on('end', () => {
      endedAt ??= now();
      resolve(null);
    });
  });
  call.on('data', (response) => waiters.shift()?.resolve(response));
  const event = (name) => ({ v: 1, device_id: { ulid: deviceId }, event_name: name, payload_json: Buffer.from('{}') });
  return {
    roundTrip(name) {
      return new Promise((resolve, reject) => {
        if (failure !== null) return reject(failure);
        waiters.push({ resolve, reject });
        call.write(event(name));
      });
    },
    ended,
    get endedAt() {
      return endedAt;
    },
    cancel: () => call.cancel(),
  };
}

// --- the device side of pairing, step by step (the same core calls the device library makes) -----------------------

async function newPairingDevice() {
  const identity = DeviceIdentity.generate();
  const keyExchange = generatePairingKeyExchange();
  const keys = await generateP256KeyPair();
  const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
  return { identity, keyExchange, csrDer };
}

function beginRequestOf(device, token) {
  return { v: 1, client_kind: 'desktop', method: { qr_token: token }, device_x25519_commitment: Buffer.from(x25519Commitment(device.keyExchange.publicKey)) };
}

function completeRequestOf(device, begin, token) {
  const session = {
    sessionId: begin.session_id,
    protocolVersion: 1,
    clientKind: 'desktop',
    challenge: new Uint8Array(begin.challenge),
    gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
  };
  const { hello } = buildDeviceHello({ identity: device.identity, session, proof: token, keyExchange: device.keyExchange });
  return {
    v: 1,
    session_id: hello.sessionId,
    device_id: { ulid: hello.deviceId },
    client_kind: 'desktop',
    proof: token,
    device_signing_public: Buffer.from(hello.deviceSigningPublic),
    device_x25519_public: Buffer.from(hello.deviceX25519Public),
    challenge_signature: Buffer.from(hello.challengeSignature),
    transcript_mac: Buffer.from(hello.transcriptMac),
    tls_csr_der: Buffer.from(device.csrDer),
    tls_csr_signature: Buffer.from(signCsrBinding(device.identity, hello.sessionId, device.csrDer)),
  };
}

/**
 * One pairing over `client`, timed per phase: device keys + CSR, Begin, Complete, approve (by `approve`), then the
 * status call that returns the certificate. The status call is sent before the approval (a long-poll, as the
 * device does) so the approval's wake-up is measured, not a poll interval.
 */
async function timedPairing(client, mint, approve) {
  const token = await mint();
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const device = await newPairingDevice();
  const t1 = now();
  const deviceCpu1 = process.cpuUsage(cpu0);
  const begin = await unary((o, cb) => client.BeginPairingSession(beginRequestOf(device, token), new grpc.Metadata(), o, cb));
  const t2 = now();
  const cpu2 = process.cpuUsage();
  const request = completeRequestOf(device, begin, token);
  const deviceCpu2 = process.cpuUsage(cpu2);
  const complete = await unary((o, cb) => client.CompletePairingSession(request, new grpc.Metadata(), o, cb));
  if (complete.reason !== 'pending_approval') throw new Error(`unexpected Complete reason ${complete.reason}`);
  const t3 = now();
  const status = unary((o, cb) => client.GetPairingRequestStatus({ v: 1, session_id: begin.session_id, device_id: { ulid: device.identity.deviceId }, wait_ms: 10_000 }, new grpc.Metadata(), o, cb));
  await approve(begin.session_id);
  const t4 = now();
  const response = await status;
  const t5 = now();
  const cpu = process.cpuUsage(cpu0);
  if (response.status !== 'completed' || response.mtls_client_certificate_pem === '') throw new Error(`pairing ended ${response.status}`);
  const ms = (u) => (u.user + u.system) / 1000;
  // This process's CPU during the pairing minus the device's own steps (keys, CSR, hello, binding); what remains is
  // the gateway's work plus the gRPC client's side of four calls (so an upper bound for an in-process gateway).
  const deviceCpu = ms(deviceCpu1) + ms(deviceCpu2);
  return {
    device: t1 - t0, begin: t2 - t1, complete: t3 - t2, approve: t4 - t3, certificate: t5 - t4, gateway: t5 - t1, total: t5 - t0,
    cpu: ms(cpu), deviceCpu, gatewayCpu: ms(cpu) - deviceCpu,
  };
}

/**
 * CPU of the bare cryptography of one pairing's gateway side, on the current backend: an X25519 key generation
 * (Begin), an X25519 agreement and an Ed25519 verification (Complete), the CSR's P-256 self-signature check and the
 * certificate's P-256 signature (WebCrypto, as the CA signs). Median over rounds of `PER_ROUND` sets.
 */
async function bareCryptoCpuMs() {
  const device = await newPairingDevice();
  const message = new Uint8Array(160).fill(7);
  const signature = device.identity.sign(message);
  const csr = derChildren(device.csrDer);
  const csrTbs = csr[0];
  const csrSignature = derContent(csr[2]).subarray(1);
  const point = verifyCsr(device.csrDer).publicPoint;
  const caKeys = await generateP256KeyPair();
  const tbs = new Uint8Array(450).fill(3);
  const PER_ROUND = 50;
  const rounds = [];
  for (let round = 0; round < 9; round++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < PER_ROUND; i++) {
      const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
      x25519PublicKey(secret);
      x25519(secret, device.keyExchange.publicKey);
      if (!ed25519Verify(signature, message, device.identity.signingPublicKey)) throw new Error('bare Ed25519 verify failed');
      if (!p256Verify(csrSignature, csrTbs, point, 'der')) throw new Error('bare CSR verify failed');
      await globalThis.crypto.subtle.sign(P256_SIGNING_ALGORITHM, caKeys.privateKey, tbs);
    }
    const u = process.cpuUsage(c0);
    if (round > 0) rounds.push((u.user + u.system) / 1000 / PER_ROUND);
  }
  return median(rounds);
}

// =====================================================================================================================
// 1. Unary RegisterNode: mTLS vs insecure opt-out
// =====================================================================================================================

/** `IN_FLIGHT` workers calling `op` back to back for `ms`; returns calls, elapsed time and per-call latencies. */
async function inFlight(op, ms) {
  const latencies = [];
  const deadline = now() + ms;
  const start = now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (now() < deadline) {
        const t = now();
        await op();
        latencies.push(now() - t);
      }
    }),
  );
  return { calls: latencies.length, ms: now() - start, latencies };
}

async function unarySection() {
  const mtlsDir = await tempStateDir('mtls');
  const optOutDir = await tempStateDir('optout');
  const admin = await GatewayAdmin.open({ stateDir: mtlsDir, keychain: null });
  const [device] = await pairDevicesInState(admin, 1);
  const caPem = admin.identity.caCertificatePem;
  const mtlsGateway = await startGatewayChild(mtlsDir);
  const optOutGateway = await startGatewayChild(optOutDir, ['--insecure-node-rpc-opt-out']);
  const optOutCa = (await GatewayAdmin.open({ stateDir: optOutDir, keychain: null })).identity.caCertificatePem;
  const optOutDeviceId = DeviceIdentity.generate().deviceId;
  const mtlsClient = certifiedClient(mtlsGateway.listen, caPem, device);
  const plainClient = anonymousClient(optOutGateway.listen, optOutCa);
  const register = (client, deviceId) => () =>
    unary((o, cb) => client.RegisterNode({ v: 1, device_id: { ulid: deviceId }, platform: 'bench', capabilities: [{ name: 'echo', available: true }] }, new grpc.Metadata(), o, cb));
  // The transport floor: a call the handler refuses on its first check (no state, no certificate lookup).
  const refusedBegin = (client) => () =>
    unary((o, cb) => client.BeginPairingSession({ v: 1, client_kind: 'bench' }, new grpc.Metadata(), o, cb)).then(
      () => {
        throw new Error('expected INVALID_ARGUMENT');
      },
      (e) => {
        if (e.code !== grpc.status.INVALID_ARGUMENT) throw e;
      },
    );
  const cases = [
    { name: 'RegisterNode, mTLS', op: register(mtlsClient, device.deviceId), pair: 'register', base: false },
    { name: 'RegisterNode, insecure opt-out (TLS, no client cert)', op: register(plainClient, optOutDeviceId), pair: 'register', base: true },
    { name: 'Begin refused by validation, mTLS connection', op: refusedBegin(mtlsClient), pair: 'floor', base: false },
    { name: 'Begin refused by validation, insecure opt-out', op: refusedBegin(plainClient), pair: 'floor', base: true },
  ];
  try {
    for (const c of cases) await inFlight(c.op, 500); // warm-up: connections, JIT, state files
    const results = new Map(cases.map((c) => [c.name, { rates: [], latencies: [] }]));
    for (let run = 0; run < UNARY_RUNS; run++) {
      for (const c of cases) {
        await settle();
        const r = await inFlight(c.op, UNARY_RUN_MS);
        results.get(c.name).rates.push((r.calls * 1000) / r.ms);
        results.get(c.name).latencies.push(...r.latencies);
      }
    }
    const rateOf = (c) => median(results.get(c.name).rates);
    printTable({
      title: `Unary calls at ${IN_FLIGHT} in flight (one connection each; gateways are \`palyra gateway run\` children)`,
      columns: [
        { key: 'name', label: 'call' },
        { key: 'rate', label: 'calls/s (median)' },
        { key: 'p50', label: 'p50' },
        { key: 'p99', label: 'p99' },
        { key: 'ratio', label: 'mTLS / insecure' },
        { key: 'floor', label: 'vs empty-handler mTLS call' },
      ],
      rows: cases.map((c) => {
        const s = summarize(results.get(c.name).latencies);
        const baseline = cases.find((o) => o.pair === c.pair && o.base);
        return {
          name: c.name,
          rate: fmtOps(rateOf(c)),
          p50: fmtMs(s.p50),
          p99: fmtMs(s.p99),
          ratio: c.base ? '1.00× (baseline)' : fmtRatio(rateOf(c), rateOf(baseline)),
          floor: c.name === 'RegisterNode, mTLS' ? fmtRatio(rateOf(c), rateOf(cases.find((o) => o.pair === 'floor' && !o.base))) : '',
        };
      }),
      notes: [
        `median calls/s of ${UNARY_RUNS} interleaved runs of ${UNARY_RUN_MS} ms; latency percentiles over every call of those runs`,
        'RegisterNode persists a new or changed node record at once (one group-committed journal append under the state lock); a re-registration that only moves last-seen is written in a batch within 5 s. mTLS adds the per-call certificate fingerprint → device lookup',
        'targets: mTLS ≥ 80 % of insecure (ratio ≥ 0.80×); RegisterNode ≥ 50 % of an mTLS call the handler refuses at once (the empty-handler floor), p99 ≤ 50 ms',
      ],
    });

    // New connection + one call: the handshake cost of a client certificate (verify chain + CRL + fingerprint check).
    const connectCases = [
      { name: 'new mTLS connection + RegisterNode', make: () => certifiedClient(mtlsGateway.listen, caPem, device), deviceId: device.deviceId },
      { name: 'new TLS connection (no client cert) + RegisterNode, opt-out', make: () => anonymousClient(optOutGateway.listen, optOutCa), deviceId: optOutDeviceId },
    ];
    const connectSamples = new Map(connectCases.map((c) => [c.name, []]));
    for (let i = 0; i < 35; i++) {
      for (const c of connectCases) {
        const t = now();
        const client = c.make();
        await register(client, c.deviceId)();
        const elapsed = now() - t;
        client.close();
        if (i >= 5) connectSamples.get(c.name).push(elapsed);
      }
    }
    const connectBase = summarize(connectSamples.get(connectCases[1].name));
    printTable({
      title: 'New connection + first call (sequential, 30 samples each after 5 warm-up)',
      columns: [
        { key: 'name', label: 'case' },
        { key: 'p50', label: 'p50' },
        { key: 'p99', label: 'p99' },
        { key: 'ratio', label: 'p50 vs no client cert' },
      ],
      rows: connectCases.map((c, i) => {
        const s = summarize(connectSamples.get(c.name));
        return { name: c.name, p50: fmtMs(s.p50), p99: fmtMs(s.p99), ratio: i === 1 ? '1.00× (baseline)' : fmtRatio(s.p50, connectBase.p50) };
      }),
    });
  } finally {
    mtlsClient.close();
    plainClient.close();
    await mtlsGateway.stop();
    await optOutGateway.stop();
  }
}

// =====================================================================================================================
// 2. Full pairing, excluding the human
// =====================================================================================================================

async function pairingSection() {
  const rows = [];
  const phases = [];
  const bare = new Map();

  // a) in-process gateway, in-process approval (the desktop app's case), raw protocol steps over one connection.
  const inProcDir = await tempStateDir('pair-inproc');
  const gateway = await Gateway.start({
    stateDir: inProcDir,
    listen: { host: '127.0.0.1', port: 0 },
    name: 'bench',
    insecureNodeRpcOptOut: false,
    allowServerGeneratedKeys: false,
    allowLegacyDeviceIds: false,
    keychain: null,
  });
  const mintOn = (admin, listen) => async () =>
    (await admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'bench', gatewayAddresses: [listen], gatewayName: null })).code;
  try {
    const client = anonymousClient(gateway.listen, gateway.caCertificatePem);
    try {
      const rtt = [];
      for (let i = 0; i < 50; i++) {
        const t = now();
        await unary((o, cb) => client.BeginPairingSession({ v: 1, client_kind: 'bench' }, new grpc.Metadata(), o, cb)).catch(() => undefined);
        if (i >= 10) rtt.push(now() - t);
      }
      rows.push({ name: 'baseline: one unary round trip (Begin refused by validation)', s: summarize(rtt), baseline: true });
      // The same gateway, alternately on the node:crypto backend (what the app and the CLI run) and on @noble.
      const byBackend = new Map([['node:crypto', []], ['noble', []]]);
      for (let i = 0; i < PAIRINGS + 5; i++) {
        for (const [name, samples] of byBackend) {
          setCryptoBackend(name === 'noble' ? null : nodeCryptoBackend);
          const r = await timedPairing(client, mintOn(gateway.admin, gateway.listen), (id) => gateway.admin.approve(id));
          if (i >= 5) samples.push(r);
        }
      }
      installNodeCrypto();
      for (const [name, samples] of byBackend) {
        rows.push({ name: `raw protocol steps, in-process gateway + approval, ${name}`, s: summarize(samples.map((r) => r.total)) });
        phases.push({ name: `in-process gateway + approval, ${name}`, samples });
      }
      for (const [name, backend] of [['node:crypto', nodeCryptoBackend], ['noble', null]]) {
        setCryptoBackend(backend);
        bare.set(name, await bareCryptoCpuMs());
      }
      installNodeCrypto();
    } finally {
      client.close();
    }

    // b) the device library end to end: CA pin probe, new connection, keychain (in memory), long-poll.
    const libSamples = [];
    const storeRoot = await tempStateDir('pair-devices');
    for (let i = 0; i < PAIRINGS + 5; i++) {
      const store = await DeviceStore.open({ deviceDir: path.join(storeRoot, `d${i}`), keychain: 'os', osKeychain: new MemoryKeychain() });
      const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'bench', gatewayAddresses: [gateway.listen], gatewayName: null });
      const uri = parsePairingUri(minted.uri, { now: Date.now() });
      const t = now();
      await pairDevice({
        store,
        target: { method: 'qr', uri },
        kind: 'desktop',
        onProgress: (event) => {
          if (event.type === 'awaiting_approval') void gateway.admin.approve(event.request_id);
        },
      });
      if (i >= 5) libSamples.push(now() - t);
    }
    rows.push({ name: 'pairDevice() (device library), in-process gateway + approval', s: summarize(libSamples) });
  } finally {
    await gateway.stop();
  }

  // c) gateway as a child process, approval by GatewayAdmin in this process (another process on the state dir).
  const childDir = await tempStateDir('pair-child');
  const child = await startGatewayChild(childDir);
  const admin = await GatewayAdmin.open({ stateDir: childDir, keychain: null });
  const client = anonymousClient(child.listen, admin.identity.caCertificatePem);
  let childCpuPerPairing = null;
  try {
    const samples = [];
    let childCpu0 = null;
    for (let i = 0; i < PAIRINGS + 5; i++) {
      if (i === 5) childCpu0 = await treeCpuSecondsOf(child.pid);
      const r = await timedPairing(client, mintOn(admin, child.listen), (id) => admin.approve(id));
      if (i >= 5) samples.push(r);
    }
    const childCpu1 = await treeCpuSecondsOf(child.pid);
    if (childCpu0 !== null && childCpu1 !== null) childCpuPerPairing = ((childCpu1 - childCpu0) * 1000) / PAIRINGS;
    rows.push({ name: 'raw protocol steps, gateway child, approval from another process', s: summarize(samples.map((r) => r.total)) });
    phases.push({ name: 'gateway child, approval from another process', samples });
  } finally {
    client.close();
    await child.stop();
  }

  const base = rows.find((r) => r.baseline).s;
  printTable({
    title: `Full pairing: device keys + CSR → Begin → Complete → approve → certificate (${PAIRINGS} pairings per row after 5 warm-up)`,
    columns: [
      { key: 'name', label: 'path' },
      { key: 'n', label: 'n' },
      { key: 'p50', label: 'p50' },
      { key: 'p99', label: 'p99' },
      { key: 'rtts', label: 'p50 in round trips' },
      { key: 'target', label: 'p99 vs 50 ms target' },
    ],
    rows: rows.map((r) => ({
      name: r.name,
      n: fmtNum(r.s.n),
      p50: fmtMs(r.s.p50),
      p99: fmtMs(r.s.p99),
      rtts: r.baseline ? '1.00× (baseline)' : fmtRatio(r.s.p50, base.p50),
      target: r.baseline ? '' : fmtRatio(r.s.p99, 50),
    })),
    notes: ['code minting (the operator, before the device scans) is outside the timings; the approval is issued the moment the request exists'],
  });
  const phaseNames = ['device', 'begin', 'complete', 'approve', 'certificate', 'gateway'];
  printTable({
    title: 'Pairing phases (p50 / p99)',
    columns: [{ key: 'name', label: 'path' }, ...phaseNames.map((p) => ({ key: p, label: p }))],
    rows: phases.map(({ name, samples }) => ({
      name,
      ...Object.fromEntries(phaseNames.map((p) => {
        const s = summarize(samples.map((r) => r[p]));
        return [p, `${fmtMs(s.p50)} / ${fmtMs(s.p99)}`];
      })),
    })),
    notes: [
      'device: identity + X25519 + P-256 key + CSR; complete: hello + CSR binding + verification + request filed; approve: the operator call returning; certificate: from then until the long-poll delivered the certificate (CSR signed)',
      'gateway: Begin → certificate delivered, i.e. everything but the device\'s own key generation (target p50 ≤ 25 ms)',
    ],
  });
  const bareNode = bare.get('node:crypto');
  const cpuRows = phases
    .filter((p) => p.name.startsWith('in-process'))
    .map(({ name, samples }) => {
      const backend = name.endsWith('noble') ? 'noble' : 'node:crypto';
      const gatewayCpu = median(samples.map((r) => r.gatewayCpu));
      return {
        name,
        wall: fmtMs(summarize(samples.map((r) => r.gateway)).p50),
        cpu: fmtMs(gatewayCpu),
        device: fmtMs(median(samples.map((r) => r.deviceCpu))),
        bare: fmtMs(bare.get(backend)),
        ratio: fmtRatio(gatewayCpu, bare.get(backend)),
        vsNode: fmtRatio(gatewayCpu, bareNode),
      };
    });
  if (childCpuPerPairing !== null) {
    cpuRows.push({
      name: 'gateway child process tree (primary + workers, /proc), node:crypto',
      wall: fmtMs(summarize(phases.find((p) => p.name.startsWith('gateway child')).samples.map((r) => r.gateway)).p50),
      cpu: fmtMs(childCpuPerPairing),
      device: '',
      bare: fmtMs(bareNode),
      ratio: fmtRatio(childCpuPerPairing, bareNode),
      vsNode: fmtRatio(childCpuPerPairing, bareNode),
    });
  }
  printTable({
    title: 'Gateway-side CPU per pairing vs its bare cryptography (same run)',
    columns: [
      { key: 'name', label: 'path' },
      { key: 'wall', label: 'gateway side p50 (wall)' },
      { key: 'cpu', label: 'gateway CPU / pairing (median)' },
      { key: 'device', label: 'device CPU (excluded)' },
      { key: 'bare', label: 'bare crypto CPU, same backend' },
      { key: 'ratio', label: 'CPU / bare, same backend' },
      { key: 'vsNode', label: 'CPU / bare node:crypto' },
    ],
    rows: cpuRows,
    notes: [
      'bare crypto: X25519 keygen + X25519 agreement + Ed25519 verify + the CSR\'s P-256 verify + a WebCrypto P-256 sign of a TBSCertificate-sized payload, measured with process.cpuUsage in this run (median of 8 rounds of 50)',
      'in-process rows: this process\'s CPU (all threads) from Begin to the certificate, minus the device\'s own steps; it still contains the gRPC client\'s half of four calls, so it over-states the gateway',
      'gateway child row: the child\'s own CPU over the pairings; the approval (and with it the certificate issue) runs in this process there, so it is not in that figure',
      'target: gateway CPU per pairing ≤ 3× the bare cryptography',
    ],
  });
}

// =====================================================================================================================
// 5. Unauthenticated flood: RSS and a legitimate pairing while oversized certificate-less calls pour in
// =====================================================================================================================

const FLOOD_CALLS = 200;
const FLOOD_CONNECTIONS = 20;
const FLOOD_TOKEN_BYTES = 4 * 1024 * 1024;

async function floodSection() {
  const dir = await tempStateDir('flood');
  const child = await startGatewayChild(dir);
  const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
  const caPem = admin.identity.caCertificatePem;
  const mint = async () => (await admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'bench', gatewayAddresses: [child.listen], gatewayName: null })).code;
  const approve = (id) => admin.approve(id);
  const legit = anonymousClient(child.listen, caPem);
  const floodClients = Array.from({ length: FLOOD_CONNECTIONS }, () => anonymousClient(child.listen, caPem));
  try {
    for (let i = 0; i < 3; i++) await timedPairing(legit, mint, approve); // warm-up
    const quiet = [];
    for (let i = 0; i < 10; i++) quiet.push((await timedPairing(legit, mint, approve)).gateway);
    const idleRss = await rssOf(child.pid);
    let peakRss = idleRss;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakRss = Math.max(peakRss, await rssOf(child.pid));
        await sleep(25);
      }
    })();
    const junk = 'x'.repeat(FLOOD_TOKEN_BYTES);
    const outcomes = new Map();
    const flood = Promise.all(
      Array.from({ length: FLOOD_CALLS }, (_, i) =>
        unary((o, cb) => floodClients[i % FLOOD_CONNECTIONS].BeginPairingSession({ v: 1, client_kind: 'desktop', method: { qr_token: junk } }, new grpc.Metadata(), o, cb)).then(
          () => 'accepted',
          (e) => grpc.status[e.code] ?? String(e.code),
        ),
      ),
    ).then((results) => {
      for (const r of results) outcomes.set(r, (outcomes.get(r) ?? 0) + 1);
    });
    const during = [];
    for (let i = 0; i < 10; i++) during.push((await timedPairing(legit, mint, approve)).gateway);
    await flood;
    sampling = false;
    await sampler;
    const q = summarize(quiet);
    const d = summarize(during);
    printTable({
      title: `${FLOOD_CALLS} concurrent BeginPairingSession calls with a 4 MiB qr_token, no client certificate, over ${FLOOD_CONNECTIONS} connections (gateway child)`,
      columns: [
        { key: 'name', label: 'measure' },
        { key: 'value', label: 'value' },
        { key: 'ratio', label: 'vs baseline' },
      ],
      rows: [
        { name: 'gateway RSS idle (baseline) / peak during the flood', value: `${fmtMiB(idleRss)} / ${fmtMiB(peakRss)}`, ratio: `${fmtRatio(peakRss, idleRss)} (target: peak < 300 MiB)` },
        { name: 'legitimate pairing, gateway side p50: quiet (baseline) / during the flood', value: `${fmtMs(q.p50)} / ${fmtMs(d.p50)}`, ratio: fmtRatio(d.p50, q.p50) },
        { name: 'flood call outcomes', value: [...outcomes].map(([k, v]) => `${k} ${v}`).join(', '), ratio: '' },
      ],
      notes: ['the flood is refused from the 5-byte gRPC length prefix (32 KiB limit without a client certificate) and by the per-connection / per-source call caps; the legitimate pairing runs on its own connection'],
    });
  } finally {
    legit.close();
    for (const c of floodClients) c.close();
    await child.stop();
  }
}

// =====================================================================================================================
// 3. Revocation → stream closed
// =====================================================================================================================

async function openLiveStreams(listen, caPem, devices) {
  const live = [];
  for (const device of devices) {
    const client = certifiedClient(listen, caPem, device);
    const stream = openStream(client, device.deviceId);
    await stream.roundTrip('node.started');
    live.push({ device, client, stream });
  }
  return live;
}

/** Revokes each live device with `revoke(device)`; returns per-sample ms from `revoke`'s reference point to stream end. */
async function measureRevocations(live, revoke) {
  const samples = [];
  for (const { device, client, stream } of live) {
    await settle(30);
    const { reference, extra } = await revoke(device);
    const failure = await Promise.race([stream.ended, sleep(10_000).then(() => 'timeout')]);
    if (failure === 'timeout') throw new Error(`stream of ${device.deviceId} still open 10 s after revocation`);
    samples.push({ code: failure?.code ?? 'end', fromReference: stream.endedAt - reference, ...Object.fromEntries(Object.entries(extra ?? {}).map(([k, t]) => [k, stream.endedAt - t])) });
    client.close();
  }
  return samples;
}

async function revocationSection() {
  const rows = [];
  let statusNote = '';

  // a) same process: Gateway in this process, GatewayAdmin.revokeDevice on its admin.
  const inProcDir = await tempStateDir('revoke-inproc');
  const gateway = await Gateway.start({
    stateDir: inProcDir,
    listen: { host: '127.0.0.1', port: 0 },
    name: 'bench',
    insecureNodeRpcOptOut: false,
    allowServerGeneratedKeys: false,
    allowLegacyDeviceIds: false,
    keychain: null,
  });
  try {
    const devices = await pairDevicesInState(gateway.admin, REVOCATIONS + 2);
    const live = await openLiveStreams(gateway.listen, gateway.caCertificatePem, devices);
    let committedAt = 0;
    const off = gateway.admin.onChange((change) => {
      if (change.identity) committedAt = now();
    });
    const samples = await measureRevocations(live, async (device) => {
      const called = now();
      committedAt = 0;
      await gateway.admin.revokeDevice(device.deviceId, 'bench');
      return { reference: committedAt, extra: { fromCall: called } };
    });
    off();
    rows.push({ name: 'same process: admin.revokeDevice (gateway in this process)', ref: 'identity mutation committed', s: summarize(samples.slice(2).map((x) => x.fromReference)), wide: summarize(samples.slice(2).map((x) => x.fromCall)), wideLabel: 'from the call' });
  } finally {
    await gateway.stop();
  }

  // b + c) gateway child; revocations from this process (GatewayAdmin) and from `palyra devices revoke` children.
  const childDir = await tempStateDir('revoke-child');
  const admin = await GatewayAdmin.open({ stateDir: childDir, keychain: null });
  const devices = await pairDevicesInState(admin, 2 * (REVOCATIONS + 2));
  // Streams of devices that stay paired, so each revocation happens among BACKGROUND_STREAMS others.
  const bystanders = await pairDevicesInState(admin, BACKGROUND_STREAMS);
  const child = await startGatewayChild(childDir);
  let background = [];
  try {
    const caPem = admin.identity.caCertificatePem;
    background = await openLiveStreams(child.listen, caPem, bystanders);
    const live = await openLiveStreams(child.listen, caPem, devices);
    let committedAt = 0;
    const off = admin.onChange((change) => {
      if (change.identity) committedAt = now();
    });
    const viaAdmin = await measureRevocations(live.slice(0, REVOCATIONS + 2), async (device) => {
      committedAt = 0;
      await admin.revokeDevice(device.deviceId, 'bench');
      return { reference: committedAt };
    });
    off();
    rows.push({ name: 'another process: GatewayAdmin.revokeDevice → gateway child', ref: 'identity mutation committed', s: summarize(viaAdmin.slice(2).map((x) => x.fromReference)) });

    const viaCli = await measureRevocations(live.slice(REVOCATIONS + 2), async (device) => {
      const spawnedAt = now();
      const cli = spawn(process.execPath, [BIN, 'devices', 'revoke', device.deviceId, '--state-dir', childDir], { cwd: repoRoot, env: childEnv(), stdio: 'ignore' });
      const exitedAt = await new Promise((resolve, reject) => {
        cli.on('exit', (code) => (code === 0 ? resolve(now()) : reject(new Error(`palyra devices revoke exited ${code}`))));
      });
      return { reference: exitedAt, extra: { fromSpawn: spawnedAt } };
    });
    rows.push({ name: 'CLI: `palyra devices revoke` child → gateway child', ref: 'CLI process exited', s: summarize(viaCli.slice(2).map((x) => x.fromReference)), wide: summarize(viaCli.slice(2).map((x) => x.fromSpawn)), wideLabel: 'from the spawn' });
    const codes = [...viaAdmin, ...viaCli].map((x) => x.code);
    statusNote = `${codes.filter((c) => c === grpc.status.PERMISSION_DENIED).length} of ${codes.length} revoked streams ended PERMISSION_DENIED (others: ${codes.filter((c) => c !== grpc.status.PERMISSION_DENIED).join(', ') || 'none'}); ${background.filter((b) => b.stream.endedAt === null).length} of ${background.length} bystander streams still open`;
  } finally {
    for (const b of background) b.client.close();
    await child.stop();
  }

  printTable({
    title: `Revocation → the device's stream closed, as seen by the device (${REVOCATIONS} samples per row after 2 warm-up)`,
    columns: [
      { key: 'name', label: 'revoked by' },
      { key: 'ref', label: 'measured from' },
      { key: 'p50', label: 'p50' },
      { key: 'p99', label: 'p99' },
      { key: 'max', label: 'max' },
      { key: 'target', label: 'p99 vs 100 ms target' },
      { key: 'wide', label: 'p50 / p99 (wider reference)' },
    ],
    rows: rows.map((r) => ({
      name: r.name,
      ref: r.ref,
      p50: fmtMs(r.s.p50),
      p99: fmtMs(r.s.p99),
      max: fmtMs(r.s.max),
      target: fmtRatio(r.s.p99, 100),
      wide: r.wide === undefined ? '' : `${fmtMs(r.wide.p50)} / ${fmtMs(r.wide.p99)} ${r.wideLabel}`,
    })),
    notes: [
      'same process: the reference is the admin change event fired right after the identity journal commit; the gateway closes streams from that same event',
      'other processes: the gateway learns of the commit through its state-directory watch (fs.watch, 500 ms poll as fallback)',
      'a negative figure would mean the stream closed before the CLI process had finished exiting',
      `the gateway-child rows run with ${BACKGROUND_STREAMS} other devices' streams open on the same gateway (--background-streams=N)`,
      statusNote,
    ],
  });
}

// =====================================================================================================================
// 4. Many concurrent node streams
// =====================================================================================================================

async function streamsSection() {
  const max = STREAM_COUNTS[STREAM_COUNTS.length - 1];
  const dir = await tempStateDir('streams');
  const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
  const t0 = now();
  const devices = await pairDevicesInState(admin, max);
  console.log(`_${fmtNum(max)} devices paired into the state directory (own P-256 keys, CSR-issued certificates) in ${fmtNum((now() - t0) / 1000, 1)} s_\n`);
  const caPem = admin.identity.caCertificatePem;
  const gateway = await startGatewayChild(dir);
  const live = [];
  const rows = [];
  try {
    await sleep(1000);
    const idle = await rssOf(gateway.pid);
    rows.push({ streams: 0, rss: idle, hb: null, cpu: null, open: null });
    for (const target of STREAM_COUNTS) {
      const t = now();
      while (live.length < target) {
        const batch = devices.slice(live.length, Math.min(target, live.length + 50));
        const opened = await Promise.all(
          batch.map(async (device) => {
            const client = certifiedClient(gateway.listen, caPem, device);
            const stream = openStream(client, device.deviceId);
            await stream.roundTrip('node.started');
            return { device, client, stream };
          }),
        );
        live.push(...opened);
      }
      const openMs = now() - t;
      await settle(500);
      const hb = await heartbeatPhase(live);
      rows.push({ streams: target, rss: await rssOf(gateway.pid), hb, cpu: hb.cpu, open: openMs });
    }
  } finally {
    for (const { client, stream } of live) {
      stream.cancel();
      client.close();
    }
    await gateway.stop();
  }

  async function heartbeatPhase(streams) {
    const rtts = [];
    let failures = 0;
    const cpuBefore = await cpuSecondsOf(gateway.pid);
    const start = now();
    const deadline = start + HEARTBEAT_PHASE_MS;
    await Promise.all(
      streams.map(async ({ stream }, i) => {
        // Stagger the streams evenly over one heartbeat interval, as independent nodes would be.
        await sleep((i * HEARTBEAT_MS) / streams.length);
        for (let next = now(); next < deadline; next += HEARTBEAT_MS) {
          await sleep(Math.max(0, next - now()));
          const t = now();
          try {
            await stream.roundTrip('node.heartbeat');
            rtts.push(now() - t);
          } catch {
            failures++;
            return;
          }
        }
      }),
    );
    const elapsed = now() - start;
    const cpuAfter = await cpuSecondsOf(gateway.pid);
    return { s: summarize(rtts), rate: (rtts.length * 1000) / elapsed, failures, cpu: cpuBefore === null || cpuAfter === null ? null : (cpuAfter - cpuBefore) / (elapsed / 1000) };
  }

  const idle = rows[0].rss;
  printTable({
    title: `Concurrent node streams on one gateway child (each stream: its own device certificate and mTLS connection; heartbeat every ${fmtNum(HEARTBEAT_MS)} ms per stream for ${fmtNum(HEARTBEAT_PHASE_MS / 1000)} s)`,
    columns: [
      { key: 'streams', label: 'streams' },
      { key: 'rss', label: 'gateway RSS' },
      { key: 'ratio', label: 'RSS vs idle' },
      { key: 'per', label: 'RSS per stream' },
      { key: 'open', label: 'open time' },
      { key: 'rate', label: 'heartbeats/s' },
      { key: 'p50', label: 'RTT p50' },
      { key: 'p99', label: 'RTT p99' },
      { key: 'cpu', label: 'gateway CPU' },
      { key: 'fail', label: 'failed' },
    ],
    rows: rows.map((r) => ({
      streams: fmtNum(r.streams),
      rss: fmtMiB(r.rss),
      ratio: r.streams === 0 ? '1.00× (baseline)' : fmtRatio(r.rss, idle),
      per: r.streams === 0 ? '' : `${fmtNum((r.rss - idle) / r.streams / 1024, 1)} KiB`,
      open: r.open === null ? '' : fmtMs(r.open),
      rate: r.hb === null ? '' : fmtOps(r.hb.rate),
      p50: r.hb === null ? '' : fmtMs(r.hb.s.p50),
      p99: r.hb === null ? '' : fmtMs(r.hb.s.p99),
      cpu: r.cpu === null ? '' : `${fmtNum(r.cpu * 100)} %`,
      fail: r.hb === null ? '' : fmtNum(r.hb.failures),
    })),
    notes: [
      'RSS of the gateway process only (/proc VmRSS), after the heartbeat phase; idle = started, state loaded, no connections',
      'RTT measured by the client process, which runs every stream itself on one event loop (its own lag is included)',
      `bench client RSS at the end: ${fmtMiB(process.memoryUsage().rss)}`,
    ],
  });
}

try {
  if (only.includes('unary')) await section('1. Unary RegisterNode: mTLS vs insecure opt-out', unarySection);
  if (only.includes('pairing')) await section('2. Full pairing', pairingSection);
  if (only.includes('revocation')) await section('3. Revocation latency', revocationSection);
  if (only.includes('streams')) await section('4. Concurrent node streams', streamsSection);
  if (only.includes('flood')) await section('5. Unauthenticated flood', floodSection);
} finally {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempRoots) await rm(dir, { recursive: true, force: true });
}
// grpc-js keeps timers for closed channels a little while; nothing else is left to wait for.
process.exit(0);
