// Tests assert that things happen, never how fast: an assertion on a measured duration passes on an idle machine and
// fails on a loaded one. Figures belong in test/bench, which reports them against a baseline measured in the same
// run. This check reads every test/**/*.test.ts, finds each `expect(…)` and its matcher, and reports file:line for
// - an upper bound (toBeLessThan, toBeLessThanOrEqual) on a subject named like a duration or an instant
//   (elapsed, duration, latency, …Ms, …_ms, ms, …At), or that reads the clock (Date.now(), performance.now());
// - any matcher on a subject that reads performance.now() or hrtime, or looks at long tasks or an entry's .duration.
// Names of wall-clock timestamps (…unix_ms, …UnixMs) are instants carried in data, not measurements, and are
// allowed; so are deadlines handed to waitFor/withDeadline, which are never an expect's subject.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const self = path.relative(root, fileURLToPath(import.meta.url)).split(path.sep).join('/');

const UPPER_BOUNDS = new Set(['toBeLessThan', 'toBeLessThanOrEqual']);

/** Identifier tokens (property names included) that name a duration or a measured instant. */
function durationLikeName(token: string): boolean {
  if (/unix/i.test(token)) return false;
  if (/elapsed|duration|latency|longtask/i.test(token)) return true;
  if (/^ms$/i.test(token) || /[a-z0-9]Ms$/.test(token) || /_ms$/i.test(token)) return true;
  return /[a-z0-9]At$/.test(token);
}

/** The index just past the parenthesis that closes the one at `open`, skipping strings and template literals. */
function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === '\\') i++;
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return -1;
}

export interface DurationAssertion {
  line: number;
  text: string;
  reason: string;
}

const CLOCK = /\b(?:Date|performance)\s*\.\s*now\s*\(|\bhrtime\b/;
const identifiers = (text: string): string[] => text.match(/[A-Za-z_$][\w$]*/g) ?? [];

/**
 * Variables holding a clock reading or a difference of instants (`const fromExit = endedAt - exitedAt`), whatever
 * they are called themselves; followed through further assignments.
 */
function derivedFromClock(source: string): Set<string> {
  const derived = new Set<string>();
  const assignments = [...source.matchAll(/\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=]+)?=([^;]*);/g)].map((m) => ({ name: m[1]!, value: m[2]! }));
  for (let grew = true; grew; ) {
    grew = false;
    for (const { name, value } of assignments) {
      if (derived.has(name)) continue;
      // A clock reading itself, or a difference involving one or a duration-like name; a value merely computed
      // with the clock as an input (a certificate issued `now: Date.now()`) is not a measurement.
      const reading = /^\s*(?:await\s+)?(?:Date|performance)\s*\.\s*now\s*\(\s*\)\s*$/.test(value);
      const difference = /[\w$)\]!]\s*-\s*[\w$(]/.test(value) && (CLOCK.test(value) || identifiers(value).some((t) => durationLikeName(t) || derived.has(t)));
      const copied = derived.has(value.trim());
      if (reading || difference || copied) {
        derived.add(name);
        grew = true;
      }
    }
  }
  return derived;
}

/** Every duration assertion in one file's source. */
export function findDurationAssertions(source: string): DurationAssertion[] {
  const found: DurationAssertion[] = [];
  const derived = derivedFromClock(source);
  const pattern = /\bexpect\s*\(/g;
  for (let match = pattern.exec(source); match !== null; match = pattern.exec(source)) {
    const open = match.index + match[0].length - 1;
    const close = closingParen(source, open);
    if (close < 0) continue;
    const subject = source.slice(open + 1, close - 1);
    // expect(x, 'message') : the message is not part of the subject.
    const chain = /^\s*((?:\.\s*(?:not|resolves|rejects)\s*)*)\.\s*(\w+)\s*\(/.exec(source.slice(close));
    const matcher = chain?.[2] ?? '';
    const line = source.slice(0, match.index).split('\n').length;
    const text = source.split('\n')[line - 1]!.trim();
    let reason: string | null = null;
    if (/performance\s*\.\s*now\s*\(|\bhrtime\b/.test(subject)) reason = 'reads a monotonic clock';
    else if (/longtask/i.test(subject)) reason = 'looks at long tasks';
    else if (/\.\s*duration\b/.test(subject)) reason = "looks at an entry's duration";
    else if (UPPER_BOUNDS.has(matcher)) {
      if (/\bDate\s*\.\s*now\s*\(/.test(subject)) reason = `${matcher} on the clock`;
      else {
        const name = identifiers(subject).find((t) => durationLikeName(t) || derived.has(t));
        if (name !== undefined) reason = `${matcher} on '${name}'`;
      }
    }
    if (reason !== null) found.push({ line, text: text.slice(0, 160), reason });
  }
  return found;
}

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const relative = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...testFiles(relative));
    else if (entry.name.endsWith('.test.ts') && relative !== self) out.push(relative);
  }
  return out;
}

describe('no assertion on a duration in the test suite', () => {
  it('finds the forms it is meant to find', () => {
    // The samples are built so that this file's own text holds no assertion on a duration.
    const EXPECT = 'exp' + 'ect';
    const LT = 'toBe' + 'LessThan';
    const flagged = (source: string): string[] => findDurationAssertions(source).map((f) => f.reason);
    expect(flagged(EXPECT + '(elapsed).' + LT + '(2_000);')).toEqual([`${LT} on 'elapsed'`]);
    expect(flagged(EXPECT + '(latencyMs).' + LT + 'OrEqual(LIMIT);')).toEqual([`${LT}OrEqual on 'latencyMs'`]);
    expect(flagged(EXPECT + '(end.at - startedAt).' + LT + '(100);')).toEqual([`${LT} on 'startedAt'`]);
    expect(flagged(EXPECT + '(ms, "fast").' + LT + '(50);')).toEqual([`${LT} on 'ms'`]);
    expect(flagged(EXPECT + '(Date.now() - t0).' + LT + '(10);')).toEqual([`${LT} on the clock`]);
    expect(flagged('const fromExit = streamEndedAt - exit.at;\nconst shown = fromExit;\n' + EXPECT + '(shown).' + LT + '(BOUND);')).toEqual([`${LT} on 'shown'`]);
    expect(flagged('const t0 = Date.now();\n' + EXPECT + '(t0).' + LT + '(limit);')).toEqual([`${LT} on 't0'`]);
    expect(flagged(EXPECT + '(performance.now() - abortedAt).not.toBeGreaterThan(10_000);')).toEqual(['reads a monotonic clock']);
    expect(flagged(EXPECT + '(\n  result.scanLongTasks.filter((t) => t.duration > 50),\n).toEqual([]);')).toEqual(['looks at long tasks']);
    expect(flagged(EXPECT + '(tasks.filter((t) => t.duration > 50)).toEqual([]);')).toEqual(["looks at an entry's duration"]);
    expect(findDurationAssertions('a;\nb;\n  ' + EXPECT + '(fromExitMs).' + LT + '(1000);')[0]).toMatchObject({ line: 3, text: EXPECT + '(fromExitMs).' + LT + '(1000);' });
  });

  it('leaves alone what is not a duration', () => {
    const clean = [
      'expect(minted.expires_at_unix_ms).toBeLessThanOrEqual(after + 300_000);',
      'expect(Math.abs(issued.expiresAtUnixMs / 1000 - info.notAfterUnixMs / 1000)).toBeLessThanOrEqual(2);',
      'expect(status.cert_expires_at_unix_ms).toBeGreaterThan(Date.now());',
      'expect(renewedAt - issuedAt).toBeGreaterThan(life * 0.5);',
      'expect(delay).toBeLessThanOrEqual(ceiling);',
      'expect(result.qr.posted - result.qr.answered).toBeLessThanOrEqual(1);',
      "expect(text).toBe('elapsed: 3 ms');",
      "await waitFor(() => done, { deadlineMs: 20_000, what: 'it' });",
      'expect((await stat(journal)).size).toBeLessThan(200);',
      'const life = before.cert_expires_at_unix_ms! - before.cert_issued_at_unix_ms!;\nexpect(spent).toBeLessThan(life);',
    ];
    for (const source of clean) expect(findDurationAssertions(source), source).toEqual([]);
  });

  it('finds none in test/**/*.test.ts', () => {
    const files = testFiles('test');
    expect(files.length).toBeGreaterThan(20);
    const offenders = files.flatMap((file) => findDurationAssertions(readFileSync(path.join(root, file), 'utf8')).map((f) => `${file}:${f.line}: ${f.reason}: ${f.text}`));
    expect(offenders).toEqual([]);
  });
});
