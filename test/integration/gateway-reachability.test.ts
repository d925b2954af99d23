// `palyra gateway run` says who can reach it: the ready line's `addresses` and `reachable`, and a stderr warning when
// it listens on loopback only. No multicast here: every gateway started on a non-loopback address gets --no-announce
// (announcing is tested inside a network namespace, discovery-netns.test.ts).
import os from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseHostPort } from '../../main/core/net-address.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: (() => Promise<void>)[] = [];
let running: GatewayProcess | null = null;

async function newStateDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-reach-');
  cleanups.push(cleanup);
  return dir;
}

interface Ready {
  listen: string;
  addresses: string[];
  reachable: string;
  announced: boolean;
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

describe('palyra gateway run: reachability', () => {
  it('on loopback: reachable from this computer only, not announced, and a warning on stderr naming the address', async () => {
    running = await startGatewayProcess(await newStateDir(), ['--listen', '127.0.0.1:0']);
    const ready = running.ready as unknown as Ready;
    expect(ready.reachable).toBe('this_computer');
    expect(ready.addresses).toEqual([ready.listen]);
    expect(ready.announced).toBe(false);
    const port = parseHostPort(ready.listen).port;
    const warning = await waitFor(() => running?.stderr().split('\n').find((l) => l.startsWith('warning: listening on loopback only')), {
      what: 'the loopback warning on stderr',
      detail: () => running?.stderr() ?? '',
    });
    expect(warning).toBe(
      `warning: listening on loopback only (127.0.0.1:${port}): devices on other machines cannot reach this gateway; use --listen 0.0.0.0:${port} to accept them`,
    );
    // The warning is for people: stdout stays JSON lines.
    expect(running.lines.every((l) => l.startsWith('{'))).toBe(true);
  });

  it('on 0.0.0.0: lists the addresses other machines dial, never the wildcard, and prints no loopback warning', async () => {
    running = await startGatewayProcess(await newStateDir(), ['--listen', '0.0.0.0:0', '--no-announce']);
    const ready = running.ready as unknown as Ready;
    const port = parseHostPort(ready.listen).port;
    const lanIpv4 = [
      ...new Set(
        Object.values(os.networkInterfaces())
          .flatMap((entries) => entries ?? [])
          .filter((e) => e.family === 'IPv4' && !e.internal)
          .map((e) => e.address),
      ),
    ];
    for (const ip of lanIpv4.slice(0, 8)) expect(ready.addresses).toContain(`${ip}:${port}`);
    expect(ready.addresses.some((a) => a.startsWith('0.0.0.0'))).toBe(false);
    expect(ready.announced).toBe(false);
    if (ready.reachable === 'network') expect(ready.addresses.length).toBeGreaterThan(0);
    else expect(ready.addresses).toEqual([`127.0.0.1:${port}`]);
    // Everything it will print is out once it has exited.
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(running.stderr()).not.toContain('listening on loopback only');
  });

  it('refuses --announce with --no-announce as a usage error (exit 2)', async () => {
    const result = await runCli(['gateway', 'run', '--listen', '127.0.0.1:0', '--announce', '--no-announce', '--state-dir', await newStateDir()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--announce and --no-announce exclude each other/);
  });
});
