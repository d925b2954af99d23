/** PEM (RFC 7468) encoding and decoding, strict base64, no Buffer so the core also runs in a renderer. */

import { fromBase64, toBase64 } from './bytes.js';
import { PalyraError, type ErrorCode } from './errors.js';

export const CERTIFICATE_PEM_LABEL = 'CERTIFICATE';
export const PRIVATE_KEY_PEM_LABEL = 'PRIVATE KEY';
export const CERTIFICATE_REQUEST_PEM_LABEL = 'CERTIFICATE REQUEST';

/** Base64 characters per PEM line (RFC 7468 §2). */
const PEM_LINE_LENGTH = 64;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

export function encodePem(der: Uint8Array, label: string): string {
  const body = toBase64(der);
  const lines: string[] = [];
  for (let i = 0; i < body.length; i += PEM_LINE_LENGTH) lines.push(body.slice(i, i + PEM_LINE_LENGTH));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Failures carry the code of what the caller was reading, so a bad certificate PEM is `certificate_parsing_failed`. */
function errorCodeForLabel(label: string | undefined): ErrorCode {
  if (label === CERTIFICATE_PEM_LABEL) return 'certificate_parsing_failed';
  if (label === CERTIFICATE_REQUEST_PEM_LABEL) return 'csr_invalid';
  if (label?.endsWith(PRIVATE_KEY_PEM_LABEL) === true) return 'private_key_parsing_failed';
  return 'invalid_argument';
}

/** Every block in order; text outside blocks (OpenSSL's "Bag Attributes", comments) is ignored. */
export function decodePemBlocks(text: string, errorCode: ErrorCode = 'invalid_argument'): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(PEM_BLOCK)) {
    const [, begin, body, end] = match;
    if (begin === undefined || body === undefined || begin !== end) {
      throw new PalyraError(errorCode, 'PEM block has mismatched BEGIN/END labels');
    }
    let der: Uint8Array;
    try {
      der = fromBase64(body.replace(/\s+/g, ''));
    } catch (cause) {
      throw new PalyraError(errorCode, `PEM block '${begin}' is not valid base64`, { cause });
    }
    if (der.length === 0) throw new PalyraError(errorCode, `PEM block '${begin}' is empty`);
    blocks.push({ label: begin, der });
  }
  return blocks;
}

/** DER of the first block labelled `label` (or of the first block at all when no label is given). */
export function pemToDer(pem: string, label?: string): Uint8Array {
  const errorCode = errorCodeForLabel(label);
  const block = decodePemBlocks(pem, errorCode).find((b) => label === undefined || b.label === label);
  if (block === undefined) {
    throw new PalyraError(errorCode, label === undefined ? 'no PEM block found' : `no PEM block labelled '${label}'`);
  }
  return block.der;
}
