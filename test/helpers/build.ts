// Child-process tests run the compiled code in dist/. `npm test` builds first; a focused local run builds here.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let built: Promise<void> | null = null;

export function ensureBuilt(): Promise<void> {
  if (process.env.PALYRA_SKIP_BUILD === '1' && existsSync(path.join(repoRoot, 'dist/main'))) return Promise.resolve();
  built ??= promisify(execFile)(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: repoRoot }).then(() => undefined);
  return built;
}
