/** The two DER details the X.509 library leaves to us: exact element framing and small INTEGER encoding. */

import { PalyraError, type ErrorCode } from './errors.js';

/** Largest length-of-length we accept (4 bytes = 4 GiB, far above any certificate). */
const MAX_LENGTH_OCTETS = 4;

/** Total byte length (header + content) of the DER element at the start of `bytes`, or undefined if malformed. */
export function derElementLength(bytes: Uint8Array): number | undefined {
  const tag = bytes[0];
  const first = bytes[1];
  if (tag === undefined || first === undefined || (tag & 0x1f) === 0x1f) return undefined;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > MAX_LENGTH_OCTETS || bytes.length < 2 + octets) return undefined;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + bytes[2 + i]!;
  // DER: long form only when needed, and without leading zero octets.
  if (length < 0x80 || bytes[2] === 0) return undefined;
  return 2 + octets + length;
}

/**
 * Throws unless `bytes` is exactly one DER element: the X.509 parser silently ignores trailing bytes, and a
 * fingerprint must cover exactly what was verified.
 */
export function requireSingleDerElement(bytes: Uint8Array, errorCode: ErrorCode, what: string): void {
  if (derElementLength(bytes) !== bytes.length) {
    throw new PalyraError(errorCode, `${what} is not a single DER element`, { details: { length: bytes.length } });
  }
}

/** Header length of the DER element at the start of `bytes` (its content starts there), or undefined. */
function derHeaderLength(bytes: Uint8Array): number | undefined {
  const first = bytes[1];
  if (derElementLength(bytes) === undefined || first === undefined) return undefined;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

/** Content octets of the DER element at the start of `bytes`, or undefined if malformed or truncated. */
export function derContent(bytes: Uint8Array): Uint8Array | undefined {
  const total = derElementLength(bytes);
  const header = derHeaderLength(bytes);
  if (total === undefined || header === undefined || total > bytes.length) return undefined;
  return bytes.subarray(header, total);
}

/** The child elements of a constructed element (SEQUENCE, SET), or undefined if any is malformed. */
export function derChildren(bytes: Uint8Array): Uint8Array[] | undefined {
  const total = derElementLength(bytes);
  const header = derHeaderLength(bytes);
  if (total === undefined || header === undefined || total > bytes.length || (bytes[0]! & 0x20) === 0) return undefined;
  const children: Uint8Array[] = [];
  for (let offset = header; offset < total; ) {
    const length = derElementLength(bytes.subarray(offset, total));
    if (length === undefined || offset + length > total) return undefined;
    children.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return children;
}

/** SEQUENCE tag, BIT STRING tag. */
const DER_SEQUENCE = 0x30;
const DER_BIT_STRING = 0x03;

/**
 * Certificates, CSRs and CRLs are SEQUENCE { signed part, algorithm, BIT STRING signature }. The X.509 library
 * ignores the signature's unused-bits octet, which lies outside what is signed, so a second spelling of the same
 * object would verify; this pins it to 0 (with one exact DER element, no trailing bytes).
 */
export function requireSignedDerShape(bytes: Uint8Array, errorCode: ErrorCode, what: string): void {
  requireSingleDerElement(bytes, errorCode, what);
  const children = bytes[0] === DER_SEQUENCE ? derChildren(bytes) : undefined;
  const signature = children?.[2];
  const signatureHeader = signature === undefined ? undefined : derHeaderLength(signature);
  if (
    children?.length !== 3 ||
    signature === undefined ||
    signature[0] !== DER_BIT_STRING ||
    signatureHeader === undefined ||
    signature[signatureHeader] !== 0
  ) {
    throw new PalyraError(errorCode, `${what} is not a signed DER structure`);
  }
}

/** DER INTEGER of a non-negative safe integer (minimal two's-complement octets). */
export function encodeDerInteger(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new PalyraError('invalid_argument', 'DER integer out of range');
  const octets: number[] = [];
  let rest = value;
  do {
    octets.unshift(rest % 256);
    rest = Math.floor(rest / 256);
  } while (rest > 0);
  if (octets[0]! >= 0x80) octets.unshift(0);
  return Uint8Array.from([0x02, octets.length, ...octets]);
}

/** Value of a DER INTEGER that fits a safe integer and is non-negative, else undefined. */
export function decodeDerInteger(bytes: Uint8Array): number | undefined {
  const length = bytes[1];
  if (bytes[0] !== 0x02 || length === undefined || length === 0 || length > 7 || bytes.length !== 2 + length) return undefined;
  if (bytes[2]! >= 0x80) return undefined;
  let value = 0;
  for (let i = 2; i < bytes.length; i++) value = value * 256 + bytes[i]!;
  return Number.isSafeInteger(value) ? value : undefined;
}
