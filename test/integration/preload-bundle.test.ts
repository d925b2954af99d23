// The preload as Electron loads it in a sandboxed window: one CommonJS file whose `require` knows only `electron`.
// scripts/build-preload.mjs builds it for real (Vite); the bundle then runs in a fresh V8 context (node:vm) with
// nothing but web globals and a require that refuses every other module. `electron` there is a fake, because the
// real one exists only inside an Electron renderer (no Electron binary on this machine).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANNEL_NAMES, methodNameOf } from '../../main/ipc/contract.js';
import { repoRoot } from '../helpers/build.js';

let outDir: string;
let bundle: string;

beforeAll(async () => {
  outDir = await mkdtemp(path.join(os.tmpdir(), 'palyra-preload-'));
  await promisify(execFile)(process.execPath, [path.join(repoRoot, 'scripts', 'build-preload.mjs'), '--out-dir', outDir], { cwd: repoRoot });
  bundle = await readFile(path.join(outDir, 'preload.cjs'), 'utf8');
}, 120_000);

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

function runInSandbox(): { exposed: Map<string, unknown>; required: string[]; invoked: [string, unknown][]; emit: (message: unknown) => void } {
  const exposed = new Map<string, unknown>();
  const required: string[] = [];
  const invoked: [string, unknown][] = [];
  const listeners: ((event: unknown, message: unknown) => void)[] = [];
  const electron = {
    contextBridge: {
      exposeInMainWorld: (key: string, api: unknown) => exposed.set(key, api),
    },
    ipcRenderer: {
      invoke: (channel: string, args: unknown) => {
        invoked.push([channel, args]);
        return Promise.resolve({ ok: false, error: { code: 'device_not_paired', message: 'not paired' } });
      },
      on: (channel: string, listener: (event: unknown, message: unknown) => void) => {
        if (channel === 'palyra:event') listeners.push(listener);
      },
    },
  };
  const module = { exports: {} };
  const context = vm.createContext({
    module,
    exports: module.exports,
    require: (name: string) => {
      required.push(name);
      if (name === 'electron') return electron;
      throw new Error(`module not found: ${name}`);
    },
    console,
    URL,
    TextEncoder,
    TextDecoder,
    queueMicrotask,
  });
  vm.runInContext(bundle, context, { filename: 'preload.cjs' });
  return {
    exposed,
    required,
    invoked,
    emit: (message) => {
      for (const l of listeners) l({}, message);
    },
  };
}

describe('the bundled preload', () => {
  it('requires nothing but electron', () => {
    const run = runInSandbox();
    expect([...new Set(run.required)]).toEqual(['electron']);
    expect(bundle).not.toMatch(/\brequire\(\s*["'](?!electron["'])/);
    expect(bundle).not.toMatch(/\bimport\s*\(|^\s*import\s/m);
  });

  it('exposes window.palyra with one method per channel and rejects with the code', async () => {
    const run = runInSandbox();
    const api = run.exposed.get('palyra') as Record<string, (args?: unknown) => Promise<unknown>>;
    expect(Object.keys(api).sort()).toEqual([...CHANNEL_NAMES.map(methodNameOf), 'on'].sort());
    await expect(api.deviceUnpair!({})).rejects.toEqual({ name: 'PalyraIpcError', code: 'device_not_paired', message: 'not paired' });
    expect(run.invoked).toEqual([['palyra:device.unpair', {}]]);
  });

  it('delivers events from the event channel', () => {
    const run = runInSandbox();
    const api = run.exposed.get('palyra') as { on(event: string, listener: (payload: unknown) => void): () => void };
    const received: unknown[] = [];
    api.on('app.deepLink', (payload) => received.push(payload));
    run.emit({ event: 'app.deepLink', payload: { uri: 'palyra://pair?v=1' } });
    run.emit({ event: 'not.an.event', payload: {} });
    expect(received).toEqual([{ uri: 'palyra://pair?v=1' }]);
  });
});
