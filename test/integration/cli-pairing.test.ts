// `palyra pairing code|list|approve|reject` as real processes on a temp state directory, beside a real
// `palyra gateway run` where the command needs one.
import os from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newUlid } from '../../main/core/ids.js';
import { createPairingRequest } from '../../main/core/pairing-requests.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { parseHostPort } from '../../main/core/net-address.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairingProgress, PairResult } from '../../main/device/pairing-client.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import type { StoredPairingRequest } from '../../main/gateway/runtime-state.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { openTestDevice } from '../helpers/gateway.js';
import { randomVerifiedDevice, tempDir } from '../helpers/identity.js';

const REQUEST_KEYS = [
  'request_id',
  'device_id',
  'client_kind',
  'state',
  'method',
  'sas',
  'sas_status',
  'identity_fingerprint',
  'requested_at_unix_ms',
  'reason',
  'name',
  'device_name',
];

const cleanups: (() => Promise<void>)[] = [];

async function newStateDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-cli-pairing-');
  cleanups.push(cleanup);
  return dir;
}

/** A pending_approval request put straight into the runtime state, as a finished handshake leaves it. */
async function seedPendingRequest(stateDir: string, sas = '042917'): Promise<StoredPairingRequest> {
  const admin = await GatewayAdmin.open({ stateDir, keychain: null });
  const device = randomVerifiedDevice('node');
  const now = Date.now();
  const requestId = newUlid(now);
  const request: StoredPairingRequest = {
    ...createPairingRequest({
      requestId,
      sessionId: requestId,
      deviceId: device.deviceId,
      clientKind: 'node',
      method: 'pin',
      codeIssuedBy: 'cli:test',
      requestedAtUnixMs: now,
      expiresAtUnixMs: now + 600_000,
      approvalId: newUlid(now),
      identityFingerprint: device.identityFingerprint,
      signingPublicKeyHex: device.signingPublicKeyHex,
      transcriptHashHex: 'ab'.repeat(32),
      sas,
      sasVerifiable: true,
    }),
    csrDerB64: null,
    material: null,
    materialDeliveredAtUnixMs: null,
  };
  await admin.mutateRuntime(() => ({ ops: [{ op: 'put_request', request }], result: undefined }));
  return request;
}

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('palyra pairing code with a running gateway', () => {
  let stateDir: string;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    stateDir = await newStateDir();
    gateway = await startGatewayProcess(stateDir, ['--name', 'Front Desk']);
  }, 60_000);

  afterAll(async () => {
    await gateway.kill();
  });

  it('mints a QR code whose URI carries the gateway address and its CA pin (--json)', async () => {
    const before = Date.now();
    const result = await runCliJson(['pairing', 'code', '--method', 'qr', '--ttl', '5m', '--kind', 'node', '--state-dir', stateDir]);
    const after = Date.now();
    expect(result.code).toBe(0);
    const minted = result.json as { method: string; code: string; uri: string; expires_at_unix_ms: number };
    expect(Object.keys(minted)).toEqual(['method', 'code', 'uri', 'expires_at_unix_ms']);
    expect(minted.method).toBe('qr');
    expect(minted.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(minted.expires_at_unix_ms).toBeGreaterThanOrEqual(before + 300_000);
    expect(minted.expires_at_unix_ms).toBeLessThanOrEqual(after + 300_000);
    const uri = parsePairingUri(minted.uri, { now: Date.now() });
    expect(uri.caPin).toBe(gateway.ready.ca_pin);
    expect(uri.token).toBe(minted.code);
    expect(uri.kind).toBe('node');
    expect(uri.name).toBe('Front Desk');
    expect(uri.gateways.map((g) => `${g.host}:${g.port}`)).toEqual([gateway.ready.listen]);
    expect(uri.expiresAtUnixS).toBe(Math.floor(minted.expires_at_unix_ms / 1000));
  });

  it('mints a 6-digit PIN with a null URI and the default 10 minute lifetime (--json)', async () => {
    const before = Date.now();
    const result = await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir]);
    const after = Date.now();
    expect(result.code).toBe(0);
    const minted = result.json as { method: string; code: string; uri: null; expires_at_unix_ms: number };
    expect(Object.keys(minted)).toEqual(['method', 'code', 'uri', 'expires_at_unix_ms']);
    expect(minted).toMatchObject({ method: 'pin', uri: null });
    expect(minted.code).toMatch(/^[0-9]{6}$/);
    expect(minted.expires_at_unix_ms).toBeGreaterThanOrEqual(before + 600_000);
    expect(minted.expires_at_unix_ms).toBeLessThanOrEqual(after + 600_000);
  });

  it('uses --gateway addresses (repeated and comma-separated) instead of the running gateway', async () => {
    const result = await runCliJson([
      'pairing', 'code', '--state-dir', stateDir, '--gateway', 'gw.example.com:7444,10.0.0.5:7444', '--gateway', '[fd00::5]:7444',
    ]);
    expect(result.code).toBe(0);
    const uri = parsePairingUri((result.json as { uri: string }).uri, { now: Date.now() });
    expect(uri.gateways).toEqual([
      { host: 'gw.example.com', port: 7444 },
      { host: '10.0.0.5', port: 7444 },
      { host: 'fd00::5', port: 7444 },
    ]);
    expect(uri.caPin).toBe(gateway.ready.ca_pin);
  });

  it('prints the QR, the URI and the expiry as text (the default method is qr)', async () => {
    const result = await runCli(['pairing', 'code', '--state-dir', stateDir]);
    expect(result.code).toBe(0);
    const uriLine = result.stdout.split('\n').find((line) => line.startsWith('palyra://pair?'));
    expect(uriLine).toBeDefined();
    expect(parsePairingUri(uriLine!, { now: Date.now() }).caPin).toBe(gateway.ready.ca_pin);
    expect(result.stdout).toMatch(/expires in 10 min \([0-2][0-9]:[0-5][0-9]\)/);
    expect(result.stdout).toMatch(/[█▀▄]/); // the QR itself
  });

  it('prints a PIN in large digits with its expiry as text', async () => {
    const result = await runCli(['pairing', 'code', '--method', 'pin', '--ttl', '2m', '--state-dir', stateDir]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^PIN [0-9]{6}$/m);
    expect(result.stdout).toMatch(/expires in 2 min \([0-2][0-9]:[0-5][0-9]\)/);
    expect(result.stdout.split('\n').filter((line) => line.includes('██')).length).toBeGreaterThanOrEqual(5);
  });
});

describe('palyra pairing code with a gateway on all interfaces', () => {
  let gateway: GatewayProcess | null = null;

  afterEach(async () => {
    await gateway?.kill();
    gateway = null;
  });

  it("writes every IPv4 address of this machine and its host name, never 0.0.0.0, into the URI", async () => {
    const stateDir = await newStateDir();
    // --no-announce: no multicast on this machine's real interfaces from a test.
    gateway = await startGatewayProcess(stateDir, ['--listen', '0.0.0.0:0', '--no-announce']);
    const port = Number(gateway.ready.listen.slice(gateway.ready.listen.lastIndexOf(':') + 1));
    const result = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    expect(result.code).toBe(0);
    const uri = parsePairingUri((result.json as { uri: string }).uri, { now: Date.now() });
    const lanIpv4 = Object.values(os.networkInterfaces())
      .flatMap((entries) => entries ?? [])
      .filter((e) => e.family === 'IPv4' && !e.internal)
      .map((e) => e.address);
    let usableName = true;
    try {
      parseHostPort(`${os.hostname()}:${port}`);
    } catch {
      usableName = false;
    }
    const expected = [...new Set(lanIpv4), ...(usableName ? [os.hostname()] : [])].slice(0, 8);
    if (expected.length === 0) expected.push('127.0.0.1');
    expect(uri.gateways).toEqual(expected.map((host) => ({ host, port })));
    expect(uri.gateways.some((g) => g.host === '0.0.0.0')).toBe(false);
  });
});

describe('palyra pairing code and list on a state directory without a gateway', () => {
  it('refuses a QR code without a running gateway or --gateway (exit 1, coded error)', async () => {
    const stateDir = await newStateDir();
    const text = await runCli(['pairing', 'code', '--state-dir', stateDir]);
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/^error\[gateway_unreachable\]: .*--gateway/);
    const json = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    expect(json.code).toBe(1);
    expect(json.json).toEqual({ error: { code: 'gateway_unreachable', message: expect.stringContaining('--gateway') } });
  });

  it('lists two minted codes with method, expiry and kind, but never their values', async () => {
    const stateDir = await newStateDir();
    const qr = await runCliJson(['pairing', 'code', '--gateway', '127.0.0.1:7444', '--kind', 'desktop', '--state-dir', stateDir]);
    const pin = await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir]);
    expect([qr.code, pin.code]).toEqual([0, 0]);
    const qrCode = (qr.json as { code: string; expires_at_unix_ms: number });
    const pinCode = (pin.json as { code: string; expires_at_unix_ms: number });

    const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
    expect(listed.code).toBe(0);
    expect(listed.json).toEqual({
      codes: [
        { method: 'qr', expires_at_unix_ms: qrCode.expires_at_unix_ms, kind: 'desktop' },
        { method: 'pin', expires_at_unix_ms: pinCode.expires_at_unix_ms, kind: null },
      ],
      requests: [],
    });
    const text = await runCli(['pairing', 'list', '--state-dir', stateDir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/qr\s+desktop/);
    expect(text.stdout).toMatch(/pin\s+any/);
    for (const output of [listed.stdout, text.stdout]) {
      expect(output).not.toContain(qrCode.code);
      expect(output).not.toContain(pinCode.code);
    }
  });
});

describe('palyra pairing approve / reject', () => {
  it('approves a pending request and prints it; a second decision is not pending (exit 1)', async () => {
    const stateDir = await newStateDir();
    const request = await seedPendingRequest(stateDir, '314159');

    const listed = await runCliJson(['pairing', 'list', '--state', 'pending_approval', '--state-dir', stateDir]);
    expect(listed.code).toBe(0);
    const requests = (listed.json as { requests: Record<string, unknown>[] }).requests;
    expect(requests).toHaveLength(1);
    expect(Object.keys(requests[0]!)).toEqual(REQUEST_KEYS);
    expect(requests[0]).toEqual({
      request_id: request.requestId,
      device_id: request.deviceId,
      client_kind: 'node',
      state: 'pending_approval',
      method: 'pin',
      sas: '314159',
      sas_status: request.sasVerifiable ? 'compare' : 'unverifiable',
      identity_fingerprint: request.identityFingerprint,
      requested_at_unix_ms: request.requestedAtUnixMs,
      reason: null,
      name: null,
      device_name: null,
    });

    const approved = await runCliJson(['pairing', 'approve', request.requestId, '--state-dir', stateDir]);
    expect(approved.code).toBe(0);
    expect(Object.keys(approved.json as object)).toEqual(REQUEST_KEYS);
    expect(approved.json).toMatchObject({ request_id: request.requestId, state: 'approved', sas: '314159', reason: 'approved_by_operator' });

    const again = await runCli(['pairing', 'approve', request.requestId, '--state-dir', stateDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error\[pairing_request_not_pending\]: /);
    const reject = await runCliJson(['pairing', 'reject', request.requestId, '--state-dir', stateDir]);
    expect(reject.code).toBe(1);
    expect(reject.json).toEqual({ error: { code: 'pairing_request_not_pending', message: expect.any(String) } });

    const pending = await runCliJson(['pairing', 'list', '--state', 'pending_approval', '--state-dir', stateDir]);
    expect(pending.json).toEqual({ codes: [], requests: [] });

    // Not pending is checked before anything else, even when the device has been banned since.
    expect((await runCliJson(['devices', 'revoke', request.deviceId, '--state-dir', stateDir])).code).toBe(0);
    const banned = await runCliJson(['pairing', 'approve', request.requestId, '--state-dir', stateDir]);
    expect(banned.json).toEqual({ error: { code: 'pairing_request_not_pending', message: expect.any(String) } });
  });

  it('rejects a pending request with a reason and shows the SAS in the text summary', async () => {
    const stateDir = await newStateDir();
    const request = await seedPendingRequest(stateDir, '271828');
    const rejected = await runCli(['pairing', 'reject', request.requestId, '--reason', 'not our laptop', '--state-dir', stateDir]);
    expect(rejected.code).toBe(0);
    expect(rejected.stdout).toContain(request.requestId);
    expect(rejected.stdout).toContain('271828');
    const listed = await runCliJson(['pairing', 'list', '--state', 'rejected', '--state-dir', stateDir]);
    expect((listed.json as { requests: unknown[] }).requests).toEqual([
      expect.objectContaining({ request_id: request.requestId, state: 'rejected', reason: 'not our laptop' }),
    ]);
    const approve = await runCli(['pairing', 'approve', request.requestId, '--state-dir', stateDir]);
    expect(approve.code).toBe(1);
    expect(approve.stderr).toMatch(/^error\[pairing_request_not_pending\]: /);
  });

  it('reports unknown, malformed and missing request ids with their own codes', async () => {
    const stateDir = await newStateDir();
    const unknown = await runCli(['pairing', 'approve', newUlid(Date.now()), '--state-dir', stateDir]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error\[pairing_request_not_found\]: /);
    const malformed = await runCliJson(['pairing', 'reject', 'not-a-ulid', '--state-dir', stateDir]);
    expect(malformed.code).toBe(1);
    expect(malformed.json).toEqual({ error: { code: 'invalid_argument', message: expect.any(String) } });
    const missing = await runCli(['pairing', 'approve', '--state-dir', stateDir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error\[usage\]: missing REQUEST_ID.*--help/);
  });

  it('refuses bad option values as usage errors (exit 2)', async () => {
    const stateDir = await newStateDir();
    for (const args of [
      ['pairing', 'list', '--state', 'pending'],
      ['pairing', 'code', '--method', 'nfc'],
      ['pairing', 'code', '--ttl', '10'],
      ['pairing', 'code', '--kind', 'phone'],
      ['pairing', 'code', '--gateway', 'no-port'],
    ]) {
      const result = await runCli([...args, '--state-dir', stateDir]);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toMatch(/^error\[usage\]: /);
    }
  });
});

describe('the real pairing flow, decided with the CLI', () => {
  let gateway: GatewayProcess | null = null;

  afterEach(async () => {
    await gateway?.kill();
    gateway = null;
  });

  it('shows the device\'s request with the same SAS, approves it, and lists the paired device', async () => {
    const stateDir = await newStateDir();
    gateway = await startGatewayProcess(stateDir);
    const device = await openTestDevice();
    cleanups.push(device.cleanup);
    const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    expect(minted.code).toBe(0);
    const uri = parsePairingUri((minted.json as { uri: string }).uri, { now: Date.now() });

    let onAwaiting: (event: Extract<PairingProgress, { type: 'awaiting_approval' }>) => void = () => undefined;
    const awaiting = new Promise<Extract<PairingProgress, { type: 'awaiting_approval' }>>((resolve) => (onAwaiting = resolve));
    const paired: Promise<PairResult> = pairDevice({
      store: device.store,
      target: { method: 'qr', uri },
      kind: 'desktop',
      onProgress: (event) => {
        if (event.type === 'awaiting_approval') onAwaiting(event);
      },
    });
    paired.catch(() => undefined); // awaited below; avoids an unhandled rejection if the test fails first
    const event = await Promise.race([
      awaiting,
      paired.then(() => {
        throw new Error('paired without approval');
      }),
    ]);

    const pending = await runCliJson(['pairing', 'list', '--state', 'pending_approval', '--state-dir', stateDir]);
    expect((pending.json as { requests: unknown[] }).requests).toEqual([
      expect.objectContaining({ request_id: event.request_id, sas: event.sas, client_kind: 'desktop', method: 'qr' }),
    ]);
    const approved = await runCliJson(['pairing', 'approve', event.request_id, '--state-dir', stateDir]);
    expect(approved.code).toBe(0);
    const result = await paired;

    const devices = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
    expect((devices.json as { devices: unknown[] }).devices).toEqual([
      expect.objectContaining({ device_id: result.deviceId, status: 'paired', client_kind: 'desktop' }),
    ]);
    const completed = await runCliJson(['pairing', 'list', '--state', 'completed', '--state-dir', stateDir]);
    expect((completed.json as { requests: unknown[] }).requests).toEqual([
      expect.objectContaining({ request_id: event.request_id, state: 'completed' }),
    ]);
  }, 60_000);
});
