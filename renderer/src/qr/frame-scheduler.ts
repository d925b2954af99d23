import type { QrDecoder } from './decoder.js';

export interface FrameSchedulerStats {
  /** Frames offered by the render loop. */
  offered: number;
  /** Frames grabbed and sent to the decoder. */
  decoded: number;
  /** Frames dropped because a decode was still running. */
  skipped: number;
}

/**
 * Decides which camera frames get decoded: at most one decode in flight, and while it runs every offered frame is
 * skipped without even being grabbed (no canvas read, no copy). The preview keeps its frame rate whatever the
 * decoder's speed; the decode rate adapts to it.
 */
export class FrameScheduler {
  readonly stats: FrameSchedulerStats = { offered: 0, decoded: 0, skipped: 0 };
  readonly #decoder: QrDecoder;
  readonly #onResult: (text: string) => void;
  readonly #onError: (error: unknown) => void;
  #inFlight = false;
  #stopped = false;

  constructor(decoder: QrDecoder, onResult: (text: string) => void, onError: (error: unknown) => void = () => undefined) {
    this.#decoder = decoder;
    this.#onResult = onResult;
    this.#onError = onError;
  }

  get busy(): boolean {
    return this.#inFlight;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Offers one frame. `grab` is called only if the frame will be decoded; it may return null (no frame ready yet).
   * Returns whether a decode started.
   */
  offer(grab: () => ImageData | null): boolean {
    if (this.#stopped) return false;
    this.stats.offered += 1;
    if (this.#inFlight) {
      this.stats.skipped += 1;
      return false;
    }
    const frame = grab();
    if (frame === null) return false;
    this.#inFlight = true;
    this.stats.decoded += 1;
    this.#decoder.decode(frame).then(
      (text) => {
        this.#inFlight = false;
        if (text !== null && !this.#stopped) {
          this.#stopped = true;
          this.#onResult(text);
        }
      },
      (error: unknown) => {
        this.#inFlight = false;
        if (!this.#stopped) this.#onError(error);
      },
    );
    return true;
  }

  /** Stops delivering results (a result also stops it: one scan, one answer). */
  stop(): void {
    this.#stopped = true;
  }

  resume(): void {
    this.#stopped = false;
  }
}
