/** Byte helpers shared by the core: encodings (on @scure/base), concatenation and constant-time comparison. */

import { base64, base64nopad, base64urlnopad, hex, type BytesCoder } from '@scure/base';
import { PalyraError } from './errors.js';

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** Lowercase hex, as every fingerprint and hash on the wire and at rest is written. */
export function toHex(bytes: Uint8Array): string {
  return hex.encode(bytes);
}

/** Either case in, like the reference; anything but an even number of hex digits is `invalid_argument`. */
export function fromHex(text: string): Uint8Array {
  return decodeWith(hex, text, 'hex string');
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function u32le(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new PalyraError('invalid_argument', 'u32 out of range');
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/**
 * Constant-time equality over max(len): a length difference is folded into the accumulator, so unequal lengths
 * are unequal without an early exit (REFERENCE.md §2.5).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

// --- base64 (standard alphabet and base64url) on @scure/base, no dependency on Buffer so the core also runs in a
// renderer. Decoding is canonical: the leftover bits of the last character must be zero, so one value has one
// spelling.

/** Standard alphabet; `pad` false gives the reference's "standard, no padding" form (REFERENCE.md §1.2). */
export function toBase64(bytes: Uint8Array, pad = true): string {
  return (pad ? base64 : base64nopad).encode(bytes);
}

/** Padded or unpadded; padding, when present, must be the exact padding of the length. */
export function fromBase64(text: string): Uint8Array {
  return decodeWith(text.endsWith('=') ? base64 : base64nopad, text, 'base64');
}

/** base64url without padding (CA pins in pairing URIs). */
export function toBase64Url(bytes: Uint8Array): string {
  return base64urlnopad.encode(bytes);
}

export function fromBase64Url(text: string): Uint8Array {
  if (text.includes('=')) throw new PalyraError('invalid_argument', 'base64url must not be padded');
  return decodeWith(base64urlnopad, text, 'base64url');
}

function decodeWith(coder: BytesCoder, text: string, what: string): Uint8Array {
  if (typeof text !== 'string') throw new PalyraError('invalid_argument', `${what} must be a string`);
  try {
    return coder.decode(text);
  } catch (cause) {
    throw new PalyraError('invalid_argument', `not a valid ${what}`, { cause });
  }
}
