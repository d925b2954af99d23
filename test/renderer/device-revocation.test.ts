// Issue 13, truthful device states: banned, removed and a refusal that says neither are worded apart on the device
// (Device view banner, sidebar, nav badge), from `device.status` `revocation` (the main process's, not guessed from
// text); the host's Devices and Revocation views say removed / banned / unbanned in the same words.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import DevicesView from '../../renderer/src/views/DevicesView.svelte';
import DeviceView from '../../renderer/src/views/DeviceView.svelte';
import RevocationView from '../../renderer/src/views/RevocationView.svelte';
import { createFakePalyra, DEVICE_ID, deviceView, installFakePalyra, revokedDeviceStatus, uninstallFakePalyra } from './fake-palyra.js';

beforeEach(() => {
  window.location.hash = '';
});

afterEach(() => {
  uninstallFakePalyra();
  window.location.hash = '';
});

describe('the device side', () => {
  it.each([
    ['banned', 'banned', 'This device is banned by its gateway.', 'unbans', 'This device: banned by Office', 'revoked', 'banned'],
    ['removed', 'removed', 'This device was removed from the gateway.', 'not banned', 'This device: removed by Office, pair again', 'removed', 'removed'],
    ['refused', 'revoked', 'This device has been revoked.', 'If its operator banned it', 'This device: revoked by Office', 'revoked', 'revoked'],
  ] as const)('%s: its own banner, sidebar line and badge', async (revocation, bannerState, heading, detail, sidebar, sidebarState, badge) => {
    const api = createFakePalyra();
    api.deviceStatus.mockResolvedValue(revokedDeviceStatus({ revocation }));
    window.location.hash = '#/device';
    render(App, { props: { api } });
    const banner = await screen.findByTestId('revoked-banner');
    expect(banner.dataset.state).toBe(bannerState);
    expect(banner.textContent).toContain(heading);
    expect(banner.textContent).toContain(detail);
    await waitFor(() => {
      expect(screen.getByTestId('status-device').textContent).toBe(sidebar);
    });
    expect(screen.getByTestId('status-device').dataset.state).toBe(sidebarState);
    expect(screen.getByTestId('nav-device').textContent).toContain(badge);
    // Revoked in any way: no "Reconnect now".
    expect(screen.queryByTestId('status-reconnect')).toBeNull();
  });

  it('a removed device is never told to wait for an unban', async () => {
    const palyra = installFakePalyra();
    palyra.deviceStatus.mockResolvedValue(revokedDeviceStatus({ revocation: 'removed' }));
    render(DeviceView);
    const banner = await screen.findByTestId('revoked-banner');
    expect(banner.textContent).not.toMatch(/unban/i);
  });
});

describe('the host side says the same', () => {
  it('Remove: "not banned, may pair again"; Revoke: "banned … until you unban it"', async () => {
    const palyra = installFakePalyra();
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ name: 'Ana’s laptop' })], revoked_certificate_fingerprints: [] });
    render(DevicesView);
    await fireEvent.click(await screen.findByTestId('device-remove'));
    await fireEvent.click(screen.getByTestId('confirm-accept'));
    expect((await screen.findByTestId('devices-notice')).textContent).toBe('Removed Ana’s laptop: it is not banned and may pair again with a new code.');

    await fireEvent.click(await screen.findByTestId('device-revoke'));
    await fireEvent.click(screen.getByTestId('confirm-accept'));
    await waitFor(() => {
      expect(screen.getByTestId('devices-notice').textContent).toBe('Revoked Ana’s laptop: it is banned and cannot pair again until you unban it (Revocation).');
    });
  });

  it('Unban: "may pair again with a new code"', async () => {
    const palyra = installFakePalyra();
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ status: 'revoked', name: 'Ana’s laptop' })], revoked_certificate_fingerprints: [] });
    render(RevocationView);
    await fireEvent.click(await screen.findByTestId('device-unban'));
    expect(palyra.gatewayUnbanDevice).toHaveBeenCalledWith({ device_id: DEVICE_ID });
    expect((await screen.findByTestId('devices-notice')).textContent).toBe('Unbanned Ana’s laptop: it may pair again with a new code.');
  });
});
