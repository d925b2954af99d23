// Benchmark of LAN discovery (issue 13): from "start browsing" to "the gateway is listed" (p50/p90), for a gateway
// announced in-process, against baselines measured in the same run:
//   - a UDP round trip on loopback (dgram echo): the floor of any request/answer over the network stack;
//   - one raw multicast-DNS question/answer (multicast-dns, no records of ours): the floor of mDNS itself.
// Multicast never touches this machine's interfaces: the file re-runs itself inside a private network namespace
// (`unshare -n`, loopback with multicast routed over it). Needs root (or user namespaces), unshare and ip.
// Run `npm run bench` or `node --expose-gc test/bench/run.mjs discovery`. Options: --rounds=N (default 30).
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import makeMdns from 'multicast-dns';

import { fmtMs, fmtRatio, median, percentile, printTable, section } from './lib.mjs';

const option = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const ROUNDS = Number(option('rounds', '30'));
const IN_NETNS = process.env.PALYRA_BENCH_NETNS === '1';
const now = () => performance.now();

if (!IN_NETNS) {
  // Re-run inside a fresh network namespace; its network is set up there before anything multicasts.
  const probe = spawnSync('unshare', ['-n', 'true']);
  if (probe.status !== 0) {
    console.log('## Discovery\n\nskipped: cannot create a network namespace (needs root, unshare and ip); DNS-SD is only measured inside one.\n');
    process.exit(0);
  }
  const self = fileURLToPath(import.meta.url);
  const child = spawn('unshare', ['-n', process.execPath, ...process.execArgv, self, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, PALYRA_BENCH_NETNS: '1' },
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
} else {
  for (const args of [
    ['link', 'set', 'lo', 'up'],
    ['link', 'set', 'lo', 'multicast', 'on'],
    ['route', 'add', '224.0.0.0/4', 'dev', 'lo'],
  ]) {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) {
      console.error(`ip ${args.join(' ')} failed: ${r.stderr}`);
      process.exit(1);
    }
  }
  await main();
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: median(sorted), p90: percentile(sorted, 90) };
}

async function udpRoundTrips(rounds) {
  const server = dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
  await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve));
  const client = dgram.createSocket('udp4');
  await new Promise((resolve) => client.bind(0, '127.0.0.1', resolve));
  const port = server.address().port;
  const samples = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = now();
    await new Promise((resolve) => {
      client.once('message', resolve);
      client.send(Buffer.from('ping'), port, '127.0.0.1');
    });
    samples.push(now() - t0);
  }
  client.close();
  server.close();
  return samples;
}

async function rawMdnsRoundTrips(rounds) {
  const open = () =>
    new Promise((resolve) => {
      const m = makeMdns({ reuseAddr: true, loopback: true });
      m.once('ready', () => resolve(m));
    });
  const responder = await open();
  responder.on('query', (q) => {
    if (q.questions.some((x) => x.name === 'bench.local')) responder.respond([{ name: 'bench.local', type: 'A', ttl: 1, data: '127.0.0.1' }]);
  });
  const asker = await open();
  const samples = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = now();
    await new Promise((resolve) => {
      const on = (r) => {
        if (r.answers.some((a) => a.name === 'bench.local')) {
          asker.off('response', on);
          resolve();
        }
      };
      asker.on('response', on);
      asker.query('bench.local', 'A');
    });
    samples.push(now() - t0);
  }
  await new Promise((resolve) => asker.destroy(resolve));
  await new Promise((resolve) => responder.destroy(resolve));
  return samples;
}

async function discoveryRounds(rounds) {
  const { GatewayAnnouncer, discoverGateways } = await import('../../dist/main/gateway/discovery.js');
  const announcer = await GatewayAnnouncer.start({
    name: 'Bench gateway',
    caPin: 'cmsLDWPeRKolDbDyOC8DJCHqpVTjiLkpF-k-mITZLzw',
    port: 7444,
    ips: ['127.0.0.1'],
    hostname: 'bench',
    protocolVersions: [1],
  });
  const samples = [];
  let missed = 0;
  for (let i = 0; i < rounds; i++) {
    const t0 = now();
    const found = await discoverGateways({ timeoutMs: 5_000, until: (gateways) => gateways.length > 0 });
    samples.push(now() - t0);
    if (found.length === 0) missed++;
  }
  await announcer.stop();
  return { samples, missed };
}

async function main() {
  await section('Discovery (DNS-SD inside a private network namespace)', async () => {
    const udp = stats(await udpRoundTrips(Math.max(ROUNDS, 200)));
    const mdns = stats(await rawMdnsRoundTrips(ROUNDS));
    const { samples, missed } = await discoveryRounds(ROUNDS);
    const listed = stats(samples);
    printTable({
      title: `Start browsing → gateway listed (${ROUNDS} rounds)`,
      columns: [
        { key: 'case', label: 'case' },
        { key: 'p50', label: 'p50' },
        { key: 'p90', label: 'p90' },
        { key: 'ratio', label: 'p50 vs UDP round trip' },
      ],
      rows: [
        { case: 'UDP round trip on loopback (baseline)', p50: fmtMs(udp.p50), p90: fmtMs(udp.p90), ratio: fmtRatio(udp.p50, udp.p50) },
        { case: 'raw mDNS question → answer (baseline)', p50: fmtMs(mdns.p50), p90: fmtMs(mdns.p90), ratio: fmtRatio(mdns.p50, udp.p50) },
        { case: 'discoverGateways → gateway listed', p50: fmtMs(listed.p50), p90: fmtMs(listed.p90), ratio: fmtRatio(listed.p50, udp.p50) },
      ],
      notes: [
        'discoverGateways includes opening and closing its mDNS socket (bind, multicast membership) every round.',
        `rounds where the gateway was not listed within 5 s: ${missed}`,
      ],
    });
  });
}
