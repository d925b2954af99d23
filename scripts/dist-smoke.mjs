#!/usr/bin/env node
// Packaging smoke test: builds, then packs an unpacked Linux app (`electron-builder --linux dir`) against the local
// Electron in node_modules/electron/dist (no download), and checks the result: the app files and .proto files in
// app.asar, the unpacked .proto files and icon, and the fuses flipped as electronFuses() says.
//
// Where node_modules/electron/dist does not hold an Electron binary (this machine: its download is unreachable), it
// prints why it is skipping and exits 0.
//
//   node scripts/dist-smoke.mjs [--keep]     (--keep leaves the packed app in the printed folder)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { findElectronBinary } from './start.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const electronDist = path.join(root, 'node_modules', 'electron', 'dist');
const require = createRequire(import.meta.url);

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
    child.on('error', reject);
    child.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${path.basename(command)} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`))));
  });
}

function check(condition, what) {
  if (!condition) throw new Error(`dist-smoke: ${what}`);
  console.log(`dist-smoke: ok  ${what}`);
}

/** electron-builder's fuse names → @electron/fuses' wire positions. */
const FUSE_INDEX = {
  runAsNode: 'RunAsNode',
  enableCookieEncryption: 'EnableCookieEncryption',
  enableNodeOptionsEnvironmentVariable: 'EnableNodeOptionsEnvironmentVariable',
  enableNodeCliInspectArguments: 'EnableNodeCliInspectArguments',
  enableEmbeddedAsarIntegrityValidation: 'EnableEmbeddedAsarIntegrityValidation',
  onlyLoadAppFromAsar: 'OnlyLoadAppFromAsar',
  grantFileProtocolExtraPrivileges: 'GrantFileProtocolExtraPrivileges',
};

async function main() {
  if (!existsSync(electronDist) || findElectronBinary(root) === null) {
    console.log('dist-smoke: no Electron binary in node_modules/electron/dist (its download is unreachable here); skipping the packaging smoke test.');
    return;
  }
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  await run(npm, ['run', 'build']);
  await run(process.execPath, [path.join(root, 'scripts', 'build-preload.mjs')]);
  await run(npm, ['run', 'build:renderer', '--if-present']);

  const out = mkdtempSync(path.join(os.tmpdir(), 'palyra-dist-smoke-'));
  const keep = process.argv.includes('--keep');
  try {
    await run(process.execPath, [
      path.join(root, 'node_modules', 'electron-builder', 'cli.js'),
      '--linux',
      'dir',
      '--publish',
      'never',
      `-c.electronDist=${electronDist}`,
      `-c.directories.output=${out}`,
      // keytar's native rebuild needs Electron's headers from the network; packing is what is smoke-tested here.
      '-c.npmRebuild=false',
    ]);

    const unpackedName = readdirSync(out).find((d) => /^linux(-[a-z0-9]+)?-unpacked$/.test(d));
    check(unpackedName !== undefined, `electron-builder produced a linux-unpacked folder in ${out}`);
    const unpacked = path.join(out, unpackedName);
    const resources = path.join(unpacked, 'resources');
    const asar = require('@electron/asar');
    const files = new Set(asar.listPackage(path.join(resources, 'app.asar'), { isPack: false }).map((f) => f.split(path.sep).join('/')));
    for (const file of ['/package.json', '/dist/main/app/electron-main.js', '/dist/preload/preload.cjs', '/main/rpc/proto/palyra/node/v1/node.proto']) {
      check(files.has(file), `app.asar contains ${file}`);
    }
    check(![...files].some((f) => f.startsWith('/test/') || (f.startsWith('/main/') && f.endsWith('.ts'))), 'app.asar holds no sources or tests');
    check(existsSync(path.join(resources, 'app.asar.unpacked', 'main', 'rpc', 'proto', 'palyra', 'node', 'v1', 'node.proto')), 'the .proto files are unpacked');
    check(existsSync(path.join(resources, 'icon.png')), 'the icon is in resources/');

    const binary = path.join(unpacked, 'palyra-desktop');
    check(existsSync(binary), 'the executable is palyra-desktop');
    const { getCurrentFuseWire, FuseV1Options } = require('@electron/fuses');
    const { electronFuses } = await import(pathToFileURL(path.join(root, 'dist', 'main', 'app', 'electron-security.js')).href);
    const wire = await getCurrentFuseWire(binary);
    for (const [name, enabled] of Object.entries(electronFuses())) {
      const state = wire[FuseV1Options[FUSE_INDEX[name]]];
      check(state === (enabled ? 49 : 48), `fuse ${name} is ${enabled ? 'on' : 'off'}`);
    }
    console.log(`dist-smoke: packed and checked ${keep ? `(kept in ${out})` : ''}`);
  } finally {
    if (!keep) rmSync(out, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
