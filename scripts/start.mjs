// `npm start`: builds what is missing or stale, then runs the desktop app in Electron when its binary is installed,
// else in browser mode (ARCHITECTURE.md: this machine cannot download Electron). `npm run start:browser` (or
// `--browser`) always uses browser mode. `npm start -- --new-link` builds nothing and starts nothing: it asks the
// browser-mode app already running on this user-data directory for a fresh one-time link and prints it as
// `{"event":"browser.link","url":"…"}` (main/app/browser-session.ts).
//
// The Electron binary is found without require('electron'): that package's index.js starts a download when the
// binary is missing. Its install script writes node_modules/electron/path.txt naming the binary under dist/.
//
// Build output goes to stderr, so stdout carries only what the app prints (browser mode: its one ready line).
// PALYRA_SKIP_BUILD=1 skips building unless dist/main is missing (as `npm test` does after its own build).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ELECTRON_MISSING_LINE = 'Electron binary not found (it downloads from github, unreachable here); starting browser mode instead.';
const MAIN_OUTPUTS = ['dist/main/app/browser-main.js'];
const SESSION_MODULE = 'dist/main/app/browser-session.js';
const ELECTRON_ENTRY = 'dist/main/app/electron-main.js';
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', '.vite']);

/** Newest modification time (ms) of the files under `paths` (files or directories), 0 when there are none. */
export function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    let info;
    try {
      info = statSync(p);
    } catch {
      return;
    }
    if (info.isDirectory()) {
      for (const entry of readdirSync(p)) if (!SKIPPED_DIRS.has(entry)) visit(path.join(p, entry));
    } else {
      newest = Math.max(newest, info.mtimeMs);
    }
  };
  for (const p of paths) visit(p);
  return newest;
}

/** True when an output is missing or older than the newest source. */
export function isStale(outputs, sources) {
  let oldest = Infinity;
  for (const file of outputs) {
    try {
      oldest = Math.min(oldest, statSync(file).mtimeMs);
    } catch {
      return true;
    }
  }
  return newestMtime(sources) > oldest;
}

/** The Electron binary named by node_modules/electron/path.txt, or null when it is not installed. */
export function findElectronBinary(root = repoRoot) {
  const electronDir = path.join(root, 'node_modules', 'electron');
  let relative;
  try {
    relative = readFileSync(path.join(electronDir, 'path.txt'), 'utf8').trim();
  } catch {
    return null;
  }
  if (relative === '') return null;
  const binary = path.join(electronDir, 'dist', relative);
  const inside = binary.startsWith(path.join(electronDir, 'dist') + path.sep);
  return inside && existsSync(binary) && statSync(binary).isFile() ? binary : null;
}

function packageScripts(root) {
  try {
    return JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts ?? {};
  } catch {
    return {};
  }
}

function run(command, args, root) {
  return new Promise((resolve, reject) => {
    // stdout of the build goes to our stderr: stdout is the app's.
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 2, 2], shell: process.platform === 'win32' });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

/**
 * Runs `npm run build` and `npm run build:renderer` (when that script exists) if their outputs are missing or older
 * than their sources. With PALYRA_SKIP_BUILD=1 only a missing main build is made (the host shows a "renderer not
 * built" page without the renderer).
 */
export async function buildIfNeeded(root = repoRoot, env = process.env) {
  const at = (...parts) => path.join(root, ...parts);
  const mainOutputs = MAIN_OUTPUTS.map((p) => at(p));
  if (existsSync(at('main/app/electron-main.ts'))) mainOutputs.push(at(ELECTRON_ENTRY));
  const skip = env.PALYRA_SKIP_BUILD === '1';
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const built = [];
  const mainSources = [at('main'), at('preload'), at('tsconfig.json'), at('tsconfig.build.json')];
  if (skip ? mainOutputs.some((f) => !existsSync(f)) : isStale(mainOutputs, mainSources)) {
    await run(npm, ['run', 'build'], root);
    built.push('main');
  }
  const hasRendererBuild = packageScripts(root)['build:renderer'] !== undefined;
  if (!skip && hasRendererBuild && isStale([at('dist/renderer/index.html')], [at('renderer'), at('main/ipc')])) {
    await run(npm, ['run', 'build:renderer'], root);
    built.push('renderer');
  }
  return built;
}

function runElectron(binary, root) {
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  const child = spawn(binary, [path.join(root, ELECTRON_ENTRY), ...process.argv.slice(2).filter((a) => a !== '--browser')], { cwd: root, stdio: 'inherit', env });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
}

/** `--new-link`: the running browser-mode host's fresh link on stdout; the exit code. */
export async function newLink(root = repoRoot, env = process.env) {
  const module = path.join(root, SESSION_MODULE);
  if (!existsSync(module)) {
    process.stderr.write(`error[unavailable]: ${SESSION_MODULE} is missing: no browser-mode Palyra from this checkout can be running; run \`npm start\`\n`);
    return 1;
  }
  const { printNewLink } = await import(pathToFileURL(module).href);
  return printNewLink(env, { stdout: (line) => process.stdout.write(line), stderr: (line) => process.stderr.write(line) });
}

async function main() {
  const root = repoRoot;
  if (process.argv.includes('--new-link')) {
    process.exitCode = await newLink(root);
    return;
  }
  const forceBrowser = process.argv.includes('--browser');
  try {
    await buildIfNeeded(root);
  } catch (error) {
    process.stderr.write(`error[internal]: the build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  const electron = forceBrowser ? null : findElectronBinary(root);
  if (electron !== null && existsSync(path.join(root, ELECTRON_ENTRY))) {
    runElectron(electron, root);
    return;
  }
  if (electron !== null) process.stdout.write(`${ELECTRON_ENTRY} is missing; starting browser mode instead.\n`);
  else if (!forceBrowser) process.stdout.write(`${ELECTRON_MISSING_LINE}\n`);
  // Browser mode in this process: it prints its ready line (with the URL) and handles SIGINT/SIGTERM itself.
  await import(pathToFileURL(path.join(root, 'dist/main/app/browser-main.js')).href);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
