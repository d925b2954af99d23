/** Decodes one frame; resolves with the QR payload or null when no code was found. */
export interface QrDecoder {
  decode(frame: ImageData): Promise<string | null>;
}

/** Main thread → worker. `data` is the frame's pixel buffer, transferred (not copied). */
export interface DecodeRequest {
  readonly id: number;
  readonly width: number;
  readonly height: number;
  readonly data: ArrayBuffer;
}

/** Worker → main thread. */
export type DecodeResponse = { readonly id: number; readonly text: string | null } | { readonly id: number; readonly error: string };

interface Pending {
  resolve(text: string | null): void;
  reject(error: Error): void;
}

function createQrWorker(): Worker {
  return new Worker(new URL('./qr-worker.ts', import.meta.url), { type: 'module', name: 'palyra-qr' });
}

/**
 * Decodes in a Web Worker (jsQR), so the camera preview never waits for a decode. Each frame's buffer is
 * transferred to the worker; the caller must not touch the ImageData afterwards. The worker starts on first use
 * and is started again if it crashes.
 */
export class WorkerQrDecoder implements QrDecoder {
  readonly #createWorker: () => Worker;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(createWorker: () => Worker = createQrWorker) {
    this.#createWorker = createWorker;
  }

  decode(frame: ImageData): Promise<string | null> {
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    const buffer = frame.data.buffer;
    const request: DecodeRequest = { id, width: frame.width, height: frame.height, data: buffer };
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage(request, [buffer]);
    });
  }

  dispose(): void {
    this.#worker?.terminate();
    this.#worker = null;
    this.#failAll(new Error('the QR decoder was stopped'));
  }

  #ensureWorker(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = this.#createWorker();
    worker.onmessage = (event: MessageEvent<DecodeResponse>) => {
      const response = event.data;
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

  #failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
