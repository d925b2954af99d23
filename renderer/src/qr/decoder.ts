/**
 * The QR decode engines the worker can run. zxing-wasm (zxing-cpp in WebAssembly) is the default: it meets the
 * per-frame targets (median ≤ 15 ms, p95 ≤ 40 ms) on every frame the benchmark tries, where jsQR takes 130–260 ms on
 * a frame of noise (test/bench/qr.bench.mjs, issue 6). jsQR stays selectable, and is what the worker falls back to
 * when zxing-wasm cannot start.
 */
export type DecoderKind = 'zxing' | 'jsqr';

export const DEFAULT_DECODER: DecoderKind = 'zxing';

/**
 * The setting that picks the engine: a localStorage key of the renderer's origin, read when the decoder is created
 * (each visit to the Pair view). To use jsQR, run in the developer tools console
 *
 *     localStorage['palyra.qrDecoder'] = 'jsqr'
 *
 * and open the Pair view again (or reload); `'zxing'`, or removing the key, restores the default. Any other value
 * is ignored (the default is used).
 */
export const DECODER_SETTING_KEY = 'palyra.qrDecoder';

/** A setting's value as an engine; anything unknown (absent, empty, misspelt) is the default. */
export function decoderKindFrom(value: unknown): DecoderKind {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  return text === 'jsqr' || text === 'zxing' ? text : DEFAULT_DECODER;
}

/** The engine the setting asks for. Storage that is missing or refuses access (a sandboxed page) means the default. */
export function preferredDecoder(storage: Pick<Storage, 'getItem'> | null | undefined = defaultStorage()): DecoderKind {
  try {
    return decoderKindFrom(storage?.getItem(DECODER_SETTING_KEY));
  } catch {
    return DEFAULT_DECODER;
  }
}

function defaultStorage(): Storage | null {
  try {
    return (globalThis as { localStorage?: Storage }).localStorage ?? null;
  } catch {
    return null;
  }
}

/** Which engine answered a decode, and why it is not the one asked for (null when it is). */
export interface DecoderEngine {
  readonly kind: DecoderKind;
  readonly fallback: string | null;
}

/** Decodes one frame; resolves with the QR payload or null when no code was found. */
export interface QrDecoder {
  decode(frame: ImageData): Promise<string | null>;
  /**
   * Tells the listener which engine decodes, as soon as it is known and whenever it changes (a fallback). Returns
   * the unsubscribe function. Optional: a decoder that has only one engine (a test's fake) need not say.
   */
  onEngine?(listener: (engine: DecoderEngine) => void): () => void;
}

/** Main thread → worker. `data` is the frame's pixel buffer, transferred (not copied). */
export interface DecodeRequest {
  readonly id: number;
  readonly width: number;
  readonly height: number;
  readonly data: ArrayBuffer;
  /** The engine asked for; the worker starts it on the first request. */
  readonly decoder: DecoderKind;
}

/** Worker → main thread: one response per request, saying which engine answered. */
export type DecodeResponse =
  | { readonly id: number; readonly text: string | null; readonly engine: DecoderEngine }
  | { readonly id: number; readonly error: string; readonly engine?: DecoderEngine };

interface Pending {
  resolve(text: string | null): void;
  reject(error: Error): void;
}

function createQrWorker(): Worker {
  return new Worker(new URL('./qr-worker.ts', import.meta.url), { type: 'module', name: 'palyra-qr' });
}

export interface WorkerQrDecoderOptions {
  readonly createWorker?: () => Worker;
  /** The engine to ask the worker for; by default the setting (DECODER_SETTING_KEY). */
  readonly decoder?: DecoderKind;
}

/**
 * Decodes in a Web Worker (zxing-wasm, or jsQR), so the camera preview never waits for a decode. Each frame's
 * buffer is transferred to the worker; the caller must not touch the ImageData afterwards. The worker starts on
 * first use and is started again if it crashes.
 */
export class WorkerQrDecoder implements QrDecoder {
  readonly #createWorker: () => Worker;
  readonly preferred: DecoderKind;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, Pending>();
  readonly #engineListeners = new Set<(engine: DecoderEngine) => void>();
  #engine: DecoderEngine | null = null;
  #nextId = 1;

  constructor(options: WorkerQrDecoderOptions = {}) {
    this.#createWorker = options.createWorker ?? createQrWorker;
    this.preferred = options.decoder ?? preferredDecoder();
  }

  /** The engine of the last answer, or null before the first one. */
  get engine(): DecoderEngine | null {
    return this.#engine;
  }

  decode(frame: ImageData): Promise<string | null> {
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    const buffer = frame.data.buffer;
    const request: DecodeRequest = { id, width: frame.width, height: frame.height, data: buffer, decoder: this.preferred };
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage(request, [buffer]);
    });
  }

  onEngine(listener: (engine: DecoderEngine) => void): () => void {
    this.#engineListeners.add(listener);
    if (this.#engine !== null) listener(this.#engine);
    return () => {
      this.#engineListeners.delete(listener);
    };
  }

  dispose(): void {
    this.#worker?.terminate();
    this.#worker = null;
    this.#failAll(new Error('the QR decoder was stopped'));
    this.#engineListeners.clear();
  }

  #ensureWorker(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = this.#createWorker();
    worker.onmessage = (event: MessageEvent<DecodeResponse>) => {
      const response = event.data;
      if (response.engine !== undefined) this.#setEngine(response.engine);
      const pending = this.#pending.get(response.id);
      if (pending === undefined) return;
      this.#pending.delete(response.id);
      if ('error' in response) pending.reject(new Error(response.error));
      else pending.resolve(response.text);
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      worker.terminate();
      if (this.#worker === worker) this.#worker = null;
      this.#failAll(new Error(`the QR decoder crashed: ${event.message}`));
    };
    this.#worker = worker;
    return worker;
  }

  #setEngine(engine: DecoderEngine): void {
    const current = this.#engine;
    if (current !== null && current.kind === engine.kind && current.fallback === engine.fallback) return;
    this.#engine = { kind: engine.kind, fallback: engine.fallback };
    for (const listener of [...this.#engineListeners]) listener(this.#engine);
  }

  #failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
