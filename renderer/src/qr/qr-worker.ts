// The QR decode worker: zxing-wasm (or jsQR, when asked for or as the fallback) off the main thread. One request in,
// one response out, naming the engine that answered; the pixel buffer arrives transferred from the main thread.
// Which engine is asked for is the main thread's setting (DECODER_SETTING_KEY in decoder.ts); engines.ts decides
// what runs.
//
// The .wasm is part of the build: Vite emits node_modules/zxing-wasm/dist/reader/zxing_reader.wasm as an asset next
// to this worker, and locateFile points the module at it. Without that override zxing-wasm would fetch the file from
// a CDN, which the CSP forbids and the app must never do.
import zxingReaderWasmUrl from 'zxing-wasm/reader/zxing_reader.wasm?url';
import type { DecodeRequest, DecodeResponse } from './decoder.js';
import { DecodeEngines, type DecodeFn } from './engines.js';

interface WorkerScope {
  onmessage: ((event: MessageEvent<DecodeRequest>) => void) | null;
  postMessage(message: DecodeResponse): void;
  readonly location: { readonly href: string };
}

const scope = self as unknown as WorkerScope;

/** The built .wasm's absolute URL (Vite may give a path relative to this worker's own URL). */
const wasmUrl = new URL(zxingReaderWasmUrl, scope.location.href).href;

async function startZxing(): Promise<DecodeFn> {
  const zxing = await import('zxing-wasm/reader');
  await zxing.prepareZXingModule({
    overrides: { locateFile: (file: string, prefix: string) => (file.endsWith('.wasm') ? wasmUrl : prefix + file) },
    fireImmediately: true,
  });
  // zxing-cpp's defaults (tryHarder; tryInvert, so a light-on-dark code decodes too; tryRotate; tryDownscale), QR only.
  const options = { formats: ['QRCode' as const], maxNumberOfSymbols: 1 };
  return async (pixels, width, height) => {
    const [result] = await zxing.readBarcodes(new ImageData(pixels, width, height), options);
    return result === undefined || !result.isValid || result.text === '' ? null : result.text;
  };
}

async function startJsqr(): Promise<DecodeFn> {
  const { default: jsQR } = await import('jsqr');
  return (pixels, width, height) => {
    // attemptBoth: a code shown light-on-dark (a dark-themed screen) decodes too.
    const code = jsQR(pixels, width, height, { inversionAttempts: 'attemptBoth' });
    return Promise.resolve(code === null || code.data === '' ? null : code.data);
  };
}

const engines = new DecodeEngines({ zxing: startZxing, jsqr: startJsqr });

scope.onmessage = (event) => {
  const { id, width, height, data, decoder } = event.data;
  engines.decode(decoder, new Uint8ClampedArray(data), width, height).then(
    ({ text, engine }) => {
      scope.postMessage({ id, text, engine });
    },
    (error: unknown) => {
      const engine = engines.engine;
      const message = error instanceof Error ? error.message : String(error);
      scope.postMessage(engine === null ? { id, error: message } : { id, error: message, engine });
    },
  );
};
