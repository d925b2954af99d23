import type { PalyraApi, ScannedPairing } from './api.js';
import { toUiError, type UiError } from './errors.js';
import { refCounted } from './ref-count.js';

export interface PendingDeepLink {
  readonly uri: string;
  readonly parsed: ScannedPairing | null;
  readonly error: UiError | null;
}

/** A palyra://pair link opened from outside: parsed and held until the person confirms or dismisses it. */
export class DeepLinkStore {
  pending = $state<PendingDeepLink | null>(null);

  readonly #api: PalyraApi;
  readonly attach: () => () => void;
  #sequence = 0;

  constructor(api: PalyraApi) {
    this.#api = api;
    this.attach = refCounted(() =>
      api.on('app.deepLink', ({ uri }) => {
        void this.open(uri);
      }),
    );
  }

  async open(uri: string): Promise<void> {
    const sequence = ++this.#sequence;
    this.pending = { uri, parsed: null, error: null };
    let next: PendingDeepLink;
    try {
      next = { uri, parsed: await this.#api.deviceParseScan({ text: uri }), error: null };
    } catch (error) {
      next = { uri, parsed: null, error: toUiError(error) };
    }
    if (sequence === this.#sequence) this.pending = next;
  }

  dismiss(): void {
    this.#sequence += 1;
    this.pending = null;
  }
}
