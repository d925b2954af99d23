import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toBase64Url } from '../../../main/core/bytes.js';
import { CLIENT_KINDS } from '../../../main/core/client-kind.js';
import { PalyraError } from '../../../main/core/errors.js';
import { CROCKFORD_ALPHABET, encodeCrockford128 } from '../../../main/core/ids.js';
import type { PairingUri } from '../../../main/core/pairing-uri.js';
import type { GatewayAddress } from '../../../main/core/net-address.js';
import { buildPairingUri, parsePairingUri, parseScannedPayload } from '../../../main/core/pairing-uri.js';
import { formatHostPort, parseHostPort } from '../../../main/core/net-address.js';

const NOW = 1_700_000_000_000;
const EXP = 1_700_000_600;
const TOKEN = '01HZX3NDEKTSV4RRFFQ69G5FAV';
const CA_PIN = toBase64Url(new Uint8Array(32).fill(7));

const EXAMPLE: PairingUri = {
  version: 1,
  gateways: [
    { host: '192.168.1.20', port: 7444 },
    { host: 'gw.example.com', port: 7444 },
    { host: '::1', port: 7444 },
  ],
  method: 'qr',
  token: TOKEN,
  caPin: CA_PIN,
  kind: 'desktop',
  expiresAtUnixS: EXP,
  name: 'Büro Gateway #1',
};
const EXAMPLE_TEXT =
  `palyra://pair?v=1&gw=192.168.1.20:7444,gw.example.com:7444,[::1]:7444&m=qr&t=${TOKEN}&ca=${CA_PIN}` +
  `&k=desktop&exp=${EXP}&n=B%C3%BCro%20Gateway%20%231`;

/** The valid example with one parameter replaced (value undefined removes it). */
function withParam(name: string, value: string | undefined): string {
  const params = EXAMPLE_TEXT.slice('palyra://pair?'.length).split('&');
  const kept = params.filter((p) => !p.startsWith(`${name}=`));
  if (value !== undefined) kept.push(`${name}=${value}`);
  return `palyra://pair?${kept.join('&')}`;
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof PalyraError ? error.code : `non-palyra: ${String(error)}`;
  }
  return undefined;
}

const parse = (text: string): PairingUri => parsePairingUri(text, { now: NOW });

describe('buildPairingUri', () => {
  it('writes the PROTOCOL.md §3 form with IPv6 in brackets and the name percent-encoded', () => {
    expect(buildPairingUri(EXAMPLE)).toBe(EXAMPLE_TEXT);
  });

  it('omits n when the gateway has no name', () => {
    expect(buildPairingUri({ ...EXAMPLE, name: null })).not.toContain('&n=');
  });

  it('refuses fields the parser would refuse', () => {
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, token: 'short' }))).toBe('pairing_uri_bad_token');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, token: '' }))).toBe('pairing_uri_missing_token');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, caPin: 'abc' }))).toBe('pairing_uri_bad_pin');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, gateways: [] }))).toBe('pairing_uri_bad_address');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, gateways: [{ host: 'a b', port: 1 }] }))).toBe(
      'pairing_uri_bad_address',
    );
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, gateways: [{ host: 'a', port: 0 }] }))).toBe(
      'pairing_uri_bad_address',
    );
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, kind: 'phone' as never }))).toBe('pairing_uri_bad_kind');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, expiresAtUnixS: 1.5 }))).toBe('pairing_uri_bad_expiry');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, name: 'line\nbreak' }))).toBe('pairing_uri_bad_name');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, name: 'lone \ud800' }))).toBe('pairing_uri_bad_name');
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, version: 2 as never }))).toBe(
      'pairing_uri_unsupported_version',
    );
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, method: 'pin' as never }))).toBe('pairing_uri_bad_method');
  });

  it('refuses a URI that would exceed 2048 characters', () => {
    const long = { host: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, port: 65535 };
    const gateways = Array.from({ length: 8 }, () => long);
    expect(errorCode(() => buildPairingUri({ ...EXAMPLE, gateways }))).toBe('pairing_uri_invalid');
  });
});

describe('parsePairingUri', () => {
  it('reads every field of a valid URI', () => {
    expect(parse(EXAMPLE_TEXT)).toEqual(EXAMPLE);
  });

  it('matches scheme and host case-insensitively, as QR scanners may upper-case them', () => {
    expect(parse(EXAMPLE_TEXT.replace('palyra://pair', 'PALYRA://PAIR'))).toEqual(EXAMPLE);
    expect(parse(EXAMPLE_TEXT.replace('palyra://pair', 'Palyra://Pair'))).toEqual(EXAMPLE);
  });

  it('accepts the parameters in any order and ignores unknown ones', () => {
    const params = EXAMPLE_TEXT.slice('palyra://pair?'.length).split('&').reverse();
    expect(parse(`palyra://pair?${params.join('&')}&future=x`)).toEqual(EXAMPLE);
  });

  it('percent-decodes values, reading + as a plus', () => {
    expect(parse(withParam('n', 'a+b')).name).toBe('a+b');
    expect(parse(withParam('gw', 'host%3A7444')).gateways).toEqual([{ host: 'host', port: 7444 }]);
  });

  it('reports an expired code only after the URI is otherwise valid', () => {
    expect(errorCode(() => parsePairingUri(EXAMPLE_TEXT, { now: EXP * 1000 }))).toBe('pairing_uri_expired');
    expect(errorCode(() => parsePairingUri(EXAMPLE_TEXT, { now: EXP * 1000 - 1 }))).toBeUndefined();
    expect(errorCode(() => parsePairingUri(withParam('k', 'x'), { now: EXP * 1000 }))).toBe('pairing_uri_bad_kind');
  });

  const cases: [string, string, string][] = [
    ['an https URL', 'https://pair?v=1', 'pairing_uri_invalid'],
    ['another host', EXAMPLE_TEXT.replace('//pair?', '//pairing?'), 'pairing_uri_invalid'],
    ['a path before the query', EXAMPLE_TEXT.replace('//pair?', '//pair/?'), 'pairing_uri_invalid'],
    ['no query at all', 'palyra://pair', 'pairing_uri_invalid'],
    ['plain text', 'hello world', 'pairing_uri_invalid'],
    ['the empty string', '', 'pairing_uri_invalid'],
    ['a fragment', `${EXAMPLE_TEXT}#frag`, 'pairing_uri_invalid'],
    ['leading whitespace', ` ${EXAMPLE_TEXT}`, 'pairing_uri_invalid'],
    ['trailing newline', `${EXAMPLE_TEXT}\n`, 'pairing_uri_invalid'],
    ['a raw space in the name', withParam('n', 'a b'), 'pairing_uri_invalid'],
    ['raw non-ASCII', withParam('n', 'ü'), 'pairing_uri_invalid'],
    ['a duplicate parameter', `${EXAMPLE_TEXT}&t=${TOKEN}`, 'pairing_uri_invalid'],
    ['a duplicate unknown parameter', `${EXAMPLE_TEXT}&x=1&x=1`, 'pairing_uri_invalid'],
    ['an empty parameter', `${EXAMPLE_TEXT}&`, 'pairing_uri_invalid'],
    ['a parameter without =', `${EXAMPLE_TEXT}&flag`, 'pairing_uri_invalid'],
    ['more than 2048 characters', `${EXAMPLE_TEXT}&pad=${'x'.repeat(2048)}`, 'pairing_uri_invalid'],
    ['no version', withParam('v', undefined), 'pairing_uri_unsupported_version'],
    ['version 2', withParam('v', '2'), 'pairing_uri_unsupported_version'],
    ['version 01', withParam('v', '01'), 'pairing_uri_unsupported_version'],
    ['no method', withParam('m', undefined), 'pairing_uri_bad_method'],
    ['method pin', withParam('m', 'pin'), 'pairing_uri_bad_method'],
    ['method QR', withParam('m', 'QR'), 'pairing_uri_bad_method'],
    ['no token', withParam('t', undefined), 'pairing_uri_missing_token'],
    ['an empty token', withParam('t', ''), 'pairing_uri_missing_token'],
    ['a 25-character token', withParam('t', TOKEN.slice(1)), 'pairing_uri_bad_token'],
    ['a lower-case token', withParam('t', TOKEN.toLowerCase()), 'pairing_uri_bad_token'],
    ['a token with U', withParam('t', `U${TOKEN.slice(1)}`), 'pairing_uri_bad_token'],
    ['a token with a bad escape', withParam('t', `%G0${TOKEN.slice(1)}`), 'pairing_uri_bad_token'],
    ['no CA pin', withParam('ca', undefined), 'pairing_uri_bad_pin'],
    ['a padded CA pin', withParam('ca', `${CA_PIN}=`), 'pairing_uri_bad_pin'],
    ['a 31-byte CA pin', withParam('ca', toBase64Url(new Uint8Array(31))), 'pairing_uri_bad_pin'],
    ['a 33-byte CA pin', withParam('ca', toBase64Url(new Uint8Array(33))), 'pairing_uri_bad_pin'],
    ['a standard-alphabet CA pin', withParam('ca', `${CA_PIN.slice(0, 42)}+`), 'pairing_uri_bad_pin'],
    ['a non-canonical CA pin', withParam('ca', `${CA_PIN.slice(0, 42)}Z`), 'pairing_uri_bad_pin'],
    ['no gateway', withParam('gw', undefined), 'pairing_uri_bad_address'],
    ['an empty gateway list', withParam('gw', ''), 'pairing_uri_bad_address'],
    ['an empty gateway entry', withParam('gw', 'a:1,'), 'pairing_uri_bad_address'],
    ['a gateway without port', withParam('gw', 'host'), 'pairing_uri_bad_address'],
    ['port 0', withParam('gw', 'host:0'), 'pairing_uri_bad_address'],
    ['port 65536', withParam('gw', 'host:65536'), 'pairing_uri_bad_address'],
    ['an unbracketed IPv6', withParam('gw', '::1:7444'), 'pairing_uri_bad_address'],
    ['an underscore host', withParam('gw', 'my_host:1'), 'pairing_uri_bad_address'],
    ['nine gateways', withParam('gw', 'h:1,'.repeat(8) + 'h:1'), 'pairing_uri_bad_address'],
    ['no kind', withParam('k', undefined), 'pairing_uri_bad_kind'],
    ['kind Desktop', withParam('k', 'Desktop'), 'pairing_uri_bad_kind'],
    ['kind phone', withParam('k', 'phone'), 'pairing_uri_bad_kind'],
    ['no expiry', withParam('exp', undefined), 'pairing_uri_bad_expiry'],
    ['expiry 0', withParam('exp', '0'), 'pairing_uri_bad_expiry'],
    ['a negative expiry', withParam('exp', '-5'), 'pairing_uri_bad_expiry'],
    ['a fractional expiry', withParam('exp', '1.5'), 'pairing_uri_bad_expiry'],
    ['an expiry in milliseconds beyond range', withParam('exp', '99999999999999999'), 'pairing_uri_bad_expiry'],
    ['an expired code', withParam('exp', String(NOW / 1000)), 'pairing_uri_expired'],
    ['an empty name', withParam('n', ''), 'pairing_uri_bad_name'],
    ['a name with a control character', withParam('n', 'a%0Ab'), 'pairing_uri_bad_name'],
    ['a name with a bidi override', withParam('n', 'a%E2%80%AEb'), 'pairing_uri_bad_name'],
    ['a name with a truncated escape', withParam('n', 'a%2'), 'pairing_uri_bad_name'],
    ['a name with invalid UTF-8', withParam('n', '%C3%28'), 'pairing_uri_bad_name'],
    ['a name of 65 characters', withParam('n', 'x'.repeat(65)), 'pairing_uri_bad_name'],
  ];

  it.each(cases)('refuses %s', (_what, text, code) => {
    expect(errorCode(() => parse(text))).toBe(code);
  });

  it('never repeats the token in an error', () => {
    for (const text of [withParam('k', 'x'), withParam('gw', 'bad'), withParam('exp', '0'), withParam('v', '9')]) {
      try {
        parse(text);
        expect.unreachable();
      } catch (error) {
        const e = error as PalyraError;
        expect(JSON.stringify({ code: e.code, message: e.message, details: e.details })).not.toContain(TOKEN);
      }
    }
  });

  it('accepts a name of 64 code points, including astral ones', () => {
    expect(parse(withParam('n', encodeURIComponent('😀'.repeat(64)))).name).toBe('😀'.repeat(64));
  });
});

describe('parseHostPort', () => {
  it.each([
    ['localhost:7444', 'localhost', 7444],
    ['127.0.0.1:7444', '127.0.0.1', 7444],
    ['gw.example.com:1', 'gw.example.com', 1],
    ['1password.com:65535', '1password.com', 65535],
    ['[::1]:7444', '::1', 7444],
    ['[2001:db8::1]:443', '2001:db8::1', 443],
    ['[::ffff:192.0.2.1]:443', '::ffff:192.0.2.1', 443],
    ['[1:2:3:4:5:6:7:8]:80', '1:2:3:4:5:6:7:8', 80],
    ['[::]:80', '::', 80],
  ])('reads %s', (text, host, port) => {
    expect(parseHostPort(text)).toEqual({ host, port });
  });

  it.each([
    '',
    'host',
    ':7444',
    'host:',
    'host:0',
    'host:65536',
    'host:07444',
    'host:+1',
    'host:1a',
    '::1:7444',
    '[::1]',
    '[::1]:',
    '[::1]7444',
    '[1::2::3]:1',
    '[1:2:3:4:5:6:7:8:9]:1',
    '[fe80::1%eth0]:1',
    '[127.0.0.1]:1',
    '-host:1',
    'host-:1',
    'my_host:1',
    'exa mple:1',
    'a..b:1',
    'trailing.dot.:1',
    '1.2.3:1',
    '256.1.1.1:1',
    '01.2.3.4:1',
    '3232235777:1',
    `${'a'.repeat(64)}.com:1`,
    `${'a.'.repeat(127)}com:1`,
  ])('refuses %j', (text) => {
    expect(errorCode(() => parseHostPort(text))).toBe('invalid_argument');
  });

  it('accepts port 0 only when asked to (for --listen)', () => {
    expect(errorCode(() => parseHostPort('127.0.0.1:0'))).toBe('invalid_argument');
    expect(parseHostPort('127.0.0.1:0', { allowPortZero: true })).toEqual({ host: '127.0.0.1', port: 0 });
    expect(errorCode(() => parseHostPort('127.0.0.1:00', { allowPortZero: true }))).toBe('invalid_argument');
  });

  it('formats back what it parses', () => {
    for (const text of ['localhost:7444', '[::1]:7444', '10.0.0.1:1']) {
      expect(formatHostPort(parseHostPort(text))).toBe(text);
    }
  });
});

describe('parseScannedPayload', () => {
  it('parses a pairing URI', () => {
    expect(parseScannedPayload(EXAMPLE_TEXT, { now: NOW })).toEqual({ type: 'uri', uri: EXAMPLE });
  });

  it('accepts a bare reference token and trims the newline a scanner appends', () => {
    expect(parseScannedPayload(TOKEN, { now: NOW })).toEqual({ type: 'token', token: TOKEN });
    expect(parseScannedPayload(`  ${TOKEN}\r\n`, { now: NOW })).toEqual({ type: 'token', token: TOKEN });
    expect(parseScannedPayload('0123456789ABCDEF0123456789ABCDEF', { now: NOW })).toEqual({
      type: 'token',
      token: '0123456789ABCDEF0123456789ABCDEF',
    });
  });

  it('reports anything else with the URI error', () => {
    expect(errorCode(() => parseScannedPayload('hello', { now: NOW }))).toBe('pairing_uri_invalid');
    const url = 'https://example.com/0123456789';
    expect(errorCode(() => parseScannedPayload(url, { now: NOW }))).toBe('pairing_uri_invalid');
    expect(errorCode(() => parseScannedPayload('0123456789 ABCDEF012345', { now: NOW }))).toBe('pairing_uri_invalid');
    expect(errorCode(() => parseScannedPayload('x'.repeat(129), { now: NOW }))).toBe('pairing_uri_invalid');
    expect(errorCode(() => parseScannedPayload(withParam('k', 'x'), { now: NOW }))).toBe('pairing_uri_bad_kind');
  });
});

// --- properties ------------------------------------------------------------------------------------------------

const label = fc.stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?$/);
const hostname = fc
  .array(label, { minLength: 1, maxLength: 4 })
  .filter((labels) => !/^[0-9]+$/.test(labels[labels.length - 1]!))
  .map((labels) => labels.join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((octets) => octets.join('.'));
const ipv6 = fc
  .tuple(fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }), fc.nat(8), fc.nat(8), fc.boolean())
  .map(([groups, start, length, upper]) => {
    const hex = groups.map((g) => (upper ? g.toString(16).toUpperCase() : g.toString(16)));
    if (length < 2) return hex.join(':');
    const from = Math.min(start, 8 - length);
    return `${hex.slice(0, from).join(':')}::${hex.slice(from + length).join(':')}`;
  });
const gateway: fc.Arbitrary<GatewayAddress> = fc.record({
  host: fc.oneof(hostname, ipv4, ipv6),
  port: fc.integer({ min: 1, max: 65_535 }),
});
const token = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map(encodeCrockford128),
  fc
    .array(fc.constantFrom(...CROCKFORD_ALPHABET.split('')), { minLength: 26, maxLength: 26 })
    .map((chars) => chars.join('')),
);
const nameChars = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }),
  fc.string({ minLength: 1, maxLength: 64 }),
);
const name = nameChars.filter((n) => !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u.test(n) && Array.from(n).length <= 64);
const pairingUri: fc.Arbitrary<PairingUri> = fc.record({
  version: fc.constant(1 as const),
  gateways: fc.array(gateway, { minLength: 1, maxLength: 8 }),
  method: fc.constant('qr' as const),
  token,
  caPin: fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toBase64Url),
  kind: fc.constantFrom(...CLIENT_KINDS),
  expiresAtUnixS: fc.integer({ min: NOW / 1000 + 1, max: 2 ** 40 }),
  name: fc.option(name, { nil: null }),
});

/** Parses, requiring that any failure is a PalyraError with a pairing_uri_* code; a success must rebuild. */
function parseOrPairingUriError(text: string): void {
  let parsed: PairingUri;
  try {
    parsed = parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(PalyraError);
    expect((error as PalyraError).code).toMatch(/^pairing_uri_/);
    return;
  }
  expect(parse(buildPairingUri(parsed))).toEqual(parsed);
}

describe('pairing URI properties', () => {
  it('parses what it builds back to the same value', () => {
    fc.assert(
      fc.property(pairingUri, (uri) => {
        expect(parse(buildPairingUri(uri))).toEqual(uri);
      }),
      { numRuns: 2_000 },
    );
  });

  it('fails on random text only with pairing_uri_* errors', () => {
    const fragments = fc.constantFrom(
      'palyra://pair?', 'PALYRA://PAIR?', 'v=1', 'v=', 'gw=', 'm=qr', 't=', 'ca=', 'k=node', 'exp=', 'n=', '&', '=',
      '%', '%2', '%C3', '%FF', '[', ']', ':', ',', '::1', '7444', TOKEN, CA_PIN, '#', ' ', '\u0000', 'é', '😀',
    );
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ maxLength: 300 }),
      fc.string({ maxLength: 300 }).map((s) => `palyra://pair?${s}`),
      fc.array(fragments, { maxLength: 40 }).map((parts) => parts.join('')),
    );
    fc.assert(fc.property(text, parseOrPairingUriError), { numRuns: 2_000 });
  });

  it('fails on mutated valid URIs only with pairing_uri_* errors', () => {
    const mutation = fc.tuple(
      fc.constantFrom('delete', 'insert', 'replace', 'duplicate', 'truncate'),
      fc.nat(),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }),
    );
    fc.assert(
      fc.property(pairingUri, fc.array(mutation, { minLength: 1, maxLength: 4 }), (uri, mutations) => {
        let text = buildPairingUri(uri);
        for (const [kind, at, chars] of mutations) {
          const i = at % (text.length + 1);
          if (kind === 'delete') text = text.slice(0, i) + text.slice(i + 1);
          else if (kind === 'insert') text = text.slice(0, i) + chars + text.slice(i);
          else if (kind === 'replace') text = text.slice(0, i) + chars + text.slice(i + chars.length);
          else if (kind === 'duplicate') text = text + text.slice(i);
          else text = text.slice(0, i);
        }
        parseOrPairingUriError(text);
      }),
      { numRuns: 2_000 },
    );
  });

  it('classifies any scanned text as a URI, a token, or a pairing_uri_* error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), pairingUri.map(buildPairingUri)), (text) => {
        try {
          const result = parseScannedPayload(text, { now: NOW });
          expect(['uri', 'token']).toContain(result.type);
        } catch (error) {
          expect((error as PalyraError).code).toMatch(/^pairing_uri_/);
        }
      }),
      { numRuns: 2_000 },
    );
  });
});
