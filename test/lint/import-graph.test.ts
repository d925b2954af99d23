// The module graph of the shipped code (main/, preload/, renderer/src/), read from the source files themselves:
// no import cycle among runtime imports (type-only imports vanish at compile time and may point anywhere the layer
// rules allow), and the desktop app never reaches into the CLI — the two front ends share the layers below them.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCE_DIRS = ['main', 'preload', 'renderer/src'];
const SKIP = new Set(['generated', 'node_modules', 'dist']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!SKIP.has(entry.name)) out.push(...sourceFiles(rel));
    } else if (/\.(ts|svelte)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
      out.push(rel);
    }
  }
  return out;
}

/** Runtime import specifiers of a module: static imports and re-exports that are not `type`, and dynamic imports. */
export function runtimeImports(code: string): string[] {
  const specs: string[] = [];
  const statement = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/gms;
  for (const m of code.matchAll(statement)) {
    if (m[2] !== undefined) continue;
    const clause = m[3] ?? '';
    // `import { type A, type B } from` is type-only too.
    const names = /^\{([^}]*)\}$/.exec(clause.trim())?.[1];
    if (names !== undefined && names.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '))) continue;
    specs.push(m[4]!);
  }
  for (const m of code.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) specs.push(m[1]!);
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1]!);
  return specs;
}

function resolveLocal(from: string, spec: string, files: ReadonlySet<string>): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  for (const candidate of [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, `${base}/index.ts`]) {
    if (files.has(candidate)) return candidate;
  }
  return undefined;
}

function buildGraph(): Map<string, string[]> {
  const files = SOURCE_DIRS.flatMap(sourceFiles);
  const set = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    let code = readFileSync(path.join(root, file), 'utf8');
    if (file.endsWith('.svelte')) code = [...code.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]).join('\n');
    const targets = runtimeImports(code)
      .map((s) => resolveLocal(file, s, set))
      .filter((t): t is string => t !== undefined);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Every cycle's members (strongly connected components of more than one module, or a self-import), by Tarjan. */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indices.get(w)!));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return out;
}

describe('module graph of the shipped code', () => {
  const graph = buildGraph();

  it('reads the sources (sanity: the graph is not empty and has edges)', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect([...graph.values()].reduce((n, targets) => n + targets.length, 0)).toBeGreaterThan(100);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('main/app imports nothing from main/cli', () => {
    const offending = [...graph].flatMap(([from, targets]) =>
      from.startsWith('main/app/') ? targets.filter((t) => t.startsWith('main/cli/')).map((t) => `${from} -> ${t}`) : [],
    );
    expect(offending).toEqual([]);
  });

  it('the cycle finder finds a planted cycle and the import reader skips type-only imports', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
    expect(runtimeImports("import type { A } from './a.js';\nimport { type B } from './b.js';\nimport { C } from './c.js';\nexport * from './d.js';\nconst e = import('./e.js');")).toEqual([
      './c.js',
      './d.js',
      './e.js',
    ]);
  });
});
