/**
 * Certificate revocation lists signed by the gateway CA, so revoked client certificates fail at the TLS handshake
 * (PROTOCOL.md §5). Node's `crl` option reads only PEM labelled `X509 CRL` (OpenSSL's name); the X.509 library
 * writes `CRL`, so the PEM is encoded here.
 */

import 'reflect-metadata';
import {
  AuthorityKeyIdentifierExtension,
  Extension,
  SubjectKeyIdentifierExtension,
  X509Crl,
  X509CrlGenerator,
} from '@peculiar/x509';
import { decodeCertificate, toCertificateTime } from './certificates.js';
import { decodeDerInteger, encodeDerInteger, requireSignedDerShape } from './der.js';
import { PalyraError } from './errors.js';
import { decodePemBlocks, encodePem } from './pem.js';
import { P256_SIGNING_ALGORITHM } from './x509-keys.js';

export const CRL_PEM_LABEL = 'X509 CRL';
/**
 * A CRL past its nextUpdate fails every client handshake, so the gateway re-issues it on each revocation and each
 * server-certificate renewal; a week leaves room for a gateway that was asleep.
 */
export const DEFAULT_CRL_VALIDITY_MS = 7 * 86_400_000;
/** id-ce-cRLNumber (RFC 5280 §5.2.3). */
const CRL_NUMBER_OID = '2.5.29.20';
/** Hex of a positive serial: at most 20 octets (RFC 5280 §4.1.2.2). */
const SERIAL_HEX = /^(?:[0-9a-f]{2}){1,21}$/;

export interface RevokedSerial {
  /** Hex serial as `CertificateInfo.serialHex` writes it (any case, leading zero octets ignored). */
  readonly serialHex: string;
  readonly revokedAtUnixMs: number;
}

export interface CrlInfo {
  readonly issuerCommonName: string;
  readonly thisUpdateUnixMs: number;
  readonly nextUpdateUnixMs?: number;
  readonly crlNumber?: number;
  readonly revoked: RevokedSerial[];
}

/** Lowercase hex without leading zero octets, the form the X.509 library and `parseCertificate` report. */
export function normalizeSerialHex(serialHex: string): string {
  let hex = serialHex.trim().toLowerCase();
  if (!SERIAL_HEX.test(hex)) {
    throw new PalyraError('invalid_argument', 'certificate serial must be an even-length hex string of at most 21 octets');
  }
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  if (/^0+$/.test(hex)) throw new PalyraError('invalid_argument', 'certificate serial must be positive');
  return hex;
}

export interface CreateCrlOptions {
  readonly issuerCertificate: string | Uint8Array;
  readonly issuerPrivateKey: CryptoKey;
  readonly revoked: readonly RevokedSerial[];
  readonly now: number;
  /** nextUpdate − thisUpdate; default DEFAULT_CRL_VALIDITY_MS. */
  readonly nextUpdateMs?: number;
  /** Monotonic CRL number; default the unix second of `now`, which grows with every re-issue. */
  readonly crlNumber?: number;
}

/** PEM (`X509 CRL`) listing `revoked`, thisUpdate = now (to the second). Duplicate serials keep the earliest date. */
export async function createCrl(options: CreateCrlOptions): Promise<string> {
  const thisUpdate = toCertificateTime(options.now, 'now');
  const validityMs = options.nextUpdateMs ?? DEFAULT_CRL_VALIDITY_MS;
  if (!Number.isSafeInteger(validityMs) || validityMs < 1000) {
    throw new PalyraError('invalid_argument', 'CRL nextUpdateMs must be an integer of at least 1000');
  }
  const nextUpdate = toCertificateTime(thisUpdate.getTime() + validityMs, 'CRL nextUpdate');
  const crlNumber = options.crlNumber ?? Math.floor(thisUpdate.getTime() / 1000);
  const earliest = new Map<string, number>();
  for (const entry of options.revoked) {
    const serial = normalizeSerialHex(entry.serialHex);
    const at = toCertificateTime(entry.revokedAtUnixMs, 'revokedAtUnixMs').getTime();
    earliest.set(serial, Math.min(at, earliest.get(serial) ?? at));
  }
  const issuer = decodeCertificate(options.issuerCertificate);
  const issuerKeyId = issuer.getExtension(SubjectKeyIdentifierExtension)?.keyId;
  try {
    const authorityKeyId =
      issuerKeyId === undefined
        ? await AuthorityKeyIdentifierExtension.create(issuer.publicKey, false, globalThis.crypto)
        : new AuthorityKeyIdentifierExtension(issuerKeyId);
    const crl = await X509CrlGenerator.create(
      {
        issuer: issuer.subjectName,
        thisUpdate,
        nextUpdate,
        entries: [...earliest].map(([serialNumber, at]) => ({ serialNumber, revocationDate: new Date(at) })),
        extensions: [authorityKeyId, new Extension(CRL_NUMBER_OID, false, new Uint8Array(encodeDerInteger(crlNumber)))],
        signingKey: options.issuerPrivateKey,
        signingAlgorithm: P256_SIGNING_ALGORITHM,
      },
      globalThis.crypto,
    );
    return encodePem(new Uint8Array(crl.rawData), CRL_PEM_LABEL);
  } catch (cause) {
    throw new PalyraError('cryptographic', 'could not sign the certificate revocation list', { cause });
  }
}

/**
 * The cRLNumber of the next CRL: thisUpdate in unix seconds, but always above the last number published, so two
 * CRLs issued within one second (or after the clock stepped back) still carry increasing numbers (RFC 5280 §5.2.3).
 */
export function nextCrlNumber(now: number, lastPublished: number | undefined): number {
  const seconds = Math.floor(toCertificateTime(now, 'now').getTime() / 1000);
  if (lastPublished === undefined) return seconds;
  if (!Number.isSafeInteger(lastPublished) || lastPublished < 0) throw new PalyraError('invalid_argument', 'the last CRL number must be a non-negative integer');
  return Math.max(seconds, lastPublished + 1);
}

export interface RevocationEntry {
  /** '' when the certificate's serial is unknown (migrated state): such entries are covered by fingerprint only. */
  readonly serialHex: string;
  readonly revokedAtUnixMs: number;
  readonly expiresAtUnixMs: number;
}

/**
 * What a CRL issued at `now` lists: revoked certificates with a known serial that have not expired yet (an expired
 * certificate fails the handshake anyway, and RFC 5280 §3.3 lets a CRL drop it).
 */
export function crlEntriesAt(entries: readonly RevocationEntry[], now: number): RevokedSerial[] {
  return entries
    .filter((e) => e.serialHex !== '' && e.expiresAtUnixMs > now)
    .map((e) => ({ serialHex: e.serialHex, revokedAtUnixMs: e.revokedAtUnixMs }));
}

/** The DER of a CRL given as PEM (`X509 CRL`, or the X.509 library's `CRL`) or as DER. */
export function crlDer(pemOrDer: string | Uint8Array): Uint8Array {
  if (typeof pemOrDer !== 'string') return pemOrDer;
  // Accept the library's `CRL` label too, in case a CRL was written by other tooling.
  const block = decodePemBlocks(pemOrDer, 'certificate_parsing_failed').find((b) => b.label === CRL_PEM_LABEL || b.label === 'CRL');
  if (block === undefined) throw new PalyraError('certificate_parsing_failed', `no PEM block labelled '${CRL_PEM_LABEL}'`);
  return block.der;
}

function decodeCrl(pemOrDer: string | Uint8Array): X509Crl {
  const der = crlDer(pemOrDer);
  requireSignedDerShape(der, 'certificate_parsing_failed', 'CRL');
  try {
    return new X509Crl(new Uint8Array(der));
  } catch (cause) {
    throw new PalyraError('certificate_parsing_failed', 'not a valid X.509 CRL', { cause });
  }
}

export function parseCrl(pemOrDer: string | Uint8Array): CrlInfo {
  const crl = decodeCrl(pemOrDer);
  try {
    const numberExtension = crl.getExtension(CRL_NUMBER_OID);
    const crlNumber = numberExtension === null ? undefined : decodeDerInteger(new Uint8Array(numberExtension.value));
    const nextUpdate = crl.nextUpdate;
    return {
      issuerCommonName: crl.issuerName.getField('CN')[0] ?? '',
      thisUpdateUnixMs: crl.thisUpdate.getTime(),
      ...(nextUpdate === undefined ? {} : { nextUpdateUnixMs: nextUpdate.getTime() }),
      ...(crlNumber === undefined ? {} : { crlNumber }),
      revoked: crl.entries.map((e) => ({ serialHex: e.serialNumber.toLowerCase(), revokedAtUnixMs: e.revocationDate.getTime() })),
    };
  } catch (cause) {
    throw new PalyraError('certificate_parsing_failed', 'CRL has malformed fields', { cause });
  }
}

/** True when `issuerCertificate`'s key signed the CRL. */
export async function verifyCrlSignature(pemOrDer: string | Uint8Array, issuerCertificate: string | Uint8Array): Promise<boolean> {
  const crl = decodeCrl(pemOrDer);
  const issuer = decodeCertificate(issuerCertificate);
  try {
    return await crl.verify({ publicKey: issuer.publicKey }, globalThis.crypto);
  } catch {
    return false;
  }
}
