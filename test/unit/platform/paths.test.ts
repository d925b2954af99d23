import { describe, expect, it } from 'vitest';
import { defaultDeviceDir, defaultStateDir, defaultUserDataDir } from '../../../main/platform/paths.js';

describe('default directories', () => {
  it('follows XDG_CONFIG_HOME on Linux, else ~/.config', () => {
    const home = '/home/ada';
    expect(defaultUserDataDir({ platform: 'linux', env: {}, homedir: home })).toBe('/home/ada/.config/Palyra Desktop');
    expect(defaultStateDir({ platform: 'linux', env: { XDG_CONFIG_HOME: '/xdg' }, homedir: home })).toBe('/xdg/Palyra Desktop/gateway');
    expect(defaultDeviceDir({ platform: 'linux', env: { XDG_CONFIG_HOME: '/xdg' }, homedir: home })).toBe('/xdg/Palyra Desktop/device');
  });

  it('ignores an empty or relative XDG_CONFIG_HOME, as the XDG spec says', () => {
    for (const xdg of ['', 'relative/dir']) {
      expect(defaultStateDir({ platform: 'linux', env: { XDG_CONFIG_HOME: xdg }, homedir: '/home/ada' })).toBe('/home/ada/.config/Palyra Desktop/gateway');
    }
  });

  it('uses Application Support on macOS', () => {
    expect(defaultStateDir({ platform: 'darwin', env: { XDG_CONFIG_HOME: '/xdg' }, homedir: '/Users/ada' })).toBe(
      '/Users/ada/Library/Application Support/Palyra Desktop/gateway',
    );
  });

  it('uses %APPDATA% on Windows, else the roaming profile under the home directory', () => {
    expect(defaultStateDir({ platform: 'win32', env: { APPDATA: 'C:\\Users\\ada\\AppData\\Roaming' }, homedir: 'C:\\Users\\ada' })).toBe(
      'C:\\Users\\ada\\AppData\\Roaming\\Palyra Desktop\\gateway',
    );
    expect(defaultDeviceDir({ platform: 'win32', env: {}, homedir: 'C:\\Users\\ada' })).toBe('C:\\Users\\ada\\AppData\\Roaming\\Palyra Desktop\\device');
  });
});
