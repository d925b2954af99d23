import { describe, expect, it } from 'vitest';
import { Output, formatDuration, formatExpiry, formatTable } from '../../../main/cli/output.js';
import type { OutputStreams } from '../../../main/cli/output.js';
import { PalyraError } from '../../../main/core/errors.js';

function capture(): { streams: OutputStreams; stdout: () => string; stderr: () => string } {
  let stdout = '';
  let stderr = '';
  return {
    streams: { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdoutIsTty: false },
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

describe('Output', () => {
  it('prints errors as error[CODE]: message on stderr with exit 1, usage errors with exit 2', () => {
    const c = capture();
    const out = new Output({ json: false, streams: c.streams });
    expect(out.error(new PalyraError('pairing_request_not_pending', 'it is approved'))).toBe(1);
    expect(out.error(new PalyraError('usage', 'bad\nflag'))).toBe(2);
    expect(c.stderr()).toBe('error[pairing_request_not_pending]: it is approved\nerror[usage]: bad flag\n');
    expect(c.stdout()).toBe('');
  });

  it('prints errors as one JSON document on stdout with --json', () => {
    const c = capture();
    const out = new Output({ json: true, streams: c.streams });
    expect(out.error(new PalyraError('not_found', 'device X is not paired'))).toBe(1);
    expect(JSON.parse(c.stdout())).toEqual({ error: { code: 'not_found', message: 'device X is not paired' } });
    expect(c.stderr()).toBe('');
  });
});

describe('text formatting', () => {
  it('formats remaining times for people', () => {
    expect(formatDuration(30_000)).toBe('30 s');
    expect(formatDuration(600_000)).toBe('10 min');
    expect(formatDuration(599_400)).toBe('10 min');
    expect(formatDuration(7_200_000)).toBe('2 h');
    expect(formatDuration(9_000_000)).toBe('2 h 30 min');
    expect(formatDuration(-5)).toBe('0 s');
  });

  it('formats an expiry with the local clock time', () => {
    const now = new Date(2030, 0, 15, 9, 5, 0).getTime();
    expect(formatExpiry(now + 600_000, now)).toBe('expires in 10 min (09:15)');
    expect(formatExpiry(now + 86_400_000, now)).toBe('expires in 24 h (2030-01-16 09:05)');
  });

  it('aligns table columns without trailing spaces', () => {
    expect(formatTable(['A', 'LONG'], [['xyz', '1'], ['q', '']])).toBe('A    LONG\nxyz  1\nq');
  });
});
