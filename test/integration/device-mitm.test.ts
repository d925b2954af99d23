// A man in the middle on 127.0.0.1 (PROTOCOL.md §3). QR: a TLS proxy with its own CA in front of the gateway is
// caught by the CA pin before the device sends a byte. PIN: a MITM that terminates TLS with its own CA and pairs
// on to the real gateway (two legs of our own gateway and pairing-client code) cannot make the two SAS agree,
// and forwarding the device's X25519 commitment while substituting its own key fails the transcript check.
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../main/core/certificate-authority.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../main/core/device-identity.js';
import { buildDeviceHello, PAIRING_PROTOCOL_VERSION, signCsrBinding } from '../../main/core/handshake.js';
import { storePinVerifier } from '../../main/core/pairing-codes.js';
import { pinVerifier } from '../../main/core/pin-hash.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import { DeviceAgent } from '../../main/device/device-agent.js';
import type { AgentEvent } from '../../main/device/device-agent.js';
import { DeviceStore } from '../../main/device/device-store.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairingProgress } from '../../main/device/pairing-client.js';
import { Gateway } from '../../main/gateway/gateway.js';
import type { BeginPairingSessionResponse__Output, CompletePairingSessionResponse__Output } from '../../main/rpc/node-service.js';
import { callUnary } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import { tempDir } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

const SERVER_NAME = 'palyrad-node-rpc';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function startGateway(name: string, extra: { disablePake?: boolean } = {}): Promise<Gateway> {
  const { dir, cleanup } = await tempDir('palyra-mitm-gw-');
  const gateway = await Gateway.start({
    ...extra,
    stateDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    name,
    insecureNodeRpcOptOut: false,
    allowServerGeneratedKeys: false,
    allowLegacyDeviceIds: false,
    keychain: null,
  });
  cleanups.push(async () => {
    await gateway.stop();
    await cleanup();
  });
  return gateway;
}

async function newAgent(): Promise<{ agent: DeviceAgent; events: AgentEvent[] }> {
  const { dir, cleanup } = await tempDir('palyra-mitm-dev-');
  const agent = await DeviceAgent.open({ deviceDir: dir, keychain: 'os', osKeychain: new MemoryKeychain() });
  const events: AgentEvent[] = [];
  agent.on((e) => events.push(e));
  cleanups.push(async () => {
    await agent.stop();
    await cleanup();
  });
  return { agent, events };
}

/** The attacker's CA, named like the real one, and a `palyrad-node-rpc` server certificate from it. */
async function attackerTlsMaterial(): Promise<{ ca: CertificateAuthority; chainPem: string; keyPem: string }> {
  const now = Date.now();
  const ca = await CertificateAuthority.load(await createCertificateAuthority({ now, commonName: 'Palyra Gateway CA' }));
  const server = await ca.issueServerCertificate({ commonName: SERVER_NAME, ipAddresses: ['127.0.0.1'], now });
  return { ca, chainPem: `${server.certificatePem.trim()}\n${ca.certificatePem.trim()}\n`, keyPem: server.privateKeyPem };
}

interface TlsProxy {
  port: number;
  /** TCP connections accepted from devices. */
  connections: () => number;
  /** Application bytes devices sent through the proxy. */
  clientBytes: () => number;
}

/** Terminates TLS with the attacker's certificate and re-originates TLS to the real gateway, copying bytes both ways. */
async function startTlsProxy(upstream: Gateway): Promise<TlsProxy> {
  const material = await attackerTlsMaterial();
  let connections = 0;
  let clientBytes = 0;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: material.chainPem, key: material.keyPem, ALPNProtocols: ['h2'] }, (client) => {
    const gateway = tls.connect({
      host: '127.0.0.1',
      port: upstream.port,
      servername: SERVER_NAME,
      ca: upstream.caCertificatePem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(SERVER_NAME, cert),
    });
    sockets.add(client);
    sockets.add(gateway);
    client.on('data', (chunk: Buffer) => {
      clientBytes += chunk.length;
      gateway.write(chunk);
    });
    gateway.on('data', (chunk: Buffer) => client.write(chunk));
    const end = (): void => {
      client.destroy();
      gateway.destroy();
    };
    for (const s of [client, gateway]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  server.on('connection', () => (connections += 1));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  );
  return { port: (server.address() as AddressInfo).port, connections: () => connections, clientBytes: () => clientBytes };
}

describe('QR pairing through a TLS proxy with its own CA', () => {
  it('fails with ca_pin_mismatch before anything is sent: the gateway saw no Begin and the code is unused', async () => {
    const gateway = await startGateway('Front Desk');
    const proxy = await startTlsProxy(gateway);
    // The QR names the address the attacker controls; its CA pin is the real gateway's.
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [`127.0.0.1:${proxy.port}`], gatewayName: gateway.name });
    const uri = parsePairingUri(minted.uri!, { now: Date.now() });
    expect(uri.caPin).toBe(gateway.caPin);
    const { agent, events } = await newAgent();

    await expect(agent.pair({ method: 'qr', uri }, { kind: 'desktop' })).rejects.toMatchObject({ code: 'ca_pin_mismatch' });

    expect(proxy.connections()).toBeGreaterThanOrEqual(1);
    expect(proxy.clientBytes()).toBe(0);
    expect(events.map((e) => e.type)).toEqual(['connecting', 'failed']);
    expect(gateway.admin.listCodes()).toHaveLength(1);
    expect(gateway.admin.listRequests()).toEqual([]);
    const audit = await gateway.admin.auditTail(100);
    expect(audit.entries.map((e) => e.event)).not.toContain('pairing_session_started');
    expect(await agent.store.readState()).toBeNull();
  });
});

describe('PIN pairing v1 (gateways without v2) through a MITM that terminates TLS and pairs on with the real gateway', () => {
  it('shows the device a different SAS than the one the real gateway shows the operator, marked compare/TOFU', async () => {
    // Both legs without PIN pairing v2 (reference-like gateways), so the device falls back to v1.
    const real = await startGateway('Front Desk', { disablePake: true });
    const minted = await real.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
    const pin = minted.code;

    // Leg 1, facing the device: our own gateway code with the attacker's CA, posing under the same name. A real
    // MITM learns the PIN from the Begin it terminates; having it earlier only helps the attacker.
    const mitm = await startGateway('Front Desk', { disablePake: true });
    const mitmRecord = { codeHash: 'pin:00000000000000000000000000000001', pin: storePinVerifier(pinVerifier(pin)), method: 'pin' as const, kind: null, issuedBy: 'mitm' };
    await mitm.admin.mutateRuntime((_state, now) => ({
      ops: [{ op: 'put_code', record: { ...mitmRecord, createdAtUnixMs: now, expiresAtUnixMs: now + 600_000 } }],
      result: undefined,
    }));

    // Leg 2, facing the real gateway: our own pairing client under the attacker's identity, with the same PIN.
    const { dir: attackerDir, cleanup } = await tempDir('palyra-mitm-attacker-');
    cleanups.push(cleanup);
    const attackerStore = await DeviceStore.open({ deviceDir: attackerDir, keychain: 'os', osKeychain: new MemoryKeychain() });
    const attackerEvents: PairingProgress[] = [];
    const leg2 = pairDevice({ store: attackerStore, target: { method: 'pin', pin, gateway: real.listen }, kind: 'node', onProgress: (e) => attackerEvents.push(e) });
    const leg2Done = leg2.then(
      () => 'paired',
      (e: unknown) => (e as { code?: string }).code,
    );

    const { agent, events } = await newAgent();
    const device = agent.pair({ method: 'pin', pin, gateway: mitm.listen }, { kind: 'node' });
    const deviceDone = device.then(
      () => 'paired',
      (e: unknown) => (e as { code?: string }).code,
    );
    await waitFor(() => events.some((e) => e.type === 'awaiting_approval') && attackerEvents.some((e) => e.type === 'awaiting_approval'), {
      what: 'both legs to be pending',
      detail: () => `device ${JSON.stringify(events)} attacker ${JSON.stringify(attackerEvents)}`,
    });
    const deviceSas = events.flatMap((e) => (e.type === 'awaiting_approval' ? [e.sas] : []))[0]!;
    const operatorView = real.admin.listRequests({ state: 'pending_approval' });
    expect(operatorView).toHaveLength(1);
    const gatewaySas = operatorView[0]!.sas;
    console.log(`device shows SAS ${deviceSas}; the real gateway shows the operator ${gatewaySas}`);
    // Each leg has its own transcript MAC, and the commitments stop either side from grinding for a match.
    expect(deviceSas).not.toBe(gatewaySas);
    expect(operatorView[0]!.sas_verifiable).toBe(true);
    expect(operatorView[0]!.sas_status).toBe('compare');
    expect(events.find((e) => e.type === 'awaiting_approval')).toMatchObject({ sas_status: 'compare', verified_by: 'tofu' });
    // The device also saw the attacker's CA, not the real one (it shows that fingerprint for comparison).
    const seen = events.find((e) => e.type === 'verifying_gateway');
    expect(seen).toMatchObject({ pinned: false });
    expect(seen?.type === 'verifying_gateway' && seen.ca_fingerprint).not.toBe(real.caFingerprint);

    // The operator sees the mismatch and rejects; the attacker's leg gets nothing.
    await real.admin.reject(operatorView[0]!.request_id, 'SAS mismatch');
    await mitm.admin.reject(mitm.admin.listRequests({ state: 'pending_approval' })[0]!.request_id, 'attacker gives up');
    expect(await leg2Done).toBe('pairing_rejected');
    expect(await deviceDone).toBe('pairing_rejected');
    expect(real.admin.identity.listPairedDevices()).toEqual([]);
  }, 30_000);

  it("refuses a Complete whose X25519 key is not the one committed to in Begin (the MITM forwards the device's commitment)", async () => {
    const real = await startGateway('Front Desk');
    const minted = await real.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
    const client = createNodeServiceClient(real.listen, createGatewayChannelCredentials({ caCertificatePem: real.caCertificatePem }));
    cleanups.push(() => {
      client.close();
      return Promise.resolve();
    });

    // The device committed to its key in the Begin the MITM terminated; the MITM forwards that commitment...
    const deviceKey = generatePairingKeyExchange();
    const begin = await callUnary<BeginPairingSessionResponse__Output>(
      (md, opts, cb) =>
        client.BeginPairingSession(
          { v: PAIRING_PROTOCOL_VERSION, client_kind: 'node', method: { pin_code: minted.code }, device_x25519_commitment: Buffer.from(x25519Commitment(deviceKey.publicKey)) },
          md,
          opts,
          cb,
        ),
      5_000,
    );
    // ...but cannot compute the device's MAC with the real gateway's ephemeral key, so it substitutes its own key.
    const attacker = DeviceIdentity.generate();
    const attackerKey = generatePairingKeyExchange();
    const session = {
      sessionId: begin.session_id,
      protocolVersion: PAIRING_PROTOCOL_VERSION,
      clientKind: 'node' as const,
      challenge: new Uint8Array(begin.challenge),
      gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
    };
    const { hello } = buildDeviceHello({ identity: attacker, session, proof: minted.code, keyExchange: attackerKey });
    const csrDer = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: attacker.deviceId });
    const complete = callUnary<CompletePairingSessionResponse__Output>(
      (md, opts, cb) =>
        client.CompletePairingSession(
          {
            v: PAIRING_PROTOCOL_VERSION,
            session_id: hello.sessionId,
            device_id: { ulid: attacker.deviceId },
            client_kind: 'node',
            proof: '',
            device_signing_public: Buffer.from(hello.deviceSigningPublic),
            device_x25519_public: Buffer.from(hello.deviceX25519Public),
            challenge_signature: Buffer.from(hello.challengeSignature),
            transcript_mac: Buffer.from(hello.transcriptMac),
            tls_csr_der: Buffer.from(csrDer),
            tls_csr_signature: Buffer.from(signCsrBinding(attacker, hello.sessionId, csrDer)),
          },
          md,
          opts,
          cb,
        ),
      5_000,
    );
    await expect(complete).rejects.toMatchObject({ code: 'transcript_verification_failed' });
    expect(real.admin.listRequests()).toEqual([]);
  });
});
