import { createHash, diffieHellman, createPrivateKey, createPublicKey } from 'node:crypto';
import { inspect } from 'node:util';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, fromHex, toHex, u32le, utf8 } from '../../../main/core/bytes.js';
import { DeviceIdentity, generatePairingKeyExchange, pairingKeyExchangeFromPrivate } from '../../../main/core/device-identity.js';
import { isPalyraError, type ErrorCode } from '../../../main/core/errors.js';
import {
  DevicePairingHello,
  PAIRING_PROTOCOL_VERSION,
  buildDeviceHello,
  csrBindingPayload,
  deriveTranscriptMac,
  isValidEd25519PublicKey,
  signCsrBinding,
  signaturePayload,
  transcriptContext,
  transcriptHash,
  verifyCsrBinding,
  verifyEd25519Strict,
  x25519SharedSecret,
} from '../../../main/core/handshake.js';
import { computeSas } from '../../../main/core/sas.js';

/** Order of the Ed25519 base point. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (isPalyraError(error)) return error.code;
    throw error;
  }
  return undefined;
}

function le32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

function fromLe(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

const session = {
  sessionId: '01JD0000000000000000000000',
  protocolVersion: PAIRING_PROTOCOL_VERSION,
  clientKind: 'desktop' as const,
  challenge: new Uint8Array(32).fill(0x11),
  gatewayEphemeralPublic: generatePairingKeyExchange().publicKey,
};

describe('signature payload and transcript context', () => {
  const fields = { ...session, deviceId: '11ZRRXZ8AMM9GP4TZRAG26ZMH7', proof: '123456', protocolVersion: 0x0a0b0c0d };

  it('puts the little-endian version right after the 17-byte tag in the payload', () => {
    const payload = signaturePayload(fields);
    expect(new TextDecoder().decode(payload.subarray(0, 17))).toBe('palyra-pairing-v1');
    expect(toHex(payload.subarray(17, 21))).toBe('0d0c0b0a');
    expect(new TextDecoder().decode(payload.subarray(payload.length - 6))).toBe('123456');
  });

  it('puts the session id before the version in the context', () => {
    const context = transcriptContext(fields);
    const tag = 'palyra-mtls-transcript-v1';
    expect(new TextDecoder().decode(context.subarray(0, 25))).toBe(tag);
    expect(new TextDecoder().decode(context.subarray(25, 51))).toBe(fields.sessionId);
    expect(toHex(context.subarray(51, 55))).toBe(toHex(u32le(0x0a0b0c0d)));
    expect(new TextDecoder().decode(context.subarray(55))).toBe(`${fields.deviceId}desktop`);
  });

  it('refuses inputs of the wrong shape', () => {
    expect(codeOf(() => signaturePayload({ ...fields, challenge: new Uint8Array(31) }))).toBe('invalid_argument');
    expect(codeOf(() => signaturePayload({ ...fields, gatewayEphemeralPublic: new Uint8Array(33) }))).toBe('invalid_argument');
    expect(codeOf(() => signaturePayload({ ...fields, protocolVersion: -1 }))).toBe('invalid_argument');
    expect(codeOf(() => signaturePayload({ ...fields, protocolVersion: 2 ** 32 }))).toBe('invalid_argument');
    expect(codeOf(() => transcriptContext({ ...fields, clientKind: 'Desktop' as 'desktop' }))).toBe('invalid_argument');
    expect(codeOf(() => deriveTranscriptMac({ sharedSecret: new Uint8Array(32), challenge: new Uint8Array(16), context: new Uint8Array() }))).toBe(
      'invalid_argument',
    );
    expect(codeOf(() => transcriptHash(new Uint8Array(31)))).toBe('invalid_argument');
  });
});

describe('transcript MAC', () => {
  it('is identical from both Diffie-Hellman sides for random keys, challenges and sessions', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom<'cli' | 'desktop' | 'node'>('cli', 'desktop', 'node'),
        fc.string({ minLength: 1, maxLength: 40 }),
        (devicePrivate, gatewayPrivate, challenge, clientKind, sessionId) => {
          const device = pairingKeyExchangeFromPrivate(devicePrivate);
          const gateway = pairingKeyExchangeFromPrivate(gatewayPrivate);
          const context = transcriptContext({ sessionId, protocolVersion: 1, deviceId: '11ZRRXZ8AMM9GP4TZRAG26ZMH7', clientKind });
          const deviceMac = deriveTranscriptMac({ sharedSecret: x25519SharedSecret(device.privateKey, gateway.publicKey), challenge, context });
          const gatewayMac = deriveTranscriptMac({ sharedSecret: x25519SharedSecret(gateway.privateKey, device.publicKey), challenge, context });
          return toHex(deviceMac) === toHex(gatewayMac) && computeSas(deviceMac) === computeSas(gatewayMac);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('agrees with node:crypto X25519 and HKDF', () => {
    const device = generatePairingKeyExchange();
    const gateway = generatePairingKeyExchange();
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), device.privateKey]);
    const spki = Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), gateway.publicKey]);
    const nodeShared = diffieHellman({
      privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
      publicKey: createPublicKey({ key: spki, format: 'der', type: 'spki' }),
    });
    expect(toHex(x25519SharedSecret(device.privateKey, gateway.publicKey))).toBe(nodeShared.toString('hex'));
  });
});

describe('X25519 shared secret', () => {
  const { privateKey } = generatePairingKeyExchange();
  // RFC 7748 low-order u-coordinates (0, 1, the two order-8 points, p-1) and non-canonical encodings of 0 and 1.
  const lowOrder = [
    new Uint8Array(32),
    le32(1n),
    fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'),
    fromHex('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'),
    le32(P - 1n),
    le32(P),
    le32(P + 1n),
  ];

  it.each(lowOrder.map((key) => [toHex(key)]))('refuses the low-order public key %s as weak', (keyHex) => {
    expect(codeOf(() => x25519SharedSecret(privateKey, fromHex(keyHex)))).toBe('weak_key_exchange');
  });

  it('refuses keys of the wrong length as invalid arguments', () => {
    expect(codeOf(() => x25519SharedSecret(privateKey, new Uint8Array(31)))).toBe('invalid_argument');
    expect(codeOf(() => x25519SharedSecret(new Uint8Array(33), generatePairingKeyExchange().publicKey))).toBe('invalid_argument');
  });
});

describe('strict Ed25519 verification', () => {
  const identity = DeviceIdentity.generate();
  const message = utf8('palyra strict verification');
  const signature = identity.sign(message);
  const publicKey = identity.signingPublicKey;

  it('accepts an honest signature', () => {
    expect(verifyEd25519Strict(signature, message, publicKey)).toBe(true);
  });

  it('rejects a signature whose S is replaced by the non-canonical S + L', () => {
    const s = fromLe(signature.subarray(32));
    const malleated = new Uint8Array(signature);
    malleated.set(le32(s + L), 32);
    expect(verifyEd25519Strict(malleated, message, publicKey)).toBe(false);
  });

  it('rejects a signature that is valid for every message under a small-order key', () => {
    const identityPoint = le32(1n);
    const universal = new Uint8Array(64);
    universal.set(identityPoint, 0);
    // The premise: a permissive (ZIP-215) verifier accepts it.
    expect(ed25519.verify(universal, message, identityPoint, { zip215: true })).toBe(true);
    expect(verifyEd25519Strict(universal, message, identityPoint)).toBe(false);
    expect(isValidEd25519PublicKey(identityPoint)).toBe(false);
  });

  it('rejects a non-canonical encoding of a public key (y = p + 1)', () => {
    const nonCanonical = le32(P + 1n);
    const universal = new Uint8Array(64);
    universal.set(le32(1n), 0);
    expect(ed25519.verify(universal, message, nonCanonical, { zip215: true })).toBe(true);
    expect(verifyEd25519Strict(universal, message, nonCanonical)).toBe(false);
    expect(isValidEd25519PublicKey(nonCanonical)).toBe(false);
  });

  it('returns false instead of throwing on malformed input', () => {
    expect(verifyEd25519Strict(signature.subarray(1), message, publicKey)).toBe(false);
    expect(verifyEd25519Strict(signature, message, publicKey.subarray(1))).toBe(false);
    expect(verifyEd25519Strict(new Uint8Array(64).fill(0xff), message, publicKey)).toBe(false);
    expect(verifyEd25519Strict(signature, message, new Uint8Array(32).fill(0xff))).toBe(false);
    expect(verifyEd25519Strict('sig' as unknown as Uint8Array, message, publicKey)).toBe(false);
    expect(verifyEd25519Strict(signature, null as unknown as Uint8Array, publicKey)).toBe(false);
  });

  it('rejects every single flipped bit of the signature', () => {
    for (let bit = 0; bit < 512; bit += 7) {
      const flipped = new Uint8Array(signature);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(verifyEd25519Strict(flipped, message, publicKey)).toBe(false);
    }
  });
});

describe('device hello', () => {
  const identity = DeviceIdentity.generate();
  const keyExchange = generatePairingKeyExchange();

  it('hides the proof from inspect and JSON, showing its length and <redacted>', () => {
    const { hello } = buildDeviceHello({ identity, session, proof: '904512', keyExchange });
    for (const output of [inspect(hello, { depth: 10 }), JSON.stringify(hello), inspect({ request: { hello } }, { depth: 10 })]) {
      expect(output).not.toContain('904512');
      expect(output).toContain('<redacted>');
      expect(output).toMatch(/proofLen["']?: ?6/);
    }
    expect(hello.proof).toBe('904512');
  });

  it('carries the identity, the pairing key and a signature and MAC that check out', () => {
    const gateway = generatePairingKeyExchange();
    const built = buildDeviceHello({ identity, session: { ...session, gatewayEphemeralPublic: gateway.publicKey }, proof: 'QRTOKEN-0123456789', keyExchange });
    const { hello } = built;
    expect(hello).toBeInstanceOf(DevicePairingHello);
    expect(hello.deviceId).toBe(identity.deviceId);
    expect(toHex(hello.deviceSigningPublic)).toBe(toHex(identity.signingPublicKey));
    expect(toHex(hello.deviceX25519Public)).toBe(toHex(keyExchange.publicKey));
    const payload = signaturePayload({ ...session, gatewayEphemeralPublic: gateway.publicKey, deviceId: identity.deviceId, proof: 'QRTOKEN-0123456789' });
    expect(verifyEd25519Strict(hello.challengeSignature, payload, identity.signingPublicKey)).toBe(true);
    const mac = deriveTranscriptMac({
      sharedSecret: x25519SharedSecret(gateway.privateKey, keyExchange.publicKey),
      challenge: session.challenge,
      context: transcriptContext({ ...session, deviceId: identity.deviceId }),
    });
    expect(toHex(hello.transcriptMac)).toBe(toHex(mac));
    expect(built.sas).toBe(computeSas(mac));
    expect(built.transcriptHashHex).toBe(createHash('sha256').update(mac).digest('hex'));
  });

  it('refuses a key exchange whose public key is not its private key', () => {
    const forged = { privateKey: keyExchange.privateKey, publicKey: generatePairingKeyExchange().publicKey };
    expect(codeOf(() => buildDeviceHello({ identity, session, proof: '123456', keyExchange: forged }))).toBe('invalid_key_material');
  });

  it('refuses a gateway key of low order', () => {
    const weak = { ...session, gatewayEphemeralPublic: new Uint8Array(32) };
    expect(codeOf(() => buildDeviceHello({ identity, session: weak, proof: '123456', keyExchange }))).toBe('weak_key_exchange');
  });
});

describe('constant-time comparison', () => {
  it('is true for equal bytes, false for a different byte or a different length', () => {
    expect(constantTimeEqual(utf8('123456'), utf8('123456'))).toBe(true);
    expect(constantTimeEqual(utf8('123456'), utf8('123457'))).toBe(false);
    expect(constantTimeEqual(utf8('123456'), utf8('1234567'))).toBe(false);
    expect(constantTimeEqual(utf8('123456'), utf8('12345'))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(), new Uint8Array())).toBe(true);
  });
});

describe('short authentication string', () => {
  it('is 6 zero-padded digits of SHA-256("palyra-sas-v1" ‖ mac) read big-endian, mod 10^6', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (mac) => {
        const digest = createHash('sha256').update('palyra-sas-v1').update(mac).digest();
        const expected = String(digest.readUInt32BE(0) % 1_000_000).padStart(6, '0');
        const sas = computeSas(mac);
        return /^\d{6}$/.test(sas) && sas === expected;
      }),
      { numRuns: 100 },
    );
  });

  it('keeps leading zeros (vector pin-cli gives 094741)', () => {
    expect(computeSas(fromHex('da59a80a8d4d618abcde9963a0586bd0c4419e8f47b866666c9e48180180c15e'))).toBe('094741');
  });

  it('differs when one MAC bit flips', () => {
    const mac = new Uint8Array(32).fill(0x42);
    const flipped = new Uint8Array(mac);
    flipped[0]! ^= 1;
    expect(computeSas(flipped)).not.toBe(computeSas(mac));
  });

  it('refuses a MAC that is not 32 bytes', () => {
    expect(codeOf(() => computeSas(new Uint8Array(31)))).toBe('invalid_argument');
  });
});

describe('CSR binding', () => {
  const identity = DeviceIdentity.generate();
  const csrDer = utf8('0\x82 not really a CSR, but bytes');
  const sessionId = '01JD0000000000000000000000';

  it('is "palyra-csr-v1" ‖ session_id ‖ SHA-256(CSR DER)', () => {
    const digest = createHash('sha256').update(csrDer).digest();
    expect(toHex(csrBindingPayload(sessionId, csrDer))).toBe(toHex(Buffer.concat([Buffer.from('palyra-csr-v1'), Buffer.from(sessionId), digest])));
  });

  it('verifies only for the same session, CSR and key', () => {
    const signature = signCsrBinding(identity, sessionId, csrDer);
    const signingPublicKey = identity.signingPublicKey;
    expect(verifyCsrBinding({ signature, sessionId, csrDer, signingPublicKey })).toBe(true);
    expect(verifyCsrBinding({ signature, sessionId: '01JD0000000000000000000001', csrDer, signingPublicKey })).toBe(false);
    expect(verifyCsrBinding({ signature, sessionId, csrDer: utf8('another CSR'), signingPublicKey })).toBe(false);
    expect(verifyCsrBinding({ signature, sessionId, csrDer, signingPublicKey: DeviceIdentity.generate().signingPublicKey })).toBe(false);
    expect(verifyCsrBinding({ signature, sessionId, csrDer: new Uint8Array(), signingPublicKey })).toBe(false);
  });

  it('refuses to bind an empty CSR', () => {
    expect(codeOf(() => csrBindingPayload(sessionId, new Uint8Array()))).toBe('invalid_argument');
  });
});
