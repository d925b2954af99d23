import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../../main/core/errors.js';
import { describeError, ERROR_TEXT, toUiError } from '../../renderer/src/lib/errors.js';

describe('renderer error texts', () => {
  it('has a human text for every code in the error catalogue', () => {
    for (const code of Object.keys(ERROR_CATALOGUE)) {
      expect(ERROR_TEXT, code).toHaveProperty(code);
      expect(describeError({ code, message: 'raw' })).not.toBe('raw');
    }
  });

  it('tells what to do when the keychain is locked', () => {
    expect(describeError({ code: 'keychain_locked', message: '' })).toContain('Unlock your keychain (login keyring) and retry');
  });

  it('falls back to the main process message for an unknown code', () => {
    expect(describeError({ code: 'something_new', message: 'the new thing failed' })).toBe('the new thing failed');
  });

  it('reads the code of a PalyraIpcError-like rejection', () => {
    expect(toUiError(Object.assign(new Error('no route'), { code: 'gateway_unreachable' }))).toEqual({ code: 'gateway_unreachable', message: 'no route' });
  });

  it('recovers a known code from a message when the error object lost its code property', () => {
    expect(toUiError(new Error('ca_pin_mismatch: the CA differs'))).toEqual({ code: 'ca_pin_mismatch', message: 'the CA differs' });
    expect(toUiError(new Error('error[keychain_locked]: locked'))).toEqual({ code: 'keychain_locked', message: 'locked' });
  });

  it('treats anything else as internal', () => {
    expect(toUiError(new Error('weird: thing'))).toEqual({ code: 'internal', message: 'weird: thing' });
    expect(toUiError('plain')).toEqual({ code: 'internal', message: 'plain' });
  });
});
