import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import DevicesView from '../../renderer/src/views/DevicesView.svelte';
import RevocationView from '../../renderer/src/views/RevocationView.svelte';
import { DEVICE_ID, deviceView, FINGERPRINT, gatewayStatus, installFakePalyra, ipcError, mockClipboard, OTHER_DEVICE_ID, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

function rows(): HTMLElement[] {
  return screen.queryAllByTestId('device-row');
}

describe('Devices', () => {
  it('lists paired devices with kind, fingerprint, expiry, last seen, capabilities and an online dot', async () => {
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [deviceView(), deviceView({ device_id: OTHER_DEVICE_ID, client_kind: 'node', online: false, capabilities: [] }), deviceView({ device_id: 'REVOKED0000000000000000000', status: 'revoked' })],
      revoked_certificate_fingerprints: [],
    });
    render(DevicesView);

    await waitFor(() => {
      expect(rows()).toHaveLength(2);
    });
    const [first, second] = rows() as [HTMLElement, HTMLElement];
    expect(first.dataset.deviceId).toBe(DEVICE_ID);
    expect(first.dataset.online).toBe('true');
    expect(first.textContent).toContain('Desktop');
    expect(first.textContent).toContain('a1b2 c3d4');
    expect(first.textContent).toContain('system.info');
    expect(first.textContent).toMatch(/expires in 23:59:\d\d|expires in 24:00:00/);
    expect(within(second).getByTestId('device-online').textContent).toBe('Offline');
    expect(second.textContent).toContain('2 min ago');
    expect(second.textContent).toContain('none');
  });

  it('updates the list when a gateway.event arrives, without a manual refresh', async () => {
    render(DevicesView);
    expect(await screen.findByTestId('no-devices')).toBeTruthy();

    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView()], revoked_certificate_fingerprints: [] });
    palyra.emit('gateway.event', { type: 'device.paired', device_id: DEVICE_ID });

    await waitFor(() => {
      expect(rows()).toHaveLength(1);
    });

    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView(), deviceView({ device_id: OTHER_DEVICE_ID })], revoked_certificate_fingerprints: [] });
    palyra.emit('gateway.event', { type: 'devices.changed' });

    await waitFor(() => {
      expect(rows()).toHaveLength(2);
    });
  });

  it('flips the online dot on node.online and node.offline', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ online: false })], revoked_certificate_fingerprints: [] });
    render(DevicesView);
    await waitFor(() => {
      expect(rows()[0]?.dataset.online).toBe('false');
    });

    palyra.emit('gateway.event', { type: 'node.online', device_id: DEVICE_ID });
    await waitFor(() => {
      expect(rows()[0]?.dataset.online).toBe('true');
    });

    palyra.emit('gateway.event', { type: 'node.offline', device_id: DEVICE_ID });
    await waitFor(() => {
      expect(rows()[0]?.dataset.online).toBe('false');
    });
  });

  it('asks for confirmation before revoking, then revokes with the reason', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView()], revoked_certificate_fingerprints: [] });
    render(DevicesView);

    await fireEvent.click(await screen.findByTestId('device-revoke'));

    const dialog = screen.getByTestId<HTMLDialogElement>('confirm-dialog');
    expect(dialog.open).toBe(true);
    expect(dialog.textContent).toContain('Revoke this device?');
    expect(dialog.textContent).toContain(DEVICE_ID);
    expect(palyra.gatewayRevokeDevice).not.toHaveBeenCalled();

    await fireEvent.input(screen.getByTestId('revoke-reason'), { target: { value: 'lost' } });
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ status: 'revoked', revoked_reason: 'lost' })], revoked_certificate_fingerprints: [] });
    await fireEvent.click(screen.getByTestId('confirm-accept'));

    expect(palyra.gatewayRevokeDevice).toHaveBeenCalledWith({ device_id: DEVICE_ID, reason: 'lost' });
    await waitFor(() => {
      expect(dialog.open).toBe(false);
    });
    await waitFor(() => {
      expect(rows()).toHaveLength(0);
    });
  });

  it('does not revoke when the confirmation is cancelled', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView()], revoked_certificate_fingerprints: [] });
    render(DevicesView);

    await fireEvent.click(await screen.findByTestId('device-revoke'));
    await fireEvent.click(screen.getByTestId('confirm-cancel'));

    expect(palyra.gatewayRevokeDevice).not.toHaveBeenCalled();
    expect(rows()).toHaveLength(1);
  });

  it('asks for confirmation before removing', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView()], revoked_certificate_fingerprints: [] });
    render(DevicesView);

    await fireEvent.click(await screen.findByTestId('device-remove'));
    expect(screen.getByTestId('confirm-dialog').textContent).toContain('Remove this device?');
    expect(palyra.gatewayRemoveDevice).not.toHaveBeenCalled();

    await fireEvent.click(screen.getByTestId('confirm-accept'));

    expect(palyra.gatewayRemoveDevice).toHaveBeenCalledWith({ device_id: DEVICE_ID });
  });

  it('makes a device an admin only after a confirmation that explains the role, then shows the badge', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ roles: [] })], revoked_certificate_fingerprints: [] });
    render(DevicesView);

    await fireEvent.click(await screen.findByTestId('device-grant-admin'));
    expect(screen.queryByTestId('device-admin-badge')).toBeNull();
    const dialog = screen.getByTestId<HTMLDialogElement>('confirm-dialog');
    expect(dialog.open).toBe(true);
    expect(dialog.textContent).toContain('Make this device an admin?');
    expect(dialog.textContent).toContain(DEVICE_ID);
    expect(dialog.textContent).toContain('approve, reject and revoke devices remotely');
    expect(palyra.gatewayGrantAdmin).not.toHaveBeenCalled();

    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ roles: ['admin'] })], revoked_certificate_fingerprints: [] });
    await fireEvent.click(screen.getByTestId('confirm-accept'));

    expect(palyra.gatewayGrantAdmin).toHaveBeenCalledWith({ device_id: DEVICE_ID });
    await waitFor(() => {
      expect(dialog.open).toBe(false);
    });
    expect((await screen.findByTestId('device-admin-badge')).textContent).toBe('admin');
    expect(screen.getByTestId('device-revoke-admin')).toBeTruthy();
    expect(screen.queryByTestId('device-grant-admin')).toBeNull();
  });

  it('does not grant the admin role when the confirmation is cancelled', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ roles: [] })], revoked_certificate_fingerprints: [] });
    render(DevicesView);

    await fireEvent.click(await screen.findByTestId('device-grant-admin'));
    await fireEvent.click(screen.getByTestId('confirm-cancel'));

    expect(palyra.gatewayGrantAdmin).not.toHaveBeenCalled();
  });

  it('removes the admin role after a confirmation', async () => {
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [deviceView({ roles: ['admin'] }), deviceView({ device_id: OTHER_DEVICE_ID, roles: [] })],
      revoked_certificate_fingerprints: [],
    });
    render(DevicesView);

    await waitFor(() => {
      expect(rows()).toHaveLength(2);
    });
    const [admin, other] = rows() as [HTMLElement, HTMLElement];
    expect(within(admin).getByTestId('device-admin-badge')).toBeTruthy();
    expect(within(other).queryByTestId('device-admin-badge')).toBeNull();
    expect(within(other).getByTestId('device-grant-admin')).toBeTruthy();

    await fireEvent.click(within(admin).getByTestId('device-revoke-admin'));
    expect(screen.getByTestId('confirm-dialog').textContent).toContain('Remove the admin role?');
    expect(palyra.gatewayRevokeAdmin).not.toHaveBeenCalled();
    await fireEvent.click(screen.getByTestId('confirm-accept'));

    expect(palyra.gatewayRevokeAdmin).toHaveBeenCalledWith({ device_id: DEVICE_ID });
  });

  it('shows the error of a refused grant', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ roles: [] })], revoked_certificate_fingerprints: [] });
    palyra.gatewayGrantAdmin.mockRejectedValue(ipcError('device_not_paired', 'device is not paired'));
    render(DevicesView);

    await fireEvent.click(await screen.findByTestId('device-grant-admin'));
    await fireEvent.click(screen.getByTestId('confirm-accept'));

    expect((await screen.findAllByRole('alert')).some((a) => a.textContent.length > 0)).toBe(true);
    expect(screen.getByTestId<HTMLDialogElement>('confirm-dialog').open).toBe(true);
  });

  it('hides the admin-role buttons, but keeps the badge, when managing a remote gateway', async () => {
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ managed: 'remote', running: false, remote_gateway: { address: 'gw.example.net:7444', name: 'Head Office' } }));
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [deviceView({ roles: ['admin'] }), deviceView({ device_id: OTHER_DEVICE_ID, roles: [] })],
      revoked_certificate_fingerprints: [],
    });
    render(DevicesView);

    expect(await screen.findByTestId('remote-gateway-banner')).toBeTruthy();
    await waitFor(() => {
      expect(rows()).toHaveLength(2);
    });
    expect(screen.getByTestId('device-admin-badge')).toBeTruthy();
    expect(screen.queryByTestId('device-grant-admin')).toBeNull();
    expect(screen.queryByTestId('device-revoke-admin')).toBeNull();
    expect(screen.getAllByTestId('device-revoke')).toHaveLength(2);
  });

  it('copies a device fingerprint', async () => {
    const writeText = mockClipboard();
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView()], revoked_certificate_fingerprints: [] });
    render(DevicesView);

    const row = (await screen.findAllByTestId('device-row'))[0]!;
    await fireEvent.click(within(row).getByRole('button', { name: 'Copy identity fingerprint' }));

    expect(writeText).toHaveBeenCalledWith(FINGERPRINT);
  });
});

describe('Revocation', () => {
  const revokedAt = Date.UTC(2025, 0, 2, 3, 4);

  it('lists revoked devices with reason and time, and revoked certificate fingerprints', async () => {
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [deviceView(), deviceView({ device_id: OTHER_DEVICE_ID, status: 'revoked', revoked_reason: 'stolen', revoked_at_unix_ms: revokedAt })],
      revoked_certificate_fingerprints: ['ee'.repeat(32)],
    });
    render(RevocationView);

    const row = await screen.findByTestId('revoked-row');
    expect(row.dataset.deviceId).toBe(OTHER_DEVICE_ID);
    expect(within(row).getByTestId('revoked-reason').textContent).toBe('stolen');
    expect(row.textContent).toContain('2025');
    expect(screen.getByTestId('revoked-certificate').textContent).toContain('eeee eeee');
  });

  it('unbans a device and shows the list without it', async () => {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ status: 'revoked', revoked_reason: null })], revoked_certificate_fingerprints: [] });
    render(RevocationView);
    expect((await screen.findByTestId('revoked-reason')).textContent).toBe('No reason given');

    palyra.gatewayListDevices.mockResolvedValue({ devices: [], revoked_certificate_fingerprints: [] });
    await fireEvent.click(screen.getByTestId('device-unban'));

    expect(palyra.gatewayUnbanDevice).toHaveBeenCalledWith({ device_id: DEVICE_ID });
    expect(await screen.findByTestId('no-revoked')).toBeTruthy();
  });

  it('shows a device revoked from elsewhere as soon as device.revoked arrives', async () => {
    render(RevocationView);
    await screen.findByTestId('no-revoked');

    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ status: 'revoked', revoked_reason: 'cli' })], revoked_certificate_fingerprints: [] });
    palyra.emit('gateway.event', { type: 'device.revoked', device_id: DEVICE_ID, reason: 'cli' });

    expect((await screen.findByTestId('revoked-reason')).textContent).toBe('cli');
  });
});
