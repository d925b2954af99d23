import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import palyra from '../../scripts/eslint/boundaries.js';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function lint(relativeFile: string, code: string): Promise<string[]> {
  // The project's rule with the TypeScript parser alone (no type information needed), so any path can be linted.
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [
      { files: ['**/*.ts'], languageOptions: { parser: tseslint.parser }, plugins: { palyra }, rules: { 'palyra/boundaries': 'error' } },
    ],
  });
  const [result] = await eslint.lintText(code, { filePath: path.join(root, relativeFile) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'palyra/boundaries').map((m) => m.message);
}

describe('import boundaries (ARCHITECTURE.md)', () => {
  it('rejects node:fs in main/core', async () => {
    const messages = await lint('main/core/ids.ts', "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n");
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain("'core' may not import the package 'node:fs'");
  });

  it('rejects electron anywhere but main/app and preload', async () => {
    const messages = await lint('main/gateway/x.ts', "import { app } from 'electron';\nexport const a = app;\n");
    expect(messages[0]).toContain("may not import the package 'electron'");
  });

  it('rejects core importing from store', async () => {
    const messages = await lint('main/core/ids.ts', "import { x } from '../store/secret-store.js';\nexport const y = x;\n");
    expect(messages[0]).toContain("'core' may not import from 'store'");
  });

  it('allows ipc to import only types from core', async () => {
    const value = await lint('main/ipc/x.ts', "import { PalyraError } from '../core/errors.js';\nexport const e = PalyraError;\n");
    expect(value[0]).toContain("may import only types from 'core'");
    const typeOnly = await lint('main/ipc/x.ts', "import type { ErrorCode } from '../core/errors.js';\nexport type E = ErrorCode;\n");
    expect(typeOnly).toEqual([]);
  });

  it('accepts the allowed imports of a layer', async () => {
    const messages = await lint(
      'main/store/x.ts',
      "import { readFileSync } from 'node:fs';\nimport { PalyraError } from '../core/errors.js';\nexport const a = [readFileSync, PalyraError];\n",
    );
    expect(messages).toEqual([]);
  });
});
