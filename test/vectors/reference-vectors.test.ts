// Reproduces every field of the protocol's reference vectors, handshake-v1.json (vendored beside this file; two
// independent implementations computed it).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../main/core/bytes.js';
import { parseClientKind } from '../../main/core/client-kind.js';
import { DeviceIdentity, identityFingerprint, pairingKeyExchangeFromPrivate, x25519Commitment } from '../../main/core/device-identity.js';
import {
  buildDeviceHello,
  csrBindingPayload,
  deriveTranscriptMac,
  signCsrBinding,
  signaturePayload,
  transcriptContext,
  transcriptHash,
  verifyCsrBinding,
  verifyEd25519Strict,
  x25519SharedSecret,
} from '../../main/core/handshake.js';
import { deviceIdFromPublicKey } from '../../main/core/ids.js';
import { computeSas } from '../../main/core/sas.js';
import type { VectorIdentity } from './independent-impl.js';

const vectorsPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'handshake-v1.json');

interface SharedCase {
  name: string;
  protocol_version: number;
  session_id: string;
  client_kind: string;
  proof: string;
  challenge: string;
  signature_payload: string;
  challenge_signature: string;
  transcript_context: string;
  transcript_mac: string;
  transcript_hash: string;
  sas: string;
  csr_der_example: string;
  csr_binding_payload: string;
  csr_binding_signature: string;
}

interface SharedVectors extends VectorIdentity {
  cases: SharedCase[];
}

const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8')) as SharedVectors;
const { keys } = vectors;
const identity = DeviceIdentity.fromSeed(fromHex(keys.device_ed25519_seed));

describe('reference handshake v1 vectors: keys and identity', () => {
  it('holds three cases', () => {
    expect(vectors.cases.map((c) => c.name)).toEqual(['qr-desktop', 'pin-node', 'pin-cli']);
  });

  it('derives the Ed25519 public key, device_id and identity fingerprint from the seed', () => {
    expect(toHex(identity.signingPublicKey)).toBe(keys.device_ed25519_public);
    expect(identity.deviceId).toBe(vectors.device_id);
    expect(deviceIdFromPublicKey(fromHex(keys.device_ed25519_public))).toBe(vectors.device_id);
    expect(identity.fingerprint).toBe(vectors.identity_fingerprint);
    expect(identityFingerprint(fromHex(keys.device_ed25519_public))).toBe(vectors.identity_fingerprint);
  });

  it('derives both X25519 public keys and the same shared secret from either side', () => {
    const device = pairingKeyExchangeFromPrivate(fromHex(keys.device_x25519_private));
    const gateway = pairingKeyExchangeFromPrivate(fromHex(keys.gateway_ephemeral_x25519_private));
    expect(toHex(device.publicKey)).toBe(keys.device_x25519_public);
    expect(toHex(gateway.publicKey)).toBe(keys.gateway_ephemeral_x25519_public);
    expect(toHex(x25519SharedSecret(device.privateKey, gateway.publicKey))).toBe(keys.x25519_shared_secret);
    expect(toHex(x25519SharedSecret(gateway.privateKey, device.publicKey))).toBe(keys.x25519_shared_secret);
  });

  it('computes the device X25519 commitment', () => {
    expect(toHex(x25519Commitment(fromHex(keys.device_x25519_public)))).toBe(vectors.device_x25519_commitment);
  });
});

describe.each(vectors.cases)('reference handshake v1 vector $name', (c) => {
  const clientKind = parseClientKind(c.client_kind);
  const challenge = fromHex(c.challenge);
  const gatewayEphemeralPublic = fromHex(keys.gateway_ephemeral_x25519_public);
  const context = transcriptContext({ sessionId: c.session_id, protocolVersion: c.protocol_version, deviceId: vectors.device_id, clientKind });

  it('builds the signature payload byte for byte', () => {
    const payload = signaturePayload({
      protocolVersion: c.protocol_version,
      sessionId: c.session_id,
      challenge,
      gatewayEphemeralPublic,
      deviceId: vectors.device_id,
      clientKind,
      proof: c.proof,
    });
    expect(toHex(payload)).toBe(c.signature_payload);
    expect(toHex(identity.sign(payload))).toBe(c.challenge_signature);
    expect(verifyEd25519Strict(fromHex(c.challenge_signature), payload, identity.signingPublicKey)).toBe(true);
  });

  it('builds the transcript context and derives MAC, hash and SAS', () => {
    expect(toHex(context)).toBe(c.transcript_context);
    const mac = deriveTranscriptMac({ sharedSecret: fromHex(keys.x25519_shared_secret), challenge, context });
    expect(toHex(mac)).toBe(c.transcript_mac);
    expect(toHex(transcriptHash(mac))).toBe(c.transcript_hash);
    expect(computeSas(mac)).toBe(c.sas);
  });

  it('produces the same hello through the device-side builder', () => {
    const { hello, sas, transcriptHashHex } = buildDeviceHello({
      identity,
      session: { sessionId: c.session_id, protocolVersion: c.protocol_version, clientKind, challenge, gatewayEphemeralPublic },
      proof: c.proof,
      keyExchange: pairingKeyExchangeFromPrivate(fromHex(keys.device_x25519_private)),
    });
    expect(toHex(hello.challengeSignature)).toBe(c.challenge_signature);
    expect(toHex(hello.transcriptMac)).toBe(c.transcript_mac);
    expect(toHex(hello.deviceX25519Public)).toBe(keys.device_x25519_public);
    expect(hello.deviceId).toBe(vectors.device_id);
    expect(sas).toBe(c.sas);
    expect(transcriptHashHex).toBe(c.transcript_hash);
  });

  it('binds the example CSR to the session and signs the binding', () => {
    const csrDer = fromHex(c.csr_der_example);
    const payload = csrBindingPayload(c.session_id, csrDer);
    expect(toHex(payload)).toBe(c.csr_binding_payload);
    expect(toHex(payload.subarray(payload.length - 32))).toBe(toHex(createHashOf(csrDer)));
    expect(toHex(signCsrBinding(identity, c.session_id, csrDer))).toBe(c.csr_binding_signature);
    expect(
      verifyCsrBinding({ signature: fromHex(c.csr_binding_signature), sessionId: c.session_id, csrDer, signingPublicKey: identity.signingPublicKey }),
    ).toBe(true);
  });
});

function createHashOf(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}
