// preload/preload.ts under a FAKE `electron` module. This is the one place a fake is justified: the real module is
// only a path to the Electron binary, which does not exist on this machine (and importing it would try to download
// it), and contextBridge/ipcRenderer exist only inside an Electron renderer. The fake records what preload exposes
// and lets the test play the main process's side of ipcRenderer. The real thing runs in test/electron/.
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CHANNEL_NAMES, EVENT_NAMES, methodNameOf, PalyraIpcError } from '../../../main/ipc/contract.js';
import type { PalyraApi } from '../../../main/ipc/contract.js';

const fake = vi.hoisted(() => {
  const exposed = new Map<string, unknown>();
  const rendererListeners = new Map<string, ((event: unknown, message: unknown) => void)[]>();
  return {
    exposed,
    rendererListeners,
    exposeInMainWorld: vi.fn((key: string, api: unknown) => {
      exposed.set(key, api);
    }),
    invoke: vi.fn<(channel: string, args: unknown) => Promise<unknown>>(),
    on: vi.fn((channel: string, listener: (event: unknown, message: unknown) => void) => {
      rendererListeners.set(channel, [...(rendererListeners.get(channel) ?? []), listener]);
    }),
  };
});

vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: fake.exposeInMainWorld },
  ipcRenderer: { invoke: fake.invoke, on: fake.on },
}));

let api: PalyraApi;

/** What the main process would send on `palyra:event`. */
function emitFromMain(message: unknown): void {
  for (const listener of fake.rendererListeners.get('palyra:event') ?? []) listener({ sender: 'ipcRenderer' }, message);
}

beforeAll(async () => {
  await import('../../../preload/preload.js');
  api = fake.exposed.get('palyra') as PalyraApi;
});

beforeEach(() => {
  fake.invoke.mockReset();
});

describe('what preload exposes', () => {
  it('exposes one object, window.palyra, once', () => {
    expect(fake.exposeInMainWorld).toHaveBeenCalledTimes(1);
    expect([...fake.exposed.keys()]).toEqual(['palyra']);
    expect(Object.isFrozen(api)).toBe(true);
  });

  it('has exactly one method per contract channel plus on(), and nothing generic', () => {
    const expected = [...CHANNEL_NAMES.map(methodNameOf), 'on'].sort();
    expect(Object.keys(api).sort()).toEqual(expected);
    for (const key of Object.keys(api)) expect(typeof (api as unknown as Record<string, unknown>)[key]).toBe('function');
    for (const generic of ['invoke', 'send', 'sendSync', 'ipcRenderer', 'postMessage', 'removeAllListeners']) expect(api).not.toHaveProperty(generic);
  });

  it('never hands ipcRenderer or its functions across the bridge', () => {
    const values = Object.values(api as unknown as Record<string, unknown>);
    expect(values).not.toContain(fake.invoke);
    expect(values).not.toContain(fake.on);
  });

  it('listens on the single event channel and nothing else', () => {
    expect(fake.on).toHaveBeenCalledTimes(1);
    expect(fake.on.mock.calls[0]?.[0]).toBe('palyra:event');
  });
});

describe('calls', () => {
  it('invokes palyra:<channel> with the arguments and resolves with the result', async () => {
    fake.invoke.mockResolvedValueOnce({ ok: true, result: { pairing_id: 'p-1' } });
    const args = { method: 'pin', pin: '123456', gateway: '127.0.0.1:7444' } as const;
    await expect(api.devicePairStart(args)).resolves.toEqual({ pairing_id: 'p-1' });
    expect(fake.invoke).toHaveBeenCalledWith('palyra:device.pairStart', args);
  });

  it('maps every channel to its own IPC channel', async () => {
    for (const channel of CHANNEL_NAMES) {
      fake.invoke.mockResolvedValueOnce({ ok: true, result: null });
      const method = (api as unknown as Record<string, (args: unknown) => Promise<unknown>>)[methodNameOf(channel)]!;
      await method({});
      expect(fake.invoke).toHaveBeenLastCalledWith(`palyra:${channel}`, {});
    }
  });

  it('rejects with the error code, in a shape that survives the bridge (an Error would lose its code)', async () => {
    const error = { code: 'pairing_code_expired', message: 'the pairing code has expired' } as const;
    fake.invoke.mockResolvedValueOnce({ ok: false, error });
    const rejection: unknown = await api.devicePairStart({ method: 'pin', pin: '123456', gateway: '127.0.0.1:7444' }).catch((e: unknown) => e);
    expect(rejection).toEqual({ name: 'PalyraIpcError', ...error });
    // contextBridge clones like structuredClone: our rejection keeps its code, a PalyraIpcError would not.
    expect(structuredClone(rejection)).toEqual({ name: 'PalyraIpcError', ...error });
    expect((structuredClone(new PalyraIpcError(error)) as { code?: unknown }).code).toBeUndefined();
  });

  it('rejects with internal when the main process throws or answers something that is not an envelope', async () => {
    fake.invoke.mockRejectedValueOnce(new Error("Error invoking remote method 'palyra:app.info': boom"));
    await expect(api.appInfo({})).rejects.toMatchObject({ code: 'internal', message: 'app.info: the main process did not answer' });
    for (const reply of [undefined, null, 'ok', { ok: true }, { ok: false }, { ok: false, error: { code: 1 } }]) {
      fake.invoke.mockResolvedValueOnce(reply);
      await expect(api.appInfo({})).rejects.toMatchObject({ code: 'internal' });
    }
  });
});

describe('events', () => {
  it('delivers contract events to their listeners only', () => {
    const gateway = vi.fn();
    const device = vi.fn();
    const offGateway = api.on('gateway.event', gateway);
    const offDevice = api.on('device.status', device);
    const payload = { type: 'devices.changed' };
    emitFromMain({ event: 'gateway.event', payload });
    expect(gateway).toHaveBeenCalledWith(payload);
    expect(device).not.toHaveBeenCalled();
    offGateway();
    offDevice();
  });

  it('drops messages that do not name a contract event', () => {
    const listeners = EVENT_NAMES.map((event) => {
      const listener = vi.fn();
      return { listener, off: api.on(event, listener) };
    });
    for (const message of [{ event: 'app.evil', payload: {} }, { event: 'gateway.event' }, { payload: {} }, 'gateway.event', null, 42, { event: '__proto__', payload: {} }]) {
      emitFromMain(message);
    }
    for (const { listener, off } of listeners) {
      expect(listener).not.toHaveBeenCalled();
      off();
    }
  });

  it('stops delivering after unsubscribe, and one throwing listener does not starve the next', () => {
    const throwing = vi.fn(() => {
      throw new Error('renderer bug');
    });
    const next = vi.fn();
    const offThrowing = api.on('app.deepLink', throwing);
    const offNext = api.on('app.deepLink', next);
    emitFromMain({ event: 'app.deepLink', payload: { uri: 'palyra://pair?v=1' } });
    expect(next).toHaveBeenCalledTimes(1);
    offThrowing();
    offNext();
    emitFromMain({ event: 'app.deepLink', payload: { uri: 'palyra://pair?v=1' } });
    expect(throwing).toHaveBeenCalledTimes(1);
    expect(next).toHaveBeenCalledTimes(1);
  });

  it('refuses to subscribe to an event that is not in the contract', () => {
    expect(() => api.on('app.evil' as never, () => undefined)).toThrow(TypeError);
  });
});
