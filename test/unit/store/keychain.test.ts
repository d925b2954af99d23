import { describe, expect, it } from 'vitest';
import { isPalyraError } from '../../../main/core/errors.js';
import { MemoryKeychain } from '../../../main/store/keychain.js';

describe('MemoryKeychain', () => {
  it('round-trips set, get and delete per service and account', async () => {
    const keychain = new MemoryKeychain();
    expect(await keychain.status()).toBe('available');
    await keychain.set('svc', 'acct', 'value');
    expect(await keychain.get('svc', 'acct')).toBe('value');
    expect(await keychain.get('svc', 'other')).toBeNull();
    expect(await keychain.get('other', 'acct')).toBeNull();
    expect(await keychain.delete('svc', 'acct')).toBe(true);
    expect(await keychain.delete('svc', 'acct')).toBe(false);
    expect(await keychain.get('svc', 'acct')).toBeNull();
  });

  it('when locked, answers keychain_locked instead of null for every operation', async () => {
    const keychain = new MemoryKeychain();
    await keychain.set('svc', 'acct', 'value');
    keychain.setStatus('locked');
    expect(await keychain.status()).toBe('locked');
    for (const op of [() => keychain.get('svc', 'acct'), () => keychain.set('svc', 'x', 'v'), () => keychain.delete('svc', 'acct')]) {
      const error: unknown = await op().catch((e: unknown) => e);
      expect(isPalyraError(error, 'keychain_locked')).toBe(true);
    }
    keychain.setStatus('available');
    expect(await keychain.get('svc', 'acct')).toBe('value');
    expect(keychain.size).toBe(1);
  });

  it('when unavailable, answers keychain_unavailable', async () => {
    const error: unknown = await new MemoryKeychain('unavailable').get('svc', 'acct').catch((e: unknown) => e);
    expect(isPalyraError(error, 'keychain_unavailable')).toBe(true);
  });
});
