/**
 * A device's display name: what the operator sees on the approval card and in device lists (PROTOCOL.md §4,
 * CompletePairingSessionRequest.device_name). The device proposes it; it proves nothing, so it only has to be
 * printable on one line: trimmed, NFC-normalized, 1–64 characters (code points), no control, line-separator or
 * bidirectional-override characters (those could forge a line or reorder what the operator reads).
 */

import type { ClientKind } from './client-kind.js';
import { PalyraError } from './errors.js';

/** Longest display name, in Unicode code points. */
export const MAX_DEVICE_NAME_LENGTH = 64;
/** How many trailing characters of the device id the derived name and the collision suffix use. */
export const DEVICE_ID_SUFFIX_LENGTH = 6;

/** C0/C1 controls, line and paragraph separators, and the bidi embedding/override/isolate controls. */
const FORBIDDEN = /[\p{Cc}\p{Zl}\p{Zp}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

/**
 * The stored form of a name typed by a person: trimmed and NFC. Empty, too long or unprintable → `invalid_argument`
 * (nothing is stored).
 */
export function normalizeDeviceName(input: string): string {
  const name = input.normalize('NFC').trim();
  if (name.length === 0) throw new PalyraError('invalid_argument', 'device name must not be empty');
  if (codePointCount(name) > MAX_DEVICE_NAME_LENGTH) {
    throw new PalyraError('invalid_argument', `device name must be at most ${MAX_DEVICE_NAME_LENGTH} characters`);
  }
  if (FORBIDDEN.test(name)) throw new PalyraError('invalid_argument', 'device name must not contain control characters');
  return name;
}

/** Unicode code points in `text` (a surrogate pair counts once). */
function codePointCount(text: string): number {
  return text.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '_').length;
}

/** The last `DEVICE_ID_SUFFIX_LENGTH` characters of a device id. */
export function deviceIdSuffix(deviceId: string): string {
  return deviceId.slice(-DEVICE_ID_SUFFIX_LENGTH);
}

/** The name the gateway gives a device that sent none: "<client_kind> <last 6 of device id>". */
export function defaultDeviceName(clientKind: ClientKind, deviceId: string): string {
  return `${clientKind} ${deviceIdSuffix(deviceId)}`;
}

/** What a Complete call's `device_name` stands for: the normalized name, or the derived default when it is empty. */
export function resolveDeviceName(input: string, clientKind: ClientKind, deviceId: string): string {
  return input.trim().length === 0 ? defaultDeviceName(clientKind, deviceId) : normalizeDeviceName(input);
}
