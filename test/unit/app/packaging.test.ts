// The packaging configuration and resources: what electron-builder is told, checked as data (packing itself needs
// an Electron binary; scripts/dist-smoke.mjs does it where one exists).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..', '..');
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');
// js-yaml is the parser electron-builder itself reads its config with.
const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };

interface BuilderConfig {
  appId: string;
  productName: string;
  files: string[];
  asarUnpack: string[];
  extraResources: { from: string; to: string }[];
  protocols: { name: string; schemes: string[] }[];
  linux: { target: string[]; category: string; icon: string; mimeTypes: string[]; desktop: { entry: Record<string, string> } };
  mac: { target: string; entitlements: string; entitlementsInherit: string; hardenedRuntime: boolean; extendInfo: Record<string, string> };
  win: { target: string };
}

const config = yaml.load(read('electron-builder.yml')) as BuilderConfig;

describe('electron-builder.yml', () => {
  it('names the app as the user-data directory does', () => {
    expect(config.appId).toBe('org.palyra.desktop');
    expect(config.productName).toBe('Palyra Desktop');
  });

  it('packs the build, the .proto files read at run time and the dependencies, unpacking what fs and dlopen need', () => {
    expect(config.files).toEqual(expect.arrayContaining(['dist/**/*', 'main/rpc/proto/**/*', 'node_modules/**/*']));
    expect(config.asarUnpack).toEqual(expect.arrayContaining(['main/rpc/proto/**/*', '**/node_modules/keytar/**/*.node']));
    expect(config.extraResources).toContainEqual({ from: 'resources/icon.png', to: 'icon.png' });
  });

  it('registers the palyra:// scheme on every platform', () => {
    expect(config.protocols.flatMap((p) => p.schemes)).toEqual(['palyra']);
    expect(config.linux.mimeTypes).toContain('x-scheme-handler/palyra');
    expect(config.linux.desktop.entry.MimeType).toBe('x-scheme-handler/palyra;');
  });

  it('targets AppImage and deb (Network), a dmg with camera usage text and entitlements, and NSIS', () => {
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
    expect(config.linux.category).toBe('Network');
    expect(config.mac.target).toBe('dmg');
    expect(config.mac.hardenedRuntime).toBe(true);
    expect(config.mac.entitlements).toBe('resources/entitlements.mac.plist');
    expect(config.mac.entitlementsInherit).toBe('resources/entitlements.mac.plist');
    expect(config.mac.extendInfo.NSCameraUsageDescription).toMatch(/camera.*QR/i);
    expect(config.win.target).toBe('nsis');
  });
});

describe('resources', () => {
  it('has a 512×512 RGBA PNG icon and its SVG source', () => {
    const png = readFileSync(path.join(root, 'resources', 'icon.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.subarray(12, 16).toString('ascii')).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]]).toEqual([512, 512, 8, 6]);
    expect(read('resources/icon.svg')).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="512" height="512"/);
  });

  it('entitles the signed mac app to the camera and the network, and nothing it does not use', () => {
    const plist = read('resources/entitlements.mac.plist');
    const keys = [...plist.matchAll(/<key>([^<]+)<\/key>/g)].map((m) => m[1]);
    expect(keys.sort()).toEqual([
      'com.apple.security.cs.allow-jit',
      'com.apple.security.device.camera',
      'com.apple.security.network.client',
      'com.apple.security.network.server',
    ]);
    expect(plist).not.toMatch(/<false\/>/);
  });

  it('ships a desktop entry that handles palyra:// links', () => {
    const entry = read('resources/palyra-desktop.desktop');
    expect(entry).toMatch(/^\[Desktop Entry\]$/m);
    expect(entry).toMatch(/^MimeType=x-scheme-handler\/palyra;$/m);
    expect(entry).toMatch(/^Exec=palyra-desktop %U$/m);
    expect(entry).toMatch(/^Categories=Network;$/m);
  });
});
