// PIN pairing v2: every failed confirmation counts one guess durably, on both sides. Real `palyra gateway run`
// processes are SIGKILLed between guesses (no close(), nothing flushed on the way out) and the device store is
// reopened for every attempt (an app restart): the gateway still refuses after 20 answered exchanges in total, the
// device still refuses its 21st try against that CA (PROTOCOL.md 5b.3, 5b.4).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../main/core/device-identity.js';
import { pinProverSecret } from '../../main/core/pin-hash.js';
import { DEVICE_PAKE_FAILURE_LIMIT } from '../../main/core/pin-pairing-v2.js';
import { proverStart } from '../../main/core/spake2plus.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { PairingService } from '../../main/gateway/pairing-service.js';
import { pakeFailures } from '../../main/device/pake-attempts.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import { DeviceStore } from '../../main/device/device-store.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import type { BeginPinPairingSessionResponse__Output } from '../../main/rpc/generated/palyra/node/v1/BeginPinPairingSessionResponse.js';
import { callUnary } from '../../main/rpc/rpc-errors.js';
import { createGatewayChannelCredentials, createNodeServiceClient, probeGatewayCertificateChain } from '../../main/rpc/tls-client.js';
import { encodePem } from '../../main/core/pem.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCliJson, startGatewayProcess, type GatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

async function dir(prefix: string): Promise<string> {
  const d = await tempDir(prefix);
  cleanups.push(d.cleanup);
  return d.dir;
}

async function runGateway(stateDir: string): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(stateDir);
  cleanups.push(() => gateway.kill());
  return gateway;
}

/** A crash: SIGKILL, so nothing the process holds in memory reaches the state. */
async function crash(gateway: GatewayProcess): Promise<void> {
  gateway.child.kill('SIGKILL');
  expect((await gateway.exited).signal).toBe('SIGKILL');
}

/** "The app restarted": a fresh DeviceStore over the same directory (the failure count lives in a file). */
function reopen(deviceDir: string, keychain: MemoryKeychain): Promise<DeviceStore> {
  return DeviceStore.open({ deviceDir, keychain: 'os', osKeychain: keychain });
}

/** BeginPinPairingSession from a fresh identity, as any client would send it: the gateway's budget decides. */
async function beginFrom(listen: string): Promise<BeginPinPairingSessionResponse__Output> {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  const { chainDer } = await probeGatewayCertificateChain(host, Number(listen.slice(listen.lastIndexOf(':') + 1)));
  const client = createNodeServiceClient(listen, createGatewayChannelCredentials({ caCertificatePem: encodePem(chainDer[chainDer.length - 1]!, 'CERTIFICATE') }));
  try {
    const identity = DeviceIdentity.generate();
    const commitment = x25519Commitment(generatePairingKeyExchange().publicKey);
    return await callUnary<BeginPinPairingSessionResponse__Output>(
      (md, opts, cb) => client.BeginPinPairingSession({ v: 1, client_kind: 'node', device_id: { ulid: identity.deviceId }, device_x25519_commitment: Buffer.from(commitment) }, md, opts, cb),
      10_000,
    );
  } finally {
    client.close();
  }
}

describe('PIN pairing v2 guesses are durable', () => {
  it('a gateway killed between guesses and a device app restarted for each still count every failed confirmation', async () => {
    const stateDir = await dir('palyra-pake-durable-gw-');
    const deviceDir = await dir('palyra-pake-durable-dev-');
    const keychain = new MemoryKeychain();
    let gateway = await runGateway(stateDir);
    const minted = (await runCliJson(['pairing', 'code', '--method', 'pin', '--json', '--state-dir', stateDir])).json as { code: string };
    const wrongPin = String((Number(minted.code) + 1) % 1_000_000).padStart(6, '0');
    const caPin = gateway.ready.ca_pin;

    const guess = async (): Promise<unknown> => {
      const store = await reopen(deviceDir, keychain);
      return pairDevice({ store, target: { method: 'pin', pin: wrongPin, gateway: gateway.ready.listen }, kind: 'node' }).then(
        () => null,
        (e: unknown) => e,
      );
    };

    // Guess 1 on the first gateway, then a crash; guess 2 on the second, a crash; guesses 3..20 on the third.
    expect(await guess()).toMatchObject({ code: 'pake_confirmation_failed', details: { device_failures: 1, limit: DEVICE_PAKE_FAILURE_LIMIT } });
    await crash(gateway);
    gateway = await runGateway(stateDir);
    expect(await guess()).toMatchObject({ code: 'pake_confirmation_failed', details: { device_failures: 2 } });
    await crash(gateway);
    gateway = await runGateway(stateDir);
    // Both guesses of the killed gateways are still on the books: the budget check counts them at once.
    for (let n = 3; n <= DEVICE_PAKE_FAILURE_LIMIT; n += 1) {
      expect(await guess()).toMatchObject({ code: 'pake_confirmation_failed', details: { device_failures: n } });
    }

    // The gateway: 20 answered exchanges for this code, 2 of them by processes that died without writing anything.
    await expect(beginFrom(gateway.ready.listen)).rejects.toMatchObject({ code: 'pairing_budget_exhausted' });
    // The device: after an app restart it still refuses a 21st exchange with that CA, before sending anything.
    expect(await pakeFailures(deviceDir, caPin)).toBe(DEVICE_PAKE_FAILURE_LIMIT);
    expect(await guess()).toMatchObject({ code: 'pake_attempts_exhausted', details: { failures: DEVICE_PAKE_FAILURE_LIMIT, limit: DEVICE_PAKE_FAILURE_LIMIT } });

    // And once more after a crash: what was counted in memory only (the 18 of the last gateway) is durable too.
    await crash(gateway);
    gateway = await runGateway(stateDir);
    await expect(beginFrom(gateway.ready.listen)).rejects.toMatchObject({ code: 'pairing_budget_exhausted' });
  }, 180_000);

  it('a guess left by a gateway that died counts once, at its expiry, even if that gateway’s memory comes back', async () => {
    const stateDir = await dir('palyra-pake-durable-settle-');
    let now = 1_800_000_000_000;
    const clock = (): number => now;
    const timers = { set: () => null, clear: () => undefined };
    // A: the gateway that "dies" (never closed until the very end, so its guess is in its memory only).
    const adminA = await GatewayAdmin.open({ stateDir, keychain: null, clock });
    cleanups.push(() => adminA.close());
    const serviceA = new PairingService({ admin: adminA, clock, timers });
    const pin = (await adminA.mintCode({ method: 'pin', kind: null, ttlMs: 3_600_000, issuedBy: 'test', gatewayAddresses: [], gatewayName: null })).code;
    const wrongPin = String((Number(pin) + 1) % 1_000_000).padStart(6, '0');
    const begin = (service: PairingService) =>
      service.beginPake({ clientKind: 'node', deviceId: DeviceIdentity.generate().deviceId, commitment: x25519Commitment(generatePairingKeyExchange().publicKey), source: '203.0.113.9' });
    const { session, salt } = await begin(serviceA);
    await serviceA.exchangePake({ sessionId: session.sessionId, shareP: proverStart(pinProverSecret(wrongPin, salt)).shareP });
    expect([...adminA.runtime.pakeGuesses.keys()]).toEqual([session.sessionId]);

    // B: the gateway started after the crash, on the same state. The guess is on the books before its expiry
    // (counted by every budget check) and becomes a recorded failure after it, at B's next PIN call.
    const adminB = await GatewayAdmin.open({ stateDir, keychain: null, clock });
    cleanups.push(() => adminB.close());
    const serviceB = new PairingService({ admin: adminB, clock, timers });
    expect(adminB.runtime.pakeGuesses.get(session.sessionId)).toMatchObject({ source: '203.0.113.9', expiresAtUnixMs: session.expiresAtUnixMs });
    expect(adminB.runtime.pinFailuresSinceMint).toBe(0);
    now = session.expiresAtUnixMs + 1;
    await begin(serviceB);
    await serviceB.close();
    expect(adminB.runtime.pinFailuresSinceMint).toBe(1);
    expect(adminB.runtime.pakeGuesses.size).toBe(0);
    expect(adminB.runtime.pinBudget?.sources).toEqual([expect.objectContaining({ source: '203.0.113.9' })]);

    // A's own settlement of the same guess (its close) finds it already settled: not counted twice.
    await serviceA.close();
    await adminA.refreshIfChanged();
    expect(adminA.runtime.pinFailuresSinceMint).toBe(1);
    expect(adminA.runtime.pakeGuesses.size).toBe(0);
  });
});
