/**
 * A device's PKCS#10 request and its client certificate built as DER directly (PROTOCOL.md §2, REFERENCE.md §1.3): the few fixed fields of
 * the one certificate shape the gateway issues on every pairing, encoded exactly as @peculiar/x509 encodes them
 * (test/unit/core/x509-build.test.ts compares the bytes), then signed with WebCrypto. The general X.509 library
 * costs ≈ 20× more per certificate (ASN.1 schema objects, a re-parse of every input); CA and server certificates,
 * made once, still go through it.
 */

import { sha1 } from '@noble/hashes/legacy.js';
import { concatBytes, fromHex, utf8 } from './bytes.js';
import { PalyraError } from './errors.js';

// --- DER encoding ----------------------------------------------------------------------------------------------

function header(tag: number, length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(tag, length);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Uint8Array.of(tag, 0x80 | octets.length, ...octets);
}

export function derTlv(tag: number, ...content: readonly Uint8Array[]): Uint8Array {
  const body = concatBytes(...content);
  return concatBytes(header(tag, body.length), body);
}

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const BOOLEAN_TRUE = Uint8Array.of(0x01, 0x01, 0xff);
const UTF8_STRING = 0x0c;
const PRINTABLE_STRING = 0x13;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

/** DER of an OID's dotted form (only the few this module writes). */
function oid(dotted: string): Uint8Array {
  const [first, second, ...rest] = dotted.split('.').map(Number);
  const out: number[] = [40 * first! + second!];
  for (const arc of rest) {
    const septets: number[] = [];
    for (let value = arc; ; value = Math.floor(value / 128)) {
      septets.unshift((value % 128) | (septets.length === 0 ? 0 : 0x80));
      if (value < 128) break;
    }
    out.push(...septets);
  }
  return derTlv(0x06, Uint8Array.from(out));
}

/** A non-negative integer given as big-endian bytes, minimally encoded (a 0x00 before a set high bit). */
export function derUnsignedInteger(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const body = bytes.subarray(start);
  return derTlv(INTEGER, body[0]! >= 0x80 ? Uint8Array.of(0, ...body) : body);
}

/** X.520 PrintableString alphabet; other text is UTF8String (what @peculiar/x509 chooses too). */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function directoryString(text: string): Uint8Array {
  return derTlv(PRINTABLE.test(text) ? PRINTABLE_STRING : UTF8_STRING, utf8(text));
}

/** RFC 5280 §4.1.2.5: UTCTime for 1950–2049, GeneralizedTime otherwise; whole seconds, Z. */
function derTime(ms: number): Uint8Array {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  const two = (n: number): string => String(n).padStart(2, '0');
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  return year >= 1950 && year < 2050 ? derTlv(UTC_TIME, utf8(`${two(year % 100)}${rest}`)) : derTlv(GENERALIZED_TIME, utf8(`${String(year).padStart(4, '0')}${rest}`));
}

// --- the device certificate ------------------------------------------------------------------------------------

const OID_COMMON_NAME = oid('2.5.4.3');
const OID_ORGANIZATION = oid('2.5.4.10');
const OID_BASIC_CONSTRAINTS = oid('2.5.29.19');
const OID_KEY_USAGE = oid('2.5.29.15');
const OID_EXTENDED_KEY_USAGE = oid('2.5.29.37');
const OID_SUBJECT_ALT_NAME = oid('2.5.29.17');
const OID_SUBJECT_KEY_ID = oid('2.5.29.14');
const OID_AUTHORITY_KEY_ID = oid('2.5.29.35');
const OID_CLIENT_AUTH = oid('1.3.6.1.5.5.7.3.2');
const OID_EXTENSION_REQUEST = oid('1.2.840.113549.1.9.14');
/** AlgorithmIdentifier ecdsa-with-SHA256, parameters absent (RFC 5758). */
export const ECDSA_WITH_SHA256_ALGORITHM = derTlv(SEQUENCE, oid('1.2.840.10045.4.3.2'));
/** AlgorithmIdentifier id-ecPublicKey with the prime256v1 parameter: the only key a device certificate carries. */
export const P256_SPKI_ALGORITHM = derTlv(SEQUENCE, oid('1.2.840.10045.2.1'), oid('1.2.840.10045.3.1.7'));

function extension(id: Uint8Array, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? derTlv(SEQUENCE, id, BOOLEAN_TRUE, derTlv(OCTET_STRING, value)) : derTlv(SEQUENCE, id, derTlv(OCTET_STRING, value));
}

/** Name: one RDN per attribute, in order (CN, then O), as the CA's leaves always had. */
function name(attributes: ReadonlyArray<readonly [Uint8Array, string]>): Uint8Array {
  return derTlv(SEQUENCE, ...attributes.map(([type, value]) => derTlv(SET, derTlv(SEQUENCE, type, directoryString(value)))));
}

export interface DeviceCertificateFields {
  /** 1..20 octets, big-endian, positive (the CA's serials are 16 random octets, first octet 0x01..0x7f). */
  readonly serial: Uint8Array;
  /** The issuer's Name DER, copied from the CA certificate's subject. */
  readonly issuerNameDer: Uint8Array;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly commonName: string;
  readonly organization: string;
  /** The device URI (`urn:palyra:device:{id}`), the SAN's one uniformResourceIdentifier. */
  readonly uri: string;
  /** The uncompressed SEC1 P-256 point (65 bytes) certified. */
  readonly publicPoint: Uint8Array;
  /** The CA's key identifier (its SubjectKeyIdentifier), the AuthorityKeyIdentifier's keyIdentifier. */
  readonly authorityKeyId: Uint8Array;
}

/**
 * TBSCertificate of a device client certificate: v3, ecdsa-with-SHA256, the fields above, and the extensions
 * basicConstraints (critical, CA:false), keyUsage (critical, digitalSignature), extKeyUsage clientAuth, the URI SAN,
 * subjectKeyIdentifier (SHA-1 of the point, RFC 5280 §4.2.1.2 method 1) and authorityKeyIdentifier.
 */
export function deviceCertificateTbs(fields: DeviceCertificateFields): Uint8Array {
  const { serial, publicPoint } = fields;
  if (serial.length < 1 || serial.length > 20 || serial[0]! >= 0x80 || serial.every((b) => b === 0)) {
    throw new PalyraError('invalid_argument', 'serial must be 1..20 octets, positive');
  }
  const spki = p256Spki(publicPoint);
  const extensions = [
    extension(OID_BASIC_CONSTRAINTS, true, derTlv(SEQUENCE)),
    // KeyUsage BIT STRING: digitalSignature (bit 0), 7 unused bits.
    extension(OID_KEY_USAGE, true, Uint8Array.of(BIT_STRING, 0x02, 0x07, 0x80)),
    extension(OID_EXTENDED_KEY_USAGE, false, derTlv(SEQUENCE, OID_CLIENT_AUTH)),
    extension(OID_SUBJECT_ALT_NAME, false, derTlv(SEQUENCE, derTlv(0x86, utf8(fields.uri)))),
    extension(OID_SUBJECT_KEY_ID, false, derTlv(OCTET_STRING, sha1(publicPoint))),
    extension(OID_AUTHORITY_KEY_ID, false, derTlv(SEQUENCE, derTlv(0x80, fields.authorityKeyId))),
  ];
  return derTlv(
    SEQUENCE,
    Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02), // [0] EXPLICIT version v3
    derTlv(INTEGER, serial),
    ECDSA_WITH_SHA256_ALGORITHM,
    fields.issuerNameDer,
    derTlv(SEQUENCE, derTime(fields.notBeforeMs), derTime(fields.notAfterMs)),
    name([
      [OID_COMMON_NAME, fields.commonName],
      [OID_ORGANIZATION, fields.organization],
    ]),
    spki,
    derTlv(0xa3, derTlv(SEQUENCE, ...extensions)),
  );
}

/** SubjectPublicKeyInfo of an uncompressed P-256 point. */
function p256Spki(publicPoint: Uint8Array): Uint8Array {
  if (publicPoint.length !== 65 || publicPoint[0] !== 0x04) throw new PalyraError('invalid_key_material', 'expected an uncompressed P-256 point');
  return derTlv(SEQUENCE, P256_SPKI_ALGORITHM, derTlv(BIT_STRING, Uint8Array.of(0), publicPoint));
}

/**
 * CertificationRequestInfo of a device's request (RFC 2986): version 0, subject CN then O, the P-256 key, and one
 * attribute, extensionRequest with the device URI SAN — what @peculiar/x509's generator wrote for the same input.
 */
export function deviceCsrInfo(fields: { readonly commonName: string; readonly organization: string; readonly uri: string; readonly publicPoint: Uint8Array }): Uint8Array {
  const san = extension(OID_SUBJECT_ALT_NAME, false, derTlv(SEQUENCE, derTlv(0x86, utf8(fields.uri))));
  return derTlv(
    SEQUENCE,
    Uint8Array.of(INTEGER, 0x01, 0x00),
    name([
      [OID_COMMON_NAME, fields.commonName],
      [OID_ORGANIZATION, fields.organization],
    ]),
    p256Spki(fields.publicPoint),
    derTlv(0xa0, derTlv(SEQUENCE, OID_EXTENSION_REQUEST, derTlv(SET, derTlv(SEQUENCE, san)))),
  );
}

/** ECDSA-Sig-Value DER (SEQUENCE { r, s }) of a 64-byte IEEE P1363 `r ‖ s` signature, as WebCrypto returns it. */
export function p1363ToDer(signature: Uint8Array): Uint8Array {
  if (signature.length !== 64) throw new PalyraError('cryptographic', 'expected a 64-byte P-256 signature');
  return derTlv(SEQUENCE, derUnsignedInteger(signature.subarray(0, 32)), derUnsignedInteger(signature.subarray(32)));
}

/** Certificate (and CertificationRequest) ::= SEQUENCE { signed part, ecdsa-with-SHA256, BIT STRING signature }. */
export function signedCertificate(tbs: Uint8Array, signatureDer: Uint8Array): Uint8Array {
  return derTlv(SEQUENCE, tbs, ECDSA_WITH_SHA256_ALGORITHM, derTlv(BIT_STRING, Uint8Array.of(0), signatureDer));
}

/** Hex → bytes for a key identifier kept as hex by the X.509 library. */
export function keyIdBytes(hex: string): Uint8Array {
  return fromHex(hex);
}
