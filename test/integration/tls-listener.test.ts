// The gateway's node-RPC port on real TLS sockets (127.0.0.1) with a real grpc-js server behind it: certificates
// optional but judged at the handshake, revocation by CRL and by fingerprint, hot swap, closing one device's
// connections, the opt-out, the client's name check and the CA-pin probe (PROTOCOL.md §2, §5; REFERENCE.md §5.2).
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../main/core/certificate-authority.js';
import type { IssuedCertificateWithKey } from '../../main/core/certificate-authority.js';
import { certificateFingerprint, spkiPin } from '../../main/core/certificates.js';
import { newUlid } from '../../main/core/ids.js';
import type { NodeServiceClient } from '../../main/rpc/node-service.js';
import {
  createGatewayChannelCredentials,
  createNodeServiceClient,
  GATEWAY_TLS_SERVER_NAME,
  probeGatewayCertificateChain,
} from '../../main/rpc/tls-client.js';
import { callPeerFingerprint, RefusalReason } from '../../main/rpc/tls-listener.js';
import {
  enrolTlsDevice,
  ISOLATED_CHANNEL,
  openEventStream,
  registerNode,
  registerNodeStatus,
  startEchoGateway,
} from '../helpers/node-rpc-gateway.js';
import type { EchoGateway, TlsDevice } from '../helpers/node-rpc-gateway.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

// TLS verifies against the real clock, so certificates are issued at the real time.
const now = Date.now();
let ca: CertificateAuthority;
let foreignCa: CertificateAuthority;
let server: IssuedCertificateWithKey;
let deviceA: TlsDevice;
let deviceB: TlsDevice;
let revokedByFingerprint: TlsDevice;
let revokedByCrl: TlsDevice;
let foreignDevice: TlsDevice;
let crlPem: string;

beforeAll(async () => {
  ca = await CertificateAuthority.load(await createCertificateAuthority({ now }));
  foreignCa = await CertificateAuthority.load(await createCertificateAuthority({ now }));
  // No IP SAN on purpose: a client dialling 127.0.0.1 can only succeed by verifying the name palyrad-node-rpc.
  server = await ca.issueServerCertificate({ commonName: GATEWAY_TLS_SERVER_NAME, now });
  [deviceA, deviceB, revokedByFingerprint, revokedByCrl, foreignDevice] = await Promise.all([
    enrolTlsDevice(ca, now),
    enrolTlsDevice(ca, now),
    enrolTlsDevice(ca, now),
    enrolTlsDevice(ca, now),
    enrolTlsDevice(foreignCa, now),
  ]);
  crlPem = await ca.createCrl({ revoked: [{ serialHex: revokedByCrl.serialHex, revokedAtUnixMs: now }], now });
});

const gateways: EchoGateway[] = [];
const clients: NodeServiceClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
});

async function gateway(
  overrides: { requestClientCertificates?: boolean; crlPem?: string; isCertificateRevoked?: (fp: string) => boolean } = {},
): Promise<EchoGateway> {
  const started = await startEchoGateway({
    serverCertificatePem: server.certificatePem,
    serverPrivateKeyPem: server.privateKeyPem,
    caCertificatePem: ca.certificatePem,
    requestClientCertificates: overrides.requestClientCertificates ?? true,
    ...(overrides.crlPem === undefined ? {} : { crlPem: overrides.crlPem }),
    ...(overrides.isCertificateRevoked === undefined ? {} : { isCertificateRevoked: overrides.isCertificateRevoked }),
  });
  gateways.push(started);
  return started;
}

/** A client trusting `trustedCa` (default: our CA), authenticating as `device` if given. */
function clientFor(address: string, device?: TlsDevice, trustedCa: CertificateAuthority = ca): NodeServiceClient {
  const credentials = createGatewayChannelCredentials({
    caCertificatePem: trustedCa.certificatePem,
    ...(device === undefined ? {} : { clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
  });
  const client = createNodeServiceClient(address, credentials, ISOLATED_CHANNEL);
  clients.push(client);
  return client;
}

/** Waits (bounded) until `condition` holds; for state the server updates on socket events. */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  await waitFor(condition, { what });
}

describe('TlsListener with client certificates requested', () => {
  it('lets a device with a CA-issued certificate call RegisterNode, and the handler sees exactly its fingerprint', async () => {
    const gw = await gateway();

    const response = await registerNode(clientFor(gw.address, deviceA), deviceA.deviceId);

    expect(response.accepted).toBe(true);
    expect(response.reason).toBe(deviceA.fingerprint);
    expect(gw.registerCalls).toEqual([deviceA.fingerprint]);
    expect(gw.listener.liveConnectionCount()).toBe(1);
  });

  it('lets a client without a certificate reach the handler, which sees no fingerprint (pairing RPCs need this)', async () => {
    const gw = await gateway({ crlPem });

    const response = await registerNode(clientFor(gw.address), deviceA.deviceId);

    expect(response.reason).toBe('');
    expect(gw.registerCalls).toEqual([null]);
    expect(gw.events).toContainEqual(expect.objectContaining({ kind: 'accepted', fingerprint: null }));
  });

  it('refuses at the handshake a client certificate from another CA: UNAVAILABLE, handler never runs', async () => {
    const gw = await gateway();

    const status = await registerNodeStatus(clientFor(gw.address, foreignDevice), foreignDevice.deviceId);

    expect(status).toBe(grpc.status.UNAVAILABLE);
    expect(gw.registerCalls).toEqual([]);
    expect(gw.events).toContainEqual(
      expect.objectContaining({ kind: 'refused', fingerprint: foreignDevice.fingerprint, reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }),
    );
  });

  it('refuses at the handshake an expired certificate from our own CA', async () => {
    const gw = await gateway();
    const expired = await ca.issueClientCertificateWithGeneratedKey({
      deviceId: newUlid(now),
      now: now - 7_200_000,
      validityMs: 3_600_000,
    });
    const device: TlsDevice = {
      deviceId: newUlid(now),
      certificatePem: expired.certificatePem,
      privateKeyPem: expired.privateKeyPem,
      fingerprint: expired.fingerprint,
      serialHex: expired.serialHex,
    };

    expect(await registerNodeStatus(clientFor(gw.address, device), device.deviceId)).toBe(grpc.status.UNAVAILABLE);
    expect(gw.registerCalls).toEqual([]);
    expect(gw.events).toContainEqual(expect.objectContaining({ kind: 'refused', reason: 'CERT_HAS_EXPIRED' }));
  });

  it('refuses at the handshake a certificate revoked by fingerprint and one revoked by CRL, while another device works', async () => {
    const revoked = new Set([revokedByFingerprint.fingerprint]);
    const gw = await gateway({ crlPem, isCertificateRevoked: (fingerprint) => revoked.has(fingerprint) });

    const byFingerprint = await registerNodeStatus(clientFor(gw.address, revokedByFingerprint), revokedByFingerprint.deviceId);
    const byCrl = await registerNodeStatus(clientFor(gw.address, revokedByCrl), revokedByCrl.deviceId);
    const other = await registerNode(clientFor(gw.address, deviceB), deviceB.deviceId);

    expect(byFingerprint).toBe(grpc.status.UNAVAILABLE);
    expect(byCrl).toBe(grpc.status.UNAVAILABLE);
    expect(other.reason).toBe(deviceB.fingerprint);
    expect(gw.registerCalls).toEqual([deviceB.fingerprint]);
    const refusals = gw.events.filter((event) => event.kind === 'refused');
    expect(refusals).toEqual([
      expect.objectContaining({ fingerprint: revokedByFingerprint.fingerprint, reason: RefusalReason.revokedFingerprint }),
      expect.objectContaining({ fingerprint: revokedByCrl.fingerprint, reason: 'CERT_REVOKED' }),
    ]);
  });

  it('fails closed when the revocation check throws', async () => {
    const gw = await gateway({
      isCertificateRevoked: () => {
        throw new Error('revocation index unavailable');
      },
    });

    expect(await registerNodeStatus(clientFor(gw.address, deviceA), deviceA.deviceId)).toBe(grpc.status.UNAVAILABLE);
    expect(gw.events).toContainEqual(expect.objectContaining({ kind: 'refused', reason: RefusalReason.revocationCheckFailed }));
  });

  it('serves a new server certificate to new connections after a hot swap, keeping existing connections', async () => {
    const gw = await gateway();
    const early = clientFor(gw.address, deviceA);
    await registerNode(early, deviceA.deviceId);
    const renewed = await ca.issueServerCertificate({ commonName: GATEWAY_TLS_SERVER_NAME, now });

    gw.listener.updateSecureContext({ serverCertificatePem: renewed.certificatePem, serverPrivateKeyPem: renewed.privateKeyPem });

    const { chainDer } = await probeGatewayCertificateChain('127.0.0.1', gw.listener.port);
    expect(certificateFingerprint(chainDer[0]!)).toBe(renewed.fingerprint);
    expect(renewed.fingerprint).not.toBe(server.fingerprint);
    expect((await registerNode(clientFor(gw.address, deviceB), deviceB.deviceId)).reason).toBe(deviceB.fingerprint);
    expect((await registerNode(early, deviceA.deviceId)).reason).toBe(deviceA.fingerprint);
  });

  it('takes a new CRL without a restart: the newly revoked device is refused, the listener keeps its port', async () => {
    const gw = await gateway({ crlPem });
    expect((await registerNode(clientFor(gw.address, deviceB), deviceB.deviceId)).reason).toBe(deviceB.fingerprint);
    const newer = await ca.createCrl({
      revoked: [
        { serialHex: revokedByCrl.serialHex, revokedAtUnixMs: now },
        { serialHex: deviceB.serialHex, revokedAtUnixMs: now },
      ],
      now,
    });

    gw.listener.updateSecureContext({ crlPem: newer });

    expect(await registerNodeStatus(clientFor(gw.address, deviceB), deviceB.deviceId)).toBe(grpc.status.UNAVAILABLE);
    expect((await registerNode(clientFor(gw.address, deviceA), deviceA.deviceId)).reason).toBe(deviceA.fingerprint);
  });

  it('refuses every certificate while the CRL is past its nextUpdate (the gotcha), until a fresh CRL is swapped in', async () => {
    const stale = await ca.createCrl({ revoked: [], now: now - 7_200_000, nextUpdateMs: 3_600_000 });
    const gw = await gateway({ crlPem: stale });

    expect(await registerNodeStatus(clientFor(gw.address, deviceA), deviceA.deviceId)).toBe(grpc.status.UNAVAILABLE);
    expect((await registerNode(clientFor(gw.address), deviceA.deviceId)).reason).toBe('');
    expect(gw.events).toContainEqual(expect.objectContaining({ kind: 'refused', reason: 'CRL_HAS_EXPIRED' }));

    gw.listener.updateSecureContext({ crlPem });

    expect((await registerNode(clientFor(gw.address, deviceA), deviceA.deviceId)).reason).toBe(deviceA.fingerprint);
  });

  it('rejects an update whose key does not match the certificate and keeps serving the old material', async () => {
    const gw = await gateway();
    const other = await ca.issueServerCertificate({ commonName: GATEWAY_TLS_SERVER_NAME, now });

    expect(() => {
      gw.listener.updateSecureContext({ serverCertificatePem: other.certificatePem });
    }).toThrow(expect.objectContaining({ code: 'invalid_key_material' }));

    const { chainDer } = await probeGatewayCertificateChain('127.0.0.1', gw.listener.port);
    expect(certificateFingerprint(chainDer[0]!)).toBe(server.fingerprint);
  });

  it("ends one device's open StreamNodeEvents at once on closeConnections, leaving another device's stream open", async () => {
    const gw = await gateway();
    const streamA = openEventStream(clientFor(gw.address, deviceA), deviceA.deviceId);
    const streamB = openEventStream(clientFor(gw.address, deviceB), deviceB.deviceId);
    const anonymous = openEventStream(clientFor(gw.address), deviceB.deviceId);
    await Promise.all([streamA.echo('a-1'), streamB.echo('b-1'), anonymous.echo('n-1')]);
    expect(gw.listener.liveConnectionCount()).toBe(3);
    const asked: (string | null)[] = [];

    const closed = gw.listener.closeConnections((fingerprint) => {
      asked.push(fingerprint);
      return fingerprint === deviceA.fingerprint;
    });
    // "At once": the connection is destroyed, so the client sees the end without any further traffic from either side
    // (how soon is the in-process row of test/bench/gateway.bench.mjs's revocation table).
    const end = await withDeadline(streamA.ended, { what: 'stream A to end after closeConnections' });

    expect(closed).toBe(1);
    expect(asked.sort()).toEqual([deviceA.fingerprint, deviceB.fingerprint, null].sort());
    expect(end).toMatchObject({ how: 'error', code: grpc.status.UNAVAILABLE });
    expect((await streamB.echo('b-2')).reason).toBe('b-2');
    expect((await anonymous.echo('n-2')).reason).toBe('n-2');
    expect(streamB.isOpen()).toBe(true);
    expect(gw.listener.liveConnectionCount()).toBe(2);
    await eventually(() => gw.cancelledStreams.includes(deviceA.fingerprint), 'the server saw stream A cancelled');
    expect(gw.cancelledStreams).toEqual([deviceA.fingerprint]);
    streamB.cancel();
    anonymous.cancel();
  });

  it('returns 0 and closes nothing when no connection matches', async () => {
    const gw = await gateway();
    await registerNode(clientFor(gw.address, deviceA), deviceA.deviceId);

    expect(gw.listener.closeConnections(() => false)).toBe(0);
    expect(gw.listener.liveConnectionCount()).toBe(1);
  });

  it('refuses a resumed TLS session that carries a client certificate, which would skip the CRL and expiry checks', async () => {
    const gw = await gateway({ crlPem });
    const first = await tlsSession(gw.listener.port, deviceA);
    expect(first.accepted).toBe(true);
    expect(first.session).not.toBeNull();

    const resumed = await tlsSession(gw.listener.port, deviceA, first.session!);

    expect(resumed.reused).toBe(true);
    expect(resumed.accepted).toBe(false);
    expect(gw.events).toContainEqual(expect.objectContaining({ kind: 'refused', reason: RefusalReason.resumedSession }));
  });

  it('keeps serving after garbage bytes, a non-h2 TLS client and a TLS client that sends garbage after the handshake', async () => {
    const gw = await gateway();

    await sendRaw(gw.listener.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\x16\x03garbage'));
    await garbageAfterHandshake(gw.listener.port, ['h2']);
    await garbageAfterHandshake(gw.listener.port, null);

    expect(gw.events.some((event) => event.kind === 'handshake_error')).toBe(true);
    expect((await registerNode(clientFor(gw.address, deviceA), deviceA.deviceId)).reason).toBe(deviceA.fingerprint);
    await eventually(() => gw.listener.liveConnectionCount() === 1, 'the garbage connections were dropped');
  });

  it('close() ends live streams and pending handshakes, and releases the port', async () => {
    const gw = await gateway();
    const stream = openEventStream(clientFor(gw.address, deviceA), deviceA.deviceId);
    await stream.echo('a-1');
    const silent = net.connect(gw.listener.port, '127.0.0.1');
    const silentClosed = new Promise<void>((resolve) => silent.once('close', () => { resolve(); }));
    silent.on('error', () => {});
    await new Promise<void>((resolve) => silent.once('connect', () => { resolve(); }));

    await gw.listener.close(100);

    const end = await stream.ended;
    expect(end.how).toBe('error');
    await silentClosed;
    expect(gw.listener.liveConnectionCount()).toBe(0);
    await expect(listenOn(gw.listener.port)).resolves.toBeUndefined();
  });
});

describe('TlsListener in the insecure opt-out (client certificates never requested)', () => {
  it('accepts a client that has a certificate, but the handler sees no fingerprint', async () => {
    const gw = await gateway({ requestClientCertificates: false });

    const withCertificate = await registerNode(clientFor(gw.address, deviceA), deviceA.deviceId);
    const foreign = await registerNode(clientFor(gw.address, foreignDevice), foreignDevice.deviceId);

    expect(withCertificate.reason).toBe('');
    expect(foreign.reason).toBe('');
    expect(gw.registerCalls).toEqual([null, null]);
  });
});

describe('the gateway channel (client side)', () => {
  it('verifies the server as palyrad-node-rpc while dialling 127.0.0.1, which the certificate does not name', async () => {
    const gw = await gateway();

    expect((await registerNode(clientFor(`127.0.0.1:${gw.listener.port}`, deviceA), deviceA.deviceId)).accepted).toBe(true);
    expect((await registerNode(clientFor(`localhost:${gw.listener.port}`), deviceA.deviceId)).accepted).toBe(true);
  });

  it('refuses a server whose certificate comes from another CA', async () => {
    const gw = await gateway();

    expect(await registerNodeStatus(clientFor(gw.address, deviceA, foreignCa), deviceA.deviceId)).toBe(grpc.status.UNAVAILABLE);
    expect(gw.registerCalls).toEqual([]);
  });

  it('refuses a server certificate from the right CA that is not issued for palyrad-node-rpc', async () => {
    const gw = await gateway();
    const impostor = await ca.issueServerCertificate({ commonName: 'some-other-service', ipAddresses: ['127.0.0.1'], now });
    gw.listener.updateSecureContext({ serverCertificatePem: impostor.certificatePem, serverPrivateKeyPem: impostor.privateKeyPem });

    expect(await registerNodeStatus(clientFor(gw.address, deviceA), deviceA.deviceId)).toBe(grpc.status.UNAVAILABLE);
    expect(gw.registerCalls).toEqual([]);
  });

  it('refuses a client certificate without its key', () => {
    expect(() => createGatewayChannelCredentials({ caCertificatePem: ca.certificatePem, clientCertificatePem: deviceA.certificatePem })).toThrow(
      expect.objectContaining({ code: 'invalid_argument' }),
    );
  });

  it('probes the server chain without verifying it: the leaf, then the CA whose SPKI pin is the CA pin', async () => {
    const gw = await gateway();

    const { chainDer } = await probeGatewayCertificateChain('127.0.0.1', gw.listener.port);

    expect(chainDer).toHaveLength(2);
    expect(certificateFingerprint(chainDer[0]!)).toBe(server.fingerprint);
    expect(certificateFingerprint(chainDer[1]!)).toBe(ca.fingerprint);
    expect(spkiPin(chainDer[1]!)).toBe(ca.spkiPin);
    expect(gw.registerCalls).toEqual([]);
  });

  it('reports an unreachable gateway from the probe', async () => {
    const port = await freePort();

    await expect(probeGatewayCertificateChain('127.0.0.1', port, 2_000)).rejects.toMatchObject({ code: 'gateway_unreachable' });
  });
});

describe('callPeerFingerprint', () => {
  it('is null for contexts without a usable peer certificate', () => {
    expect(callPeerFingerprint({ getAuthContext: () => ({}) })).toBeNull();
    expect(callPeerFingerprint({ getAuthContext: () => null })).toBeNull();
    expect(callPeerFingerprint({ getAuthContext: () => ({ sslPeerCertificate: undefined }) })).toBeNull();
    expect(callPeerFingerprint({ getAuthContext: () => ({ sslPeerCertificate: { raw: Buffer.alloc(0) } }) })).toBeNull();
  });
});

// --- raw socket helpers ---------------------------------------------------------------------------------------

/** Connects, writes `bytes`, and resolves when the server has closed the connection. */
function sendRaw(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(bytes);
    });
    socket.on('error', () => {});
    socket.resume();
    socket.once('close', () => { resolve(); });
  });
}

/** Completes a real TLS handshake (with or without offering h2), then writes junk instead of HTTP/2. */
function garbageAfterHandshake(port: number, alpn: string[] | null): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: GATEWAY_TLS_SERVER_NAME,
      ca: ca.certificatePem,
      cert: deviceA.certificatePem,
      key: deviceA.privateKeyPem,
      ...(alpn === null ? {} : { ALPNProtocols: alpn }),
    });
    socket.on('error', () => {});
    socket.once('secureConnect', () => {
      socket.write(Buffer.from('this is not an HTTP/2 connection preface\r\n\r\n'.repeat(4)));
    });
    socket.resume();
    socket.once('close', () => { resolve(); });
  });
}

interface TlsSessionOutcome {
  readonly reused: boolean;
  /** Whether the server handed the socket to HTTP/2 (it then sends its SETTINGS frame first). */
  readonly accepted: boolean;
  readonly session: Buffer | null;
}

/** One mTLS connection as `device`, optionally resuming `session`; reports whether the server let it through. */
function tlsSession(port: number, device: TlsDevice, session?: Buffer): Promise<TlsSessionOutcome> {
  return new Promise((resolve) => {
    let ticket: Buffer | null = null;
    let accepted = false;
    let reused = false;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: GATEWAY_TLS_SERVER_NAME,
      ca: ca.certificatePem,
      cert: device.certificatePem,
      key: device.privateKeyPem,
      ALPNProtocols: ['h2'],
      ...(session === undefined ? {} : { session }),
    });
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
    });
    socket.on('session', (next: Buffer) => {
      ticket = next;
      if (accepted) socket.end();
    });
    socket.on('error', () => {});
    socket.on('data', () => {
      accepted = true;
      if (ticket !== null || session !== undefined) socket.end();
    });
    socket.once('close', () => { resolve({ reused, accepted, session: ticket }); });
  });
}

function listenOn(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(port, '127.0.0.1', () => {
      probe.close(() => { resolve(); });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => { resolve(port); });
    });
  });
}
