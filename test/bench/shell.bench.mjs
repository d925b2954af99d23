// Benchmarks of the app shell in browser mode (issue 5), against baselines measured in the same run:
//   1. cold start: spawn → ready line → page served → first IPC `device.status` answered, for `npm start`
//      (scripts/start.mjs, build skipped) and for browser-main directly; target ≤ 1 s to the answered status.
//      Baseline: a bare `node -e ''` process (spawn to exit).
//   2. IPC round trip over the WebSocket (p50/p99) for device.status (reads the device state and keychain) and
//      app.info (no I/O), against a bare WebSocket echo of the same bytes on the same machine.
// Run `npm run bench` (builds, then runs every bench) or `node --expose-gc test/bench/run.mjs shell`.
// Options: --only=start,rtt; --starts=N (cold starts per variant, default 7); --calls=N (per case, default 2000).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';

import { startBrowserHost } from '../../dist/main/app/browser-host.js';
import { DesktopServices } from '../../dist/main/app/services.js';
import { MemoryKeychain } from '../../dist/main/store/keychain.js';

import { compareLatency, fmtMs, fmtRatio, fmtUs, median, printTable, section, settle } from './lib.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const option = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const only = option('only', 'start,rtt').split(',');
const STARTS = Number(option('starts', '7'));
const CALLS = Number(option('calls', '2000'));
const START_TARGET_MS = 1000;

const now = () => performance.now();

/** The environment of a child: no inherited PALYRA_* settings, the key file, no build. */
function childEnv(userData) {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('PALYRA_'));
  return { ...Object.fromEntries(inherited), PALYRA_USER_DATA_DIR: userData, PALYRA_KEYCHAIN: 'file', PALYRA_SKIP_BUILD: '1' };
}

function getPage(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`page: HTTP ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/** A client of the browser-mode host: authenticate with the automation credential, then `call(channel)` resolves with the envelope. */
function connect(port, credential) {
  const origin = `http://127.0.0.1:${port}`;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ipc`, { origin, perMessageDeflate: false });
  const pending = new Map();
  let nextId = 1;
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
    ws.once('open', () => ws.send(JSON.stringify({ type: 'auth', credential })));
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === 'ready') {
        resolve({
          call(channel, args = {}) {
            const id = String(nextId++);
            ws.send(JSON.stringify({ id, channel, args }));
            return new Promise((r) => pending.set(id, r));
          },
          close() {
            ws.terminate();
          },
        });
      } else if (message.id !== undefined) {
        pending.get(message.id)?.(message.envelope);
        pending.delete(message.id);
      }
    });
  });
}

/** One cold start: times (ms since spawn) of the ready line, the served page and the answered device.status. */
async function coldStart(entry) {
  const userData = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-shell-'));
  const t0 = now();
  const child = spawn(process.execPath, [entry], { cwd: repoRoot, env: childEnv(userData), stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    const url = await new Promise((resolve, reject) => {
      let buffered = '';
      child.stdout.setEncoding('utf8').on('data', (chunk) => {
        buffered += chunk;
        for (const line of buffered.split('\n')) {
          if (line.startsWith('{"event":"browser.ready"')) resolve(JSON.parse(line).url);
        }
      });
      void exited.then((code) => reject(new Error(`${entry} exited (${code}) before it was ready`)));
    });
    const ready = now() - t0;
    const parsed = new URL(url);
    await getPage(`${parsed.origin}/`);
    const page = now() - t0;
    // The credential file is written before the ready line.
    const { credential } = JSON.parse(await readFile(path.join(userData, 'browser-session.json'), 'utf8'));
    const client = await connect(Number(parsed.port), credential);
    const envelope = await client.call('device.status');
    const status = now() - t0;
    if (!envelope.ok) throw new Error(`device.status failed: ${envelope.error.code}`);
    client.close();
    return { ready, page, status };
  } finally {
    child.kill('SIGTERM');
    await exited;
    await rm(userData, { recursive: true, force: true });
  }
}

async function bareNode() {
  const t0 = now();
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return now() - t0;
}

async function startSection() {
  const variants = [
    { name: 'npm start (scripts/start.mjs, no Electron, build skipped)', entry: 'scripts/start.mjs' },
    { name: 'browser-main directly', entry: 'dist/main/app/browser-main.js' },
  ];
  const samples = new Map(variants.map((v) => [v.name, []]));
  const baseline = [];
  // One warm-up of each (disk cache), then interleaved runs.
  for (const v of variants) await coldStart(v.entry);
  await bareNode();
  for (let i = 0; i < STARTS; i++) {
    baseline.push(await bareNode());
    for (const v of variants) {
      await settle();
      samples.get(v.name).push(await coldStart(v.entry));
    }
  }
  const base = median(baseline);
  const rows = [{ variant: 'baseline: `node -e ""` (spawn → exit)', ready: '', page: '', status: fmtMs(base), worst: fmtMs(Math.max(...baseline)), ratio: '1.00× (baseline)', target: '' }];
  for (const v of variants) {
    const list = samples.get(v.name);
    const status = median(list.map((s) => s.status));
    rows.push({
      variant: v.name,
      ready: fmtMs(median(list.map((s) => s.ready))),
      page: fmtMs(median(list.map((s) => s.page))),
      status: fmtMs(status),
      worst: fmtMs(Math.max(...list.map((s) => s.status))),
      ratio: fmtRatio(status, base),
      target: status <= START_TARGET_MS ? `met (≤ ${START_TARGET_MS} ms)` : `MISSED (> ${START_TARGET_MS} ms)`,
    });
  }
  printTable({
    title: '1. Cold start to a served page and the first IPC answer',
    columns: [
      { key: 'variant', label: 'variant' },
      { key: 'ready', label: 'ready line' },
      { key: 'page', label: 'page served' },
      { key: 'status', label: 'device.status answered (median)' },
      { key: 'worst', label: 'worst' },
      { key: 'ratio', label: '× bare node' },
      { key: 'target', label: 'target', align: 'left' },
    ],
    rows,
    notes: [
      `median of ${STARTS} interleaved cold starts per variant after one warm-up each; every start uses a fresh user-data dir (PALYRA_KEYCHAIN=file), so the device dir is created and the first status reads an empty device`,
      'times are from spawn; "page served" = GET / answered 200; "device.status answered" = session file read, WebSocket upgraded, credential accepted, device.status envelope received',
    ],
  });
}

async function rttSection() {
  const userData = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-rtt-'));
  const services = await DesktopServices.open({ userDataDir: userData, keychain: 'os', osKeychain: new MemoryKeychain(), gatewayKeychain: null, mode: 'browser' });
  const host = await startBrowserHost({ services, rendererDir: path.join(userData, 'none') });
  const client = await connect(host.port, host.credential);
  // The echo server answers with the bytes of a real device.status reply, so both cases move the same payloads.
  const sampleReply = JSON.stringify({ id: '1', envelope: await client.call('device.status') });
  const sampleRequest = JSON.stringify({ id: '1', channel: 'device.status', args: {} });
  const echo = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise((resolve) => echo.once('listening', resolve));
  echo.on('connection', (ws) => ws.on('message', () => ws.send(sampleReply)));
  const echoClient = new WebSocket(`ws://127.0.0.1:${echo.address().port}`, { perMessageDeflate: false });
  await new Promise((resolve) => echoClient.once('open', resolve));
  let echoWaiter = null;
  echoClient.on('message', () => echoWaiter?.());
  const echoCall = () =>
    new Promise((resolve) => {
      echoWaiter = resolve;
      echoClient.send(sampleRequest);
    });

  try {
    const perRound = 50;
    const rounds = Math.max(1, Math.round(CALLS / perRound));
    const r = await compareLatency(
      [
        { name: 'echo', op: () => echoCall() },
        { name: 'device.status', op: () => client.call('device.status') },
        { name: 'app.info', op: () => client.call('app.info') },
      ],
      { rounds, perRound, warmup: 200 },
    );
    const base = r.get('echo');
    const row = (label, key) => {
      const x = r.get(key);
      return {
        call: label,
        p50: fmtUs(x.p50),
        p99: fmtUs(x.p99),
        mean: fmtUs(x.mean),
        ratio50: key === 'echo' ? '1.00× (baseline)' : fmtRatio(x.p50, base.p50),
        ratio99: key === 'echo' ? '1.00× (baseline)' : fmtRatio(x.p99, base.p99),
      };
    };
    printTable({
      title: '2. IPC round trip over the browser-mode WebSocket',
      columns: [
        { key: 'call', label: 'call' },
        { key: 'p50', label: 'p50' },
        { key: 'p99', label: 'p99' },
        { key: 'mean', label: 'mean' },
        { key: 'ratio50', label: 'p50 × echo' },
        { key: 'ratio99', label: 'p99 × echo' },
      ],
      rows: [
        row('baseline: bare `ws` echo of the same bytes', 'echo'),
        row('device.status (router + schema checks + agent.status: keychain probe, state file read)', 'device.status'),
        row('app.info (router + schema checks, no I/O)', 'app.info'),
      ],
      notes: [
        `${rounds} interleaved rounds of ${perRound} sequential calls per case (${rounds * perRound} samples each) after 200 warm-up calls; client and host in this one process over loopback`,
        'the gap between echo and app.info is the host + router + zod cost; between app.info and device.status, the device agent reading its dir',
      ],
    });
  } finally {
    client.close();
    echoClient.terminate();
    await new Promise((resolve) => echo.close(resolve));
    await host.close();
    await services.dispose();
    await rm(userData, { recursive: true, force: true });
  }
}

if (only.includes('start')) await section('Shell: cold start (browser mode)', startSection);
if (only.includes('rtt')) await section('Shell: IPC round trip', rttSection);
