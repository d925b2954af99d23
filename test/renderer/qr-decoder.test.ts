// Which QR engine decodes (issue 6): zxing-wasm by default, jsQR when the setting asks for it, and jsQR with a
// visible hint when zxing-wasm cannot start or breaks. The engines themselves are stand-ins here; the real zxing-wasm
// decodes a camera QR code in headless Chromium in test/e2e/pairing-camera.test.ts.
import { render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DECODER_SETTING_KEY,
  DEFAULT_DECODER,
  decoderKindFrom,
  preferredDecoder,
  WorkerQrDecoder,
  type DecodeRequest,
  type DecodeResponse,
  type DecoderEngine,
  type QrDecoder,
} from '../../renderer/src/qr/decoder.js';
import { DecodeEngines, type DecodeFn, type EngineLoaders } from '../../renderer/src/qr/engines.js';
import PairView from '../../renderer/src/views/PairView.svelte';
import { installFakePalyra, uninstallFakePalyra } from './fake-palyra.js';

function frame(width = 4, height = 4): ImageData {
  return { width, height, data: new Uint8ClampedArray(width * height * 4), colorSpace: 'srgb' };
}

function pixels(): Uint8ClampedArray<ArrayBuffer> {
  return new Uint8ClampedArray(4 * 4 * 4);
}

/** Engine loaders whose engines answer with a fixed text and record what they were asked. */
function loaders(overrides: Partial<EngineLoaders> = {}) {
  const zxingDecode = vi.fn<DecodeFn>(() => Promise.resolve('from zxing'));
  const jsqrDecode = vi.fn<DecodeFn>(() => Promise.resolve('from jsqr'));
  const zxing = vi.fn(overrides.zxing ?? (() => Promise.resolve(zxingDecode)));
  const jsqr = vi.fn(overrides.jsqr ?? (() => Promise.resolve(jsqrDecode)));
  return { loaders: { zxing, jsqr }, zxing, jsqr, zxingDecode, jsqrDecode };
}

afterEach(() => {
  localStorage.removeItem(DECODER_SETTING_KEY);
  vi.useRealTimers();
});

describe('the decoder setting', () => {
  it('is zxing-wasm unless it says jsqr or zxing', () => {
    expect(DEFAULT_DECODER).toBe('zxing');
    expect(decoderKindFrom('jsqr')).toBe('jsqr');
    expect(decoderKindFrom(' JSQR ')).toBe('jsqr');
    expect(decoderKindFrom('zxing')).toBe('zxing');
    for (const other of [null, undefined, '', 'jsQR-fast', 'zbar', 42]) expect(decoderKindFrom(other)).toBe('zxing');
  });

  it("reads localStorage['palyra.qrDecoder']", () => {
    expect(DECODER_SETTING_KEY).toBe('palyra.qrDecoder');
    expect(preferredDecoder()).toBe('zxing');
    localStorage.setItem(DECODER_SETTING_KEY, 'jsqr');
    expect(preferredDecoder()).toBe('jsqr');
    localStorage.setItem(DECODER_SETTING_KEY, 'nonsense');
    expect(preferredDecoder()).toBe('zxing');
  });

  it('falls back to the default when storage is missing or refuses access', () => {
    expect(preferredDecoder(null)).toBe('zxing');
    const refusing = {
      getItem: (): string | null => {
        throw new DOMException('denied', 'SecurityError');
      },
    };
    expect(preferredDecoder(refusing)).toBe('zxing');
  });
});

describe('the worker’s engine (DecodeEngines)', () => {
  it('decodes with zxing-wasm by default, starting it once', async () => {
    const l = loaders();
    const engines = new DecodeEngines(l.loaders);

    expect(await engines.decode('zxing', pixels(), 4, 4)).toEqual({ text: 'from zxing', engine: { kind: 'zxing', fallback: null } });
    await engines.decode('zxing', pixels(), 4, 4);

    expect(l.zxing).toHaveBeenCalledTimes(1);
    expect(l.zxingDecode).toHaveBeenCalledTimes(2);
    expect(l.jsqr).not.toHaveBeenCalled();
  });

  it('decodes with jsQR when asked, never starting zxing-wasm', async () => {
    const l = loaders();
    const engines = new DecodeEngines(l.loaders);

    expect(await engines.decode('jsqr', pixels(), 4, 4)).toEqual({ text: 'from jsqr', engine: { kind: 'jsqr', fallback: null } });
    expect(l.zxing).not.toHaveBeenCalled();
  });

  it('falls back to jsQR, saying why, when zxing-wasm cannot start', async () => {
    const l = loaders({ zxing: () => Promise.reject(new Error('Refused to compile WebAssembly')) });
    const engines = new DecodeEngines(l.loaders);

    const outcome = await engines.decode('zxing', pixels(), 4, 4);
    expect(outcome.text).toBe('from jsqr');
    expect(outcome.engine.kind).toBe('jsqr');
    expect(outcome.engine.fallback).toBe('zxing-wasm could not start (Refused to compile WebAssembly)');
    expect(engines.engine).toEqual(outcome.engine);
    // Not tried again on every frame.
    await engines.decode('zxing', pixels(), 4, 4);
    expect(l.zxing).toHaveBeenCalledTimes(1);
  });

  it('falls back when zxing-wasm takes too long to start', async () => {
    vi.useFakeTimers();
    const l = loaders({ zxing: () => new Promise<DecodeFn>(() => undefined) });
    const engines = new DecodeEngines(l.loaders, { startTimeoutMs: 5_000 });

    const pending = engines.decode('zxing', pixels(), 4, 4);
    await vi.advanceTimersByTimeAsync(5_000);

    expect(await pending).toEqual({ text: 'from jsqr', engine: { kind: 'jsqr', fallback: 'zxing-wasm could not start (it did not start within 5 s)' } });
  });

  it('switches to jsQR for good when zxing-wasm breaks while decoding, answering that frame with jsQR', async () => {
    const l = loaders();
    l.zxingDecode.mockRejectedValueOnce(new Error('Aborted(OOM)'));
    const engines = new DecodeEngines(l.loaders);

    const frameData = pixels();
    const outcome = await engines.decode('zxing', frameData, 4, 4);
    expect(outcome).toEqual({ text: 'from jsqr', engine: { kind: 'jsqr', fallback: 'zxing-wasm failed while decoding (Aborted(OOM))' } });
    expect(l.jsqrDecode).toHaveBeenCalledWith(frameData, 4, 4);
    await engines.decode('zxing', pixels(), 4, 4);
    expect(l.zxingDecode).toHaveBeenCalledTimes(1);
  });

  it('reports a jsQR error as an error, and tries to load jsQR again after it failed to load', async () => {
    let attempts = 0;
    const l = loaders({
      jsqr: () => {
        attempts += 1;
        return attempts === 1 ? Promise.reject(new Error('chunk failed')) : Promise.resolve(() => Promise.reject(new Error('bad frame')));
      },
    });
    const engines = new DecodeEngines(l.loaders);

    await expect(engines.decode('jsqr', pixels(), 4, 4)).rejects.toThrow('chunk failed');
    await expect(engines.decode('jsqr', pixels(), 4, 4)).rejects.toThrow('bad frame');
    expect(engines.engine).toEqual({ kind: 'jsqr', fallback: null });
  });
});

/** A stand-in Worker: records the requests, answers when the test says. */
function fakeWorker() {
  const posted: DecodeRequest[] = [];
  const worker = {
    onmessage: null as ((event: MessageEvent<DecodeResponse>) => void) | null,
    onerror: null as ((event: ErrorEvent) => void) | null,
    postMessage: vi.fn((request: DecodeRequest) => {
      posted.push(request);
    }),
    terminate: vi.fn(),
    answer(response: DecodeResponse) {
      worker.onmessage?.({ data: response } as MessageEvent<DecodeResponse>);
    },
  };
  return { worker, posted, create: () => worker as unknown as Worker };
}

describe('WorkerQrDecoder', () => {
  it('asks the worker for the engine of the setting, read when it is created', async () => {
    localStorage.setItem(DECODER_SETTING_KEY, 'jsqr');
    const { worker, posted, create } = fakeWorker();
    const decoder = new WorkerQrDecoder({ createWorker: create });
    localStorage.setItem(DECODER_SETTING_KEY, 'zxing');
    expect(decoder.preferred).toBe('jsqr');

    const result = decoder.decode(frame());
    expect(posted[0]?.decoder).toBe('jsqr');
    worker.answer({ id: posted[0]!.id, text: 'palyra://pair?v=1', engine: { kind: 'jsqr', fallback: null } });
    expect(await result).toBe('palyra://pair?v=1');
  });

  it('asks for zxing-wasm by default', () => {
    const { posted, create } = fakeWorker();
    void new WorkerQrDecoder({ createWorker: create }).decode(frame());
    expect(posted[0]?.decoder).toBe('zxing');
  });

  it('tells its listeners which engine answers, and again only when that changes', async () => {
    const { worker, posted, create } = fakeWorker();
    const decoder = new WorkerQrDecoder({ createWorker: create });
    const seen: DecoderEngine[] = [];
    decoder.onEngine((engine) => seen.push(engine));

    const first = decoder.decode(frame());
    worker.answer({ id: posted[0]!.id, text: null, engine: { kind: 'zxing', fallback: null } });
    await first;
    const second = decoder.decode(frame());
    worker.answer({ id: posted[1]!.id, text: null, engine: { kind: 'zxing', fallback: null } });
    await second;
    const third = decoder.decode(frame());
    worker.answer({ id: posted[2]!.id, error: 'bad frame', engine: { kind: 'jsqr', fallback: 'zxing-wasm failed while decoding (x)' } });
    await expect(third).rejects.toThrow('bad frame');

    expect(seen).toEqual([
      { kind: 'zxing', fallback: null },
      { kind: 'jsqr', fallback: 'zxing-wasm failed while decoding (x)' },
    ]);
    // A late listener hears the current engine at once.
    const late = vi.fn();
    decoder.onEngine(late);
    expect(late).toHaveBeenCalledWith({ kind: 'jsqr', fallback: 'zxing-wasm failed while decoding (x)' });
    expect(decoder.engine?.kind).toBe('jsqr');
  });
});

describe('the scan hint', () => {
  beforeEach(() => {
    installFakePalyra();
  });

  afterEach(() => {
    uninstallFakePalyra();
  });

  /** A decoder that reports the engine the test gives it. */
  function reportingDecoder(engine: DecoderEngine): QrDecoder {
    return {
      decode: () => Promise.resolve(null),
      onEngine: (listener) => {
        listener(engine);
        return () => undefined;
      },
    };
  }

  it('says so when zxing-wasm could not start and jsQR scans instead', async () => {
    render(PairView, { props: { decoder: reportingDecoder({ kind: 'jsqr', fallback: 'zxing-wasm could not start (Failed to fetch)' }) } });

    const hint = await screen.findByTestId('decoder-hint');
    expect(hint.textContent).toBe('zxing-wasm could not start (Failed to fetch). Scanning continues with the slower jsQR decoder.');
    expect(screen.getByTestId('scan-status').dataset.decoder).toBe('jsqr');
  });

  it('says nothing when the engine runs as chosen', async () => {
    render(PairView, { props: { decoder: reportingDecoder({ kind: 'zxing', fallback: null }) } });

    await waitFor(() => {
      expect(screen.getByTestId('scan-status').dataset.decoder).toBe('zxing');
    });
    expect(screen.queryByTestId('decoder-hint')).toBeNull();
  });

  it('says nothing for a decoder that does not report its engine', () => {
    render(PairView, { props: { decoder: { decode: () => Promise.resolve(null) } } });

    expect(screen.queryByTestId('decoder-hint')).toBeNull();
    expect(screen.getByTestId('scan-status').dataset.decoder).toBeUndefined();
  });
});
