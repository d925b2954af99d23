import { describe, expect, it, vi } from 'vitest';
import type { QrDecoder } from '../../renderer/src/qr/decoder.js';
import { FrameScheduler } from '../../renderer/src/qr/frame-scheduler.js';
import { fitScale, guideCrop, MAX_DECODE_SIDE } from '../../renderer/src/qr/geometry.js';

/** A decoder whose answers the test releases one by one. */
function controlledDecoder(): QrDecoder & { calls: ImageData[]; answer(text: string | null): Promise<void>; fail(error: Error): Promise<void> } {
  const waiting: { resolve(text: string | null): void; reject(error: Error): void }[] = [];
  const calls: ImageData[] = [];
  return {
    calls,
    decode(frame) {
      calls.push(frame);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    async answer(text) {
      waiting.shift()?.resolve(text);
      await Promise.resolve();
      await Promise.resolve();
    },
    async fail(error) {
      waiting.shift()?.reject(error);
      await Promise.resolve();
      await Promise.resolve();
    },
  };
}

function frame(): ImageData {
  return { width: 2, height: 2, data: new Uint8ClampedArray(16), colorSpace: 'srgb' };
}

describe('FrameScheduler', () => {
  it('keeps one decode in flight and skips frames, without grabbing them, until it finishes', async () => {
    const decoder = controlledDecoder();
    const scheduler = new FrameScheduler(decoder, () => undefined);
    const grab = vi.fn(frame);

    expect(scheduler.offer(grab)).toBe(true);
    for (let i = 0; i < 5; i++) expect(scheduler.offer(grab)).toBe(false);

    expect(decoder.calls).toHaveLength(1);
    expect(grab).toHaveBeenCalledTimes(1);
    expect(scheduler.busy).toBe(true);
    expect(scheduler.stats).toEqual({ offered: 6, decoded: 1, skipped: 5 });

    await decoder.answer(null);
    expect(scheduler.busy).toBe(false);
    expect(scheduler.offer(grab)).toBe(true);
    expect(decoder.calls).toHaveLength(2);
    expect(grab).toHaveBeenCalledTimes(2);
  });

  it('delivers the first decoded text once and then stops taking frames', async () => {
    const decoder = controlledDecoder();
    const onResult = vi.fn();
    const scheduler = new FrameScheduler(decoder, onResult);

    scheduler.offer(frame);
    await decoder.answer('palyra://pair?v=1');

    expect(onResult).toHaveBeenCalledExactlyOnceWith('palyra://pair?v=1');
    expect(scheduler.stopped).toBe(true);
    expect(scheduler.offer(frame)).toBe(false);
    expect(decoder.calls).toHaveLength(1);
  });

  it('does not count a frame that was not ready as a decode', () => {
    const decoder = controlledDecoder();
    const scheduler = new FrameScheduler(decoder, () => undefined);

    expect(scheduler.offer(() => null)).toBe(false);
    expect(scheduler.busy).toBe(false);
    expect(decoder.calls).toHaveLength(0);
  });

  it('reports a decoder failure and keeps scanning', async () => {
    const decoder = controlledDecoder();
    const onError = vi.fn();
    const scheduler = new FrameScheduler(decoder, () => undefined, onError);

    scheduler.offer(frame);
    await decoder.fail(new Error('worker crashed'));

    expect(onError).toHaveBeenCalledOnce();
    expect(scheduler.offer(frame)).toBe(true);
  });

  it('drops a result that arrives after stop()', async () => {
    const decoder = controlledDecoder();
    const onResult = vi.fn();
    const scheduler = new FrameScheduler(decoder, onResult);

    scheduler.offer(frame);
    scheduler.stop();
    await decoder.answer('late');

    expect(onResult).not.toHaveBeenCalled();
  });
});

describe('guide crop', () => {
  it('takes a centered square of the guide size and scales it down to at most 480 px', () => {
    const plan = guideCrop(1280, 720);
    expect(plan).toEqual({ sx: 388, sy: 108, side: 504, outSide: MAX_DECODE_SIDE });
  });

  it('never scales a small frame up', () => {
    expect(guideCrop(320, 240)).toEqual({ sx: 76, sy: 36, side: 168, outSide: 168 });
  });

  it('has no plan before the video has dimensions', () => {
    expect(guideCrop(0, 0)).toBeNull();
  });

  it('fits large images within the limit and leaves small ones alone', () => {
    expect(fitScale(2400, 1200, 1200)).toBe(0.5);
    expect(fitScale(600, 400, 1200)).toBe(1);
  });
});
