/**
 * The browser-mode session file, `<userData>/browser-session.json` (0600): how automation and `npm start --
 * --new-link` reach a running browser-mode host without the one-time link. browser-main writes it once the host
 * listens and removes it on shutdown (only while it is still its own: a newer instance may have replaced it).
 *
 * `{"url":"http://127.0.0.1:PORT/","port":PORT,"credential":"<43 characters>","pid":N}`. The credential
 * authenticates as the session cookie `palyra_session_PORT`, as `{"type":"auth","credential"}` on /ipc, and as the
 * Bearer of `POST /link`, which answers `{"url":"http://127.0.0.1:PORT/#token=…"}`: a fresh one-time link.
 */

import { readFile, unlink } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { defaultUserDataDir } from '../platform/paths.js';
import { ensurePrivateDir, writeFileAtomic } from '../store/atomic-file.js';
import { LINK_PATH } from './browser-host.js';

export const BROWSER_SESSION_FILE = 'browser-session.json';
/** How long `--new-link` waits for the host's answer. */
const NEW_LINK_TIMEOUT_MS = 10_000;
const MAX_REPLY_BYTES = 64 * 1024;

export interface BrowserSessionInfo {
  /** `http://127.0.0.1:PORT/`, without any token. */
  readonly url: string;
  readonly port: number;
  readonly credential: string;
  readonly pid: number;
}

export function browserSessionPath(userDataDir: string): string {
  return path.join(userDataDir, BROWSER_SESSION_FILE);
}

/** The app's data directory as browser-main chooses it: PALYRA_USER_DATA_DIR, else the per-user default. */
export function userDataDirOf(env: NodeJS.ProcessEnv): string {
  const value = env.PALYRA_USER_DATA_DIR;
  return path.resolve(value !== undefined && value !== '' ? value : defaultUserDataDir());
}

export async function writeBrowserSession(userDataDir: string, info: BrowserSessionInfo): Promise<void> {
  await ensurePrivateDir(userDataDir);
  await writeFileAtomic(browserSessionPath(userDataDir), Buffer.from(`${JSON.stringify(info)}\n`, 'utf8'));
}

function parseSession(text: string): BrowserSessionInfo | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const port = v.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) return null;
  if (typeof v.credential !== 'string' || !/^[A-Za-z0-9_-]{16,1024}$/.test(v.credential)) return null;
  if (typeof v.url !== 'string' || typeof v.pid !== 'number') return null;
  return { url: v.url, port, credential: v.credential, pid: v.pid };
}

/** The session file of the browser-mode host on `userDataDir`; `unavailable` when none runs there. */
export async function readBrowserSession(userDataDir: string): Promise<BrowserSessionInfo> {
  const file = browserSessionPath(userDataDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new PalyraError('unavailable', `no browser-mode Palyra is running on ${userDataDir} (${BROWSER_SESSION_FILE} not found); start one with \`npm start -- --browser\``);
  }
  const info = parseSession(text);
  if (info === null) throw new PalyraError('unavailable', `${file} is not a browser-mode session file; restart \`npm start -- --browser\``);
  return info;
}

/** Removes the file if it still holds `credential` (a newer instance's file stays). */
export async function removeBrowserSession(userDataDir: string, credential: string): Promise<void> {
  const file = browserSessionPath(userDataDir);
  try {
    if (parseSession(await readFile(file, 'utf8'))?.credential === credential) await unlink(file);
  } catch {
    // Already gone, or unreadable: nothing of ours to remove.
  }
}

/** Asks the running host for a fresh one-time link (`POST /link`); its URL. */
export function requestNewLink(info: BrowserSessionInfo): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: info.port,
        path: LINK_PATH,
        method: 'POST',
        headers: { host: `127.0.0.1:${info.port}`, authorization: `Bearer ${info.credential}`, 'content-length': '0' },
        timeout: NEW_LINK_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_REPLY_BYTES) chunks.push(chunk);
        });
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
          } catch {
            // not JSON: handled by the status below
          }
          if (res.statusCode === 200 && typeof body.url === 'string') {
            resolve(body.url);
            return;
          }
          const code = res.statusCode === 401 ? 'unauthenticated' : 'unavailable';
          reject(new PalyraError(code, `the browser-mode host on port ${info.port} refused a new link (HTTP ${res.statusCode ?? 0}); restart \`npm start -- --browser\``));
        });
        res.on('error', (error) => {
          reject(toPalyraError(error));
        });
      },
    );
    req.on('timeout', () => {
      req.destroy(new Error('timed out'));
    });
    req.on('error', (error) => {
      reject(new PalyraError('unavailable', `no browser-mode Palyra answers on port ${info.port} (${error.message}); start one with \`npm start -- --browser\``, { cause: error }));
    });
    req.end();
  });
}

/**
 * `npm start -- --new-link`: prints `{"event":"browser.link","url":"http://127.0.0.1:PORT/#token=…"}` on stdout, or
 * `error[CODE]: message` on stderr; the exit code.
 */
export async function printNewLink(env: NodeJS.ProcessEnv, out: { stdout: (line: string) => void; stderr: (line: string) => void }): Promise<number> {
  try {
    const url = await requestNewLink(await readBrowserSession(userDataDirOf(env)));
    out.stdout(`${JSON.stringify({ event: 'browser.link', url })}\n`);
    return 0;
  } catch (error) {
    const e = toPalyraError(error);
    out.stderr(`error[${e.code}]: ${e.message}\n`);
    return e.code === 'usage' ? 2 : 1;
  }
}
