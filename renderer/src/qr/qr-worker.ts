// The QR decode worker: jsQR off the main thread. One request in, one response out; the pixel buffer arrives
// transferred from the main thread.
import jsQR from 'jsqr';
import type { DecodeRequest, DecodeResponse } from './decoder.js';

interface WorkerScope {
  onmessage: ((event: MessageEvent<DecodeRequest>) => void) | null;
  postMessage(message: DecodeResponse): void;
}

const scope = self as unknown as WorkerScope;

scope.onmessage = (event) => {
  const { id, width, height, data } = event.data;
  try {
    // attemptBoth: a code shown light-on-dark (a dark-themed screen) decodes too.
    const code = jsQR(new Uint8ClampedArray(data), width, height, { inversionAttempts: 'attemptBoth' });
    scope.postMessage({ id, text: code === null || code.data === '' ? null : code.data });
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};
