// palyra.admin.v1.GatewayAdmin over real mTLS on 127.0.0.1: an in-process gateway, devices paired against it, and
// the role granted and withdrawn by `palyra devices grant-admin|revoke-admin` child processes on its state directory.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import type { DeviceStore } from '../../main/device/device-store.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import { createGatewayAdminClient } from '../../main/rpc/admin-service.js';
import type {
  AdminGatewayEvent__Output,
  DecidePairingRequestResponse__Output,
  GatewayAdminClient,
  GetAuditLogResponse__Output,
  RevokeDeviceResponse__Output,
} from '../../main/rpc/admin-service.js';
import { createGatewayChannelCredentials } from '../../main/rpc/tls-client.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli } from '../helpers/cli.js';
import { openTestDevice, pairWithAutoApproval, startGateway } from '../helpers/gateway.js';
import { certifiedClient, failureOf, nodeEvent, ok, openRawStream, rpc } from '../helpers/raw-pairing.js';
import type { RpcFailure, RpcOutcome } from '../helpers/raw-pairing.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const CALL_MS = 10_000;
const ISOLATED: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Paired {
  deviceId: string;
  store: DeviceStore;
  certificatePem: string;
  privateKeyPem: string;
}

async function gatewayUnderTest(extra: Parameters<typeof startGateway>[0] = {}): Promise<{ gateway: Gateway; stateDir: string }> {
  const g = await startGateway(extra);
  cleanups.push(g.cleanup);
  return g;
}

async function pairedDevice(gateway: Gateway): Promise<Paired> {
  const device = await openTestDevice();
  cleanups.push(device.cleanup);
  const result = await pairWithAutoApproval(gateway, device.store);
  const state = (await device.store.readState())!;
  return { deviceId: result.deviceId, store: device.store, certificatePem: state.certificate_pem!, privateKeyPem: (await device.store.loadTlsPrivateKeyPem())! };
}

function adminClient(gateway: Gateway, device: Paired | null): GatewayAdminClient {
  const credentials = createGatewayChannelCredentials(
    device === null
      ? { caCertificatePem: gateway.caCertificatePem }
      : { caCertificatePem: gateway.caCertificatePem, clientCertificatePem: device.certificatePem, clientPrivateKeyPem: device.privateKeyPem },
  );
  const client = createGatewayAdminClient(gateway.listen, credentials, ISOLATED);
  cleanups.push(() => {
    client.close();
  });
  return client;
}

type Callback<T> = (error: grpc.ServiceError | null, response?: T) => void;

function call<T>(invoke: (md: grpc.Metadata, o: grpc.CallOptions, cb: Callback<T>) => unknown): Promise<RpcOutcome<T>> {
  return new Promise((resolve) => {
    invoke(new grpc.Metadata(), { deadline: Date.now() + CALL_MS }, (error, response) => {
      if (error !== null) resolve({ ok: false, error: failureOf(error) });
      else resolve({ ok: true, response: response! });
    });
  });
}

/** Every unary admin RPC with a harmless request, by name. */
function everyUnary(c: GatewayAdminClient, someDeviceId: string): Record<string, () => Promise<RpcOutcome<unknown>>> {
  const requestId = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
  return {
    MintPairingCode: () => call((md, o, cb) => c.MintPairingCode({ method: 'pin' }, md, o, cb)),
    ListPairingRequests: () => call((md, o, cb) => c.ListPairingRequests({}, md, o, cb)),
    ApproveNodePairingRequest: () => call((md, o, cb) => c.ApproveNodePairingRequest({ request_id: requestId }, md, o, cb)),
    RejectNodePairingRequest: () => call((md, o, cb) => c.RejectNodePairingRequest({ request_id: requestId }, md, o, cb)),
    ListDevices: () => call((md, o, cb) => c.ListDevices({}, md, o, cb)),
    RevokeDevice: () => call((md, o, cb) => c.RevokeDevice({ device_id: someDeviceId }, md, o, cb)),
    RemoveDevice: () => call((md, o, cb) => c.RemoveDevice({ device_id: someDeviceId }, md, o, cb)),
    UnbanDevice: () => call((md, o, cb) => c.UnbanDevice({ device_id: someDeviceId }, md, o, cb)),
    GetAuditLog: () => call((md, o, cb) => c.GetAuditLog({ tail: 5 }, md, o, cb)),
  };
}

interface Watch {
  events: AdminGatewayEvent__Output[];
  ended: Promise<RpcFailure | null>;
  next(match: (e: AdminGatewayEvent__Output) => boolean, timeoutMs?: number): Promise<AdminGatewayEvent__Output>;
  /** Resolves once the server sent headers (the watch is registered). */
  established: Promise<void>;
}

function watch(client: GatewayAdminClient): Watch {
  const stream = client.WatchEvents({});
  cleanups.push(() => {
    stream.cancel();
  });
  const events: AdminGatewayEvent__Output[] = [];
  const waiters: { match: (e: AdminGatewayEvent__Output) => boolean; resolve: (e: AdminGatewayEvent__Output) => void }[] = [];
  const ended = new Promise<RpcFailure | null>((resolve) => {
    stream.on('error', (error: grpc.ServiceError) => {
      resolve(failureOf(error));
    });
    stream.on('end', () => {
      resolve(null);
    });
  });
  const established = new Promise<void>((resolve) => {
    stream.on('metadata', () => {
      resolve();
    });
    void ended.then(() => {
      resolve();
    });
  });
  stream.on('data', (event: AdminGatewayEvent__Output) => {
    events.push(event);
    for (const w of [...waiters]) {
      if (w.match(event)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(event);
      }
    }
  });
  return {
    events,
    ended,
    established,
    next: (match, timeoutMs = CALL_MS) => {
      const seen = events.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no matching event within ${timeoutMs} ms; saw ${events.map((e) => e.type).join(',')}`));
        }, timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
  };
}

async function grantAdmin(stateDir: string, deviceId: string): Promise<void> {
  const result = await runCli(['devices', 'grant-admin', deviceId, '--state-dir', stateDir]);
  expect(result.code, result.stderr).toBe(0);
}

/** Waits (bounded) until the in-process gateway has loaded the role change made by another process. */
async function untilAdmin(gateway: Gateway, deviceId: string, admin: boolean): Promise<void> {
  await waitFor(() => gateway.admin.isAdmin(deviceId) === admin, { what: `the gateway to see ${deviceId} ${admin ? 'granted' : 'without'} the admin role` });
}

describe('palyra.admin.v1.GatewayAdmin authorisation', () => {
  it('refuses a caller without a client certificate (UNAUTHENTICATED) and a paired non-admin device (PERMISSION_DENIED) on every RPC', async () => {
    const { gateway } = await gatewayUnderTest();
    const plain = await pairedDevice(gateway);
    const anonymous = adminClient(gateway, null);
    const nonAdmin = adminClient(gateway, plain);
    for (const [name, invoke] of Object.entries(everyUnary(anonymous, plain.deviceId))) {
      const outcome = await invoke();
      expect({ name, ok: outcome.ok }).toEqual({ name, ok: false });
      if (!outcome.ok) expect({ name, code: outcome.error.code, palyra: outcome.error.palyraCode }).toEqual({ name, code: grpc.status.UNAUTHENTICATED, palyra: 'unauthenticated' });
    }
    for (const [name, invoke] of Object.entries(everyUnary(nonAdmin, plain.deviceId))) {
      const outcome = await invoke();
      expect({ name, ok: outcome.ok }).toEqual({ name, ok: false });
      if (!outcome.ok) {
        expect({ name, code: outcome.error.code, palyra: outcome.error.palyraCode }).toEqual({ name, code: grpc.status.PERMISSION_DENIED, palyra: 'permission_denied' });
        expect(outcome.error.details).toBe('admin role required');
      }
    }
    expect(await watch(anonymous).ended).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    expect(await watch(nonAdmin).ended).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'admin role required' });
    // Nothing happened: the non-admin's attempted revoke did not revoke it.
    expect(gateway.admin.identity.isDeviceRevoked(plain.deviceId)).toBe(false);
  }, 60_000);

  it('refuses every call with the insecure opt-out (FAILED_PRECONDITION)', async () => {
    const { gateway } = await gatewayUnderTest({ insecureNodeRpcOptOut: true });
    const anonymous = adminClient(gateway, null);
    for (const [name, invoke] of Object.entries(everyUnary(anonymous, '01ARZ3NDEKTSV4RRFFQ69G5FAV'))) {
      const outcome = await invoke();
      expect({ name, ok: outcome.ok }).toEqual({ name, ok: false });
      if (!outcome.ok) {
        expect({ name, code: outcome.error.code, palyra: outcome.error.palyraCode }).toEqual({ name, code: grpc.status.FAILED_PRECONDITION, palyra: 'remote_admin_requires_mtls' });
        expect(outcome.error.details).toBe('remote administration requires mTLS');
      }
    }
    expect(await watch(anonymous).ended).toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
  }, 60_000);
});

describe('palyra.admin.v1.GatewayAdmin operations', () => {
  it('an admin granted by the CLI mints, lists, approves a pairing device, revokes it (its stream ends), and is refused once revoked itself', async () => {
    const { gateway, stateDir } = await gatewayUnderTest();
    const adminDevice = await pairedDevice(gateway);
    await grantAdmin(stateDir, adminDevice.deviceId);
    await untilAdmin(gateway, adminDevice.deviceId, true);
    const client = adminClient(gateway, adminDevice);
    const events = watch(client);
    await events.established;

    const minted = await ok(call<{ method: string; code: string; uri: string; expires_at_unix_ms: number }>((md, o, cb) => client.MintPairingCode({ method: 'qr', client_kind: 'desktop' }, md, o, cb)));
    expect(minted.method).toBe('qr');
    expect(minted.uri).toMatch(/^palyra:/);
    expect(gateway.admin.listCodes().some((c) => c.issued_by === `admin:${adminDevice.deviceId}`)).toBe(true);

    const listed = await ok(call<{ devices: { device_id: string; roles: string[]; status: string; online: boolean }[] }>((md, o, cb) => client.ListDevices({}, md, o, cb)));
    expect(listed.devices.find((d) => d.device_id === adminDevice.deviceId)).toMatchObject({ status: 'paired', roles: ['admin'] });

    // A third device pairs with the remotely minted code; the admin sees the request arrive and approves it remotely.
    const other = await openTestDevice();
    cleanups.push(other.cleanup);
    let requestId: string | null = null;
    const pairing = pairDevice({
      store: other.store,
      target: { method: 'qr', uri: parsePairingUri(minted.uri, { now: Date.now() }) },
      kind: 'desktop',
      onProgress: (event) => {
        if (event.type === 'awaiting_approval') requestId = event.request_id;
      },
    });
    const created = await events.next((e) => e.type === 'request.created');
    expect(created.request).toMatchObject({ state: 'pending_approval', client_kind: 'desktop', method: 'qr' });
    const pending = await ok(call<{ requests: { request_id: string; state: string; sas: string }[] }>((md, o, cb) => client.ListPairingRequests({ state: 'pending_approval' }, md, o, cb)));
    expect(pending.requests.map((r) => r.request_id)).toEqual([created.request!.request_id]);
    const approved = await ok(call<DecidePairingRequestResponse__Output>((md, o, cb) => client.ApproveNodePairingRequest({ request_id: created.request!.request_id }, md, o, cb)));
    expect(approved.request?.state).toBe('approved');
    const paired = await pairing;
    expect(requestId).toBe(created.request!.request_id);
    expect(paired.deviceId).toBe(approved.request?.device_id);
    await events.next((e) => e.type === 'device.paired' && e.device_id === paired.deviceId);

    // Same state machine as the local API: approving again is refused with the local error code.
    const twice = await call((md, o, cb) => client.ApproveNodePairingRequest({ request_id: created.request!.request_id }, md, o, cb));
    expect(twice.ok).toBe(false);
    if (!twice.ok) expect(twice.error.palyraCode).toBe('pairing_request_not_pending');

    // The new device connects; the admin revokes it remotely; its stream ends.
    const state = (await other.store.readState())!;
    const node = certifiedClient({ listen: gateway.listen, caCertificatePem: gateway.caCertificatePem }, state.certificate_pem!, (await other.store.loadTlsPrivateKeyPem())!);
    cleanups.push(() => {
      node.close();
    });
    await ok(rpc.register(node, { v: 1, device_id: { ulid: paired.deviceId }, platform: 'test' }));
    const stream = openRawStream(node);
    cleanups.push(() => {
      stream.cancel();
    });
    expect((await stream.roundTrip(nodeEvent(paired.deviceId, 'node.started'))).accepted).toBe(true);
    await events.next((e) => e.type === 'node.online' && e.device_id === paired.deviceId);
    const revoked = await ok(call<RevokeDeviceResponse__Output>((md, o, cb) => client.RevokeDevice({ device_id: paired.deviceId, reason: 'remote test' }, md, o, cb)));
    expect(revoked.device).toMatchObject({ status: 'revoked', revoked_reason: 'remote test' });
    await withDeadline(stream.ended, { what: "the remotely revoked device's stream to end" });
    await events.next((e) => e.type === 'device.revoked' && e.device_id === paired.deviceId && e.reason === 'remote test');

    const audit = await ok(call<GetAuditLogResponse__Output>((md, o, cb) => client.GetAuditLog({ tail: 50 }, md, o, cb)));
    expect(audit.chain?.ok).toBe(true);
    expect(audit.entries.map((e) => e.event)).toEqual(expect.arrayContaining(['role_granted', 'pairing_approved', 'device_revoked']));

    // The admin device itself revoked: a new connection with its certificate is refused with a coded status.
    await gateway.admin.revokeDevice(adminDevice.deviceId, 'lost');
    // Its open WatchEvents stream ends first (the revocation closed its connection); a new connection is refused.
    expect(await withDeadline(events.ended, { what: "the revoked admin's WatchEvents stream to end" })).not.toBeNull();
    const fresh = adminClient(gateway, adminDevice);
    const refused = await call((md, o, cb) => fresh.ListDevices({}, md, o, cb));
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(refused.error.details).toContain('revoked');
    }
  }, 90_000);

  it('ends a WatchEvents stream promptly when `palyra devices revoke-admin` withdraws the role, and refuses the next call', async () => {
    const { gateway, stateDir } = await gatewayUnderTest();
    const adminDevice = await pairedDevice(gateway);
    await grantAdmin(stateDir, adminDevice.deviceId);
    await untilAdmin(gateway, adminDevice.deviceId, true);
    const client = adminClient(gateway, adminDevice);
    const events = watch(client);
    await events.established;

    const revoke = await runCli(['devices', 'revoke-admin', adminDevice.deviceId, '--state-dir', stateDir]);
    expect(revoke.code, revoke.stderr).toBe(0);
    // The gateway ends the stream itself once it sees the change (how soon: test/bench/admin.bench.mjs).
    const failure = await withDeadline(events.ended, { what: 'WatchEvents to end after the role was withdrawn' });
    expect(failure).toMatchObject({ code: grpc.status.PERMISSION_DENIED, palyraCode: 'permission_denied', details: 'admin role required' });

    // Still paired and connected, but no longer an admin: the next call on the same connection is refused.
    const next = await call((md, o, cb) => client.ListDevices({}, md, o, cb));
    expect(next.ok).toBe(false);
    if (!next.ok) expect(next.error.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(gateway.admin.identity.pairedDevice(adminDevice.deviceId)).toBeDefined();
  }, 60_000);

  it('WatchEvents delivers request.created when a third device starts pairing', async () => {
    const { gateway, stateDir } = await gatewayUnderTest();
    const adminDevice = await pairedDevice(gateway);
    await grantAdmin(stateDir, adminDevice.deviceId);
    await untilAdmin(gateway, adminDevice.deviceId, true);
    await pairedDevice(gateway);
    const events = watch(adminClient(gateway, adminDevice));
    await events.established;

    const third = await openTestDevice();
    cleanups.push(third.cleanup);
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'node', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: gateway.name });
    const controller = new AbortController();
    const pairing = pairDevice({
      store: third.store,
      target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) },
      kind: 'node',
      signal: controller.signal,
    }).catch(() => undefined);
    const created = await events.next((e) => e.type === 'request.created');
    expect(created.request).toMatchObject({ state: 'pending_approval', client_kind: 'node', sas_verifiable: expect.any(Boolean) });
    expect(created.request!.sas).not.toBe('');
    expect(created.device_id).toBe(created.request!.device_id);
    await gateway.admin.reject(created.request!.request_id, 'not today');
    const updated = await events.next((e) => e.type === 'request.updated');
    expect(updated.request).toMatchObject({ state: 'rejected', reason: 'not today' });
    controller.abort();
    await pairing;
  }, 60_000);
});
