/**
 * One way to run a state mutation exclusively: the state-directory lock for a filesystem store (other processes
 * too), an in-process queue for a store without a directory (tests, throwaway gateways).
 */

import type { SecretStore } from '../store/secret-store.js';
import { withStateLock } from '../store/state-lock.js';
import type { StateLockOptions } from '../store/state-lock.js';

const memoryLocks = new WeakMap<SecretStore, Promise<unknown>>();

export function runLocked<T>(store: SecretStore, stateDir: string | null, lock: StateLockOptions, fn: () => Promise<T>): Promise<T> {
  if (stateDir !== null) return withStateLock(stateDir, fn, lock);
  const previous = memoryLocks.get(store) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  memoryLocks.set(store, run.catch(() => undefined));
  return run;
}
