// The one network-address module: IP literals, host names, HOST:PORT and loopback, table-driven and as properties.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPalyraError } from '../../../main/core/errors.js';
import {
  formatHostPort,
  formatIpAddress,
  isHostname,
  isIpv4Literal,
  isIpv6Literal,
  isLoopbackHost,
  normalizeHostPort,
  normalizeIpAddress,
  parseHostPort,
  parseIpAddress,
} from '../../../main/core/net-address.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isPalyraError(error) ? error.code : 'not-a-palyra-error';
  }
  return undefined;
}

describe('IP literals', () => {
  it.each([
    ['127.0.0.1', true],
    ['0.0.0.0', true],
    ['255.255.255.255', true],
    ['256.0.0.1', false],
    ['01.2.3.4', false],
    ['1a.2.3.4', false],
    ['1.2.3', false],
    ['1.2.3.4.5', false],
    ['', false],
  ])('IPv4 %j → %s', (text, ok) => {
    expect(isIpv4Literal(text)).toBe(ok);
  });

  it.each([
    ['::1', true],
    ['::', true],
    ['fe80::1', true],
    ['2001:db8:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['1:2:3:4:5:6:7:8', true],
    ['1:2:3:4:5:6:7::', true],
    ['1:2:3:4:5:6:7:8:9', false],
    ['1::2::3', false],
    ['fe80::1%eth0', false],
    ['[::1]', false],
    ['12345::', false],
    ['1.2.3.4::', false],
  ])('IPv6 %j → %s', (text, ok) => {
    expect(isIpv6Literal(text)).toBe(ok);
  });

  it('writes addresses canonically (RFC 5952) and refuses junk with invalid_argument', () => {
    expect(normalizeIpAddress('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(normalizeIpAddress('2001:DB8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(normalizeIpAddress('::ffff:10.0.0.1')).toBe('::ffff:a00:1');
    expect(formatIpAddress(parseIpAddress('10.1.2.3'))).toBe('10.1.2.3');
    for (const junk of ['host.lan', '1a.2.3.4', '::1/128', '[::1]', '']) expect(codeOf(() => parseIpAddress(junk))).toBe('invalid_argument');
    expect(codeOf(() => formatIpAddress(new Uint8Array(5)))).toBe('invalid_argument');
  });

  it('round-trips any 4 or 16 bytes through text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), (bytes) => {
        expect(parseIpAddress(formatIpAddress(bytes))).toEqual(bytes);
      }),
    );
  });
});

describe('host names', () => {
  it.each([
    ['gateway', true],
    ['gw-1.office.lan', true],
    ['127.x.example', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['-gw', false],
    ['gw-', false],
    ['gw_1', false],
    ['1.2.3', false],
    ['3232235777', false],
    ['', false],
    [`${'a'.repeat(60)}.`.repeat(5) + 'com', false],
  ])('%j → %s', (text, ok) => {
    expect(isHostname(text)).toBe(ok);
  });
});

describe('loopback', () => {
  it.each([
    ['localhost', true],
    ['LOCALHOST', true],
    ['127.0.0.1', true],
    ['127.255.1.2', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:10.0.0.1', false],
    ['127.x.example', false],
    ['127.0.0.1.example', false],
    ['localhost.example', false],
    ['10.0.0.1', false],
    ['0.0.0.0', false],
    ['::', false],
    ['gateway.lan', false],
  ])('%j → %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('HOST:PORT', () => {
  it.each([
    ['127.0.0.1:7444', { host: '127.0.0.1', port: 7444 }],
    ['gw.lan:1', { host: 'gw.lan', port: 1 }],
    ['[::1]:65535', { host: '::1', port: 65535 }],
    ['[fe80::1]:443', { host: 'fe80::1', port: 443 }],
  ])('parses %j', (text, address) => {
    expect(parseHostPort(text)).toEqual(address);
    expect(formatHostPort(address)).toBe(text);
  });

  it.each(['127.0.0.1', '::1:80', '[::1]80', '[gw]:80', 'gw:0', 'gw:65536', 'gw:080', 'gw:-1', 'gw: 80', ':80', 'gw_1:80', '1.2.3:80', 'gw:'])(
    'refuses %j with invalid_argument',
    (text) => {
      expect(codeOf(() => parseHostPort(text))).toBe('invalid_argument');
    },
  );

  it('accepts port 0 only when asked (listen addresses)', () => {
    expect(codeOf(() => parseHostPort('127.0.0.1:0'))).toBe('invalid_argument');
    expect(parseHostPort('127.0.0.1:0', { allowPortZero: true })).toEqual({ host: '127.0.0.1', port: 0 });
    expect(normalizeHostPort('[0:0:0:0:0:0:0:1]:80')).toBe('[0:0:0:0:0:0:0:1]:80');
  });

  it('round-trips formatted addresses (property)', () => {
    const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
    const host = fc.oneof(
      fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.')),
      fc.uint8Array({ minLength: 4, maxLength: 4 }).map(formatIpAddress),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatIpAddress),
    );
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65_535 }), (h, port) => {
        const text = formatHostPort({ host: h, port });
        expect(parseHostPort(text)).toEqual({ host: h, port });
      }),
    );
  });
});
