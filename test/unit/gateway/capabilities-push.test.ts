// The dispatcher's hook for pushed dispatch: onQueued fires when work is queued and again when a failed send puts it
// back, so a push stream of the device can take it at once; the queue order is kept.
import { describe, expect, it } from 'vitest';
import { CapabilityDispatcher } from '../../../main/gateway/capabilities.js';

const DEVICE = '01J0000000000000000000DEV1';

describe('CapabilityDispatcher onQueued', () => {
  it('fires on execute and on requeue, and the requeued item is handed out first', () => {
    const queued: string[] = [];
    const dispatcher = new CapabilityDispatcher({ onQueued: (deviceId) => queued.push(deviceId) });
    const a = dispatcher.execute({ deviceId: DEVICE, capability: 'echo', inputJson: Buffer.from('"a"'), timeoutMs: 60_000 });
    const b = dispatcher.execute({ deviceId: DEVICE, capability: 'echo', inputJson: Buffer.from('"b"'), timeoutMs: 60_000 });
    expect(queued).toEqual([DEVICE, DEVICE]);
    const first = dispatcher.next(DEVICE)!;
    expect(Buffer.from(first.inputJson).toString()).toBe('"a"');
    dispatcher.requeue(DEVICE, first);
    expect(queued).toEqual([DEVICE, DEVICE, DEVICE]);
    expect(dispatcher.next(DEVICE)!.requestId).toBe(first.requestId);
    expect(Buffer.from(dispatcher.next(DEVICE)!.inputJson).toString()).toBe('"b"');
    expect(dispatcher.next(DEVICE)).toBeNull();
    // A requeue for another device than the item's is ignored, and fires nothing.
    dispatcher.requeue('01J0000000000000000000DEV2', first);
    expect(queued).toHaveLength(3);
    dispatcher.cancelAll('test over');
    return Promise.all([expect(a).rejects.toMatchObject({ code: 'cancelled' }), expect(b).rejects.toMatchObject({ code: 'cancelled' })]);
  });
});
