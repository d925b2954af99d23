// Named devices over real TLS on 127.0.0.1 with an in-process gateway: the name a device sends in Complete
// (device_name = 27), the default the gateway derives when none is sent, validation that files nothing, the
// paired record's name, method and paired-at, the last address of RegisterNode, and the audited rename — locally
// and over palyra.admin.v1.GatewayAdmin with an admin device's mTLS identity.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import { createGatewayAdminClient } from '../../main/rpc/admin-service.js';
import type { AdminDevice__Output, GatewayAdminClient, ListDevicesResponse__Output } from '../../main/rpc/admin-service.js';
import type { RenameDeviceResponse__Output } from '../../main/rpc/generated/palyra/admin/v1/RenameDeviceResponse.js';
import { createGatewayChannelCredentials } from '../../main/rpc/tls-client.js';
import { openTestDevice, startGateway } from '../helpers/gateway.js';
import {
  anonymousClient,
  beginRequest,
  certifiedClient,
  completeRequest,
  failureOf,
  mintQr,
  newRawDevice,
  ok,
  pairRawDevice,
  refused,
  requestPairing,
  rpc,
} from '../helpers/raw-pairing.js';
import type { RpcOutcome } from '../helpers/raw-pairing.js';

const CALL_MS = 10_000;
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function gatewayUnderTest(): Promise<Gateway> {
  const g = await startGateway();
  cleanups.push(g.cleanup);
  return g.gateway;
}

function client(gateway: Gateway, certificatePem?: string, privateKeyPem?: string) {
  const c = certificatePem === undefined ? anonymousClient(gateway) : certifiedClient(gateway, certificatePem, privateKeyPem!);
  cleanups.push(() => {
    c.close();
  });
  return c;
}

async function auditEvents(gateway: Gateway, event: string): Promise<Record<string, unknown>[]> {
  const { entries } = await gateway.admin.auditTail(100);
  return entries.filter((e) => e.event === event).map((e) => e.fields);
}

describe('device names in pairing', () => {
  it('files the name the device sent and keeps it on the paired device with the method and when it paired', async () => {
    const gateway = await gatewayUnderTest();
    const device = await openTestDevice();
    cleanups.push(device.cleanup);
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: null });
    const before = Date.now();
    const result = await pairDevice({
      store: device.store,
      target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) },
      kind: 'desktop',
      deviceName: '  Cafe\u0301 laptop ',
      onProgress: (event) => {
        if (event.type === 'awaiting_approval') void gateway.admin.approve(event.request_id);
      },
    });
    const [request] = gateway.admin.listRequests();
    expect(request).toMatchObject({ device_id: result.deviceId, device_name: 'Caf\u00e9 laptop', state: 'completed' });
    const listed = gateway.admin.listDevices().devices.find((d) => d.device_id === result.deviceId);
    expect(listed).toMatchObject({ name: 'Caf\u00e9 laptop', method: 'qr', status: 'paired', last_address: null });
    expect(listed!.paired_at_unix_ms).toBeGreaterThanOrEqual(before);
    expect(await auditEvents(gateway, 'pairing_requested')).toEqual([expect.objectContaining({ device_id: result.deviceId, device_name: 'Caf\u00e9 laptop' })]);
  });

  it('derives "<client_kind> <last 6 of the device id>" for a device that sends no name (a reference client)', async () => {
    const gateway = await gatewayUnderTest();
    const c = client(gateway);
    const device = await newRawDevice();
    const { requestId } = await requestPairing(gateway, c, device);
    expect(gateway.admin.request(requestId)?.deviceName).toBe(`desktop ${device.deviceId.slice(-6)}`);
    await gateway.admin.approve(requestId);
    await ok(rpc.status(c, { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } }));
    expect(gateway.admin.identity.pairedDevice(device.deviceId)).toMatchObject({ name: `desktop ${device.deviceId.slice(-6)}`, method: 'qr' });
  });

  it('refuses a name with a control character (INVALID_ARGUMENT, invalid_argument), files nothing, and the session can be completed with a good name', async () => {
    const gateway = await gatewayUnderTest();
    const c = client(gateway);
    const device = await newRawDevice();
    const token = await mintQr(gateway);
    const begin = await ok(rpc.begin(c, beginRequest(device, { qr: token })));
    const honest = completeRequest(device, begin, { proof: token });
    for (const bad of ['office\nApproved: yes', 'x'.repeat(65), 'evil\u202Etxt']) {
      const failure = await refused(rpc.complete(c, { ...honest, device_name: bad }));
      expect(failure).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, palyraCode: 'invalid_argument' });
    }
    expect(gateway.admin.listRequests()).toEqual([]);
    await ok(rpc.complete(c, { ...honest, device_name: 'Kitchen Pi' }));
    expect(gateway.admin.listRequests()).toEqual([expect.objectContaining({ device_id: device.deviceId, device_name: 'Kitchen Pi', state: 'pending_approval' })]);
  });

  it('refuses a bad name on the device before anything is sent, so the code is not used up', async () => {
    const gateway = await gatewayUnderTest();
    const device = await openTestDevice();
    cleanups.push(device.cleanup);
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: null });
    await expect(
      pairDevice({ store: device.store, target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) }, kind: 'desktop', deviceName: 'tab\there' }),
    ).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(gateway.admin.listCodes()).toHaveLength(1);
    expect(gateway.admin.listRequests()).toEqual([]);
  });
});

describe('last address', () => {
  it('records the peer address (no port) of RegisterNode, in the device list and in the runtime state', async () => {
    const gateway = await gatewayUnderTest();
    const paired = await pairRawDevice(gateway, client(gateway));
    const mtls = client(gateway, paired.certificatePem, paired.privateKeyPem);
    await ok(rpc.register(mtls, { v: 1, device_id: { ulid: paired.deviceId }, platform: 'linux-x64', capabilities: [] }));
    const listed = gateway.admin.listDevices().devices.find((d) => d.device_id === paired.deviceId);
    expect(listed).toMatchObject({ last_address: '127.0.0.1', platform: 'linux-x64' });
    expect(listed!.last_seen_at_unix_ms).not.toBeNull();
    expect(gateway.admin.runtime.nodes.get(paired.deviceId)?.lastAddress).toBe('127.0.0.1');
  });
});

describe('renaming a device', () => {
  it('renames a paired device (audited device_renamed), refuses unknown devices and bad names without changing anything', async () => {
    const gateway = await gatewayUnderTest();
    const paired = await pairRawDevice(gateway, client(gateway));
    const renamed = await gateway.admin.renameDevice(paired.deviceId, ' Hall tablet ');
    expect(renamed).toMatchObject({ device_id: paired.deviceId, name: 'Hall tablet', status: 'paired' });
    expect(gateway.admin.identity.pairedDevice(paired.deviceId)?.name).toBe('Hall tablet');
    expect(await auditEvents(gateway, 'device_renamed')).toEqual([{ device_id: paired.deviceId, name: 'Hall tablet' }]);

    await expect(gateway.admin.renameDevice('01ARZ3NDEKTSV4RRFFQ69G5FAV', 'Ghost')).rejects.toMatchObject({ code: 'not_found' });
    await expect(gateway.admin.renameDevice(paired.deviceId, '\u0007bell')).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(gateway.admin.renameDevice(paired.deviceId, '   ')).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(gateway.admin.identity.pairedDevice(paired.deviceId)?.name).toBe('Hall tablet');
    expect(await auditEvents(gateway, 'device_renamed')).toHaveLength(1);
  });

  it('renames over palyra.admin.v1.GatewayAdmin RenameDevice for an admin device only, with the same codes', async () => {
    const gateway = await gatewayUnderTest();
    const admin = await pairRawDevice(gateway, client(gateway));
    const other = await pairRawDevice(gateway, client(gateway));
    const otherNode = client(gateway, other.certificatePem, other.privateKeyPem);
    await ok(rpc.register(otherNode, { v: 1, device_id: { ulid: other.deviceId }, platform: 'darwin-arm64', capabilities: [] }));
    const adminClient = (certificatePem: string, privateKeyPem: string): GatewayAdminClient => {
      const credentials = createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: certificatePem, clientPrivateKeyPem: privateKeyPem });
      const c = createGatewayAdminClient(gateway.listen, credentials, { 'grpc.use_local_subchannel_pool': 1 });
      cleanups.push(() => {
        c.close();
      });
      return c;
    };
    const call = <T>(invoke: (md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: T) => void) => unknown): Promise<RpcOutcome<T>> =>
      new Promise((resolve) => {
        invoke(new grpc.Metadata(), { deadline: Date.now() + CALL_MS }, (error, response) => {
          resolve(error !== null ? { ok: false, error: failureOf(error) } : { ok: true, response: response! });
        });
      });

    // Not an admin yet: refused, nothing renamed.
    const plain = adminClient(admin.certificatePem, admin.privateKeyPem);
    const denied = await refused(call<RenameDeviceResponse__Output>((md, o, cb) => plain.RenameDevice({ device_id: other.deviceId, name: 'Nope' }, md, o, cb)));
    expect(denied).toMatchObject({ code: grpc.status.PERMISSION_DENIED, palyraCode: 'permission_denied' });
    expect(gateway.admin.identity.pairedDevice(other.deviceId)?.name).toBe(`desktop ${other.deviceId.slice(-6)}`);

    await gateway.admin.grantAdmin(admin.deviceId);
    const c = adminClient(admin.certificatePem, admin.privateKeyPem);
    const response = await ok(call<RenameDeviceResponse__Output>((md, o, cb) => c.RenameDevice({ device_id: other.deviceId, name: 'Studio Mac' }, md, o, cb)));
    expect(response.device).toMatchObject({ device_id: other.deviceId, name: 'Studio Mac', method: 'qr', platform: 'darwin-arm64', last_address: '127.0.0.1' });
    expect(await auditEvents(gateway, 'device_renamed')).toEqual([{ device_id: other.deviceId, name: 'Studio Mac' }]);

    const listed = await ok(call<ListDevicesResponse__Output>((md, o, cb) => c.ListDevices({}, md, o, cb)));
    const byId = new Map(listed.devices.map((d: AdminDevice__Output) => [d.device_id, d]));
    expect(byId.get(other.deviceId)).toMatchObject({ name: 'Studio Mac', method: 'qr', last_address: '127.0.0.1' });
    expect(byId.get(other.deviceId)!.paired_at_unix_ms).toBeGreaterThan(0);
    expect(byId.get(admin.deviceId)).toMatchObject({ name: `desktop ${admin.deviceId.slice(-6)}`, last_address: '' });

    const unknown = await refused(call<RenameDeviceResponse__Output>((md, o, cb) => c.RenameDevice({ device_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', name: 'Ghost' }, md, o, cb)));
    expect(unknown).toMatchObject({ code: grpc.status.NOT_FOUND, palyraCode: 'not_found' });
    const invalid = await refused(call<RenameDeviceResponse__Output>((md, o, cb) => c.RenameDevice({ device_id: other.deviceId, name: 'line\nbreak' }, md, o, cb)));
    expect(invalid).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, palyraCode: 'invalid_argument' });
    expect(gateway.admin.identity.pairedDevice(other.deviceId)?.name).toBe('Studio Mac');
  });
});
