/**
 * Network addresses, in one place: IP literals (text ↔ bytes, canonical forms for certificate SANs), RFC 1123 host
 * names, `HOST:PORT` as every command line, settings file, pairing URI and gateway listener spells it, and what
 * counts as loopback. Strict on purpose: the X.509 library and the WHATWG URL parser accept junk such as `1a.2.3.4`
 * or IPv4 shorthands, which would let two strings mean one address.
 */

import { PalyraError } from './errors.js';

export interface GatewayAddress {
  /** Host name, dotted IPv4, or IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

const IPV4_BYTES = 4;
const IPV6_BYTES = 16;
const IPV6_GROUPS = 8;
const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const PORT_DIGITS = /^[1-9][0-9]{0,4}$/;
/** RFC 1123 limit on a host name's length. */
const MAX_HOSTNAME_LENGTH = 253;

/** Shortens user input before it goes into a message. */
function excerpt(text: string): string {
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/**
 * The TLS server name of every gateway port (REFERENCE §5.2): the server certificate carries it as a DNS SAN and
 * every client checks the certificate against it, whatever address it dialled.
 */
export const GATEWAY_TLS_SERVER_NAME = 'palyrad-node-rpc';

// --- IP literals -------------------------------------------------------------------------------------------------

/** Dotted-quad IPv4 only: four decimal octets, no leading zeros (which some resolvers read as octal). */
function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== IPV4_BYTES) return undefined;
  const out = new Uint8Array(IPV4_BYTES);
  for (const [i, part] of parts.entries()) {
    if (!IPV4_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    out[i] = value;
  }
  return out;
}

/** `allowIpv4Tail`: only the last group of the whole address may be written as dotted IPv4. */
function parseIpv6Groups(text: string, allowIpv4Tail: boolean): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  const parts = text.split(':');
  for (const [i, part] of parts.entries()) {
    if (allowIpv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (HEX_GROUP.test(part)) {
      groups.push(Number.parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

/** RFC 4291 §2.2 text forms (at most one `::`, optional trailing dotted IPv4); no zone ids, no brackets. */
function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const compressed = halves.length === 2;
  const head = parseIpv6Groups(halves[0]!, !compressed);
  const tail = compressed ? parseIpv6Groups(halves[1]!, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = IPV6_GROUPS - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(IPV6_BYTES);
  for (const [i, g] of groups.entries()) {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  }
  return out;
}

export function isIpv4Literal(text: string): boolean {
  return parseIpv4(text) !== undefined;
}

export function isIpv6Literal(text: string): boolean {
  return parseIpv6(text) !== undefined;
}

export function isIpAddress(text: string): boolean {
  return (text.includes(':') ? parseIpv6(text) : parseIpv4(text)) !== undefined;
}

/** 4 or 16 bytes; anything else (host names, zone ids, brackets, CIDR) → invalid_argument. */
export function parseIpAddress(text: string): Uint8Array {
  const bytes = text.includes(':') ? parseIpv6(text) : parseIpv4(text);
  if (bytes === undefined) throw new PalyraError('invalid_argument', `'${excerpt(text)}' is not an IP address`);
  return bytes;
}

/** IPv4 dotted quad; IPv6 per RFC 5952 (lower-case hex, the longest run of two or more zero groups compressed). */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === IPV4_BYTES) return Array.from(bytes).join('.');
  if (bytes.length !== IPV6_BYTES) throw new PalyraError('invalid_argument', 'an IP address is 4 or 16 bytes');
  const groups: number[] = [];
  for (let i = 0; i < IPV6_BYTES; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < IPV6_GROUPS; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < IPV6_GROUPS && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Canonical text of an address, so `::1` and `0:0:0:0:0:0:0:1` compare equal. */
export function normalizeIpAddress(text: string): string {
  return formatIpAddress(parseIpAddress(text));
}

// --- host names --------------------------------------------------------------------------------------------------

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens; not numeric at the top level. */
export function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > MAX_HOSTNAME_LENGTH) return false;
  const labels = text.split('.');
  if (!labels.every((l) => HOST_LABEL.test(l))) return false;
  // An all-digit last label would read as an IPv4 shorthand somewhere ("1.2.3", "3232235777").
  return !/^[0-9]+$/.test(labels[labels.length - 1]!);
}

/**
 * Whether `host` (a host name or an IP literal without brackets) names this machine only: `localhost`, 127.0.0.0/8,
 * `::1`, and IPv4-mapped loopback (`::ffff:127.0.0.1`). A host name that merely starts with `127.` is not.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  const bytes = h.includes(':') ? parseIpv6(h) : parseIpv4(h);
  if (bytes === undefined) return false;
  if (bytes.length === IPV4_BYTES) return bytes[0] === 127;
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return bytes[12] === 127;
  return bytes.subarray(0, 15).every((b) => b === 0) && bytes[15] === 1;
}

// --- HOST:PORT ---------------------------------------------------------------------------------------------------

export interface ParseHostPortOptions {
  /** Accept port 0 ("any free port"), as `--listen` does; never valid in a pairing URI. */
  readonly allowPortZero?: boolean;
}

/**
 * `HOST:PORT`, `IPV4:PORT` or `[IPV6]:PORT` (brackets required). Port is 1..65535 in decimal without leading zeros.
 * Throws `invalid_argument` (details.address: an excerpt of the input); the URI parser reports the same failures as
 * `pairing_uri_bad_address`.
 */
export function parseHostPort(text: string, options: ParseHostPortOptions = {}): GatewayAddress {
  const bad = (why: string): never => {
    throw new PalyraError('invalid_argument', `invalid address '${excerpt(text)}': ${why}`, { details: { address: excerpt(text) } });
  };
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return bad('expected [IPV6]:PORT');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIpv6Literal(host)) return bad('not an IPv6 address');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return bad('expected HOST:PORT');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return bad('an IPv6 address must be in brackets');
    if (!isIpv4Literal(host) && !isHostname(host)) return bad('not a host name or IPv4 address');
  }
  const allowPortZero = options.allowPortZero === true;
  const port = portText === '0' && allowPortZero ? 0 : PORT_DIGITS.test(portText) ? Number(portText) : -1;
  if (!Number.isInteger(port) || port > 65_535 || (port < 1 && !(allowPortZero && port === 0))) {
    return bad(`port must be ${allowPortZero ? 0 : 1} to 65535`);
  }
  return { host, port };
}

/** `host:port`, bracketing IPv6 hosts. */
export function formatHostPort(address: GatewayAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Parses and re-formats, so equal addresses have one spelling. */
export function normalizeHostPort(text: string, options: ParseHostPortOptions = {}): string {
  return formatHostPort(parseHostPort(text, options));
}
