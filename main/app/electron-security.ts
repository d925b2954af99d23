/**
 * Every security decision of the Electron shell as a pure function: the content security policy, which URLs the
 * window may navigate to, which permission requests are granted, which IPC senders are trusted, which command-line
 * argument is a pairing deep link, which file an `app://palyra/…` URL serves, and the fuses the packaged binary is
 * flipped with. No electron import: electron-main.ts only forwards Electron's callbacks here, and the unit tests run
 * these under plain Node (there is no Electron binary on the build machine).
 */

import path from 'node:path';
import { MAX_PAIRING_URI_LENGTH, PAIRING_URI_SCHEME } from '../core/pairing-uri.js';
import { rendererContentSecurityPolicy, rendererFileForPath, rendererResponseHeaders } from './renderer-policy.js';
import type { RendererFile } from './renderer-policy.js';

/** The privileged custom scheme the renderer is served from (registered standard + secure + fetch). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'palyra';
/** Origin of the renderer; the only origin that may call IPC or use the camera. */
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

/**
 * Sent with every `app://palyra` response: the one renderer policy (renderer-policy.ts), which browser mode serves
 * too, there with its IPC WebSocket added to connect-src.
 */
export const CONTENT_SECURITY_POLICY = rendererContentSecurityPolicy();

/** Extra response headers for every renderer file. */
export const RESPONSE_HEADERS: Readonly<Record<string, string>> = rendererResponseHeaders();

function parseUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/**
 * `scheme://host[:port]` of a URL, or null when it does not parse or carries credentials. Computed by hand because
 * the WHATWG parser gives every non-special scheme (ours included) the opaque origin `null`.
 */
export function originOf(url: string): string | null {
  const parsed = parseUrl(url);
  if (parsed === null || parsed.username !== '' || parsed.password !== '' || parsed.host === '') return null;
  return `${parsed.protocol}//${parsed.host}`;
}

/** True for `app://palyra` itself, with or without a trailing slash, and for any URL on that origin. */
export function isAppOrigin(originOrUrl: string | null | undefined): boolean {
  return typeof originOrUrl === 'string' && originOf(originOrUrl) === APP_ORIGIN;
}

/** The window may only ever show our own pages: no web, no file://, no other app:// host. */
export function isAllowedNavigation(url: string): boolean {
  return isAppOrigin(url);
}

/** What Electron's permission request and check handlers tell us, reduced to the fields we decide on. */
export interface PermissionDetails {
  /** Request handler: the media a `media` request wants (`video`, `audio`). */
  readonly mediaTypes?: readonly string[] | undefined;
  /** Check handler: the one media type checked (`video`, `audio`, `unknown`). */
  readonly mediaType?: string | undefined;
  readonly requestingUrl?: string | undefined;
  readonly isMainFrame?: boolean | undefined;
}

function videoOnly(details: PermissionDetails): boolean {
  if (details.mediaTypes !== undefined) return details.mediaTypes.length > 0 && details.mediaTypes.every((t) => t === 'video');
  return details.mediaType === 'video';
}

/**
 * The permission allowlist, for both the request and the check handler. The only thing the app needs is the
 * webcam, to scan pairing QR codes: `media` with video and no audio, asked by our own origin's main frame. Every
 * other permission (microphone, notifications, geolocation, clipboard, HID, …) and every other origin is refused.
 */
export function permissionDecision(permission: string, requestingOrigin: string | null | undefined, details: PermissionDetails = {}): boolean {
  if (permission !== 'media') return false;
  if (!isAppOrigin(requestingOrigin)) return false;
  if (details.requestingUrl !== undefined && !isAppOrigin(details.requestingUrl)) return false;
  if (details.isMainFrame === false) return false;
  return videoOnly(details);
}

export interface SenderInfo {
  /** URL of the frame that sent the message; null when the frame is gone or navigated away. */
  readonly frameUrl: string | null | undefined;
  readonly isMainFrame: boolean;
  /** `webContents.id` of the sender. */
  readonly senderId: number;
  /** `webContents.id` of our window; null when there is no window. */
  readonly windowId: number | null;
}

/** An IPC call is served only for the main frame of our own window showing our own origin. */
export function isTrustedSender(sender: SenderInfo): boolean {
  return sender.windowId !== null && sender.senderId === sender.windowId && sender.isMainFrame && isAppOrigin(sender.frameUrl);
}

const DEEP_LINK_PREFIX = `${PAIRING_URI_SCHEME}://pair?`;

/**
 * The `palyra://pair?…` argument of a command line (a second instance's argv, or our own on Windows/Linux), or
 * null. Only shape is checked here; the renderer parses it with `device.parseScan` and asks the user before pairing.
 */
export function deepLinkFromArgv(argv: readonly string[]): string | null {
  for (const arg of argv) {
    if (arg.length > MAX_PAIRING_URI_LENGTH || arg.length <= DEEP_LINK_PREFIX.length) continue;
    if (arg.slice(0, DEEP_LINK_PREFIX.length).toLowerCase() !== DEEP_LINK_PREFIX) continue;
    // Printable ASCII only: no whitespace or control characters smuggled into the prompt.
    if (!/^[\x21-\x7e]+$/.test(arg)) continue;
    return arg;
  }
  return null;
}

/** macOS `open-url`: the URL itself, accepted under the same rules as a command-line argument. */
export function deepLinkFromUrl(url: string): string | null {
  return deepLinkFromArgv([url]);
}

export type { RendererFile } from './renderer-policy.js';

/**
 * Which file under `root` (dist/renderer) an `app://palyra/…` request serves. Another host or credentials is not
 * found; the path (after the URL parser resolved its dot segments) follows renderer-policy.ts's rules, the same as
 * browser mode's. `pathImpl` is the platform's path module (tests pass win32).
 */
export function rendererFileFor(url: string, root: string, pathImpl: path.PlatformPath = path): RendererFile {
  const parsed = parseUrl(url);
  if (parsed === null || parsed.protocol !== `${APP_SCHEME}:` || parsed.host !== APP_HOST || parsed.username !== '' || parsed.password !== '') {
    return { kind: 'not_found' };
  }
  return rendererFileForPath(parsed.pathname === '' ? '/' : parsed.pathname, root, pathImpl);
}

/** Fuse settings, in electron-builder's `electronFuses` vocabulary; electron-builder.yml must say the same. */
export interface ElectronFuses {
  readonly runAsNode: boolean;
  readonly enableCookieEncryption: boolean;
  readonly enableNodeOptionsEnvironmentVariable: boolean;
  readonly enableNodeCliInspectArguments: boolean;
  readonly enableEmbeddedAsarIntegrityValidation: boolean;
  readonly onlyLoadAppFromAsar: boolean;
  readonly grantFileProtocolExtraPrivileges: boolean;
}

/**
 * The packaged binary cannot be turned into a plain Node (ELECTRON_RUN_AS_NODE), take NODE_OPTIONS or --inspect,
 * or load code from anywhere but its integrity-checked app.asar; cookies are encrypted at rest, and file:// gets no
 * privileges beyond a browser's (we serve from app://).
 */
export function electronFuses(): ElectronFuses {
  return {
    runAsNode: false,
    enableCookieEncryption: true,
    enableNodeOptionsEnvironmentVariable: false,
    enableNodeCliInspectArguments: false,
    enableEmbeddedAsarIntegrityValidation: true,
    onlyLoadAppFromAsar: true,
    grantFileProtocolExtraPrivileges: false,
  };
}
