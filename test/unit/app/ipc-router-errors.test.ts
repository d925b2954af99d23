// Issue 17: what an error tells the renderer. An internal error (a bug, anything thrown that is not a PalyraError, a
// result that fails its schema) crosses IPC as `internal`, a generic message and an incident id; its own message and
// stack go to the log under that id, with the logger's redaction. Coded errors keep their messages, but never a
// local filesystem path: each becomes its last component.
import { describe, expect, it } from 'vitest';
import { INTERNAL_ERROR_MESSAGE, IpcRouter } from '../../../main/app/ipc-router.js';
import type { ChannelHandlers } from '../../../main/app/ipc-router.js';
import { formatLogLine } from '../../../main/app/logger.js';
import { PalyraError } from '../../../main/core/errors.js';
import { CHANNEL_NAMES } from '../../../main/ipc/contract.js';
import type { IpcEnvelope } from '../../../main/ipc/contract.js';

const INTERNAL = /^Something went wrong inside Palyra; see the log for details \(incident ([0-9a-f]{8})\)\.$/;
const HOME_FILE = '/home/ana/.config/Palyra Desktop/settings.json';

function routerWith(overrides: Partial<Record<string, () => Promise<unknown>>>): { router: IpcRouter; logged: Record<string, unknown>[] } {
  const logged: Record<string, unknown>[] = [];
  const all: Record<string, () => Promise<unknown>> = {};
  for (const channel of CHANNEL_NAMES) all[channel] = overrides[channel] ?? (() => Promise.reject(new PalyraError('not_found', 'no handler')));
  return { router: new IpcRouter(all as unknown as ChannelHandlers, { log: (line) => logged.push(line) }), logged };
}

function errorOf(envelope: IpcEnvelope<unknown>): { code: string; message: string } {
  if (envelope.ok) throw new Error(`expected an error, got ${JSON.stringify(envelope)}`);
  return envelope.error;
}

function incidentOf(message: string): string {
  const incident = INTERNAL.exec(message)?.[1];
  if (incident === undefined) throw new Error(`not the generic internal message: ${message}`);
  return incident;
}

function gatewayStatus(error: { code: string; message: string } | null): Record<string, unknown> {
  return {
    enabled: true, running: false, listen: null, name: null, ca_fingerprint: null, ca_pin: null, mtls_required: true, insecure_opt_out: false,
    state_dir: '/srv/state', key_location: null, rollback_protection: null, error, managed: 'hosted', remote_gateway: null,
  };
}

describe('internal errors over IPC', () => {
  it('send the renderer the code, a generic message and an incident id; the log gets the detail under that id', async () => {
    const thrown = new TypeError(`Cannot read properties of undefined (reading 'x') at ${HOME_FILE}`);
    const { router, logged } = routerWith({ 'device.unpair': () => Promise.reject(thrown) });
    const error = errorOf(await router.handle('device.unpair', {}));
    expect(error.code).toBe('internal');
    expect(error.message.startsWith(INTERNAL_ERROR_MESSAGE)).toBe(true);
    const incident = incidentOf(error.message);
    expect(error.message).not.toContain('Cannot read');
    expect(error.message).not.toContain('/home');
    expect(logged).toEqual([
      { event: 'ipc.internal_error', channel: 'device.unpair', incident, name: 'TypeError', message: thrown.message, stack: thrown.stack },
    ]);
    expect(String(logged[0]?.stack)).toContain('TypeError: Cannot read');
  });

  it('does the same for a PalyraError coded internal and for a thrown non-Error', async () => {
    const { router, logged } = routerWith({
      'device.status': () => Promise.reject(new PalyraError('internal', 'sqlite: disk I/O error in /var/lib/palyra/state.db')),
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what a careless library may do
      'device.unpair': () => Promise.reject('a string from a library'),
    });
    const a = errorOf(await router.handle('device.status', {}));
    const b = errorOf(await router.handle('device.unpair', {}));
    expect([a.code, b.code]).toEqual(['internal', 'internal']);
    const [ia, ib] = [incidentOf(a.message), incidentOf(b.message)];
    expect(ia).not.toBe(ib);
    expect(logged.map((l) => [l.incident, l.message])).toEqual([
      [ia, 'sqlite: disk I/O error in /var/lib/palyra/state.db'],
      [ib, 'a string from a library'],
    ]);
  });

  it('turns a result that fails its schema into the generic message too, logged as ipc.invalid_result', async () => {
    const { router, logged } = routerWith({ 'device.unpair': () => Promise.resolve({ unpaired: 'yes' }) });
    const error = errorOf(await router.handle('device.unpair', {}));
    expect(error.code).toBe('internal');
    const incident = incidentOf(error.message);
    expect(logged).toEqual([{ event: 'ipc.invalid_result', channel: 'device.unpair', incident, message: 'device.unpair: the main process produced an invalid result' }]);
  });

  it('reaches the log file through its redaction: the incident and the text survive, a PIN in it does not', async () => {
    const { router, logged } = routerWith({ 'device.unpair': () => Promise.reject(new Error('handshake failed for pin 493027 at step 2')) });
    const incident = incidentOf(errorOf(await router.handle('device.unpair', {})).message);
    const { event, ...fields } = logged[0] ?? {};
    const line = JSON.parse(formatLogLine('info', String(event), fields, 0)) as Record<string, unknown>;
    expect(line).toMatchObject({ event: 'ipc.internal_error', channel: 'device.unpair', incident });
    expect(String(line.message)).toContain('handshake failed for pin');
    expect(JSON.stringify(line)).not.toContain('493027');
  });
});

describe('coded errors over IPC', () => {
  it('keep their message, with the path their details name cut to its file name, spaces and all', async () => {
    const message = `failed to read ${HOME_FILE}: ENOENT: no such file or directory, open '${HOME_FILE}'`;
    const { router, logged } = routerWith({ 'device.status': () => Promise.reject(new PalyraError('store_io_failed', message, { details: { path: HOME_FILE } })) });
    expect(errorOf(await router.handle('device.status', {}))).toEqual({
      code: 'store_io_failed',
      message: "failed to read settings.json: ENOENT: no such file or directory, open 'settings.json'",
    });
    expect(logged).toEqual([]);
  });

  it('lose absolute paths they name without saying so in their details', async () => {
    const { router } = routerWith({
      'device.status': () => Promise.reject(new PalyraError('device_not_paired', "the device in /home/ana/palyra/device is not paired with a gateway; pair it first with 'palyra device pair'")),
      'device.unpair': () => Promise.reject(new PalyraError('store_decrypt_failed', 'failed to decrypt identity store payload at rest: C:\\Users\\Ana\\AppData\\Roaming\\Palyra Desktop\\device\\identity.enc')),
    });
    expect(errorOf(await router.handle('device.status', {})).message).toBe("the device in device is not paired with a gateway; pair it first with 'palyra device pair'");
    expect(errorOf(await router.handle('device.unpair', {})).message).toBe('failed to decrypt identity store payload at rest: identity.enc');
  });

  it('cut paths in {code, message} errors inside a result; an internal one there becomes the generic message', async () => {
    const { router, logged } = routerWith({
      'gateway.status': () => Promise.resolve(gatewayStatus({ code: 'state_corrupt', message: `${HOME_FILE} is invalid: not JSON; fix or delete it` })),
      'gateway.configure': () => Promise.resolve(gatewayStatus({ code: 'internal', message: 'EADDRINUSE in /usr/lib/node_modules/x/index.js' })),
    });
    const status = await router.handle('gateway.status', {});
    expect(status).toMatchObject({ ok: true, result: { error: { code: 'state_corrupt', message: 'settings.json is invalid: not JSON; fix or delete it' } } });
    // Data fields are not messages: the state dir the view shows is left as it is.
    expect(status).toMatchObject({ ok: true, result: { state_dir: '/srv/state' } });
    const enabled = await router.handle('gateway.configure', { enabled: true });
    expect(enabled.ok).toBe(true);
    const inner = enabled.ok ? (enabled.result as { error: { code: string; message: string } }).error : null;
    expect(inner?.code).toBe('internal');
    const incident = incidentOf(inner?.message ?? '');
    expect(logged).toEqual([{ event: 'ipc.internal_error_in_result', channel: 'gateway.configure', incident, message: 'EADDRINUSE in /usr/lib/node_modules/x/index.js' }]);
  });

  it('leave argument errors naming the field as they were', async () => {
    const { router } = routerWith({});
    expect(errorOf(await router.handle('gateway.revokeDevice', { device_id: 'x' })).message).toBe('gateway.revokeDevice: device_id: must be a canonical 26-character id');
  });
});
