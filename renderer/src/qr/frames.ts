import { fitScale, guideCrop } from './geometry.js';

type Context2d = CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D;

interface Surface {
  readonly canvas: HTMLCanvasElement | OffscreenCanvas;
  readonly context: Context2d;
}

function createSurface(): Surface | null {
  const canvas: HTMLCanvasElement | OffscreenCanvas = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
  // willReadFrequently keeps the canvas in CPU memory: getImageData every frame without a GPU readback.
  const context = canvas.getContext('2d', { willReadFrequently: true });
  return context === null ? null : { canvas, context };
}

/**
 * Grabs the guide region of the current video frame, downscaled, as ImageData. One canvas is reused for every
 * frame; each call returns a fresh ImageData whose buffer the caller may transfer.
 */
export class FrameGrabber {
  #surface: Surface | null | undefined;

  grab(video: HTMLVideoElement): ImageData | null {
    if (video.readyState < 2) return null;
    const plan = guideCrop(video.videoWidth, video.videoHeight);
    if (plan === null) return null;
    const surface = this.#surfaceOrNull();
    if (surface === null) return null;
    const { canvas, context } = surface;
    if (canvas.width !== plan.outSide) canvas.width = plan.outSide;
    if (canvas.height !== plan.outSide) canvas.height = plan.outSide;
    context.drawImage(video, plan.sx, plan.sy, plan.side, plan.side, 0, 0, plan.outSide, plan.outSide);
    return context.getImageData(0, 0, plan.outSide, plan.outSide);
  }

  #surfaceOrNull(): Surface | null {
    if (this.#surface === undefined) this.#surface = createSurface();
    return this.#surface;
  }
}

/** Largest side of a pasted or dropped image before decoding. */
export const MAX_IMAGE_SIDE = 1200;

/** Decodes an image file (PNG, JPEG, …) into ImageData, downscaled to at most MAX_IMAGE_SIDE. */
export async function imageDataFromBlob(blob: Blob): Promise<ImageData> {
  const bitmap = await createImageBitmap(blob);
  try {
    const scale = fitScale(bitmap.width, bitmap.height, MAX_IMAGE_SIDE);
    const width = Math.max(1, Math.round(bitmap.width * scale));
    const height = Math.max(1, Math.round(bitmap.height * scale));
    const surface = createSurface();
    if (surface === null) throw new Error('no 2D canvas available to read the image');
    surface.canvas.width = width;
    surface.canvas.height = height;
    // A transparent PNG would otherwise decode as black modules on black.
    surface.context.fillStyle = '#ffffff';
    surface.context.fillRect(0, 0, width, height);
    surface.context.drawImage(bitmap, 0, 0, width, height);
    return surface.context.getImageData(0, 0, width, height);
  } finally {
    bitmap.close();
  }
}
