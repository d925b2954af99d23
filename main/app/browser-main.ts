/**
 * Entry of browser mode (`node dist/main/app/browser-main.js`, or `npm start` without an Electron binary): the
 * desktop services on the app's directories, served by the browser-mode host. Prints exactly one line on stdout when
 * ready, `{"event":"browser.ready","url":"http://127.0.0.1:PORT/#token=…"}` (a one-time link: the page trades it for
 * a session cookie), and writes the automation credential to `<userData>/browser-session.json` (0600,
 * browser-session.ts). Logs (redacted) go to stderr and to `<userData>/logs/palyra-browser.log`. SIGINT/SIGTERM close
 * the host, remove the session file, stop the gateway and exit 0.
 *
 * Environment: PALYRA_USER_DATA_DIR, PALYRA_STATE_DIR, PALYRA_DEVICE_DIR (directories; the CLI's defaults
 * otherwise), PALYRA_KEYCHAIN=file|os (as the CLI), PALYRA_BROWSER_PORT (default 0 = any free port),
 * PALYRA_RENDERER_DIR (default dist/renderer beside this build).
 */

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseKeychain } from '../platform/keychain-choice.js';
import { DEVICE_DIR_NAME, GATEWAY_DIR_NAME, defaultUserDataDir } from '../platform/paths.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { startBrowserHost } from './browser-host.js';
import type { BrowserHost } from './browser-host.js';
import { browserSessionPath, removeBrowserSession, writeBrowserSession } from './browser-session.js';
import { openFileLogger } from './logger.js';
import { DesktopServices } from './services.js';

/** Whole shutdown (host, agent, gateway) before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 3_000;
const BROWSER_LOG_FILE = 'palyra-browser.log';

function envDir(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const value = env[name];
  return path.resolve(value !== undefined && value !== '' ? value : fallback);
}

function envPort(env: NodeJS.ProcessEnv): number {
  const value = env.PALYRA_BROWSER_PORT;
  if (value === undefined || value === '') return 0;
  const port = /^[0-9]{1,5}$/.test(value) ? Number(value) : -1;
  if (port < 0 || port > 65_535) throw new PalyraError('usage', `PALYRA_BROWSER_PORT must be a port number (got '${value.slice(0, 16)}')`);
  return port;
}

async function main(env: NodeJS.ProcessEnv): Promise<void> {
  const userDataDir = envDir(env, 'PALYRA_USER_DATA_DIR', defaultUserDataDir());
  const stateDir = envDir(env, 'PALYRA_STATE_DIR', path.join(userDataDir, GATEWAY_DIR_NAME));
  const deviceDir = envDir(env, 'PALYRA_DEVICE_DIR', path.join(userDataDir, DEVICE_DIR_NAME));
  const rendererDir = envDir(env, 'PALYRA_RENDERER_DIR', fileURLToPath(new URL('../../renderer/', import.meta.url)));
  const port = envPort(env);
  const choice = await chooseKeychain(env);

  const logger = openFileLogger({
    dir: path.join(userDataDir, 'logs'),
    fileName: BROWSER_LOG_FILE,
    mirror: (line) => process.stderr.write(line),
  });
  const log = (line: Record<string, unknown>): void => {
    const { event, ...fields } = line;
    logger.info(typeof event === 'string' ? event : 'log', fields);
  };

  let services: DesktopServices | null = null;
  let host: BrowserHost | null = null;
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), SHUTDOWN_DEADLINE_MS).unref();
    void (async () => {
      if (host !== null) await removeBrowserSession(userDataDir, host.credential);
      await host?.close();
      await services?.dispose();
      log({ event: 'browser.stopped', signal });
      await logger.close();
      process.exit(0);
    })();
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  try {
    services = await DesktopServices.open({
      userDataDir,
      stateDir,
      deviceDir,
      keychain: choice.keychain === null ? 'file' : 'os',
      osKeychain: choice.keychain,
      gatewayKeychain: choice.keychain,
      mode: 'browser',
      log,
    });
    host = await startBrowserHost({ services, port, rendererDir, log });
    await writeBrowserSession(userDataDir, { url: `${host.origin}/`, port: host.port, credential: host.credential, pid: process.pid });
  } catch (error) {
    if (host !== null) await removeBrowserSession(userDataDir, host.credential);
    await host?.close();
    await services?.dispose();
    await logger.close();
    throw error;
  }
  log({
    event: 'browser.listening',
    port: host.port,
    secrets_in: choice.keychain === null ? 'file' : 'os',
    state_dir: stateDir,
    device_dir: deviceDir,
    session_file: browserSessionPath(userDataDir),
    hint: 'the link works once; `npm start -- --new-link` prints a fresh one',
  });
  process.stdout.write(`${JSON.stringify({ event: 'browser.ready', url: host.url })}\n`);
}

try {
  await main(process.env);
} catch (error) {
  const e = toPalyraError(error);
  process.stderr.write(`error[${e.code}]: ${e.message}\n`);
  process.exit(e.code === 'usage' ? 2 : 1);
}
