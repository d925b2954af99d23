/**
 * Default directories of the `palyra` command: the per-user data directory the desktop app uses (Electron's
 * `userData` for the app name "Palyra Desktop"), so the CLI and the app share one gateway state and one device.
 */

import os from 'node:os';
import path from 'node:path';

/** The app's name as Electron uses it for `userData`. */
export const APP_DIR_NAME = 'Palyra Desktop';
export const GATEWAY_DIR_NAME = 'gateway';
export const DEVICE_DIR_NAME = 'device';

export interface PlatformContext {
  readonly platform: NodeJS.Platform;
  readonly env: NodeJS.ProcessEnv;
  readonly homedir: string;
}

function currentPlatform(): PlatformContext {
  return { platform: process.platform, env: process.env, homedir: os.homedir() };
}

/**
 * Linux and other Unixes: `${XDG_CONFIG_HOME:-~/.config}/Palyra Desktop` (a relative XDG_CONFIG_HOME is ignored, as
 * the XDG spec says); macOS: `~/Library/Application Support/Palyra Desktop`; Windows: `%APPDATA%\Palyra Desktop`.
 */
export function defaultUserDataDir(context: PlatformContext = currentPlatform()): string {
  const { platform, env, homedir } = context;
  if (platform === 'win32') {
    const appData = env.APPDATA;
    const base = appData !== undefined && appData !== '' ? appData : path.win32.join(homedir, 'AppData', 'Roaming');
    return path.win32.join(base, APP_DIR_NAME);
  }
  if (platform === 'darwin') return path.posix.join(homedir, 'Library', 'Application Support', APP_DIR_NAME);
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg !== undefined && path.posix.isAbsolute(xdg) ? xdg : path.posix.join(homedir, '.config');
  return path.posix.join(base, APP_DIR_NAME);
}

function join(context: PlatformContext, ...parts: string[]): string {
  return context.platform === 'win32' ? path.win32.join(...parts) : path.posix.join(...parts);
}

/** The gateway state directory (CA, devices, pairing runtime, audit log). */
export function defaultStateDir(context: PlatformContext = currentPlatform()): string {
  return join(context, defaultUserDataDir(context), GATEWAY_DIR_NAME);
}

/** The device directory (this machine's non-secret device state). */
export function defaultDeviceDir(context: PlatformContext = currentPlatform()): string {
  return join(context, defaultUserDataDir(context), DEVICE_DIR_NAME);
}
