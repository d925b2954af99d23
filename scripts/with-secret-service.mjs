#!/usr/bin/env node
// Runs a command inside a private D-Bus session with an unlocked gnome-keyring (a real Secret Service), so the
// keytar tests talk to the same kind of keychain a Linux desktop has. Sets PALYRA_TEST_SECRET_SERVICE=1 for them.
// Without dbus-run-session/gnome-keyring: in CI (CI=true) this fails, since the keychain suite must not silently
// skip there; elsewhere it runs the command as is and the keychain tests skip with a message.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
if (args.length === 0) {
  console.error('usage: with-secret-service.mjs COMMAND [ARGS...]');
  process.exit(2);
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const available = has('dbus-run-session') && has('gnome-keyring-daemon');
const quote = (s) => `'${s.replaceAll("'", "'\\''")}'`;
const command = args.map(quote).join(' ');

let result;
if (available) {
  const script = `echo -n palyra-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec ${command}`;
  // A throwaway keyring directory: tests never touch the user's own login keyring.
  const dataHome = mkdtempSync(path.join(os.tmpdir(), 'palyra-keyring-'));
  result = spawnSync('dbus-run-session', ['--', 'sh', '-c', script], {
    stdio: 'inherit',
    env: {
      ...process.env,
      XDG_DATA_HOME: dataHome,
      PALYRA_TEST_SECRET_SERVICE: '1',
      PATH: `${process.cwd()}/node_modules/.bin:${process.env.PATH ?? ''}`,
    },
  });
  rmSync(dataHome, { recursive: true, force: true });
} else if (process.env.CI === 'true') {
  console.error('with-secret-service: dbus-run-session or gnome-keyring-daemon is missing; CI must run the keychain suite (npm test installs them: scripts/ensure-system-deps.mjs)');
  process.exit(1);
} else {
  console.warn('with-secret-service: no Secret Service here (install gnome-keyring, dbus-x11); keychain tests will skip');
  result = spawnSync('sh', ['-c', `exec ${command}`], {
    stdio: 'inherit',
    env: { ...process.env, PATH: `${process.cwd()}/node_modules/.bin:${process.env.PATH ?? ''}` },
  });
}
if (result.error) {
  console.error(`with-secret-service: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
