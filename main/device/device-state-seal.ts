/**
 * The integrity seal of a device's `device.v1.json` (PROTOCOL.md §13). The file stays readable JSON with two more
 * members:
 *
 *   generation  integer >= 1, one more than the generation of the write before it
 *   mac         lowercase hex HMAC-SHA256(K, UTF-8(canonical JSON of every other member, `generation` included))
 *
 * with K = HKDF-SHA256(ikm = the 32-byte state secret kept beside the device's other secrets, salt = empty,
 * info = "palyra device state v1", length 32). Canonical JSON: no whitespace, object members sorted by their keys'
 * UTF-16 code units, strings and numbers as JSON.stringify writes them.
 *
 * Whoever lacks the state secret can neither change a member nor forge a MAC; the generation, also kept with the
 * secret, tells a restored older copy from the latest one (the store compares them).
 */

import { toHex, utf8 } from '../core/bytes.js';
import { hkdfSha256, hmacSha256 } from '../core/crypto.js';

/** Bytes of the random state secret the MAC key is derived from. */
export const STATE_SECRET_BYTES = 32;
/** HKDF info of the MAC key. */
export const STATE_MAC_INFO = 'palyra device state v1';
export const GENERATION_MEMBER = 'generation';
export const MAC_MEMBER = 'mac';

const HEX_MAC = /^[0-9a-f]{64}$/;

/** Canonical JSON of a JSON value (see the module comment); anything JSON cannot carry is refused. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonical JSON has no spelling for a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  if (typeof value === 'object') {
    const record = value as Record<string, unknown>;
    // Keys compared as UTF-16 code units, the order JavaScript's default sort gives strings.
    const keys = Object.keys(record).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`;
  }
  throw new TypeError(`canonical JSON has no spelling for a ${typeof value}`);
}

/** The HMAC key for device.v1.json from the state secret. */
export function deriveStateMacKey(secret: Uint8Array): Uint8Array {
  if (secret.length !== STATE_SECRET_BYTES) throw new RangeError(`the state secret must be ${STATE_SECRET_BYTES} bytes`);
  return hkdfSha256(secret, new Uint8Array(0), utf8(STATE_MAC_INFO), 32);
}

/** A copy without the named members (own properties only, so even `__proto__` stays a plain member). */
function without(record: Readonly<Record<string, unknown>>, ...names: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([key]) => !names.includes(key)));
}

/** The document's own members, without its seal (for showing an unchecked file). */
export function withoutSeal(document: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return without(document, MAC_MEMBER, GENERATION_MEMBER);
}

function macOf(body: Readonly<Record<string, unknown>>, key: Uint8Array): string {
  return toHex(hmacSha256(key, utf8(canonicalJson(body))));
}

/** `fields` with `generation` and its `mac` appended, ready to be written. */
export function sealDocument(fields: Readonly<Record<string, unknown>>, generation: number, key: Uint8Array): Record<string, unknown> {
  if (!Number.isSafeInteger(generation) || generation < 1) throw new RangeError('a sealed generation is a positive integer');
  const body = { ...without(fields, MAC_MEMBER, GENERATION_MEMBER), [GENERATION_MEMBER]: generation };
  return { ...body, [MAC_MEMBER]: macOf(body, key) };
}

export function hasSeal(document: Readonly<Record<string, unknown>>): boolean {
  return Object.hasOwn(document, MAC_MEMBER);
}

export type OpenedSeal =
  | { readonly ok: true; readonly generation: number; readonly fields: Record<string, unknown> }
  | { readonly ok: false; readonly problem: string };

/**
 * Checks the seal of a parsed document: the MAC first (over everything but itself), then the generation's form.
 * `fields` is the document without `generation` and `mac`. Compares in constant time.
 */
export function openSealedDocument(document: Readonly<Record<string, unknown>>, key: Uint8Array): OpenedSeal {
  const mac = document[MAC_MEMBER];
  if (typeof mac !== 'string' || !HEX_MAC.test(mac)) return { ok: false, problem: 'has a malformed mac (expected 64 lowercase hex digits)' };
  const body = without(document, MAC_MEMBER);
  let expected: string;
  try {
    expected = macOf(body, key);
  } catch {
    return { ok: false, problem: 'holds a value JSON cannot carry' };
  }
  if (!equalHex(expected, mac)) return { ok: false, problem: 'fails its MAC check' };
  const generation = body[GENERATION_MEMBER];
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 1) {
    return { ok: false, problem: 'has a malformed generation' };
  }
  return { ok: true, generation, fields: without(body, GENERATION_MEMBER) };
}

/** Constant-time comparison of two hex strings of the same (public) length. */
function equalHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
