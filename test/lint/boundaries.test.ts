import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import svelteParser from 'svelte-eslint-parser';
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
      {
        files: ['**/*.svelte'],
        languageOptions: { parser: svelteParser, parserOptions: { parser: tseslint.parser } },
        plugins: { palyra },
        rules: { 'palyra/boundaries': 'error' },
      },
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

  it('checks the <script> of .svelte components as well', async () => {
    const bad = await lint('renderer/src/views/X.svelte', "<script lang=\"ts\">\n  import { GatewayAdmin } from '../../../main/gateway/gateway-admin.js';\n  const g = GatewayAdmin;\n</script>\n<p>{g}</p>\n");
    expect(bad).toHaveLength(1);
    expect(bad[0]).toContain("'renderer' may not import from 'gateway'");
    const good = await lint('renderer/src/views/X.svelte', "<script lang=\"ts\">\n  import type { ErrorCode } from '../../../main/core/errors.js';\n  let c: ErrorCode | null = null;\n</script>\n<p>{c}</p>\n");
    expect(good).toEqual([]);
  });

  it('keeps the desktop app out of the CLI, and lets both use platform and admin', async () => {
    const bad = await lint('main/app/x.ts', "import { main } from '../cli/main.js';\nexport const m = main;\n");
    expect(bad[0]).toContain("'app' may not import from 'cli'");
    for (const from of ['main/app/x.ts', 'main/cli/x.ts']) {
      const ok = await lint(from, "import { a } from '../platform/paths.js';\nimport { b } from '../admin/admin-target.js';\nexport const x = [a, b];\n");
      expect(ok).toEqual([]);
    }
    const down = await lint('main/platform/x.ts', "import { b } from '../admin/admin-target.js';\nexport const x = b;\n");
    expect(down[0]).toContain("'platform' may not import from 'admin'");
  });
});
