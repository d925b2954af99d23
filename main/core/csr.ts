/**
 * PKCS#10 requests (PROTOCOL.md §2, §4 `tls_csr_der`): the device makes its own P-256 TLS key and asks the gateway
 * to certify it, so the private key never crosses the wire.
 */

import 'reflect-metadata';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { constantTimeEqual } from './bytes.js';
import { DEVICE_URI_PREFIX } from './certificates.js';
import { p256Verify } from './crypto.js';
import { p256 } from '@noble/curves/nist.js';
import { derChildren, derContent, requireSignedDerShape } from './der.js';
import { PalyraError } from './errors.js';
import { validateCanonicalId } from './ids.js';
import { deviceCsrInfo, p1363ToDer, P256_SPKI_ALGORITHM, signedCertificate } from './x509-build.js';
import { isP256Key, P256_KEY_ALGORITHM, P256_SIGNING_ALGORITHM, subtleCrypto } from './x509-keys.js';

/** A P-256 CSR is about 350 bytes; anything far larger is not ours and is refused before parsing. */
export const MAX_CSR_DER_BYTES = 4096;
export const DEVICE_ORGANIZATION = 'Palyra';
/** AlgorithmIdentifier DER of ecdsa-with-SHA256 (OID 1.2.840.10045.4.3.2, parameters absent per RFC 5758). */
const ECDSA_WITH_SHA256_DER = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02);

export function deviceCommonName(deviceId: string): string {
  return `Palyra Device ${deviceId}`;
}

export interface VerifiedCsr {
  /** The requested key, importable for verification only. */
  readonly publicKey: CryptoKey;
  readonly spkiDer: Uint8Array;
  /** The subject the device asked for (informational: the CA sets the subject itself). */
  readonly subject: string;
}

/** DER PKCS#10 with subject CN=`Palyra Device {id}`, O=`Palyra` and the device URI SAN, signed by `keys`. */
export async function createCertificateSigningRequest(options: {
  readonly keys: CryptoKeyPair;
  readonly deviceId: string;
}): Promise<Uint8Array> {
  const { keys, deviceId } = options;
  validateCanonicalId(deviceId);
  if (!isP256Key(keys.privateKey) || !isP256Key(keys.publicKey)) {
    throw new PalyraError('invalid_key_material', 'a CSR key must be ECDSA P-256');
  }
  try {
    // Built as DER (x509-build.ts: the bytes @peculiar/x509's generator wrote), signed with WebCrypto.
    const subtle = subtleCrypto();
    const publicPoint = new Uint8Array(await subtle.exportKey('raw', keys.publicKey));
    const info = deviceCsrInfo({
      commonName: deviceCommonName(deviceId),
      organization: DEVICE_ORGANIZATION,
      uri: `${DEVICE_URI_PREFIX}${deviceId}`,
      publicPoint,
    });
    const signature = new Uint8Array(await subtle.sign(P256_SIGNING_ALGORITHM, keys.privateKey, Uint8Array.from(info)));
    return signedCertificate(info, p1363ToDer(signature));
  } catch (cause) {
    throw new PalyraError('cryptographic', 'could not create the certificate signing request', { cause });
  }
}

function invalid(message: string, cause?: unknown): PalyraError {
  return new PalyraError('csr_invalid', message, cause === undefined ? {} : { cause });
}

/**
 * The parts of a signed DER structure as signed: the exact to-be-signed bytes, the algorithm, the raw signature.
 * Verifying these ourselves means exactly one spelling of a CSR verifies (no tolerated tag or length variants).
 */
function splitSignedCsr(der: Uint8Array): { tbs: Uint8Array; algorithm: Uint8Array; signature: Uint8Array } {
  requireSignedDerShape(der, 'csr_invalid', 'CSR');
  const [tbs, algorithm, signatureBits] = derChildren(der)!;
  // The BIT STRING's content after its unused-bits octet (pinned to 0 by requireSignedDerShape).
  const signature = signatureBits === undefined ? undefined : derContent(signatureBits)?.subarray(1);
  if (tbs === undefined || algorithm === undefined || signature === undefined) throw invalid('CSR is not a signed DER structure');
  return { tbs, algorithm, signature };
}

/** The SEC1 point inside a SubjectPublicKeyInfo: the BIT STRING's content after its unused-bits octet (0). */
function spkiPublicPoint(spkiDer: Uint8Array): Uint8Array | undefined {
  const bits = derChildren(spkiDer)?.[1];
  const content = bits === undefined || bits[0] !== 0x03 ? undefined : derContent(bits);
  if (content === undefined || content[0] !== 0) return undefined;
  return content.subarray(1);
}

/** What `verifyCsr` returns: the certified key, as the CA writes it. */
export interface VerifiedCsrKey {
  /** The request's SubjectPublicKeyInfo DER, exactly as in the request. */
  readonly spkiDer: Uint8Array;
  /** The key's uncompressed SEC1 point (65 bytes; a compressed point in the request is decompressed). */
  readonly publicPoint: Uint8Array;
}

/** A Name: SEQUENCE OF SET OF SEQUENCE { OBJECT IDENTIFIER, value }, every element well-formed DER. */
function isWellFormedName(nameDer: Uint8Array): boolean {
  const rdns = nameDer[0] === 0x30 ? derChildren(nameDer) : undefined;
  return (
    rdns !== undefined &&
    rdns.every((rdn) => {
      const attributes = rdn[0] === 0x31 ? derChildren(rdn) : undefined;
      return (
        attributes !== undefined &&
        attributes.length > 0 &&
        attributes.every((attribute) => {
          const parts = attribute[0] === 0x30 ? derChildren(attribute) : undefined;
          return parts?.length === 2 && parts[0]![0] === 0x06 && derContent(parts[1]!) !== undefined;
        })
      );
    })
  );
}

/**
 * The fast check of a device's request, without the general X.509 parser (the gateway runs it at Complete and at
 * issue): one strict DER spelling, version 0, a well-formed subject and attribute set, an id-ecPublicKey/prime256v1
 * key whose point is on the curve, ecdsa-with-SHA256, and a self-signature that verifies. Else csr_invalid.
 */
export function verifyCsr(der: Uint8Array): VerifiedCsrKey {
  if (!(der instanceof Uint8Array) || der.length === 0 || der.length > MAX_CSR_DER_BYTES) {
    throw invalid(`CSR must be 1..${MAX_CSR_DER_BYTES} bytes of DER`);
  }
  const { tbs, algorithm, signature } = splitSignedCsr(der);
  if (!constantTimeEqual(algorithm, ECDSA_WITH_SHA256_DER)) throw invalid('CSR must be signed with ecdsa-with-SHA256');
  const parts = tbs[0] === 0x30 ? derChildren(tbs) : undefined;
  if (parts?.length !== 4) throw invalid('CSR is not a valid PKCS#10 request');
  const [version, subject, spkiDer, attributes] = parts as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  // version INTEGER 0; attributes [0] IMPLICIT SET OF Attribute (each a SEQUENCE).
  const attributeList = attributes[0] === 0xa0 ? derChildren(attributes) : undefined;
  if (
    version.length !== 3 || version[0] !== 0x02 || version[1] !== 0x01 || version[2] !== 0x00 ||
    !isWellFormedName(subject) ||
    attributeList === undefined ||
    !attributeList.every((attribute) => attribute[0] === 0x30 && derChildren(attribute)?.length === 2)
  ) {
    throw invalid('CSR is not a valid PKCS#10 request');
  }
  const spkiParts = spkiDer[0] === 0x30 ? derChildren(spkiDer) : undefined;
  if (spkiParts?.length !== 2 || !constantTimeEqual(spkiParts[0]!, P256_SPKI_ALGORITHM)) throw invalid('CSR key must be ECDSA P-256');
  const point = spkiPublicPoint(spkiDer);
  if (point === undefined) throw invalid('CSR key is not an ECDSA P-256 point');
  let publicPoint: Uint8Array;
  try {
    // Refuses a point off the curve or the point at infinity, whatever the signature check does with it.
    publicPoint = point.length === 65 && point[0] === 0x04 ? (p256.Point.fromBytes(point), point) : p256.Point.fromBytes(point).toBytes(false);
  } catch (cause) {
    throw invalid('CSR key is malformed', cause);
  }
  // p256Verify takes only the strict DER form of the signature, so exactly one spelling of a CSR verifies.
  if (!p256Verify(signature, tbs, point, 'der')) throw invalid('CSR self-signature does not verify');
  return { spkiDer, publicPoint };
}

/**
 * `verifyCsr`, then the general PKCS#10 parse for the subject and a WebCrypto key: accepts only a well-formed
 * P-256 / ecdsa-with-SHA256 request whose self-signature verifies; else csr_invalid.
 */
export async function parseAndVerifyCsr(der: Uint8Array): Promise<VerifiedCsr> {
  verifyCsr(der);
  let keyAlgorithm: Partial<EcKeyAlgorithm>;
  let spkiDer: Uint8Array;
  let subject: string;
  try {
    const csr = new Pkcs10CertificateRequest(new Uint8Array(der));
    keyAlgorithm = csr.publicKey.algorithm;
    spkiDer = new Uint8Array(csr.publicKey.rawData);
    subject = csr.subject;
  } catch (cause) {
    throw invalid('CSR is not a valid PKCS#10 request', cause);
  }
  if (keyAlgorithm.name !== 'ECDSA' || keyAlgorithm.namedCurve !== 'P-256') {
    throw invalid('CSR key must be ECDSA P-256');
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await subtleCrypto().importKey('spki', new Uint8Array(spkiDer), P256_KEY_ALGORITHM, true, ['verify']);
  } catch (cause) {
    throw invalid('CSR key is malformed', cause);
  }
  return { publicKey, spkiDer, subject };
}
