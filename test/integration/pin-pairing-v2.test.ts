// PIN pairing v2 (SPAKE2+) end to end over real TLS on 127.0.0.1: a TLS-terminating proxy with its own CA fails key
// confirmation and files nothing; replayed shares/confirmations are refused; malformed shares are
// pake_invalid_share; --require-pake refuses the v1 PIN Begin; a gateway without v2 gets the marked v1 fallback.
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority } from '../../main/core/certificate-authority.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../main/core/device-identity.js';
import { buildDeviceHello, PAIRING_PROTOCOL_VERSION, signCsrBinding } from '../../main/core/handshake.js';
import { pinPairingPakeContext } from '../../main/core/pake-context.js';
import { pinProverSecretAsync } from '../../main/core/pin-hash.js';
import { pinPairingV2Proof } from '../../main/core/pin-pairing-v2.js';
import { proverFinish, proverStart } from '../../main/core/spake2plus.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import { pakeFailures } from '../../main/device/pake-attempts.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairingProgress } from '../../main/device/pairing-client.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import type { BeginPinPairingSessionResponse__Output } from '../../main/rpc/generated/palyra/node/v1/BeginPinPairingSessionResponse.js';
import type { ExchangePinPakeResponse__Output } from '../../main/rpc/generated/palyra/node/v1/ExchangePinPakeResponse.js';
import type { BeginPairingSessionResponse__Output, CompletePairingSessionResponse__Output, NodeServiceClient } from '../../main/rpc/node-service.js';
import { callUnary } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { openTestDevice, startGateway } from '../helpers/gateway.js';

const SERVER_NAME = 'palyrad-node-rpc';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function gatewayWith(extra: { requirePake?: boolean; disablePake?: boolean } = {}): Promise<Gateway> {
  const g = await startGateway(extra);
  cleanups.push(g.cleanup);
  return g.gateway;
}

async function device() {
  const d = await openTestDevice();
  cleanups.push(d.cleanup);
  return d;
}

function clientFor(gateway: Gateway): NodeServiceClient {
  const client = createNodeServiceClient(gateway.listen, createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem }));
  cleanups.push(() => {
    client.close();
    return Promise.resolve();
  });
  return client;
}

async function mintPin(gateway: Gateway): Promise<string> {
  return (await gateway.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null })).code;
}

/** Rounds 1–2 by hand, as an independent client would, keeping everything a test needs to replay or tamper. */
async function rawExchange(client: NodeServiceClient, gateway: Gateway, pin: string, shareOverride?: Uint8Array) {
  const identity = DeviceIdentity.generate();
  const kx = generatePairingKeyExchange();
  const commitment = x25519Commitment(kx.publicKey);
  const begin = await callUnary<BeginPinPairingSessionResponse__Output>(
    (md, opts, cb) => client.BeginPinPairingSession({ v: 1, client_kind: 'node', device_id: { ulid: identity.deviceId }, device_x25519_commitment: Buffer.from(commitment) }, md, opts, cb),
    10_000,
  );
  const { shareP, state } = proverStart(await pinProverSecretAsync(pin, new Uint8Array(begin.pake_salt)));
  const sent = shareOverride ?? shareP;
  const exchanged = await callUnary<ExchangePinPakeResponse__Output>(
    (md, opts, cb) => client.ExchangePinPake({ v: 1, session_id: begin.session_id, pake_share_p: Buffer.from(sent) }, md, opts, cb),
    10_000,
  );
  const ctx = pinPairingPakeContext({
    sessionId: begin.session_id,
    clientKind: 'node',
    gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
    deviceX25519Commitment: commitment,
    deviceId: identity.deviceId,
    caPin: gateway.caPin,
  });
  return { identity, kx, begin, shareP, exchanged, finish: () => proverFinish(state, new Uint8Array(exchanged.pake_share_v), new Uint8Array(exchanged.pake_confirm_v), ctx) };
}

async function complete(client: NodeServiceClient, x: Awaited<ReturnType<typeof rawExchange>>, confirmP: Uint8Array, proof: string): Promise<CompletePairingSessionResponse__Output> {
  const session = {
    sessionId: x.begin.session_id,
    protocolVersion: PAIRING_PROTOCOL_VERSION,
    clientKind: 'node' as const,
    challenge: new Uint8Array(x.begin.challenge),
    gatewayEphemeralPublic: new Uint8Array(x.begin.gateway_ephemeral_public),
  };
  const { hello } = buildDeviceHello({ identity: x.identity, session, proof, keyExchange: x.kx });
  const csrDer = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: x.identity.deviceId });
  return callUnary<CompletePairingSessionResponse__Output>(
    (md, opts, cb) =>
      client.CompletePairingSession(
        {
          v: 1,
          session_id: hello.sessionId,
          device_id: { ulid: x.identity.deviceId },
          client_kind: 'node',
          proof: '',
          device_signing_public: Buffer.from(hello.deviceSigningPublic),
          device_x25519_public: Buffer.from(hello.deviceX25519Public),
          challenge_signature: Buffer.from(hello.challengeSignature),
          transcript_mac: Buffer.from(hello.transcriptMac),
          tls_csr_der: Buffer.from(csrDer),
          tls_csr_signature: Buffer.from(signCsrBinding(x.identity, hello.sessionId, csrDer)),
          pake_confirm_p: Buffer.from(confirmP),
        },
        md,
        opts,
        cb,
      ),
    10_000,
  );
}

/** A TLS proxy with its own CA in front of `upstream`, relaying every byte both ways. */
async function startTlsProxy(upstream: Gateway): Promise<{ port: number; clientBytes: () => number }> {
  const now = Date.now();
  const ca = await CertificateAuthority.load(await createCertificateAuthority({ now, commonName: 'Palyra Gateway CA' }));
  const server = await ca.issueServerCertificate({ commonName: SERVER_NAME, ipAddresses: ['127.0.0.1'], now });
  let clientBytes = 0;
  const sockets = new Set<tls.TLSSocket>();
  const proxy = tls.createServer({ cert: `${server.certificatePem.trim()}\n${ca.certificatePem.trim()}\n`, key: server.privateKeyPem, ALPNProtocols: ['h2'] }, (client) => {
    const gateway = tls.connect({ host: '127.0.0.1', port: upstream.port, servername: SERVER_NAME, ca: upstream.caCertificatePem, ALPNProtocols: ['h2'], checkServerIdentity: (_h, cert) => tls.checkServerIdentity(SERVER_NAME, cert) });
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
  proxy.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        proxy.close(() => {
          resolve();
        });
      }),
  );
  return { port: (proxy.address() as AddressInfo).port, clientBytes: () => clientBytes };
}

describe('PIN pairing v2', () => {
  it('pairs with sas_status confirmed and pins the CA as verified by PIN', async () => {
    const gateway = await gatewayWith();
    const pin = await mintPin(gateway);
    const { store } = await device();
    const events: PairingProgress[] = [];
    const result = await pairDevice({
      store,
      // Pasted with a dash, as the app accepts it.
      target: { method: 'pin', pin: `${pin.slice(0, 3)}-${pin.slice(3)}`, gateway: gateway.listen },
      kind: 'node',
      onProgress: (e) => {
        events.push(e);
        if (e.type === 'awaiting_approval') void gateway.admin.approve(e.request_id);
      },
    });
    expect(events.find((e) => e.type === 'awaiting_approval')).toMatchObject({ sas_status: 'confirmed', verified_by: 'pin' });
    expect(gateway.admin.listRequests()[0]).toMatchObject({ sas_status: 'confirmed', state: 'completed' });
    expect(result.state.gateway!.pinned_by).toBe('pin');
    expect(result.state.gateway!.ca_pin).toBe(gateway.caPin);
    // The code was consumed by the confirmed exchange.
    expect(gateway.admin.listCodes()).toEqual([]);
  }, 60_000);

  it('through a TLS proxy with its own CA: pake_confirmation_failed before the hello, no request, one guess counted', async () => {
    const gateway = await gatewayWith();
    const pin = await mintPin(gateway);
    const proxy = await startTlsProxy(gateway);
    const { store } = await device();
    const events: PairingProgress[] = [];
    await expect(pairDevice({ store, target: { method: 'pin', pin, gateway: `127.0.0.1:${proxy.port}` }, kind: 'node', onProgress: (e) => events.push(e) })).rejects.toMatchObject({
      code: 'pake_confirmation_failed',
      details: { device_failures: 1 },
    });
    expect(proxy.clientBytes()).toBeGreaterThan(0);
    expect(events.map((e) => e.type)).toEqual(['connecting', 'verifying_gateway', 'failed']);
    expect(gateway.admin.listRequests()).toEqual([]);
    expect(await pakeFailures(store.deviceDir, (events[1] as { ca_pin: string }).ca_pin)).toBe(1);
    // The code is still there for the real device; the answered exchange counts once its session ends.
    expect(gateway.admin.listCodes()).toHaveLength(1);
    await gateway.pairing.close();
    expect(gateway.admin.runtime.pinFailuresSinceMint).toBe(1);
    const audit = await gateway.admin.auditTail(100);
    expect(audit.entries.map((e) => e.event)).not.toContain('pairing_requested');
  }, 60_000);

  it('a wrong confirmP (replayed from an earlier session) is refused and counts at once; a replayed shareP cannot confirm', async () => {
    const gateway = await gatewayWith();
    const pin = await mintPin(gateway);
    const client = clientFor(gateway);
    const first = await rawExchange(client, gateway, pin);
    const firstResult = first.finish();
    // Session 2 replays session 1's shareP and confirmP: the gateway's fresh y changes every key.
    const second = await rawExchange(client, gateway, pin, first.shareP);
    expect(Buffer.from(second.exchanged.pake_share_v).equals(Buffer.from(first.exchanged.pake_share_v))).toBe(false);
    await expect(complete(client, second, firstResult.confirmP, pinPairingV2Proof(firstResult.sharedKey))).rejects.toMatchObject({ code: 'pake_confirmation_failed' });
    expect(gateway.admin.listRequests()).toEqual([]);
    await gateway.pairing.close();
    // The failed one counted; the first (answered, never completed) too, at close.
    expect(gateway.admin.runtime.pinFailuresSinceMint).toBe(2);
  }, 60_000);

  it('refuses the identity and off-curve points as shareP with pake_invalid_share (INVALID_ARGUMENT)', async () => {
    const gateway = await gatewayWith();
    const pin = await mintPin(gateway);
    const client = clientFor(gateway);
    const valid = (await rawExchange(client, gateway, pin)).shareP;
    const offCurve = Uint8Array.from(valid);
    offCurve[64] = offCurve[64]! ^ 1;
    for (const share of [Uint8Array.of(0), new Uint8Array(65), offCurve, valid.subarray(0, 33)]) {
      const error = await rawExchange(client, gateway, pin, share).then(
        () => null,
        (e: unknown) => e as { code: string; details: { grpc_status?: number } },
      );
      expect(error).toMatchObject({ code: 'pake_invalid_share', details: { grpc_status: grpc.status.INVALID_ARGUMENT } });
    }
  }, 60_000);

  it('--require-pake refuses a v1 PIN Begin with pake_required; v2 still pairs', async () => {
    const gateway = await gatewayWith({ requirePake: true });
    const pin = await mintPin(gateway);
    const client = clientFor(gateway);
    const v1 = callUnary<BeginPairingSessionResponse__Output>(
      (md, opts, cb) => client.BeginPairingSession({ v: 1, client_kind: 'node', method: { pin_code: pin } }, md, opts, cb),
      10_000,
    );
    await expect(v1).rejects.toMatchObject({ code: 'pake_required', details: { grpc_status: grpc.status.FAILED_PRECONDITION } });
    const x = await rawExchange(client, gateway, pin);
    const r = x.finish();
    await complete(client, x, r.confirmP, pinPairingV2Proof(r.sharedKey));
    expect(gateway.admin.listRequests()).toMatchObject([{ sas_status: 'confirmed', state: 'pending_approval' }]);
  }, 60_000);

  it('falls back to v1 against a gateway without v2, marked trust-on-first-use with the SAS to compare', async () => {
    const gateway = await gatewayWith({ disablePake: true });
    const pin = await mintPin(gateway);
    const { store } = await device();
    const events: PairingProgress[] = [];
    const result = await pairDevice({
      store,
      target: { method: 'pin', pin, gateway: gateway.listen },
      kind: 'node',
      onProgress: (e) => {
        events.push(e);
        if (e.type === 'awaiting_approval') void gateway.admin.approve(e.request_id);
      },
    });
    const awaiting = events.find((e) => e.type === 'awaiting_approval');
    expect(awaiting).toMatchObject({ sas_status: 'compare', verified_by: 'tofu' });
    expect(gateway.admin.listRequests()[0]).toMatchObject({ sas_status: 'compare', sas: (awaiting as { sas: string }).sas });
    expect(result.state.gateway!.pinned_by).toBe('tofu');
  }, 60_000);
});
