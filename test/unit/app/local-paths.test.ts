// Local filesystem paths cut to their last component before a message crosses IPC (issue 17).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lastComponent, withoutLocalPaths } from '../../../main/app/local-paths.js';

describe('withoutLocalPaths', () => {
  it.each([
    ['failed to read /home/ana/.config/Palyra Desktop/settings.json: ENOENT', 'failed to read settings.json: ENOENT'],
    ["open '/home/ana/.config/Palyra Desktop/logs/palyra-desktop.log'", "open 'palyra-desktop.log'"],
    ['the device in /srv/palyra/device is not paired with a gateway', 'the device in device is not paired with a gateway'],
    ['lock held at /tmp/x/state.lock.', 'lock held at state.lock.'],
    ['see ~/.config/palyra/gateway.v1.json', 'see gateway.v1.json'],
    ['cannot open C:\\Users\\Ana\\AppData\\Roaming\\Palyra Desktop\\device\\identity.enc', 'cannot open identity.enc'],
    ['cannot open C:/Users/Ana/x.json', 'cannot open x.json'],
    ['share \\\\fileserver\\homes\\ana\\palyra\\key.bin gone', 'share key.bin gone'],
    ['loaded file:///home/ana/app/dist/renderer/index.html', 'loaded index.html'],
    ['(at /opt/palyra/main.js) and [/opt/palyra/b.js]', '(at main.js) and [b.js]'],
    ['path=/var/lib/palyra/state, other=/var/lib/palyra/other', 'path=state, other=other'],
  ])('cuts %j', (input, expected) => {
    expect(withoutLocalPaths(input)).toBe(expected);
  });

  it.each([
    'unknown IPC channel \'nope\'',
    'connect to https://gateway.example/a/b failed',
    'ws://127.0.0.1:4443/ipc refused',
    'palyra://pair?gw=127.0.0.1:1&t=x is not valid',
    'see docs/CLI.md and and/or',
    'GET, HEAD or POST on /session',
    'gateway 10.0.0.1:7443/x timed out on 2024/01/02',
    'run `npm start -- --new-link`',
  ])('leaves %j alone', (input) => {
    expect(withoutLocalPaths(input)).toBe(input);
  });

  it('replaces a known path exactly, whatever it contains', () => {
    const odd = '/home/ana/my files (old)/a, b.json';
    expect(withoutLocalPaths(`failed to read ${odd}: EACCES`, [odd])).toBe('failed to read a, b.json: EACCES');
    // A relative or empty "known path" is not a local path to cut.
    expect(withoutLocalPaths('a b', ['', 'a', '/'])).toBe('a b');
  });

  it('never lets a generated absolute path through, only its last component', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/).filter((s) => !/^\.+$/.test(s));
    fc.assert(
      fc.property(fc.array(segment, { minLength: 2, maxLength: 6 }), fc.constantFrom('', 'failed to read ', 'x: ', "open '"), fc.constantFrom('', ': ENOENT', "'", ' is gone'), (parts, before, after) => {
        const full = `/${parts.join('/')}`;
        const out = withoutLocalPaths(`${before}${full}${after}`);
        expect(out).not.toContain(full);
        expect(out).not.toContain(`/${parts[0]}/`);
        expect(out).toContain(parts.at(-1)!.replace(/\.+$/, ''));
      }),
    );
  });

  it('leaves text without a separator unchanged', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }).filter((s) => !/[\\/]/.test(s)), (text) => {
        expect(withoutLocalPaths(text)).toBe(text);
      }),
    );
  });
});

describe('lastComponent', () => {
  it('is the file or folder name', () => {
    expect(lastComponent('/a/b/c.json')).toBe('c.json');
    expect(lastComponent('C:\\x\\y')).toBe('y');
    expect(lastComponent('/a/b/')).toBe('b');
    expect(lastComponent('/')).toBe('…');
  });
});
