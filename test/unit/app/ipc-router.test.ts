import { describe, expect, it } from 'vitest';
import { IpcRouter } from '../../../main/app/ipc-router.js';
import type { ChannelHandlers } from '../../../main/app/ipc-router.js';
import { PalyraError } from '../../../main/core/errors.js';
import { CHANNEL_NAMES } from '../../../main/ipc/contract.js';

const DEVICE_ID = '01HZY3V4J6K8M9N0P1Q2R3S4T5';

/** Every channel fails with not_found unless a test overrides it; calls are recorded. */
function handlers(overrides: Partial<Record<string, (args: never) => Promise<unknown>>> = {}): { handlers: ChannelHandlers; calls: [string, unknown][] } {
  const calls: [string, unknown][] = [];
  const all: Record<string, (args: unknown) => Promise<unknown>> = {};
  for (const channel of CHANNEL_NAMES) {
    all[channel] = (args) => {
      calls.push([channel, args]);
      const override = overrides[channel];
      return override === undefined ? Promise.reject(new PalyraError('not_found', `${channel} is not implemented here`)) : override(args as never);
    };
  }
  return { handlers: all as unknown as ChannelHandlers, calls };
}

describe('IpcRouter', () => {
  it('refuses an unknown channel with invalid_argument and runs no handler', async () => {
    const { handlers: h, calls } = handlers();
    const router = new IpcRouter(h);
    for (const channel of ['nope.nothing', '__proto__', 'constructor', 42, null, undefined, { toString: () => 'app.info' }]) {
      const envelope = await router.handle(channel, {});
      expect(envelope).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    }
    expect(calls).toEqual([]);
  });

  it('validates the arguments before the handler runs and names the field', async () => {
    const { handlers: h, calls } = handlers();
    const router = new IpcRouter(h);
    const envelope = await router.handle('gateway.revokeDevice', { device_id: 'not-an-id' });
    expect(envelope.ok).toBe(false);
    if (!envelope.ok) {
      expect(envelope.error.code).toBe('invalid_argument');
      expect(envelope.error.message).toContain('device_id');
    }
    expect(await router.handle('device.status', { extra: true })).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect(await router.handle('device.status', 'a string')).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect(calls).toEqual([]);
  });

  it('passes the parsed arguments (missing args count as {}) and returns the checked result', async () => {
    const { handlers: h, calls } = handlers({
      'gateway.revokeDevice': (args: { device_id: string }) => Promise.resolve({ device_id: args.device_id }),
      'device.unpair': () => Promise.resolve({ unpaired: true }),
    });
    const router = new IpcRouter(h);
    expect(await router.handle('gateway.revokeDevice', { device_id: DEVICE_ID, reason: 'lost' })).toEqual({ ok: true, result: { device_id: DEVICE_ID } });
    expect(await router.handle('device.unpair', undefined)).toEqual({ ok: true, result: { unpaired: true } });
    expect(calls).toEqual([
      ['gateway.revokeDevice', { device_id: DEVICE_ID, reason: 'lost' }],
      ['device.unpair', {}],
    ]);
  });

  it('turns a thrown PalyraError into its code and message, and anything else into internal', async () => {
    const logged: Record<string, unknown>[] = [];
    const { handlers: h } = handlers({
      'gateway.approve': () => Promise.reject(new PalyraError('pairing_request_not_pending', 'request is not pending')),
      'device.unpair': () => Promise.reject(new TypeError('boom')),
    });
    const router = new IpcRouter(h, { log: (line) => logged.push(line) });
    expect(await router.handle('gateway.approve', { request_id: DEVICE_ID })).toEqual({
      ok: false,
      error: { code: 'pairing_request_not_pending', message: 'request is not pending' },
    });
    const envelope = await router.handle('device.unpair', {});
    expect(envelope).toMatchObject({ ok: false, error: { code: 'internal' } });
    expect(envelope.ok ? '' : envelope.error.message).not.toContain('boom');
    expect(logged).toMatchObject([{ event: 'ipc.internal_error', channel: 'device.unpair', message: 'boom' }]);
  });

  it('never lets an invalid result out: it becomes an internal error, and extra fields are stripped', async () => {
    const { handlers: h } = handlers({
      'device.unpair': () => Promise.resolve({ unpaired: 'yes' }),
      'gateway.removeDevice': () => Promise.resolve({ device_id: DEVICE_ID, private_key_pem: 'secret' }),
    });
    const router = new IpcRouter(h);
    expect(await router.handle('device.unpair', {})).toMatchObject({ ok: false, error: { code: 'internal' } });
    expect(await router.handle('gateway.removeDevice', { device_id: DEVICE_ID })).toEqual({ ok: true, result: { device_id: DEVICE_ID } });
  });
});
