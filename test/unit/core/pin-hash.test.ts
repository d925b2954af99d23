// The PIN password hash and the PIN pairing v2 context binding: input checks, what the gateway stores, a PIN
// exchange end to end, and that every bound value changes the outcome.
import { scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toBase64Url, toHex, utf8 } from '../../../main/core/bytes.js';
import { pinPairingPakeContext, type PinPairingBinding } from '../../../main/core/pake-context.js';
import {
  PIN_HASH_SALT_LENGTH,
  PIN_HASH_SCRYPT,
  pinHashInput,
  pinPasswordHash,
  pinPasswordHashAsync,
  pinProverSecret,
  pinProverSecretAsync,
  pinVerifier,
  pinVerifierAsync,
} from '../../../main/core/pin-hash.js';
import { proverFinish, proverStart, verifierFinish, verifierRespond, type PakeContext } from '../../../main/core/spake2plus.js';
import { codeOf } from '../../helpers/errors.js';

const salt = Uint8Array.from({ length: PIN_HASH_SALT_LENGTH }, (_, i) => i * 7);

const binding: PinPairingBinding = {
  sessionId: '01JF3N9X7QKZ2V5M8R4T6W0YHC',
  clientKind: 'desktop',
  gatewayEphemeralPublic: new Uint8Array(32).fill(0x11),
  deviceX25519Commitment: new Uint8Array(32).fill(0x22),
  deviceId: '1SYW9X19J44MZG8MMM46WZA6WV',
  caPin: toBase64Url(new Uint8Array(32).fill(0x33)),
};

/** A full PIN exchange: the gateway minted `mintedPin`, the device typed `typedPin`. */
function pair(stored: ReturnType<typeof pinVerifier>, typedPin: string, deviceCtx: PakeContext, gatewayCtx: PakeContext): Uint8Array {
  const { shareP, state } = proverStart(pinProverSecret(typedPin, stored.salt));
  const response = verifierRespond(stored, shareP, gatewayCtx);
  const prover = proverFinish(state, response.shareV, response.confirmV, deviceCtx);
  return verifierFinish(response.state, prover.confirmP);
}

describe('PIN password hash', () => {
  it('frames the PIN as len(pw) ‖ pw ‖ len(nil) ‖ len(nil), 8-byte little-endian lengths', () => {
    expect(toHex(pinHashInput('012345'))).toBe(`0600000000000000${toHex(utf8('012345'))}${'00'.repeat(16)}`);
  });

  it('is scrypt(N=32768, r=8, p=1, dkLen=80) of that input, as node:crypto computes it', () => {
    expect(PIN_HASH_SCRYPT).toEqual({ N: 32768, r: 8, p: 1, dkLen: 80 });
    const expected = scryptSync(pinHashInput('655376'), salt, 80, { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    expect(toHex(pinPasswordHash('655376', salt))).toBe(expected.toString('hex'));
  });

  it('the async variants give the same results', async () => {
    expect(await pinPasswordHashAsync('123456', salt)).toEqual(pinPasswordHash('123456', salt));
    expect(await pinProverSecretAsync('123456', salt)).toEqual(pinProverSecret('123456', salt));
    const stored = await pinVerifierAsync('123456', salt);
    expect(stored).toEqual(pinVerifier('123456', salt));
  });

  it.each(['12345', '1234567', '12a456', ' 123456', '123 456', '١٢٣٤٥٦', ''])('refuses the PIN %j with invalid_argument, without echoing it', (pin) => {
    expect(codeOf(() => pinHashInput(pin))).toBe('invalid_argument');
    try {
      pinHashInput(pin);
    } catch (e) {
      if (pin.length > 0) expect((e as Error).message).not.toContain(pin);
    }
  });

  it('refuses a salt of the wrong length', () => {
    expect(codeOf(() => pinPasswordHash('123456', new Uint8Array(15)))).toBe('invalid_argument');
  });

  it('the gateway stores salt, w0 and L only, with a fresh salt per code, and never the PIN', () => {
    const a = pinVerifier('424242');
    const b = pinVerifier('424242');
    expect(Object.keys(a).sort()).toEqual(['L', 'salt', 'w0']);
    expect(a.salt).toHaveLength(PIN_HASH_SALT_LENGTH);
    expect(a.salt).not.toEqual(b.salt);
    expect(a.w0).not.toEqual(b.w0);
    const serialised = JSON.stringify({ salt: toHex(a.salt), w0: toHex(a.w0), L: toHex(a.L) });
    expect(serialised).not.toContain('424242');
    expect(serialised).not.toContain(toHex(utf8('424242')));
  });
});

describe('PIN pairing v2 exchange', () => {
  const ctx = pinPairingPakeContext(binding);

  it('the right PIN pairs: both sides hold the same key', () => {
    expect(pair(pinVerifier('655376', salt), '655376', ctx, ctx)).toHaveLength(32);
  });

  it('a wrong PIN fails with pake_confirmation_failed', () => {
    expect(codeOf(() => pair(pinVerifier('655376', salt), '655377', ctx, ctx))).toBe('pake_confirmation_failed');
  });

  const changes: [keyof PinPairingBinding, PinPairingBinding[keyof PinPairingBinding]][] = [
    ['sessionId', '01JF3N9X7QKZ2V5M8R4T6W0YHD'],
    ['clientKind', 'node'],
    ['gatewayEphemeralPublic', new Uint8Array(32).fill(0x12)],
    ['deviceX25519Commitment', new Uint8Array(32).fill(0x23)],
    ['deviceId', '1SYW9X19J44MZG8MMM46WZA6WW'],
    ['caPin', toBase64Url(new Uint8Array(32).fill(0x34))],
  ];

  it.each(changes)('a device that saw a different %s fails confirmation with the right PIN', (field, value) => {
    const deviceCtx = pinPairingPakeContext({ ...binding, [field]: value });
    expect(codeOf(() => pair(pinVerifier('655376', salt), '655376', deviceCtx, ctx))).toBe('pake_confirmation_failed');
  });

  it('refuses a binding with a bad id, kind, key length or CA pin', () => {
    expect(codeOf(() => pinPairingPakeContext({ ...binding, sessionId: 'short' }))).toBe('invalid_canonical_id');
    expect(codeOf(() => pinPairingPakeContext({ ...binding, deviceId: 'x'.repeat(26) }))).toBe('invalid_canonical_id');
    expect(codeOf(() => pinPairingPakeContext({ ...binding, clientKind: 'phone' as 'node' }))).toBe('invalid_argument');
    expect(codeOf(() => pinPairingPakeContext({ ...binding, gatewayEphemeralPublic: new Uint8Array(31) }))).toBe('invalid_argument');
    expect(codeOf(() => pinPairingPakeContext({ ...binding, deviceX25519Commitment: new Uint8Array(33) }))).toBe('invalid_argument');
    expect(codeOf(() => pinPairingPakeContext({ ...binding, caPin: toBase64Url(new Uint8Array(20)) }))).toBe('invalid_argument');
    expect(codeOf(() => pinPairingPakeContext({ ...binding, caPin: 'not base64url!' }))).toBe('invalid_argument');
  });
});
