import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { groupFingerprint, pinAsHex } from '../../renderer/src/lib/format.js';
import { ERROR_TEXT } from '../../renderer/src/lib/errors.js';
import type { QrDecoder } from '../../renderer/src/qr/decoder.js';
import PairView from '../../renderer/src/views/PairView.svelte';
import { CA_PIN, DEVICE_ID, installFakePalyra, ipcError, PAIRING_URI, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

const neverDecoder: QrDecoder = { decode: () => Promise.resolve(null) };

function renderPairView(props: Record<string, unknown> = {}) {
  return render(PairView, { props: { decoder: neverDecoder, ...props } });
}

async function useLink(text = PAIRING_URI): Promise<void> {
  await fireEvent.input(screen.getByTestId('link-input'), { target: { value: text } });
  await fireEvent.click(screen.getByTestId('link-submit'));
}

/** Scans a link and presses "Pair with this gateway": pairing starts with id pairing-1. */
async function startPairing(): Promise<void> {
  await useLink();
  await fireEvent.click(await screen.findByTestId('pair-confirm'));
  await waitFor(() => {
    expect(palyra.devicePairStart).toHaveBeenCalled();
  });
}

function progress(p: Parameters<typeof palyra.emit<'device.pairing'>>[1]['progress'], pairingId = 'pairing-1'): void {
  palyra.emit('device.pairing', { pairing_id: pairingId, progress: p });
}

async function message(): Promise<string> {
  await Promise.resolve();
  return screen.getByTestId('pairing-message').textContent.trim();
}

describe('Pair this device: after a scan', () => {
  it('shows the gateway name, addresses and CA pin of a scanned link, verified when connecting', async () => {
    renderPairView();
    await useLink();

    expect(palyra.deviceParseScan).toHaveBeenCalledWith({ text: PAIRING_URI });
    expect((await screen.findByTestId('scan-gateway-name')).textContent).toBe('Office');
    const addresses = screen.getByTestId('scan-gateway-addresses').textContent;
    expect(addresses).toContain('gw.example:7444');
    expect(addresses).toContain('192.0.2.10:7444');
    expect(screen.getByTestId('scan-ca-pin').textContent).toBe(groupFingerprint(pinAsHex(CA_PIN)));
    expect(screen.getByText(/Verified against the gateway when connecting/)).toBeTruthy();
  });

  it('starts pairing with the scanned URI only when the person confirms', async () => {
    renderPairView();
    await useLink();
    await screen.findByTestId('scan-result');
    expect(palyra.devicePairStart).not.toHaveBeenCalled();

    await fireEvent.click(screen.getByTestId('pair-confirm'));

    expect(palyra.devicePairStart).toHaveBeenCalledWith({ method: 'uri', uri: PAIRING_URI });
  });

  it('asks for the gateway address when the code is a bare token', async () => {
    palyra.deviceParseScan.mockResolvedValue({ type: 'token', token: 'ABCDEFGHJKMNPQRSTVWXYZ0123' });
    renderPairView();
    await useLink('ABCDEFGHJKMNPQRSTVWXYZ0123');

    const input = await screen.findByTestId('token-gateway-input');
    expect(screen.getByText('This code has no gateway address')).toBeTruthy();
    await fireEvent.input(input, { target: { value: 'gw.example:7444' } });
    await fireEvent.click(screen.getByTestId('pair-confirm'));

    expect(palyra.devicePairStart).toHaveBeenCalledWith({ method: 'token', token: 'ABCDEFGHJKMNPQRSTVWXYZ0123', gateway: 'gw.example:7444' });
  });

  it('explains a link the main process could not parse', async () => {
    palyra.deviceParseScan.mockRejectedValue(ipcError('pairing_uri_invalid'));
    renderPairView();
    await useLink('palyra://nonsense');

    expect((await screen.findByTestId('scan-error')).textContent).toContain(ERROR_TEXT.pairing_uri_invalid);
  });

  it('pairs with a typed PIN and gateway address', async () => {
    renderPairView();
    const submit = screen.getByTestId<HTMLButtonElement>('pin-submit');
    expect(submit.disabled).toBe(true);

    await fireEvent.input(screen.getByTestId('pin-input'), { target: { value: '123456' } });
    await fireEvent.input(screen.getByTestId('gateway-input'), { target: { value: '10.0.0.2:7444' } });
    await fireEvent.click(submit);

    expect(palyra.devicePairStart).toHaveBeenCalledWith({ method: 'pin', pin: '123456', gateway: '10.0.0.2:7444' });
  });

  it('decodes a chosen QR image with the same decoder and parses what it found', async () => {
    const decode = vi.fn(() => Promise.resolve(PAIRING_URI));
    const pixels = { width: 1, height: 1, data: new Uint8ClampedArray(4) } as ImageData;
    const readImage = vi.fn(() => Promise.resolve(pixels));
    renderPairView({ decoder: { decode }, readImage });

    const file = new File([new Uint8Array([1, 2, 3])], 'qr.png', { type: 'image/png' });
    await fireEvent.change(screen.getByTestId('qr-image-input'), { target: { files: [file] } });

    await screen.findByTestId('scan-result');
    expect(readImage).toHaveBeenCalledWith(file);
    expect(decode).toHaveBeenCalledWith(pixels);
    expect(palyra.deviceParseScan).toHaveBeenCalledWith({ text: PAIRING_URI });
  });

  it('says so when an image has no QR code', async () => {
    renderPairView({ readImage: () => Promise.resolve({ width: 1, height: 1, data: new Uint8ClampedArray(4) } as ImageData) });
    const file = new File([new Uint8Array([1])], 'cat.png', { type: 'image/png' });
    await fireEvent.change(screen.getByTestId('qr-image-input'), { target: { files: [file] } });

    expect((await screen.findByTestId('scan-error')).textContent).toContain('No QR code was found in that image');
    expect(palyra.deviceParseScan).not.toHaveBeenCalled();
  });
});

describe('Pair this device: progress', () => {
  it('walks through connecting, verifying the gateway, awaiting approval and paired', async () => {
    renderPairView();
    await startPairing();
    const status = screen.getByTestId('pairing-status');

    progress({ type: 'connecting', gateway: 'gw.example:7444' });
    expect(await message()).toContain('Connecting to gw.example:7444');
    expect(status.dataset.step).toBe('connecting');

    progress({ type: 'verifying_gateway', gateway: 'gw.example:7444', ca_fingerprint: 'ab'.repeat(32), ca_pin: CA_PIN, pinned: true });
    expect(await message()).toContain('Verifying the gateway');
    expect(screen.getByTestId('pairing-ca-fingerprint').textContent).toContain('abab abab');
    expect(screen.getByTestId('pairing-pin-state').textContent).toContain('Matches the gateway key in the QR code');

    progress({ type: 'awaiting_approval', sas: '042917', request_id: 'r1', gateway: 'gw.example:7444', gateway_name: 'Office' });
    expect(await message()).toContain('Waiting for the operator of Office to approve this device');
    expect(screen.getByText('Compare with the gateway screen')).toBeTruthy();
    const sas = screen.getByTestId('pairing-sas');
    expect(sas.textContent).toBe('042 917');
    expect(sas.dataset.sas).toBe('042917');

    progress({ type: 'paired', device_id: DEVICE_ID, gateway: 'gw.example:7444', cert_expires_at_unix_ms: Date.now() + 86_400_000 });
    expect(await message()).toContain('This device is paired with Office');
    expect(status.dataset.phase).toBe('paired');
    expect(screen.getByTestId('paired-device-id').textContent).toBe(DEVICE_ID);
    expect(screen.queryByTestId('pairing-sas')).toBeNull();
  });

  it('says it is reconnecting while the gateway is away, and keeps the request and its code', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'awaiting_approval', sas: '042917', request_id: 'r1', gateway: 'gw.example:7444', gateway_name: 'Office' });
    expect(await message()).toContain('Waiting for the operator of Office');
    progress({ type: 'reconnecting', gateway: 'gw.example:7444', request_id: 'r1', attempt: 2, retry_in_ms: 800, code: 'gateway_unreachable' });
    expect(await message()).toContain('Lost the connection to Office. The request is kept; reconnecting (attempt 2)');
    expect(screen.getByTestId('pairing-sas').dataset.sas).toBe('042917');
    expect(screen.getByTestId('pairing-status').dataset.phase).toBe('progress');
    // Back in touch: the next status answer clears the notice.
    progress({ type: 'awaiting_approval', sas: '042917', request_id: 'r1', gateway: 'gw.example:7444', gateway_name: 'Office' });
    expect(await message()).toContain('Waiting for the operator of Office to approve this device');
  });

  it('warns that an unpinned gateway must be compared by eye', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'verifying_gateway', gateway: 'gw.example:7444', ca_fingerprint: 'cd'.repeat(32), ca_pin: 'x', pinned: false });
    await Promise.resolve();

    expect(screen.getByTestId('pairing-pin-state').textContent).toContain('Compare this fingerprint with the one shown on the gateway');
  });

  it('shows a rejection with the operator reason, without a Retry that cannot help', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'rejected', reason: 'unknown laptop' });

    expect(await message()).toContain(ERROR_TEXT.pairing_rejected);
    expect(screen.getByText('Reason given: unknown laptop')).toBeTruthy();
    expect(screen.getByTestId('pairing-status').dataset.phase).toBe('rejected');
    // The code was spent on the rejected request: retrying it can only fail.
    expect(screen.queryByTestId('pairing-retry')).toBeNull();
  });

  it('shows an expired request', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'expired' });

    expect(await message()).toContain(ERROR_TEXT.pairing_expired);
    expect(screen.getByTestId('pairing-status').dataset.phase).toBe('expired');
  });

  const CODES = [
    'ca_pin_mismatch',
    'pairing_rejected',
    'pairing_expired',
    'pairing_code_invalid',
    'keychain_locked',
    'pairing_budget_exhausted',
    'gateway_unreachable',
    'tls_handshake_failed',
    'invalid_argument',
    'pairing_code_expired',
    'transcript_verification_failed',
    'device_revoked',
    'timeout',
  ] as const;

  const RETRYABLE: ReadonlySet<string> = new Set(['gateway_unreachable', 'tls_handshake_failed', 'keychain_locked', 'timeout']);

  it.each(CODES)('explains a failed pairing with code %s', async (code) => {
    renderPairView();
    await startPairing();
    progress({ type: 'failed', code, message: `raw ${code}` });

    expect(await message()).toContain(ERROR_TEXT[code]);
    expect(screen.getByTestId('pairing-message').dataset.code).toBe(code);
    // Retry only where it can help (issue 13): the network, a busy gateway, a locked keychain.
    expect(screen.queryByTestId('pairing-retry') !== null).toBe(RETRYABLE.has(code));
  });

  it.each(CODES)('explains a pairing that could not start, code %s', async (code) => {
    palyra.devicePairStart.mockRejectedValue(ipcError(code));
    renderPairView();
    await startPairing();

    await waitFor(() => {
      expect(screen.getByTestId('pairing-message').textContent).toContain(ERROR_TEXT[code]);
    });
  });

  it('retries with the same arguments', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'failed', code: 'gateway_unreachable', message: 'ECONNREFUSED' });
    await Promise.resolve();
    palyra.devicePairStart.mockResolvedValue({ pairing_id: 'pairing-2' });

    await fireEvent.click(screen.getByTestId('pairing-retry'));

    expect(palyra.devicePairStart).toHaveBeenCalledTimes(2);
    expect(palyra.devicePairStart).toHaveBeenLastCalledWith({ method: 'uri', uri: PAIRING_URI });
    await waitFor(() => {
      expect(screen.getByTestId('pairing-status').dataset.phase).toBe('progress');
    });
    progress({ type: 'connecting', gateway: 'gw.example:7444' }, 'pairing-2');
    expect(await message()).toContain('Connecting to gw.example:7444');
  });

  it('cancels a pairing in progress', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'awaiting_approval', sas: '111222', request_id: 'r1', gateway: 'gw.example:7444', gateway_name: null });
    await Promise.resolve();

    await fireEvent.click(screen.getByTestId('pairing-cancel'));

    expect(palyra.devicePairCancel).toHaveBeenCalledWith({ pairing_id: 'pairing-1' });
    expect(await message()).toBe('Pairing cancelled.');
    progress({ type: 'failed', code: 'cancelled', message: 'pairing was cancelled' });
    expect(await message()).toBe('Pairing cancelled.');
  });

  it('applies progress that arrives before devicePairStart has answered', async () => {
    let answer: (value: { pairing_id: string }) => void = () => undefined;
    palyra.devicePairStart.mockReturnValue(new Promise((resolve) => (answer = resolve)));
    renderPairView();
    await useLink();
    await fireEvent.click(await screen.findByTestId('pair-confirm'));

    progress({ type: 'connecting', gateway: 'gw.example:7444' }, 'early-1');
    progress({ type: 'awaiting_approval', sas: '987654', request_id: 'r9', gateway: 'gw.example:7444', gateway_name: 'Office' }, 'early-1');
    progress({ type: 'expired' }, 'someone-else');
    answer({ pairing_id: 'early-1' });

    await waitFor(() => {
      expect(screen.getByTestId('pairing-sas').dataset.sas).toBe('987654');
    });
    expect(screen.getByTestId('pairing-status').dataset.phase).toBe('progress');
  });

  it('ignores progress for another pairing id', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'expired' }, 'not-mine');

    expect(screen.getByTestId('pairing-status').dataset.phase).toBe('progress');
  });

  it('goes back to the scanner with Start over', async () => {
    renderPairView();
    await startPairing();
    progress({ type: 'expired' });
    await Promise.resolve();

    await fireEvent.click(screen.getByTestId('pairing-start-over'));

    expect(screen.queryByTestId('pairing-status')).toBeNull();
    expect(screen.getByTestId('scan-status')).toBeTruthy();
  });
});

describe('one vocabulary for fingerprints', () => {
  it('shows the QR code gateway key as grouped hex, the same digits the host shows', () => {
    const pin = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64url');
    expect(pinAsHex(pin)).toBe(Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, '0')).join(''));
    expect(pinAsHex('not a pin')).toBe('not a pin');
  });
});
