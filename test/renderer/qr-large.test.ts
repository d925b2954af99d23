// Issue 13: the QR code opens large (a modal dialog, focus kept inside, Esc closes, focus back on the button), and a
// QR code on screen is replaced by a new one by itself when it expires; a PIN is not.
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import { installFakePalyra, PAIRING_URI, requestView, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  cleanup();
  uninstallFakePalyra();
});

const OTHER_URI = PAIRING_URI.replace('t=0123456789ABCDEFGHJKMNPQRS', 't=ZZZZ456789ABCDEFGHJKMNPQRS');

function qrCode(uri: string, expiresInMs: number, code = '0123456789ABCDEFGHJKMNPQRS') {
  return { method: 'qr' as const, code, uri, expires_at_unix_ms: Date.now() + expiresInMs };
}

describe('Gateway: the QR code shown large', () => {
  it('opens in a modal dialog with the same code, keeps Tab inside, closes on Esc and gives focus back', async () => {
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('mint-qr'));
    const enlarge = await screen.findByTestId('qr-enlarge');
    const dialog = screen.getByTestId<HTMLDialogElement>('qr-large');
    expect(dialog.open).toBe(false);

    await fireEvent.click(enlarge);
    expect(dialog.open).toBe(true);
    expect(within(dialog).getByTestId('qr-large-code').dataset.qrText).toBe(PAIRING_URI);
    expect(within(dialog).getByTestId('qr-large-expiry').textContent).toMatch(/expires in/);
    const close = within(dialog).getByTestId('qr-large-close');
    expect(document.activeElement).toBe(close);

    // Tab from the last (and only) control stays in the dialog.
    const tab = await fireEvent.keyDown(close, { key: 'Tab' });
    expect(tab).toBe(false);
    expect(document.activeElement).toBe(close);
    await fireEvent.keyDown(close, { key: 'Tab', shiftKey: true });
    expect(document.activeElement).toBe(close);

    await fireEvent.keyDown(close, { key: 'Escape' });
    expect(dialog.open).toBe(false);
    expect(document.activeElement).toBe(enlarge);
  });

  it('closes with Close, and by itself once the code was used', async () => {
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('mint-qr'));
    await fireEvent.click(await screen.findByTestId('qr-enlarge'));
    const dialog = screen.getByTestId<HTMLDialogElement>('qr-large');
    await fireEvent.click(within(dialog).getByTestId('qr-large-close'));
    expect(dialog.open).toBe(false);

    await fireEvent.click(screen.getByTestId('qr-enlarge'));
    expect(dialog.open).toBe(true);
    palyra.emit('gateway.event', { type: 'request.created', request: requestView({ method: 'qr', device_name: 'Ana’s laptop', requested_at_unix_ms: Date.now() }) });
    await screen.findByTestId('code-used');
    expect(screen.queryByTestId('qr-large')).toBeNull();
  });
});

describe('Gateway: an expired QR code is replaced by itself', () => {
  it('mints a new code with the same kind and lifetime when the one on screen expires; the large view shows it', async () => {
    palyra.gatewayMintCode.mockResolvedValueOnce(qrCode(PAIRING_URI, 300)).mockResolvedValueOnce(qrCode(OTHER_URI, 600_000, 'ZZZZ456789ABCDEFGHJKMNPQRS'));
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('mint-qr'));
    await fireEvent.click(await screen.findByTestId('qr-enlarge'));
    expect(within(screen.getByTestId('qr-large')).getByTestId('qr-large-code').dataset.qrText).toBe(PAIRING_URI);

    await waitFor(
      () => {
        expect(palyra.gatewayMintCode).toHaveBeenCalledTimes(2);
      },
      { timeout: 5_000 },
    );
    expect(palyra.gatewayMintCode).toHaveBeenLastCalledWith({ method: 'qr', kind: 'desktop', ttl_ms: 600_000 });
    await waitFor(() => {
      expect(screen.getByTestId('minted-qr').dataset.qrText).toBe(OTHER_URI);
    });
    const dialog = screen.getByTestId<HTMLDialogElement>('qr-large');
    expect(dialog.open).toBe(true);
    expect(within(dialog).getByTestId('qr-large-code').dataset.qrText).toBe(OTHER_URI);
    expect(screen.getByTestId('mint-regenerate').textContent).toContain('Regenerate');
    expect(screen.getByTestId('minted-expiry').textContent).toMatch(/expires in/);
  });

  it('does not renew a QR code that was hidden or used, nor a PIN', async () => {
    // Fake timers that also advance by themselves (so the DOM waits work); at the end every pending timer is run.
    vi.useFakeTimers({ shouldAdvanceTime: true });
    palyra.gatewayMintCode.mockResolvedValueOnce(qrCode(PAIRING_URI, 200));
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('mint-qr'));
    await screen.findByTestId('minted-qr');
    await fireEvent.click(screen.getByRole('button', { name: 'Hide' }));

    palyra.gatewayMintCode.mockResolvedValueOnce(qrCode(PAIRING_URI, 200));
    await fireEvent.click(screen.getByTestId('mint-qr'));
    await screen.findByTestId('minted-qr');
    palyra.emit('gateway.event', { type: 'request.created', request: requestView({ method: 'qr', requested_at_unix_ms: Date.now() }) });
    await screen.findByTestId('code-used');

    palyra.gatewayMintCode.mockResolvedValueOnce({ method: 'pin', code: '381054', uri: null, expires_at_unix_ms: Date.now() + 200 });
    await fireEvent.click(screen.getByRole('button', { name: 'Hide' }));
    await fireEvent.click(screen.getByTestId('mint-pin'));
    await screen.findByTestId('minted-pin');
    // Every timer still pending (a renewal would be one) runs now: still only the three mints made by clicks.
    await vi.advanceTimersByTimeAsync(60_000);
    vi.useRealTimers();
    await waitFor(() => {
      expect(screen.getByTestId('minted-expiry').textContent).toBe('This code has expired.');
    });
    expect(palyra.gatewayMintCode).toHaveBeenCalledTimes(3);
    expect(screen.getByTestId('mint-regenerate').textContent).toContain('Make a new code');
  });
});
