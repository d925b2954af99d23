// Issue 13: the first-run choice "Join a gateway" / "Host a gateway here", shown on the Pair view while the main
// process says it is needed (nothing chosen, no pairing, no hosted gateway); the choice is sent to be kept.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import { createFakePalyra, deviceStatus, gatewayStatus, ipcError, unpairedDeviceStatus, type FakePalyra } from './fake-palyra.js';

beforeEach(() => {
  window.location.hash = '';
});

afterEach(() => {
  window.location.hash = '';
});

function firstRunApi(): FakePalyra {
  const api = createFakePalyra();
  api.appFirstRun.mockResolvedValue({ choice: null, needed: true });
  api.deviceStatus.mockResolvedValue(unpairedDeviceStatus());
  api.gatewayStatus.mockResolvedValue(gatewayStatus({ enabled: false, running: false }));
  return api;
}

describe('the first-run choice', () => {
  it('asks on a first run, with focus on its question; "Join a gateway" is kept and leads to the ways to pair', async () => {
    const api = firstRunApi();
    render(App, { props: { api } });
    const card = await screen.findByTestId('first-run');
    expect(card.textContent).toContain('Join a gateway');
    expect(card.textContent).toContain('Host a gateway here');
    await waitFor(() => {
      expect(document.activeElement?.textContent).toBe('How will you use Palyra on this computer?');
    });

    await fireEvent.click(screen.getByTestId('first-run-join'));
    expect(api.appChooseStart).toHaveBeenCalledWith({ choice: 'join' });
    await waitFor(() => {
      expect(screen.queryByTestId('first-run')).toBeNull();
    });
    expect(window.location.hash).not.toBe('#/gateway');
    expect(document.activeElement?.getAttribute('data-testid')).toBe('device-name-input');
    await waitFor(() => {
      expect(screen.getByTestId('live-region').textContent).toContain('Join a gateway');
    });
  });

  it('"Host a gateway here" is kept and opens the Gateway view', async () => {
    const api = firstRunApi();
    render(App, { props: { api } });
    await fireEvent.click(await screen.findByTestId('first-run-host'));
    expect(api.appChooseStart).toHaveBeenCalledWith({ choice: 'host' });
    await waitFor(() => {
      expect(window.location.hash).toBe('#/gateway');
    });
    expect(await screen.findByTestId('gateway-switch')).toBeTruthy();
    expect(screen.queryByTestId('first-run')).toBeNull();
  });

  it('is not asked once chosen, nor when the device is paired or a gateway is hosted here', async () => {
    for (const setup of [
      (api: FakePalyra) => api.appFirstRun.mockResolvedValue({ choice: 'host', needed: false }),
      (api: FakePalyra) => api.deviceStatus.mockResolvedValue(deviceStatus()),
      (api: FakePalyra) => api.gatewayStatus.mockResolvedValue(gatewayStatus({ enabled: true, running: true })),
    ]) {
      const api = firstRunApi();
      setup(api);
      const { unmount } = render(App, { props: { api } });
      await screen.findByTestId('pin-input');
      await waitFor(() => {
        expect(api.appFirstRun).toHaveBeenCalled();
        expect(screen.getByTestId('status-device').dataset.state).not.toBe('loading');
      });
      expect(screen.queryByTestId('first-run')).toBeNull();
      unmount();
    }
  });

  it('shows a failure to keep the choice and stays', async () => {
    const api = firstRunApi();
    api.appChooseStart.mockRejectedValue(ipcError('store_io_failed', 'failed to write first-run.json'));
    render(App, { props: { api } });
    await fireEvent.click(await screen.findByTestId('first-run-join'));
    const problem = await screen.findByTestId('first-run-error');
    expect(problem.dataset.code).toBe('store_io_failed');
    expect(screen.getByTestId('first-run')).toBeTruthy();
  });
});
