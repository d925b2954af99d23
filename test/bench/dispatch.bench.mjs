// Pushed dispatch (issue 16), against the reference-style baseline measured in the same run: N node streams (one
// device certificate and mTLS connection each) on a gateway child process, driven by several load-generator child
// processes, in two modes:
//   - pushed: the first event sets push_dispatch; heartbeats every 15 s (our devices' default);
//   - baseline: no flag (a reference node); heartbeats every 1 s, work rides on their answers.
// Reported per mode: gateway RSS per idle stream, heartbeat RTT, dispatch latency queued → node received (and queued →
// result back at the gateway), the gateway's CPU and each load generator's CPU (each process measures its own).
// Each case runs on one gateway process (workers 1: the baseline, as the desktop app hosts it) and on a pool of worker
// processes on the one port (`palyra gateway run --workers N`, main/gateway/workers.ts), in the same run; RSS and CPU
// are then the sum over the primary and its workers, and the table gives heartbeat p99 as a ratio to workers 1.
// Run `npm run build && node --expose-gc test/bench/run.mjs dispatch`.
// Options: --streams=1000[,10000]   --load-procs=2   --phase-ms=20000   --dispatches=1000   --workers=1,2
//          --modes=pushed,reference
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { toHex } from '../../dist/main/core/bytes.js';
import { createCertificateSigningRequest } from '../../dist/main/core/csr.js';
import { DeviceIdentity } from '../../dist/main/core/device-identity.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../dist/main/core/x509-keys.js';
import { GatewayAdmin } from '../../dist/main/gateway/gateway-admin.js';

import { fmtMiB, fmtMs, fmtNum, fmtOps, printMachineInfo, printTable, section, summarize } from './lib.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const STREAM_COUNTS = (option('streams') ?? '1000').split(',').map(Number).sort((a, b) => a - b);
const LOAD_PROCS = Number(option('load-procs') ?? 2);
const PHASE_MS = Number(option('phase-ms') ?? 20_000);
const DISPATCHES = Number(option('dispatches') ?? 1000);
const WORKERS = (option('workers') ?? '1,2').split(',').map(Number).sort((a, b) => a - b);
const MODE_NAMES = (option('modes') ?? 'pushed,reference').split(',');
const MODES = [
  { name: 'pushed', label: 'pushed, 15 s heartbeat', push: true, heartbeatMs: 15_000 },
  { name: 'reference', label: 'reference-style, 1 s heartbeat (baseline)', push: false, heartbeatMs: 1_000 },
].filter((m) => MODE_NAMES.includes(m.name));

console.log('# dispatch.bench.mjs — pushed dispatch vs answers to heartbeats\n');
if (process.env.PALYRA_BENCH_CHILD !== '1') printMachineInfo();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const tempRoots = [];
const children = new Set();

/** Devices paired the way a finished pairing leaves them (own P-256 key, CSR-issued certificate), into the state. */
async function pairDevicesInState(admin, count) {
  const devices = [];
  for (let start = 0; start < count; start += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, count - start) }, async () => {
        const identity = DeviceIdentity.generate();
        const keys = await generateP256KeyPair();
        const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
        return { identity, csrDer, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
      }),
    );
    for (const d of batch) {
      const issued = await admin.identity.finalizeVerifiedPairing({
        verified: { deviceId: d.identity.deviceId, clientKind: 'node', identityFingerprint: d.identity.fingerprint, signingPublicKeyHex: toHex(d.identity.signingPublicKey) },
        csrDer: d.csrDer,
      });
      devices.push({ deviceId: d.identity.deviceId, certificatePem: issued.certificate.certificatePem, privateKeyPem: d.privateKeyPem });
    }
  }
  return devices;
}

/** A forked child with request/response over IPC by message type. */
function child(script, args, execArgv = []) {
  const proc = fork(path.join(benchDir, script), args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const next = (type) =>
    new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m.type !== type) return;
        proc.off('message', onMessage);
        proc.off('exit', onExit);
        resolve(m);
      };
      const onExit = (code) => reject(new Error(`${script} exited (${code}) while waiting for ${type}`));
      proc.on('message', onMessage);
      proc.once('exit', onExit);
    });
  return {
    proc,
    next,
    ask(message, replyType) {
      const reply = next(replyType);
      proc.send(message);
      return reply;
    },
    kill() {
      proc.kill('SIGKILL');
    },
  };
}

async function runMode(stateDir, devices, mode, workers) {
  const gateway = child('dispatch-gateway.mjs', [stateDir, String(workers)], ['--expose-gc']);
  const loads = [];
  try {
    const ready = await gateway.next('ready');
    await sleep(500);
    const idle = await gateway.ask({ type: 'stats' }, 'stats');
    const per = Math.ceil(devices.length / LOAD_PROCS);
    for (let i = 0; i < LOAD_PROCS; i++) loads.push(child('dispatch-load.mjs', []));
    const openStart = performance.now();
    const opened = await Promise.all(
      loads.map((load, i) =>
        load.ask({ type: 'open', devices: devices.slice(i * per, (i + 1) * per), listen: ready.listen, caCertificatePem: ready.caCertificatePem, push: mode.push }, 'opened'),
      ),
    );
    const openMs = performance.now() - openStart;
    await sleep(2000);
    const held = await gateway.ask({ type: 'stats' }, 'stats');
    const runs = Promise.all(loads.map((load) => load.ask({ type: 'run', heartbeatMs: mode.heartbeatMs, phaseMs: PHASE_MS }, 'ran')));
    // Dispatches spread over the middle half of the phase, each to a random connected device.
    await sleep(PHASE_MS / 4);
    const targets = Array.from({ length: DISPATCHES }, () => devices[Math.floor(Math.random() * devices.length)].deviceId);
    const dispatched = await gateway.ask({ type: 'dispatch', deviceIds: targets, perSecond: DISPATCHES / (PHASE_MS / 2000) }, 'dispatched');
    const ran = await runs;
    const after = await gateway.ask({ type: 'stats' }, 'stats');
    const phaseSeconds = Math.max(...ran.map((r) => r.elapsedMs)) / 1000;
    const rtts = ran.flatMap((r) => r.rtts);
    return {
      mode,
      workers,
      perProcessRss: held.perProcess.map((p) => p.rss),
      streams: devices.length,
      live: held.live,
      openFailures: opened.reduce((a, o) => a + o.failures, 0),
      openMs,
      idleRss: idle.rss,
      heldRss: held.rss,
      perStream: (held.rss - idle.rss) / devices.length,
      heapPerStream: (held.heap - idle.heap) / devices.length,
      externalPerStream: (held.external - idle.external) / devices.length,
      hb: summarize(rtts),
      hbRate: rtts.length / phaseSeconds,
      hbFailures: ran.reduce((a, r) => a + r.failures, 0),
      oneWay: summarize(ran.flatMap((r) => r.dispatch)),
      roundTrip: summarize(dispatched.rtts),
      dispatchFailures: dispatched.failures,
      gatewayCpu: (after.cpuUs - held.cpuUs) / 1e6 / phaseSeconds,
      loadCpu: ran.map((r) => r.cpuUs / 1e6 / (r.elapsedMs / 1000)),
    };
  } finally {
    for (const load of loads) load.kill();
    // A clean stop: a killed pool's workers would still be writing the state directory while it is removed.
    const exited = new Promise((resolve) => {
      if (gateway.proc.exitCode !== null || gateway.proc.signalCode !== null) resolve();
      else gateway.proc.once('exit', resolve);
    });
    if (gateway.proc.connected) gateway.proc.send({ type: 'stop' });
    const late = setTimeout(() => gateway.kill(), 5_000);
    await exited;
    clearTimeout(late);
  }
}

async function dispatchSection() {
  const max = STREAM_COUNTS[STREAM_COUNTS.length - 1];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-dispatch-'));
  tempRoots.push(dir);
  const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
  const t0 = performance.now();
  const devices = await pairDevicesInState(admin, max);
  await admin.close();
  console.log(`_${fmtNum(max)} devices paired into the state directory in ${fmtNum((performance.now() - t0) / 1000, 1)} s_\n`);
  const rows = [];
  for (const n of STREAM_COUNTS) for (const mode of MODES) for (const w of WORKERS) rows.push(await runMode(dir, devices.slice(0, n), mode, w));
  const baselineOf = (r) => rows.find((b) => b.streams === r.streams && b.mode === r.mode && b.workers === WORKERS[0]);
  const ratio = (value, base) => (base > 0 ? `${fmtNum(value / base, 2)}×` : '–');
  const pct = (x) => `${fmtNum(x * 100)} %`;
  printTable({
    title: `Dispatch latency and heartbeats (workers ${WORKERS.join(' vs ')}), ${fmtNum(DISPATCHES)} dispatches over ${fmtNum(PHASE_MS / 2000)} s in a ${fmtNum(PHASE_MS / 1000)} s phase; ${LOAD_PROCS} load-generator processes`,
    columns: [
      { key: 'streams', label: 'streams' },
      { key: 'mode', label: 'mode', align: 'left' },
      { key: 'workers', label: 'workers' },
      { key: 'per', label: 'RSS per stream' },
      { key: 'heap', label: 'of it JS heap + external' },
      { key: 'rss', label: 'gateway RSS' },
      { key: 'd50', label: 'dispatch p50' },
      { key: 'd99', label: 'dispatch p99' },
      { key: 'r99', label: 'call round trip p99' },
      { key: 'rate', label: 'heartbeats/s' },
      { key: 'h50', label: 'heartbeat RTT p50' },
      { key: 'h99', label: 'heartbeat RTT p99' },
      { key: 'h99x', label: `p99 vs ${WORKERS[0]} worker${WORKERS[0] === 1 ? '' : 's'}` },
      { key: 'cpu', label: 'gateway CPU' },
      { key: 'load', label: 'load-gen CPU' },
      { key: 'fail', label: 'failed (open/hb/dispatch)' },
    ],
    rows: rows.map((r) => ({
      streams: fmtNum(r.streams),
      mode: r.mode.label,
      workers: fmtNum(r.workers),
      per: `${fmtNum(r.perStream / 1024, 1)} KiB`,
      heap: `${fmtNum(r.heapPerStream / 1024, 1)} + ${fmtNum(r.externalPerStream / 1024, 1)} KiB`,
      rss: r.perProcessRss.length > 1 ? `${fmtMiB(r.heldRss)} (${r.perProcessRss.map(fmtMiB).join(' + ')})` : fmtMiB(r.heldRss),
      d50: fmtMs(r.oneWay.p50),
      d99: fmtMs(r.oneWay.p99),
      r99: fmtMs(r.roundTrip.p99),
      rate: fmtOps(r.hbRate),
      h50: fmtMs(r.hb.p50),
      h99: fmtMs(r.hb.p99),
      h99x: ratio(r.hb.p99, baselineOf(r)?.hb.p99 ?? 0),
      cpu: pct(r.gatewayCpu),
      load: r.loadCpu.map(pct).join(' + '),
      fail: `${r.openFailures + r.streams - r.live}/${r.hbFailures}/${r.dispatchFailures}`,
    })),
    notes: [
      'dispatch = queued in the gateway (executeCapability) → the dispatch read by the node process (both clocks: performance.timeOrigin + now() on one machine)',
      'call round trip = queued → the node\'s capability.result completed the call, measured in the gateway alone',
      'RSS per stream = (gateway RSS with the streams held, after GC − RSS before any connection) / streams, in the gateway child',
      'CPU: the gateway child and each load generator measure their own (process.cpuUsage) over the phase; 100 % = one core',
      'workers > 1: the gateway child is the primary of a worker pool on one port (node:cluster round robin); RSS and CPU are the sums over the primary and its workers (RSS in brackets: primary + each worker), dispatches are relayed to the worker holding the stream',
    ],
  });
}

try {
  await section('Pushed dispatch vs heartbeat answers', dispatchSection);
} finally {
  for (const c of children) c.kill('SIGKILL');
  for (const dir of tempRoots) await rm(dir, { recursive: true, force: true, maxRetries: 5 });
}
process.exit(0);
