// Benchmarks of PIN pairing v2's cryptography (issue 14), against baselines measured in the same run:
//   1. SPAKE2+ cost per pairing on each side (prover = device, verifier = gateway), against one P-256 ECDH in
//      node:crypto and one @noble/curves P-256 constant-time scalar multiplication;
//   2. the PIN password hash (scrypt N=32768, r=8, p=1, 80 bytes), ours (@noble/hashes) against node:crypto's scrypt;
//   3. a whole PIN v2 pairing (PIN typed → paired, automatic approval) against a QR pairing, interleaved on one
//      gateway over TLS on 127.0.0.1 (target: PIN v2 p50 ≤ 1.2× QR p50).
// Run `npm run bench` (builds, then runs every bench) or `npm run build && node --expose-gc test/bench/run.mjs pake`.
// Options: --only=spake,pinhash,pairing (sections); --pairings=N (timed pairings per method, default 20).
import { createECDH, diffieHellman, generateKeyPairSync, randomBytes, scryptSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';

import { pinHashInput, PIN_HASH_SCRYPT, pinPasswordHash, pinPasswordHashAsync, pinVerifier } from '../../dist/main/core/pin-hash.js';
import { computeW0W1, proverFinish, proverStart, registration, verifierFinish, verifierRespond } from '../../dist/main/core/spake2plus.js';

import { parsePairingUri } from '../../dist/main/core/pairing-uri.js';
import { DeviceStore } from '../../dist/main/device/device-store.js';
import { pairDevice } from '../../dist/main/device/pairing-client.js';
import { Gateway } from '../../dist/main/gateway/gateway.js';
import { pinPasswordHashNative, pinProverSecretNative } from '../../dist/main/device/pin-secret.js';
import { MemoryKeychain } from '../../dist/main/store/keychain.js';

import { collectGarbage, compareLatency, compareThroughput, fmtMs, fmtOps, fmtRatio, fmtUs, printMachineInfo, printTable, section, summarize } from './lib.mjs';

const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const only = (option('only') ?? 'spake,pinhash,pairing').split(',');
const PAIRINGS = Number(option('pairings') ?? 20);
const PAIRING_WARMUP = 3;

if (process.env.PALYRA_BENCH_CHILD !== '1') {
  console.log('# PIN pairing v2 (SPAKE2+) benchmarks\n');
  printMachineInfo();
}

const ctx = {
  context: new TextEncoder().encode('palyra-pin-pairing-v2 bench context, about as long as the real one'),
  idProver: new TextEncoder().encode('1SYW9X19J44MZG8MMM46WZA6WV'),
  idVerifier: randomBytes(32),
};
const secret = computeW0W1(randomBytes(80));
const record = registration(secret.w0, secret.w1);

/** Times only the prover's work (start + finish); the verifier's answer in between is untimed. */
function proverMeasure(minTimeMs) {
  let ops = 0;
  let ms = 0;
  while (ms < minTimeMs) {
    const t0 = performance.now();
    const { shareP, state } = proverStart(secret);
    const t1 = performance.now();
    const response = verifierRespond(record, shareP, ctx);
    const t2 = performance.now();
    proverFinish(state, response.shareV, response.confirmV, ctx);
    const t3 = performance.now();
    ms += t1 - t0 + (t3 - t2);
    ops += 1;
  }
  return Promise.resolve({ ops, ms });
}

/** Times only the verifier's work (respond + finish); the prover's messages are made untimed. */
function verifierMeasure(minTimeMs) {
  let ops = 0;
  let ms = 0;
  while (ms < minTimeMs) {
    const { shareP, state } = proverStart(secret);
    const t0 = performance.now();
    const response = verifierRespond(record, shareP, ctx);
    const t1 = performance.now();
    const { confirmP } = proverFinish(state, response.shareV, response.confirmV, ctx);
    const t2 = performance.now();
    verifierFinish(response.state, confirmP);
    const t3 = performance.now();
    ms += t1 - t0 + (t3 - t2);
    ops += 1;
  }
  return Promise.resolve({ ops, ms });
}

function bothSides() {
  const { shareP, state } = proverStart(secret);
  const response = verifierRespond(record, shareP, ctx);
  const { confirmP } = proverFinish(state, response.shareV, response.confirmV, ctx);
  verifierFinish(response.state, confirmP);
}

async function spakeSection() {
  // Baselines: what one ECDH costs in OpenSSL (node:crypto, the KeyObject path and the raw createECDH path), and what
  // one constant-time P-256 scalar multiplication costs in the library SPAKE2+ runs on.
  const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const peerPublic = createECDH('prime256v1');
  peerPublic.generateKeys();
  const peerRaw = peerPublic.getPublicKey();
  const scalar = BigInt(`0x${randomBytes(32).toString('hex')}`) % (p256.Point.CURVE().n - 1n) + 1n;
  const point = p256.Point.BASE.multiply(12345n);

  const cases = [
    { name: 'ecdh:node', run: () => diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }), batch: 8 },
    { name: 'ecdh:node-raw', run: () => ecdh.computeSecret(peerRaw), batch: 8 },
    { name: 'mul:noble', run: () => point.multiply(scalar), batch: 4 },
    { name: 'prover', measure: proverMeasure },
    { name: 'verifier', measure: verifierMeasure },
    { name: 'both', run: bothSides },
  ];
  const r = await compareThroughput(cases, { runs: 5, warmupRuns: 1, minTimeMs: 300 });
  const ops = (key) => r.get(key).opsPerSec;
  // Ratio columns: how many baseline operations one row costs (time per row op / time per baseline op).
  const row = (operation, key) => ({
    operation,
    ops: fmtOps(ops(key)),
    per: fmtUs(1000 / ops(key)),
    vsEcdh: fmtRatio(ops('ecdh:node'), ops(key)),
    vsMul: fmtRatio(ops('mul:noble'), ops(key)),
  });
  printTable({
    title: '1. SPAKE2+ cost per pairing, each side',
    columns: [
      { key: 'operation', label: 'operation' },
      { key: 'ops', label: 'ops/s (median)' },
      { key: 'per', label: 'per op' },
      { key: 'vsEcdh', label: '× one node:crypto ECDH' },
      { key: 'vsMul', label: '× one noble scalar mult' },
    ],
    rows: [
      row('baseline: P-256 ECDH, node:crypto diffieHellman (KeyObjects)', 'ecdh:node'),
      row('baseline: P-256 ECDH, node:crypto createECDH.computeSecret (raw point)', 'ecdh:node-raw'),
      row('baseline: P-256 scalar mult, @noble/curves Point.multiply (constant time)', 'mul:noble'),
      row('prover (device): proverStart + proverFinish', 'prover'),
      row('verifier (gateway): verifierRespond + verifierFinish', 'verifier'),
      row('both sides, one whole exchange', 'both'),
    ],
    notes: [
      'median of 5 interleaved runs of ≥ 300 ms each after 1 warm-up run; the ratio columns say how many baseline operations one row costs',
      'prover: 2 fixed-base + 3 variable-base multiplications, 1 share decode; verifier: 2 fixed-base + 3 variable-base, 2 decodes (shareP, L); each side 1 SHA-256 of a ~570-byte transcript, 2 HKDF, 2 HMAC',
      'only each side\'s own calls are timed (the peer\'s messages are produced between the timed parts)',
    ],
  });
}

async function pinHashSection() {
  const salt = randomBytes(16);
  const input = Buffer.from(pinHashInput('655376'));
  const nodeOpts = { N: PIN_HASH_SCRYPT.N, r: PIN_HASH_SCRYPT.r, p: PIN_HASH_SCRYPT.p, maxmem: 64 * 1024 * 1024 };
  const r = await compareLatency(
    [
      { name: 'node', op: () => scryptSync(input, salt, PIN_HASH_SCRYPT.dkLen, nodeOpts) },
      { name: 'ours', op: () => pinPasswordHash('655376', salt) },
      { name: 'ours-async', op: () => pinPasswordHashAsync('655376', salt) },
      { name: 'native', op: () => pinPasswordHashNative('655376', salt) },
      { name: 'mint', op: () => pinVerifier('655376') },
    ],
    { rounds: 4, perRound: 3, warmup: 2 },
  );
  const row = (operation, key) => ({
    operation,
    p50: fmtMs(r.get(key).p50),
    max: fmtMs(r.get(key).max),
    ratio: key === 'node' ? '1.00× (baseline)' : fmtRatio(r.get(key).p50, r.get('node').p50),
  });
  printTable({
    title: '2. PIN password hash (scrypt N=32768, r=8, p=1, dkLen=80; 32 MiB)',
    columns: [
      { key: 'operation', label: 'operation' },
      { key: 'p50', label: 'p50' },
      { key: 'max', label: 'max' },
      { key: 'ratio', label: 'p50 / node:crypto' },
    ],
    rows: [
      row('baseline: node:crypto scryptSync (OpenSSL)', 'node'),
      row('device: pinPasswordHash (@noble/hashes scrypt, sync)', 'ours'),
      row('device: pinPasswordHashAsync (yields to the event loop)', 'ours-async'),
      row('device: pinPasswordHashNative (node:crypto scrypt on the thread pool; what pairing uses)', 'native'),
      row('gateway: pinVerifier (mint: salt + scrypt + w1·P)', 'mint'),
    ],
    notes: [
      `${4 * 3} timed calls per case in 4 interleaved rounds after 2 warm-up calls`,
      'the attacker\'s cost per PIN guess against a stolen record is at least the node:crypto row (native scrypt); 10⁶ PINs ≈ 10⁶ × that',
    ],
  });
}

/** One pairing from a fresh device directory to `paired`, approved as soon as the request is filed; ms. */
async function timedPairing(gateway, target, dirs) {
  const deviceDir = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-pake-dev-'));
  dirs.push(deviceDir);
  const store = await DeviceStore.open({ deviceDir, keychain: 'os', osKeychain: new MemoryKeychain() });
  const resolved = await target();
  const started = performance.now();
  await pairDevice({
    store,
    target: resolved.method === 'qr' ? { method: 'qr', uri: parsePairingUri(resolved.uri, { now: Date.now() }) } : resolved,
    kind: 'node',
    onProgress: (event) => {
      if (event.type === 'awaiting_approval') void gateway.admin.approve(event.request_id);
    },
  });
  return performance.now() - started;
}

async function pairingSection() {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-pake-gw-'));
  const dirs = [stateDir];
  const gateway = await Gateway.start({
    stateDir,
    listen: { host: '127.0.0.1', port: 0 },
    name: 'Bench Gateway',
    insecureNodeRpcOptOut: false,
    allowServerGeneratedKeys: false,
    allowLegacyDeviceIds: false,
    keychain: null,
  });
  // Minting is not timed (a PIN mint runs scrypt on the gateway once per code, before any device is involved).
  const qr = async () => {
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'bench', gatewayAddresses: [gateway.listen], gatewayName: 'Bench Gateway' });
    return { method: 'qr', uri: minted.uri };
  };
  const pin = async () => {
    const minted = await gateway.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'bench', gatewayAddresses: [], gatewayName: null });
    return { method: 'pin', pin: minted.code, gateway: gateway.listen };
  };
  const samples = { qr: [], pin: [], scrypt: [] };
  const salt = randomBytes(16);
  try {
    for (let i = 0; i < PAIRINGS + PAIRING_WARMUP; i++) {
      collectGarbage();
      // Interleaved, alternating which goes first, so drift on a shared machine hits both alike.
      const order = i % 2 === 0 ? ['qr', 'pin'] : ['pin', 'qr'];
      const round = {};
      for (const method of order) round[method] = await timedPairing(gateway, method === 'qr' ? qr : pin, dirs);
      const t0 = performance.now();
      await pinProverSecretNative('655376', salt);
      round.scrypt = performance.now() - t0;
      if (i >= PAIRING_WARMUP) for (const key of Object.keys(samples)) samples[key].push(round[key]);
    }
  } finally {
    await gateway.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
  const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]));
  const row = (what, key) => ({
    what,
    p50: fmtMs(s[key].p50),
    min: fmtMs(s[key].min),
    max: fmtMs(s[key].max),
    ratio: key === 'qr' ? '1.00× (baseline)' : fmtRatio(s[key].p50, s.qr.p50),
  });
  printTable({
    title: '3. PIN v2 pairing end to end vs a QR pairing (same gateway, same run)',
    columns: [
      { key: 'what', label: 'pairing' },
      { key: 'p50', label: 'p50' },
      { key: 'min', label: 'min' },
      { key: 'max', label: 'max' },
      { key: 'ratio', label: 'p50 / QR p50' },
    ],
    rows: [
      row('baseline: QR (pin check, Begin, hello + CSR, Complete, long-poll, certificate stored)', 'qr'),
      row('PIN v2 (+ BeginPinPairingSession, scrypt, ExchangePinPake, key confirmation)', 'pin'),
      row('of which: the device\'s password hash alone (native scrypt N=2^15, pinProverSecretNative)', 'scrypt'),
      { what: 'PIN v2 p50 − QR p50 − scrypt p50 (the protocol\'s own extra: 1 round trip, 2 state writes, SPAKE2+)', p50: fmtMs(s.pin.p50 - s.qr.p50 - s.scrypt.p50), min: '', max: '', ratio: fmtRatio(s.pin.p50 - s.scrypt.p50, s.qr.p50) },
    ],
    notes: [
      `${PAIRINGS} timed pairings per method after ${PAIRING_WARMUP} warm-up rounds, interleaved (order alternating per round); fresh device directory each, approval automatic`,
      'target: PIN v2 p50 ≤ 1.2× QR p50',
      `load avg at end ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} (2 cores shared with other work inflate both rows)`,
    ],
  });
}

if (only.includes('spake')) await section('1. SPAKE2+', spakeSection);
if (only.includes('pinhash')) await section('2. PIN password hash', pinHashSection);
if (only.includes('pairing')) await section('3. PIN v2 pairing end to end', pairingSection);
