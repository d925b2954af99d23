#!/usr/bin/env node
// Bundles preload/preload.ts into dist/preload/preload.cjs. A sandboxed window runs its preload as one CommonJS
// script whose `require` knows only `electron` (and a few Node shims), so the contract and zod are inlined and
// `electron` stays external. Fails if the bundle would require anything else.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PRELOAD_OUT_DIR = path.join(root, 'dist', 'preload');
const BUNDLE_NAME = 'preload.cjs';

/** Builds the bundle into `outDir` (default dist/preload) and returns its path. */
export async function buildPreload({ outDir = PRELOAD_OUT_DIR } = {}) {
  const bundlePath = path.join(outDir, BUNDLE_NAME);
  await build({
    configFile: false,
    root,
    logLevel: 'warn',
    build: {
      outDir,
      emptyOutDir: false,
      minify: false,
      sourcemap: false,
      target: 'es2022',
      lib: { entry: path.join(root, 'preload', 'preload.ts'), formats: ['cjs'], fileName: () => BUNDLE_NAME },
      rolldownOptions: { external: ['electron'] },
    },
  });
  const bundle = await readFile(bundlePath, 'utf8');
  const required = [...bundle.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]);
  const foreign = required.filter((name) => name !== 'electron');
  if (foreign.length > 0) throw new Error(`the preload bundle requires ${foreign.join(', ')}; a sandboxed preload may require only electron`);
  return bundlePath;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // `--out-dir DIR` builds elsewhere (tests); default dist/preload.
  const at = process.argv.indexOf('--out-dir');
  const outDir = at === -1 ? undefined : process.argv[at + 1];
  if (at !== -1 && outDir === undefined) throw new Error('--out-dir needs a directory');
  const file = await buildPreload(outDir === undefined ? {} : { outDir: path.resolve(outDir) });
  console.log(`preload bundled: ${path.relative(root, file)}`);
}
