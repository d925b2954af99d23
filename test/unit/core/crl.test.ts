// The CRL numbering and entry selection rules (PROTOCOL.md §7.5), and DER/PEM input of CRLs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCertificateAuthority, CertificateAuthority } from '../../../main/core/certificate-authority.js';
import { crlDer, crlEntriesAt, nextCrlNumber, parseCrl } from '../../../main/core/crl.js';
import { PalyraError } from '../../../main/core/errors.js';
import { encodePem } from '../../../main/core/pem.js';

const NOW = Date.UTC(2030, 0, 2, 3, 4, 5, 678);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof PalyraError ? e.code : String(e);
  }
}

describe('nextCrlNumber', () => {
  it('is thisUpdate in unix seconds when nothing larger was published', () => {
    expect(nextCrlNumber(NOW, undefined)).toBe(Math.floor(NOW / 1000));
    expect(nextCrlNumber(NOW, Math.floor(NOW / 1000) - 100)).toBe(Math.floor(NOW / 1000));
  });

  it('goes above the last published number within one second and after the clock stepped back', () => {
    const second = Math.floor(NOW / 1000);
    expect(nextCrlNumber(NOW, second)).toBe(second + 1);
    expect(nextCrlNumber(NOW - 3_600_000, second + 5)).toBe(second + 6);
  });

  it('always exceeds the previous number, whatever the clock does', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_000_000_000_000 }), fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }), (now, last) => {
        const next = nextCrlNumber(now, last);
        expect(Number.isSafeInteger(next)).toBe(true);
        if (last !== undefined) expect(next).toBeGreaterThan(last);
      }),
    );
  });

  it('refuses a previous number that is not a non-negative integer', () => {
    expect(codeOf(() => nextCrlNumber(NOW, -1))).toBe('invalid_argument');
    expect(codeOf(() => nextCrlNumber(NOW, 1.5))).toBe('invalid_argument');
  });
});

describe('crlEntriesAt', () => {
  it('lists revoked certificates with a known serial that have not expired yet', () => {
    const entries = crlEntriesAt(
      [
        { serialHex: '0a', revokedAtUnixMs: NOW - 10, expiresAtUnixMs: NOW + 1 },
        { serialHex: '', revokedAtUnixMs: NOW - 10, expiresAtUnixMs: Number.MAX_SAFE_INTEGER },
        { serialHex: '0b', revokedAtUnixMs: NOW - 10, expiresAtUnixMs: NOW },
        { serialHex: '0c', revokedAtUnixMs: NOW - 20, expiresAtUnixMs: NOW - 1 },
      ],
      NOW,
    );
    expect(entries).toEqual([{ serialHex: '0a', revokedAtUnixMs: NOW - 10 }]);
  });
});

describe('crlDer', () => {
  it('reads the same CRL from PEM labelled X509 CRL, from the library label CRL, and from DER', async () => {
    const ca = await CertificateAuthority.load(await createCertificateAuthority({ now: NOW }));
    const pem = await ca.createCrl({ revoked: [{ serialHex: '1234', revokedAtUnixMs: NOW }], now: NOW, crlNumber: 77 });
    const der = crlDer(pem);
    expect(der[0]).toBe(0x30);
    expect(crlDer(encodePem(der, 'CRL'))).toEqual(der);
    expect(crlDer(der)).toBe(der);
    expect(parseCrl(der)).toMatchObject({ crlNumber: 77, revoked: [{ serialHex: '1234' }] });
    expect(codeOf(() => crlDer(encodePem(der, 'CERTIFICATE')))).toBe('certificate_parsing_failed');
  });
});
