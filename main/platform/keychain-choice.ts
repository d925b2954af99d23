/**
 * Where the gateway state store key lives, shared by the CLI and the desktop app: the OS keychain when there is one,
 * else a key file in the state directory. PALYRA_KEYCHAIN=file forces the key file; =os requires the OS keychain.
 */

import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import type { Keychain } from '../store/keychain.js';
import { openOsKeychain } from '../store/keychain.js';
import { defaultStateDir } from './paths.js';

export interface KeychainChoice {
  /** null: the store key lives in a key file in the state directory. */
  readonly keychain: Keychain | null;
  /** Why, for `gateway run`'s log. */
  readonly reason: 'PALYRA_KEYCHAIN=file' | 'PALYRA_KEYCHAIN=os' | 'os_keychain_available' | 'no_os_keychain';
}

/**
 * PALYRA_KEYCHAIN=file forces the key file; =os requires the OS keychain; unset tries the OS keychain and falls back
 * to the key file only when there is none. A locked keychain is returned as such: opening the store then fails with
 * `keychain_locked`, never silently using a key file.
 */
export async function chooseKeychain(env: NodeJS.ProcessEnv): Promise<KeychainChoice> {
  const setting = env.PALYRA_KEYCHAIN ?? '';
  if (setting === 'file') return { keychain: null, reason: 'PALYRA_KEYCHAIN=file' };
  if (setting !== '' && setting !== 'os') {
    throw new PalyraError('usage', `PALYRA_KEYCHAIN must be 'os' or 'file' (got '${setting.slice(0, 32)}')`);
  }
  const keychain = await openOsKeychain();
  if (keychain !== null) return { keychain, reason: setting === 'os' ? 'PALYRA_KEYCHAIN=os' : 'os_keychain_available' };
  if (setting === 'os') throw new PalyraError('keychain_unavailable', 'PALYRA_KEYCHAIN=os but no OS keychain is available');
  return { keychain: null, reason: 'no_os_keychain' };
}

/** The explicit directory, else env PALYRA_STATE_DIR, else the desktop app's gateway directory; always absolute. */
export function stateDirFrom(explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  const fromEnv = env.PALYRA_STATE_DIR;
  const chosen = explicit ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : defaultStateDir());
  return path.resolve(chosen);
}
