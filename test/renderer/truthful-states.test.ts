// Issue 13, a truthful device side: one status summary in the sidebar, the Pair tab reset once the pairing is gone,
// revoked and removed told apart, and no "created when the gateway first starts" for a gateway that is just off.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import DeviceView from '../../renderer/src/views/DeviceView.svelte';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import {
  createFakePalyra,
  deviceStatus,
  gatewayStatus,
  installFakePalyra,
  requestView,
  revokedDeviceStatus,
  uninstallFakePalyra,
  unpairedDeviceStatus,
  type FakePalyra,
} from './fake-palyra.js';

beforeEach(() => {
  window.location.hash = '';
});

afterEach(() => {
  uninstallFakePalyra();
  window.location.hash = '';
});

describe('the sidebar status', () => {
  it('says paired and online, and the hosted gateway on with its waiting requests', async () => {
    const api = createFakePalyra();
    api.gatewayListRequests.mockResolvedValue({ requests: [requestView(), requestView({ request_id: '01J8ZK5A1B2C3D4E5F6G7H8J9M' })] });
    render(App, { props: { api } });

    await waitFor(() => {
      expect(screen.getByTestId('status-device').textContent).toBe('This device: paired with Office, online');
      expect(screen.getByTestId('status-gateway').textContent).toBe('Gateway here: on, 2 waiting');
    });

    api.emit('device.event', { type: 'connection', state: 'offline' });
    await waitFor(() => {
      expect(screen.getByTestId('status-device').dataset.state).toBe('offline');
    });
    expect(screen.getByTestId('status-device').textContent).toContain('offline');
  });

  it('says revoked, removed and not paired apart, and a gateway that is off', async () => {
    const api = createFakePalyra();
    api.deviceStatus.mockResolvedValue(revokedDeviceStatus());
    api.gatewayStatus.mockResolvedValue(gatewayStatus({ enabled: false, running: false }));
    render(App, { props: { api } });

    await waitFor(() => {
      expect(screen.getByTestId('status-device').dataset.state).toBe('revoked');
    });
    expect(screen.getByTestId('status-device').textContent).toBe('This device: revoked by Office');
    expect(screen.getByTestId('status-gateway').textContent).toBe('Gateway here: off');

    api.deviceStatus.mockResolvedValue(deviceStatus({ paired: false, connection: 'offline' }));
    api.emit('device.event', { type: 'reauth_required', reason: 'the gateway no longer knows this device' });
    await waitFor(() => {
      expect(screen.getByTestId('status-device').dataset.state).toBe('removed');
    });

    api.emit('device.status', unpairedDeviceStatus());
    await waitFor(() => {
      expect(screen.getByTestId('status-device').textContent).toBe('This device: not paired');
    });
  });
});

describe('the Pair tab after the pairing is gone', () => {
  it.each([
    ['unpaired', unpairedDeviceStatus()],
    ['revoked', revokedDeviceStatus()],
  ])('resets once this device is %s', async (_what, after) => {
    const api = createFakePalyra();
    render(App, { props: { api } });
    await screen.findByTestId('pin-input');
    // Pair by PIN up to "paired".
    await fireEvent.input(screen.getByTestId('pin-input'), { target: { value: '123456' } });
    await fireEvent.input(screen.getByTestId('gateway-input'), { target: { value: 'gw.example:7444' } });
    await fireEvent.click(screen.getByTestId('pin-submit'));
    await waitFor(() => {
      expect(api.devicePairStart).toHaveBeenCalled();
    });
    api.emit('device.pairing', { pairing_id: 'pairing-1', progress: { type: 'paired', device_id: '01J8ZK4Q6N3V7W2X9Y5T1R0M8P', gateway: 'gw.example:7444', cert_expires_at_unix_ms: Date.now() + 3_600_000 } });
    await waitFor(() => {
      expect(screen.getByTestId('pairing-message').textContent).toContain('This device is paired with');
    });

    api.emit('device.status', after);
    await waitFor(() => {
      expect(screen.queryByTestId('pairing-status')).toBeNull();
    });
    expect(document.body.textContent).not.toContain('This device is paired with');
    expect(screen.getByTestId('pin-input')).toBeTruthy();
  });
});

describe('the Pair tab right after pairing', () => {
  it('keeps saying paired while the device status has not caught up yet', async () => {
    const api = createFakePalyra();
    // The status the app holds still says "not paired" when the pairing ends; only the refresh brings the new one.
    let status = unpairedDeviceStatus();
    api.deviceStatus.mockImplementation(() => Promise.resolve(status));
    render(App, { props: { api } });
    await screen.findByTestId('pin-input');
    await fireEvent.input(screen.getByTestId('pin-input'), { target: { value: '123456' } });
    await fireEvent.input(screen.getByTestId('gateway-input'), { target: { value: 'gw.example:7444' } });
    await fireEvent.click(screen.getByTestId('pin-submit'));
    await waitFor(() => {
      expect(api.devicePairStart).toHaveBeenCalled();
    });
    status = deviceStatus();
    api.emit('device.pairing', { pairing_id: 'pairing-1', progress: { type: 'paired', device_id: '01J8ZK4Q6N3V7W2X9Y5T1R0M8P', gateway: 'gw.example:7444', cert_expires_at_unix_ms: Date.now() + 3_600_000 } });
    await waitFor(() => {
      expect(screen.getByTestId('pairing-message').textContent).toContain('This device is paired with');
    });
    await waitFor(() => {
      expect(api.deviceStatus.mock.calls.length).toBeGreaterThan(1);
    });
    expect(screen.getByTestId('pairing-status').dataset.phase).toBe('paired');
  });
});

describe('revoked and removed, told apart on the device', () => {
  let palyra: FakePalyra;
  beforeEach(() => {
    palyra = installFakePalyra();
  });

  it('a ban says the operator must unban it first', async () => {
    palyra.deviceStatus.mockResolvedValue(deviceStatus());
    render(DeviceView);
    await screen.findByTestId('this-device-id');
    palyra.emit('device.event', { type: 'revoked', reason: 'laptop stolen' });

    const banner = await screen.findByTestId('revoked-banner');
    expect(banner.dataset.state).toBe('revoked');
    expect(banner.textContent).toContain('unban');
  });

  it('a removal says it is not banned and may pair again', async () => {
    palyra.deviceStatus.mockResolvedValue(deviceStatus());
    render(DeviceView);
    await screen.findByTestId('this-device-id');
    // The main process says why (device.status revocation), from what the gateway said.
    palyra.deviceStatus.mockResolvedValue(revokedDeviceStatus({ revocation: 'removed' }));
    palyra.emit('device.event', { type: 'revoked', reason: 'device certificate is revoked' });

    // Until the refreshed status arrives the banner says only "revoked"; then what the main process says.
    await waitFor(() => {
      expect(screen.getByTestId('revoked-banner').dataset.state).toBe('removed');
    });
    const banner = screen.getByTestId('revoked-banner');
    expect(banner.textContent).toContain('not banned');
    expect(banner.textContent).not.toContain('unban');
  });
});

describe('the hosted gateway when off', () => {
  it('does not claim the CA is made later when the gateway is only off', async () => {
    const palyra = installFakePalyra();
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ enabled: false, running: false, ca_fingerprint: null }));
    render(GatewayView);

    expect((await screen.findByTestId('gateway-ca-off')).textContent).toBe('Shown while the gateway is running');
    expect(document.body.textContent).not.toContain('first starts');
  });
});

describe('requests on the host', () => {
  it('Reject asks for confirmation and sends the optional reason; Cancel rejects nothing', async () => {
    const palyra = installFakePalyra();
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView({ device_name: 'Lab laptop' })] });
    render(GatewayView);

    await fireEvent.click(await screen.findByTestId('request-reject'));
    const dialog = screen.getByTestId('reject-dialog');
    expect(dialog.textContent).toContain('Lab laptop');
    await fireEvent.click(within(dialog).getByTestId('confirm-cancel'));
    expect(palyra.gatewayReject).not.toHaveBeenCalled();
    expect(screen.getByTestId('request-row')).toBeTruthy();

    await fireEvent.click(screen.getByTestId('request-reject'));
    await fireEvent.input(screen.getByTestId('reject-reason'), { target: { value: 'not ours' } });
    await fireEvent.click(within(dialog).getByTestId('confirm-accept'));
    expect(palyra.gatewayReject).toHaveBeenCalledWith({ request_id: requestView().request_id, reason: 'not ours' });
    await waitFor(() => {
      expect(screen.getByTestId('request-notice').textContent).toBe('Rejected device Lab laptop.');
    });
  });

  it('"Approved device X" clears as soon as another device asks to pair', async () => {
    const palyra = installFakePalyra();
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView({ device_name: 'Lab laptop' })] });
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('request-approve'));
    await waitFor(() => {
      expect(screen.getByTestId('request-notice').textContent).toBe('Approved device Lab laptop.');
    });

    palyra.emit('gateway.event', { type: 'request.created', request: requestView({ request_id: '01J8ZK5A1B2C3D4E5F6G7H8J9M', device_name: 'Phone' }) });
    await waitFor(() => {
      expect(screen.getByTestId('request-notice').textContent).toBe('');
    });
  });
});
