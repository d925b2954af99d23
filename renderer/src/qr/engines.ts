// The QR worker's choice of engine, apart from the engines themselves (qr-worker.ts wires zxing-wasm and jsQR in),
// so the choice and its fallback are testable without WebAssembly or a worker.
import type { DecoderEngine, DecoderKind } from './decoder.js';

/** One engine's decode: RGBA pixels in (not modified), the payload or null out. */
export type DecodeFn = (pixels: Uint8ClampedArray<ArrayBuffer>, width: number, height: number) => Promise<string | null>;

/** How each engine is started. A rejection means the engine cannot run here. */
export interface EngineLoaders {
  readonly zxing: () => Promise<DecodeFn>;
  readonly jsqr: () => Promise<DecodeFn>;
}

/** zxing-wasm fetches and compiles about 1 MB of WebAssembly; beyond this it counts as failed to start. */
export const ENGINE_START_TIMEOUT_MS = 15_000;

export interface DecodeOutcome {
  readonly text: string | null;
  readonly engine: DecoderEngine;
}

interface Active {
  readonly engine: DecoderEngine;
  readonly decode: DecodeFn;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`it did not start within ${Math.round(ms / 1000)} s`));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * The engine the worker decodes with: the one asked for, started on the first request, or jsQR when zxing-wasm
 * cannot start (its .wasm missing or refused, WebAssembly forbidden by the CSP, a timeout) or throws while decoding
 * (an aborted WebAssembly module stays broken). Every outcome names the engine and, after a fallback, why: the
 * scanner shows that in its hint, so a fallback is never silent.
 */
export class DecodeEngines {
  readonly #loaders: EngineLoaders;
  readonly #startTimeoutMs: number;
  #requested: DecoderKind | null = null;
  #active: Promise<Active> | null = null;
  #engine: DecoderEngine | null = null;

  constructor(loaders: EngineLoaders, options: { startTimeoutMs?: number } = {}) {
    this.#loaders = loaders;
    this.#startTimeoutMs = options.startTimeoutMs ?? ENGINE_START_TIMEOUT_MS;
  }

  /** The engine of the last outcome (null before the first): what an error response reports. */
  get engine(): DecoderEngine | null {
    return this.#engine;
  }

  async decode(preferred: DecoderKind, pixels: Uint8ClampedArray<ArrayBuffer>, width: number, height: number): Promise<DecodeOutcome> {
    const active = await this.#start(preferred);
    this.#engine = active.engine;
    try {
      return { text: await active.decode(pixels, width, height), engine: active.engine };
    } catch (error) {
      if (active.engine.kind !== 'zxing') throw error;
      // jsQR from now on, starting with this very frame (neither engine modifies the pixels).
      const next = await this.#track(this.#jsqr(`zxing-wasm failed while decoding (${messageOf(error)})`));
      this.#engine = next.engine;
      return { text: await next.decode(pixels, width, height), engine: next.engine };
    }
  }

  #start(preferred: DecoderKind): Promise<Active> {
    if (this.#active !== null && this.#requested === preferred) return this.#active;
    this.#requested = preferred;
    return this.#track(preferred === 'jsqr' ? this.#jsqr(null) : this.#zxing());
  }

  /** Makes `started` the active engine; if even jsQR fails to start (its chunk did not load), the next request tries again. */
  #track(started: Promise<Active>): Promise<Active> {
    this.#active = started;
    started.catch(() => {
      if (this.#active === started) this.#active = null;
    });
    return started;
  }

  async #zxing(): Promise<Active> {
    let decode: DecodeFn;
    try {
      decode = await withTimeout(this.#loaders.zxing(), this.#startTimeoutMs);
    } catch (error) {
      return this.#jsqr(`zxing-wasm could not start (${messageOf(error)})`);
    }
    return { engine: { kind: 'zxing', fallback: null }, decode };
  }

  async #jsqr(fallback: string | null): Promise<Active> {
    const decode = await this.#loaders.jsqr();
    return { engine: { kind: 'jsqr', fallback }, decode };
  }
}
