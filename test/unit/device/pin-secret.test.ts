// The device's native PIN password hash (main/device/pin-secret.ts) must give exactly the bytes of main/core's
// scrypt: the committed vectors (spake2plus-palyra.json) and random PINs and salts against pinPasswordHash.
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../main/core/bytes.js';
import { pinPasswordHash } from '../../../main/core/pin-hash.js';
import { pinPasswordHashNative, pinProverSecretNative } from '../../../main/device/pin-secret.js';

const vectors = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../vectors/spake2plus-palyra.json');
const { cases } = JSON.parse(readFileSync(vectors, 'utf8')) as { cases: { pin: string; salt: string; w0s_w1s: string; w0: string; w1: string }[] };

describe('native PIN password hash', () => {
  it.each(cases)('reproduces the vector for PIN $pin', async (c) => {
    expect(toHex(await pinPasswordHashNative(c.pin, fromHex(c.salt)))).toBe(c.w0s_w1s);
    const secret = await pinProverSecretNative(c.pin, fromHex(c.salt));
    expect(toHex(secret.w0)).toBe(c.w0);
    expect(toHex(secret.w1)).toBe(c.w1);
  });

  it('agrees with main/core on random PINs and salts', async () => {
    for (let i = 0; i < 3; i++) {
      const pin = String(randomInt(1_000_000)).padStart(6, '0');
      const salt = new Uint8Array(randomBytes(16));
      expect(toHex(await pinPasswordHashNative(pin, salt))).toBe(toHex(pinPasswordHash(pin, salt)));
    }
  });

  it('refuses what core refuses: a PIN that is not 6 digits, a salt that is not 16 bytes', async () => {
    await expect(pinPasswordHashNative('12345', new Uint8Array(16))).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(pinPasswordHashNative('123456', new Uint8Array(15))).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});
