#!/usr/bin/env node
// First step of `npm test`: makes sure the Debian packages the suite needs are installed, so that `npm test` alone
// works on a fresh Debian/Ubuntu machine with Node 20.
//  - libsecret-1-dev, pkg-config, g++, make, python3: keytar (an optional dependency) builds from source against
//    libsecret; no prebuilt binary is reachable
//  - gnome-keyring, dbus-x11, libsecret-tools: a real Secret Service for the keychain tests
//  - chromium: the headless browser of the renderer and end-to-end tests (browser mode)
//  - openssl: the CA and CRL tests check what `palyra ca` writes with the real openssl binary
//  - iproute2, util-linux: `ip` and `unshare`, so the DNS-SD tests multicast only inside a network namespace of their own
// Missing packages are installed when this can be done without asking (running as root, or sudo without a
// password); otherwise it stops at once, printing the one command to run. When keytar's native module is missing
// (npm ci ran before libsecret was there, so its optional build failed) it is rebuilt afterwards.
// Not Debian (no dpkg-query): it says what the suite needs and goes on; the affected tests report what is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGES = ['libsecret-1-dev', 'pkg-config', 'g++', 'make', 'python3', 'gnome-keyring', 'dbus-x11', 'libsecret-tools', 'chromium', 'openssl', 'iproute2', 'util-linux', 'postgresql'];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => console.error(`system-deps: ${message}`);

function run(command, args, options = {}) {
  return spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...options });
}

function installed(pkg) {
  const r = run('dpkg-query', ['-W', '-f=${Status}', pkg]);
  return r.status === 0 && r.stdout.includes('install ok installed');
}

/** How to become root without a prompt: [] when root already, ['sudo', '-n'] when that works, null otherwise. */
function privilege() {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return [];
  const probe = run('sudo', ['-n', 'true']);
  return probe.status === 0 ? ['sudo', '-n'] : null;
}

function keytarBuilt() {
  return existsSync(path.join(root, 'node_modules/keytar/build/Release/keytar.node'));
}

function main() {
  if (run('dpkg-query', ['--version']).error !== undefined) {
    log(`not a Debian system; the suite needs: ${PACKAGES.join(' ')} (or your system's equivalents)`);
    return 0;
  }
  const missing = PACKAGES.filter((p) => !installed(p));
  if (missing.length > 0) {
    const command = `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing.join(' ')}`;
    const prefix = privilege();
    if (prefix === null) {
      log(`missing Debian packages: ${missing.join(' ')}`);
      log(`run this once, then npm test again:\n  ${command}`);
      return 1;
    }
    log(`installing ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const [cmd, ...pre] = prefix.length === 0 ? ['apt-get'] : [...prefix, 'apt-get'];
    for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...missing]]) {
      const r = spawnSync(cmd, [...pre, ...args], { stdio: ['ignore', 'ignore', 'inherit'], env });
      if (r.status !== 0) {
        log(`apt-get ${args[0]} failed (exit ${r.status ?? r.signal}); run by hand:\n  ${command}`);
        return 1;
      }
    }
  }
  if (!keytarBuilt()) {
    // npm drops an optional dependency whose build failed, or leaves it without its native module.
    const present = existsSync(path.join(root, 'node_modules/keytar/package.json'));
    log(`keytar has no native module (its optional build failed before libsecret was installed); ${present ? 'rebuilding' : 'installing'} it`);
    const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).optionalDependencies.keytar;
    const args = present ? ['rebuild', 'keytar', '--foreground-scripts'] : ['install', '--no-save', '--no-audit', '--no-fund', `keytar@${version}`];
    const r = run('npm', args, { cwd: root });
    if (r.status !== 0 || !keytarBuilt()) {
      console.error(`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-30).join('\n'));
      log('rebuilding keytar failed; the OS keychain tests need it (npm rebuild keytar)');
      return 1;
    }
  }
  log(missing.length === 0 ? 'all present' : 'done');
  return 0;
}

process.exit(main());
