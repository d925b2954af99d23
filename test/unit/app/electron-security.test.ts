// The Electron shell's security decisions, as the pure functions electron-main.ts forwards Electron's callbacks to.
// Electron itself cannot run here (no binary); these run under plain Node.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  APP_ENTRY_URL,
  CONTENT_SECURITY_POLICY,
  deepLinkFromArgv,
  deepLinkFromUrl,
  electronFuses,
  isAllowedNavigation,
  isTrustedSender,
  originOf,
  permissionDecision,
  rendererFileFor,
  RESPONSE_HEADERS,
} from '../../../main/app/electron-security.js';
import { browserWindowOptions } from '../../../main/app/electron-window.js';

const root = path.resolve(import.meta.dirname, '..', '..', '..');

describe('browserWindowOptions', () => {
  it('sets every security-relevant web preference explicitly', () => {
    const options = browserWindowOptions('/app/dist/preload/preload.cjs');
    expect(options.webPreferences).toEqual({
      preload: '/app/dist/preload/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      disableBlinkFeatures: 'Auxclick',
    });
  });

  it('stays hidden until the renderer is ready to show, and takes an icon only when given one', () => {
    expect(browserWindowOptions('/p.cjs').show).toBe(false);
    expect(browserWindowOptions('/p.cjs')).not.toHaveProperty('icon');
    expect(browserWindowOptions('/p.cjs', '/r/icon.png').icon).toBe('/r/icon.png');
  });
});

describe('CONTENT_SECURITY_POLICY', () => {
  it('is exactly the policy the renderer is served with', () => {
    expect(CONTENT_SECURITY_POLICY).toBe(
      "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
        "media-src 'self'; worker-src 'self'; manifest-src 'self'; frame-src 'none'; child-src 'none'; object-src 'none'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
  });

  it('allows no inline script, no eval and no remote source anywhere', () => {
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-inline|'unsafe-eval'|https?:|\*|blob:/);
  });

  it('allows compiling WebAssembly (the zxing-wasm QR decoder), in script-src only, and module workers from the app itself', () => {
    const directives = CONTENT_SECURITY_POLICY.split('; ');
    expect(directives.filter((d) => d.includes("'wasm-unsafe-eval'"))).toEqual(["script-src 'self' 'wasm-unsafe-eval'"]);
    expect(directives).toContain("worker-src 'self'");
    expect(directives).toContain("connect-src 'self'");
  });

  it('goes out with every renderer response, with nosniff', () => {
    expect(RESPONSE_HEADERS['Content-Security-Policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(RESPONSE_HEADERS['X-Content-Type-Options']).toBe('nosniff');
  });
});

describe('originOf', () => {
  it('gives our custom scheme a real origin (WHATWG would say "null")', () => {
    expect(originOf('app://palyra/index.html')).toBe('app://palyra');
    expect(originOf('https://example.com:8443/x')).toBe('https://example.com:8443');
  });

  it('refuses URLs with credentials, without a host, or that do not parse', () => {
    expect(originOf('app://user:pw@palyra/')).toBeNull();
    expect(originOf('file:///etc/passwd')).toBeNull();
    expect(originOf('not a url')).toBeNull();
  });
});

describe('isAllowedNavigation', () => {
  it('allows our own pages', () => {
    expect(isAllowedNavigation(APP_ENTRY_URL)).toBe(true);
    expect(isAllowedNavigation('app://palyra/')).toBe(true);
    expect(isAllowedNavigation('app://palyra/index.html#/requests')).toBe(true);
  });

  it.each([
    'https://palyra.example/',
    'http://127.0.0.1:7444/',
    'file:///home/ada/index.html',
    'app://other/index.html',
    'app://palyra.evil/index.html',
    'app://palyra:8080/index.html',
    'app://user@palyra/index.html',
    'palyra://pair?v=1',
    'javascript:alert(1)',
    'data:text/html,<script>1</script>',
    'about:blank',
    '',
  ])('blocks %s', (url) => {
    expect(isAllowedNavigation(url)).toBe(false);
  });
});

describe('permissionDecision', () => {
  const fromApp = { requestingUrl: 'app://palyra/index.html', isMainFrame: true };

  it('grants the camera (video only) to app://palyra, in the request and the check handler', () => {
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, mediaTypes: ['video'] })).toBe(true);
    expect(permissionDecision('media', 'app://palyra/', { ...fromApp, mediaType: 'video' })).toBe(true);
  });

  it('refuses the microphone, alone or with the camera, and an unspecified media type', () => {
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, mediaTypes: ['audio'] })).toBe(false);
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, mediaTypes: ['video', 'audio'] })).toBe(false);
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, mediaTypes: [] })).toBe(false);
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, mediaType: 'audio' })).toBe(false);
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, mediaType: 'unknown' })).toBe(false);
    expect(permissionDecision('media', 'app://palyra', fromApp)).toBe(false);
  });

  it.each([
    'geolocation',
    'notifications',
    'clipboard-read',
    'clipboard-sanitized-write',
    'display-capture',
    'fullscreen',
    'hid',
    'serial',
    'usb',
    'midi',
    'midiSysex',
    'openExternal',
    'pointerLock',
    'idle-detection',
    'window-management',
    'local-fonts',
    'unknown',
  ])('refuses %s even to app://palyra', (permission) => {
    expect(permissionDecision(permission, 'app://palyra', { ...fromApp, mediaTypes: ['video'], mediaType: 'video' })).toBe(false);
  });

  it.each(['https://example.com', 'http://127.0.0.1:5173', 'file://', 'app://other', 'app://palyra:1', 'null', '', null, undefined])(
    'refuses the camera to origin %s',
    (origin) => {
      expect(permissionDecision('media', origin, { mediaTypes: ['video'], isMainFrame: true })).toBe(false);
    },
  );

  it('refuses when the requesting URL is foreign although the origin claims to be ours, and for subframes', () => {
    expect(permissionDecision('media', 'app://palyra', { requestingUrl: 'https://evil.example/', isMainFrame: true, mediaTypes: ['video'] })).toBe(false);
    expect(permissionDecision('media', 'app://palyra', { ...fromApp, isMainFrame: false, mediaTypes: ['video'] })).toBe(false);
  });
});

describe('isTrustedSender', () => {
  const trusted = { frameUrl: 'app://palyra/index.html', isMainFrame: true, senderId: 7, windowId: 7 };

  it('trusts the main frame of our window on our origin', () => {
    expect(isTrustedSender(trusted)).toBe(true);
  });

  it('refuses a subframe', () => {
    expect(isTrustedSender({ ...trusted, isMainFrame: false })).toBe(false);
  });

  it('refuses a foreign or missing frame URL', () => {
    for (const frameUrl of ['https://evil.example/', 'file:///index.html', 'app://other/index.html', 'about:blank', '', null, undefined]) {
      expect(isTrustedSender({ ...trusted, frameUrl })).toBe(false);
    }
  });

  it('refuses another window, and any sender when there is no window', () => {
    expect(isTrustedSender({ ...trusted, senderId: 8 })).toBe(false);
    expect(isTrustedSender({ ...trusted, windowId: null })).toBe(false);
  });
});

describe('deepLinkFromArgv', () => {
  const link = 'palyra://pair?v=1&gw=127.0.0.1:7444&m=qr&t=abcdefghijklmnopqrstuv&ca=x&k=desktop&exp=1900000000';

  it('finds the pairing link among the other arguments (second instance, Windows/Linux launch)', () => {
    expect(deepLinkFromArgv(['/opt/Palyra Desktop/palyra-desktop', '--no-sandbox-is-not-ours', link])).toBe(link);
    expect(deepLinkFromArgv(['electron', '/app/dist/main/app/electron-main.js', link])).toBe(link);
  });

  it('matches scheme and host case-insensitively, as QR scanners upper-case them', () => {
    const upper = `PALYRA://PAIR?${link.slice('palyra://pair?'.length)}`;
    expect(deepLinkFromArgv([upper])).toBe(upper);
  });

  it('returns null when there is none', () => {
    expect(deepLinkFromArgv([])).toBeNull();
    expect(deepLinkFromArgv(['electron', '.', '--inspect'])).toBeNull();
  });

  it.each([
    'palyra://pair?',
    'palyra://other?v=1',
    'palyra://pairing?v=1',
    'https://palyra.example/pair?v=1',
    '--url=palyra://pair?v=1',
    'palyra://pair?v=1 --gpu-launcher=evil',
    'palyra://pair?v=1\n',
    `palyra://pair?v=1&n=${'x'.repeat(2048)}`,
  ])('ignores %j', (arg) => {
    expect(deepLinkFromArgv([arg])).toBeNull();
  });

  it('treats a macOS open-url URL by the same rules', () => {
    expect(deepLinkFromUrl(link)).toBe(link);
    expect(deepLinkFromUrl('palyra://unpair')).toBeNull();
  });
});

describe('rendererFileFor', () => {
  const rootDir = '/srv/dist/renderer';

  it('serves index.html for the root and files under the renderer folder with their type', () => {
    expect(rendererFileFor('app://palyra/', rootDir)).toEqual({ kind: 'file', path: '/srv/dist/renderer/index.html', contentType: 'text/html; charset=utf-8' });
    expect(rendererFileFor('app://palyra/assets/index-3f2a.js?x=1#y', rootDir)).toEqual({
      kind: 'file',
      path: '/srv/dist/renderer/assets/index-3f2a.js',
      contentType: 'text/javascript; charset=utf-8',
    });
  });

  it('resolves plain and percent-encoded dot segments the way Chromium does: inside the root', () => {
    for (const url of ['app://palyra/../../etc/passwd.html', 'app://palyra/%2e%2e/%2e%2e/etc/passwd.html', 'app://palyra/a/%2E%2E/../../etc/passwd.html']) {
      expect(rendererFileFor(url, rootDir)).toEqual({ kind: 'file', path: '/srv/dist/renderer/etc/passwd.html', contentType: 'text/html; charset=utf-8' });
    }
  });

  it.each([
    'app://palyra/assets%2F..%2F..%2Fsecret.js',
    'app://palyra/assets/..%5C..%5Csecret.js',
    'app://palyra/.env.json',
    'app://palyra/assets/',
    'app://palyra/C:/Windows/win.ini.html',
    'app://palyra/index.html%00.png',
    'app://palyra/%E0%A4%A.js',
    'app://palyra/README',
    'app://other/index.html',
    'app://user@palyra/index.html',
    'file:///srv/dist/renderer/index.html',
  ])('does not serve %s', (url) => {
    expect(rendererFileFor(url, rootDir)).toEqual({ kind: 'not_found' });
  });

  it('stays inside the root with Windows paths too', () => {
    expect(rendererFileFor('app://palyra/assets/a.css', 'C:\\app\\dist\\renderer', path.win32)).toEqual({
      kind: 'file',
      path: 'C:\\app\\dist\\renderer\\assets\\a.css',
      contentType: 'text/css; charset=utf-8',
    });
    expect(rendererFileFor('app://palyra/assets%5C..%5C..%5Cx.css', 'C:\\app\\dist\\renderer', path.win32)).toEqual({ kind: 'not_found' });
  });
});

describe('electronFuses', () => {
  it('turns off Node escape hatches and file:// privileges, and requires an integrity-checked asar', () => {
    expect(electronFuses()).toEqual({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      grantFileProtocolExtraPrivileges: false,
    });
  });

  it('is what electron-builder.yml flips', () => {
    // js-yaml is the parser electron-builder itself reads its config with.
    const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };
    const config = yaml.load(readFileSync(path.join(root, 'electron-builder.yml'), 'utf8')) as { electronFuses?: unknown };
    expect(config.electronFuses).toEqual(electronFuses());
  });
});
