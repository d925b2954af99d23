// Our committed vectors (handshake-v1-palyra.json), checked against main/core and against the independent
// node:crypto implementation in independent-impl.ts: a change in either shows up as a vector mismatch.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../../main/core/bytes.js';
import { parseClientKind } from '../../main/core/client-kind.js';
import { DeviceIdentity, pairingKeyExchangeFromPrivate, x25519Commitment } from '../../main/core/device-identity.js';
import {
  buildDeviceHello,
  csrBindingPayload,
  deriveTranscriptMac,
  signCsrBinding,
  signaturePayload,
  transcriptContext,
  transcriptHash,
  verifyCsrBinding,
  x25519SharedSecret,
} from '../../main/core/handshake.js';
import { PairingSessionRegistry } from '../../main/core/pairing-sessions.js';
import { computeSas } from '../../main/core/sas.js';
import * as independent from './independent-impl.js';
import type { VectorIdentity } from './independent-impl.js';

interface OwnCase extends VectorIdentity {
  name: string;
  protocol_version: number;
  session_id: string;
  client_kind: string;
  proof: string;
  proof_utf8: string;
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

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'handshake-v1-palyra.json');
const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: OwnCase[] };

const hex = (b: Buffer): string => b.toString('hex');
const buf = (h: string): Buffer => Buffer.from(h, 'hex');

describe('own handshake v1 vectors', () => {
  it('cover several keys, every client kind, both methods, a non-ASCII proof and a non-1 version', () => {
    expect(cases.length).toBeGreaterThanOrEqual(4);
    expect(new Set(cases.map((c) => c.device_id)).size).toBe(cases.length);
    expect(new Set(cases.map((c) => c.client_kind))).toEqual(new Set(['cli', 'desktop', 'node']));
    expect(cases.some((c) => /^\d{6}$/.test(c.proof))).toBe(true);
    expect(cases.some((c) => /[^\x20-\x7e]/.test(c.proof))).toBe(true);
    expect(cases.some((c) => c.protocol_version !== 1)).toBe(true);
  });
});

describe.each(cases)('own vector $name: main/core', (c) => {
  const clientKind = parseClientKind(c.client_kind);
  const identity = DeviceIdentity.fromSeed(fromHex(c.keys.device_ed25519_seed));
  const device = pairingKeyExchangeFromPrivate(fromHex(c.keys.device_x25519_private));
  const gateway = pairingKeyExchangeFromPrivate(fromHex(c.keys.gateway_ephemeral_x25519_private));
  const challenge = fromHex(c.challenge);

  it('reproduces keys, identity and commitment', () => {
    expect(toHex(utf8(c.proof))).toBe(c.proof_utf8);
    expect(toHex(identity.signingPublicKey)).toBe(c.keys.device_ed25519_public);
    expect(identity.deviceId).toBe(c.device_id);
    expect(identity.fingerprint).toBe(c.identity_fingerprint);
    expect(toHex(device.publicKey)).toBe(c.keys.device_x25519_public);
    expect(toHex(gateway.publicKey)).toBe(c.keys.gateway_ephemeral_x25519_public);
    expect(toHex(x25519SharedSecret(device.privateKey, gateway.publicKey))).toBe(c.keys.x25519_shared_secret);
    expect(toHex(x25519SharedSecret(gateway.privateKey, device.publicKey))).toBe(c.keys.x25519_shared_secret);
    expect(toHex(x25519Commitment(device.publicKey))).toBe(c.device_x25519_commitment);
  });

  it('reproduces payload, signature, context, MAC, hash, SAS and CSR binding', () => {
    const transcript = { protocolVersion: c.protocol_version, sessionId: c.session_id, deviceId: c.device_id, clientKind };
    const payload = signaturePayload({ ...transcript, challenge, gatewayEphemeralPublic: gateway.publicKey, proof: c.proof });
    expect(toHex(payload)).toBe(c.signature_payload);
    expect(toHex(identity.sign(payload))).toBe(c.challenge_signature);
    const context = transcriptContext(transcript);
    expect(toHex(context)).toBe(c.transcript_context);
    const mac = deriveTranscriptMac({ sharedSecret: fromHex(c.keys.x25519_shared_secret), challenge, context });
    expect(toHex(mac)).toBe(c.transcript_mac);
    expect(toHex(transcriptHash(mac))).toBe(c.transcript_hash);
    expect(computeSas(mac)).toBe(c.sas);
    const csrDer = fromHex(c.csr_der_example);
    expect(toHex(csrBindingPayload(c.session_id, csrDer))).toBe(c.csr_binding_payload);
    expect(toHex(signCsrBinding(identity, c.session_id, csrDer))).toBe(c.csr_binding_signature);
    expect(
      verifyCsrBinding({ signature: fromHex(c.csr_binding_signature), sessionId: c.session_id, csrDer, signingPublicKey: identity.signingPublicKey }),
    ).toBe(true);
  });

  it('reproduces the hello through the device-side builder', () => {
    const { hello, sas, transcriptHashHex } = buildDeviceHello({
      identity,
      session: { sessionId: c.session_id, protocolVersion: c.protocol_version, clientKind, challenge, gatewayEphemeralPublic: gateway.publicKey },
      proof: c.proof,
      keyExchange: device,
    });
    expect(toHex(hello.challengeSignature)).toBe(c.challenge_signature);
    expect(toHex(hello.transcriptMac)).toBe(c.transcript_mac);
    expect(sas).toBe(c.sas);
    expect(transcriptHashHex).toBe(c.transcript_hash);
  });
});

describe.each(cases)('own vector $name: independent node:crypto implementation', (c) => {
  const transcript = {
    protocolVersion: c.protocol_version,
    sessionId: c.session_id,
    challenge: buf(c.challenge),
    gatewayEphemeralPublic: buf(c.keys.gateway_ephemeral_x25519_public),
    deviceId: c.device_id,
    clientKind: c.client_kind,
    proof: c.proof,
  };

  it('reproduces keys, identity and commitment', () => {
    const seed = buf(c.keys.device_ed25519_seed);
    expect(hex(independent.ed25519Public(seed))).toBe(c.keys.device_ed25519_public);
    expect(independent.deviceId(buf(c.keys.device_ed25519_public))).toBe(c.device_id);
    expect(independent.fingerprint(buf(c.keys.device_ed25519_public))).toBe(c.identity_fingerprint);
    expect(hex(independent.x25519Public(buf(c.keys.device_x25519_private)))).toBe(c.keys.device_x25519_public);
    expect(hex(independent.x25519Public(buf(c.keys.gateway_ephemeral_x25519_private)))).toBe(c.keys.gateway_ephemeral_x25519_public);
    const shared = independent.x25519Shared(buf(c.keys.device_x25519_private), buf(c.keys.gateway_ephemeral_x25519_public));
    expect(hex(shared)).toBe(c.keys.x25519_shared_secret);
    const sharedFromGateway = independent.x25519Shared(buf(c.keys.gateway_ephemeral_x25519_private), buf(c.keys.device_x25519_public));
    expect(hex(sharedFromGateway)).toBe(c.keys.x25519_shared_secret);
    expect(hex(independent.commitment(buf(c.keys.device_x25519_public)))).toBe(c.device_x25519_commitment);
  });

  it('reproduces payload, signature, context, MAC, hash, SAS and CSR binding', () => {
    const seed = buf(c.keys.device_ed25519_seed);
    const payload = independent.signaturePayload(transcript);
    expect(hex(payload)).toBe(c.signature_payload);
    expect(hex(independent.ed25519Sign(seed, payload))).toBe(c.challenge_signature);
    expect(independent.ed25519Verify(buf(c.keys.device_ed25519_public), payload, buf(c.challenge_signature))).toBe(true);
    const context = independent.transcriptContext(transcript);
    expect(hex(context)).toBe(c.transcript_context);
    const mac = independent.transcriptMac(buf(c.keys.x25519_shared_secret), transcript.challenge, context);
    expect(hex(mac)).toBe(c.transcript_mac);
    expect(hex(independent.transcriptHash(mac))).toBe(c.transcript_hash);
    expect(independent.sas(mac)).toBe(c.sas);
    const csrPayload = independent.csrBindingPayload(c.session_id, buf(c.csr_der_example));
    expect(hex(csrPayload)).toBe(c.csr_binding_payload);
    expect(hex(independent.ed25519Sign(seed, csrPayload))).toBe(c.csr_binding_signature);
  });
});

describe('independent implementation on the reference vectors', () => {
  // Guards the guard: the node:crypto implementation must itself reproduce the reference handshake-v1.json.
  const referencePath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'handshake-v1.json');
  const shared = JSON.parse(readFileSync(referencePath, 'utf8')) as { keys: OwnCase['keys']; device_id: string; cases: Omit<OwnCase, 'keys'>[] };

  it.each(shared.cases.map((c) => [c.name, c] as const))('reproduces case %s', (_name, c) => {
    const seed = buf(shared.keys.device_ed25519_seed);
    const deviceId = independent.deviceId(independent.ed25519Public(seed));
    expect(deviceId).toBe(shared.device_id);
    const transcript = {
      protocolVersion: c.protocol_version,
      sessionId: c.session_id,
      challenge: buf(c.challenge),
      gatewayEphemeralPublic: buf(shared.keys.gateway_ephemeral_x25519_public),
      deviceId,
      clientKind: c.client_kind,
      proof: c.proof,
    };
    const payload = independent.signaturePayload(transcript);
    expect(hex(payload)).toBe(c.signature_payload);
    expect(hex(independent.ed25519Sign(seed, payload))).toBe(c.challenge_signature);
    const sharedSecret = independent.x25519Shared(buf(shared.keys.device_x25519_private), transcript.gatewayEphemeralPublic);
    const mac = independent.transcriptMac(sharedSecret, transcript.challenge, independent.transcriptContext(transcript));
    expect(hex(mac)).toBe(c.transcript_mac);
    expect(independent.sas(mac)).toBe(c.sas);
    expect(hex(independent.csrBindingPayload(c.session_id, buf(c.csr_der_example)))).toBe(c.csr_binding_payload);
  });
});

describe('cross-implementation pairing', () => {
  it('accepts at our gateway a hello assembled entirely by the independent implementation', () => {
    const registry = new PairingSessionRegistry();
    const seed = buf(cases[0]!.keys.device_ed25519_seed);
    const devicePrivate = buf(cases[0]!.keys.device_x25519_private);
    const devicePublic = independent.x25519Public(devicePrivate);
    const session = registry.start({
      clientKind: 'desktop',
      method: { kind: 'pin', proof: '314159' },
      now: 1_700_000_000_000,
      deviceX25519Commitment: independent.commitment(devicePublic),
    });
    const signingPublic = independent.ed25519Public(seed);
    const deviceId = independent.deviceId(signingPublic);
    const transcript = {
      protocolVersion: session.protocolVersion,
      sessionId: session.sessionId,
      challenge: Buffer.from(session.challenge),
      gatewayEphemeralPublic: Buffer.from(session.gatewayEphemeralPublic),
      deviceId,
      clientKind: 'desktop',
      proof: '314159',
    };
    const shared = independent.x25519Shared(devicePrivate, transcript.gatewayEphemeralPublic);
    const mac = independent.transcriptMac(shared, transcript.challenge, independent.transcriptContext(transcript));
    const verified = registry.verify(
      {
        sessionId: session.sessionId,
        protocolVersion: session.protocolVersion,
        deviceId,
        clientKind: 'desktop',
        proof: '314159',
        deviceSigningPublic: signingPublic,
        deviceX25519Public: devicePublic,
        challengeSignature: independent.ed25519Sign(seed, independent.signaturePayload(transcript)),
        transcriptMac: mac,
      },
      { now: 1_700_000_000_001, isDeviceRevoked: () => false },
    );
    expect(verified.deviceId).toBe(deviceId);
    expect(verified.sas).toBe(independent.sas(mac));
    expect(verified.transcriptHashHex).toBe(hex(independent.transcriptHash(mac)));
    expect(verified.sasVerifiable).toBe(true);
  });
});
