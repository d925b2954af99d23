// Test helpers: the real `palyra` command (node bin/palyra.js) as child processes, with bounded waits.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './build.js';
import { inPrivateKeyringSession as inPrivateKeyringSessionWith } from './keyring.js';

const BIN = path.join(repoRoot, 'bin/palyra.js');
/** Upper bound for one CLI command; generous for a loaded 2-core machine. */
const COMMAND_TIMEOUT_MS = 20_000;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a CLI child: the key file instead of any OS keychain, and no inherited PALYRA_* settings
 * (each test passes --state-dir).
 */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('PALYRA_'));
  return { ...Object.fromEntries(inherited), PALYRA_KEYCHAIN: 'file', ...extra };
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = cliEnv()): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, env, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs one command to completion (killed and rejected after the timeout). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; stdin?: string } = {}): Promise<CliResult> {
  const child = spawnCli(args, options.env ?? cliEnv());
  child.stdin.end(options.stdin ?? '');
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`palyra ${args.join(' ')} did not finish within ${options.timeoutMs ?? COMMAND_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? COMMAND_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command with --json and parses its one JSON document. */
export async function runCliJson(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult & { json: unknown }> {
  const result = await runCli([...args, '--json'], options);
  let json: unknown;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new Error(`palyra ${args.join(' ')} --json printed no JSON document (exit ${result.code})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return { ...result, json };
}

export interface ReadyLine {
  event: 'gateway.ready';
  listen: string;
  ca_pin: string;
  ca_fingerprint: string;
  mtls_required: boolean;
  state_dir: string;
}

export interface GatewayProcess {
  child: ChildProcessWithoutNullStreams;
  /** The first stdout line, unparsed. */
  firstLine: string;
  ready: ReadyLine;
  /** Every stdout line so far, the ready line included. */
  lines: string[];
  stderr: () => string;
  /** Resolves with the exit status once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running (for finally / afterEach). */
  kill: () => Promise<void>;
}

/** Starts `palyra gateway run` and waits (bounded) for its first stdout line. */
export async function startGatewayProcess(
  stateDir: string,
  args: string[] = [],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<GatewayProcess> {
  // A repeated --listen is a usage error: the default applies only when the caller names none.
  const listen = args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0'];
  const child = spawnCli(['gateway', 'run', '--state-dir', stateDir, ...listen, ...args], options.env ?? cliEnv());
  child.stdin.end();
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  let exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const firstLine = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`gateway printed no line within ${options.timeoutMs ?? COMMAND_TIMEOUT_MS} ms\nstderr: ${stderr}`));
    }, options.timeoutMs ?? COMMAND_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      let newline = partial.indexOf('\n');
      while (newline >= 0) {
        lines.push(partial.slice(0, newline));
        partial = partial.slice(newline + 1);
        newline = partial.indexOf('\n');
      }
      if (lines.length > 0) {
        clearTimeout(timer);
        resolve(lines[0]!);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (code ${code}, signal ${signal}) before printing a line\nstderr: ${stderr}`));
    });
  });
  const kill = async (): Promise<void> => {
    if (exitStatus === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  let first: string;
  try {
    first = await firstLine;
  } catch (error) {
    await kill();
    throw error;
  }
  return { child, firstLine: first, ready: JSON.parse(first) as ReadyLine, lines, stderr: () => stderr, exited, kill };
}

/** `inPrivateKeyringSession` with `PALYRA_BIN` (the path of bin/palyra.js) in the script's environment. */
export function inPrivateKeyringSession(home: string, script: string, env: NodeJS.ProcessEnv): Promise<string> {
  return inPrivateKeyringSessionWith(home, script, { ...env, PALYRA_BIN: BIN });
}
