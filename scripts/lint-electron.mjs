#!/usr/bin/env node
// `npm run lint:electron`: Electronegativity over the Electron code (main/app and preload), failing on any finding
// that .electronegativity/allow.json does not justify, and on any allow entry that no longer matches a finding.
//
// Why not just `electronegativity -i main/app -i preload`: its -i takes one path (a second -i silently replaces the
// first), and with -o it neither prints nor reports files it failed to parse. So the inputs are copied, with their
// relative paths, into one scratch folder and scanned in a single run through the package's own runner, whose result
// includes parse errors; the global checks (CSP, navigation limits, permission handler) then see both folders at once.
//
//   node scripts/lint-electron.mjs [--root DIR] [--allow FILE] [--json]
//
// Exit status: 0 clean, 1 unjustified findings / stale allow entries / unparsable files, 2 usage or setup error.
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const options = { root: repoRoot, allow: null, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') options.json = true;
    else if (arg === '--root' || arg === '--allow') {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      options[arg.slice(2)] = path.resolve(value);
    } else throw new Error(`unknown argument ${arg}`);
  }
  options.allow ??= path.join(options.root, '.electronegativity', 'allow.json');
  return options;
}

/** The allow file: inputs to scan, checks not run (with why), and justified findings. */
export function loadAllowFile(file) {
  const config = JSON.parse(readFileSync(file, 'utf8'));
  if (!Array.isArray(config.inputs) || config.inputs.length === 0) throw new Error(`${file}: "inputs" must list the folders to scan`);
  for (const entry of [...(config.excludeChecks ?? []), ...(config.allow ?? [])]) {
    if (typeof entry.justification !== 'string' || entry.justification.trim().length < 20) {
      throw new Error(`${file}: every entry needs a real "justification" (${JSON.stringify(entry.check)})`);
    }
  }
  return { inputs: config.inputs, excludeChecks: config.excludeChecks ?? [], allow: config.allow ?? [] };
}

function electronVersion(root) {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const declared = pkg.devDependencies?.electron ?? pkg.dependencies?.electron;
  if (typeof declared !== 'string') throw new Error('package.json does not declare electron');
  return declared.replace(/^[^0-9]*/, '');
}

/**
 * Matches findings against allow entries. An entry `{check, file, sample?, count?}` justifies exactly `count`
 * (default 1) findings of that check in that file whose code sample contains `sample`; more is unjustified, fewer is
 * a stale entry (the code changed: re-review it).
 */
export function reconcile(findings, allow) {
  const unjustified = [];
  const used = allow.map(() => 0);
  const justified = [];
  for (const finding of findings) {
    const index = allow.findIndex(
      (a, i) => a.check === finding.check && a.file === finding.file && (a.sample === undefined || (finding.sample ?? '').includes(a.sample)) && used[i] < (a.count ?? 1),
    );
    if (index === -1) unjustified.push(finding);
    else {
      used[index] += 1;
      justified.push({ ...finding, justification: allow[index].justification });
    }
  }
  const stale = allow.flatMap((a, i) => (used[i] < (a.count ?? 1) ? [{ ...a, matched: used[i] }] : []));
  return { justified, unjustified, stale };
}

export async function lintElectron({ root = repoRoot, allow: allowFile = path.join(root, '.electronegativity', 'allow.json') } = {}) {
  const config = loadAllowFile(allowFile);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'palyra-electronegativity-'));
  try {
    for (const input of config.inputs) cpSync(path.join(root, input), path.join(scratch, input), { recursive: true });
    const run = createRequire(import.meta.url)('@doyensec/electronegativity');
    // The runner chats on stdout (translation and release fetches); keep stdout for our report.
    const log = console.log;
    console.log = (...args) => console.error(...args);
    const result = await run(
      {
        input: scratch,
        output: undefined,
        isSarif: false,
        customScan: [],
        excludeFromScan: config.excludeChecks.map((c) => c.check.toLowerCase()),
        severitySet: undefined,
        confidenceSet: undefined,
        isRelative: true,
        isVerbose: false,
        electronUpgrade: undefined,
        electronVersionOverride: electronVersion(root),
        parserPlugins: [],
      },
      false,
    ).finally(() => {
      console.log = log;
    });
    const findings = result.issues.map((issue) => ({
      check: issue.id,
      file: issue.file.split(path.sep).join('/'),
      line: issue.location?.line ?? 0,
      severity: issue.severity?.name ?? 'UNKNOWN',
      confidence: issue.confidence?.name ?? 'UNKNOWN',
      sample: typeof issue.sample === 'string' ? issue.sample : undefined,
    }));
    const parseErrors = result.errors
      .filter((e) => !e.tolerable)
      .map((e) => ({ file: path.relative(scratch, e.file).split(path.sep).join('/'), message: e.message }));
    return { checks: result.globalChecks + result.atomicChecks, parseErrors, ...reconcile(findings, config.allow) };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function report(outcome) {
  const lines = [`electronegativity: ${outcome.checks} checks over main/app and preload`];
  for (const f of outcome.justified) lines.push(`  justified   ${f.check} ${f.file}:${f.line}`);
  for (const f of outcome.unjustified) lines.push(`  UNJUSTIFIED ${f.check} [${f.severity}/${f.confidence}] ${f.file}:${f.line}${f.sample ? `  ${f.sample}` : ''}`);
  for (const s of outcome.stale) lines.push(`  STALE       allow entry ${s.check} ${s.file}${s.sample ? ` "${s.sample}"` : ''} expects ${s.count ?? 1}, matched ${s.matched}`);
  for (const e of outcome.parseErrors) lines.push(`  UNPARSABLE  ${e.file}: ${e.message}`);
  const failed = outcome.unjustified.length + outcome.stale.length + outcome.parseErrors.length;
  lines.push(failed === 0 ? 'electronegativity: no unjustified findings' : `electronegativity: ${failed} problem(s); fix them or justify them in .electronegativity/allow.json`);
  return { text: `${lines.join('\n')}\n`, failed };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`lint-electron: ${error.message}\n`);
    process.exit(2);
  }
  let outcome;
  try {
    outcome = await lintElectron(options);
  } catch (error) {
    process.stderr.write(`lint-electron: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const { text, failed } = report(outcome);
  process.stdout.write(options.json ? `${JSON.stringify(outcome)}\n` : text);
  process.exit(failed === 0 ? 0 : 1);
}
