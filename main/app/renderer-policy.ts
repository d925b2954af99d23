/**
 * How the renderer build (dist/renderer) is served, in one place for both hosts: Electron's `app://palyra` protocol
 * handler and the browser-mode HTTP host. The Content-Security-Policy, the security headers every renderer file
 * carries, the file types served and the mapping from a request path to a file under the renderer folder are defined
 * here only, so the end-to-end suite (which runs in browser mode) exercises the policy the Electron window enforces.
 *
 * The one difference allowed between the two: browser mode's connect-src also names its own IPC WebSocket,
 * `ws://127.0.0.1:PORT` (Electron talks to the main process over ipcMain, not over the network).
 *
 * No electron import: unit tests run this under plain Node.
 */

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';

export interface RendererPolicyOptions {
  /** Browser mode: the loopback port whose `ws://127.0.0.1:PORT` carries the IPC WebSocket. Electron: absent. */
  readonly ipcWebSocketPort?: number;
}

function checkedPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new PalyraError('invalid_argument', `the IPC WebSocket port must be an integer 1..65535, not ${String(port)}`);
  }
  return port;
}

/**
 * The renderer's Content-Security-Policy. Everything comes from its own origin: scripts and styles from the Vite
 * build (no inline script or style, no eval), the QR worker from a file (a module worker), images from files or
 * `data:` (QR codes rendered to data URLs); the camera stream is attached with `srcObject`, which media-src does not
 * govern. 'wasm-unsafe-eval' lets the QR worker compile zxing-wasm's WebAssembly, fetched from its own origin; it
 * allows no JavaScript eval. Nothing may frame the renderer, and it frames nothing.
 *
 * `style-src 'self'` (no 'unsafe-inline') refuses `<style>` elements and `style="…"` attributes; styles a script
 * sets through the CSSOM (`element.style.…`, which Svelte's `style:` directives use) are not inline styles and stay
 * allowed.
 */
export function rendererContentSecurityPolicy(options: RendererPolicyOptions = {}): string {
  const connect = options.ipcWebSocketPort === undefined ? "connect-src 'self'" : `connect-src 'self' ws://127.0.0.1:${checkedPort(options.ipcWebSocketPort)}`;
  return [
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    connect,
    "media-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "frame-src 'none'",
    "child-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The security headers of every renderer response (files and errors alike), with the policy above. */
export function rendererResponseHeaders(options: RendererPolicyOptions = {}): Readonly<Record<string, string>> {
  return Object.freeze({
    'Content-Security-Policy': rendererContentSecurityPolicy(options),
    'X-Content-Type-Options': 'nosniff',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Referrer-Policy': 'no-referrer',
  });
}

/** The file types the renderer build may contain; any other extension is not served. */
const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
});

/** The Content-Type a renderer file is served with, or null when its type is not one the renderer uses. */
export function rendererContentType(file: string, pathImpl: path.PlatformPath = path): string | null {
  return CONTENT_TYPES[pathImpl.extname(file).toLowerCase()] ?? null;
}

export const RENDERER_ENTRY_FILE = 'index.html';

export type RendererFile = { readonly kind: 'file'; readonly path: string; readonly contentType: string } | { readonly kind: 'not_found' };

const NOT_FOUND: RendererFile = Object.freeze({ kind: 'not_found' });

/**
 * Which file under `root` a request path (`/assets/x.js`, still percent-encoded, without query or fragment) names.
 * `/` (or nothing) is index.html; there is no other fallback (the renderer routes in the fragment, `#/device`, so a
 * request for anything else that does not exist is simply not found). Not found, so that nothing outside root is
 * ever read: a path not starting with `/`, malformed percent-encoding, an empty segment (`//`, a trailing `/`), a
 * segment starting with a dot (`..`, `.`, dot-files, also percent-encoded), a backslash, NUL or colon (drive
 * letters, alternate data streams) in a segment, or an extension the renderer does not use. `pathImpl` is the
 * platform's path module (tests pass win32).
 */
export function rendererFileForPath(requestPath: string, root: string, pathImpl: path.PlatformPath = path): RendererFile {
  if (!requestPath.startsWith('/')) return NOT_FOUND;
  let decoded: string;
  try {
    decoded = decodeURIComponent(requestPath);
  } catch {
    return NOT_FOUND;
  }
  if (decoded === '/') decoded = `/${RENDERER_ENTRY_FILE}`;
  const segments = decoded.split('/').slice(1);
  if (segments.some((s) => s === '' || s.startsWith('.') || s.includes('\\') || s.includes('\0') || s.includes(':'))) return NOT_FOUND;
  const contentType = rendererContentType(decoded, pathImpl);
  if (contentType === null) return NOT_FOUND;
  const resolvedRoot = pathImpl.resolve(root);
  const file = pathImpl.resolve(resolvedRoot, ...segments);
  const relative = pathImpl.relative(resolvedRoot, file);
  if (relative === '' || relative.startsWith('..') || pathImpl.isAbsolute(relative)) return NOT_FOUND;
  return { kind: 'file', path: file, contentType };
}

/** The renderer's entry file under `root` (what `/` serves). */
export function rendererEntryFile(root: string, pathImpl: path.PlatformPath = path): string {
  return pathImpl.resolve(root, RENDERER_ENTRY_FILE);
}

/** The bytes of a resolved renderer file, or null when it does not exist or is not a regular file. */
export async function readRendererFile(file: Extract<RendererFile, { kind: 'file' }>): Promise<Buffer<ArrayBuffer> | null> {
  try {
    if (!(await stat(file.path)).isFile()) return null;
    return await readFile(file.path);
  } catch {
    return null;
  }
}
