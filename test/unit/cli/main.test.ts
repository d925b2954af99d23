// main() in-process with captured output: the dispatch rules that need no state directory.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/main.js';
import type { OutputStreams } from '../../../main/cli/output.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const streams: OutputStreams = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdoutIsTty: false };
  const code = await main(argv, { streams, env: { PALYRA_KEYCHAIN: 'file' } });
  return { code, stdout, stderr };
}

describe('main', () => {
  it('shows help for `palyra help` and `palyra help pairing`', async () => {
    expect((await run(['help'])).stdout).toMatch(/^Usage: palyra <command>/);
    const pairing = await run(['help', 'pairing']);
    expect(pairing.code).toBe(0);
    expect(pairing.stdout).toMatch(/^Usage: palyra pairing <command>/);
  });

  it('answers `palyra device …` with a usage error while the device commands are not built', async () => {
    const result = await run(['device', 'status', '--json']);
    // Once the owner's device module exists it answers instead; until then this is the seam's contract.
    if (!existsSync(new URL('../../../main/cli/commands/device.ts', import.meta.url))) {
      expect(result.code).toBe(2);
      expect(JSON.parse(result.stdout)).toEqual({ error: { code: 'usage', message: 'the device commands are not available in this build' } });
    }
  });

  it('refuses an unknown PALYRA_KEYCHAIN value as a usage error', async () => {
    let stderr = '';
    const code = await main(['pairing', 'list', '--state-dir', '/nonexistent-palyra-test'], {
      streams: { stdout: () => undefined, stderr: (t) => (stderr += t), stdoutIsTty: false },
      env: { PALYRA_KEYCHAIN: 'vault' },
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^error\[usage\]: PALYRA_KEYCHAIN must be 'os' or 'file'/);
  });
});
