// The pairing request's lifecycle across processes and restarts (issue 12 A–C), over real TLS on 127.0.0.1 with real
// state directories: a device's cancel reaches the gateway (CancelPairingRequest, proven by the device key); a waiting
// device keeps polling across a gateway restart; a decision made by a `palyra` child process is seen by the very next
// status read.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { newUlid } from '../../main/core/ids.js';
import { signPairingCancel, pairingCancelPayload } from '../../main/core/pairing-cancel.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairingProgress } from '../../main/device/pairing-client.js';
import { Gateway } from '../../main/gateway/gateway.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { PairingService } from '../../main/gateway/pairing-service.js';
import type { NodeServiceClient } from '../../main/rpc/node-service.js';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCliJson } from '../helpers/cli.js';
import { openTestDevice, startGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/identity.js';
import { anonymousClient, flipBit, ok, pairRawDevice, refused, requestPairing, rpc } from '../helpers/raw-pairing.js';
import type { RawDevice } from '../helpers/raw-pairing.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const S = grpc.status;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  await ensureBuilt();
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function gatewayWithClient(): Promise<{ gateway: Gateway; stateDir: string; anon: NodeServiceClient }> {
  const { gateway, stateDir, cleanup } = await startGateway();
  cleanups.push(cleanup);
  const anon = anonymousClient(gateway);
  cleanups.push(() => {
    anon.close();
  });
  return { gateway, stateDir, anon };
}

function cancelRequest(device: RawDevice, requestId: string, signature?: Uint8Array) {
  return { v: 1, session_id: requestId, device_id: { ulid: device.deviceId }, cancel_signature: Buffer.from(signature ?? signPairingCancel(device.identity, requestId)) };
}

describe('CancelPairingRequest', () => {
  it('signs exactly "palyra-cancel-v1" ‖ session_id ‖ device_id', () => {
    const session = newUlid(1_700_000_000_000);
    const device = DeviceIdentity.generate().deviceId;
    expect(Buffer.from(pairingCancelPayload(session, device)).toString('utf8')).toBe(`palyra-cancel-v1${session}${device}`);
  });

  it('refuses a cancel not proven by the key the request was filed with, and leaves the request pending', async () => {
    const { gateway, anon } = await gatewayWithClient();
    const { device, requestId } = await requestPairing(gateway, anon);
    const good = cancelRequest(device, requestId);
    const flipped = await refused(rpc.cancel(anon, { ...good, cancel_signature: flipBit(good.cancel_signature, 10, 2) }));
    expect({ code: flipped.code, palyraCode: flipped.palyraCode }).toEqual({ code: S.FAILED_PRECONDITION, palyraCode: 'signature_verification_failed' });
    // Another key signing for this device id: not the key of the request.
    const stranger = DeviceIdentity.generate();
    const forged = await refused(rpc.cancel(anon, { ...good, cancel_signature: Buffer.from(stranger.sign(pairingCancelPayload(requestId, device.deviceId))) }));
    expect(forged.palyraCode).toBe('signature_verification_failed');
    // A device naming itself correctly, but the request is someone else's.
    const other = await refused(rpc.cancel(anon, { ...good, device_id: { ulid: stranger.deviceId }, cancel_signature: Buffer.from(signPairingCancel(stranger, requestId)) }));
    expect({ code: other.code, palyraCode: other.palyraCode }).toEqual({ code: S.PERMISSION_DENIED, palyraCode: 'pairing_request_forbidden' });
    const unknown = await refused(rpc.cancel(anon, cancelRequest(device, newUlid(Date.now()))));
    expect({ code: unknown.code, palyraCode: unknown.palyraCode }).toEqual({ code: S.NOT_FOUND, palyraCode: 'pairing_request_not_found' });
    const short = await refused(rpc.cancel(anon, { ...good, cancel_signature: Buffer.alloc(63) }));
    expect({ code: short.code, details: short.details }).toEqual({ code: S.INVALID_ARGUMENT, details: 'cancel_signature must be 64 bytes' });
    expect(gateway.admin.request(requestId)?.state).toBe('pending_approval');
  });

  it('makes the request cancelled (terminal, idempotent), shown by pairing list; approve is then not pending', async () => {
    const { gateway, stateDir, anon } = await gatewayWithClient();
    const { device, requestId } = await requestPairing(gateway, anon);
    expect(await ok(rpc.cancel(anon, cancelRequest(device, requestId)))).toEqual({ v: 1, status: 'cancelled', reason: 'cancelled_by_device', changed: true });
    expect(await ok(rpc.cancel(anon, cancelRequest(device, requestId)))).toEqual({ v: 1, status: 'cancelled', reason: 'cancelled_by_device', changed: false });
    const status = await ok(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } }));
    expect({ status: status.status, paired: status.paired, reason: status.reason }).toEqual({ status: 'cancelled', paired: false, reason: 'cancelled_by_device' });
    await expect(gateway.admin.approve(requestId)).rejects.toMatchObject({ code: 'pairing_request_not_pending' });
    // The host's listing (the CLI in another process; the app and the admin RPC use the same list).
    const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
    expect(listed.json).toMatchObject({ requests: [{ request_id: requestId, state: 'cancelled', reason: 'cancelled_by_device' }] });
    const filtered = await runCliJson(['pairing', 'list', '--state', 'cancelled', '--state-dir', stateDir]);
    expect((filtered.json as { requests: unknown[] }).requests).toHaveLength(1);
    const approve = await runCliJson(['pairing', 'approve', requestId, '--state-dir', stateDir]);
    expect(approve.json).toEqual({ error: { code: 'pairing_request_not_pending', message: expect.stringContaining('cancelled') } });
    expect((await gateway.admin.auditTail(50)).entries.filter((e) => e.event === 'pairing_cancelled')).toHaveLength(1);
  });

  it('refuses to cancel a completed request (pairing_request_not_pending)', async () => {
    const { gateway, anon } = await gatewayWithClient();
    const paired = await pairRawDevice(gateway, anon);
    const failure = await refused(rpc.cancel(anon, cancelRequest(paired.device, paired.requestId)));
    expect({ code: failure.code, palyraCode: failure.palyraCode }).toEqual({ code: S.FAILED_PRECONDITION, palyraCode: 'pairing_request_not_pending' });
    expect(gateway.admin.request(paired.requestId)?.state).toBe('completed');
  });
});

describe('a device waiting for approval', () => {
  it('keeps polling across a gateway restart, says "reconnecting", and pairs once the restarted gateway approves', async () => {
    const { dir: stateDir, cleanup: removeState } = await tempDir('palyra-restart-');
    cleanups.push(removeState);
    const options = { stateDir, name: null, insecureNodeRpcOptOut: false, allowServerGeneratedKeys: false, allowLegacyDeviceIds: false, keychain: null } as const;
    const first = await Gateway.start({ ...options, listen: { host: '127.0.0.1', port: 0 } });
    let running: Gateway | null = first;
    cleanups.push(async () => {
      await running?.stop();
    });
    const port = Number(first.listen.split(':').at(-1));
    const device = await openTestDevice();
    cleanups.push(device.cleanup);
    const minted = await first.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [first.listen], gatewayName: null });
    const events: PairingProgress[] = [];
    const pairing = pairDevice({ store: device.store, target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) }, kind: 'desktop', onProgress: (e) => events.push(e) });
    const awaiting = await waitFor(() => events.find((e): e is Extract<PairingProgress, { type: 'awaiting_approval' }> => e.type === 'awaiting_approval'), { what: 'the request to be filed' });

    await first.stop();
    running = null;
    await waitFor(() => events.some((e) => e.type === 'reconnecting'), { what: 'the device to report reconnecting' });
    const second = await Gateway.start({ ...options, listen: { host: '127.0.0.1', port } });
    running = second;
    // The request survived the restart; the restarted gateway approves it and the waiting device gets its certificate.
    await second.admin.approve(awaiting.request_id);
    const result = await withDeadline(pairing, { what: 'the device to pair with the restarted gateway' });
    expect(result.state.paired).toBe(true);
    const reconnecting = events.find((e) => e.type === 'reconnecting');
    // The held long-poll ends CANCELLED when the gateway goes down; later attempts find nobody (UNAVAILABLE).
    expect(reconnecting).toMatchObject({ type: 'reconnecting', request_id: awaiting.request_id, code: expect.stringMatching(/^(cancelled|gateway_unreachable)$/), attempt: 1 });
    expect(events.filter((e) => e.type === 'failed')).toEqual([]);
    expect(events.at(-1)?.type).toBe('paired');
  });

  it('does not give up on an unreachable gateway before its own deadline: it ends with timeout, not gateway_unreachable', async () => {
    const { gateway, cleanup } = await startGateway();
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await cleanup();
    });
    const device = await openTestDevice();
    cleanups.push(device.cleanup);
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: null });
    const events: PairingProgress[] = [];
    const pairing = pairDevice({ store: device.store, target: { method: 'qr', uri: parsePairingUri(minted.uri!, { now: Date.now() }) }, kind: 'desktop', waitMs: 4_000, onProgress: (e) => events.push(e) });
    await waitFor(() => events.some((e) => e.type === 'awaiting_approval'), { what: 'the request to be filed' });
    await cleanup();
    stopped = true;
    await expect(withDeadline(pairing, { what: 'the device to give up at its deadline' })).rejects.toMatchObject({ code: 'timeout' });
    expect(events.filter((e) => e.type === 'reconnecting').length).toBeGreaterThanOrEqual(2);
  });
});

describe('a decision made by another process', () => {
  it('is seen by the very next status read after that process exited', async () => {
    const { gateway, stateDir, anon } = await gatewayWithClient();
    const { device, requestId } = await requestPairing(gateway, anon);
    // A second reader of the same state with no file watcher: only the read itself can notice the change.
    const admin = await GatewayAdmin.open({ stateDir, keychain: null });
    cleanups.push(() => admin.close());
    const service = new PairingService({ admin });
    cleanups.push(() => service.close());
    expect((await service.status({ sessionId: requestId, deviceId: device.deviceId, waitMs: 0 })).request.state).toBe('pending_approval');

    const rejected = await runCliJson(['pairing', 'reject', requestId, '--reason', 'not mine', '--state-dir', stateDir], { env: cliEnv() });
    expect(rejected.code).toBe(0);
    const after = await service.status({ sessionId: requestId, deviceId: device.deviceId, waitMs: 0 });
    expect({ state: after.request.state, reason: after.request.decisionReason }).toEqual({ state: 'rejected', reason: 'not mine' });
    // And through the running gateway's RPC.
    const status = await ok(rpc.status(anon, { v: 1, session_id: requestId, device_id: { ulid: device.deviceId } }));
    expect(status.status).toBe('rejected');
  });
});
