/** The short authentication string both sides show for the operator to compare (PROTOCOL.md §3). */

import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './bytes.js';
import { PalyraError } from './errors.js';

/** Domain tag hashed in front of the transcript MAC. */
export const SAS_DOMAIN = 'palyra-sas-v1';
/** Number of decimal digits shown. */
export const SAS_DIGITS = 6;
/** Byte length of the transcript MAC the SAS is derived from. */
const MAC_LENGTH = 32;

/** First 4 bytes of SHA-256("palyra-sas-v1" ‖ mac) as a big-endian u32, mod 10⁶, zero-padded to 6 digits. */
export function computeSas(transcriptMac: Uint8Array): string {
  if (!(transcriptMac instanceof Uint8Array) || transcriptMac.length !== MAC_LENGTH) {
    throw new PalyraError('invalid_argument', `transcript MAC must be ${MAC_LENGTH} bytes`);
  }
  const digest = sha256(concatBytes(utf8(SAS_DOMAIN), transcriptMac));
  const value = new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0, false);
  return (value % 10 ** SAS_DIGITS).toString().padStart(SAS_DIGITS, '0');
}
