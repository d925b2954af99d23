/**
 * The pairing QR URI of PROTOCOL.md §3:
 *   palyra://pair?v=1&gw=HOST:PORT[,HOST:PORT…]&m=qr&t=TOKEN&ca=CAPIN&k=KIND&exp=UNIX_S&n=NAME
 *
 * Parsed by hand rather than with the WHATWG URL parser, whose leniency (stripped whitespace, fragments, backslashes,
 * IPv4 shorthands) would let two different strings mean one pairing. Decisions:
 * - `palyra` and `pair` match case-insensitively (RFC 3986 scheme and host; QR scanners may upper-case them);
 *   parameter names and values are case-sensitive.
 * - Parameters may come in any order; each at most once; unknown ones are ignored so v1 can grow optional fields.
 * - Values are percent-decoded (RFC 3986: `+` is a plus, not a space) and then checked strictly.
 * - Only printable ASCII URI characters (plus `[` `]` for IPv6 literals) are allowed: no whitespace, no fragment.
 * - The token is a secret: no error message or detail ever repeats it.
 */

import { fromBase64Url, utf8 } from './bytes.js';
import type { ClientKind } from './client-kind.js';
import { isClientKind } from './client-kind.js';
import type { ErrorCode } from './errors.js';
import { PalyraError } from './errors.js';
import { isCanonicalId } from './ids.js';
import { assertUnixMs, QR_TOKEN_MAX_BYTES, QR_TOKEN_MIN_BYTES } from './pairing-codes.js';
import type { GatewayAddress } from './net-address.js';
import { formatHostPort, isHostname, isIpv4Literal, isIpv6Literal, parseHostPort } from './net-address.js';

export const PAIRING_URI_SCHEME = 'palyra';
export const PAIRING_URI_VERSION = 1;
/** Longest accepted URI, in characters; well above a real one (~250) and below what a QR code holds. */
export const MAX_PAIRING_URI_LENGTH = 2048;
/** Most gateway addresses in `gw`. */
export const MAX_PAIRING_URI_GATEWAYS = 8;
/** Longest gateway name `n`, in Unicode code points after decoding. */
export const MAX_GATEWAY_NAME_CODE_POINTS = 64;
/** SHA-256 digest length: the CA pin is this many bytes. */
const CA_PIN_BYTES = 32;
/** Largest `exp` (seconds) whose millisecond value is still a safe integer. */
const MAX_EXPIRY_UNIX_S = Math.floor(Number.MAX_SAFE_INTEGER / 1000);


export interface PairingUri {
  readonly version: 1;
  readonly gateways: readonly GatewayAddress[];
  readonly method: 'qr';
  readonly token: string;
  /** base64url (no padding) SHA-256 of the gateway CA's SubjectPublicKeyInfo DER. */
  readonly caPin: string;
  readonly kind: ClientKind;
  readonly expiresAtUnixS: number;
  readonly name: string | null;
}

export type ScannedPayload =
  | { readonly type: 'uri'; readonly uri: PairingUri }
  | { readonly type: 'token'; readonly token: string };

function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new PalyraError(code, message, details === undefined ? {} : { details });
}

/** Shortens user input before it goes into a message. */
function excerpt(text: string): string {
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

function isValidHost(host: string): boolean {
  return host.includes(':') ? isIpv6Literal(host) : isIpv4Literal(host) || isHostname(host);
}

function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65_535;
}

// --- field checks shared by build and parse ------------------------------------------------------------------

function checkToken(token: string): void {
  if (token.length === 0) fail('pairing_uri_missing_token', 'pairing URI has no token (t)');
  // 26 Crockford characters are always 26 bytes, inside the 16..128 proof rule; the check stays explicit.
  const bytes = utf8(token).length;
  if (!isCanonicalId(token) || bytes < QR_TOKEN_MIN_BYTES || bytes > QR_TOKEN_MAX_BYTES) {
    fail('pairing_uri_bad_token', 'pairing URI token (t) must be 26 upper-case Crockford base32 characters');
  }
}

function checkCaPin(caPin: string): void {
  let length = -1;
  try {
    length = fromBase64Url(caPin).length;
  } catch {
    // falls through to the error below
  }
  if (length !== CA_PIN_BYTES) {
    fail('pairing_uri_bad_pin', 'pairing URI CA pin (ca) must be the unpadded base64url of a 32-byte SHA-256 digest');
  }
}

function checkGateways(gateways: readonly GatewayAddress[]): void {
  if (gateways.length === 0 || gateways.length > MAX_PAIRING_URI_GATEWAYS) {
    fail('pairing_uri_bad_address', `pairing URI needs 1 to ${MAX_PAIRING_URI_GATEWAYS} gateway addresses (gw)`);
  }
  for (const g of gateways) {
    if (!isValidHost(g.host) || !isValidPort(g.port)) {
      fail('pairing_uri_bad_address', `pairing URI gateway address '${excerpt(g.host)}' is invalid`);
    }
  }
}

function checkKind(kind: string): asserts kind is ClientKind {
  if (!isClientKind(kind)) fail('pairing_uri_bad_kind', 'pairing URI client kind (k) must be one of desktop|node|cli');
}

function checkExpiry(expiresAtUnixS: number): void {
  if (!Number.isSafeInteger(expiresAtUnixS) || expiresAtUnixS < 1 || expiresAtUnixS > MAX_EXPIRY_UNIX_S) {
    fail('pairing_uri_bad_expiry', 'pairing URI expiry (exp) must be a positive unix time in seconds');
  }
}

/**
 * Code points a name may not contain: controls, format characters (bidi overrides, zero-width), line separators and
 * lone surrogates (which cannot be UTF-8 encoded).
 */
const FORBIDDEN_NAME_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

function checkName(name: string): void {
  if (name.length === 0) fail('pairing_uri_bad_name', 'pairing URI gateway name (n) must not be empty');
  if (FORBIDDEN_NAME_CHARS.test(name)) {
    fail('pairing_uri_bad_name', 'pairing URI gateway name (n) contains control or invisible characters');
  }
  let codePoints = 0;
  for (const _ of name) codePoints++;
  if (codePoints > MAX_GATEWAY_NAME_CODE_POINTS) {
    fail('pairing_uri_bad_name', `pairing URI gateway name (n) exceeds ${MAX_GATEWAY_NAME_CODE_POINTS} characters`);
  }
}

// --- build -------------------------------------------------------------------------------------------------------

/** Writes the URI (parameters in PROTOCOL.md order); every field is checked with the parser's rules first. */
export function buildPairingUri(p: PairingUri): string {
  // Widened so the checks also hold for untyped callers.
  const version: number = p.version;
  const method: string = p.method;
  if (version !== PAIRING_URI_VERSION) fail('pairing_uri_unsupported_version', 'only pairing URI version 1 exists');
  if (method !== 'qr') fail('pairing_uri_bad_method', 'a pairing URI carries a QR token (m=qr)');
  checkToken(p.token);
  checkCaPin(p.caPin);
  checkGateways(p.gateways);
  checkKind(p.kind);
  checkExpiry(p.expiresAtUnixS);
  if (p.name !== null) checkName(p.name);
  const gw = p.gateways.map(formatHostPort).join(',');
  let uri = `${PAIRING_URI_SCHEME}://pair?v=1&gw=${gw}&m=qr&t=${p.token}&ca=${p.caPin}`;
  uri += `&k=${p.kind}&exp=${p.expiresAtUnixS}`;
  if (p.name !== null) uri += `&n=${encodeURIComponent(p.name)}`;
  if (uri.length > MAX_PAIRING_URI_LENGTH) {
    fail('pairing_uri_invalid', `pairing URI would be longer than ${MAX_PAIRING_URI_LENGTH} characters`);
  }
  return uri;
}

// --- parse -------------------------------------------------------------------------------------------------------

/** RFC 3986 query characters, plus `[` `]` so `gw` can carry IPv6 literals as written. */
const URI_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%[\]]*$/;
const PARAM_NAME = /^[A-Za-z0-9_.-]+$/;
const URI_PREFIX = `${PAIRING_URI_SCHEME}://pair?`;
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict percent-decoding to UTF-8; null on a malformed escape or invalid UTF-8. */
function percentDecode(raw: string): string | null {
  if (!raw.includes('%')) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charCodeAt(i);
    if (ch === 0x25) {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(ch); // URI_CHARS guarantees ASCII here
    }
  }
  try {
    return utf8Strict.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

function splitQuery(query: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) fail('pairing_uri_invalid', 'pairing URI parameter without a value');
    const name = part.slice(0, eq);
    if (!PARAM_NAME.test(name)) fail('pairing_uri_invalid', 'pairing URI has a malformed parameter name');
    if (params.has(name)) fail('pairing_uri_invalid', `pairing URI repeats the parameter '${name}'`);
    params.set(name, part.slice(eq + 1));
  }
  return params;
}

/** Decodes a field's value, reporting a bad escape with that field's own code. */
function decodedField(params: Map<string, string>, name: string, code: ErrorCode): string | undefined {
  const raw = params.get(name);
  if (raw === undefined) return undefined;
  const value = percentDecode(raw);
  return value ?? fail(code, `pairing URI parameter '${name}' has invalid percent-encoding`);
}

function parseGatewayList(value: string): GatewayAddress[] {
  const entries = value.split(',');
  if (value.length === 0 || entries.length > MAX_PAIRING_URI_GATEWAYS) {
    fail('pairing_uri_bad_address', `pairing URI needs 1 to ${MAX_PAIRING_URI_GATEWAYS} gateway addresses (gw)`);
  }
  return entries.map((entry) => {
    try {
      return parseHostPort(entry);
    } catch (error) {
      const message = error instanceof PalyraError ? error.message : 'invalid address';
      return fail('pairing_uri_bad_address', `pairing URI gateway ${message}`, { address: excerpt(entry) });
    }
  });
}

/**
 * Parses and checks a pairing URI. Every failure is a PalyraError with a `pairing_uri_*` code; fields are checked in
 * the order v, m, t, ca, gw, k, exp, n, and expiry against `now` last (a malformed URI is reported as malformed).
 */
export function parsePairingUri(text: string, options: { readonly now: number }): PairingUri {
  assertUnixMs(options.now);
  if (text.length === 0) fail('pairing_uri_invalid', 'pairing URI is empty');
  if (text.length > MAX_PAIRING_URI_LENGTH) {
    fail('pairing_uri_invalid', `pairing URI is longer than ${MAX_PAIRING_URI_LENGTH} characters`);
  }
  if (!URI_CHARS.test(text)) {
    fail('pairing_uri_invalid', 'pairing URI contains whitespace, a fragment or characters not allowed in a URI');
  }
  // Safe to lower-case: the text is ASCII by now.
  if (text.slice(0, URI_PREFIX.length).toLowerCase() !== URI_PREFIX) {
    fail('pairing_uri_invalid', `not a pairing URI: expected ${URI_PREFIX}…`);
  }
  const params = splitQuery(text.slice(URI_PREFIX.length));

  const version = decodedField(params, 'v', 'pairing_uri_unsupported_version');
  if (version !== '1') {
    fail(
      'pairing_uri_unsupported_version',
      version === undefined
        ? 'pairing URI has no version (v)'
        : `pairing URI version '${excerpt(version)}' is not supported`,
    );
  }

  const method = decodedField(params, 'm', 'pairing_uri_bad_method');
  if (method !== 'qr') fail('pairing_uri_bad_method', 'pairing URI method (m) must be qr');

  const token = decodedField(params, 't', 'pairing_uri_bad_token') ?? '';
  checkToken(token);

  const caPin = decodedField(params, 'ca', 'pairing_uri_bad_pin') ?? '';
  checkCaPin(caPin);

  const gateways = parseGatewayList(decodedField(params, 'gw', 'pairing_uri_bad_address') ?? '');

  const kind = decodedField(params, 'k', 'pairing_uri_bad_kind') ?? '';
  checkKind(kind);

  const expText = decodedField(params, 'exp', 'pairing_uri_bad_expiry') ?? '';
  const expiresAtUnixS = /^[1-9][0-9]{0,15}$/.test(expText) ? Number(expText) : -1;
  checkExpiry(expiresAtUnixS);

  const name = decodedField(params, 'n', 'pairing_uri_bad_name') ?? null;
  if (name !== null) checkName(name);

  if (expiresAtUnixS * 1000 <= options.now) {
    fail('pairing_uri_expired', 'the pairing code in this URI has expired; ask the operator for a new one', {
      expiresAtUnixS,
    });
  }
  return { version: 1, gateways, method: 'qr', token, caPin, kind, expiresAtUnixS, name };
}

function trimAsciiWhitespace(text: string): string {
  const isSpace = (i: number): boolean => ' \t\n\r'.includes(text.charAt(i));
  let start = 0;
  let end = text.length;
  while (start < end && isSpace(start)) start++;
  while (end > start && isSpace(end - 1)) end--;
  return text.slice(start, end);
}

/** A bare token as the reference's QR holds it: 16..128 printable ASCII characters, no spaces. */
const BARE_TOKEN = /^[\x21-\x7e]{16,128}$/;
/** Anything that starts like a URI scheme is parsed as a URI, never taken for a bare token. */
const SCHEME_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * What a QR scanner read: a pairing URI, or a bare reference token (PROTOCOL.md §3; the caller then asks for the
 * gateway address). Surrounding ASCII whitespace is trimmed, since scanners often append a newline; anything else
 * fails with the URI parser's error.
 */
export function parseScannedPayload(text: string, options: { readonly now: number }): ScannedPayload {
  assertUnixMs(options.now);
  const trimmed = trimAsciiWhitespace(text);
  if (BARE_TOKEN.test(trimmed) && !SCHEME_PREFIX.test(trimmed)) return { type: 'token', token: trimmed };
  return { type: 'uri', uri: parsePairingUri(trimmed, options) };
}
