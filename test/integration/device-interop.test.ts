// A device built for the reference daemon (REFERENCE.md §3.2–§3.4, §3.11): only the reference fields — no X25519
// commitment, no CSR, a random ULID as device id. Our gateway pairs it only when started with
// --allow-server-generated-keys and --allow-legacy-device-ids, delivers the generated key once, and shows its SAS
// as unverifiable (PROTOCOL.md §3–§4).
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCertificate, spkiPinFromSpkiDer } from '../../main/core/certificates.js';
import { DeviceIdentity, generatePairingKeyExchange } from '../../main/core/device-identity.js';
import { buildDeviceHello, PAIRING_PROTOCOL_VERSION } from '../../main/core/handshake.js';
import { isDerivedDeviceId, newUlid } from '../../main/core/ids.js';
import { exportSpkiDer, importPrivateKeyPem } from '../../main/core/x509-keys.js';
import { Gateway } from '../../main/gateway/gateway.js';
import type {
  BeginPairingSessionResponse__Output,
  CompletePairingSessionResponse__Output,
  GetPairingRequestStatusResponse__Output,
  NodeServiceClient,
  RegisterNodeResponse__Output,
} from '../../main/rpc/node-service.js';
import { callUnary } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { tempDir } from '../helpers/identity.js';

const CALL_MS = 5_000;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function startGateway(flags: { allowServerGeneratedKeys: boolean; allowLegacyDeviceIds: boolean }): Promise<Gateway> {
  const { dir, cleanup } = await tempDir('palyra-interop-gw-');
  const gateway = await Gateway.start({
    stateDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    name: null,
    insecureNodeRpcOptOut: false,
    keychain: null,
    ...flags,
  });
  cleanups.push(async () => {
    await gateway.stop();
    await cleanup();
  });
  return gateway;
}

function client(gateway: Gateway, material?: { cert: string; key: string }): NodeServiceClient {
  const c = createNodeServiceClient(
    gateway.listen,
    createGatewayChannelCredentials({
      caCertificatePem: gateway.caCertificatePem,
      ...(material === undefined ? {} : { clientCertificatePem: material.cert, clientPrivateKeyPem: material.key }),
    }),
  );
  cleanups.push(() => {
    c.close();
    return Promise.resolve();
  });
  return c;
}

/**
 * The reference node host (REFERENCE.md §3.11): a random ULID as device id (not derived from its key), an Ed25519
 * key and an X25519 key, and only the fields numbered below 25 on the wire.
 */
function referenceDevice(): { deviceId: string; identity: DeviceIdentity } {
  const key = DeviceIdentity.generate();
  const deviceId = newUlid(Date.now());
  // Signs like the reference: with its own key, under the random id.
  const identity = { deviceId, fingerprint: key.fingerprint, signingPublicKey: key.signingPublicKey, sign: (m: Uint8Array) => key.sign(m) } as unknown as DeviceIdentity;
  return { deviceId, identity };
}

/** Begin + Complete with reference fields only; resolves with the session id. */
async function referencePairing(gateway: Gateway, c: NodeServiceClient, device: { deviceId: string; identity: DeviceIdentity }): Promise<string> {
  const minted = await gateway.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
  const begin = await callUnary<BeginPairingSessionResponse__Output>(
    (md, opts, cb) => c.BeginPairingSession({ v: PAIRING_PROTOCOL_VERSION, client_kind: 'node', method: { pin_code: minted.code } }, md, opts, cb),
    CALL_MS,
  );
  const { hello } = buildDeviceHello({
    identity: device.identity,
    session: {
      sessionId: begin.session_id,
      protocolVersion: PAIRING_PROTOCOL_VERSION,
      clientKind: 'node',
      challenge: new Uint8Array(begin.challenge),
      gatewayEphemeralPublic: new Uint8Array(begin.gateway_ephemeral_public),
    },
    proof: minted.code,
    keyExchange: generatePairingKeyExchange(),
  });
  await callUnary<CompletePairingSessionResponse__Output>(
    (md, opts, cb) =>
      c.CompletePairingSession(
        {
          v: PAIRING_PROTOCOL_VERSION,
          session_id: hello.sessionId,
          device_id: { ulid: device.deviceId },
          client_kind: 'node',
          proof: minted.code,
          device_signing_public: Buffer.from(hello.deviceSigningPublic),
          device_x25519_public: Buffer.from(hello.deviceX25519Public),
          challenge_signature: Buffer.from(hello.challengeSignature),
          transcript_mac: Buffer.from(hello.transcriptMac),
        },
        md,
        opts,
        cb,
      ),
    CALL_MS,
  );
  return hello.sessionId;
}

function status(c: NodeServiceClient, sessionId: string, deviceId: string): Promise<GetPairingRequestStatusResponse__Output> {
  return callUnary<GetPairingRequestStatusResponse__Output>(
    (md, opts, cb) => c.GetPairingRequestStatus({ v: PAIRING_PROTOCOL_VERSION, session_id: sessionId, device_id: { ulid: deviceId } }, md, opts, cb),
    CALL_MS,
  );
}

describe('a reference-built device', () => {
  it('pairs with --allow-server-generated-keys and --allow-legacy-device-ids, receives its key once, and its SAS is unverifiable', async () => {
    const gateway = await startGateway({ allowServerGeneratedKeys: true, allowLegacyDeviceIds: true });
    const c = client(gateway);
    const device = referenceDevice();
    expect(isDerivedDeviceId(device.deviceId, device.identity.signingPublicKey)).toBe(false);
    const sessionId = await referencePairing(gateway, c, device);

    const [request] = gateway.admin.listRequests();
    expect(request).toMatchObject({ request_id: sessionId, device_id: device.deviceId, state: 'pending_approval', sas_verifiable: false });
    const pending = await status(c, sessionId, device.deviceId);
    expect(pending).toMatchObject({ status: 'pending_approval', paired: false, mtls_client_private_key_pem: '' });

    await gateway.admin.approve(sessionId);
    const first = await status(c, sessionId, device.deviceId);
    expect(first).toMatchObject({ status: 'completed', paired: true, gateway_ca_certificate_pem: gateway.caCertificatePem });
    expect(first.mtls_client_private_key_pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const certificate = parseCertificate(first.mtls_client_certificate_pem);
    expect(certificate.deviceId).toBe(device.deviceId);
    const keys = await importPrivateKeyPem(first.mtls_client_private_key_pem);
    expect(spkiPinFromSpkiDer(await exportSpkiDer(keys.publicKey))).toBe(certificate.spkiPin);

    // Delivered once: the gateway no longer holds the key.
    const second = await status(c, sessionId, device.deviceId);
    expect(second.status).toBe('completed');
    expect(second.mtls_client_private_key_pem).toBe('');

    // The delivered material works for mTLS, as the reference node host uses it.
    const mtls = client(gateway, { cert: first.mtls_client_certificate_pem, key: first.mtls_client_private_key_pem });
    const registered = await new Promise<RegisterNodeResponse__Output>((resolve, reject) => {
      mtls.RegisterNode({ v: 1, device_id: { ulid: device.deviceId }, platform: 'linux-x86_64', capabilities: [{ name: 'echo', available: true }] }, { deadline: Date.now() + CALL_MS }, (error: grpc.ServiceError | null, response?: RegisterNodeResponse__Output) => {
        if (error !== null) reject(error);
        else resolve(response!);
      });
    });
    expect(registered).toMatchObject({ accepted: true, reason: 'registered', device_id: { ulid: device.deviceId } });
  });

  it('is refused with server_generated_keys_disabled by a gateway without --allow-server-generated-keys', async () => {
    const gateway = await startGateway({ allowServerGeneratedKeys: false, allowLegacyDeviceIds: true });
    await expect(referencePairing(gateway, client(gateway), referenceDevice())).rejects.toMatchObject({ code: 'server_generated_keys_disabled' });
    expect(gateway.admin.listRequests()).toEqual([]);
  });

  it('is refused with legacy_device_id_refused by a gateway without --allow-legacy-device-ids', async () => {
    const gateway = await startGateway({ allowServerGeneratedKeys: true, allowLegacyDeviceIds: false });
    await expect(referencePairing(gateway, client(gateway), referenceDevice())).rejects.toMatchObject({ code: 'legacy_device_id_refused' });
    expect(gateway.admin.listRequests()).toEqual([]);
  });

  it('is refused by a default gateway (neither flag)', async () => {
    const gateway = await startGateway({ allowServerGeneratedKeys: false, allowLegacyDeviceIds: false });
    const refused = referencePairing(gateway, client(gateway), referenceDevice());
    await expect(refused).rejects.toMatchObject({ code: expect.stringMatching(/^(legacy_device_id_refused|server_generated_keys_disabled)$/) });
  });
});
