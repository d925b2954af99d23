// `npm start` on this machine (no Electron binary): a real child process that falls back to browser mode and serves
// the UI and the IPC WebSocket, exactly as a user or an automation client meets it: a one-time link for the browser,
// the session file for automation, and `npm start -- --new-link` for a fresh link.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ELECTRON_MISSING_LINE } from '../../scripts/start.mjs';
import { contentSecurityPolicy, sessionCookieName } from '../../main/app/browser-host.js';
import { BROWSER_SESSION_FILE } from '../../main/app/browser-session.js';
import type { BrowserSessionInfo } from '../../main/app/browser-session.js';
import { ensureBuilt, repoRoot } from '../helpers/build.js';
import { cliEnv } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';
import { connectIpc } from '../helpers/ipc-client.js';

/** Upper bound for a start on a loaded 2-core machine (the benchmark measures the real time). */
const READY_TIMEOUT_MS = 25_000;
const EXIT_TIMEOUT_MS = 10_000;

interface Started {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  stderr: () => string;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  const lines: string[] = [];
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => { resolve({ code, signal }); }));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no browser.ready line within ${READY_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, READY_TIMEOUT_MS);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      let newline: number;
      while ((newline = stdout.indexOf('\n')) >= 0) {
        const line = stdout.slice(0, newline);
        stdout = stdout.slice(newline + 1);
        lines.push(line);
        if (line.startsWith('{')) {
          const ready = JSON.parse(line) as { event: string; url: string };
          if (ready.event === 'browser.ready') {
            clearTimeout(timer);
            resolve({ child, lines, stderr: () => stderr, url: ready.url, exited });
          }
        }
      }
    });
  });
}

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); });
      })
      .on('error', reject);
  });
}

/** The page's exchange of a link token: POST /session from the page's origin. */
function exchange(url: string): Promise<{ status: number; setCookie: string[] }> {
  const link = new URL(url);
  const body = JSON.stringify({ token: link.hash.slice('#token='.length) });
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: Number(link.port), path: '/session', method: 'POST', headers: { 'content-type': 'application/json', origin: link.origin } },
      (res) => {
        res.resume();
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, setCookie: res.headers['set-cookie'] ?? [] }); });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** `node scripts/start.mjs --new-link` to completion. */
function newLink(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['scripts/start.mjs', '--new-link'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), READY_TIMEOUT_MS);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout, stderr });
  }));
}

async function stop(started: Started): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  started.child.kill('SIGTERM');
  const timer = setTimeout(() => started.child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
  const result = await started.exited;
  clearTimeout(timer);
  return result;
}

let dir = '';
let cleanup: () => Promise<void> = () => Promise.resolve();

beforeAll(async () => {
  await ensureBuilt();
  ({ dir, cleanup } = await tempDir('palyra-start-'));
}, 120_000);

afterAll(async () => {
  await cleanup();
});

describe('npm start without an Electron binary', () => {
  it('says so in one line, falls back to browser mode, serves the page and the IPC socket, and stops on SIGTERM', async () => {
    const userData = path.join(dir, 'userData');
    const env = cliEnv({ PALYRA_USER_DATA_DIR: userData, PALYRA_SKIP_BUILD: '1' });
    const started = await start(['scripts/start.mjs'], env);
    let credential = '';
    try {
      expect(started.lines[0]).toBe(ELECTRON_MISSING_LINE);
      expect(started.lines).toHaveLength(2);
      const url = new URL(started.url);
      expect(url.protocol).toBe('http:');
      expect(url.hostname).toBe('127.0.0.1');
      expect(url.pathname).toBe('/');
      const token = /^#token=([A-Za-z0-9_-]{43})$/.exec(url.hash)?.[1];
      expect(token).toBeDefined();
      const port = Number(url.port);

      const page = await get(`http://127.0.0.1:${port}/`);
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.headers['content-security-policy']).toBe(contentSecurityPolicy(port));

      // The session file, for automation: owner-only, naming the running host and its credential.
      const sessionFile = path.join(userData, BROWSER_SESSION_FILE);
      if (process.platform !== 'win32') expect((await stat(sessionFile)).mode & 0o777).toBe(0o600);
      const session = JSON.parse(await readFile(sessionFile, 'utf8')) as BrowserSessionInfo;
      expect(session).toEqual({ url: `http://127.0.0.1:${port}/`, port, credential: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), pid: started.child.pid });
      expect(session.credential).not.toBe(token);
      credential = session.credential;

      // Without a credential or a session cookie: closed with 4401, nothing served.
      const intruder = await connectIpc({ port, credential: '' }, { credential: null, awaitReady: false });
      intruder.sendRaw({ id: '1', channel: 'app.info', args: {} });
      expect((await intruder.closed).code).toBe(4401);
      expect(intruder.messages).toEqual([]);

      // With the file's credential: the contract, on the directories the environment named.
      const client = await connectIpc(session);
      const info = await client.call('app.info');
      expect(info).toMatchObject({ ok: true, result: { mode: 'browser', device_dir: path.join(userData, 'device'), state_dir: path.join(userData, 'gateway') } });
      expect(await client.call('device.status')).toMatchObject({ ok: true, result: { paired: false, keychain: 'file' } });
      expect(await client.call('gateway.status')).toMatchObject({ ok: true, result: { enabled: false, running: false } });
      await client.close();

      // The printed link opens one browser session, once.
      const exchanged = await exchange(started.url);
      expect(exchanged.status).toBe(204);
      expect(exchanged.setCookie[0]).toMatch(new RegExp(`^${sessionCookieName(port)}=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/$`));
      expect((await exchange(started.url)).status).toBe(410);

      // `npm start -- --new-link` asks the running host for a fresh one; it works once, the first stays spent.
      const fresh = await newLink(env);
      expect(fresh.stderr).toBe('');
      expect(fresh.code).toBe(0);
      const line = JSON.parse(fresh.stdout) as { event: string; url: string };
      expect(line.event).toBe('browser.link');
      expect(line.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/#token=[A-Za-z0-9_-]{43}$`));
      expect(line.url).not.toBe(started.url);
      expect((await exchange(line.url)).status).toBe(204);
      expect((await exchange(line.url)).status).toBe(410);
      expect((await exchange(started.url)).status).toBe(410);
    } finally {
      const { code } = await stop(started);
      expect(code).toBe(0);
    }
    // Neither the link nor the credential was logged; the session file went with the host.
    expect(started.stderr()).not.toContain(new URL(started.url).hash.slice('#token='.length));
    expect(started.stderr()).not.toContain(credential);
    await expect(stat(path.join(userData, BROWSER_SESSION_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
    const none = await newLink(env);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^error\[unavailable\]: no browser-mode Palyra is running on .*npm start -- --browser/);
  });

  it('browser-main honours PALYRA_STATE_DIR / PALYRA_DEVICE_DIR, starts the enabled gateway, and refuses a bad port', async () => {
    const userData = path.join(dir, 'userData2');
    const stateDir = path.join(dir, 'elsewhere/state');
    const deviceDir = path.join(dir, 'elsewhere/device');
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(userData, { recursive: true });
    await writeFile(path.join(userData, 'settings.json'), JSON.stringify({ version: 1, gateway: { enabled: true, listen: '127.0.0.1:0', name: 'Started' } }));
    const env = cliEnv({ PALYRA_USER_DATA_DIR: userData, PALYRA_STATE_DIR: stateDir, PALYRA_DEVICE_DIR: deviceDir });
    const started = await start(['dist/main/app/browser-main.js'], env);
    try {
      expect(started.lines).toHaveLength(1);
      const url = new URL(started.url);
      const session = JSON.parse(await readFile(path.join(userData, BROWSER_SESSION_FILE), 'utf8')) as BrowserSessionInfo;
      expect(session.port).toBe(Number(url.port));
      const client = await connectIpc(session);
      expect(await client.call('app.info')).toMatchObject({ ok: true, result: { device_dir: deviceDir, state_dir: stateDir } });
      expect(await client.call('gateway.status')).toMatchObject({ ok: true, result: { enabled: true, running: true, name: 'Started', state_dir: stateDir, key_location: 'file', rollback_protection: 'none' } });
      await client.close();
    } finally {
      expect((await stop(started)).code).toBe(0);
    }

    const bad = spawn(process.execPath, ['dist/main/app/browser-main.js'], { cwd: repoRoot, env: { ...env, PALYRA_BROWSER_PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    bad.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => bad.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('error[usage]: PALYRA_BROWSER_PORT');
  });
});
