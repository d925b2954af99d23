// `palyra device pair|status|run|unpair` end to end as real processes: a `palyra gateway run`, operator commands on
// its state directory, and the device commands on a temp device dir with --keychain file.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, spawnCli, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';

const STATUS_KEYS = ['device_id', 'identity_fingerprint', 'paired', 'gateway', 'cert_expires_at_unix_ms', 'keychain'];
/** Bound for a device process to print what we wait for; generous for a loaded 2-core machine. */
const PROCESS_WAIT_MS = 20_000;

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

async function gatewayOn(stateDir: string, args: string[] = []): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(stateDir, args);
  cleanups.push(() => gateway.kill());
  return gateway;
}

/** A running child whose stdout is read line by line; `kill` in cleanup whatever happens. */
interface Watched {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout line that matches (lines already printed count), or fails after `ms`. */
  waitForLine: (match: (line: string) => boolean, what: string, ms?: number) => Promise<string>;
}

function watch(args: string[], stdin = ''): Watched {
  const child = spawnCli(args);
  child.stdin.end(stdin);
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  let done = false;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    let newline = partial.indexOf('\n');
    while (newline >= 0) {
      lines.push(partial.slice(0, newline));
      partial = partial.slice(newline + 1);
      newline = partial.indexOf('\n');
    }
    for (const w of [...waiters]) w();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      done = true;
      for (const w of [...waiters]) w();
      resolve({ code, signal });
    });
  });
  cleanups.push(async () => {
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const waitForLine = (match: (line: string) => boolean, what: string, ms = PROCESS_WAIT_MS): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const line = lines.find(match);
        if (line !== undefined) {
          finish();
          resolve(line);
        } else if (done) {
          finish();
          reject(new Error(`palyra ${args.join(' ')} exited before printing ${what}\nstdout: ${lines.join('\n')}\nstderr: ${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`palyra ${args.join(' ')} printed no ${what} within ${ms} ms\nstdout: ${lines.join('\n')}\nstderr: ${stderr}`));
      }, ms);
      const finish = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return { child, lines, stderr: () => stderr, exited, waitForLine };
}

async function exitWithin(w: Watched, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`process did not exit within ${ms} ms\nstdout: ${w.lines.join('\n')}\nstderr: ${w.stderr()}`));
    }, ms);
  });
  try {
    return await Promise.race([w.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface RequestJson {
  request_id: string;
  device_id: string;
  state: string;
  sas: string;
}

/** Pairs the device dir with the gateway through the CLI, approving the request with `palyra pairing approve`. */
async function pairThroughCli(stateDir: string, deviceDir: string): Promise<{ deviceId: string; sas: string; output: string[] }> {
  const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
  expect(minted.code, minted.stderr).toBe(0);
  const { uri } = minted.json as { uri: string };
  const pair = watch(['device', 'pair', uri, '--device-dir', deviceDir, '--keychain', 'file']);
  const sasLine = await pair.waitForLine((l) => /^SAS: \d{6}$/.test(l), 'the SAS');
  await pair.waitForLine((l) => l.includes('waiting for approval'), '"waiting for approval"');
  const sas = sasLine.slice('SAS: '.length);
  const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
  const pending = (listed.json as { requests: RequestJson[] }).requests.filter((r) => r.state === 'pending_approval');
  expect(pending).toHaveLength(1);
  expect(pending[0]!.sas).toBe(sas);
  const approved = await runCli(['pairing', 'approve', pending[0]!.request_id, '--state-dir', stateDir]);
  expect(approved.code, approved.stderr).toBe(0);
  const exit = await exitWithin(pair, PROCESS_WAIT_MS);
  expect(exit.code, pair.stderr()).toBe(0);
  expect(pair.lines.at(-1)).toBe(pending[0]!.device_id);
  return { deviceId: pending[0]!.device_id, sas, output: pair.lines };
}

describe('palyra device (processes)', () => {
  it('withdraws its request at the gateway on SIGINT while waiting: exit 1 error[cancelled], the host lists it cancelled', async () => {
    const stateDir = await newDir('palyra-dcli-state-');
    const deviceDir = await newDir('palyra-dcli-dev-');
    await gatewayOn(stateDir);
    const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    const { uri } = minted.json as { uri: string };
    const pair = watch(['device', 'pair', uri, '--device-dir', deviceDir, '--keychain', 'file', '--json']);
    const awaiting = JSON.parse(await pair.waitForLine((l) => l.includes('"awaiting_approval"'), 'the awaiting_approval event')) as { request_id: string };
    pair.child.kill('SIGINT');
    const exit = await exitWithin(pair, PROCESS_WAIT_MS);
    expect(exit.code, pair.stderr()).toBe(1);
    expect(JSON.parse(pair.lines.at(-1)!)).toEqual({ error: { code: 'cancelled', message: expect.stringContaining('the gateway withdrew the request') } });
    const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
    expect((listed.json as { requests: RequestJson[] }).requests.map((r) => [r.request_id, r.state])).toEqual([[awaiting.request_id, 'cancelled']]);
  });

  it('pairs by QR URI with operator approval, shows status, runs, and exits 1 with error[device_revoked] when revoked', async () => {
    const stateDir = await newDir('palyra-dcli-state-');
    const deviceDir = await newDir('palyra-dcli-dev-');
    const gateway = await gatewayOn(stateDir, ['--name', 'Front Desk']);

    const { deviceId, output } = await pairThroughCli(stateDir, deviceDir);
    expect(output.some((l) => l.includes(gateway.ready.ca_fingerprint))).toBe(true);

    const status = await runCliJson(['device', 'status', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(status.code, status.stderr).toBe(0);
    expect(Object.keys(status.json as object)).toEqual(STATUS_KEYS);
    expect(status.json).toMatchObject({ device_id: deviceId, paired: true, gateway: gateway.ready.listen, keychain: 'file' });
    expect((status.json as { cert_expires_at_unix_ms: number }).cert_expires_at_unix_ms).toBeGreaterThan(Date.now());

    const run = watch(['device', 'run', '--device-dir', deviceDir, '--keychain', 'file']);
    await run.waitForLine((l) => l.includes('"state":"online"'), 'the online event');
    for (const line of run.lines) expect(() => JSON.parse(line) as unknown).not.toThrow();
    const devices = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
    expect((devices.json as { devices: { device_id: string; capabilities: string[] }[] }).devices.find((d) => d.device_id === deviceId)?.capabilities).toContain('echo');

    const revoke = await runCli(['devices', 'revoke', deviceId, '--state-dir', stateDir]);
    expect(revoke.code, revoke.stderr).toBe(0);
    const exit = await exitWithin(run, PROCESS_WAIT_MS);
    expect(exit.code).toBe(1);
    expect(run.stderr()).toMatch(/^error\[device_revoked\]: /m);
    // Pushed over the open stream (the gateway's own "device is revoked"), not found out at a later reconnect: the
    // agent connected once and never tried again (how soon: test/bench/device.bench.mjs).
    const printed = run.lines.map((l) => JSON.parse(l) as { type: string; state?: string; reason?: string });
    expect(printed.filter((e) => e.type === 'revoked')).toEqual([expect.objectContaining({ reason: 'device is revoked' })]);
    expect(printed.filter((e) => e.type === 'connection' && e.state === 'connecting')).toHaveLength(1);

    const after = await runCliJson(['device', 'status', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(after.json).toMatchObject({ device_id: deviceId, paired: false });
    const again = await runCli(['device', 'run', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error\[device_revoked\]: /);
  }, 120_000);

  it('pairs by PIN with --json progress lines, runs until SIGTERM (exit 0), and unpairs', async () => {
    const stateDir = await newDir('palyra-dcli-state-');
    const deviceDir = await newDir('palyra-dcli-dev-');
    const gateway = await gatewayOn(stateDir);
    const minted = await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir]);
    const { code: pin } = minted.json as { code: string };
    // Typed as a person reads it off the screen: "655 376" (spaces are ignored), through stdin.
    const typed = `${pin.slice(0, 3)} ${pin.slice(3)}\n`;
    const pair = watch(['device', 'pair', '--pin-stdin', '--gateway', gateway.ready.listen, '--kind', 'cli', '--device-dir', deviceDir, '--keychain', 'file', '--json'], typed);
    const awaiting = JSON.parse(await pair.waitForLine((l) => l.includes('"awaiting_approval"'), 'awaiting_approval')) as { sas: string; request_id: string };
    const events = pair.lines.map((l) => JSON.parse(l) as { type: string; pinned?: boolean; ca_fingerprint?: string });
    expect(events.map((e) => e.type)).toEqual(['connecting', 'verifying_gateway', 'awaiting_approval']);
    expect(events[1]).toMatchObject({ pinned: false, ca_fingerprint: gateway.ready.ca_fingerprint });
    // PIN pairing v2: the exchange verified the gateway, so nothing is left to compare.
    expect(events[2]).toMatchObject({ sas_status: 'confirmed', verified_by: 'pin' });
    const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
    const request = (listed.json as { requests: (RequestJson & { client_kind: string; sas_status: string })[] }).requests.find((r) => r.request_id === awaiting.request_id)!;
    expect(request).toMatchObject({ sas: awaiting.sas, client_kind: 'cli', sas_status: 'confirmed' });
    const approved = await runCli(['pairing', 'approve', request.request_id, '--state-dir', stateDir]);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await exitWithin(pair, PROCESS_WAIT_MS)).code, pair.stderr()).toBe(0);
    expect(JSON.parse(pair.lines.at(-1)!)).toMatchObject({ type: 'paired', device_id: request.device_id, gateway: gateway.ready.listen });

    const run = watch(['device', 'run', '--device-dir', deviceDir, '--keychain', 'file']);
    await run.waitForLine((l) => l.includes('"state":"online"'), 'the online event');
    run.child.kill('SIGTERM');
    const exit = await exitWithin(run, PROCESS_WAIT_MS);
    expect(exit.code, run.stderr()).toBe(0);
    expect(JSON.parse(run.lines.at(-1)!)).toEqual({ type: 'stopped', signal: 'SIGTERM' });

    const unpaired = await runCliJson(['device', 'unpair', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(unpaired.code, unpaired.stderr).toBe(0);
    expect(unpaired.json).toEqual({ device_id: request.device_id, revoked_at_gateway: true, gateway_error: null });
    const devices = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
    expect((devices.json as { devices: { device_id: string; status: string }[] }).devices.find((d) => d.device_id === request.device_id)?.status).toBe('revoked');
    expect(existsSync(path.join(deviceDir, 'device.v1.json'))).toBe(false);
    expect(existsSync(path.join(deviceDir, 'secrets'))).toBe(false);
  }, 120_000);

  it('reports a fresh device dir without creating an identity, in text and JSON', async () => {
    const deviceDir = await newDir('palyra-dcli-dev-');
    const json = await runCliJson(['device', 'status', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.json).toEqual({ device_id: null, identity_fingerprint: null, paired: false, gateway: null, cert_expires_at_unix_ms: null, keychain: 'file' });
    const text = await runCli(['device', 'status'], { env: { ...process.env, PALYRA_DEVICE_DIR: deviceDir, PALYRA_KEYCHAIN: 'file' } });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/Paired:\s+no/);
    expect(existsSync(path.join(deviceDir, 'secrets'))).toBe(false);
    const run = await runCli(['device', 'run', '--device-dir', deviceDir, '--keychain', 'file']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error\[device_not_paired\]: /);

    const missing = path.join(deviceDir, 'not-yet');
    const absent = await runCliJson(['device', 'status', '--device-dir', missing, '--keychain', 'file']);
    expect(absent.json).toMatchObject({ device_id: null, paired: false, keychain: 'file' });
    expect(existsSync(missing)).toBe(false);
  });

  it('fails pairing with the documented error codes', async () => {
    const stateDir = await newDir('palyra-dcli-state-');
    const gateway = await gatewayOn(stateDir);
    const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    const { uri } = minted.json as { uri: string };
    const forged = uri.replace(/ca=[^&]+/, `ca=${'A'.repeat(43)}`);
    const mismatch = await runCli(['device', 'pair', forged, '--device-dir', await newDir('palyra-dcli-dev-'), '--keychain', 'file']);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/^error\[ca_pin_mismatch\]: /m);

    // No PIN code is active: v2 answers at once, before any PIN is tried.
    const noCode = await runCli(['device', 'pair', '--pin-stdin', '--gateway', gateway.ready.listen, '--device-dir', await newDir('palyra-dcli-dev-'), '--keychain', 'file', '--json'], { stdin: '000000\n' });
    expect(noCode.code).toBe(1);
    expect(JSON.parse(noCode.stdout.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'pairing_code_invalid' } });
    const pinMinted = await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir]);
    const rightPin = (pinMinted.json as { code: string }).code;
    const wrong = String((Number(rightPin) + 1) % 1_000_000).padStart(6, '0');
    const wrongPin = await runCli(['device', 'pair', '--pin', wrong, '--allow-insecure-pin-arg', '--gateway', gateway.ready.listen, '--device-dir', await newDir('palyra-dcli-dev-'), '--keychain', 'file', '--json']);
    expect(wrongPin.code).toBe(1);
    expect(JSON.parse(wrongPin.stdout.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'pake_confirmation_failed' } });

    const pair = watch(['device', 'pair', uri, '--device-dir', await newDir('palyra-dcli-dev-'), '--keychain', 'file']);
    await pair.waitForLine((l) => l.includes('waiting for approval'), '"waiting for approval"');
    const listed = await runCliJson(['pairing', 'list', '--state-dir', stateDir]);
    const request = (listed.json as { requests: RequestJson[] }).requests.find((r) => r.state === 'pending_approval')!;
    expect((await runCli(['pairing', 'reject', request.request_id, '--state-dir', stateDir, '--reason', 'not ours'])).code).toBe(0);
    const exit = await exitWithin(pair, PROCESS_WAIT_MS);
    expect(exit.code).toBe(1);
    expect(pair.stderr()).toMatch(/^error\[pairing_rejected\]: .*not ours/m);
  }, 120_000);

  it('treats a malformed command line as a usage error (exit 2)', async () => {
    for (const args of [
      ['device', 'pair'],
      ['device', 'pair', '--pin', '12345', '--allow-insecure-pin-arg', '--gateway', '127.0.0.1:7444'],
      ['device', 'pair', '--pin', '123456', '--allow-insecure-pin-arg'],
      // A PIN in argv is refused without the explicit opt-in.
      ['device', 'pair', '--pin', '123456', '--gateway', '127.0.0.1:7444'],
      ['device', 'pair', '--pin-stdin', '--gateway', '127.0.0.1:7444'],
      ['device', 'pair', '0123456789ABCDEF0123456789ABCDEF'],
      ['device', 'pair', 'palyra://pair?x', '--pin', '123456', '--allow-insecure-pin-arg'],
      ['device', 'status', '--keychain', 'vault'],
      ['device', 'frobnicate'],
    ]) {
      const result = await runCli(args);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toMatch(/^error\[usage\]: /);
    }
    const help = await runCli(['device', 'pair', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--pin-stdin --gateway HOST:PORT/);
  });
});
