// The Gateway, Devices and Revocation views while this device administers a remote gateway (gateway.status managed
// 'remote'): a banner names the gateway, hosting is not offered, and requests and devices work as for a hosted one.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import DevicesView from '../../renderer/src/views/DevicesView.svelte';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import RevocationView from '../../renderer/src/views/RevocationView.svelte';
import { DEVICE_ID, deviceView, gatewayStatus, installFakePalyra, REQUEST_ID, requestView, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

const REMOTE = gatewayStatus({
  enabled: false,
  running: false,
  listen: '127.0.0.1:7444',
  name: null,
  ca_fingerprint: null,
  ca_pin: null,
  key_location: null,
  rollback_protection: null,
  managed: 'remote',
  remote_gateway: { address: 'gw.example.net:7444', name: 'Head Office' },
});

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

describe('managing a remote gateway', () => {
  it('Gateway: names the remote gateway, hides hosting, lists requests with the SAS and approves through the API', async () => {
    palyra.gatewayStatus.mockResolvedValue(REMOTE);
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(GatewayView);

    const banner = await screen.findByTestId('remote-gateway-banner');
    expect(banner.textContent).toContain('Managing remote gateway Head Office (gw.example.net:7444) as an administrator');
    expect(screen.queryByTestId('gateway-switch')).toBeNull();
    expect(screen.queryByTestId('gateway-listen-input')).toBeNull();
    expect(screen.getByTestId('hosting-unavailable').textContent).toContain('administers a remote gateway');

    const row = await screen.findByTestId('request-row');
    expect(within(row).getByTestId('request-sas').textContent).toBe('042 917');
    await fireEvent.click(within(row).getByTestId('request-approve'));
    expect(palyra.gatewayApprove).toHaveBeenCalledWith({ request_id: REQUEST_ID });
    await waitFor(() => {
      expect(screen.queryByTestId('request-row')).toBeNull();
    });
  });

  it('Gateway: no banner and the hosting switch when the app hosts the gateway', async () => {
    render(GatewayView);
    await screen.findByTestId('gateway-switch');
    expect(screen.queryByTestId('remote-gateway-banner')).toBeNull();
    expect(screen.queryByTestId('hosting-unavailable')).toBeNull();
  });

  it('Devices and Revocation: show the banner and the remote devices', async () => {
    palyra.gatewayStatus.mockResolvedValue(REMOTE);
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [deviceView(), deviceView({ device_id: 'REVOKED0000000000000000000', status: 'revoked' })],
      revoked_certificate_fingerprints: [],
    });
    const devices = render(DevicesView);
    expect((await screen.findByTestId('remote-gateway-banner')).textContent).toContain('Head Office (gw.example.net:7444)');
    await waitFor(() => {
      expect(screen.getAllByTestId('device-row').map((r) => r.dataset.deviceId)).toEqual([DEVICE_ID]);
    });
    devices.unmount();

    render(RevocationView);
    expect((await screen.findByTestId('remote-gateway-banner')).textContent).toContain('as an administrator');
    await screen.findByTestId('revoked-row');
  });
});
