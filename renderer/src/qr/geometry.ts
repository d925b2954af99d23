/** Side of the framing guide as a fraction of the shorter side of the video. The CSS guide uses the same value. */
export const GUIDE_FRACTION = 0.7;
/** Largest side, in pixels, of the frame sent to the decoder: enough for a QR filling the guide, cheap to scan. */
export const MAX_DECODE_SIDE = 480;

/** The part of a video frame that is decoded: a centered square (the guide), scaled to at most `outSide`. */
export interface CropPlan {
  readonly sx: number;
  readonly sy: number;
  readonly side: number;
  readonly outSide: number;
}

export function guideCrop(videoWidth: number, videoHeight: number, fraction = GUIDE_FRACTION, maxSide = MAX_DECODE_SIDE): CropPlan | null {
  if (!(videoWidth > 0 && videoHeight > 0)) return null;
  const side = Math.max(1, Math.round(Math.min(videoWidth, videoHeight) * fraction));
  return {
    sx: Math.floor((videoWidth - side) / 2),
    sy: Math.floor((videoHeight - side) / 2),
    side,
    outSide: Math.min(side, maxSide),
  };
}

/** Scale that fits a width × height image within `maxSide` (never enlarges). */
export function fitScale(width: number, height: number, maxSide: number): number {
  const longest = Math.max(width, height);
  return longest > maxSide ? maxSide / longest : 1;
}
