// `npm run lint:electron` as a real process: Electronegativity over main/app and preload must report nothing that
// .electronegativity/allow.json does not justify, and the wrapper must fail on unjustified findings, on stale allow
// entries, and on files it cannot parse (shown on a scratch project).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/build.js';

interface Finding {
  check: string;
  file: string;
  line: number;
  sample?: string;
}

interface Outcome {
  checks: number;
  justified: (Finding & { justification: string })[];
  unjustified: Finding[];
  stale: { check: string; file: string; matched: number }[];
  parseErrors: { file: string; message: string }[];
}

function lintElectron(args: string[]): Promise<{ code: number; outcome: Outcome | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(repoRoot, 'scripts', 'lint-electron.mjs'), ...args], { cwd: repoRoot }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      let outcome: Outcome | null = null;
      try {
        outcome = JSON.parse(stdout) as Outcome;
      } catch {
        outcome = null;
      }
      resolve({ code, outcome, stdout, stderr });
    });
  });
}

const scratchDirs: string[] = [];

afterAll(async () => {
  await Promise.all(scratchDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('npm run lint:electron', () => {
  it('finds nothing unjustified in main/app and preload', async () => {
    const { code, outcome, stderr } = await lintElectron(['--json']);
    expect(outcome, stderr).not.toBeNull();
    expect(outcome!.unjustified).toEqual([]);
    expect(outcome!.stale).toEqual([]);
    expect(outcome!.parseErrors).toEqual([]);
    expect(outcome!.checks).toBeGreaterThan(30);
    expect(code).toBe(0);
    for (const f of outcome!.justified) expect(f.justification.length).toBeGreaterThan(20);
  }, 120_000);

  it('fails on an insecure window, a stale allow entry and an unparsable file', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'palyra-electronegativity-fixture-'));
    scratchDirs.push(root);
    await mkdir(path.join(root, 'main', 'app'), { recursive: true });
    await mkdir(path.join(root, 'preload'), { recursive: true });
    await mkdir(path.join(root, '.electronegativity'), { recursive: true });
    await writeFile(path.join(root, 'package.json'), JSON.stringify({ name: 'fixture', devDependencies: { electron: '45.5.0' } }));
    await writeFile(
      path.join(root, 'main', 'app', 'window.ts'),
      "import { BrowserWindow } from 'electron';\nexport const win = new BrowserWindow({ webPreferences: { nodeIntegration: true, contextIsolation: false, sandbox: false } });\n",
    );
    await writeFile(path.join(root, 'preload', 'broken.ts'), 'export const = ;\n');
    await writeFile(
      path.join(root, '.electronegativity', 'allow.json'),
      JSON.stringify({
        inputs: ['main/app', 'preload'],
        excludeChecks: [{ check: 'AvailableSecurityFixesGlobalCheck', justification: 'no network access from a lint run' }],
        allow: [{ check: 'OPEN_EXTERNAL_JS_CHECK', file: 'main/app/window.ts', justification: 'an entry whose code has gone away' }],
      }),
    );

    const { code, outcome, stderr } = await lintElectron(['--root', root, '--json']);
    expect(outcome, stderr).not.toBeNull();
    expect(code).toBe(1);
    const unjustified = outcome!.unjustified.map((f) => `${f.check} ${f.file}`);
    expect(unjustified).toEqual(
      expect.arrayContaining([
        'CONTEXT_ISOLATION_JS_CHECK main/app/window.ts',
        'SANDBOX_JS_CHECK main/app/window.ts',
        // Global checks: no will-navigate limit and no permission handler anywhere in the scanned code.
        'LIMIT_NAVIGATION_GLOBAL_CHECK N/A',
        'PERMISSION_REQUEST_HANDLER_GLOBAL_CHECK N/A',
      ]),
    );
    expect(outcome!.stale).toEqual([expect.objectContaining({ check: 'OPEN_EXTERNAL_JS_CHECK', matched: 0 })]);
    expect(outcome!.parseErrors.map((e) => e.file)).toEqual(['preload/broken.ts']);
  }, 120_000);

  it('refuses an allow entry without a real justification', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'palyra-electronegativity-fixture-'));
    scratchDirs.push(root);
    await mkdir(path.join(root, '.electronegativity'), { recursive: true });
    await writeFile(path.join(root, '.electronegativity', 'allow.json'), JSON.stringify({ inputs: ['main/app'], allow: [{ check: 'CSP_GLOBAL_CHECK', file: 'N/A', justification: 'ok' }] }));
    const { code, stderr } = await lintElectron(['--root', root]);
    expect(code).toBe(2);
    expect(stderr).toContain('justification');
  });
});
