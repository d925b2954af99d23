// `palyra gateway run` as a real process: the ready line first, JSON log lines, clean exit on SIGTERM/SIGINT,
// the insecure opt-out's rules.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url } from '../../main/core/bytes.js';
import { GATEWAY_INFO_FILE } from '../../main/gateway/gateway-info.js';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';

/** Generous bound for "exits within 2 s" on a busy machine; the contract's number is not asserted as a time. */
const EXIT_BOUND_MS = 5_000;

const cleanups: (() => Promise<void>)[] = [];
let running: GatewayProcess | null = null;

async function newStateDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-cli-gateway-');
  cleanups.push(cleanup);
  return dir;
}

function exitWithin(gateway: GatewayProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      resolve('timeout');
    }, ms);
  });
  return Promise.race([gateway.exited, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  await running?.kill();
  running = null;
});

afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('palyra gateway run', () => {
  it('keeps serving when the reader of its output goes away (gateway run | head -1), and exits 0 on SIGTERM', async () => {
    const stateDir = await newStateDir();
    running = await startGatewayProcess(stateDir);
    running.child.stdout.destroy();
    // Whatever it logs now meets the closed pipe — at the latest the gateway.stopped line at SIGTERM.
    for (let i = 0; i < 3; i++) expect((await runCliJson(['pairing', 'code', '--method', 'pin', '--state-dir', stateDir])).code).toBe(0);
    expect((await runCliJson(['pairing', 'list', '--state-dir', stateDir])).code).toBe(0);
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    running = null;
  });


  it('prints the ready line first, with a real port, and exits 0 on SIGTERM', async () => {
    const stateDir = await newStateDir();
    running = await startGatewayProcess(stateDir);
    const ready = JSON.parse(running.firstLine) as Record<string, unknown>;
    expect(Object.keys(ready)).toEqual([
      'event',
      'listen',
      'ca_pin',
      'ca_fingerprint',
      'mtls_required',
      'state_dir',
      'rollback_protection',
      'addresses',
      'reachable',
      'announced',
      'backend',
      'workers',
    ]);
    // --workers defaults to the number of cores (main/gateway/workers.ts).
    expect(ready.workers).toBe(os.availableParallelism());
    expect(ready.rollback_protection).toBe('none');
    expect(ready.backend).toBe('file');
    expect(ready.event).toBe('gateway.ready');
    expect(ready.listen).toMatch(/^127\.0\.0\.1:[1-9][0-9]*$/);
    expect(ready.listen).not.toBe('127.0.0.1:0');
    expect(fromBase64Url(ready.ca_pin as string)).toHaveLength(32);
    expect(ready.ca_fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(ready.mtls_required).toBe(true);
    expect(ready.state_dir).toBe(path.resolve(stateDir));
    expect(existsSync(path.join(stateDir, GATEWAY_INFO_FILE))).toBe(true);

    running.child.kill('SIGTERM');
    expect(await exitWithin(running, EXIT_BOUND_MS)).toEqual({ code: 0, signal: null });
    // Every stdout line is one JSON object.
    for (const line of running.lines.filter((l) => l !== '')) expect(() => JSON.parse(line) as unknown).not.toThrow();
    expect(running.lines.some((l) => l.includes('"gateway.store_key"') && l.includes('"file"'))).toBe(true);
    expect(existsSync(path.join(stateDir, GATEWAY_INFO_FILE))).toBe(false);
  });

  it('exits 0 on SIGINT too, and a restart on the same state keeps the CA', async () => {
    const stateDir = await newStateDir();
    running = await startGatewayProcess(stateDir);
    const first = running.ready;
    running.child.kill('SIGINT');
    expect(await exitWithin(running, EXIT_BOUND_MS)).toEqual({ code: 0, signal: null });
    running = await startGatewayProcess(stateDir);
    expect(running.ready.ca_pin).toBe(first.ca_pin);
    expect(running.ready.ca_fingerprint).toBe(first.ca_fingerprint);
    running.child.kill('SIGTERM');
    expect(await exitWithin(running, EXIT_BOUND_MS)).toEqual({ code: 0, signal: null });
  });

  it('with the env opt-out on loopback: mtls_required false and a loud warning on stderr', async () => {
    const stateDir = await newStateDir();
    running = await startGatewayProcess(stateDir, [], { env: cliEnv({ PALYRA_ALLOW_INSECURE_NODE_RPC_WITHOUT_MTLS: 'true' }) });
    expect(running.ready.mtls_required).toBe(false);
    // The warning follows the ready line; wait (bounded) for the process to be told to stop, then check stderr.
    running.child.kill('SIGTERM');
    expect(await exitWithin(running, EXIT_BOUND_MS)).toEqual({ code: 0, signal: null });
    expect(running.stderr()).toMatch(/WARNING: insecure node-RPC opt-out/);
  });

  it('refuses the opt-out on a non-loopback address (exit 1)', async () => {
    const stateDir = await newStateDir();
    const result = await runCli(['gateway', 'run', '--listen', '0.0.0.0:0', '--insecure-node-rpc-opt-out', '--state-dir', stateDir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error\[insecure_opt_out_refused\]: /);
    expect(result.stdout).toBe('');
    const json = await runCliJson(['gateway', 'run', '--listen', '0.0.0.0:0', '--state-dir', stateDir], {
      env: cliEnv({ PALYRA_ALLOW_INSECURE_NODE_RPC_WITHOUT_MTLS: 'true' }),
    });
    expect(json.code).toBe(1);
    expect(json.json).toEqual({ error: { code: 'insecure_opt_out_refused', message: expect.any(String) } });
  });

  it('refuses a malformed opt-out variable and a malformed --listen as usage errors (exit 2)', async () => {
    const stateDir = await newStateDir();
    const env = await runCli(['gateway', 'run', '--listen', '127.0.0.1:0', '--state-dir', stateDir], {
      env: cliEnv({ PALYRA_ALLOW_INSECURE_NODE_RPC_WITHOUT_MTLS: 'maybe' }),
    });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/^error\[usage\]: .*PALYRA_ALLOW_INSECURE_NODE_RPC_WITHOUT_MTLS/);
    for (const listen of ['localhost', '127.0.0.1:99999', '[::1:7444']) {
      const result = await runCli(['gateway', 'run', '--listen', listen, '--state-dir', stateDir]);
      expect({ listen, code: result.code }).toEqual({ listen, code: 2 });
      expect(result.stderr).toMatch(/^error\[usage\]: --listen/);
    }
  });
});
