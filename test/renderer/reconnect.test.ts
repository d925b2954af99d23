// Issue 13, "Reconnect now": offered in the sidebar and the Device view only while this paired device is offline;
// it calls device.reconnect, says so in the live region, and shows a refusal with its code.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import DeviceView from '../../renderer/src/views/DeviceView.svelte';
import { createFakePalyra, deviceStatus, installFakePalyra, ipcError, revokedDeviceStatus, uninstallFakePalyra, unpairedDeviceStatus } from './fake-palyra.js';

beforeEach(() => {
  window.location.hash = '';
});

afterEach(() => {
  uninstallFakePalyra();
  window.location.hash = '';
});

describe('Reconnect now', () => {
  it('appears in the sidebar when the device goes offline, calls device.reconnect, announces it, and goes once online', async () => {
    const api = createFakePalyra();
    render(App, { props: { api } });
    await waitFor(() => {
      expect(screen.getByTestId('status-device').dataset.state).toBe('online');
    });
    expect(screen.queryByTestId('status-reconnect')).toBeNull();

    api.emit('device.event', { type: 'connection', state: 'offline', attempt: 4, retry_in_ms: 4000, code: 'gateway_unreachable' });
    const button = await screen.findByTestId('status-reconnect');
    expect(button.textContent.trim()).toBe('Reconnect now');
    await fireEvent.click(button);
    expect(api.deviceReconnect).toHaveBeenCalledWith({});
    await waitFor(() => {
      expect(screen.getByTestId('live-region').textContent).toContain('Reconnecting to Office');
    });

    api.emit('device.event', { type: 'connection', state: 'connecting', attempt: 1 });
    await waitFor(() => {
      expect(screen.queryByTestId('status-reconnect')).toBeNull();
    });
    api.emit('device.event', { type: 'connection', state: 'online' });
    await waitFor(() => {
      expect(screen.getByTestId('status-device').dataset.state).toBe('online');
    });
    expect(screen.queryByTestId('status-reconnect')).toBeNull();
  });

  it('shows a refusal with its code next to the button', async () => {
    const api = createFakePalyra();
    api.deviceStatus.mockResolvedValue(deviceStatus({ connection: 'offline' }));
    api.deviceReconnect.mockRejectedValue(ipcError('unavailable', 'a pairing is in progress; reconnect once it has ended'));
    render(App, { props: { api } });
    await fireEvent.click(await screen.findByTestId('status-reconnect'));
    const problem = await screen.findByTestId('status-reconnect-error');
    expect(problem.dataset.code).toBe('unavailable');
    expect(problem.textContent.trim()).not.toBe('');
    // Still offered: it may work later.
    expect(screen.getByTestId('status-reconnect')).toBeTruthy();
  });

  it.each([
    ['not paired', unpairedDeviceStatus()],
    ['revoked', revokedDeviceStatus()],
    ['connecting', deviceStatus({ connection: 'connecting' })],
  ])('is not offered when the device is %s', async (_what, status) => {
    const api = createFakePalyra();
    api.deviceStatus.mockResolvedValue(status);
    render(App, { props: { api } });
    await waitFor(() => {
      expect(screen.getByTestId('status-device').dataset.state).not.toBe('loading');
    });
    expect(screen.queryByTestId('status-reconnect')).toBeNull();
  });

  it('is in the Device view beside the connection state while offline', async () => {
    const palyra = installFakePalyra();
    palyra.deviceStatus.mockResolvedValue(deviceStatus({ connection: 'offline' }));
    render(DeviceView);
    const state = await screen.findByTestId('connection-state');
    await fireEvent.click(await within(state).findByTestId('device-reconnect'));
    expect(palyra.deviceReconnect).toHaveBeenCalledTimes(1);
  });
});
