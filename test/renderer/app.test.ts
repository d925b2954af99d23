import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import { groupFingerprint, pinAsHex } from '../../renderer/src/lib/format.js';
import { ERROR_TEXT } from '../../renderer/src/lib/errors.js';
import { CA_PIN, createFakePalyra, deviceStatus, ipcError, PAIRING_URI, REQUEST_ID, requestView, type FakePalyra } from './fake-palyra.js';

const OTHER_REQUEST_ID = '01J8ZK5A1B2C3D4E5F6G7H8J9M';

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
    expect(dialog.textContent).toContain(groupFingerprint(pinAsHex(CA_PIN)));
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

describe('app.openRequests (a request notification or the tray)', () => {
  function heading(): string | null {
    return screen.getByRole('heading', { level: 1 }).textContent;
  }

  function row(requestId: string): HTMLElement | undefined {
    return screen.queryAllByTestId('request-row').find((r) => r.dataset.requestId === requestId);
  }

  it('opens the Gateway view and focuses the named request row', async () => {
    palyra.gatewayListRequests.mockResolvedValue({
      requests: [requestView({ request_id: OTHER_REQUEST_ID, requested_at_unix_ms: Date.now() - 20_000 }), requestView()],
    });
    render(App, { props: { api: palyra } });
    await navigate('devices');
    expect(palyra.listenerCount('app.openRequests')).toBe(1);

    palyra.emit('app.openRequests', { request_id: REQUEST_ID });

    await waitFor(() => {
      expect(heading()).toBe('Gateway');
    });
    expect(window.location.hash).toBe('#/gateway');
    expect(screen.getByTestId('nav-gateway').getAttribute('aria-current')).toBe('page');
    await waitFor(() => {
      expect(document.activeElement).toBe(row(REQUEST_ID));
    });
    expect(row(OTHER_REQUEST_ID)).toBeDefined();
  });

  it('waits for a request that is not listed yet, then focuses it', async () => {
    render(App, { props: { api: palyra } });
    await waitFor(() => {
      expect(palyra.gatewayListRequests).toHaveBeenCalled();
    });
    // The notification was faster than the request list: the refresh the event triggers brings the request.
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });

    palyra.emit('app.openRequests', { request_id: REQUEST_ID });

    await waitFor(() => {
      expect(document.activeElement).toBe(row(REQUEST_ID));
    });
    expect(heading()).toBe('Gateway');
  });

  it('opens the Gateway view for the tray item (no request id), and for a request that is no longer waiting', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(App, { props: { api: palyra } });

    palyra.emit('app.openRequests', { request_id: null });
    await waitFor(() => {
      expect(heading()).toBe('Gateway');
    });
    await screen.findByTestId('request-row');
    expect(document.activeElement).not.toBe(row(REQUEST_ID));

    await navigate('pair');
    await waitFor(() => {
      expect(heading()).toBe('Pair this device');
    });
    palyra.emit('app.openRequests', { request_id: OTHER_REQUEST_ID });
    await waitFor(() => {
      expect(heading()).toBe('Gateway');
    });
    await screen.findByTestId('request-row');
    expect(row(OTHER_REQUEST_ID)).toBeUndefined();
    expect(document.activeElement).not.toBe(row(REQUEST_ID));
  });

  it('stops listening when the app is gone', () => {
    const view = render(App, { props: { api: palyra } });
    expect(palyra.listenerCount('app.openRequests')).toBe(1);
    view.unmount();
    expect(palyra.listenerCount('app.openRequests')).toBe(0);
  });
});
