// A fresh clone must be self-contained: no file in the repository may point at a directory beside or outside it
// (test data, documents or scripts that only exist on one machine). Checks every file git tracks, plus new files
// not yet added (untracked and not ignored), so the mistake is caught before it is committed.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const self = path.relative(root, fileURLToPath(import.meta.url)).split(path.sep).join('/');
// Spelled in pieces so this file would pass its own check too.
const FORBIDDEN = [['..', 'shared'].join('/'), ['', 'work', 'shared'].join('/')];

function repositoryFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  // A tracked file deleted in the working tree is listed but has nothing to check.
  return [...new Set(out.split('\0').filter((f) => f !== '' && f !== self))].filter((f) => {
    const full = path.join(root, f);
    return existsSync(full) && statSync(full).isFile();
  });
}

describe('no paths outside the repository', () => {
  const files = repositoryFiles();

  it('lists the repository files through git', () => {
    expect(files).toContain('package.json');
  });

  it(`no file mentions ${FORBIDDEN.join(' or ')}`, () => {
    const offenders: string[] = [];
    for (const file of files) {
      const text = readFileSync(path.join(root, file), 'latin1');
      text.split('\n').forEach((line, i) => {
        if (FORBIDDEN.some((needle) => line.includes(needle))) offenders.push(`${file}:${i + 1}: ${line.trim().slice(0, 160)}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
