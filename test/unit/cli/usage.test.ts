// The `palyra` command's contract for help, usage errors and JSON errors, run in-process through main() with
// captured streams (one spawned smoke test of bin/palyra.js lives in test/integration/cli-usage.test.ts).
import { describe, expect, it } from 'vitest';
import { GROUPS, main } from '../../../main/cli/main.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    env: { PALYRA_STATE_DIR: '/nonexistent-palyra-usage-test/state', ...env },
    streams: { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdoutIsTty: false },
  });
  return { code, stdout, stderr };
}

describe('help generated from the command specs', () => {
  it('lists every command of every group in the top-level help and in its group help, with exit 0', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^Usage: palyra/);
    for (const entry of GROUPS) {
      const { group } = await entry.load();
      const groupHelp = await run([group.name, '--help']);
      expect(groupHelp.code).toBe(0);
      for (const name of Object.keys(group.subcommands)) {
        expect(top.stdout).toMatch(new RegExp(`^ {2}${group.name} ${name}\\b`, 'm'));
        expect(groupHelp.stdout).toMatch(new RegExp(`^ {2}${name}\\b`, 'm'));
      }
    }
    // The two commands the hand-written help used to miss.
    expect(top.stdout).toMatch(/^ {2}devices grant-admin\b/m);
    expect(top.stdout).toMatch(/^ {2}devices revoke-admin\b/m);
  });

  it("shows every option of every command in that command's help", async () => {
    for (const entry of GROUPS) {
      const { group } = await entry.load();
      for (const [name, sub] of Object.entries(group.subcommands)) {
        const help = await run([group.name, name, '--help']);
        expect({ command: sub.spec.name, code: help.code }).toEqual({ command: sub.spec.name, code: 0 });
        expect(help.stdout).toBe(`${sub.spec.help}\n`);
        for (const option of Object.keys(sub.spec.options)) expect({ command: sub.spec.name, option, shown: help.stdout.includes(`--${option}`) }).toMatchObject({ shown: true });
        for (const positional of sub.spec.positionals) expect(help.stdout).toContain(positional.name);
        for (const global of ['--state-dir', '--json', '--help']) expect(help.stdout).toContain(global);
      }
    }
  });

  it('answers --help even on a line that would not parse', async () => {
    expect((await run(['pairing', 'approve', '--help'])).code).toBe(0);
    expect((await run(['pairing', 'code', '--ttl', 'nonsense', '--help'])).code).toBe(0);
    expect((await run(['gateway', 'run', '-h'])).stdout).toContain('--insecure-node-rpc-opt-out');
    expect((await run(['pairing', 'code', '--help'])).stdout).toMatch(/\(default: qr\)/);
  });
});

describe('usage errors (exit 2)', () => {
  it.each([
    [[], 'a command is needed'],
    [['frobnicate'], "unknown command 'frobnicate'"],
    [['pairing'], "'palyra pairing' needs a subcommand"],
    [['pairing', 'destroy'], "unknown command 'palyra pairing destroy'"],
    [['pairing', 'list', '--bogus'], "unknown option '--bogus'"],
    [['devices', 'list', 'extra'], 'extra'],
    [['devices', 'revoke'], 'DEVICE_ID'],
    [['--verbose', 'pairing', 'list'], '--verbose'],
    [['pairing', 'code', '--ttl', '1m', '--ttl', '2m'], "option '--ttl' is given more than once"],
    [['--state-dir', 'a', 'pairing', 'list', '--state-dir', 'b'], "option '--state-dir' is given more than once"],
    [['pairing', 'code', '--method', 'sms'], '--method'],
    [['pairing', 'code', '--ttl', '99h'], '30s..24h'],
    [['pairing', 'code', '--ttl', '10s'], '30s..24h'],
    [['devices', 'list', '--gateway', '127.0.0.1:1'], '--gateway needs --device-dir'],
  ])('%j: error[usage] naming the problem, a --help hint, nothing on stdout', async (argv, needle) => {
    const result = await run(argv);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^error\[usage\]: .*--help/);
    expect(result.stderr).toContain(needle);
  });

  it('prints {"error":{code,message}} on stdout with --json, and nothing on stderr', async () => {
    const result = await run(['pairing', 'list', '--frobnicate', '--json']);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toEqual({ error: { code: 'usage', message: expect.stringContaining('--frobnicate') } });
    expect(result.stderr).toBe('');
    const leading = await run(['--json', 'pairing', '--state-dir', '/nonexistent-palyra-usage-test/x', 'frob']);
    expect(leading.code).toBe(2);
    expect(JSON.parse(leading.stdout)).toEqual({ error: { code: 'usage', message: expect.stringContaining("'palyra pairing frob'") } });
  });

});
