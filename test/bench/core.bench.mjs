// Benchmarks of the identity core (issue 2), against baselines measured in the same run:
//   1. handshake throughput, ours (@noble) vs node:crypto doing the same maths;
//   2. client certificate issuance from a CSR vs a bare WebCrypto ECDSA P-256 signature;
//   3-5. state mutations, cold load and fingerprint lookups at 100 / 1 000 / 10 000 paired devices on a real
//        encrypted state directory, plus RSS after loading.
// Run `npm run bench` (builds, then runs every bench) or `node --expose-gc test/bench/run.mjs core`.
// Options: --only=handshake,issuance,mutations,load,lookup,rss (sections), --sizes=100,1000,10000.
import { execFile } from 'node:child_process';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign as nodeSign,
  timingSafeEqual,
  verify as nodeVerify,
} from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

import { toHex } from '../../dist/main/core/bytes.js';
import { CertificateAuthority, createCertificateAuthority } from '../../dist/main/core/certificate-authority.js';
import { certificateFingerprint, pemToDer } from '../../dist/main/core/certificates.js';
import { setCryptoBackend } from '../../dist/main/core/crypto.js';
import { createCertificateSigningRequest, parseAndVerifyCsr, verifyCsr } from '../../dist/main/core/csr.js';
import { nodeCryptoBackend } from '../../dist/main/platform/node-crypto.js';
import { derChildren } from '../../dist/main/core/der.js';
import {
  DeviceIdentity,
  generatePairingKeyExchange,
  identityFingerprint,
  X25519_COMMITMENT_DOMAIN,
  x25519Commitment,
} from '../../dist/main/core/device-identity.js';
import { buildDeviceHello, PAIRING_SIGNATURE_DOMAIN, TRANSCRIPT_CONTEXT_DOMAIN } from '../../dist/main/core/handshake.js';
import { deviceIdFromPublicKey, encodeCrockford128, newUlid, validateCanonicalId } from '../../dist/main/core/ids.js';
import { PairingSessionRegistry } from '../../dist/main/core/pairing-sessions.js';
import { encodePem } from '../../dist/main/core/pem.js';
import { SAS_DOMAIN } from '../../dist/main/core/sas.js';
import { generateP256KeyPair, importPrivateKeyPem, P256_SIGNING_ALGORITHM } from '../../dist/main/core/x509-keys.js';
import { IDENTITY_STATE_KEY, IdentityManager } from '../../dist/main/gateway/identity-manager.js';
import { applyIdentityOp, emptyIdentityState, identityStateFromJson, identityStateToJson } from '../../dist/main/gateway/identity-state.js';
import { FilesystemSecretStore } from '../../dist/main/store/fs-secret-store.js';
import { DEFAULT_COMPACT_EVERY, JournaledState } from '../../dist/main/store/state-journal.js';
import { withStateLock } from '../../dist/main/store/state-lock.js';
import { resolveStoreKey } from '../../dist/main/store/store-key.js';

import {
  collectGarbage,
  compareLatency,
  compareThroughput,
  fmtMiB,
  fmtMs,
  fmtNs,
  fmtNum,
  fmtOps,
  fmtRatio,
  fmtSig,
  fmtUs,
  median,
  printMachineInfo,
  printTable,
  section,
  settle,
  summarize,
  timeOnce,
} from './lib.mjs';

const thisFile = fileURLToPath(import.meta.url);
const option = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

// --- RSS probe mode: a fresh process that only loads a state directory (see rssSection) ---------------------------------

const probeDir = option('probe-rss');
if (probeDir !== undefined) {
  collectGarbage();
  const before = process.memoryUsage();
  const manager = await openManager(probeDir);
  // A loaded gateway also holds the fingerprint index: build it.
  manager.deviceIdForCertificateFingerprint('0'.repeat(64));
  collectGarbage();
  const after = process.memoryUsage();
  process.stdout.write(JSON.stringify({ before, after, devices: manager.listPairedDevices().length }));
  process.exit(0);
}

const only = option('only')?.split(',') ?? ['handshake', 'issuance', 'mutations', 'load', 'lookup', 'rss'];
const SIZES = (option('sizes') ?? '100,1000,10000').split(',').map(Number);

if (process.env.PALYRA_BENCH_CHILD !== '1') printMachineInfo();
console.log('# core.bench.mjs — identity core\n');

// --- shared helpers ------------------------------------------------------------------------------------------------

const PIN = '123456';
const CLIENT_KIND = 'desktop';

async function openManager(dir) {
  const { key } = await resolveStoreKey(dir, null);
  const store = await FilesystemSecretStore.open(dir, { key });
  return IdentityManager.open({ store, stateDir: dir, journalKey: key });
}

function randomVerifiedDevice() {
  const pub = randomBytes(32);
  return {
    deviceId: deviceIdFromPublicKey(pub),
    clientKind: CLIENT_KIND,
    identityFingerprint: identityFingerprint(pub),
    signingPublicKeyHex: toHex(pub),
  };
}

async function makeCsr(deviceId) {
  const keys = await generateP256KeyPair();
  return createCertificateSigningRequest({ keys, deviceId });
}

// =====================================================================================================================
// 1. Handshake: @noble (ours) vs node:crypto doing the same maths
// =====================================================================================================================

const utf8 = (s) => Buffer.from(s, 'utf8');
const PAIRING_DOMAIN = utf8(PAIRING_SIGNATURE_DOMAIN);
const TRANSCRIPT_DOMAIN = utf8(TRANSCRIPT_CONTEXT_DOMAIN);
const COMMIT_DOMAIN = utf8(X25519_COMMITMENT_DOMAIN);
const SAS_DOMAIN_BYTES = utf8(SAS_DOMAIN);
// The Ed25519 device key is imported once from its seed (PKCS#8); per-operation raw keys go through JWK, the
// fastest raw-key route node:crypto has (OpenSSL 3's DER decoders cost ~60 µs per SPKI and ~300 µs per PKCS#8 here).
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

const u32le = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const nodeSha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const rawPublic = (keyObject) => Buffer.from(keyObject.export({ format: 'jwk' }).x, 'base64url');
const okpPublic = (crv, raw) => createPublicKey({ key: { kty: 'OKP', crv, x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });

/** A fresh X25519 key pair: KeyObjects plus the raw public key the wire carries. */
function nodeX25519Generate() {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { key: privateKey, publicKey: rawPublic(publicKey) };
}

function nodeSignaturePayload(s, deviceId, proof) {
  return Buffer.concat([
    PAIRING_DOMAIN,
    u32le(s.protocolVersion),
    utf8(s.sessionId),
    s.challenge,
    s.gatewayEphemeralPublic,
    utf8(deviceId),
    utf8(s.clientKind),
    utf8(proof),
  ]);
}

function nodeTranscriptContext(s, deviceId) {
  return Buffer.concat([TRANSCRIPT_DOMAIN, utf8(s.sessionId), u32le(s.protocolVersion), utf8(deviceId), utf8(s.clientKind)]);
}

function nodeSas(mac) {
  return (nodeSha256(SAS_DOMAIN_BYTES, mac).readUInt32BE(0) % 1_000_000).toString().padStart(6, '0');
}

const isAllZero = (bytes) => bytes.every((b) => b === 0);

/** The device side with node:crypto: fresh X25519 key + commitment, then the hello (same steps as buildDeviceHello). */
const nodeDevice = {
  keyExchange() {
    const { key, publicKey } = nodeX25519Generate();
    return { privateKey: key, publicKey, commitment: nodeSha256(COMMIT_DOMAIN, publicKey) };
  },
  hello(identity, session, keyExchange) {
    // The same key check as buildDeviceHello; OpenSSL keeps the public point, so this is a copy, not a multiplication.
    if (!timingSafeEqual(rawPublic(createPublicKey(keyExchange.privateKey)), keyExchange.publicKey)) throw new Error('X25519 key mismatch');
    const challengeSignature = nodeSign(null, nodeSignaturePayload(session, identity.deviceId, PIN), identity.signingKey);
    const shared = diffieHellman({ privateKey: keyExchange.privateKey, publicKey: okpPublic('X25519', session.gatewayEphemeralPublic) });
    if (isAllZero(shared)) throw new Error('weak key exchange');
    const transcriptMac = Buffer.from(hkdfSync('sha256', shared, session.challenge, nodeTranscriptContext(session, identity.deviceId), 32));
    return {
      hello: {
        sessionId: session.sessionId,
        protocolVersion: session.protocolVersion,
        deviceId: identity.deviceId,
        clientKind: session.clientKind,
        proof: PIN,
        deviceSigningPublic: identity.signingPublicKey,
        deviceX25519Public: Buffer.from(keyExchange.publicKey),
        challengeSignature,
        transcriptMac,
      },
      sas: nodeSas(transcriptMac),
      transcriptHashHex: nodeSha256(transcriptMac).toString('hex'),
    };
  },
};

/** The gateway side with node:crypto: start + verify with the checks of PairingSessionRegistry, same order. */
class NodeGateway {
  sessions = new Map();

  start({ clientKind, method, now, deviceX25519Commitment }) {
    const { proof } = method;
    if (!/^[0-9]{6}$/.test(proof)) throw new Error('invalid proof');
    for (const [id, a] of this.sessions) if (a.session.expiresAtUnixMs <= now) this.sessions.delete(id);
    const { key, publicKey } = nodeX25519Generate();
    const session = {
      sessionId: newUlid(now),
      protocolVersion: 1,
      clientKind,
      method: { kind: 'pin' },
      gatewayEphemeralPublic: publicKey,
      challenge: randomBytes(32),
      expiresAtUnixMs: now + 300_000,
    };
    this.sessions.set(session.sessionId, { session, proof: utf8(proof), gatewayKey: key, commitment: Buffer.from(deviceX25519Commitment) });
    return session;
  }

  verify(hello, { now, isDeviceRevoked }) {
    validateCanonicalId(hello.deviceId);
    if (isDeviceRevoked(hello.deviceId)) throw new Error('device_revoked');
    const active = this.sessions.get(hello.sessionId);
    if (active === undefined) throw new Error('pairing_session_not_found');
    const { session } = active;
    if (now > session.expiresAtUnixMs) throw new Error('expired');
    if (hello.protocolVersion !== session.protocolVersion || hello.clientKind !== session.clientKind) throw new Error('mismatch');
    const fail = (code) => {
      this.sessions.delete(session.sessionId);
      throw new Error(code);
    };
    const proof = utf8(hello.proof);
    if (proof.length !== active.proof.length || !timingSafeEqual(proof, active.proof)) fail('invalid_pairing_proof');
    const signingKey = okpPublic('Ed25519', hello.deviceSigningPublic);
    const payload = nodeSignaturePayload(session, hello.deviceId, hello.proof);
    if (!nodeVerify(null, payload, signingKey, hello.challengeSignature)) fail('signature_verification_failed');
    if (!timingSafeEqual(nodeSha256(COMMIT_DOMAIN, hello.deviceX25519Public), active.commitment)) fail('transcript_verification_failed');
    if (encodeCrockford128(nodeSha256(hello.deviceSigningPublic).subarray(0, 16)) !== hello.deviceId) fail('legacy_device_id_refused');
    const shared = diffieHellman({ privateKey: active.gatewayKey, publicKey: okpPublic('X25519', hello.deviceX25519Public) });
    if (isAllZero(shared)) fail('weak_key_exchange');
    const mac = Buffer.from(hkdfSync('sha256', shared, session.challenge, nodeTranscriptContext(session, hello.deviceId), 32));
    if (!timingSafeEqual(mac, hello.transcriptMac)) fail('transcript_verification_failed');
    this.sessions.delete(session.sessionId);
    return {
      sessionId: session.sessionId,
      deviceId: hello.deviceId,
      identityFingerprint: nodeSha256(hello.deviceSigningPublic).toString('hex'),
      signingPublicKeyHex: Buffer.from(hello.deviceSigningPublic).toString('hex'),
      transcriptHashHex: nodeSha256(mac).toString('hex'),
      sas: nodeSas(mac),
    };
  }
}

/** Both implementations behind one shape, so the measuring code is shared. */
function handshakeImplementations() {
  const identity = DeviceIdentity.generate();
  const seed = identity.exportSeed();
  const nodeIdentity = {
    deviceId: identity.deviceId,
    signingKey: createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' }),
    signingPublicKey: Buffer.from(identity.signingPublicKey),
  };
  const ours = {
    name: '@noble (ours)',
    gateway: () => new PairingSessionRegistry({ startRateMax: 1e9 }),
    keyExchange() {
      const keyExchange = generatePairingKeyExchange();
      return { ...keyExchange, commitment: x25519Commitment(keyExchange.publicKey) };
    },
    hello: (session, kx) => buildDeviceHello({ identity, session, proof: PIN, keyExchange: kx }),
  };
  const node = {
    name: 'node:crypto',
    gateway: () => new NodeGateway(),
    keyExchange: () => nodeDevice.keyExchange(),
    hello: (session, kx) => nodeDevice.hello(nodeIdentity, session, kx),
  };
  return { ours, node };
}

const startInput = (commitment, now) => ({ clientKind: CLIENT_KIND, method: { kind: 'pin', proof: PIN }, now, deviceX25519Commitment: commitment });
const notRevoked = () => false;

/** Gateway throughput: batches of BATCH devices; only start (all) and verify (all) are timed, hello building is not. */
function gatewayMeasure(impl, batch = 16) {
  return (minTimeMs) => {
    let ops = 0;
    let ms = 0;
    while (ms < minTimeMs) {
      const gateway = impl.gateway();
      const now = Date.now();
      const devices = Array.from({ length: batch }, () => impl.keyExchange());
      const t0 = performance.now();
      const sessions = devices.map((d) => gateway.start(startInput(d.commitment, now)));
      const t1 = performance.now();
      const hellos = sessions.map((s, i) => impl.hello(s, devices[i]).hello);
      const t2 = performance.now();
      for (const hello of hellos) gateway.verify(hello, { now, isDeviceRevoked: notRevoked });
      const t3 = performance.now();
      ms += t1 - t0 + (t3 - t2);
      ops += batch;
    }
    return Promise.resolve({ ops, ms });
  };
}

/** One full pairing per direction, so a mismatch in the node:crypto rendition cannot go unnoticed. */
function crossCheck({ ours, node }) {
  const now = Date.now();
  for (const [device, gatewayImpl] of [[ours, node], [node, ours]]) {
    const gateway = gatewayImpl.gateway();
    const kx = device.keyExchange();
    const session = gateway.start(startInput(kx.commitment, now));
    const built = device.hello(session, kx);
    const verified = gateway.verify(built.hello, { now, isDeviceRevoked: notRevoked });
    if (verified.sas !== built.sas || verified.transcriptHashHex !== built.transcriptHashHex) {
      throw new Error(`cross-check failed: ${device.name} device vs ${gatewayImpl.name} gateway`);
    }
  }
}

/** `fn` run with crypto.ts on its node:crypto backend (what the CLI and the app install), then back on @noble. */
function onNodeBackend(fn) {
  return (...args) => {
    setCryptoBackend(nodeCryptoBackend);
    let out;
    try {
      out = fn(...args);
    } catch (error) {
      setCryptoBackend(null);
      throw error;
    }
    if (out !== null && typeof out?.then === 'function') return out.finally(() => setCryptoBackend(null));
    setCryptoBackend(null);
    return out;
  };
}

async function handshakeSection() {
  const impls = handshakeImplementations();
  const { ours, node } = impls;
  crossCheck(impls);

  const session = ours.gateway().start(startInput(randomBytes(32), Date.now()));
  const cases = [
    { name: 'device:ours', run: () => ours.hello(session, ours.keyExchange()) },
    { name: 'device:node', run: () => node.hello(session, node.keyExchange()) },
    { name: 'gateway:ours', measure: gatewayMeasure(ours) },
    { name: 'gateway:node', measure: gatewayMeasure(node) },
    { name: 'device:fast', run: onNodeBackend(() => ours.hello(session, ours.keyExchange())) },
    { name: 'gateway:fast', measure: onNodeBackend(gatewayMeasure(ours)) },
  ];
  const r = await compareThroughput(cases, { runs: 5, warmupRuns: 1, minTimeMs: 300 });
  const row = (operation, impl, key, baseKey) => ({
    operation,
    impl,
    ops: fmtOps(r.get(key).opsPerSec),
    per: fmtUs(1000 / r.get(key).opsPerSec),
    ratio: key === baseKey ? '1.00× (baseline)' : fmtRatio(r.get(key).opsPerSec, r.get(baseKey).opsPerSec),
  });
  printTable({
    title: '1. Handshake throughput',
    columns: [
      { key: 'operation', label: 'operation' },
      { key: 'impl', label: 'implementation', align: 'left' },
      { key: 'ops', label: 'ops/s (median)' },
      { key: 'per', label: 'per op' },
      { key: 'ratio', label: 'ours / node:crypto' },
    ],
    rows: [
      row('device hello (X25519 keygen + commitment + buildDeviceHello)', ours.name, 'device:ours', 'device:node'),
      row('', 'ours on the node:crypto backend (main process)', 'device:fast', 'device:node'),
      row('', node.name, 'device:node', 'device:node'),
      row('gateway start + verify (isDeviceRevoked: () => false)', ours.name, 'gateway:ours', 'gateway:node'),
      row('', 'ours on the node:crypto backend (main process)', 'gateway:fast', 'gateway:node'),
      row('', node.name, 'gateway:node', 'gateway:node'),
    ],
    notes: [
      'median of 5 interleaved runs of ≥ 300 ms each after 1 warm-up run; ratio > 1 means ours is faster',
      '"ours on the node:crypto backend": the same core code with crypto.ts routed to main/platform/node-crypto.ts (the byte-level strict checks stay in JS; what the CLI and the desktop app run)',
      'node:crypto rendition: Ed25519 via crypto.sign/verify with KeyObjects (device key imported once, peer keys per op via JWK), X25519 via generateKeyPairSync + crypto.diffieHellman, HKDF via hkdfSync, SHA-256 via createHash; ids, ULIDs and proof checks are the same code in both',
      'gateway: sessions started in batches of 16, then the batch verified; only start and verify are timed (the device hellos in between are not)',
      'cross-checked: a hello built by either implementation verifies on the other one with the same SAS and transcript hash',
    ],
  });

  // Where the time goes: the primitives one by one.
  const seed = randomBytes(32);
  const edPriv = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' });
  const edPubRaw = ed25519.getPublicKey(seed);
  const edPub = okpPublic('Ed25519', edPubRaw);
  const message = randomBytes(127); // the length of a hello's signature payload with a PIN and a 26-char session id
  const signature = ed25519.sign(message, seed);
  const xa = randomBytes(32);
  const xb = nodeX25519Generate();
  const xaKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: xa.toString('base64url'), x: Buffer.from(x25519.getPublicKey(xa)).toString('base64url') }, format: 'jwk' });
  const xbPub = okpPublic('X25519', xb.publicKey);
  const ikm = randomBytes(32);
  const salt = randomBytes(32);
  const info = randomBytes(81);
  const block = randomBytes(64);
  const prim = [
    ['Ed25519 sign (127 B)', () => ed25519.sign(message, seed), () => nodeSign(null, message, edPriv)],
    ['Ed25519 verify, strict (127 B)', () => ed25519.verify(signature, message, edPubRaw, { zip215: false }), () => nodeVerify(null, message, edPub, signature)],
    ['X25519 key generation (+ raw public key)', () => x25519.getPublicKey(randomBytes(32)), () => nodeX25519Generate()],
    ['raw public key → KeyObject (JWK import)', null, () => okpPublic('X25519', xb.publicKey)],
    ['X25519 shared secret', () => x25519.getSharedSecret(xa, xb.publicKey), () => diffieHellman({ privateKey: xaKey, publicKey: xbPub })],
    ['HKDF-SHA256 → 32 B', () => hkdf(sha256, ikm, salt, info, 32), () => hkdfSync('sha256', ikm, salt, info, 32)],
    ['SHA-256 (64 B)', () => sha256(block), () => nodeSha256(block)],
  ];
  const pr = await compareThroughput(
    prim.flatMap(([name, oursFn, nodeFn]) => [
      ...(oursFn === null ? [] : [{ name: `${name}:ours`, run: oursFn, batch: 8 }]),
      { name: `${name}:node`, run: nodeFn, batch: 8 },
    ]),
    { runs: 5, warmupRuns: 1, minTimeMs: 100 },
  );
  printTable({
    title: '1b. Handshake primitives (where the time goes)',
    columns: [
      { key: 'op', label: 'primitive' },
      { key: 'ours', label: '@noble (ours)' },
      { key: 'oursPer', label: 'per op' },
      { key: 'node', label: 'node:crypto' },
      { key: 'nodePer', label: 'per op' },
      { key: 'ratio', label: 'ours / node:crypto' },
    ],
    rows: prim.map(([name, oursFn]) => {
      const n = pr.get(`${name}:node`).opsPerSec;
      const row = { op: name, ours: '—', oursPer: '—', node: fmtOps(n), nodePer: fmtUs(1000 / n), ratio: '—' };
      if (oursFn === null) return row;
      const o = pr.get(`${name}:ours`).opsPerSec;
      return { ...row, ours: fmtOps(o), oursPer: fmtUs(1000 / o), ratio: fmtRatio(o, n) };
    }),
    notes: [
      'median of 5 interleaved runs of ≥ 100 ms; node:crypto keys pre-imported as KeyObjects (the handshake rows above import each peer key per operation: the "raw public key → KeyObject" row)',
      'per pairing our device does 2 X25519 base multiplications (keygen, and the key check in buildDeviceHello, which node:crypto gets for free because OpenSSL keeps the public point), 1 Ed25519 sign (noble re-derives the public key from the seed on every sign) and 1 X25519 shared secret; the gateway 1 base multiplication (start), 1 strict verify (plus a point decode and small-order check of the key) and 1 shared secret',
    ],
  });
}

// =====================================================================================================================
// 2. Client certificate issuance from a CSR
// =====================================================================================================================

async function issuanceSection() {
  // The gateway issues on the node:crypto backend (the CLI and the app install it).
  setCryptoBackend(nodeCryptoBackend);
  try {
    await issuanceRows();
  } finally {
    setCryptoBackend(null);
  }
}

async function issuanceRows() {
  const stored = await createCertificateAuthority({ now: Date.now() });
  const ca = await CertificateAuthority.load(stored);
  const caKeys = await importPrivateKeyPem(stored.privateKeyPem);
  const subtle = globalThis.crypto.subtle;

  // Same-size payload: the TBSCertificate of a real issued leaf is what the CA signs.
  const probeId = randomVerifiedDevice().deviceId;
  const probe = await ca.issueClientCertificate({ csrDer: await makeCsr(probeId), deviceId: probeId, now: Date.now() });
  const certDer = pemToDer(probe.certificatePem, 'CERTIFICATE');
  const tbsLength = derChildren(certDer)[0].length;
  const payload = randomBytes(tbsLength);
  const payloadSignature = await subtle.sign(P256_SIGNING_ALGORITHM, caKeys.privateKey, payload);

  const ids = Array.from({ length: 512 }, () => randomVerifiedDevice().deviceId);
  const pool = []; // CSRs made by the "CSR creation" case, each consumed once by the "issue" case
  const fixedCsrs = await Promise.all(ids.slice(0, 8).map((id) => makeCsr(id)));
  let nextId = 0;
  const cases = [
    { name: 'bare-sign', op: () => subtle.sign(P256_SIGNING_ALGORITHM, caKeys.privateKey, payload) },
    { name: 'bare-verify', op: () => subtle.verify(P256_SIGNING_ALGORITHM, caKeys.publicKey, payloadSignature, payload) },
    {
      name: 'csr-create',
      op: async () => {
        const deviceId = ids[nextId++ % ids.length];
        pool.push({ deviceId, csrDer: await makeCsr(deviceId) });
      },
    },
    { name: 'csr-verify', op: (i) => parseAndVerifyCsr(fixedCsrs[Math.abs(i) % fixedCsrs.length]) },
    { name: 'csr-verify-lean', op: async (i) => verifyCsr(fixedCsrs[Math.abs(i) % fixedCsrs.length]) },
    {
      name: 'issue',
      op: () => {
        const { deviceId, csrDer } = pool.shift();
        return ca.issueClientCertificate({ csrDer, deviceId, now: Date.now() });
      },
    },
  ];
  const r = await compareLatency(cases, { rounds: 8, perRound: 25, warmup: 30 });
  const base = r.get('bare-sign').median;
  const row = (label, key) => {
    const s = r.get(key);
    return {
      label,
      median: fmtMs(s.median),
      p99: fmtMs(s.p99),
      mean: fmtMs(s.mean),
      rate: fmtOps(1000 / s.mean),
      ratio: key === 'bare-sign' ? '1.00× (baseline)' : fmtRatio(s.median, base),
    };
  };
  printTable({
    title: '2. Client certificate issuance from a CSR',
    columns: [
      { key: 'label', label: 'operation' },
      { key: 'median', label: 'median' },
      { key: 'p99', label: 'p99' },
      { key: 'mean', label: 'mean' },
      { key: 'rate', label: 'ops/s (1/mean)' },
      { key: 'ratio', label: 'median vs bare sign' },
    ],
    rows: [
      row(`bare WebCrypto ECDSA P-256 sign of ${tbsLength} B (= TBSCertificate size)`, 'bare-sign'),
      row('CA.issueClientCertificate, fresh CSR each', 'issue'),
      row('  of which: verifyCsr, the gateway\'s check (same CSRs reused)', 'csr-verify-lean'),
      row('  (parseAndVerifyCsr: verifyCsr + the X.509 library\'s parse and a WebCrypto key)', 'csr-verify'),
      row('  (bare WebCrypto ECDSA P-256 verify, same payload)', 'bare-verify'),
      row('CSR creation on the device (P-256 keygen + PKCS#10)', 'csr-create'),
    ],
    notes: [
      `${r.get('issue').n} samples per row in 8 interleaved rounds of 25 after 30 warm-up calls; p99 is nearest-rank`,
      'on the node:crypto backend (main/platform/node-crypto.ts), as the gateway runs; device certificates are built as DER (main/core/x509-build.ts) and signed with WebCrypto',
      `X.509 overhead of an issue over the bare signature: ${fmtMs(r.get('issue').median - base)} at the median (${fmtRatio(r.get('issue').median, base)}); the issued leaf is ${certDer.length} B DER`,
    ],
  });
}

// =====================================================================================================================
// 3–5. A fleet of paired devices on a real state directory: mutations, cold load, lookups, RSS
// =====================================================================================================================

const identityCodec = {
  empty: emptyIdentityState,
  parseSnapshot: identityStateFromJson,
  snapshot: identityStateToJson,
  apply: applyIdentityOp,
};

/** A state dir with a CA and a few devices paired through the real manager: the template of every fleet. */
async function makeTemplate(root) {
  const dir = path.join(root, 'template');
  const manager = await openManager(dir);
  const devices = [];
  for (let i = 0; i < 4; i++) {
    const verified = randomVerifiedDevice();
    const { device } = await manager.finalizeVerifiedPairing({ verified, csrDer: await makeCsr(verified.deviceId) });
    devices.push(device);
  }
  // Where each real leaf's 16-byte serial sits in its DER, so synthetic copies can get their own serial.
  const bases = devices.map((device) => {
    const der = pemToDer(device.current_certificate.certificate_pem, 'CERTIFICATE');
    const serial = derChildren(derChildren(der)[0])[1];
    if (serial[0] !== 0x02 || serial[1] !== 16) throw new Error('unexpected serial encoding');
    return { device, der, serialOffset: serial.byteOffset - der.byteOffset + 2 };
  });
  return { dir, bases };
}

/**
 * A synthetic paired device: a real leaf's DER with a fresh random serial (so PEM, fingerprint and serial are unique
 * and consistent; the CA signature no longer matches, which nothing here checks) and a random identity key.
 */
function syntheticDevice(i, bases) {
  const base = bases[i % bases.length];
  const der = Uint8Array.from(base.der);
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01;
  der.set(serial, base.serialOffset);
  const fingerprint = certificateFingerprint(der);
  const pub = randomBytes(32);
  return {
    ...base.device,
    device_id: deviceIdFromPublicKey(pub),
    current_certificate: {
      ...base.device.current_certificate,
      sequence: i + 1,
      certificate_pem: encodePem(der, 'CERTIFICATE'),
      fingerprint,
      serial_hex: toHex(serial),
    },
    certificate_fingerprints: [fingerprint],
    identity_fingerprint: identityFingerprint(pub),
    signing_public_key_hex: toHex(pub),
    roles: [],
  };
}

/** Copies the template and grows it to `size` devices through a JournaledState, then writes one snapshot. */
async function populate(root, template, size) {
  const dir = path.join(root, `fleet-${size}`);
  await cp(template.dir, dir, { recursive: true });
  const { key } = await resolveStoreKey(dir, null);
  const store = await FilesystemSecretStore.open(dir, { key });
  const doc = new JournaledState({ store, snapshotKey: IDENTITY_STATE_KEY, codec: identityCodec, journalKey: key });
  await withStateLock(dir, async () => {
    await doc.refresh();
    const ops = [];
    for (let i = doc.state.paired_devices.size; i < size; i++) ops.push({ op: 'put_device', device: syntheticDevice(i, template.bases) });
    ops.push({ op: 'set_ca_sequence', value: size });
    await doc.commit(ops);
    await doc.compact();
  });
  return { dir, store, key };
}

async function probeRss(dir) {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', thisFile, `--probe-rss=${dir}`], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout);
}

const MUTATIONS = DEFAULT_COMPACT_EVERY; // one full compaction cycle per (size, operation)
const CHUNK = 64;

/** Temp root, template and populated state dirs; each consumer gets its own copy so mutations never leak. */
class Fleets {
  #root = null;
  #template = null;

  async #ready() {
    if (this.#root === null) {
      this.#root = await mkdtemp(path.join(os.tmpdir(), 'palyra-bench-'));
      this.#template = await makeTemplate(this.#root);
    }
  }

  /** Fresh state dirs, one per size, under `label`. */
  async create(label) {
    await this.#ready();
    const t0 = performance.now();
    const fleets = new Map();
    for (const size of SIZES) fleets.set(size, await populate(path.join(this.#root, label), this.#template, size));
    console.log(`_state dirs for ${SIZES.map((n) => fmtNum(n)).join(' / ')} devices populated in ${fmtNum((performance.now() - t0) / 1000, 1)} s (4 devices paired through the manager, the rest synthetic)_\n`);
    return fleets;
  }

  async dispose() {
    if (this.#root !== null) await rm(this.#root, { recursive: true, force: true });
  }
}

const openOn = ({ store, key, dir }) => IdentityManager.open({ store, stateDir: dir, journalKey: key });
const smallest = () => SIZES[0];
const largest = () => SIZES[SIZES.length - 1];

/** 3. MUTATIONS bans, then MUTATIONS pairings per size, timed one by one, in chunks interleaved across sizes. */
async function mutationSection(fleetsFactory) {
  const fleets = await fleetsFactory.create('mutations');
  const managers = new Map();
  for (const size of SIZES) managers.set(size, await openOn(fleets.get(size)));
  const pairings = [];
  for (let i = 0; i <= MUTATIONS; i++) {
    const verified = randomVerifiedDevice();
    pairings.push({ verified, csrDer: await makeCsr(verified.deviceId) });
  }
  const bans = Array.from({ length: MUTATIONS + 1 }, () => randomVerifiedDevice().deviceId);
  const operations = [
    ['revokeDevice (ban of a never-paired id)', (m, i) => m.revokeDevice(bans[i], 'bench ban')],
    ['finalizeVerifiedPairing (pre-made CSR)', (m, i) => m.finalizeVerifiedPairing(pairings[i])],
  ];
  const samples = new Map();
  // Warm-up: one extra call of each per size on items outside the measured ones (index MUTATIONS). The two records
  // they add only shift where the compaction falls; every measured window of MUTATIONS calls still holds one.
  for (const [name, op] of operations) {
    for (const size of SIZES) {
      await op(managers.get(size), MUTATIONS);
      samples.set(`${name}:${size}`, []);
    }
  }
  // The call that rewrote the snapshot (a compaction) is recognised by the snapshot file's new inode (atomic rename).
  const snapshotInode = async (size) => (await fleets.get(size).store.statSecret(IDENTITY_STATE_KEY)).ino;
  const compactions = new Map();
  for (const [name, op] of operations) {
    for (let start = 0; start < MUTATIONS; start += CHUNK) {
      for (const size of SIZES) {
        await settle();
        const manager = managers.get(size);
        const list = samples.get(`${name}:${size}`);
        let inode = await snapshotInode(size);
        for (let i = start; i < start + CHUNK; i++) {
          list.push(await timeOnce(() => op(manager, i)));
          const now = await snapshotInode(size);
          if (now !== inode) compactions.set(`${name}:${size}`, [...(compactions.get(`${name}:${size}`) ?? []), list[list.length - 1]]);
          inode = now;
        }
      }
    }
  }

  const base = smallest();
  const check = (value, baseValue) => {
    const misses = [];
    if (value / baseValue > 1.5) misses.push(`${fmtRatio(value, baseValue)} of the ${fmtNum(base)} cost, ${fmtSig(value / baseValue / 1.5)}× over 1.5×`);
    if (value > 20) misses.push(`${fmtMs(value - 20)} over 20 ms`);
    return misses.length === 0 ? 'met' : `MISSED (${misses.join('; ')})`;
  };
  const rows = [];
  for (const [name] of operations) {
    const b = summarize(samples.get(`${name}:${base}`));
    for (const size of SIZES) {
      const s = summarize(samples.get(`${name}:${size}`));
      rows.push({
        op: size === base ? name : '',
        size: fmtNum(size),
        median: fmtMs(s.median),
        p99: fmtMs(s.p99),
        mean: fmtMs(s.mean),
        max: fmtMs(s.max),
        compaction: (compactions.get(`${name}:${size}`) ?? []).map(fmtMs).join(', ') || 'none',
        rMedian: size === base ? '1.00× (baseline)' : fmtRatio(s.median, b.median),
        rMean: size === base ? '1.00× (baseline)' : fmtRatio(s.mean, b.mean),
        target: size === 10_000 && base === 100 ? `median ${check(s.median, b.median)}; mean ${check(s.mean, b.mean)}` : '',
      });
    }
  }
  printTable({
    title: '3. State mutation cost (real FilesystemSecretStore dir, journal on, default compactEvery = 512)',
    columns: [
      { key: 'op', label: 'operation' },
      { key: 'size', label: 'devices' },
      { key: 'median', label: 'median' },
      { key: 'p99', label: 'p99' },
      { key: 'mean', label: 'mean (amortised)' },
      { key: 'max', label: 'max' },
      { key: 'compaction', label: 'compacting call' },
      { key: 'rMedian', label: `median vs ${fmtNum(base)}` },
      { key: 'rMean', label: `mean vs ${fmtNum(base)}` },
      { key: 'target', label: 'target: 10 000 ≤ 1.5× the 100 cost and ≤ 20 ms', align: 'left' },
    ],
    rows,
    notes: [
      `${MUTATIONS} calls per row = one full compaction cycle, so the mean includes exactly one snapshot rewrite ("compacting call": the call that rewrote the snapshot, found by its new inode); calls timed one by one in chunks of ${CHUNK} interleaved across sizes`,
      'each call takes the state lock (O_EXCL file + fsync), refreshes (two stats), appends one fsynced journal record and one fsynced audit entry; finalizeVerifiedPairing also issues the certificate (section 2) for a CSR made beforehand',
    ],
  });
}

/** 4. Cold load, interleaved across sizes, with a split of the largest; returns the last manager of each size. */
async function coldLoadSection(fleets) {
  const loads = new Map(SIZES.map((s) => [s, []]));
  const managers = new Map();
  for (let round = 0; round < 6; round++) {
    // Rotate the order each round so that no size always follows the largest one.
    for (const size of [...SIZES.slice(round % SIZES.length), ...SIZES.slice(0, round % SIZES.length)]) {
      await settle();
      let manager;
      const ms = await timeOnce(async () => (manager = await openOn(fleets.get(size))));
      if (round > 0) loads.get(size).push(ms); // round 0 warms the code paths and the page cache
      managers.set(size, manager);
    }
  }
  const big = fleets.get(largest());
  const parts = { read: [], parse: [], build: [] };
  let bytes;
  for (let r = 0; r < 5; r++) {
    await settle();
    let json;
    parts.read.push(await timeOnce(async () => (bytes = await big.store.readSecret(IDENTITY_STATE_KEY))));
    parts.parse.push(await timeOnce(() => void (json = JSON.parse(Buffer.from(bytes).toString('utf8')))));
    parts.build.push(await timeOnce(() => void identityStateFromJson(json)));
  }
  const base = median(loads.get(smallest()));
  printTable({
    title: '4. Cold load: IdentityManager.open on the state dir',
    columns: [
      { key: 'size', label: 'devices' },
      { key: 'median', label: 'median' },
      { key: 'min', label: 'min' },
      { key: 'max', label: 'max' },
      { key: 'ratio', label: `vs ${fmtNum(smallest())}` },
      { key: 'target', label: 'target: 10 000 ≤ 500 ms', align: 'left' },
    ],
    rows: SIZES.map((size) => {
      const s = summarize(loads.get(size));
      return {
        size: fmtNum(size),
        median: fmtMs(s.median),
        min: fmtMs(s.min),
        max: fmtMs(s.max),
        ratio: size === smallest() ? '1.00× (baseline)' : fmtRatio(s.median, base),
        target: size === 10_000 ? (s.median <= 500 ? 'met' : `MISSED by ${fmtMs(s.median - 500)}`) : '',
      };
    }),
    notes: [
      'median of 5 opens per size after 1 warm-up open, interleaved across sizes; store object opened beforehand; freshly compacted snapshot, empty journal',
      `split at ${fmtNum(largest())} devices (median of 5): ${fmtMiB(bytes.length)} snapshot read + AES-GCM decrypt ${fmtMs(median(parts.read))}, JSON.parse ${fmtMs(median(parts.parse))}, records → Maps ${fmtMs(median(parts.build))}; the rest of open is the state lock, CA load (PKCS#8 import) and audit log`,
    ],
  });
  return managers;
}

/** 5. Fingerprint → device lookups: the manager's index vs linear scans, on freshly loaded managers. */
async function lookupSection(fleets, loaded) {
  const cases = [];
  let sink = 0;
  for (const size of SIZES) {
    const manager = loaded?.get(size) ?? (await openOn(fleets.get(size)));
    const records = manager.listPairedDevices();
    if (records.length !== size) throw new Error(`expected ${size} devices, found ${records.length}`);
    const targets = Array.from({ length: 4096 }, () => records[Math.floor(Math.random() * records.length)].current_certificate.fingerprint);
    for (const fp of targets.slice(0, 16)) {
      const id = manager.deviceIdForCertificateFingerprint(fp);
      const owner = records.find((d) => d.device_id === id);
      if (owner?.current_certificate.fingerprint !== fp || certificateFingerprint(owner.current_certificate.certificate_pem) !== fp) {
        throw new Error('index, records and PEMs disagree');
      }
    }
    const scan = (fp, fingerprintOf) => {
      for (const d of records) if (fingerprintOf(d) === fp || d.certificate_fingerprints.includes(fp)) return d.device_id;
      return undefined;
    };
    cases.push(
      { name: `index:${size}`, batch: 1024, run: (i) => void (sink += manager.deviceIdForCertificateFingerprint(targets[i & 4095]).length) },
      { name: `scan:${size}`, batch: 16, run: (i) => void (sink += scan(targets[i & 4095], (d) => d.current_certificate.fingerprint).length) },
      { name: `rehash:${size}`, batch: 1, run: (i) => void (sink += scan(targets[i & 4095], (d) => certificateFingerprint(d.current_certificate.certificate_pem)).length) },
    );
  }
  const r = await compareThroughput(cases, { runs: 5, warmupRuns: 1, minTimeMs: 100 });
  if (sink === 0) throw new Error('lookups found nothing');
  const methods = [
    ['index', 'deviceIdForCertificateFingerprint (index)'],
    ['scan', 'baseline: linear scan of stored fingerprints'],
    ['rehash', 'baseline: linear scan re-hashing each PEM (reference)'],
  ];
  const rows = [];
  for (const [key, label] of methods) {
    const base = r.get(`${key}:${smallest()}`).opsPerSec;
    for (const size of SIZES) {
      const ops = r.get(`${key}:${size}`).opsPerSec;
      rows.push({
        method: size === smallest() ? label : '',
        size: fmtNum(size),
        ns: fmtNs(1e9 / ops),
        ops: fmtOps(ops),
        ratio: size === smallest() ? '1.00× (baseline)' : fmtRatio(base, ops),
        vsIndex: key === 'index' ? '' : fmtRatio(r.get(`index:${size}`).opsPerSec, ops),
      });
    }
  }
  printTable({
    title: '5. Fingerprint → device lookup',
    columns: [
      { key: 'method', label: 'method' },
      { key: 'size', label: 'devices' },
      { key: 'ns', label: 'per lookup' },
      { key: 'ops', label: 'lookups/s' },
      { key: 'ratio', label: `cost vs ${fmtNum(smallest())}` },
      { key: 'vsIndex', label: 'cost vs index, same size' },
    ],
    rows,
    notes: [
      'hits on fingerprints drawn at random from the paired devices (a scan stops at the match: half the records on average); median of 5 interleaved runs of ≥ 100 ms',
      'the reference re-parses every current PEM and hashes it, and also matches history entries; the index is built once per state generation, outside these timings',
    ],
  });
}

/** RSS of a fresh process that only imports the code and loads the state. */
async function rssSection(fleets) {
  const rss = new Map();
  for (const size of SIZES) {
    const probes = [];
    for (let i = 0; i < 3; i++) probes.push(await probeRss(fleets.get(size).dir));
    rss.set(size, {
      after: median(probes.map((p) => p.after.rss)),
      before: median(probes.map((p) => p.before.rss)),
      heap: median(probes.map((p) => p.after.heapUsed)),
      devices: probes[0].devices,
    });
  }
  const base = rss.get(smallest());
  printTable({
    title: 'RSS after loading (fresh process: imports, IdentityManager.open, fingerprint index built, then GC)',
    columns: [
      { key: 'size', label: 'devices' },
      { key: 'after', label: 'RSS after load' },
      { key: 'before', label: 'RSS before open' },
      { key: 'delta', label: 'delta' },
      { key: 'heap', label: 'heap used after' },
      { key: 'ratio', label: `RSS vs ${fmtNum(smallest())}` },
    ],
    rows: SIZES.map((size) => {
      const x = rss.get(size);
      return {
        size: fmtNum(x.devices),
        after: fmtMiB(x.after),
        before: fmtMiB(x.before),
        delta: fmtMiB(x.after - x.before),
        heap: fmtMiB(x.heap),
        ratio: size === smallest() ? '1.00× (baseline)' : fmtRatio(x.after, base.after),
      };
    }),
    notes: ['median of 3 probe processes per size'],
  });
}

const fleetsFactory = new Fleets();
try {
  if (only.includes('handshake')) await section('1. Handshake', handshakeSection);
  if (only.includes('issuance')) await section('2. Certificate issuance', issuanceSection);
  if (only.includes('mutations')) await section('3. State mutations', () => mutationSection(fleetsFactory));
  // Sections 4, 5 and the RSS probes share one set of state dirs (none of them mutates it), made on first use.
  let fleets = null;
  const loadFleets = async () => (fleets ??= await fleetsFactory.create('loads'));
  let loaded = null;
  if (only.includes('load')) await section('4. Cold load', async () => (loaded = await coldLoadSection(await loadFleets())));
  if (only.includes('lookup')) await section('5. Fingerprint lookup', async () => lookupSection(await loadFleets(), loaded));
  if (only.includes('rss')) await section('Memory', async () => rssSection(await loadFleets()));
} finally {
  await fleetsFactory.dispose();
}
