// Pushed events cross to the renderer under the same rule as call results: no internal error text, no local paths.
import { describe, expect, it } from 'vitest';
import { INTERNAL_ERROR_MESSAGE } from '../../../main/app/ipc-router.js';
import { EventHub } from '../../../main/app/publish.js';

describe('EventHub', () => {
  it('replaces an internal error in an event by the generic message, logging the original under the incident id', () => {
    const logged: Record<string, unknown>[] = [];
    const hub = new EventHub((line) => logged.push(line));
    const seen: unknown[] = [];
    hub.on((_event, payload) => seen.push(payload));
    hub.publish('device.pairing', { pairing_id: 'p1', progress: { type: 'failed', code: 'internal', message: "ENOENT: no such file '/home/ana/.config/palyra/x.json'" } });
    hub.publish('device.pairing', { pairing_id: 'p2', progress: { type: 'failed', code: 'store_io_failed', message: 'failed to write /home/ana/.config/palyra/device/device.v1.json: ENOSPC' } });
    const [internal, coded] = seen as { progress: { code: string; message: string } }[];
    expect(internal!.progress.code).toBe('internal');
    expect(internal!.progress.message).toContain(INTERNAL_ERROR_MESSAGE);
    expect(internal!.progress.message).not.toContain('/home/ana');
    const incident = /incident ([0-9a-f]{8})/.exec(internal!.progress.message)?.[1];
    expect(logged).toContainEqual(expect.objectContaining({ event: 'ipc.internal_error_in_event', name: 'device.pairing', incident, message: expect.stringContaining('ENOENT') }));
    expect(coded!.progress.message).toContain('device.v1.json');
    expect(coded!.progress.message).not.toContain('/home/ana');
  });
});
