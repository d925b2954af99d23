// Child process of dispatch.bench.mjs: a Gateway (dist/) on 127.0.0.1:0 over a prepared state directory, driven over
// the IPC channel. It queues capability calls itself, so "queued" is stamped where the work is queued, and reports
// its own RSS and CPU (process.memoryUsage / process.cpuUsage), so the figures are the gateway's alone.
//   → {type:'ready', listen, caCertificatePem}
//   ← {type:'stats'}                                      → {type:'stats', rss, heap, external, cpuUs, live}
//   ← {type:'dispatch', deviceIds, perSecond}            → {type:'dispatched', rtts, failures, cpuUs, elapsedMs}
import { Gateway } from '../../dist/main/gateway/gateway.js';

const stateDir = process.argv[2];
const gateway = await Gateway.start({
  stateDir,
  listen: { host: '127.0.0.1', port: 0 },
  name: null,
  insecureNodeRpcOptOut: false,
  allowServerGeneratedKeys: false,
  allowLegacyDeviceIds: false,
  keychain: null,
  log: () => undefined,
});

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
      gateway
        .executeCapability({ deviceId: deviceIds[i], capability: 'echo', input: { queued_at: performance.timeOrigin + t0 }, timeoutMs: 30_000 })
        .then(
          () => rtts.push(performance.now() - t0),
          () => failures++,
        ),
    );
  }
  await Promise.all(calls);
  return { rtts, failures, cpuUs: cpuUs() - cpu0, elapsedMs: performance.now() - start };
}

process.on('message', (message) => {
  if (message.type === 'stats') {
    globalThis.gc?.();
    const memory = process.memoryUsage();
    process.send({ type: 'stats', rss: memory.rss, heap: memory.heapUsed, external: memory.external, cpuUs: cpuUs(), live: gateway.liveNodes().size });
  } else if (message.type === 'dispatch') {
    void dispatchAll(message.deviceIds, message.perSecond).then((result) => process.send({ type: 'dispatched', ...result }));
  } else if (message.type === 'stop') {
    void gateway.stop().then(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready', listen: gateway.listen, caCertificatePem: gateway.caCertificatePem });
