// The browser-mode session file and the fresh-link request (main/app/browser-session.ts) against a real host on
// 127.0.0.1 and real files: what `npm start -- --new-link` and automation rely on.
import { readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBrowserHost } from '../../main/app/browser-host.js';
import type { BrowserHost } from '../../main/app/browser-host.js';
import {
  BROWSER_SESSION_FILE,
  printNewLink,
  readBrowserSession,
  removeBrowserSession,
  requestNewLink,
  writeBrowserSession,
} from '../../main/app/browser-session.js';
import type { BrowserSessionInfo } from '../../main/app/browser-session.js';
import { tempDir } from '../helpers/identity.js';
import { stubServices } from '../helpers/stub-services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ dir: string; host: BrowserHost; info: BrowserSessionInfo }> {
  const { dir, cleanup } = await tempDir('palyra-session-');
  cleanups.push(cleanup);
  const host = await startBrowserHost({ services: stubServices(), rendererDir: path.join(dir, 'none') });
  cleanups.push(() => host.close());
  const info = { url: `${host.origin}/`, port: host.port, credential: host.credential, pid: process.pid };
  return { dir, host, info };
}

/** The page's exchange: its status. */
function exchange(url: string): Promise<number> {
  const link = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: Number(link.port), path: '/session', method: 'POST', headers: { 'content-type': 'application/json', origin: link.origin } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ token: link.hash.slice('#token='.length) }));
  });
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the session file', () => {
  it('is written owner-only and read back; removal leaves a newer instance\'s file', async () => {
    const { dir, info } = await setup();
    const userData = path.join(dir, 'userData');
    await writeBrowserSession(userData, info);
    const file = path.join(userData, BROWSER_SESSION_FILE);
    if (process.platform !== 'win32') {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(userData)).mode & 0o777).toBe(0o700);
    }
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(info);
    expect(await readBrowserSession(userData)).toEqual(info);

    // Another instance replaced it: ours is not removed by the first one's shutdown.
    const newer = { ...info, credential: 'n'.repeat(43), pid: info.pid + 1 };
    await writeBrowserSession(userData, newer);
    await removeBrowserSession(userData, info.credential);
    expect(await readBrowserSession(userData)).toEqual(newer);
    await removeBrowserSession(userData, newer.credential);
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    await removeBrowserSession(userData, newer.credential);
  });

  it('refuses a missing or malformed file with unavailable', async () => {
    const { dir } = await setup();
    await expect(readBrowserSession(dir)).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('npm start -- --browser') });
    const file = path.join(dir, BROWSER_SESSION_FILE);
    for (const text of ['{not json', '[]', JSON.stringify({ url: 'x', port: 0, credential: 'c'.repeat(43), pid: 1 }), JSON.stringify({ url: 'x', port: 80, credential: 'short', pid: 1 }), JSON.stringify({ url: 'x', port: 80, credential: 'a b'.repeat(10), pid: 1 })]) {
      await writeFile(file, text);
      await expect(readBrowserSession(dir), text).rejects.toMatchObject({ code: 'unavailable' });
    }
  });
});

describe('a fresh link', () => {
  it('comes from the running host for its credential, works once, and spends the unused earlier link', async () => {
    const { host, info } = await setup();
    const fresh = await requestNewLink(info);
    expect(new URL(fresh).origin).toBe(host.origin);
    expect(fresh).not.toBe(host.url);
    expect(await exchange(host.url)).toBe(410);
    expect(await exchange(fresh)).toBe(204);
    expect(await exchange(fresh)).toBe(410);
  });

  it('fails with unauthenticated for a wrong credential and unavailable when no host answers', async () => {
    const { info, host } = await setup();
    await expect(requestNewLink({ ...info, credential: 'w'.repeat(43) })).rejects.toMatchObject({ code: 'unauthenticated' });
    // The refused request minted nothing: the printed link still works.
    expect(await exchange(host.url)).toBe(204);
    await expect(requestNewLink({ ...info, port: await closedPort() })).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('no browser-mode Palyra answers') });
  });

  it('printNewLink prints one browser.link line, or error[CODE] and exit 1', async () => {
    const { dir, info } = await setup();
    const userData = path.join(dir, 'userData');
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) };
    expect(await printNewLink({ PALYRA_USER_DATA_DIR: userData }, io)).toBe(1);
    expect(out).toEqual([]);
    expect(err).toEqual([expect.stringMatching(/^error\[unavailable\]: no browser-mode Palyra is running on .+\n$/)]);
    await writeBrowserSession(userData, info);
    err.length = 0;
    expect(await printNewLink({ PALYRA_USER_DATA_DIR: userData }, io)).toBe(0);
    expect(err).toEqual([]);
    expect(out).toHaveLength(1);
    const line = JSON.parse(out[0]!) as { event: string; url: string };
    expect(line.event).toBe('browser.link');
    expect(await exchange(line.url)).toBe(204);
    // The credential is never printed.
    expect(out[0]).not.toContain(info.credential);
  });
});
