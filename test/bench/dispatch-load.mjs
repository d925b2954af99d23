// Child process of dispatch.bench.mjs: a load generator that holds a slice of the node streams (one mTLS connection
// and device certificate each), heartbeats them, answers every dispatch at once with a capability.result, and
// reports its samples and its own CPU over the IPC channel.
//   ← {type:'open', devices, listen, caCertificatePem, push}   → {type:'opened', failures}
//   ← {type:'run', heartbeatMs, phaseMs}                        → {type:'ran', rtts, dispatch, failures, cpuUs, elapsedMs}
//   ← {type:'close'}                                            → {type:'closed'}
// Heartbeat RTT: write → the answer to that event (answers come in order; pushed dispatches have reason "dispatch"
// and are not answers). Dispatch latency: the gateway's queued_at (its wall clock) → received here (ours): the same
// machine's clock, read through performance.timeOrigin + performance.now() on both sides.
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../dist/main/rpc/tls-client.js';

const ISOLATED = { 'grpc.use_local_subchannel_pool': 1 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const wallNow = () => performance.timeOrigin + performance.now();
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

let streams = [];
let dispatchLatencies = [];
let failures = 0;

function openStream(listen, caCertificatePem, device, push) {
  const client = createNodeServiceClient(
    listen,
    createGatewayChannelCredentials({ caCertificatePem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
    ISOLATED,
  );
  const call = client.StreamNodeEvents();
  /** One entry per event written, in order: the answer's callback (null for events nobody waits on). */
  const waiters = [];
  let failed = false;
  const event = (name, payload, first) => ({
    v: 1,
    device_id: { ulid: device.deviceId },
    event_name: name,
    payload_json: Buffer.from(JSON.stringify(payload)),
    ...(first && push ? { push_dispatch: true } : {}),
  });
  const write = (name, payload, onAnswer, first = false) => {
    waiters.push(onAnswer);
    call.write(event(name, payload, first));
  };
  call.on('data', (response) => {
    const dispatch = response.dispatch;
    if (dispatch !== null && (dispatch.request_id?.ulid ?? '') !== '') {
      const input = JSON.parse(Buffer.from(dispatch.input_json).toString('utf8'));
      dispatchLatencies.push(wallNow() - input.queued_at);
      write('capability.result', { request_id: dispatch.request_id.ulid, success: true, output_json: null }, null);
    }
    if (response.reason !== 'dispatch') waiters.shift()?.(null);
  });
  call.on('error', (error) => {
    failed = true;
    for (const w of waiters.splice(0)) w?.(error);
  });
  return {
    opened: new Promise((resolve) => {
      write('node.started', {}, resolve, true);
    }),
    roundTrip: () =>
      new Promise((resolve) => {
        if (failed) return resolve(new Error('stream failed'));
        const t = performance.now();
        write('node.heartbeat', {}, (error) => resolve(error ?? performance.now() - t));
      }),
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

async function run(heartbeatMs, phaseMs) {
  const rtts = [];
  dispatchLatencies = [];
  failures = 0;
  const cpu0 = cpuUs();
  const start = performance.now();
  const deadline = start + phaseMs;
  await Promise.all(
    streams.map(async (stream, i) => {
      // Staggered evenly over one interval, as independent nodes would be.
      await sleep((i * heartbeatMs) / streams.length);
      for (let next = performance.now(); next < deadline; next += heartbeatMs) {
        await sleep(Math.max(0, next - performance.now()));
        const result = await stream.roundTrip();
        if (typeof result !== 'number') {
          failures++;
          return;
        }
        rtts.push(result);
      }
    }),
  );
  return { rtts, dispatch: dispatchLatencies, failures, cpuUs: cpuUs() - cpu0, elapsedMs: performance.now() - start };
}

process.on('message', (message) => {
  if (message.type === 'open') {
    void (async () => {
      let openFailures = 0;
      for (let i = 0; i < message.devices.length; i += 50) {
        const batch = message.devices.slice(i, i + 50).map((d) => openStream(message.listen, message.caCertificatePem, d, message.push));
        const results = await Promise.all(batch.map((s) => s.opened));
        openFailures += results.filter((r) => r !== null).length;
        streams.push(...batch);
      }
      process.send({ type: 'opened', failures: openFailures });
    })();
  } else if (message.type === 'run') {
    void run(message.heartbeatMs, message.phaseMs).then((result) => process.send({ type: 'ran', ...result }));
  } else if (message.type === 'close') {
    for (const s of streams) s.close();
    streams = [];
    process.send({ type: 'closed' });
  }
});
process.on('disconnect', () => process.exit(0));
