// Named devices through real `palyra` processes: `device pair --name` (and the host-name default) as the operator's
// `pairing list` and `devices list` show it, the last address once the device runs, and `devices rename` (audited,
// coded refusals).
import os from 'node:os';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { normalizeDeviceName } from '../../main/core/device-name.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, spawnCli, startGatewayProcess } from '../helpers/cli.js';
import { csrFor, randomVerifiedDevice, tempDir } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function newDir(prefix: string): Promise<string> {
  const { dir, cleanup } = await tempDir(prefix);
  cleanups.push(cleanup);
  return dir;
}

interface Running {
  lines: string[];
  exited: Promise<number | null>;
}

/** A CLI process whose stdout lines are collected; killed in cleanup if still running. */
function start(args: string[]): Running {
  const child = spawnCli(args);
  child.stdin.end();
  const lines: string[] = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr.resume();
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      done = true;
      resolve(code);
    });
  });
  cleanups.push(async () => {
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { lines, exited };
}

interface RequestJson {
  request_id: string;
  device_id: string;
  state: string;
  device_name: string | null;
}

interface DeviceJson {
  device_id: string;
  name: string | null;
  platform: string | null;
  method: string | null;
  paired_at_unix_ms: number | null;
  last_seen_at_unix_ms: number | null;
  last_address: string | null;
}

/** The request of a `device pair` process, once it prints that it waits for approval. */
async function pendingRequest(stateDir: string, pair: Running): Promise<RequestJson> {
  await waitFor(() => pair.lines.some((l) => l.includes('waiting for approval')), { what: '"waiting for approval"', detail: () => pair.lines.join('\n') });
  const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
  const pending = (listed.json as { requests: RequestJson[] }).requests.filter((r) => r.state === 'pending_approval');
  expect(pending).toHaveLength(1);
  return pending[0]!;
}

async function devices(stateDir: string): Promise<DeviceJson[]> {
  const listed = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
  expect(listed.code, listed.stderr).toBe(0);
  return (listed.json as { devices: DeviceJson[] }).devices;
}

describe('palyra device pair --name and the operator lists', () => {
  it('shows the name sent with --name in pairing list and devices list, with method, paired-at and (once it runs) platform and last address', async () => {
    const stateDir = await newDir('palyra-names-state-');
    const deviceDir = await newDir('palyra-names-dev-');
    const gateway = await startGatewayProcess(stateDir);
    cleanups.push(() => gateway.kill());
    const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    const { uri } = minted.json as { uri: string };
    const pair = start(['device', 'pair', uri, '--name', '  Ana’s laptop ', '--device-dir', deviceDir, '--keychain', 'file']);
    const request = await pendingRequest(stateDir, pair);
    expect(request.device_name).toBe('Ana’s laptop');
    expect((request as { name?: string }).name).toBe('Ana’s laptop');
    const text = await runCli(['pairing', 'list', '--state-dir', stateDir]);
    expect(text.stdout).toContain('Ana’s laptop');
    const approved = await runCliJson(['pairing', 'approve', request.request_id, '--state-dir', stateDir]);
    expect(approved.json).toMatchObject({ request_id: request.request_id, device_name: 'Ana’s laptop', state: 'approved' });
    expect(await pair.exited).toBe(0);

    const [paired] = await devices(stateDir);
    expect(paired).toMatchObject({ device_id: request.device_id, name: 'Ana’s laptop', method: 'qr', last_address: null });
    expect(paired!.paired_at_unix_ms).toEqual(expect.any(Number));

    const run = start(['device', 'run', '--device-dir', deviceDir, '--keychain', 'file']);
    await waitFor(() => run.lines.some((l) => l.includes('"state":"online"')), { what: 'the device to come online', detail: () => run.lines.join('\n') });
    // Online means RegisterNode was answered: the gateway wrote the new node record before that.
    const seen = (await devices(stateDir)).find((d) => d.device_id === request.device_id);
    expect(seen).toMatchObject({ device_id: request.device_id, last_address: '127.0.0.1', platform: expect.stringMatching(/.+/) as string });
    expect(seen!.last_seen_at_unix_ms).toEqual(expect.any(Number));
    const table = await runCli(['devices', 'list', '--state-dir', stateDir]);
    expect(table.stdout).toMatch(/NAME.*PLATFORM.*METHOD.*PAIRED.*LAST_SEEN.*LAST_ADDRESS/);
    expect(table.stdout).toContain('127.0.0.1');
  });

  it('sends the host name when --name is not given (PIN pairing: method pin), and refuses a bad --name as a usage error before using the code', async () => {
    const stateDir = await newDir('palyra-names-state-');
    const deviceDir = await newDir('palyra-names-dev-');
    const gateway = await startGatewayProcess(stateDir);
    cleanups.push(() => gateway.kill());
    const minted = await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir]);
    const { code: pin } = minted.json as { code: string };

    const bad = await runCli(['device', 'pair', '--pin', pin, '--allow-insecure-pin-arg', '--gateway', gateway.ready.listen, '--name', 'two\nlines', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error\[usage\]: .*--name/m);
    const codes = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
    expect((codes.json as { codes: unknown[] }).codes).toHaveLength(1);

    const pair = start(['device', 'pair', '--pin', pin, '--allow-insecure-pin-arg', '--gateway', gateway.ready.listen, '--device-dir', deviceDir, '--keychain', 'file']);
    const request = await pendingRequest(stateDir, pair);
    expect(request.device_name).toBe(normalizeDeviceName(os.hostname()));
    expect((await runCli(['pairing', 'approve', request.request_id, '--state-dir', stateDir])).code).toBe(0);
    expect(await pair.exited).toBe(0);
    expect((await devices(stateDir))[0]).toMatchObject({ name: normalizeDeviceName(os.hostname()), method: 'pin' });
  });
});

describe('palyra devices rename', () => {
  it('renames a paired device (audited device_renamed) and refuses unknown devices (not_found) and bad names (invalid_argument)', async () => {
    const stateDir = await newDir('palyra-names-state-');
    const admin = await GatewayAdmin.open({ stateDir, keychain: null });
    const verified = { ...randomVerifiedDevice('node'), name: 'node A1B2C3', method: 'qr' as const };
    await admin.identity.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
    await admin.close();

    const renamed = await runCliJson(['devices', 'rename', verified.deviceId, ' Kitchen  Pi ', '--state-dir', stateDir]);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.json).toMatchObject({ device_id: verified.deviceId, name: 'Kitchen  Pi', method: 'qr', status: 'paired' });
    const text = await runCli(['devices', 'rename', verified.deviceId, 'Pantry Pi', '--state-dir', stateDir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`Renamed device ${verified.deviceId} to "Pantry Pi".`);
    expect((await devices(stateDir))[0]).toMatchObject({ name: 'Pantry Pi' });

    const audit = await runCliJson(['audit', 'tail', '--state-dir', stateDir]);
    const entries = (audit.json as { entries: { event: string; fields: Record<string, unknown> }[] }).entries.filter((e) => e.event === 'device_renamed');
    expect(entries.map((e) => e.fields)).toEqual([
      { device_id: verified.deviceId, name: 'Kitchen  Pi' },
      { device_id: verified.deviceId, name: 'Pantry Pi' },
    ]);

    const unknown = await runCliJson(['devices', 'rename', '01ARZ3NDEKTSV4RRFFQ69G5FAV', 'Ghost', '--state-dir', stateDir]);
    expect(unknown.code).toBe(1);
    expect(unknown.json).toMatchObject({ error: { code: 'not_found' } });
    for (const name of ['', 'bell\u0007', 'x'.repeat(65)]) {
      const invalid = await runCli(['devices', 'rename', verified.deviceId, name, '--state-dir', stateDir]);
      expect(invalid.code).toBe(1);
      expect(invalid.stderr).toMatch(/^error\[invalid_argument\]: device name/);
    }
    expect((await devices(stateDir))[0]).toMatchObject({ name: 'Pantry Pi' });
  });
});
