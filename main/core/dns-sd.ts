/**
 * The DNS-SD records (RFC 6763) a gateway announces over multicast DNS (RFC 6762), and the reading of them back into
 * "gateways found nearby". Pure: no sockets, time passed in. The service is `_palyra._tcp.local`; one instance per
 * gateway, with SRV (host and port), TXT (below) and A/AAAA records of its host.
 *
 * TXT keys (RFC 6763 §6): `txtvers=1`, `name` (the gateway's display name), `pin` (the first CA_PIN_PREFIX_LENGTH
 * characters of the base64url CA SPKI pin), `pv` (the pairing protocol versions it speaks, comma-separated). Nothing
 * else: no secret and nothing from the state beyond that. All of it is a hint — a device still trusts only the CA pin
 * it checks in the pairing handshake.
 */

import { PalyraError } from './errors.js';
import { formatHostPort, isIpv4Literal, isIpv6Literal, normalizeIpAddress } from './net-address.js';

export const PALYRA_SERVICE_TYPE = '_palyra._tcp.local';
/** RFC 6763 §9: the meta-query that lists every service type on the link. */
export const SERVICE_TYPE_ENUMERATION = '_services._dns-sd._udp.local';
export const TXT_VERSION = '1';
/** Characters of the base64url CA pin carried in TXT `pin`: enough to tell gateways apart, never enough to trust. */
export const CA_PIN_PREFIX_LENGTH = 16;
/** RFC 6762 §10: 120 s for records naming a host or its addresses; we use it for all, so a vanished gateway ages out. */
export const RECORD_TTL_S = 120;
/** One DNS label: 63 bytes (RFC 1035 §2.3.4). */
const MAX_LABEL_BYTES = 63;
/** One TXT string: a length byte, so at most 255 bytes. */
const MAX_TXT_STRING_BYTES = 255;
/** Display names are cut here (the pairing URI's `n` limit). */
const MAX_NAME_LENGTH = 64;
/** A gateway announcing more than this is ignored past it (the QR code's address limit is lower still). */
const MAX_ADDRESSES_PER_GATEWAY = 16;
const PIN_PREFIX = /^[A-Za-z0-9_-]{16}$/;
const PROTOCOL_VERSION = /^[1-9][0-9]{0,3}$/;

/** The subset of DNS resource records we send and read, shaped as the multicast-dns / dns-packet library has them. */
export type DnsRecord =
  | { name: string; type: 'PTR'; ttl: number; data: string }
  | { name: string; type: 'SRV'; ttl: number; flush?: boolean; data: { priority: number; weight: number; port: number; target: string } }
  | { name: string; type: 'TXT'; ttl: number; flush?: boolean; data: Uint8Array[] }
  | { name: string; type: 'A' | 'AAAA'; ttl: number; flush?: boolean; data: string };

export interface GatewayAnnouncement {
  /** Display name (TXT `name`); also the start of the instance label. */
  readonly name: string;
  /** The base64url SPKI pin of the gateway CA; only its prefix is announced. */
  readonly caPin: string;
  readonly port: number;
  /** IPv4/IPv6 literals the gateway is reachable on; others are left out. */
  readonly ips: readonly string[];
  /** A name for this machine (its first label is used); the announced host is `<label>-palyra.local`. */
  readonly hostname: string;
  readonly protocolVersions: readonly number[];
}

/** A gateway as `palyra gateway discover --json` and the Pair view show it. */
export interface DiscoveredGateway {
  readonly name: string;
  /** `host:port` values to dial, IPv4 first. */
  readonly addresses: string[];
  readonly ca_pin_prefix: string;
  readonly protocol_versions: number[];
  /** The SRV target, e.g. `office-palyra.local`. */
  readonly host: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/** Cuts `text` to at most `max` UTF-8 bytes without splitting a character. */
function cutToBytes(text: string, max: number): string {
  let out = '';
  for (const ch of text) {
    if (byteLength(out + ch) > max) break;
    out += ch;
  }
  return out;
}

/** At most `max` code points (a name is shown, not parsed; cutting a combined emoji is acceptable). */
function cutChars(text: string, max: number): string {
  return Array.from(text).slice(0, max).join('');
}

/**
 * The instance label: the name with dots and control characters replaced (the DNS library splits names on dots), cut
 * to fit, then the first 8 pin characters so two gateways of one name stay two instances.
 */
export function instanceLabel(name: string, caPin: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f.\\]/g, ' ').replace(/\s+/g, ' ').trim() || 'Palyra gateway';
  const suffix = ` [${caPin.slice(0, 8)}]`;
  return `${cutToBytes(clean, MAX_LABEL_BYTES - byteLength(suffix)).trimEnd()}${suffix}`;
}

/** `<first label of the host name, as a DNS label>-palyra.local`: ours, so it never collides with the OS's own record. */
export function announcedHost(hostname: string): string {
  const first = (hostname.split('.')[0] ?? '').toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '');
  return `${(first || 'gateway').slice(0, MAX_LABEL_BYTES - 7)}-palyra.local`;
}

export function encodeTxt(entries: readonly (readonly [string, string])[]): Uint8Array[] {
  return entries.map(([key, value]) => {
    const bytes = encoder.encode(`${key}=${value}`);
    if (bytes.length > MAX_TXT_STRING_BYTES) throw new PalyraError('invalid_argument', `TXT entry '${key}' is longer than ${MAX_TXT_STRING_BYTES} bytes`);
    return bytes;
  });
}

/**
 * RFC 6763 §6.3–6.5: keys are case-insensitive and the first occurrence wins; an entry without `=` is a boolean key
 * (value ''); an empty key or invalid UTF-8 drops the entry.
 */
export function decodeTxt(entries: readonly Uint8Array[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const bytes of entries) {
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      continue;
    }
    const eq = text.indexOf('=');
    const key = (eq < 0 ? text : text.slice(0, eq)).toLowerCase();
    if (key === '' || out.has(key)) continue;
    out.set(key, eq < 0 ? '' : text.slice(eq + 1));
  }
  return out;
}

export interface AnnouncementRecords {
  readonly instance: string;
  readonly host: string;
  readonly ptr: DnsRecord;
  readonly srv: DnsRecord;
  readonly txt: DnsRecord;
  readonly addresses: DnsRecord[];
}

/** The records of one gateway; `ttl` 0 makes them a goodbye (RFC 6762 §10.1). */
export function announcementRecords(a: GatewayAnnouncement, ttl: number = RECORD_TTL_S): AnnouncementRecords {
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65_535) throw new PalyraError('invalid_argument', 'an announced port is 1 to 65535');
  if (a.caPin.length < CA_PIN_PREFIX_LENGTH) throw new PalyraError('invalid_argument', 'the CA pin is too short to announce');
  const instance = `${instanceLabel(a.name, a.caPin)}.${PALYRA_SERVICE_TYPE}`;
  const host = announcedHost(a.hostname);
  const name = cutChars(a.name.trim(), MAX_NAME_LENGTH);
  const txt = encodeTxt([
    ['txtvers', TXT_VERSION],
    ['name', name],
    ['pin', a.caPin.slice(0, CA_PIN_PREFIX_LENGTH)],
    ['pv', a.protocolVersions.join(',')],
  ]);
  const v4 = a.ips.filter((ip) => isIpv4Literal(ip));
  const v6 = a.ips.filter((ip) => isIpv6Literal(ip)).map((ip) => normalizeIpAddress(ip));
  return {
    instance,
    host,
    ptr: { name: PALYRA_SERVICE_TYPE, type: 'PTR', ttl, data: instance },
    srv: { name: instance, type: 'SRV', ttl, flush: true, data: { priority: 0, weight: 0, port: a.port, target: host } },
    txt: { name: instance, type: 'TXT', ttl, flush: true, data: txt },
    addresses: [
      ...v4.map((ip): DnsRecord => ({ name: host, type: 'A', ttl, flush: true, data: ip })),
      ...v6.map((ip): DnsRecord => ({ name: host, type: 'AAAA', ttl, flush: true, data: ip })),
    ],
  };
}

export interface DnsQuestion {
  readonly name: string;
  readonly type: string;
}

/**
 * What to answer to one mDNS query, or null when none of its questions is about us. Additional records carry the
 * rest (RFC 6763 §12) so a browser needs one round trip.
 */
export function answerQuery(records: AnnouncementRecords, questions: readonly DnsQuestion[]): { answers: DnsRecord[]; additionals: DnsRecord[] } | null {
  const answers: DnsRecord[] = [];
  const add = (r: DnsRecord): void => {
    if (!answers.includes(r)) answers.push(r);
  };
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
  for (const q of questions) {
    const any = q.type === 'ANY';
    if (same(q.name, PALYRA_SERVICE_TYPE) && (any || q.type === 'PTR')) add(records.ptr);
    if (same(q.name, SERVICE_TYPE_ENUMERATION) && (any || q.type === 'PTR')) {
      add({ name: SERVICE_TYPE_ENUMERATION, type: 'PTR', ttl: records.ptr.ttl, data: PALYRA_SERVICE_TYPE });
    }
    if (same(q.name, records.instance)) {
      if (any || q.type === 'SRV') add(records.srv);
      if (any || q.type === 'TXT') add(records.txt);
    }
    if (same(q.name, records.host)) {
      for (const r of records.addresses) if (any || r.type === q.type) add(r);
    }
  }
  if (answers.length === 0) return null;
  const all = [records.ptr, records.srv, records.txt, ...records.addresses];
  const onlyEnumeration = answers.every((r) => r.name === SERVICE_TYPE_ENUMERATION);
  const additionals = onlyEnumeration ? [] : all.filter((r) => !answers.includes(r));
  return { answers, additionals };
}

/** A record as received: the library's decoding, which we check field by field before use. */
export interface ReceivedRecord {
  readonly name?: unknown;
  readonly type?: unknown;
  readonly ttl?: unknown;
  readonly data?: unknown;
}

interface Cached<T> {
  value: T;
  expiresAt: number;
}

/**
 * The records seen while browsing, by name, each until its TTL runs out; a TTL of 0 removes it at once (a
 * gateway's goodbye). `gateways(now)` joins PTR → SRV + TXT → A/AAAA into the gateways found.
 */
export class DiscoveryCache {
  readonly #instances = new Map<string, Cached<string>>();
  readonly #srv = new Map<string, Cached<{ port: number; target: string }>>();
  readonly #txt = new Map<string, Cached<Map<string, string>>>();
  readonly #addresses = new Map<string, Map<string, Cached<string>>>();

  /** Adds the records of one response (answers and additionals alike); malformed ones are skipped. */
  add(records: readonly ReceivedRecord[], now: number): void {
    for (const r of records) {
      if (typeof r.name !== 'string' || typeof r.ttl !== 'number' || !Number.isFinite(r.ttl) || r.ttl < 0) continue;
      const key = r.name.toLowerCase();
      const expiresAt = now + r.ttl * 1000;
      const put = <T>(map: Map<string, Cached<T>>, k: string, value: T): void => {
        if (r.ttl === 0) map.delete(k);
        else map.set(k, { value, expiresAt });
      };
      switch (r.type) {
        case 'PTR':
          if (key === PALYRA_SERVICE_TYPE && typeof r.data === 'string' && r.data.toLowerCase().endsWith(`.${PALYRA_SERVICE_TYPE}`)) {
            put(this.#instances, r.data.toLowerCase(), r.data);
          }
          break;
        case 'SRV': {
          const d = r.data as { port?: unknown; target?: unknown } | null;
          if (typeof d === 'object' && d !== null && typeof d.port === 'number' && Number.isInteger(d.port) && d.port >= 1 && d.port <= 65_535 && typeof d.target === 'string' && d.target !== '') {
            put(this.#srv, key, { port: d.port, target: d.target.toLowerCase() });
          }
          break;
        }
        case 'TXT':
          if (Array.isArray(r.data) && r.data.every((x) => x instanceof Uint8Array)) put(this.#txt, key, decodeTxt(r.data));
          break;
        case 'A':
        case 'AAAA': {
          if (typeof r.data !== 'string') break;
          const ok = r.type === 'A' ? isIpv4Literal(r.data) : isIpv6Literal(r.data);
          if (!ok) break;
          const ip = normalizeIpAddress(r.data);
          let byIp = this.#addresses.get(key);
          if (byIp === undefined) {
            byIp = new Map();
            this.#addresses.set(key, byIp);
          }
          put(byIp, ip, ip);
          break;
        }
        default:
          break;
      }
    }
  }

  /** The gateways whose PTR, SRV and TXT are all current and whose TXT is ours (`txtvers=1`, a pin prefix). */
  gateways(now: number): DiscoveredGateway[] {
    const live = <T>(c: Cached<T> | undefined): T | undefined => (c !== undefined && c.expiresAt > now ? c.value : undefined);
    const found: DiscoveredGateway[] = [];
    for (const [key, cached] of this.#instances) {
      if (live(cached) === undefined) continue;
      const srv = live(this.#srv.get(key));
      const txt = live(this.#txt.get(key));
      if (srv === undefined || txt === undefined) continue;
      if (txt.get('txtvers') !== TXT_VERSION) continue;
      const pin = txt.get('pin') ?? '';
      if (!PIN_PREFIX.test(pin)) continue;
      const versions = (txt.get('pv') ?? '').split(',').filter((v) => PROTOCOL_VERSION.test(v)).map(Number);
      const ips = [...(this.#addresses.get(srv.target)?.values() ?? [])].flatMap((c) => (c.expiresAt > now ? [c.value] : []));
      ips.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
      const name = cutChars(txt.get('name') ?? '', MAX_NAME_LENGTH);
      found.push({
        name,
        addresses: ips.slice(0, MAX_ADDRESSES_PER_GATEWAY).map((host) => formatHostPort({ host, port: srv.port })),
        ca_pin_prefix: pin,
        protocol_versions: [...new Set(versions)],
        host: srv.target,
      });
    }
    return found.sort((a, b) => a.name.localeCompare(b.name) || a.ca_pin_prefix.localeCompare(b.ca_pin_prefix));
  }
}
