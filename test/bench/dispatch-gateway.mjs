// Child process of dispatch.bench.mjs: a Gateway (dist/) on 127.0.0.1:0 over a prepared state directory, driven over
// the IPC channel: one process (argv[3] absent or 1, as the desktop app hosts it), or a pool of N worker processes
// (argv[3] = N, as `palyra gateway run --workers N`; main/gateway/workers.ts) with this process as their primary.
// It queues capability calls itself (one process: executeCapability; a pool: relayed to the worker holding the
// stream), so "queued" is stamped where the work is queued, and reports RSS and CPU (process.memoryUsage /
// process.cpuUsage: its own, plus every worker's for a pool), so the figures are the gateway's alone.
//   → {type:'ready', listen, caCertificatePem}
//   ← {type:'stats'}                                      → {type:'stats', rss, heap, external, cpuUs, live, perProcess}
//   ← {type:'dispatch', deviceIds, perSecond}            → {type:'dispatched', rtts, failures, cpuUs, elapsedMs}
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gateway } from '../../dist/main/gateway/gateway.js';
import { WorkerPool } from '../../dist/main/gateway/workers.js';

const stateDir = process.argv[2];
// The state was made with its key in a key file (no OS keychain); workers choose their keychain from the environment.
process.env.PALYRA_KEYCHAIN = 'file';
const workers = Number(process.argv[3] ?? 1);
const options = {
  stateDir,
  listen: { host: '127.0.0.1', port: 0 },
  name: null,
  insecureNodeRpcOptOut: false,
  allowServerGeneratedKeys: false,
  allowLegacyDeviceIds: false,
};
let gateway = null;
let pool = null;
if (workers > 1) {
  const exec = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../dist/main/cli/gateway-worker.js');
  pool = await WorkerPool.start({
    count: workers,
    options: { ...options, requirePake: false, disablePake: false, announce: false, database: null },
    log: () => undefined,
    exec,
  });
} else {
  gateway = await Gateway.start({ ...options, keychain: null, log: () => undefined });
}

const execute = (call) =>
  pool === null
    ? gateway.executeCapability({ deviceId: call.deviceId, capability: call.capability, input: call.input, timeoutMs: call.timeoutMs })
    : pool.execute({ deviceId: call.deviceId, capability: call.capability, inputJson: new TextEncoder().encode(JSON.stringify(call.input)), timeoutMs: call.timeoutMs });

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Queues one call per device id, `perSecond` of them a second; resolves with the queued → result round trips. */
async function dispatchAll(deviceIds, perSecond) {
  const rtts = [];
  let failures = 0;
  const cpu0 = cpuUs();
  const start = performance.now();
  const calls = [];
  for (let i = 0; i < deviceIds.length; i++) {
    await sleep(Math.max(0, start + (i * 1000) / perSecond - performance.now()));
    const t0 = performance.now();
    calls.push(
      execute({ deviceId: deviceIds[i], capability: 'echo', input: { queued_at: performance.timeOrigin + t0 }, timeoutMs: 30_000 })
        .then(
          () => rtts.push(performance.now() - t0),
          () => failures++,
        ),
    );
  }
  await Promise.all(calls);
  return { rtts, failures, cpuUs: cpuUs() - cpu0, elapsedMs: performance.now() - start };
}

async function stats() {
  globalThis.gc?.();
  const memory = process.memoryUsage();
  const own = { rss: memory.rss, heap: memory.heapUsed, external: memory.external, cpuUs: cpuUs(), live: gateway?.liveNodes().size ?? 0 };
  const perProcess = [own, ...(pool === null ? [] : (await pool.stats()).values())];
  const sum = (key) => perProcess.reduce((a, p) => a + p[key], 0);
  return { rss: sum('rss'), heap: sum('heap'), external: sum('external'), cpuUs: sum('cpuUs'), live: sum('live'), perProcess };
}

process.on('message', (message) => {
  if (message.type === 'stats') {
    void stats().then((s) => process.send({ type: 'stats', ...s }));
  } else if (message.type === 'dispatch') {
    void dispatchAll(message.deviceIds, message.perSecond).then((result) => process.send({ type: 'dispatched', ...result }));
  } else if (message.type === 'stop') {
    void (pool === null ? gateway.stop() : pool.stop(1_500)).then(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
const info = pool === null ? { listen: gateway.listen, caCertificatePem: gateway.caCertificatePem } : { listen: pool.info.listen, caCertificatePem: pool.info.caCertificatePem };
process.send({ type: 'ready', ...info });
