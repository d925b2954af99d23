// main() in-process with captured output: dispatch and the top-level help (usage.test.ts covers the usage contract).
import { describe, expect, it } from 'vitest';
import { GROUPS, main, topLevelHelp } from '../../../main/cli/main.js';
import type { OutputStreams } from '../../../main/cli/output.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = { PALYRA_KEYCHAIN: 'file' }): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const streams: OutputStreams = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdoutIsTty: false };
  const code = await main(argv, { streams, env });
  return { code, stdout, stderr };
}

describe('main', () => {
  it('shows help for `palyra help`, `palyra help GROUP` and `palyra help GROUP COMMAND`', async () => {
    const top = await run(['help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toBe(`${await topLevelHelp()}\n`);
    const pairing = await run(['help', 'pairing']);
    expect(pairing.code).toBe(0);
    expect(pairing.stdout).toMatch(/^Usage: palyra pairing <command>/);
    const code = await run(['help', 'pairing', 'code']);
    expect(code.code).toBe(0);
    expect(code.stdout).toMatch(/^Usage: palyra pairing code /);
  });

  it('loads every group the top-level help lists, the device group like the others', async () => {
    expect(GROUPS.map((g) => g.name)).toEqual(['gateway', 'pairing', 'devices', 'audit', 'state', 'ca', 'device']);
    for (const entry of GROUPS) {
      const loaded = await entry.load();
      expect(loaded.group.name).toBe(entry.name);
      const help = await run([entry.name, '--help']);
      expect({ group: entry.name, code: help.code, stdout: help.stdout }).toEqual({ group: entry.name, code: 0, stdout: `${loaded.group.help}\n` });
    }
    const device = await run(['device', 'frobnicate']);
    expect(device.code).toBe(2);
    expect(device.stderr).toMatch(/^error\[usage\]: unknown command 'palyra device frobnicate' \(expected one of pair, status, run, unpair\)/);
  });

  it('refuses an unknown PALYRA_KEYCHAIN value as a usage error', async () => {
    const result = await run(['pairing', 'list', '--state-dir', '/nonexistent-palyra-test'], { PALYRA_KEYCHAIN: 'vault' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error\[usage\]: PALYRA_KEYCHAIN must be 'os' or 'file'/);
  });
});
