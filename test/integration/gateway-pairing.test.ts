// The whole pairing flow over real TLS on 127.0.0.1: mint → Begin → Complete with CSR → pending with SAS →
// approve → long-poll returns the certificate → RegisterNode and a stream over mTLS → revoke closes the stream.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PalyraError } from '../../main/core/errors.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairingProgress } from '../../main/device/pairing-client.js';
import type { Gateway } from '../../main/gateway/gateway.js';
import type { DeviceStore } from '../../main/device/device-store.js';
import type { NodeEventResponse__Output, RegisterNodeResponse__Output } from '../../main/rpc/node-service.js';
import { mtlsClient, openTestDevice, pairWithAutoApproval, startGateway, unary } from '../helpers/gateway.js';
import { settledFlag, waitFor, withDeadline } from '../helpers/wait.js';

describe('gateway pairing over TLS', () => {
  let gateway: Gateway;
  let store: DeviceStore;
  const cleanups: (() => Promise<void>)[] = [];
  beforeEach(async () => {
    const g = await startGateway();
    gateway = g.gateway;
    cleanups.push(g.cleanup);
    const d = await openTestDevice();
    store = d.store;
    cleanups.push(d.cleanup);
  });
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  it('pairs a device by QR with operator approval and shows the same SAS on both sides', async () => {
    const events: PairingProgress[] = [];
    const result = await pairWithAutoApproval(gateway, store, events);
    expect(events.map((e) => e.type)).toEqual(['connecting', 'verifying_gateway', 'awaiting_approval', 'paired']);
    const awaiting = events.find((e) => e.type === 'awaiting_approval');
    const requests = gateway.admin.listRequests();
    expect(requests).toHaveLength(1);
    expect(requests[0]!.state).toBe('completed');
    expect(awaiting?.type === 'awaiting_approval' && awaiting.sas).toBe(requests[0]!.sas);
    expect(requests[0]!.sas_verifiable).toBe(true);
    expect(gateway.admin.identity.pairedDevice(result.deviceId)?.current_certificate.fingerprint).toBe(result.state.certificate_fingerprint);
    expect(result.state.gateway?.pinned_by).toBe('qr');
    expect(gateway.admin.listCodes()).toEqual([]);
  });

  it('registers the node and keeps a stream over mTLS, then revocation closes it', async () => {
    const { deviceId } = await pairWithAutoApproval(gateway, store);
    const client = await mtlsClient(gateway, store);
    try {
      const registered = await unary<RegisterNodeResponse__Output>((cb) =>
        client.RegisterNode({ v: 1, device_id: { ulid: deviceId }, platform: 'linux-x64', capabilities: [{ name: 'echo', available: true }] }, cb),
      );
      expect(registered).toMatchObject({ accepted: true, reason: 'registered', device_id: { ulid: deviceId } });
      const stream = client.StreamNodeEvents();
      const first = new Promise<NodeEventResponse__Output>((resolve) => stream.once('data', resolve));
      stream.write({ v: 1, device_id: { ulid: deviceId }, event_name: 'node.started', payload_json: Buffer.from('{}') });
      expect((await first).accepted).toBe(true);
      const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
      await gateway.admin.revokeDevice(deviceId, 'test revocation');
      // The gateway ends the stream itself (test/bench/gateway.bench.mjs reports how soon).
      const error = await withDeadline(ended, { what: 'the revoked device\'s stream to end' });
      expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED]).toContain(error.code);
      // A new call with the revoked certificate fails at the handshake.
      const again = createFreshClientError(gateway, store);
      await expect(again).resolves.toBeDefined();
    } finally {
      client.close();
    }
  });

  it('refuses a QR code whose CA pin does not match the gateway (nothing sent beyond the handshake)', async () => {
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: null });
    const uri = parsePairingUri(minted.uri!, { now: Date.now() });
    const forged = { ...uri, caPin: 'A'.repeat(43) };
    await expect(pairDevice({ store, target: { method: 'qr', uri: forged }, kind: 'desktop' })).rejects.toMatchObject({ code: 'ca_pin_mismatch' });
    expect(gateway.admin.listCodes()).toHaveLength(1); // the code was never presented
  });

  it('cancels a pairing that is waiting for approval without waiting for the long-poll to end', async () => {
    const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: null });
    const uri = parsePairingUri(minted.uri!, { now: Date.now() });
    // The gateway's side of the status long-poll, observed: when it is entered and whether it has returned yet.
    const polls: { settled: () => boolean }[] = [];
    const status = gateway.pairing.status.bind(gateway.pairing);
    let polled: () => void = () => undefined;
    const firstPoll = new Promise<void>((resolve) => (polled = resolve));
    gateway.pairing.status = (input) => {
      const held = status(input);
      polls.push(settledFlag(held));
      polled();
      return held;
    };
    const controller = new AbortController();
    const pairing = pairDevice({ store, target: { method: 'qr', uri }, kind: 'desktop', signal: controller.signal });
    // Abort once the status long-poll (held up to 25 s by the gateway while the request is pending) is under way.
    await withDeadline(firstPoll, { what: 'the status long-poll to reach the gateway' });
    controller.abort();
    await expect(withDeadline(pairing, { what: 'the cancelled pairing to settle' })).rejects.toMatchObject({ code: 'cancelled', details: { cancelled_at_gateway: true } });
    // The device gave up without waiting for the long-poll to end, and told the gateway: the request is cancelled.
    expect(polls).toHaveLength(1);
    const [request] = gateway.admin.listRequests();
    expect(request).toMatchObject({ state: 'cancelled', reason: 'cancelled_by_device' });
    // The cancel is a change like a decision: it ends the held long-poll.
    await waitFor(() => polls[0]!.settled(), { what: 'the held long-poll to return after the cancel' });
    // Terminal: the operator can no longer approve it.
    await expect(gateway.admin.approve(request!.request_id)).rejects.toMatchObject({ code: 'pairing_request_not_pending' });
  });

  it('answers pairing_rejected when the operator rejects', async () => {
    const minted = await gateway.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
    const events: PairingProgress[] = [];
    const pairing = pairDevice({
      store,
      target: { method: 'pin', pin: minted.code, gateway: gateway.listen },
      kind: 'node',
      onProgress: (e) => {
        events.push(e);
        if (e.type === 'awaiting_approval') void gateway.admin.reject(e.request_id, 'not mine');
      },
    });
    await expect(pairing).rejects.toMatchObject({ code: 'pairing_rejected' });
    expect(events.at(-1)).toEqual({ type: 'rejected', reason: 'not mine' });
  });

  it('refuses a wrong PIN and trips the guessing budget after 20 failures', async () => {
    const minted = await gateway.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
    const wrong = minted.code === '000000' ? '000001' : '000000';
    const codes: string[] = [];
    // PIN pairing v2: each wrong PIN fails key confirmation, and each answered exchange is a guess on the gateway.
    for (let i = 0; i < 21; i++) {
      try {
        await pairDevice({ store, target: { method: 'pin', pin: wrong, gateway: gateway.listen }, kind: 'node' });
      } catch (e) {
        codes.push((e as PalyraError).code);
      }
    }
    expect(codes.slice(0, 20)).toEqual(Array(20).fill('pake_confirmation_failed'));
    // The device's own limit (20 per gateway CA) stops it before it asks again.
    expect(codes[20]).toBe('pake_attempts_exhausted');
    // Another device: the gateway's budget has 20 guesses in it, so even the right PIN is refused now.
    const other = await openTestDevice();
    cleanups.push(other.cleanup);
    await expect(pairDevice({ store: other.store, target: { method: 'pin', pin: wrong, gateway: gateway.listen }, kind: 'node' })).rejects.toMatchObject({ code: 'pairing_budget_exhausted' });
    await expect(pairDevice({ store: other.store, target: { method: 'pin', pin: minted.code, gateway: gateway.listen }, kind: 'node' })).rejects.toMatchObject({ code: 'pairing_budget_exhausted' });
    // A new PIN code resets the budget.
    const fresh = await gateway.admin.mintCode({ method: 'pin', kind: 'node', issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
    const events: PairingProgress[] = [];
    const ok = pairDevice({
      store: other.store,
      target: { method: 'pin', pin: fresh.code, gateway: gateway.listen },
      kind: 'node',
      onProgress: (e) => {
        events.push(e);
        if (e.type === 'awaiting_approval') void gateway.admin.approve(e.request_id);
      },
    });
    await expect(ok).resolves.toMatchObject({ deviceId: expect.any(String) });
    expect(events.find((e) => e.type === 'verifying_gateway')).toMatchObject({ pinned: false });
  }, 60_000);
});

async function createFreshClientError(gateway: Gateway, store: DeviceStore): Promise<grpc.ServiceError> {
  const client = await mtlsClient(gateway, store);
  try {
    const state = await store.readState();
    return await new Promise<grpc.ServiceError>((resolve, reject) => {
      client.RegisterNode({ v: 1, device_id: { ulid: state!.device_id }, platform: 'x' }, { deadline: Date.now() + 5000 }, (error) => {
        if (error === null) reject(new Error('a revoked certificate was accepted'));
        else resolve(error);
      });
    });
  } finally {
    client.close();
  }
}

