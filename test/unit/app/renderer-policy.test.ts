// Issue 17: one renderer policy for both hosts. Electron's app:// handler and the browser-mode host serve the renderer
// under the same CSP (browser mode only adds its IPC WebSocket to connect-src), the same headers, file types and
// path rules, so the end-to-end suite, which runs in browser mode, runs under the policy the Electron window has.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { browserResponseHeaders, contentSecurityPolicy } from '../../../main/app/browser-host.js';
import { CONTENT_SECURITY_POLICY, RESPONSE_HEADERS, rendererFileFor } from '../../../main/app/electron-security.js';
import { rendererContentSecurityPolicy, rendererContentType, rendererFileForPath, rendererResponseHeaders } from '../../../main/app/renderer-policy.js';
import { PalyraError } from '../../../main/core/errors.js';

const repo = path.resolve(import.meta.dirname, '..', '..', '..');

/** A policy as directive name → its source list, refusing a policy that names a directive twice. */
function directives(policy: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const directive of policy.split(';').map((d) => d.trim()).filter((d) => d !== '')) {
    const [name, ...sources] = directive.split(/\s+/);
    if (name === undefined) continue;
    expect(out.has(name), `${name} twice in ${policy}`).toBe(false);
    out.set(name, sources);
  }
  return out;
}

/** The browser-mode policy with its one allowed addition taken out again. */
function withoutIpcWebSocket(policy: string, port: number): Map<string, string[]> {
  const parsed = directives(policy);
  const connect = parsed.get('connect-src') ?? [];
  expect(connect.filter((s) => s === `ws://127.0.0.1:${port}`)).toHaveLength(1);
  parsed.set('connect-src', connect.filter((s) => s !== `ws://127.0.0.1:${port}`));
  return parsed;
}

describe('the renderer policy', () => {
  it('is the policy Electron serves, exactly', () => {
    expect(CONTENT_SECURITY_POLICY).toBe(rendererContentSecurityPolicy());
    expect(RESPONSE_HEADERS).toEqual(rendererResponseHeaders());
  });

  it('in browser mode differs from Electron only by the IPC WebSocket in connect-src, whatever the port', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65_535 }), (port) => {
        const browser = contentSecurityPolicy(port);
        expect(browser).not.toBe(CONTENT_SECURITY_POLICY);
        expect(withoutIpcWebSocket(browser, port)).toEqual(directives(CONTENT_SECURITY_POLICY));
        expect(directives(browser).get('connect-src')).toEqual(["'self'", `ws://127.0.0.1:${port}`]);
      }),
    );
  });

  it('sends every Electron renderer header in browser mode too, with the same values but for that CSP', () => {
    const port = 41_234;
    const browser = browserResponseHeaders(port);
    for (const [name, value] of Object.entries(RESPONSE_HEADERS)) {
      if (name === 'Content-Security-Policy') expect(withoutIpcWebSocket(browser[name] ?? '', port)).toEqual(directives(value));
      else expect(browser[name], name).toBe(value);
    }
    expect(browser['Content-Security-Policy']).toBe(contentSecurityPolicy(port));
  });

  it('allows no inline style or script, no eval, no wildcard, no remote or blob source, in either host', () => {
    for (const policy of [CONTENT_SECURITY_POLICY, contentSecurityPolicy(8080)]) {
      expect(policy).not.toMatch(/unsafe-inline|'unsafe-eval'|unsafe-hashes|https?:|\*|blob:|mediastream:|'nonce-|'sha\d+-/);
      const parsed = directives(policy);
      expect(parsed.get('default-src')).toEqual(["'none'"]);
      expect(parsed.get('style-src')).toEqual(["'self'"]);
      expect(parsed.get('script-src')).toEqual(["'self'", "'wasm-unsafe-eval'"]);
      expect(parsed.has('style-src-attr')).toBe(false);
      expect(parsed.has('style-src-elem')).toBe(false);
    }
  });

  it('refuses an IPC WebSocket port that is not a port, with invalid_argument', () => {
    for (const port of [0, -1, 65_536, 1.5, Number.NaN]) {
      let caught: unknown;
      try {
        rendererContentSecurityPolicy({ ipcWebSocketPort: port });
      } catch (error) {
        caught = error;
      }
      expect(caught, String(port)).toBeInstanceOf(PalyraError);
      expect((caught as PalyraError).code).toBe('invalid_argument');
    }
  });
});

describe('rendererFileForPath', () => {
  const root = '/srv/dist/renderer';

  it('serves index.html for /, and files under the root with their type', () => {
    expect(rendererFileForPath('/', root)).toEqual({ kind: 'file', path: '/srv/dist/renderer/index.html', contentType: 'text/html; charset=utf-8' });
    expect(rendererFileForPath('/assets/index-3f2a.js', root)).toEqual({ kind: 'file', path: '/srv/dist/renderer/assets/index-3f2a.js', contentType: 'text/javascript; charset=utf-8' });
    expect(rendererFileForPath('/assets/zxing_reader-x.wasm', root)).toMatchObject({ kind: 'file', contentType: 'application/wasm' });
    expect(rendererFileForPath('/assets/index-x.css', root)).toMatchObject({ kind: 'file', contentType: 'text/css; charset=utf-8' });
    expect(rendererFileForPath('/favicon.svg', root)).toMatchObject({ kind: 'file', contentType: 'image/svg+xml' });
    expect(rendererFileForPath('/a%20b.js', root)).toMatchObject({ kind: 'file', path: '/srv/dist/renderer/a b.js' });
  });

  it.each([
    '',
    'assets/x.js',
    'http://evil.example/x.js',
    '/../secret.js',
    '/%2e%2e/secret.js',
    '/assets/..%2f..%2fsecret.js',
    '/assets/%2E%2E/%2E%2E/secret.js',
    '/assets%5c..%5c..%5csecret.js',
    '/./index.html',
    '/.env.json',
    '/assets/',
    '//etc/passwd.js',
    '/assets//x.js',
    '/C:/Windows/win.ini.txt',
    '/index.html%00.png',
    '/%E0%A4%A.js',
    '/README',
    '/assets',
    '/x.exe',
    '/x.xyz',
  ])('does not serve %j', (requestPath) => {
    expect(rendererFileForPath(requestPath, root)).toEqual({ kind: 'not_found' });
  });

  it('never resolves outside the root, whatever the path', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', '..', '.', '%2e%2e', '%2f', '%5c', '%00', 'x.js', 'y.css', '', ':', 'C:', '\\'), { maxLength: 6 }), (parts) => {
        const file = rendererFileForPath(`/${parts.join('/')}`, root);
        if (file.kind === 'file') expect(file.path.startsWith(`${root}/`)).toBe(true);
      }),
    );
  });

  it('stays inside the root with Windows paths too', () => {
    expect(rendererFileForPath('/assets/a.css', 'C:\\app\\dist\\renderer', path.win32)).toEqual({
      kind: 'file',
      path: 'C:\\app\\dist\\renderer\\assets\\a.css',
      contentType: 'text/css; charset=utf-8',
    });
    expect(rendererFileForPath('/assets%5C..%5C..%5Cx.css', 'C:\\app\\dist\\renderer', path.win32)).toEqual({ kind: 'not_found' });
    expect(rendererFileForPath('/C:%5Cx.css', 'C:\\app\\dist\\renderer', path.win32)).toEqual({ kind: 'not_found' });
  });

  it('is what the app:// handler serves for the same path', () => {
    for (const requestPath of ['/', '/index.html', '/assets/a.js', '/assets/a.wasm', '/.env.json', '/assets/', '/README', '/a%5cb.js', '/x.xyz', '/favicon.ico']) {
      expect(rendererFileFor(`app://palyra${requestPath}`, root), requestPath).toEqual(rendererFileForPath(requestPath, root));
    }
  });

  it('knows the type of every file the renderer build produces', () => {
    for (const file of ['index.html', 'a.js', 'a.css', 'a.wasm', 'a.js.map', 'favicon.svg', 'a.woff2', 'a.png']) {
      expect(rendererContentType(file), file).not.toBeNull();
    }
  });
});

/** The markup of a Svelte component: the file without its <script> and <style> blocks (those become JS and CSS files). */
function markupOf(source: string): string {
  return source.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, '').replace(/<style\b[^>]*>[\s\S]*?<\/style>/g, '');
}

function svelteFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.svelte'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('the renderer source under the strict style-src', () => {
  it('has no style="…" attribute in any component (the CSP refuses them; style: directives go through the CSSOM)', () => {
    const files = svelteFiles(path.join(repo, 'renderer', 'src'));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const markup = markupOf(readFileSync(file, 'utf8'));
      expect(markup, path.relative(repo, file)).not.toMatch(/\sstyle\s*=/);
      expect(markup, path.relative(repo, file)).not.toMatch(/<svelte:element\b[^>]*\sstyle\s*=/);
    }
  });

  it('catches a style attribute when there is one (the check above can fail)', () => {
    expect(markupOf('<script>let a = 1;</script>\n<div style="color: red">x</div>\n<style>div{}</style>')).toMatch(/\sstyle\s*=/);
    expect(markupOf('<div style:color={c}>x</div>')).not.toMatch(/\sstyle\s*=/);
  });

  it('has an index.html without inline script or style', () => {
    const html = readFileSync(path.join(repo, 'renderer', 'index.html'), 'utf8');
    expect(html).not.toMatch(/<style\b|\sstyle\s*=|\son[a-z]+\s*=/i);
    for (const script of html.match(/<script\b[^>]*>/g) ?? []) expect(script).toMatch(/\ssrc=/);
  });
});
