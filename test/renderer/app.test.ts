import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import { ERROR_TEXT } from '../../renderer/src/lib/errors.js';
import { CA_PIN, createFakePalyra, deviceStatus, ipcError, PAIRING_URI, requestView, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = createFakePalyra();
  window.location.hash = '';
});

afterEach(() => {
  window.location.hash = '';
});

async function navigate(route: string): Promise<void> {
  window.location.hash = `#/${route}`;
  window.dispatchEvent(new HashChangeEvent('hashchange'));
  await Promise.resolve();
}

describe('App shell', () => {
  it('opens on Pair this device and switches views from the nav', async () => {
    render(App, { props: { api: palyra } });

    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Pair this device');
    expect(screen.getByTestId('nav-pair').getAttribute('aria-current')).toBe('page');

    await navigate('devices');
    await waitFor(() => {
      expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Devices');
    });
    expect(screen.getByTestId('nav-devices').getAttribute('aria-current')).toBe('page');
    expect(screen.getByTestId('nav-pair').getAttribute('aria-current')).toBeNull();
  });

  it('counts requests waiting for approval in the nav', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(App, { props: { api: palyra } });

    expect((await screen.findByTestId('nav-requests')).textContent).toContain('1');
  });

  it('marks a revoked device in the nav', async () => {
    palyra.deviceStatus.mockResolvedValue(deviceStatus({ revoked: true }));
    render(App, { props: { api: palyra } });

    expect(await screen.findByText('revoked')).toBeTruthy();
  });
});

describe('deep links', () => {
  it('asks for confirmation, showing the parsed gateway, before pairing', async () => {
    render(App, { props: { api: palyra } });
    await navigate('devices');

    palyra.emit('app.deepLink', { uri: PAIRING_URI });

    const dialog = await screen.findByTestId<HTMLDialogElement>('deeplink-dialog');
    await waitFor(() => {
      expect(screen.getByTestId('deeplink-gateway-name').textContent).toBe('Office');
    });
    expect(dialog.open).toBe(true);
    expect(palyra.deviceParseScan).toHaveBeenCalledWith({ text: PAIRING_URI });
    expect(screen.getByTestId('deeplink-gateway-addresses').textContent).toContain('gw.example:7444');
    expect(dialog.textContent).toContain(CA_PIN);
    expect(palyra.devicePairStart).not.toHaveBeenCalled();

    await fireEvent.click(within(dialog).getByTestId('confirm-accept'));

    expect(palyra.devicePairStart).toHaveBeenCalledWith({ method: 'uri', uri: PAIRING_URI });
    await waitFor(() => {
      expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Pair this device');
    });
    expect(screen.getByTestId('pairing-status')).toBeTruthy();
    expect(dialog.open).toBe(false);
  });

  it('does nothing when the deep link is dismissed', async () => {
    render(App, { props: { api: palyra } });
    palyra.emit('app.deepLink', { uri: PAIRING_URI });
    await screen.findByTestId('deeplink-gateway-name');

    await fireEvent.click(screen.getByTestId('confirm-cancel'));

    await waitFor(() => {
      expect((screen.getByTestId<HTMLDialogElement>('deeplink-dialog')).open).toBe(false);
    });
    expect(palyra.devicePairStart).not.toHaveBeenCalled();
  });

  it('explains a deep link that does not parse and offers no Pair', async () => {
    palyra.deviceParseScan.mockRejectedValue(ipcError('pairing_uri_expired'));
    render(App, { props: { api: palyra } });

    palyra.emit('app.deepLink', { uri: 'palyra://pair?v=1&exp=1' });

    expect((await screen.findByTestId('deeplink-error')).textContent).toContain(ERROR_TEXT.pairing_uri_expired);
    expect((screen.getByTestId<HTMLButtonElement>('confirm-accept')).disabled).toBe(true);
  });
});

describe('after pairing', () => {
  it('refreshes this device once pairing succeeds', async () => {
    render(App, { props: { api: palyra } });
    await fireEvent.input(screen.getByTestId('link-input'), { target: { value: PAIRING_URI } });
    await fireEvent.click(screen.getByTestId('link-submit'));
    await fireEvent.click(await screen.findByTestId('pair-confirm'));
    await waitFor(() => {
      expect(palyra.devicePairStart).toHaveBeenCalled();
    });
    const before = palyra.deviceStatus.mock.calls.length;

    palyra.emit('device.pairing', { pairing_id: 'pairing-1', progress: { type: 'paired', device_id: 'X', gateway: 'gw.example:7444', cert_expires_at_unix_ms: Date.now() + 1000 } });

    await waitFor(() => {
      expect(palyra.deviceStatus.mock.calls.length).toBeGreaterThan(before);
    });
  });
});
