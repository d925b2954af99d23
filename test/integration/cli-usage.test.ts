// One spawned smoke test of the real bin/palyra.js: help, a usage error and a JSON error as a real process sees
// them (exit codes, which stream). The full usage contract runs in-process: test/unit/cli/usage.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson } from '../helpers/cli.js';

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

describe('bin/palyra.js', () => {
  it('prints help with exit 0, a usage error with exit 2 on stderr, and a JSON error on stdout', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: palyra/);
    expect(help.stdout).toMatch(/^ {2}devices grant-admin\b/m);

    const usage = await runCli(['pairing', 'destroy']);
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe('');
    expect(usage.stderr).toMatch(/^error\[usage\]: .*--help/);

    const json = await runCliJson(['pairing', 'list', '--frobnicate']);
    expect(json.code).toBe(2);
    expect(json.json).toEqual({ error: { code: 'usage', message: expect.stringContaining('--frobnicate') } });
    expect(json.stderr).toBe('');
  });
});
