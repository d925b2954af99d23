// Bounded unauthenticated work (issue 12): a gateway child process under a flood from another loopback address
// (127.0.0.2) — 200 BeginPairingSession calls with a 4 MiB qr_token, a burst of small concurrent calls, connections
// that never finish the handshake, and more certificate-less TLS connections than the per-source cap — keeps its RSS
// under 300 MiB, refuses with coded statuses, and a paired device and a legitimate pairing from 127.0.0.1 still work.
import { readFile } from 'node:fs/promises';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../main/core/bytes.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { createGatewayChannelCredentials, createNodeServiceClient, GATEWAY_TLS_SERVER_NAME } from '../../main/rpc/tls-client.js';
import { ensureBuilt } from '../helpers/build.js';
import { startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { openTestDevice } from '../helpers/gateway.js';
import { tempDir } from '../helpers/identity.js';
import { withDeadline } from '../helpers/wait.js';

const FLOOD_SOURCE = '127.0.0.2';
const RSS_BOUND_BYTES = 300 * 1024 * 1024;
const BIG_TOKEN_BYTES = 4 * 1024 * 1024;

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]) * 1024;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** A gRPC frame of BeginPairingSessionRequest { v: 1, client_kind: 'desktop', method { qr_token } }, encoded by hand. */
function beginFrame(tokenBytes: number): Buffer {
  const token = Buffer.alloc(tokenBytes, 0x61);
  const method = Buffer.concat([Buffer.from([0x12]), varint(token.length), token]);
  const kind = Buffer.from('desktop');
  const message = Buffer.concat([Buffer.from([0x08, 0x01, 0x12]), varint(kind.length), kind, Buffer.from([0x1a]), varint(method.length), method]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** A certificate-less HTTP/2 session from the flood address. */
function floodSession(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    createConnection: () =>
      tls.connect({
        socket: net.connect({ host: '127.0.0.1', port, localAddress: FLOOD_SOURCE }),
        servername: GATEWAY_TLS_SERVER_NAME,
        rejectUnauthorized: false,
        ALPNProtocols: ['h2'],
      }),
  });
  session.on('error', () => undefined);
  return session;
}

/** One raw gRPC call; resolves with its grpc-status (or 'reset' when the stream or connection died without one). */
function rawCall(session: http2.ClientHttp2Session, frame: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ':method': 'POST', ':path': '/palyra.node.v1.NodeService/BeginPairingSession', 'content-type': 'application/grpc', te: 'trailers' });
    } catch {
      resolve('reset');
      return;
    }
    let status: string | null = null;
    const take = (headers: http2.IncomingHttpHeaders): void => {
      const s = headers['grpc-status'];
      if (typeof s === 'string') status = `${s}:${String(headers['palyra-error-code'] ?? '')}`;
    };
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    stream.on('close', () => { resolve(status ?? 'reset'); });
    stream.end(frame);
  });
}

describe('a flood of unauthenticated work', () => {
  let gateway: GatewayProcess;
  let stateDir: string;
  let cleanup: () => Promise<void>;
  let device: { deviceId: string; certificatePem: string; privateKeyPem: string };
  let caPem: string;

  beforeAll(async () => {
    await ensureBuilt();
    ({ dir: stateDir, cleanup } = await tempDir('palyra-flood-'));
    const admin = await GatewayAdmin.open({ stateDir, keychain: null });
    const identity = DeviceIdentity.generate();
    const keys = await generateP256KeyPair();
    const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
    const issued = await admin.identity.finalizeVerifiedPairing({
      verified: { deviceId: identity.deviceId, clientKind: 'node', identityFingerprint: identity.fingerprint, signingPublicKeyHex: toHex(identity.signingPublicKey) },
      csrDer,
    });
    device = { deviceId: identity.deviceId, certificatePem: issued.certificate.certificatePem, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
    caPem = admin.identity.caCertificatePem;
    await admin.close();
    // One process: the RSS read below is that process's, and the per-source caps are per process (with --workers N
    // each worker enforces its own).
    gateway = await startGatewayProcess(stateDir, ['--workers', '1']);
  });
  afterAll(async () => {
    await gateway.kill();
    await cleanup();
  });

  it('keeps the gateway under 300 MiB, answers with coded refusals, and serves paired devices and a real pairing', async () => {
    const port = Number(gateway.ready.listen.slice(gateway.ready.listen.lastIndexOf(':') + 1));
    const pid = gateway.child.pid!;
    let maxRss = await rssOf(pid);
    const sampling = { on: true };
    const sampler = (async () => {
      while (sampling.on) {
        maxRss = Math.max(maxRss, await rssOf(pid));
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();

    // 24 connections within the per-source cap carry the calls: 200 with a 4 MiB qr_token (10 per connection) and
    // 120 small concurrent ones (30 per connection); then connections that never start a handshake, and more
    // certificate-less TLS connections than the source may hold.
    const big = beginFrame(BIG_TOKEN_BYTES);
    const small = beginFrame(32);
    // One oversized call alone on its connection: refused from its length prefix with RESOURCE_EXHAUSTED.
    const lone = floodSession(port);
    const loneOutcome = await withDeadline(rawCall(lone, big), { what: 'the lone oversized call' });
    lone.destroy();
    const bigSessions = Array.from({ length: 20 }, () => floodSession(port));
    const smallSessions = Array.from({ length: 4 }, () => floodSession(port));
    await withDeadline(Promise.all([...bigSessions, ...smallSessions].map((s) => new Promise((resolve) => s.once('connect', resolve)))), {
      what: 'the flood connections to connect',
    });
    const silent = Array.from({ length: 150 }, () => net.connect({ host: '127.0.0.1', port, localAddress: FLOOD_SOURCE }).on('error', () => undefined));
    const idle = Array.from({ length: 80 }, () => floodSession(port));
    const bigCalls = Array.from({ length: 200 }, (_, i) => rawCall(bigSessions[i % 20]!, big));
    const smallCalls = Array.from({ length: 120 }, (_, i) => rawCall(smallSessions[i % 4]!, small));

    // Meanwhile, from 127.0.0.1: the paired device works and a new device pairs (approved from this process).
    const client = createNodeServiceClient(
      gateway.ready.listen,
      createGatewayChannelCredentials({ caCertificatePem: caPem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
      { 'grpc.use_local_subchannel_pool': 1 },
    );
    const registered = await withDeadline(
      new Promise<boolean>((resolve, reject) => {
        client.RegisterNode({ v: 1, device_id: { ulid: device.deviceId }, platform: 'flood', capabilities: [] }, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (error, response) => {
          if (error === null) resolve(response?.accepted === true);
          else reject(error);
        });
      }),
      { what: 'RegisterNode of the paired device during the flood', deadlineMs: 60_000 },
    );
    client.close();
    const admin = await GatewayAdmin.open({ stateDir, keychain: null });
    const newcomer = await openTestDevice();
    try {
      const minted = await admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.ready.listen], gatewayName: null });
      const paired = await withDeadline(
        pairDevice({
          store: newcomer.store,
          target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) },
          kind: 'desktop',
          onProgress: (event) => {
            if (event.type === 'awaiting_approval') void admin.approve(event.request_id);
          },
        }),
        { what: 'a legitimate pairing during the flood', deadlineMs: 60_000 },
      );
      expect(paired.deviceId).toMatch(/^[0-9A-Z]{26}$/);
    } finally {
      await admin.close();
      await newcomer.cleanup();
    }

    const bigOutcomes = await withDeadline(Promise.all(bigCalls), { what: 'the oversized calls to end', deadlineMs: 60_000 });
    const smallOutcomes = await withDeadline(Promise.all(smallCalls), { what: 'the small calls to end', deadlineMs: 60_000 });
    sampling.on = false;
    await sampler;
    for (const s of [...bigSessions, ...smallSessions, ...idle]) s.destroy();
    for (const s of silent) s.destroy();

    expect(registered).toBe(true);
    expect(maxRss, `gateway peak RSS ${(maxRss / 1024 / 1024).toFixed(1)} MiB`).toBeLessThan(RSS_BOUND_BYTES);
    expect(loneOutcome).toBe('8:');
    // None of the flood's oversized calls reached a handler: each was refused (RESOURCE_EXHAUSTED), or its session
    // was closed by HTTP/2 flood protection because the client kept sending DATA after the refusal.
    expect(bigOutcomes.filter((o) => !o.startsWith('8:') && o !== 'reset')).toEqual([]);
    // Small calls: answered (a pairing refusal) or refused by the call caps with the coded message.
    expect(smallOutcomes.some((o) => o === '8:unauthenticated_call_limit')).toBe(true);
  }, 240_000);
});
