// The desktop app's file logger: lines are JSON with event names and codes; secrets never reach the file.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatLogLine, isSecretFieldName, openFileLogger, redactText, redactValue, REDACTED } from '../../../main/app/logger.js';

const PEM = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHx1c2Vyc2VjcmV0a2V5bWF0ZXJpYWwxMjM0NTY3\n-----END PRIVATE KEY-----';
const URI = 'palyra://pair?v=1&gw=127.0.0.1:7444&m=qr&t=Zx81kQ0pLm3NvB7cR2sT9w&ca=q2Zr7Yk4mN8pV1xB6cD3fG5hJ0lK9sA2wE7tU4iO1yR&k=node&exp=1900000000';
const TOKEN = 'Zx81kQ0pLm3NvB7cR2sT9w';
const FINGERPRINT = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

describe('isSecretFieldName', () => {
  it.each(['pin', 'token', 'ca_pin', 'caPin', 'privateKey', 'private_key_pem', 'qr-token', 'sas', 'uri', 'csr', 'Authorization', 'signingKeyHex', 'cert'])(
    'treats %s as secret',
    (name) => {
      expect(isSecretFieldName(name)).toBe(true);
    },
  );

  it.each(['code', 'event', 'channel', 'request_id', 'device_id', 'pinned_by', 'listen', 'reason', 'origin', 'tokenizer_version'])('logs %s', (name) => {
    expect(isSecretFieldName(name)).toBe(false);
  });
});

describe('redactText', () => {
  it('removes PINs, tokens, keys, fingerprints, PEM blocks and pairing URIs from free text', () => {
    const text = `pair with PIN 482913 or 482 913 using ${URI}; token=${TOKEN} key ${FINGERPRINT}\n${PEM}`;
    const out = redactText(text);
    for (const secret of ['482913', '482 913', TOKEN, FINGERPRINT, 'MC4CAQAwBQYDK2VwBCIE', 'q2Zr7Yk4mN8pV1xB6cD3fG5hJ0lK9sA2wE7tU4iO1yR']) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain(REDACTED);
  });

  it('keeps error codes, event names, canonical ids, addresses, paths and ordinary words', () => {
    const text =
      'pairing_code_expired at 127.0.0.1:7444 for 01HZX3V4W5Y6Z7A8B9C0D1E2F3 in /home/ada/.config/Palyra Desktop/gateway: ' +
      'setPermissionRequestHandler gateway.start_failed transcript_verification_failed';
    expect(redactText(text)).toBe(text);
  });

  it('leaves longer numbers (times, sizes) alone', () => {
    expect(redactText('took 1234567 µs at 1700000000000')).toBe('took 1234567 µs at 1700000000000');
  });

  it('bounds the length of what it writes', () => {
    expect(redactText('a '.repeat(5000)).length).toBeLessThanOrEqual(2001);
  });
});

describe('redactValue', () => {
  it('redacts secret-named fields at any depth, and secret-looking values under harmless names', () => {
    const value = redactValue({ outer: { pin: 123456, token: TOKEN, nested: [{ privateKey: 'x' }] }, code: '482913', message: `bad ${TOKEN}` });
    expect(value).toEqual({ outer: { pin: REDACTED, token: REDACTED, nested: [{ privateKey: REDACTED }] }, code: REDACTED, message: `bad ${REDACTED}` });
  });

  it('keeps an error code under "code" and serialises errors without their secrets', () => {
    const error = Object.assign(new Error(`pairing failed for ${URI}`), { code: 'invalid_pairing_proof' });
    const out = redactValue({ error }) as { error: { code: string; message: string; name: string } };
    expect(out.error.code).toBe('invalid_pairing_proof');
    expect(out.error.name).toBe('Error');
    expect(out.error.message).not.toContain(TOKEN);
  });

  it('never writes raw bytes and stops at a bounded depth', () => {
    expect(redactValue(new Uint8Array([1, 2, 3]))).toBe(REDACTED);
    expect(JSON.stringify(redactValue({ a: { b: { c: { d: { e: { f: 1 } } } } } }))).toContain('[…]');
  });
});

describe('formatLogLine', () => {
  it('writes one JSON object per line with time, level, event and the fields', () => {
    const line = formatLogLine('warn', 'ipc.sender_refused', { channel: 'gateway.approve', origin: 'https://evil.example' }, 0);
    expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(line)).toEqual({ ts: '1970-01-01T00:00:00.000Z', level: 'warn', event: 'ipc.sender_refused', channel: 'gateway.approve', origin: 'https://evil.example' });
  });

  it('does not let fields overwrite ts, level or event, and replaces an odd event name', () => {
    const parsed = JSON.parse(formatLogLine('info', `evil ${TOKEN}`, { level: 'error', ts: 'x' }, 0)) as Record<string, unknown>;
    expect(parsed).toMatchObject({ level: 'info', event: 'log.invalid_event_name', field_level: 'error', field_ts: 'x' });
    expect(JSON.stringify(parsed)).not.toContain(TOKEN);
  });
});

describe('openFileLogger', () => {
  let dir: string | undefined;

  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('appends redacted lines to logs/palyra-desktop.log, private to the user', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-log-'));
    const logs = path.join(dir, 'logs');
    const mirrored: string[] = [];
    const log = openFileLogger({ dir: logs, now: () => 0, mirror: (l) => mirrored.push(l) });
    log.info('app.started', { version: '0.1.0' });
    log.warn('device.pairing_ended', { code: 'pairing_code_expired', pin: '482913' });
    log.error('gateway.start_failed', { message: `listen failed for ${URI}` });
    await log.close();
    log.info('after.close');

    const text = await readFile(path.join(logs, 'palyra-desktop.log'), 'utf8');
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.level, l.event])).toEqual([
      ['info', 'app.started'],
      ['warn', 'device.pairing_ended'],
      ['error', 'gateway.start_failed'],
    ]);
    expect(lines[1]).toMatchObject({ code: 'pairing_code_expired', pin: REDACTED });
    expect(text).not.toContain('482913');
    expect(text).not.toContain(TOKEN);
    expect(mirrored.join('')).toBe(text);
    if (process.platform !== 'win32') {
      expect((await stat(path.join(logs, 'palyra-desktop.log'))).mode & 0o777).toBe(0o600);
      expect((await stat(logs)).mode & 0o777).toBe(0o700);
    }
  });

  it('rotates a log that has grown past the limit when it opens', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'palyra-log-'));
    const file = path.join(dir, 'palyra-desktop.log');
    await writeFile(file, 'x'.repeat(200));
    const log = openFileLogger({ dir, maxBytes: 100, now: () => 0 });
    log.info('app.started');
    await log.close();
    expect(await readFile(`${file}.1`, 'utf8')).toBe('x'.repeat(200));
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ event: 'app.started' });
  });
});
