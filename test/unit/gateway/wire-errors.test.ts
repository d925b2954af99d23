// Errors of the gateway's own storage reach clients with their code and a generic message, never local paths.
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, PalyraError } from '../../../main/core/errors.js';
import { toServiceError } from '../../../main/gateway/node-rpc.js';
import { ERROR_CODE_METADATA_KEY } from '../../../main/rpc/rpc-errors.js';

describe('toServiceError', () => {
  it.each(['state_lock_timeout', 'store_io_failed', 'state_corrupt', 'state_rollback', 'keychain_locked', 'internal'] as const)(
    'sends %s without the local message',
    (code) => {
      const error = toServiceError(new PalyraError(code, `timed out waiting for /home/op/.config/Palyra Desktop/gateway/.identity-state.lock held by process 4242`));
      expect(error.details).toBe(ERROR_CATALOGUE[code].message);
      expect(error.details).not.toMatch(/\/home|4242/);
      expect(error.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual([code]);
    },
  );

  it('keeps the message of errors about the request itself', () => {
    expect(toServiceError(new PalyraError('invalid_argument', 'device_id must be a canonical ULID')).details).toBe('device_id must be a canonical ULID');
  });
});
