// The node capabilities and the capability.result payload (REFERENCE.md §1.12, §3.11).
import { describe, expect, it, vi } from 'vitest';
import {
  capabilityResultPayload,
  DENIED_LOCALLY,
  httpUrl,
  MEDIATED_CAPABILITIES,
  NODE_CAPABILITIES,
  runCapability,
} from '../../../main/device/capabilities.js';
import type { CapabilityHost } from '../../../main/device/capabilities.js';

function host(extra: Partial<CapabilityHost> = {}): CapabilityHost {
  return {
    deviceId: '3BF4ZGD3WSQR9NR5ERHQG7DF1B',
    identityFingerprint: 'ab'.repeat(32),
    clientKind: 'node',
    platform: 'linux-x64',
    certificateFingerprint: 'cd'.repeat(32),
    certExpiresAtUnixMs: 1_800_000_000_000,
    gatewayCaFingerprint: 'ef'.repeat(32),
    uptimeMs: 1234.4,
    log: () => undefined,
    ...extra,
  };
}

const json = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));

describe('node capabilities', () => {
  it('registers echo, system.health, system.identity, desktop.notify and desktop.open_url; only open_url is mediated', () => {
    expect([...NODE_CAPABILITIES]).toEqual(['echo', 'system.health', 'system.identity', 'desktop.notify', 'desktop.open_url']);
    expect([...MEDIATED_CAPABILITIES]).toEqual(['desktop.open_url']);
  });

  it('echoes its input, and treats empty input as null', async () => {
    expect(await runCapability('echo', json({ a: [1, 'b'] }), host())).toEqual({ state: 'succeeded', output: { a: [1, 'b'] } });
    expect(await runCapability('echo', new Uint8Array(), host())).toEqual({ state: 'succeeded', output: null });
  });

  it('fails on input that is not JSON and on an unknown capability', async () => {
    expect(await runCapability('echo', Buffer.from('{nope'), host())).toEqual({ state: 'failed', error: 'capability input is not valid JSON' });
    expect(await runCapability('desktop.open_path', json(null), host())).toEqual({ state: 'failed', error: "unknown capability 'desktop.open_path'" });
  });

  it('reports identity and health of the device', async () => {
    expect(await runCapability('system.identity', json(null), host())).toEqual({
      state: 'succeeded',
      output: {
        device_id: '3BF4ZGD3WSQR9NR5ERHQG7DF1B',
        identity_fingerprint: 'ab'.repeat(32),
        client_kind: 'node',
        platform: 'linux-x64',
        certificate_fingerprint: 'cd'.repeat(32),
        gateway_ca_fingerprint: 'ef'.repeat(32),
      },
    });
    expect(await runCapability('system.health', json(null), host())).toEqual({
      state: 'succeeded',
      output: { status: 'ok', platform: 'linux-x64', uptime_ms: 1234, cert_expires_at_unix_ms: 1_800_000_000_000 },
    });
  });

  it('denies desktop.open_url without a confirmation hook (headless) and when the person says no', async () => {
    expect(await runCapability('desktop.open_url', json({ url: 'https://example.org/' }), host())).toEqual({ state: 'denied', error: DENIED_LOCALLY });
    expect(DENIED_LOCALLY).toBe('denied locally');
    const no = vi.fn(() => Promise.resolve(false));
    expect(await runCapability('desktop.open_url', json({ url: 'https://example.org/' }), host({ confirmOpenUrl: no }))).toEqual({ state: 'denied', error: DENIED_LOCALLY });
    const broken = vi.fn(() => Promise.reject(new Error('dialog crashed')));
    expect(await runCapability('desktop.open_url', json({ url: 'https://example.org/' }), host({ confirmOpenUrl: broken }))).toMatchObject({ state: 'denied' });
  });

  it('opens only absolute http(s) URLs, and only after the confirmation', async () => {
    const yes = vi.fn(() => Promise.resolve(true));
    expect(await runCapability('desktop.open_url', json({ url: 'http://example.org/x?y=1' }), host({ confirmOpenUrl: yes }))).toEqual({
      state: 'succeeded',
      output: { opened: true, url: 'http://example.org/x?y=1' },
    });
    for (const url of ['file:///etc/passwd', 'javascript:alert(1)', 'ftp://example.org/', '/relative', 'x'.repeat(3000), 42]) {
      expect(await runCapability('desktop.open_url', json({ url }), host({ confirmOpenUrl: yes }))).toMatchObject({ state: 'failed' });
    }
    expect(yes).toHaveBeenCalledTimes(1);
    expect(httpUrl('HTTPS://Example.org')).toBe('https://example.org/');
  });

  it('hands desktop.notify to the notifier, or logs it when there is none', async () => {
    const notify = vi.fn();
    expect(await runCapability('desktop.notify', json({ title: 'Build', body: 'done' }), host({ notify }))).toEqual({ state: 'succeeded', output: { delivered: true } });
    expect(notify).toHaveBeenCalledWith('Build', 'done');
    const log = vi.fn();
    expect(await runCapability('desktop.notify', json({ title: 'Build' }), host({ log }))).toEqual({ state: 'succeeded', output: { delivered: false, logged: true } });
    expect(log).toHaveBeenCalledWith({ event: 'desktop.notify', title: 'Build', body: '' });
    expect(await runCapability('desktop.notify', json({ body: 'no title' }), host())).toMatchObject({ state: 'failed' });
  });
});

describe('capability.result payload', () => {
  it('carries the output of a success and null with the error of a failure', () => {
    expect(capabilityResultPayload('R1', { state: 'succeeded', output: { ok: 1 } }, 100)).toEqual({
      payload: { request_id: 'R1', success: true, output_json: { ok: 1 }, error: '' },
      state: 'succeeded',
    });
    expect(capabilityResultPayload('R2', { state: 'denied', error: 'denied locally' }, 100)).toEqual({
      payload: { request_id: 'R2', success: false, output_json: null, error: 'denied locally' },
      state: 'denied',
    });
  });

  it('replaces an output over max(max_payload_bytes, 1) bytes by the reference error text', () => {
    const output = 'x'.repeat(8); // JSON "xxxxxxxx" is 10 bytes
    expect(capabilityResultPayload('R', { state: 'succeeded', output }, 10).state).toBe('succeeded');
    expect(capabilityResultPayload('R', { state: 'succeeded', output }, 9)).toEqual({
      payload: { request_id: 'R', success: false, output_json: null, error: 'capability output exceeds max_payload_bytes=9' },
      state: 'failed',
    });
    expect(capabilityResultPayload('R', { state: 'succeeded', output: null }, 0).payload.error).toBe('capability output exceeds max_payload_bytes=1');
    expect(capabilityResultPayload('R', { state: 'succeeded', output: 'é' }, 4).state).toBe('succeeded');
    expect(capabilityResultPayload('R', { state: 'succeeded', output: 'é' }, 3).state).toBe('failed');
  });
});
