// Test helper: camera videos for Chromium's fake camera (--use-file-for-fake-video-capture=FILE.y4m). Frames are
// drawn as RGBA (a real QR code from qrcode's module matrix with its quiet zone, or random noise) and written as
// YUV4MPEG2, 4:2:0 with JPEG (full-range BT.601) chroma siting, which Chromium plays in a loop at the header's rate.
// Dependency-free apart from qrcode; also used (transpiled) by test/bench/qr.bench.mjs for its frames.
import { open } from 'node:fs/promises';
import { create } from 'qrcode';

/** An RGBA image, 4 bytes a pixel, rows top to bottom (the layout of ImageData). */
export interface RgbaFrame {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray;
}

export interface QrFrameOptions {
  readonly width?: number;
  readonly height?: number;
  /** Side of the code with its quiet zone, as a fraction of the frame's shorter side (inside the 0.7 guide). */
  readonly coverage?: number;
  /** Grey levels of dark modules and of the light background (a printed or on-screen code is never pure). */
  readonly dark?: number;
  readonly light?: number;
  /** Quiet zone in modules (the standard asks for 4). */
  readonly quietZone?: number;
  /** Amplitude of uniform per-pixel sensor noise, ±noise grey levels; 0 = none. */
  readonly noise?: number;
  readonly random?: () => number;
}

/** A small deterministic PRNG (mulberry32): reproducible frames from a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function even(n: number, name: string): void {
  if (!Number.isInteger(n) || n < 2 || n % 2 !== 0) throw new Error(`${name} must be an even positive integer (4:2:0), got ${n}`);
}

function blank(width: number, height: number, grey: number): RgbaFrame {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < data.length; i += 4) {
    data[i] = grey;
    data[i + 1] = grey;
    data[i + 2] = grey;
    data[i + 3] = 255;
  }
  return { width, height, data };
}

/**
 * A frame showing `text` as a QR code (error correction M, as the app draws it), centered, with whole pixels per
 * module, on a mid-grey surround (the scene around the printed or on-screen code).
 */
export function qrFrame(text: string, options: QrFrameOptions = {}): RgbaFrame {
  const { width = 640, height = 480, coverage = 0.6, dark = 24, light = 232, quietZone = 4, noise = 0 } = options;
  const random = options.random ?? seededRandom(1);
  even(width, 'width');
  even(height, 'height');
  const modules = create(text, { errorCorrectionLevel: 'M' }).modules;
  const total = modules.size + 2 * quietZone;
  const scale = Math.floor((Math.min(width, height) * coverage) / total);
  if (scale < 1) throw new Error(`a ${modules.size}-module code does not fit ${width}×${height} at coverage ${coverage}`);
  const frame = blank(width, height, 128);
  const { data } = frame;
  const side = total * scale;
  const left = Math.floor((width - side) / 2);
  const top = Math.floor((height - side) / 2);
  for (let y = 0; y < side; y++) {
    const row = Math.floor(y / scale) - quietZone;
    for (let x = 0; x < side; x++) {
      const col = Math.floor(x / scale) - quietZone;
      const inCode = row >= 0 && row < modules.size && col >= 0 && col < modules.size;
      const isDark = inCode && modules.get(row, col) === 1;
      const grey = isDark ? dark : light;
      const i = ((top + y) * width + left + x) * 4;
      data[i] = grey;
      data[i + 1] = grey;
      data[i + 2] = grey;
    }
  }
  if (noise > 0) addNoise(frame, noise, random);
  return frame;
}

/** Adds uniform noise of ±amplitude to every channel, in place. */
export function addNoise(frame: RgbaFrame, amplitude: number, random: () => number): void {
  const { data } = frame;
  for (let i = 0; i < data.length; i += 4) {
    const delta = Math.round((random() * 2 - 1) * amplitude);
    data[i] = data[i]! + delta;
    data[i + 1] = data[i + 1]! + delta;
    data[i + 2] = data[i + 2]! + delta;
  }
}

/** Random colour per pixel: no QR code, and the worst case for a decoder's finder-pattern search. */
export function noiseFrame(width: number, height: number, random: () => number): RgbaFrame {
  even(width, 'width');
  even(height, 'height');
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < data.length; i += 4) {
    // One 32-bit draw per pixel gives three channels.
    const r = Math.floor(random() * 0x1000000);
    data[i] = r & 0xff;
    data[i + 1] = (r >>> 8) & 0xff;
    data[i + 2] = (r >>> 16) & 0xff;
    data[i + 3] = 255;
  }
  return { width, height, data };
}

/** The YUV4MPEG2 stream header for frames of this size and rate. */
export function y4mHeader(width: number, height: number, fps: number): string {
  return `YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`;
}

const clampByte = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** One frame as planar 4:2:0 (Y, then U and V at half resolution, each the average of a 2×2 block), full range. */
export function rgbaToI420(frame: RgbaFrame): Uint8Array {
  const { width, height, data } = frame;
  even(width, 'width');
  even(height, 'height');
  const ySize = width * height;
  const cWidth = width / 2;
  const cSize = cWidth * (height / 2);
  const out = new Uint8Array(ySize + 2 * cSize);
  for (let p = 0, i = 0; p < ySize; p++, i += 4) {
    out[p] = clampByte(0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!);
  }
  for (let cy = 0; cy < height / 2; cy++) {
    for (let cx = 0; cx < cWidth; cx++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [dx, dy] of [
        [0, 0],
        [1, 0],
        [0, 1],
        [1, 1],
      ] as const) {
        const i = ((cy * 2 + dy) * width + cx * 2 + dx) * 4;
        r += data[i]!;
        g += data[i + 1]!;
        b += data[i + 2]!;
      }
      r /= 4;
      g /= 4;
      b /= 4;
      const c = cy * cWidth + cx;
      out[ySize + c] = clampByte(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
      out[ySize + cSize + c] = clampByte(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
    }
  }
  return out;
}

export interface Y4mOptions {
  /** Frames per second written in the header; Chromium plays the file at this rate, looped. */
  readonly fps?: number;
}

/**
 * Writes frames (all the same size) as a Y4M file. `frames` is called for each index so that long videos need not
 * be held in memory at once; return the same frame object to repeat it (it is converted once).
 */
export async function writeY4m(file: string, count: number, frames: (index: number) => RgbaFrame, options: Y4mOptions = {}): Promise<void> {
  const fps = options.fps ?? 30;
  if (count < 1) throw new Error('a video needs at least one frame');
  const first = frames(0);
  const handle = await open(file, 'w');
  try {
    await handle.write(y4mHeader(first.width, first.height, fps));
    const marker = Buffer.from('FRAME\n');
    let last: RgbaFrame | null = null;
    let planes: Uint8Array = new Uint8Array(0);
    for (let index = 0; index < count; index++) {
      const frame = index === 0 ? first : frames(index);
      if (frame.width !== first.width || frame.height !== first.height) throw new Error('every frame of a Y4M file must have the same size');
      if (frame !== last) {
        planes = rgbaToI420(frame);
        last = frame;
      }
      await handle.write(marker);
      await handle.write(planes);
    }
  } finally {
    await handle.close();
  }
}

/** A video of a still QR code of `text` (frames differ only by sensor noise when `noise` > 0). */
export async function writeQrVideo(file: string, text: string, options: QrFrameOptions & Y4mOptions & { seconds?: number } = {}): Promise<void> {
  const fps = options.fps ?? 30;
  const count = Math.max(1, Math.round((options.seconds ?? 2) * fps));
  const random = options.random ?? seededRandom(7);
  const still = (options.noise ?? 0) > 0 ? null : qrFrame(text, options);
  await writeY4m(file, count, () => still ?? qrFrame(text, { ...options, random }), { fps });
}

/** A video of random noise, a new pattern every frame, with no QR code in it. */
export async function writeNoiseVideo(file: string, options: { width?: number; height?: number; seconds?: number; seed?: number } & Y4mOptions = {}): Promise<void> {
  const { width = 640, height = 480, seconds = 2, seed = 11 } = options;
  const fps = options.fps ?? 30;
  const random = seededRandom(seed);
  await writeY4m(file, Math.max(1, Math.round(seconds * fps)), () => noiseFrame(width, height, random), { fps });
}
