/**
 * The gateway CA (PROTOCOL.md §2, REFERENCE.md §1.3–1.4): a self-signed ECDSA P-256 root that certifies device
 * client keys (from their CSRs) and the gateway's own server key, and signs the CRL.
 */

import 'reflect-metadata';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  type Extension,
  type JsonGeneralNames,
  type JsonName,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  type X509Certificate,
} from '@peculiar/x509';
import { constantTimeEqual, toHex } from './bytes.js';
import {
  certificateFingerprint,
  DEFAULT_CERT_VALIDITY_MS,
  decodeCertificate,
  DEVICE_URI_PREFIX,
  spkiPinFromSpkiDer,
  toCertificateTime,
} from './certificates.js';
import { createCrl, type RevokedSerial } from './crl.js';
import { deviceCommonName, DEVICE_ORGANIZATION, verifyCsr } from './csr.js';
import { derChildren } from './der.js';
import { PalyraError } from './errors.js';
import { validateCanonicalId } from './ids.js';
import { normalizeIpAddress } from './net-address.js';
import { CERTIFICATE_PEM_LABEL, encodePem } from './pem.js';
import { deviceCertificateTbs, keyIdBytes, p1363ToDer, signedCertificate } from './x509-build.js';
import {
  exportPrivateKeyPem,
  exportSpkiDer,
  generateP256KeyPair,
  importPrivateKeyPem,
  P256_SIGNING_ALGORITHM,
  subtleCrypto,
} from './x509-keys.js';

export const DEFAULT_CA_COMMON_NAME = 'Palyra Gateway CA';
export const CA_VALIDITY_YEARS = 10;
/** Always the first DNS SAN of a server certificate (REFERENCE.md §1.4). */
export const SERVER_LOCALHOST_NAME = 'localhost';
/** X.520 upper bound for a common name. */
const MAX_COMMON_NAME_LENGTH = 64;
/** RFC 1035 limit for a DNS name. */
const MAX_DNS_NAME_LENGTH = 253;
/** Serial numbers: 16 random octets (RFC 5280 asks for ≥ 64 bits of entropy, ≤ 20 octets). */
const SERIAL_BYTES = 16;

export interface StoredCertificateAuthority {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  /** Leaves issued so far (client and server); the next leaf gets sequence + 1. */
  readonly sequence: number;
}

export interface IssuedCertificate {
  /** CA sequence after this issue. */
  readonly sequence: number;
  /** `device:{device_id}` or `server:{common_name}`. */
  readonly subject: string;
  readonly certificatePem: string;
  readonly fingerprint: string;
  readonly serialHex: string;
  /** The certificate's notBefore: `now` floored to the second (a server certificate's lies SERVER_CERT_BACKDATE_MS earlier). */
  readonly issuedAtUnixMs: number;
  /** The certificate's notAfter, exactly as written in it. */
  readonly expiresAtUnixMs: number;
}

export interface IssuedCertificateWithKey extends IssuedCertificate {
  /** PKCS#8 PEM of the generated leaf key; the caller delivers it once and forgets it. */
  readonly privateKeyPem: string;
}

export interface ServerCertificateOptions {
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly now: number;
  readonly validityMs?: number;
}

function validateCommonName(commonName: string, what: string): string {
  const trimmed = commonName.trim();
  // Quotes and backslashes are rewritten by the X.509 library's name encoder, so they are refused outright.
  if (trimmed.length === 0 || trimmed.length > MAX_COMMON_NAME_LENGTH || /["\\\p{Cc}]/u.test(trimmed)) {
    throw new PalyraError('invalid_argument', `${what} must be 1..${MAX_COMMON_NAME_LENGTH} printable characters`, {
      details: { commonName },
    });
  }
  return trimmed;
}

function validateDnsName(name: string): string {
  if (name.length > MAX_DNS_NAME_LENGTH || !/^[A-Za-z0-9_*-]+(?:\.[A-Za-z0-9_-]+)*\.?$/.test(name)) {
    throw new PalyraError('invalid_argument', `'${name}' is not a DNS name`, { details: { dnsName: name } });
  }
  return name;
}

/** localhost, then the CN, then extras: trimmed, blanks skipped, de-duplicated ignoring case (first spelling wins). */
export function serverDnsNames(commonName: string, extra: readonly string[] = []): string[] {
  const seen = new Set<string>();
  const names: string[] = [];
  for (const raw of [SERVER_LOCALHOST_NAME, commonName, ...extra]) {
    const name = raw.trim();
    if (name.length === 0 || seen.has(name.toLowerCase())) continue;
    seen.add(name.toLowerCase());
    names.push(validateDnsName(name));
  }
  return names;
}

/** Canonical IPs in order, each once; blanks skipped. */
export function serverIpAddresses(ipAddresses: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const raw of ipAddresses) {
    const text = raw.trim();
    if (text.length === 0) continue;
    const ip = normalizeIpAddress(text);
    if (!out.includes(ip)) out.push(ip);
  }
  return out;
}

/** Positive, 16 octets, first octet non-zero so its DER is exactly 16 octets and its hex is 32 characters. */
function randomSerial(): Uint8Array {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes;
}

function randomSerialHex(): string {
  return toHex(randomSerial());
}

function validateValidityMs(validityMs: number): number {
  // Certificate times have one-second resolution; less than a second would give notAfter == notBefore.
  if (!Number.isSafeInteger(validityMs) || validityMs < 1000) {
    throw new PalyraError('invalid_argument', 'validityMs must be a positive integer of at least 1000', {
      details: { validityMs },
    });
  }
  return validityMs;
}

function validateSequence(sequence: number): void {
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new PalyraError('invalid_argument', 'CA sequence must be a non-negative integer', { details: { sequence } });
  }
}

function caNotAfter(notBefore: Date): Date {
  const notAfter = new Date(notBefore.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  return notAfter;
}

async function keyIdentifier(publicKey: CryptoKey): Promise<SubjectKeyIdentifierExtension> {
  return SubjectKeyIdentifierExtension.create(publicKey, false, globalThis.crypto);
}

/**
 * A new self-signed CA: notBefore SERVER_CERT_BACKDATE_MS before `now` (so the first server certificate can be
 * backdated too), valid until ten calendar years after `now`, keyCertSign + cRLSign + digitalSignature, CA:true.
 */
export async function createCertificateAuthority(options: {
  readonly now: number;
  readonly commonName?: string;
}): Promise<StoredCertificateAuthority> {
  const commonName = validateCommonName(options.commonName ?? DEFAULT_CA_COMMON_NAME, 'CA common name');
  const createdAt = toCertificateTime(options.now, 'now');
  const notBefore = new Date(Math.max(0, createdAt.getTime() - SERVER_CERT_BACKDATE_MS));
  const keys = await generateP256KeyPair();
  let certificate: X509Certificate;
  try {
    certificate = await X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: randomSerialHex(),
        name: [{ CN: [commonName] }] satisfies JsonName,
        notBefore,
        notAfter: caNotAfter(createdAt),
        keys,
        signingAlgorithm: P256_SIGNING_ALGORITHM,
        extensions: [
          new BasicConstraintsExtension(true, undefined, true),
          new KeyUsagesExtension(
            KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature,
            true,
          ),
          await keyIdentifier(keys.publicKey),
        ],
      },
      globalThis.crypto,
    );
  } catch (cause) {
    throw new PalyraError('cryptographic', 'could not create the gateway CA certificate', { cause });
  }
  return {
    certificatePem: encodePem(new Uint8Array(certificate.rawData), CERTIFICATE_PEM_LABEL),
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
    sequence: 0,
  };
}

interface LeafRequest {
  readonly subject: string;
  readonly name: JsonName;
  readonly publicKey: CryptoKey;
  readonly extensions: readonly Extension[];
  readonly now: number;
  readonly validityMs: number | undefined;
  /** How far notBefore lies before `now` (0 for device certificates). */
  readonly backdateMs?: number;
}

/**
 * A server certificate's notBefore lies this far in the past, so a device whose clock lags the gateway's by a few
 * minutes still accepts it. Device (client) certificates are not backdated: only the gateway, which issued them by
 * its own clock, checks them, and their notBefore is the "issued at" the device's renewal schedule reads.
 */
export const SERVER_CERT_BACKDATE_MS = 5 * 60_000;

export class CertificateAuthority {
  readonly certificatePem: string;
  /** Hex SHA-256 of the CA certificate DER. */
  readonly fingerprint: string;
  /** base64url SHA-256 of the CA SubjectPublicKeyInfo: the `ca` pin of pairing QR codes. */
  readonly spkiPin: string;
  readonly notAfterUnixMs: number;
  /** The CA certificate's notBefore. */
  readonly notBeforeUnixMs: number;
  readonly #certificate: X509Certificate;
  readonly #privateKey: CryptoKey;
  readonly #privateKeyPem: string;
  readonly #authorityKeyId: AuthorityKeyIdentifierExtension;
  /** The CA certificate's subject Name DER: every leaf's issuer, byte for byte. */
  readonly #subjectNameDer: Uint8Array;
  #sequence: number;

  private constructor(
    certificate: X509Certificate,
    privateKey: CryptoKey,
    privateKeyPem: string,
    authorityKeyId: AuthorityKeyIdentifierExtension,
    sequence: number,
  ) {
    const der = new Uint8Array(certificate.rawData);
    this.#certificate = certificate;
    this.#privateKey = privateKey;
    this.#privateKeyPem = privateKeyPem;
    this.#authorityKeyId = authorityKeyId;
    this.#sequence = sequence;
    const subjectNameDer = derChildren(derChildren(der)?.[0] ?? new Uint8Array(0))?.[5];
    if (subjectNameDer === undefined) throw new PalyraError('certificate_parsing_failed', 'the CA certificate has no subject');
    this.#subjectNameDer = subjectNameDer;
    this.certificatePem = encodePem(der, CERTIFICATE_PEM_LABEL);
    this.fingerprint = certificateFingerprint(der);
    this.spkiPin = spkiPinFromSpkiDer(new Uint8Array(certificate.publicKey.rawData));
    this.notAfterUnixMs = certificate.notAfter.getTime();
    this.notBeforeUnixMs = certificate.notBefore.getTime();
  }

  /** Checks the PEMs parse, the certificate is a CA and the key is the certificate's key. */
  static async load(stored: StoredCertificateAuthority): Promise<CertificateAuthority> {
    validateSequence(stored.sequence);
    const certificate = decodeCertificate(stored.certificatePem);
    if (certificate.getExtension(BasicConstraintsExtension)?.ca !== true) {
      throw new PalyraError('certificate_parsing_failed', 'the CA certificate is not marked CA:true');
    }
    const keys = await importPrivateKeyPem(stored.privateKeyPem);
    const keySpki = await exportSpkiDer(keys.publicKey);
    if (!constantTimeEqual(keySpki, new Uint8Array(certificate.publicKey.rawData))) {
      throw new PalyraError('invalid_key_material', 'the CA private key does not belong to the CA certificate');
    }
    // Leaves name the CA key the way the CA itself does; a CA without an SKI (older tooling) gets a computed one.
    const caKeyId = certificate.getExtension(SubjectKeyIdentifierExtension)?.keyId;
    const authorityKeyId =
      caKeyId === undefined
        ? await AuthorityKeyIdentifierExtension.create(keys.publicKey, false, globalThis.crypto)
        : new AuthorityKeyIdentifierExtension(caKeyId);
    return new CertificateAuthority(certificate, keys.privateKey, stored.privateKeyPem, authorityKeyId, stored.sequence);
  }

  get sequence(): number {
    return this.#sequence;
  }

  /**
   * This CA with its counter raised to at least `sequence` (never lowered), for a caller that reloaded a newer
   * persisted counter; the receiver is left unchanged.
   */
  withSequenceAtLeast(sequence: number): CertificateAuthority {
    validateSequence(sequence);
    if (sequence <= this.#sequence) return this;
    return new CertificateAuthority(this.#certificate, this.#privateKey, this.#privateKeyPem, this.#authorityKeyId, sequence);
  }

  toStored(): StoredCertificateAuthority {
    return { certificatePem: this.certificatePem, privateKeyPem: this.#privateKeyPem, sequence: this.#sequence };
  }

  /** Certifies the key of a device's CSR (P-256, self-signature checked) as that device's client certificate. */
  async issueClientCertificate(options: {
    readonly csrDer: Uint8Array;
    readonly deviceId: string;
    readonly now: number;
    readonly validityMs?: number;
  }): Promise<IssuedCertificate> {
    validateCanonicalId(options.deviceId);
    const csr = verifyCsr(options.csrDer);
    return this.#issueClient(csr.publicPoint, options.deviceId, options.now, options.validityMs);
  }

  /** Reference-compatible mode (`--allow-server-generated-keys`): the gateway makes the client key. */
  async issueClientCertificateWithGeneratedKey(options: {
    readonly deviceId: string;
    readonly now: number;
    readonly validityMs?: number;
  }): Promise<IssuedCertificateWithKey> {
    validateCanonicalId(options.deviceId);
    const keys = await generateP256KeyPair();
    const point = new Uint8Array(await subtleCrypto().exportKey('raw', keys.publicKey));
    const issued = await this.#issueClient(point, options.deviceId, options.now, options.validityMs);
    return { ...issued, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
  }

  /** The gateway's TLS server certificate with a fresh key; SANs per `serverDnsNames` and `serverIpAddresses`. */
  async issueServerCertificate(options: ServerCertificateOptions): Promise<IssuedCertificateWithKey> {
    const commonName = validateDnsName(validateCommonName(options.commonName, 'server common name'));
    const altNames: JsonGeneralNames = [
      ...serverDnsNames(commonName, options.dnsNames).map((value) => ({ type: 'dns' as const, value })),
      ...serverIpAddresses(options.ipAddresses).map((value) => ({ type: 'ip' as const, value })),
    ];
    const keys = await generateP256KeyPair();
    const issued = await this.#issue({
      subject: `server:${commonName}`,
      name: [{ CN: [commonName] }],
      publicKey: keys.publicKey,
      extensions: [
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
        new SubjectAlternativeNameExtension(altNames),
      ],
      now: options.now,
      validityMs: options.validityMs,
      backdateMs: SERVER_CERT_BACKDATE_MS,
    });
    return { ...issued, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
  }

  /** CRL signed by this CA (PEM labelled `X509 CRL`, loadable as Node's `crl` secure-context option). */
  async createCrl(options: {
    readonly revoked: readonly RevokedSerial[];
    readonly now: number;
    readonly nextUpdateMs?: number;
    readonly crlNumber?: number;
  }): Promise<string> {
    return createCrl({
      issuerCertificate: new Uint8Array(this.#certificate.rawData),
      issuerPrivateKey: this.#privateKey,
      revoked: options.revoked,
      now: options.now,
      ...(options.nextUpdateMs === undefined ? {} : { nextUpdateMs: options.nextUpdateMs }),
      ...(options.crlNumber === undefined ? {} : { crlNumber: options.crlNumber }),
    });
  }

  /** True when this CA's key signed `certificate` (signature only; validity and revocation are the caller's). */
  async hasIssued(certificate: string | Uint8Array): Promise<boolean> {
    const leaf = decodeCertificate(certificate);
    try {
      return await leaf.verify({ publicKey: this.#certificate.publicKey, signatureOnly: true }, globalThis.crypto);
    } catch {
      return false;
    }
  }

  /**
   * A device client certificate, built as DER (x509-build.ts: the same bytes @peculiar/x509 wrote) and signed with
   * the CA key through WebCrypto. Subject CN=`Palyra Device {id}`, O=`Palyra`, the device URI SAN, clientAuth.
   */
  async #issueClient(publicPoint: Uint8Array, deviceId: string, now: number, validityMs?: number): Promise<IssuedCertificate> {
    const { notBefore, notAfter } = this.#validity(now, validityMs, 0);
    const keyId = this.#authorityKeyId.keyId;
    if (keyId === undefined) throw new PalyraError('certificate_parsing_failed', 'the CA has no key identifier');
    const serial = randomSerial();
    const tbs = deviceCertificateTbs({
      serial,
      issuerNameDer: this.#subjectNameDer,
      notBeforeMs: notBefore.getTime(),
      notAfterMs: notAfter.getTime(),
      commonName: deviceCommonName(deviceId),
      organization: DEVICE_ORGANIZATION,
      uri: `${DEVICE_URI_PREFIX}${deviceId}`,
      publicPoint,
      authorityKeyId: keyIdBytes(keyId),
    });
    let der: Uint8Array;
    try {
      const signature = new Uint8Array(await subtleCrypto().sign(P256_SIGNING_ALGORITHM, this.#privateKey, Uint8Array.from(tbs)));
      der = signedCertificate(tbs, p1363ToDer(signature));
    } catch (cause) {
      throw new PalyraError('cryptographic', 'could not sign the certificate', { cause });
    }
    // Incremented only after signing succeeded, with no await in between, so concurrent issues get distinct numbers.
    this.#sequence = Math.min(this.#sequence + 1, Number.MAX_SAFE_INTEGER);
    return {
      sequence: this.#sequence,
      subject: `device:${deviceId}`,
      certificatePem: encodePem(der, CERTIFICATE_PEM_LABEL),
      fingerprint: certificateFingerprint(der),
      serialHex: toHex(serial),
      issuedAtUnixMs: notBefore.getTime(),
      expiresAtUnixMs: notAfter.getTime(),
    };
  }

  /** notBefore / notAfter of a leaf issued at `now` (see `#issue`), or invalid_argument. */
  #validity(now: number, validityMsOption: number | undefined, backdateMs: number): { notBefore: Date; notAfter: Date } {
    const validityMs = validateValidityMs(validityMsOption ?? DEFAULT_CERT_VALIDITY_MS);
    const issuedAt = toCertificateTime(now, 'now');
    // Never before the CA itself, whose own notBefore is its creation time.
    const notBefore = new Date(Math.max(issuedAt.getTime() - backdateMs, this.notBeforeUnixMs));
    // A leaf cannot outlive its CA: chain verification would reject it after the CA expires anyway.
    const notAfterMs = Math.min(issuedAt.getTime() + validityMs, this.notAfterUnixMs);
    if (notAfterMs <= issuedAt.getTime()) {
      throw new PalyraError('invalid_argument', 'the gateway CA has expired; it cannot issue certificates');
    }
    return { notBefore, notAfter: toCertificateTime(notAfterMs, 'notAfter') };
  }

  async #issue(request: LeafRequest): Promise<IssuedCertificate> {
    const { notBefore, notAfter } = this.#validity(request.now, request.validityMs, request.backdateMs ?? 0);
    let certificate: X509Certificate;
    try {
      certificate = await X509CertificateGenerator.create(
        {
          serialNumber: randomSerialHex(),
          subject: request.name,
          issuer: this.#certificate.subjectName,
          notBefore,
          notAfter,
          publicKey: request.publicKey,
          signingKey: this.#privateKey,
          signingAlgorithm: P256_SIGNING_ALGORITHM,
          extensions: [
            new BasicConstraintsExtension(false, undefined, true),
            new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
            ...request.extensions,
            await keyIdentifier(request.publicKey),
            this.#authorityKeyId,
          ],
        },
        globalThis.crypto,
      );
    } catch (cause) {
      throw new PalyraError('cryptographic', 'could not sign the certificate', { cause });
    }
    const der = new Uint8Array(certificate.rawData);
    // Incremented only after signing succeeded, with no await in between, so concurrent issues get distinct numbers.
    this.#sequence = Math.min(this.#sequence + 1, Number.MAX_SAFE_INTEGER);
    return {
      sequence: this.#sequence,
      subject: request.subject,
      certificatePem: encodePem(der, CERTIFICATE_PEM_LABEL),
      fingerprint: certificateFingerprint(der),
      serialHex: certificate.serialNumber.toLowerCase(),
      issuedAtUnixMs: notBefore.getTime(),
      expiresAtUnixMs: certificate.notAfter.getTime(),
    };
  }
}
