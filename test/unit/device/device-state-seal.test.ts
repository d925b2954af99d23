// The seal of device.v1.json: canonical JSON, the HKDF-derived MAC key, and what a change of any member does.
import { createHmac, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, deriveStateMacKey, openSealedDocument, sealDocument, STATE_MAC_INFO, withoutSeal } from '../../../main/device/device-state-seal.js';

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);

describe('canonicalJson', () => {
  it('sorts members at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [{ z: null, y: 'é' }, true], c: { '': -0.5 } })).toBe('{"a":[{"y":"é","z":null},true],"b":1,"c":{"":-0.5}}');
  });

  it('keeps a member named __proto__ as a member', () => {
    expect(canonicalJson(JSON.parse('{"__proto__":1,"a":2}'))).toBe('{"__proto__":1,"a":2}');
  });

  it('refuses what JSON cannot carry', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson({ a: undefined })).toThrow(TypeError);
  });
});

describe('sealDocument / openSealedDocument', () => {
  const key = deriveStateMacKey(SECRET);
  const fields = { device_id: '01J0000000000000000000000', gateway: { addresses: ['127.0.0.1:7444'], ca_pin: 'x' }, paired: true };

  it('derives K with HKDF-SHA256 (empty salt, the documented info) and MACs the canonical JSON with HMAC-SHA256', () => {
    const expectedKey = Buffer.from(hkdfSync('sha256', SECRET, new Uint8Array(0), STATE_MAC_INFO, 32));
    expect(Buffer.from(key).equals(expectedKey)).toBe(true);
    const sealed = sealDocument(fields, 3, key);
    const body = '{"device_id":"01J0000000000000000000000","gateway":{"addresses":["127.0.0.1:7444"],"ca_pin":"x"},"generation":3,"paired":true}';
    expect(sealed).toEqual({ ...fields, generation: 3, mac: createHmac('sha256', expectedKey).update(body).digest('hex') });
    expect(Object.keys(sealed).slice(-2)).toEqual(['generation', 'mac']);
  });

  it('opens what it sealed, and gives back the fields without the seal', () => {
    const opened = openSealedDocument(JSON.parse(JSON.stringify(sealDocument(fields, 7, key))) as Record<string, unknown>, key);
    expect(opened).toEqual({ ok: true, generation: 7, fields });
    expect(withoutSeal(sealDocument(fields, 7, key))).toEqual(fields);
  });

  it.each([
    ['a changed address', (d: Record<string, unknown>) => ({ ...d, gateway: { addresses: ['10.0.0.1:7444'], ca_pin: 'x' } })],
    ['a changed generation', (d: Record<string, unknown>) => ({ ...d, generation: 8 })],
    ['an added member', (d: Record<string, unknown>) => ({ ...d, extra: 1 })],
    ['a removed member', (d: Record<string, unknown>) => withoutMember(d, 'paired')],
    ['a removed generation', (d: Record<string, unknown>) => withoutMember(d, 'generation')],
    ['a flipped MAC bit', (d: Record<string, unknown>) => ({ ...d, mac: flipHex(d.mac as string) })],
    ['an upper-case MAC', (d: Record<string, unknown>) => ({ ...d, mac: (d.mac as string).toUpperCase() })],
  ])('refuses %s', (_name, change) => {
    const opened = openSealedDocument(change(sealDocument(fields, 7, key)), key);
    expect(opened.ok).toBe(false);
  });

  it('refuses a document sealed with another secret', () => {
    const other = deriveStateMacKey(SECRET.map((b) => b ^ 0xff));
    expect(openSealedDocument(sealDocument(fields, 1, other), key)).toMatchObject({ ok: false, problem: 'fails its MAC check' });
  });

  it('only seals positive generations and 32-byte secrets', () => {
    expect(() => sealDocument(fields, 0, key)).toThrow(RangeError);
    expect(() => deriveStateMacKey(new Uint8Array(16))).toThrow(RangeError);
  });
});

function withoutMember(d: Record<string, unknown>, name: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(d).filter(([k]) => k !== name));
}

function flipHex(hex: string): string {
  const last = Number.parseInt(hex.slice(-1), 16) ^ 1;
  return hex.slice(0, -1) + last.toString(16);
}
