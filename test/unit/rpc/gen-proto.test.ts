import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const script = path.join(root, 'scripts', 'gen-proto.mjs');
const committed = path.join(root, 'main', 'rpc', 'generated');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runGenProto(args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { cwd: root }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('scripts/gen-proto.mjs', () => {
  let scratch: string | undefined;

  afterEach(() => {
    if (scratch !== undefined) fs.rmSync(scratch, { recursive: true, force: true });
    scratch = undefined;
  });

  it('finds the committed main/rpc/generated up to date with the .proto files', async () => {
    const result = await runGenProto(['--check']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('up to date');
  });

  it('fails --check and names every changed, missing and extra file of a stale output', async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'palyra-gen-proto-test-'));
    const stale = path.join(scratch, 'generated');
    fs.cpSync(committed, stale, { recursive: true });
    fs.appendFileSync(path.join(stale, 'palyra/node/v1/NodeEventResponse.ts'), '// edited by hand\n');
    fs.rmSync(path.join(stale, 'palyra/common/v1/CanonicalId.ts'));
    fs.writeFileSync(path.join(stale, 'palyra/node/v1/Leftover.ts'), 'export {};\n');

    const result = await runGenProto(['--check', '--out', stale]);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('3 file(s) differ');
    expect(result.stderr).toMatch(/changed\s+palyra\/node\/v1\/NodeEventResponse\.ts/);
    expect(result.stderr).toMatch(/missing\s+palyra\/common\/v1\/CanonicalId\.ts/);
    expect(result.stderr).toMatch(/extra\s+palyra\/node\/v1\/Leftover\.ts/);
  });

  it('regenerates byte-identical output into a fresh directory', async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'palyra-gen-proto-test-'));
    const out = path.join(scratch, 'generated');

    const result = await runGenProto(['--out', out]);

    expect(result.code).toBe(0);
    const check = await runGenProto(['--check', '--out', out]);
    expect(check.code).toBe(0);
    const file = 'palyra/node/v1/NodeService.ts';
    expect(fs.readFileSync(path.join(out, file), 'utf8')).toBe(fs.readFileSync(path.join(committed, file), 'utf8'));
  });

  it('refuses to replace a directory it did not write', async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'palyra-gen-proto-test-'));
    fs.writeFileSync(path.join(scratch, 'notes.txt'), 'keep me\n');

    const result = await runGenProto(['--out', scratch]);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('refusing to replace');
    expect(fs.readFileSync(path.join(scratch, 'notes.txt'), 'utf8')).toBe('keep me\n');
  });
});
