import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toBase64, toHex } from '../../../main/core/bytes.js';
import {
  DeviceIdentity,
  generatePairingKeyExchange,
  identityFingerprint,
  pairingKeyExchangeFromPrivate,
  x25519Commitment,
} from '../../../main/core/device-identity.js';
import { isPalyraError, type ErrorCode } from '../../../main/core/errors.js';
import { verifyEd25519Strict } from '../../../main/core/handshake.js';
import { isDerivedDeviceId, isStrictUlid, newUlid } from '../../../main/core/ids.js';

// RFC 8032 §7.1 test 1.
const RFC8032_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC8032_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (isPalyraError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('DeviceIdentity', () => {
  it('keeps its device_id and fingerprint through serialize and deserialize', () => {
    const identity = DeviceIdentity.generate();
    const loaded = DeviceIdentity.deserialize(identity.serialize(), identity.deviceId);
    expect(loaded.deviceId).toBe(identity.deviceId);
    expect(loaded.fingerprint).toBe(identity.fingerprint);
    expect(toHex(loaded.signingPublicKey)).toBe(toHex(identity.signingPublicKey));
  });

  it('serializes to the reference shape with standard unpadded base64 of the seed', () => {
    const identity = DeviceIdentity.fromSeed(fromHex(RFC8032_SEED));
    const stored = JSON.parse(identity.serialize()) as Record<string, string>;
    expect(Object.keys(stored)).toEqual(['device_id', 'signing_key_b64']);
    expect(stored.device_id).toBe(identity.deviceId);
    expect(stored.signing_key_b64).toBe(toBase64(fromHex(RFC8032_SEED), false));
    expect(stored.signing_key_b64).toHaveLength(43);
  });

  it('derives the RFC 8032 public key and a device_id from it', () => {
    const identity = DeviceIdentity.fromSeed(fromHex(RFC8032_SEED));
    expect(toHex(identity.signingPublicKey)).toBe(RFC8032_PUBLIC);
    expect(identity.fingerprint).toBe(createHash('sha256').update(fromHex(RFC8032_PUBLIC)).digest('hex'));
    expect(identityFingerprint(fromHex(RFC8032_PUBLIC))).toBe(identity.fingerprint);
    expect(isDerivedDeviceId(identity.deviceId, identity.signingPublicKey)).toBe(true);
  });

  it('gives every seed a strict-ULID device_id derived from its key', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const identity = DeviceIdentity.fromSeed(seed);
        return isStrictUlid(identity.deviceId) && isDerivedDeviceId(identity.deviceId, identity.signingPublicKey);
      }),
      { numRuns: 50 },
    );
  });

  it('generates a different identity each time', () => {
    expect(DeviceIdentity.generate().deviceId).not.toBe(DeviceIdentity.generate().deviceId);
  });

  it('signs with a signature that strict verification accepts', () => {
    const identity = DeviceIdentity.generate();
    const message = new TextEncoder().encode('hello');
    expect(verifyEd25519Strict(identity.sign(message), message, identity.signingPublicKey)).toBe(true);
  });

  it('hands out copies of its public key', () => {
    const identity = DeviceIdentity.fromSeed(fromHex(RFC8032_SEED));
    identity.signingPublicKey.fill(0);
    expect(toHex(identity.signingPublicKey)).toBe(RFC8032_PUBLIC);
  });

  it('ignores the reference x25519_secret_b64 field when reading', () => {
    const identity = DeviceIdentity.fromSeed(fromHex(RFC8032_SEED));
    const text = JSON.stringify({ ...identity.toStored(), x25519_secret_b64: toBase64(new Uint8Array(32).fill(7), false) });
    expect(DeviceIdentity.deserialize(text).deviceId).toBe(identity.deviceId);
  });

  it('reads stored bytes and a padded base64 seed', () => {
    const identity = DeviceIdentity.fromSeed(fromHex(RFC8032_SEED));
    const padded = JSON.stringify({ device_id: identity.deviceId, signing_key_b64: toBase64(fromHex(RFC8032_SEED), true) });
    expect(DeviceIdentity.deserialize(new TextEncoder().encode(padded)).deviceId).toBe(identity.deviceId);
  });

  it('refuses a non-canonical device_id', () => {
    const stored = { ...DeviceIdentity.generate().toStored(), device_id: '01arz3ndektsv4rrffq69g5fav' };
    expect(codeOf(() => DeviceIdentity.deserialize(stored))).toBe('invalid_canonical_id');
  });

  it('refuses a signing key that does not decode to 32 bytes', () => {
    const identity = DeviceIdentity.generate();
    for (const length of [0, 31, 33, 64]) {
      const stored = { device_id: identity.deviceId, signing_key_b64: toBase64(new Uint8Array(length).fill(1), false) };
      expect(codeOf(() => DeviceIdentity.deserialize(stored))).toBe('invalid_key_material');
    }
    expect(codeOf(() => DeviceIdentity.deserialize({ device_id: identity.deviceId, signing_key_b64: '!!!' }))).toBe('invalid_key_material');
  });

  it('refuses a device_id that is not derived from the key (a reference identity with a random ULID)', () => {
    const stored = { ...DeviceIdentity.generate().toStored(), device_id: newUlid(1_700_000_000_000) };
    expect(codeOf(() => DeviceIdentity.deserialize(stored))).toBe('device_id_mismatch');
  });

  it('refuses a record whose device_id is not the one its storage key names', () => {
    const identity = DeviceIdentity.generate();
    try {
      DeviceIdentity.deserialize(identity.serialize(), DeviceIdentity.generate().deviceId);
      expect.unreachable();
    } catch (error) {
      expect(isPalyraError(error, 'device_id_mismatch')).toBe(true);
      expect((error as Error).message).toBe('stored device identity mismatch');
    }
  });

  it('refuses malformed JSON and missing fields', () => {
    expect(codeOf(() => DeviceIdentity.deserialize('{'))).toBe('invalid_key_material');
    expect(codeOf(() => DeviceIdentity.deserialize('null'))).toBe('invalid_key_material');
    expect(codeOf(() => DeviceIdentity.deserialize('{"device_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}'))).toBe('invalid_key_material');
  });

  it('refuses a seed that is not 32 bytes', () => {
    expect(codeOf(() => DeviceIdentity.fromSeed(new Uint8Array(31)))).toBe('invalid_key_material');
  });

  it('never prints the seed in JSON, inspect or string form', () => {
    const identity = DeviceIdentity.fromSeed(fromHex(RFC8032_SEED));
    const secretForms = [RFC8032_SEED, toBase64(fromHex(RFC8032_SEED), false), '157, 97, 177'];
    const outputs = [JSON.stringify(identity), inspect(identity, { depth: 10, showHidden: true }), inspect({ nested: identity })];
    for (const output of outputs) {
      expect(output).toContain(identity.deviceId);
      for (const secret of secretForms) expect(output).not.toContain(secret);
    }
    expect(JSON.parse(JSON.stringify(identity))).toEqual({
      deviceId: identity.deviceId,
      fingerprint: identity.fingerprint,
      signingPublicKeyHex: RFC8032_PUBLIC,
    });
  });

  it('exports exactly the seed it was made from', () => {
    expect(toHex(DeviceIdentity.fromSeed(fromHex(RFC8032_SEED)).exportSeed())).toBe(RFC8032_SEED);
  });
});

describe('pairing key exchange', () => {
  it('is fresh for every pairing and its public key belongs to its private key', () => {
    const a = generatePairingKeyExchange();
    const b = generatePairingKeyExchange();
    expect(toHex(a.publicKey)).not.toBe(toHex(b.publicKey));
    expect(a.privateKey).toHaveLength(32);
    expect(toHex(pairingKeyExchangeFromPrivate(a.privateKey).publicKey)).toBe(toHex(a.publicKey));
  });

  it('derives the RFC 7748 §6.1 public keys', () => {
    const alice = pairingKeyExchangeFromPrivate(fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    expect(toHex(alice.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  });

  it('never prints its private key', () => {
    const kx = generatePairingKeyExchange();
    const secret = toHex(kx.privateKey);
    for (const output of [JSON.stringify(kx), inspect(kx, { depth: 10 })]) {
      expect(output).not.toContain(secret);
      expect(output).toContain(toHex(kx.publicKey));
      expect(output).toContain('<redacted>');
    }
  });

  it('commits with SHA-256("palyra-commit-v1" ‖ public key)', () => {
    const { publicKey } = generatePairingKeyExchange();
    const expected = createHash('sha256').update('palyra-commit-v1').update(publicKey).digest('hex');
    expect(toHex(x25519Commitment(publicKey))).toBe(expected);
    expect(codeOf(() => x25519Commitment(publicKey.subarray(1)))).toBe('invalid_public_key');
  });
});
