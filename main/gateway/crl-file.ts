/**
 * The published CRL: `crl.pem` in the gateway state directory, a plain (unencrypted) PEM `X509 CRL` that OpenSSL and
 * web servers read as it is. It is public data, rewritten atomically (temp file, fsync, rename) whenever the revoked
 * serials change and whenever the gateway re-issues its CRL; the state directory itself stays 0700.
 */

import { statSync } from 'node:fs';
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
  const file = crlFilePath(stateDir);
  const before = fileStamp(file);
  const known = knownNumbers.get(file);
  if (before !== null && known?.stamp === before.key && known.settled) return known.crlNumber;
  let crlNumber: number | undefined;
  try {
    crlNumber = (await readCrlFile(stateDir))?.info.crlNumber;
  } catch {
    return undefined;
  }
  // Remembered only when the file did not change while it was read.
  const after = fileStamp(file);
  if (after !== null && before !== null && after.key === before.key) knownNumbers.set(file, { stamp: after.key, crlNumber, settled: Date.now() - after.mtimeMs > RACY_MS });
  else knownNumbers.delete(file);
  return crlNumber;
}

/**
 * The cRLNumber last read from each CRL file, with the file's identity then (device, inode, size, nanosecond mtime
 * and ctime), so a pairing, which leaves the CRL as it was, costs a stat instead of a read and a DER parse. Trusted
 * only once `settled`: the file's mtime was more than RACY_MS old when it was read, because file times move in
 * clock ticks and an edit within the tick of the last write would leave every field of the stat as it was (the
 * "racy clean" case); until then each call reads the file again.
 */
const knownNumbers = new Map<string, { stamp: string; crlNumber: number | undefined; settled: boolean }>();
const RACY_MS = 1_000;

function fileStamp(file: string): { key: string; mtimeMs: number } | null {
  try {
    const s = statSync(file, { bigint: true });
    return { key: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`, mtimeMs: Number(s.mtimeNs / 1_000_000n) };
  } catch {
    return null;
  }
}

export async function writeCrlFile(stateDir: string, pem: string): Promise<void> {
  const file = crlFilePath(stateDir);
  knownNumbers.delete(file);
  await writeFileAtomic(file, utf8(pem));
}
