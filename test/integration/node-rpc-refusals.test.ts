// Honest refusals (issue 12): a revoked device learns PERMISSION_DENIED on every open stream before its socket
// closes, also when the revocation comes from another process (`palyra devices revoke`); a client certificate refused
// at the handshake (foreign CA, revoked) gets a coded gRPC status on every call instead of a silent drop, and the
// device session reports that code, not gateway_unreachable.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../main/core/bytes.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { certificateFingerprint } from '../../main/core/certificates.js';
import { decodePemBlocks } from '../../main/core/pem.js';
import { NodeSession } from '../../main/device/node-session.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import type { NodeServiceClient } from '../../main/rpc/node-service.js';
import { ERROR_CODE_METADATA_KEY } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCli } from '../helpers/cli.js';
import { startGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/identity.js';
import type { StreamEnd } from '../helpers/node-rpc-gateway.js';
import { withDeadline } from '../helpers/wait.js';

interface PairedDevice {
  deviceId: string;
  certificatePem: string;
  privateKeyPem: string;
}

/** Devices paired straight into the state (own P-256 key, certificate issued from its CSR). */
async function pairInState(admin: GatewayAdmin, count: number): Promise<PairedDevice[]> {
  const devices: PairedDevice[] = [];
  for (let i = 0; i < count; i++) {
    const identity = DeviceIdentity.generate();
    const keys = await generateP256KeyPair();
    const csrDer = await createCertificateSigningRequest({ keys, deviceId: identity.deviceId });
    const issued = await admin.identity.finalizeVerifiedPairing({
      verified: { deviceId: identity.deviceId, clientKind: 'node', identityFingerprint: identity.fingerprint, signingPublicKeyHex: toHex(identity.signingPublicKey) },
      csrDer,
    });
    devices.push({ deviceId: identity.deviceId, certificatePem: issued.certificate.certificatePem, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) });
  }
  return devices;
}

function clientFor(gateway: Gateway, device: PairedDevice): NodeServiceClient {
  return createNodeServiceClient(
    gateway.listen,
    createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem }),
    { 'grpc.use_local_subchannel_pool': 1 },
  );
}

/** An event stream that has had one answer from the gateway; `ended` settles with how it ended and the error code. */
async function openAnsweredStream(client: NodeServiceClient, deviceId: string): Promise<{ ended: Promise<StreamEnd & { palyraCode: string | null }> }> {
  const call = client.StreamNodeEvents();
  const ended = new Promise<StreamEnd & { palyraCode: string | null }>((resolve) => {
    call.on('error', (error: grpc.ServiceError) => {
      resolve({ how: 'error', code: error.code, palyraCode: (error.metadata.get(ERROR_CODE_METADATA_KEY)[0] as string | undefined) ?? null });
    });
    call.on('end', () => {
      resolve({ how: 'end', code: null, palyraCode: null });
    });
  });
  const answered = new Promise<void>((resolve) => call.once('data', () => { resolve(); }));
  call.write({ v: 1, device_id: { ulid: deviceId }, event_name: 'node.started', payload_json: Buffer.from('{}') });
  await withDeadline(Promise.race([answered, ended]), { what: 'the first answer on an event stream' });
  // Wrapped: an async function returning a promise would wait for it.
  return { ended };
}

/** RegisterNode's outcome as the client sees it: gRPC status and the gateway's error code. */
function registerOutcome(client: NodeServiceClient, deviceId: string): Promise<{ status: grpc.status; code: string | null }> {
  return new Promise((resolve) => {
    client.RegisterNode({ v: 1, device_id: { ulid: deviceId }, platform: 'test', capabilities: [] }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error) => {
      if (error === null) resolve({ status: grpc.status.OK, code: null });
      else resolve({ status: error.code, code: (error.metadata.get(ERROR_CODE_METADATA_KEY)[0] as string | undefined) ?? null });
    });
  });
}

/** StreamNodeEvents' end as the client sees it. */
function streamOutcome(client: NodeServiceClient, deviceId: string): Promise<{ status: grpc.status; code: string | null }> {
  return new Promise((resolve) => {
    const call = client.StreamNodeEvents();
    call.on('error', (error: grpc.ServiceError) => {
      resolve({ status: error.code, code: (error.metadata.get(ERROR_CODE_METADATA_KEY)[0] as string | undefined) ?? null });
    });
    call.on('data', () => undefined);
    call.on('end', () => {
      resolve({ status: grpc.status.OK, code: null });
    });
    call.write({ v: 1, device_id: { ulid: deviceId }, event_name: 'node.started', payload_json: Buffer.from('{}') });
  });
}

describe('revocation from another process ends every open stream with PERMISSION_DENIED', () => {
  let gateway: Gateway;
  let stateDir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    await ensureBuilt();
    ({ gateway, stateDir, cleanup } = await startGateway());
  });
  afterAll(async () => {
    await cleanup();
  });

  it('50 streams of 10 devices, revoked by `palyra devices revoke` children: all PERMISSION_DENIED device_revoked, none UNAVAILABLE', async () => {
    const devices = await pairInState(gateway.admin, 10);
    const clients: NodeServiceClient[] = [];
    const ends: Promise<StreamEnd>[] = [];
    const silentCodes: Promise<string | null>[] = [];
    for (const device of devices) {
      // Two connections per device, so a device's streams span sockets; one stream per device never sends an event.
      const a = clientFor(gateway, device);
      const b = clientFor(gateway, device);
      clients.push(a, b);
      const silentCall = a.StreamNodeEvents();
      const silentEnd = new Promise<{ end: StreamEnd; code: string | null }>((resolve) => {
        silentCall.on('error', (error: grpc.ServiceError) => {
          resolve({ end: { how: 'error', code: error.code }, code: (error.metadata.get(ERROR_CODE_METADATA_KEY)[0] as string | undefined) ?? null });
        });
        silentCall.on('end', () => {
          resolve({ end: { how: 'end', code: null }, code: null });
        });
      });
      ends.push(silentEnd.then((x) => x.end));
      silentCodes.push(silentEnd.then((x) => x.code));
      for (let i = 0; i < 4; i++) {
        const { ended } = await openAnsweredStream(i % 2 === 0 ? a : b, device.deviceId);
        ends.push(ended.then(({ how, code }) => ({ how, code })));
      }
    }
    expect(ends).toHaveLength(50);
    const results = await Promise.all(
      devices.map((device) => runCli(['devices', 'revoke', device.deviceId, '--reason', 'lost', '--state-dir', stateDir], { env: cliEnv(), timeoutMs: 120_000 })),
    );
    expect(results.map((r) => r.code)).toEqual(devices.map(() => 0));
    const ended = await withDeadline(Promise.all(ends), { what: 'all 50 revoked streams to end' });
    expect(ended.filter((e) => e.code === grpc.status.UNAVAILABLE)).toEqual([]);
    expect(ended).toEqual(ends.map(() => ({ how: 'error', code: grpc.status.PERMISSION_DENIED })));
    // The streams that never sent an event were reached too, with the coded message.
    expect(await Promise.all(silentCodes)).toEqual(devices.map(() => 'device_revoked'));
    for (const client of clients) client.close();
   }, 180_000);
});

describe('a client certificate refused at the handshake gets a coded status on every call', () => {
  let gateway: Gateway;
  let cleanup: () => Promise<void>;
  let foreign: PairedDevice;
  let cleanupForeign: () => Promise<void>;

  beforeAll(async () => {
    ({ gateway, cleanup } = await startGateway());
    const other = await tempDir('palyra-foreign-ca-');
    const otherAdmin = await GatewayAdmin.open({ stateDir: other.dir, keychain: null });
    [foreign] = (await pairInState(otherAdmin, 1)) as [PairedDevice];
    await otherAdmin.close();
    cleanupForeign = other.cleanup;
  });
  afterAll(async () => {
    await cleanup();
    await cleanupForeign();
  });

  it('a certificate from another CA: UNAUTHENTICATED certificate_unknown on unary calls and streams', async () => {
    const client = clientFor(gateway, foreign);
    try {
      expect(await registerOutcome(client, foreign.deviceId)).toEqual({ status: grpc.status.UNAUTHENTICATED, code: 'certificate_unknown' });
      expect(await streamOutcome(client, foreign.deviceId)).toEqual({ status: grpc.status.UNAUTHENTICATED, code: 'certificate_unknown' });
    } finally {
      client.close();
    }
  });

  it('a revoked certificate: PERMISSION_DENIED certificate_revoked on a new connection', async () => {
    const [device] = (await pairInState(gateway.admin, 1)) as [PairedDevice];
    const before = clientFor(gateway, device);
    expect(await registerOutcome(before, device.deviceId)).toEqual({ status: grpc.status.OK, code: null });
    before.close();
    await gateway.admin.revokeDevice(device.deviceId, 'test');
    const after = clientFor(gateway, device);
    try {
      expect(await registerOutcome(after, device.deviceId)).toEqual({ status: grpc.status.PERMISSION_DENIED, code: 'certificate_revoked' });
      expect(await streamOutcome(after, device.deviceId)).toEqual({ status: grpc.status.PERMISSION_DENIED, code: 'certificate_revoked' });
    } finally {
      after.close();
    }
  });

  it('the device session reports certificate_unknown / certificate_revoked, not gateway_unreachable', async () => {
    const open = (device: PairedDevice) =>
      NodeSession.open({
        address: gateway.listen,
        deviceId: device.deviceId,
        caCertificatePem: gateway.caCertificatePem,
        certificatePem: device.certificatePem,
        certificateFingerprint: certificateFingerprint(decodePemBlocks(device.certificatePem, 'certificate_parsing_failed')[0]!.der),
        privateKeyPem: device.privateKeyPem,
        platform: 'test',
        capabilities: [],
        firstEvent: { name: 'node.started', payload: {} },
        heartbeatMs: 60_000,
        onDispatch: () => undefined,
      }).then(
        (session) => {
          session.close();
          return 'opened';
        },
        (error: unknown) => (error as { code?: string }).code,
      );
    expect(await open(foreign)).toBe('certificate_unknown');
    const [device] = (await pairInState(gateway.admin, 1)) as [PairedDevice];
    await gateway.admin.revokeDevice(device.deviceId, 'test');
    expect(await open(device)).toBe('certificate_revoked');
  });
});
