/** Reading X.509 certificates: fingerprints, CA pins, the fields the gateway and device act on, rotation timing. */

import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  SubjectAlternativeNameExtension,
  X509Certificate,
} from '@peculiar/x509';
import { sha256 } from '@noble/hashes/sha2.js';
import { toBase64Url, toHex } from './bytes.js';
import { requireSignedDerShape } from './der.js';
import { PalyraError } from './errors.js';
import { isCanonicalId } from './ids.js';
import { isIpAddress, normalizeIpAddress } from './net-address.js';
import { CERTIFICATE_PEM_LABEL, pemToDer } from './pem.js';

export { pemToDer } from './pem.js';

/** Client leaf validity: 24 h, renewed over mTLS (REFERENCE.md §2.8). */
export const DEFAULT_CERT_VALIDITY_MS = 86_400_000;
/** Renew when a certificate has 10 minutes or less left. */
export const DEFAULT_ROTATION_THRESHOLD_MS = 600_000;
/** SAN URI that binds a client certificate to its device: `urn:palyra:device:{device_id}`. */
export const DEVICE_URI_PREFIX = 'urn:palyra:device:';

export interface CertificateInfo {
  /** Lowercase hex SHA-256 of the certificate DER. */
  readonly fingerprint: string;
  /** Lowercase hex, no leading zero octet. */
  readonly serialHex: string;
  readonly subjectCommonName: string;
  readonly issuerCommonName: string;
  readonly notBeforeUnixMs: number;
  readonly notAfterUnixMs: number;
  readonly dnsNames: string[];
  /** Canonical text (dotted IPv4, RFC 5952 IPv6). */
  readonly ipAddresses: string[];
  readonly uris: string[];
  /** From a `urn:palyra:device:{id}` SAN holding a canonical id. */
  readonly deviceId?: string;
  readonly isCa: boolean;
  /** `serverAuth`, `clientAuth`, or the OID of any other extended key usage. */
  readonly extendedKeyUsages: string[];
  /** base64url SHA-256 of the SubjectPublicKeyInfo DER (see `spkiPin`). */
  readonly spkiPin: string;
}

/** DER of a certificate given as PEM (first CERTIFICATE block) or DER. */
export function certificateDer(pemOrDer: string | Uint8Array): Uint8Array {
  return typeof pemOrDer === 'string' ? pemToDer(pemOrDer, CERTIFICATE_PEM_LABEL) : pemOrDer;
}

/** Lowercase hex SHA-256 of the first certificate's DER: the identity the gateway indexes devices by. */
export function certificateFingerprint(pemOrDer: string | Uint8Array): string {
  return toHex(sha256(certificateDer(pemOrDer)));
}

/** Parses one certificate with the X.509 library; for core modules that need more than `parseCertificate`. */
export function decodeCertificate(pemOrDer: string | Uint8Array): X509Certificate {
  const der = certificateDer(pemOrDer);
  requireSignedDerShape(der, 'certificate_parsing_failed', 'certificate');
  try {
    // Copied: the library wants an ArrayBuffer-backed view.
    return new X509Certificate(new Uint8Array(der));
  } catch (cause) {
    throw new PalyraError('certificate_parsing_failed', 'certificate is not a valid X.509 certificate', { cause });
  }
}

/** base64url (no padding) SHA-256 of SubjectPublicKeyInfo DER: the `ca` pin of a pairing URI (PROTOCOL.md §3). */
export function spkiPinFromSpkiDer(spkiDer: Uint8Array): string {
  return toBase64Url(sha256(spkiDer));
}

export function spkiPin(certPemOrDer: string | Uint8Array): string {
  return spkiPinFromSpkiDer(new Uint8Array(decodeCertificate(certPemOrDer).publicKey.rawData));
}

const EKU_NAMES: Readonly<Record<string, string>> = {
  [ExtendedKeyUsage.serverAuth]: 'serverAuth',
  [ExtendedKeyUsage.clientAuth]: 'clientAuth',
};

function commonNameOf(name: X509Certificate['subjectName']): string {
  return name.getField('CN')[0] ?? '';
}

export function parseCertificate(pemOrDer: string | Uint8Array): CertificateInfo {
  const der = certificateDer(pemOrDer);
  const cert = decodeCertificate(der);
  try {
    const dnsNames: string[] = [];
    const ipAddresses: string[] = [];
    const uris: string[] = [];
    for (const name of cert.getExtension(SubjectAlternativeNameExtension)?.names.items ?? []) {
      if (name.type === 'dns') dnsNames.push(name.value);
      else if (name.type === 'ip') ipAddresses.push(isIpAddress(name.value) ? normalizeIpAddress(name.value) : name.value);
      else if (name.type === 'url') uris.push(name.value);
    }
    const deviceId = uris
      .filter((uri) => uri.startsWith(DEVICE_URI_PREFIX))
      .map((uri) => uri.slice(DEVICE_URI_PREFIX.length))
      .find(isCanonicalId);
    const usages = cert.getExtension(ExtendedKeyUsageExtension)?.usages ?? [];
    return {
      fingerprint: toHex(sha256(der)),
      serialHex: cert.serialNumber.toLowerCase(),
      subjectCommonName: commonNameOf(cert.subjectName),
      issuerCommonName: commonNameOf(cert.issuerName),
      notBeforeUnixMs: cert.notBefore.getTime(),
      notAfterUnixMs: cert.notAfter.getTime(),
      dnsNames,
      ipAddresses,
      uris,
      ...(deviceId === undefined ? {} : { deviceId }),
      isCa: cert.getExtension(BasicConstraintsExtension)?.ca === true,
      extendedKeyUsages: usages.map((usage) => EKU_NAMES[String(usage)] ?? String(usage)),
      spkiPin: spkiPinFromSpkiDer(new Uint8Array(cert.publicKey.rawData)),
    };
  } catch (cause) {
    if (cause instanceof PalyraError) throw cause;
    throw new PalyraError('certificate_parsing_failed', 'certificate has malformed extensions', { cause });
  }
}

/** The reference's rule: renew when `expires_at <= now + threshold` (REFERENCE.md §2.9). */
export function shouldRotate(expiresAtUnixMs: number, now: number, thresholdMs: number): boolean {
  if (!Number.isFinite(expiresAtUnixMs) || !Number.isFinite(now) || !Number.isFinite(thresholdMs) || thresholdMs < 0) {
    throw new PalyraError('invalid_argument', 'shouldRotate needs finite times and a non-negative threshold');
  }
  return expiresAtUnixMs <= now + thresholdMs;
}

/** X.509 times have one-second resolution: validate a unix-ms time and floor it to the second it will be written as. */
export function toCertificateTime(unixMs: number, what: string): Date {
  // UTCTime/GeneralizedTime cover years 1950..9999; 253402300799000 is 9999-12-31T23:59:59Z.
  if (!Number.isSafeInteger(unixMs) || unixMs < 0 || unixMs > 253_402_300_799_000) {
    throw new PalyraError('invalid_argument', `${what} must be a unix time in milliseconds`, { details: { value: unixMs } });
  }
  return new Date(Math.floor(unixMs / 1000) * 1000);
}
