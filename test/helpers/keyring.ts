// Runs a shell script in a fresh D-Bus session whose gnome-keyring keeps its keyrings under `home` (never the
// user's), e.g. to lock a keyring without disturbing the suite's own session. Resolves with the script's stdout.
import { spawn } from 'node:child_process';
import path from 'node:path';

export function inPrivateKeyringSession(home: string, script: string, env: NodeJS.ProcessEnv): Promise<string> {
  const childEnv: NodeJS.ProcessEnv = { ...env, XDG_DATA_HOME: path.join(home, 'data'), XDG_RUNTIME_DIR: path.join(home, 'run') };
  delete childEnv.DBUS_SESSION_BUS_ADDRESS;
  delete childEnv.GNOME_KEYRING_CONTROL;
  return new Promise((resolve, reject) => {
    const child = spawn('dbus-run-session', ['--', 'sh', '-c', script], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, 60_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`keyring session exited ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}
