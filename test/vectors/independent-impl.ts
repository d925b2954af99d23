// A second implementation of handshake v1, written from PROTOCOL.md / REFERENCE.md §2 with node:crypto only. It
// must not import from main/: agreement between the two is what the vectors prove.
import { createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, sign, verify, type KeyObject } from 'node:crypto';

// DER prefixes that wrap a raw 32-byte key (RFC 8410): PKCS#8 private keys and SPKI public keys.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function sha256(...parts: Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return hash.digest();
}

function u32le(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
}

function rawPublic(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function ed25519PrivateKey(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function ed25519Public(seed: Buffer): Buffer {
  return rawPublic(createPublicKey(ed25519PrivateKey(seed)));
}

export function ed25519Sign(seed: Buffer, message: Buffer): Buffer {
  return sign(null, message, ed25519PrivateKey(seed));
}

export function ed25519Verify(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  return verify(null, message, key, signature);
}

function x25519PrivateKey(privateKey: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' });
}

export function x25519Public(privateKey: Buffer): Buffer {
  return rawPublic(createPublicKey(x25519PrivateKey(privateKey)));
}

export function x25519Shared(privateKey: Buffer, peerPublic: Buffer): Buffer {
  const publicKey = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, peerPublic]), format: 'der', type: 'spki' });
  return diffieHellman({ privateKey: x25519PrivateKey(privateKey), publicKey });
}

/** 26 Crockford characters of the first 16 bytes of SHA-256(public key), most significant first. */
export function deviceId(ed25519PublicKey: Buffer): string {
  let n = BigInt(`0x${sha256(ed25519PublicKey).subarray(0, 16).toString('hex')}`);
  let out = '';
  for (let i = 0; i < 26; i++) {
    out = CROCKFORD.charAt(Number(n % 32n)) + out;
    n /= 32n;
  }
  return out;
}

export function fingerprint(ed25519PublicKey: Buffer): string {
  return sha256(ed25519PublicKey).toString('hex');
}

export function commitment(x25519PublicKey: Buffer): Buffer {
  return sha256(Buffer.from('palyra-commit-v1'), x25519PublicKey);
}

export interface Transcript {
  protocolVersion: number;
  sessionId: string;
  challenge: Buffer;
  gatewayEphemeralPublic: Buffer;
  deviceId: string;
  clientKind: string;
  proof: string;
}

export function signaturePayload(t: Transcript): Buffer {
  return Buffer.concat([
    Buffer.from('palyra-pairing-v1', 'ascii'),
    u32le(t.protocolVersion),
    Buffer.from(t.sessionId, 'utf8'),
    t.challenge,
    t.gatewayEphemeralPublic,
    Buffer.from(t.deviceId, 'utf8'),
    Buffer.from(t.clientKind, 'ascii'),
    Buffer.from(t.proof, 'utf8'),
  ]);
}

export function transcriptContext(t: Omit<Transcript, 'challenge' | 'gatewayEphemeralPublic' | 'proof'>): Buffer {
  return Buffer.concat([
    Buffer.from('palyra-mtls-transcript-v1', 'ascii'),
    Buffer.from(t.sessionId, 'utf8'),
    u32le(t.protocolVersion),
    Buffer.from(t.deviceId, 'utf8'),
    Buffer.from(t.clientKind, 'ascii'),
  ]);
}

export function transcriptMac(shared: Buffer, challenge: Buffer, context: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, challenge, context, 32));
}

export function transcriptHash(mac: Buffer): Buffer {
  return sha256(mac);
}

export function sas(mac: Buffer): string {
  const value = sha256(Buffer.from('palyra-sas-v1', 'ascii'), mac).readUInt32BE(0);
  return String(value % 1_000_000).padStart(6, '0');
}

export function csrBindingPayload(sessionId: string, csrDer: Buffer): Buffer {
  return Buffer.concat([Buffer.from('palyra-csr-v1', 'ascii'), Buffer.from(sessionId, 'utf8'), sha256(csrDer)]);
}

/** The key material and identity facts every handshake vector file carries (shared and our own). */
export interface VectorIdentity {
  keys: Record<
    | 'device_ed25519_seed'
    | 'device_ed25519_public'
    | 'device_x25519_private'
    | 'device_x25519_public'
    | 'gateway_ephemeral_x25519_private'
    | 'gateway_ephemeral_x25519_public'
    | 'x25519_shared_secret',
    string
  >;
  device_id: string;
  identity_fingerprint: string;
  device_x25519_commitment: string;
}
