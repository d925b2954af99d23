// Device display names: what a device may call itself on the operator's screens (PROTOCOL.md §4 device_name).
import { describe, expect, it } from 'vitest';
import { defaultDeviceName, deviceIdSuffix, MAX_DEVICE_NAME_LENGTH, normalizeDeviceName, resolveDeviceName } from '../../../main/core/device-name.js';

const DEVICE_ID = '01J9Z8Y7X6W5V4T3S2R1Q0P9NM';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code ?? 'uncoded';
  }
  return 'accepted';
}

describe('normalizeDeviceName', () => {
  it('trims the name and stores it in NFC', () => {
    expect(normalizeDeviceName('  Ana’s laptop \t')).toBe('Ana’s laptop');
    // "é" as e + combining acute becomes the one precomposed code point.
    expect(normalizeDeviceName('Cafe\u0301')).toBe('Caf\u00e9');
    expect(normalizeDeviceName('Cafe\u0301').length).toBe(4);
  });

  it('counts characters, not UTF-16 units: 64 astral characters fit, 65 do not', () => {
    const emoji = '\u{1F4BB}';
    expect(normalizeDeviceName(emoji.repeat(MAX_DEVICE_NAME_LENGTH))).toBe(emoji.repeat(64));
    expect(codeOf(() => normalizeDeviceName(emoji.repeat(MAX_DEVICE_NAME_LENGTH + 1)))).toBe('invalid_argument');
    expect(codeOf(() => normalizeDeviceName('x'.repeat(65)))).toBe('invalid_argument');
    expect(normalizeDeviceName('x'.repeat(64))).toHaveLength(64);
  });

  it.each([
    ['empty', ''],
    ['only spaces', '   '],
    ['a newline', 'office\nApproved: yes'],
    ['a carriage return', 'a\rb'],
    ['NUL', 'a\u0000b'],
    ['ESC (terminal escapes)', 'a\u001b[31mred'],
    ['DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
    ['a line separator', 'a\u2028b'],
    ['a right-to-left override', 'evil\u202Egnp.exe'],
    ['a bidi isolate', 'a\u2066b'],
  ])('refuses %s with invalid_argument', (_what, name) => {
    expect(codeOf(() => normalizeDeviceName(name))).toBe('invalid_argument');
  });
});

describe('the name a gateway stores', () => {
  it('derives "<client_kind> <last 6 of the device id>" when the device sent none', () => {
    expect(deviceIdSuffix(DEVICE_ID)).toBe('Q0P9NM');
    expect(defaultDeviceName('node', DEVICE_ID)).toBe('node Q0P9NM');
    expect(resolveDeviceName('', 'desktop', DEVICE_ID)).toBe('desktop Q0P9NM');
    expect(resolveDeviceName('  ', 'cli', DEVICE_ID)).toBe('cli Q0P9NM');
  });

  it('keeps a sent name (normalized) and refuses a bad one', () => {
    expect(resolveDeviceName(' Kitchen Pi ', 'node', DEVICE_ID)).toBe('Kitchen Pi');
    expect(codeOf(() => resolveDeviceName('a\tb', 'node', DEVICE_ID))).toBe('invalid_argument');
  });
});
