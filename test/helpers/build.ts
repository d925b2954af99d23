// Child-process tests run the compiled code in dist/. `npm test` builds first (and sets PALYRA_SKIP_BUILD=1); a focused
// local run builds here when the outputs of the named source folders are missing or older than their sources. One
// build at a time (a file lock), so no child imports a half-written file; a build that reports type errors elsewhere
// in the tree still emits, so only the named folders' outputs are checked afterwards.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withFileLock } from '../../main/store/state-lock.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function sourcesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(repoRoot, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourcesUnder(rel)));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

async function staleOutputs(dirs: readonly string[]): Promise<string[]> {
  const stale: string[] = [];
  for (const dir of dirs) {
    for (const source of await sourcesUnder(dir)) {
      const output = path.join('dist', source.replace(/\.ts$/, '.js'));
      const [src, out] = await Promise.all([stat(path.join(repoRoot, source)), stat(path.join(repoRoot, output)).catch(() => null)]);
      if (out === null || out.mtimeMs < src.mtimeMs) stale.push(output);
    }
  }
  return stale;
}

function compile(): Promise<void> {
  const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
  return promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: repoRoot }).then(
    () => undefined,
    () => undefined,
  );
}

/** Makes sure dist/ holds current compiled code for `dirs` (default: all of main/). */
export async function ensureBuilt(dirs: readonly string[] = ['main']): Promise<void> {
  if (process.env.PALYRA_SKIP_BUILD === '1' && existsSync(path.join(repoRoot, 'dist/main'))) return;
  if ((await staleOutputs(dirs)).length === 0) return;
  await mkdir(path.join(repoRoot, 'dist'), { recursive: true });
  await withFileLock(
    path.join(repoRoot, 'dist', '.test-build.lock'),
    async () => {
      if ((await staleOutputs(dirs)).length > 0) await compile();
    },
    { timeoutMs: 180_000 },
  );
  const stale = await staleOutputs(dirs);
  if (stale.length > 0) throw new Error(`could not build ${stale.slice(0, 5).join(', ')} (run npm run build)`);
}
