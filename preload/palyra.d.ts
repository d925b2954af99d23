/**
 * `window.palyra`, as preload/preload.ts exposes it in the Electron window: one method per contract channel
 * (`devicePairStart`, `gatewayApprove`, …) and `on(event, listener)`. In browser mode the renderer builds the same
 * API with `createPalyraApi` over its WebSocket transport.
 *
 * A failed call rejects with a `PalyraBridgeError` (in Electron a plain object, because contextBridge would strip an
 * Error down to its message; in browser mode a PalyraIpcError, which has the same fields): read `code`, never
 * `instanceof`.
 */

import type { PalyraApi } from '../main/ipc/contract.js';

export interface PalyraBridgeError {
  readonly name: 'PalyraIpcError';
  /** A code of the error catalogue, `invalid_argument` or `internal`. */
  readonly code: string;
  readonly message: string;
}

declare global {
  interface Window {
    palyra: PalyraApi;
  }
}
