import { describe, expect, it } from 'vitest';
import { AEAD_OVERHEAD, decryptWithNonce, encryptWithNonce, open, seal } from '../../../main/store/aead.js';
import { codeOf } from '../../helpers/errors.js';

const key = new Uint8Array(32).map((_, i) => i);
const aad = new TextEncoder().encode('device/x#journal#1');
const plaintext = new TextEncoder().encode('{"hello":"world"}');

describe('AES-256-GCM seal/open', () => {
  it('round-trips with a fresh nonce each time, 28 bytes longer than the plaintext', () => {
    const a = seal(key, plaintext, aad);
    const b = seal(key, plaintext, aad);
    expect(a.length).toBe(plaintext.length + AEAD_OVERHEAD);
    expect(Buffer.from(a.subarray(0, 12)).equals(Buffer.from(b.subarray(0, 12)))).toBe(false);
    expect(Buffer.from(open(key, a, aad)).toString()).toBe('{"hello":"world"}');
    expect(open(key, seal(key, new Uint8Array(0), aad), aad)).toEqual(new Uint8Array(0));
  });

  it('is nonce ‖ encryptWithNonce(...), and decryptWithNonce inverts it', () => {
    const sealed = seal(key, plaintext, aad);
    const nonce = sealed.subarray(0, 12);
    expect(encryptWithNonce(key, nonce, plaintext, aad)).toEqual(sealed.subarray(12));
    expect(decryptWithNonce(key, nonce, sealed.subarray(12), aad)).toEqual(plaintext);
  });

  it('refuses any flipped bit, another AAD, another key or a truncation with cryptographic', () => {
    const sealed = seal(key, plaintext, aad);
    for (let i = 0; i < sealed.length; i++) {
      const bad = Uint8Array.from(sealed);
      bad[i]! ^= 0x01;
      expect(codeOf(() => open(key, bad, aad))).toBe('cryptographic');
    }
    expect(codeOf(() => open(key, sealed, new TextEncoder().encode('device/x#journal#2')))).toBe('cryptographic');
    expect(codeOf(() => open(new Uint8Array(32).fill(1), sealed, aad))).toBe('cryptographic');
    expect(codeOf(() => open(key, sealed.subarray(0, sealed.length - 1), aad))).toBe('cryptographic');
    expect(codeOf(() => open(key, sealed.subarray(0, AEAD_OVERHEAD - 1), aad))).toBe('cryptographic');
  });

  it('takes only a 32-byte key and a 12-byte nonce (invalid_argument otherwise)', () => {
    expect(codeOf(() => seal(new Uint8Array(16), plaintext, aad))).toBe('invalid_argument');
    expect(codeOf(() => encryptWithNonce(key, new Uint8Array(16), plaintext, aad))).toBe('invalid_argument');
    expect(codeOf(() => decryptWithNonce(key, new Uint8Array(8), new Uint8Array(32), aad))).toBe('invalid_argument');
  });
});
