/**
 * The published CRL: `crl.pem` in the gateway state directory, a plain (unencrypted) PEM `X509 CRL` that OpenSSL and
 * web servers read as it is. It is public data, rewritten atomically (temp file, fsync, rename) whenever the revoked
 * serials change and whenever the gateway re-issues its CRL; the state directory itself stays 0700.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { utf8 } from '../core/bytes.js';
import { parseCrl } from '../core/crl.js';
import type { CrlInfo } from '../core/crl.js';
import { PalyraError } from '../core/errors.js';
import { errnoOf, writeFileAtomic } from '../store/atomic-file.js';

export const CRL_FILE_NAME = 'crl.pem';

export function crlFilePath(stateDir: string): string {
  return path.join(stateDir, CRL_FILE_NAME);
}

/** The published CRL as written: null when there is none yet. A file that is not a CRL is `certificate_parsing_failed`. */
export async function readCrlFile(stateDir: string): Promise<{ pem: string; info: CrlInfo } | null> {
  const file = crlFilePath(stateDir);
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw new PalyraError('store_io_failed', `failed to read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { path: file } });
  }
  try {
    return { pem, info: parseCrl(pem) };
  } catch (cause) {
    throw new PalyraError('certificate_parsing_failed', `${file} is not a readable CRL`, { cause, details: { path: file } });
  }
}

/**
 * The cRLNumber of the published CRL, for numbering the next one. A missing or unreadable file counts as none:
 * the next CRL replaces it anyway, and numbers from the clock stay above any earlier one.
 */
export async function publishedCrlNumber(stateDir: string): Promise<number | undefined> {
  try {
    return (await readCrlFile(stateDir))?.info.crlNumber;
  } catch {
    return undefined;
  }
}

export async function writeCrlFile(stateDir: string, pem: string): Promise<void> {
  await writeFileAtomic(crlFilePath(stateDir), utf8(pem));
}
