import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import DeviceView from '../../renderer/src/views/DeviceView.svelte';
import {
  CA_FINGERPRINT,
  DEVICE_ID,
  deviceStatus,
  FINGERPRINT,
  installFakePalyra,
  ipcError,
  mockClipboard,
  revokedDeviceStatus,
  uninstallFakePalyra,
  unpairedDeviceStatus,
  type FakePalyra,
} from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

describe('This device', () => {
  it('shows the identity, the gateway and how it was pinned', async () => {
    render(DeviceView);

    expect((await screen.findByTestId('this-device-id')).textContent).toBe(DEVICE_ID);
    expect(screen.getByTestId('this-device-fingerprint').textContent).toContain(FINGERPRINT.slice(0, 4) + ' ' + FINGERPRINT.slice(4, 8));
    expect(screen.getByTestId('keychain-state').textContent).toContain('OS keychain');
    expect(screen.getByText('Office')).toBeTruthy();
    expect(screen.getByText('gw.example:7444')).toBeTruthy();
    expect(screen.getByText('Pinned by the QR code')).toBeTruthy();
    expect(screen.getByTestId('connection-state').dataset.state).toBe('online');
    expect(screen.getByTestId('certificate-expiry').textContent).toMatch(/expires in 2:59:\d\d|expires in 3:00:00/);
    expect(screen.queryByTestId('revoked-banner')).toBeNull();
  });

  it('tells the person to unlock the keychain when it is locked, and retries', async () => {
    palyra.deviceStatus.mockResolvedValue(deviceStatus({ keychain: 'locked', device_id: null, identity_fingerprint: null, paired: false }));
    render(DeviceView);

    const banner = await screen.findByTestId('keychain-locked');
    expect(banner.textContent).toContain('Unlock your keychain (login keyring) and retry');
    expect(screen.getByText('Unknown while the keychain is locked')).toBeTruthy();

    palyra.deviceStatus.mockResolvedValue(deviceStatus());
    await fireEvent.click(screen.getByTestId('keychain-retry'));

    await waitFor(() => {
      expect(screen.queryByTestId('keychain-locked')).toBeNull();
    });
    expect(palyra.deviceStatus).toHaveBeenCalledTimes(2);
  });

  it('shows a revoked device prominently, also when the revocation arrives as an event', async () => {
    render(DeviceView);
    await screen.findByTestId('this-device-id');
    expect(screen.queryByTestId('revoked-banner')).toBeNull();

    palyra.deviceStatus.mockResolvedValue(deviceStatus({ revoked: true, connection: 'offline' }));
    palyra.emit('device.event', { type: 'revoked', reason: 'laptop stolen' });

    const banner = await screen.findByTestId('revoked-banner');
    expect(banner.textContent).toContain('This device has been revoked.');
    expect(banner.textContent).toContain('laptop stolen');
    expect(banner.getAttribute('role')).toBe('alert');
  });

  it('follows device.status and connection events live', async () => {
    render(DeviceView);
    await screen.findByTestId('this-device-id');

    palyra.emit('device.event', { type: 'connection', state: 'connecting', attempt: 2, retry_in_ms: 4000 });
    await waitFor(() => {
      expect(screen.getByTestId('connection-state').dataset.state).toBe('connecting');
    });
    expect(screen.getByTestId('connection-state').textContent).toContain('next try in 0:04');

    palyra.emit('device.status', deviceStatus({ renewal: 'renewing' }));
    await waitFor(() => {
      expect(screen.getByTestId('renewal-state').dataset.state).toBe('renewing');
    });
  });

  it('says when the device is not paired', async () => {
    palyra.deviceStatus.mockResolvedValue(deviceStatus({ paired: false, gateway: null, gateway_name: null, ca_fingerprint: null, pinned_by: null, cert_expires_at_unix_ms: null, connection: 'offline' }));
    render(DeviceView);

    expect((await screen.findByTestId('not-paired')).textContent).toContain('not paired');
    expect(screen.queryByTestId('unpair')).toBeNull();
  });

  it('unpairs only after the person confirms', async () => {
    render(DeviceView);
    await fireEvent.click(await screen.findByTestId('unpair'));

    const dialog = screen.getByTestId<HTMLDialogElement>('confirm-dialog');
    expect(dialog.open).toBe(true);
    expect(dialog.textContent).toContain('Unpair this device?');
    expect(palyra.deviceUnpair).not.toHaveBeenCalled();

    await fireEvent.click(screen.getByTestId('confirm-accept'));

    expect(palyra.deviceUnpair).toHaveBeenCalledWith({});
    await waitFor(() => {
      expect(dialog.open).toBe(false);
    });
  });

  it('does nothing when the unpair dialog is cancelled', async () => {
    render(DeviceView);
    await fireEvent.click(await screen.findByTestId('unpair'));
    await fireEvent.click(screen.getByTestId('confirm-cancel'));

    expect((screen.getByTestId<HTMLDialogElement>('confirm-dialog')).open).toBe(false);
    expect(palyra.deviceUnpair).not.toHaveBeenCalled();
  });

  it('copies the device id and fingerprints to the clipboard', async () => {
    const writeText = mockClipboard();
    render(DeviceView);

    await fireEvent.click(await screen.findByRole('button', { name: 'Copy device id' }));
    expect(writeText).toHaveBeenLastCalledWith(DEVICE_ID);
    await waitFor(() => {
      expect(screen.getByText('device id copied to the clipboard')).toBeTruthy();
    });

    await fireEvent.click(screen.getByRole('button', { name: 'Copy identity fingerprint' }));
    expect(writeText).toHaveBeenLastCalledWith(FINGERPRINT);

    await fireEvent.click(screen.getByRole('button', { name: 'Copy gateway fingerprint' }));
    expect(writeText).toHaveBeenLastCalledWith(CA_FINGERPRINT);
  });
});

describe('This device, revoked', () => {
  /** Opens the unpair dialog; `accept` confirms it. */
  async function openUnpair(): Promise<{ dialog: HTMLDialogElement; accept: () => Promise<void> }> {
    await fireEvent.click(await screen.findByTestId('unpair'));
    const dialog = screen.getByTestId<HTMLDialogElement>('confirm-dialog');
    expect(dialog.open).toBe(true);
    return {
      dialog,
      accept: async () => {
        await fireEvent.click(within(dialog).getByTestId('confirm-accept'));
      },
    };
  }

  async function confirmUnpair(): Promise<HTMLDialogElement> {
    const { dialog, accept } = await openUnpair();
    await accept();
    return dialog;
  }

  it('shows its identity, the revoked state and Unpair, not "not paired"', async () => {
    palyra.deviceStatus.mockResolvedValue(revokedDeviceStatus());
    render(DeviceView);

    expect((await screen.findByTestId('revoked-banner')).textContent).toContain('Then unpair here and pair again');
    expect(screen.getByTestId('this-device-id').textContent).toBe(DEVICE_ID);
    expect(screen.getByTestId('this-device-fingerprint').textContent).toContain(FINGERPRINT.slice(0, 4));
    expect(screen.getByTestId('pairing-state').dataset.state).toBe('revoked');
    expect(screen.getByText('Office')).toBeTruthy();
    expect(screen.getByText('gw.example:7444')).toBeTruthy();
    expect(screen.getByTestId('unpair')).toBeTruthy();
    expect(screen.queryByTestId('not-paired')).toBeNull();
    // Nothing about a live connection or a renewal for a certificate the gateway refuses.
    expect(screen.queryByTestId('connection-state')).toBeNull();
    expect(screen.queryByTestId('renewal-state')).toBeNull();
  });

  it('shows the reason and Unpair when the revocation arrives live', async () => {
    render(DeviceView);
    await screen.findByTestId('connection-state');

    palyra.deviceStatus.mockResolvedValue(revokedDeviceStatus());
    palyra.emit('device.event', { type: 'revoked', reason: 'laptop stolen' });

    await waitFor(() => {
      expect(screen.getByTestId('pairing-state').textContent).toContain('laptop stolen');
    });
    expect(screen.getByTestId('revoked-banner').textContent).toContain('laptop stolen');
    expect(screen.getByTestId('unpair')).toBeTruthy();
    expect(screen.queryByTestId('not-paired')).toBeNull();
  });

  it('unpairs after confirmation, says the gateway was not contacted, and then shows the device unpaired', async () => {
    palyra.deviceStatus.mockResolvedValue(revokedDeviceStatus());
    render(DeviceView);
    await screen.findByTestId('revoked-banner');
    expect(palyra.deviceUnpair).not.toHaveBeenCalled();

    const { dialog, accept } = await openUnpair();
    expect(dialog.textContent.replace(/\s+/g, ' ')).toContain('The gateway is not contacted: it already refuses this device.');
    palyra.deviceStatus.mockResolvedValue(unpairedDeviceStatus());
    await accept();
    expect(palyra.deviceUnpair).toHaveBeenCalledWith({});

    const notice = await screen.findByTestId('unpair-notice');
    expect(notice.dataset.tone).toBe('warn');
    expect(notice.textContent).toContain('The gateway was not contacted');
    expect(dialog.open).toBe(false);
    expect(screen.queryByTestId('revoked-banner')).toBeNull();
    expect(screen.getByTestId('not-paired')).toBeTruthy();
    expect(screen.queryByTestId('device-error')).toBeNull();
  });

  it('warns when the gateway could not be told but the local wipe happened', async () => {
    palyra.deviceUnpair.mockImplementation(() => {
      palyra.deviceStatus.mockResolvedValue(unpairedDeviceStatus());
      return Promise.reject(ipcError('unavailable', 'gateway unreachable'));
    });
    render(DeviceView);

    const dialog = await confirmUnpair();

    const notice = await screen.findByTestId('unpair-notice');
    expect(notice.dataset.tone).toBe('warn');
    expect(notice.textContent).toContain('the gateway could not be told');
    expect(notice.textContent).toContain('Ask its operator to revoke this device');
    expect(dialog.open).toBe(false);
    expect(screen.getByTestId('not-paired')).toBeTruthy();
    expect(screen.queryByTestId('device-error')).toBeNull();
  });

  it('reports a failed unpair that left the pairing in place, and keeps the dialog open', async () => {
    palyra.deviceStatus.mockResolvedValue(revokedDeviceStatus());
    palyra.deviceUnpair.mockRejectedValue(ipcError('internal', 'disk full'));
    render(DeviceView);

    const dialog = await confirmUnpair();

    expect((await screen.findByTestId('device-error')).dataset.code).toBe('internal');
    expect(dialog.open).toBe(true);
    expect(screen.queryByTestId('unpair-notice')).toBeNull();
    expect(screen.getByTestId('revoked-banner')).toBeTruthy();
  });
});
