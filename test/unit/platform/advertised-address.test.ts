import { describe, expect, it } from 'vitest';
import { isPalyraError } from '../../../main/core/errors.js';
import { advertisedAddress } from '../../../main/platform/advertised-address.js';

describe('advertisedAddress', () => {
  it('advertises a concrete listen address as it is and says whether it is loopback', () => {
    expect(advertisedAddress('127.0.0.1:7444')).toEqual({ address: '127.0.0.1:7444', loopback: true });
    expect(advertisedAddress('[::1]:7444')).toEqual({ address: '[::1]:7444', loopback: true });
    expect(advertisedAddress('192.168.1.20:7444')).toEqual({ address: '192.168.1.20:7444', loopback: false });
    // A name that merely starts with 127. is not loopback.
    expect(advertisedAddress('127.x.example:7444')).toEqual({ address: '127.x.example:7444', loopback: false });
  });

  it("turns a wildcard host into this machine's name, and refuses a name that is no host name", () => {
    expect(advertisedAddress('0.0.0.0:7444', () => 'office-gw')).toEqual({ address: 'office-gw:7444', loopback: false });
    expect(advertisedAddress('[::]:7444', () => 'office-gw.lan')).toEqual({ address: 'office-gw.lan:7444', loopback: false });
    let code: string | undefined;
    try {
      advertisedAddress('0.0.0.0:7444', () => 'bad_name');
    } catch (error) {
      code = isPalyraError(error) ? error.code : undefined;
    }
    expect(code).toBe('invalid_argument');
  });
});
