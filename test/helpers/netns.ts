// Tests that multicast (DNS-SD) run only inside a network namespace of their own (`unshare -n`), never on this
// machine's real interfaces. Needs root (or user namespaces), `unshare` (util-linux) and `ip` (iproute2).
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'vitest';

/** Why a private network namespace cannot be made here, or null when it can. */
export function netnsUnavailable(): string | null {
  for (const [tool, pkg] of [
    ['unshare', 'util-linux'],
    ['ip', 'iproute2'],
  ] as const) {
    const probe = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    if (probe.status !== 0) return `'${tool}' not found (Debian package ${pkg}; npm test installs it)`;
  }
  const trial = spawnSync('unshare', ['-n', 'ip', 'link', 'set', 'lo', 'up'], { encoding: 'utf8' });
  if (trial.status !== 0) return `cannot create a network namespace (unshare -n: ${(trial.stderr || `exit ${trial.status}`).trim().slice(0, 200)}); run as root`;
  return null;
}

/**
 * `describe` for suites that need a private network namespace. Without one: skipped with a message locally, a
 * failing test when CI=true, so CI can never go green by running nothing.
 */
export function describeInNetns(name: string, body: () => void): void {
  const missing = netnsUnavailable();
  if (missing === null) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs a private network namespace', () => {
        throw new Error(`${missing}; CI must run the DNS-SD tests`);
      });
    });
  } else {
    console.log(`${missing}: skipping '${name}'`);
    describe.skip(name, body);
  }
}

/**
 * Sets up the namespace's network before `script` runs: loopback up with multicast routed over it, or (veth) a veth
 * pair with 10.99.0.1/24 on `v0` carrying multicast, so the namespace has a "LAN" address.
 */
export function netnsPrelude(o: { veth: boolean }): string {
  const base = 'set -eu\nip link set lo up\nip link set lo multicast on\n';
  if (!o.veth) return `${base}ip route add 224.0.0.0/4 dev lo\n`;
  return `${base}ip link add v0 type veth peer name v1\nip addr add 10.99.0.1/24 dev v0\nip link set v0 up\nip link set v1 up\nip route add 224.0.0.0/4 dev v0\n`;
}

export interface NetnsResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `sh -c script` in a fresh network namespace (gone when the script ends); killed after `timeoutMs`. */
export function runInNetns(script: string, o: { env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<NetnsResult> {
  // Its own process group, so a timeout kills what the script started in the background too.
  const child = spawn('unshare', ['-n', 'sh', '-c', script], { env: o.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      reject(new Error(`the network-namespace script did not finish within ${o.timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, o.timeoutMs);
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

/** A network namespace kept alive by a sleeping process, which other processes join with `nsenter`. */
export interface HeldNetns {
  /** The holder's pid: its namespace is `/proc/PID/ns/net`. */
  readonly pid: number;
  /** The command prefix that runs a program inside the namespace: `nsenter --net=/proc/PID/ns/net --`. */
  readonly prefix: readonly string[];
  /** Kills the holder; the namespace goes once nothing else is in it. */
  close(): Promise<void>;
}

/**
 * Makes a network namespace (`unshare -n`) set up by `netnsPrelude`, held open by a `sleep` until `close()`, so
 * several processes started at different times (app processes, a browser) can share it through `nsenter`.
 */
export async function holdNetns(o: { veth: boolean; timeoutMs: number }): Promise<HeldNetns> {
  const script = `${netnsPrelude({ veth: o.veth })}echo netns-ready\nexec sleep 100000\n`;
  // unshare and sh exec in place (no --fork), so the child's pid is the process that holds the namespace.
  const child = spawn('unshare', ['-n', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the network namespace was not ready within ${o.timeoutMs} ms: ${stderr}`));
    }, o.timeoutMs);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the network-namespace holder exited (${child.exitCode ?? child.signalCode}): ${stderr}`));
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('netns-ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  const pid = child.pid!;
  return {
    pid,
    prefix: ['nsenter', `--net=/proc/${pid}/ns/net`, '--'],
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
