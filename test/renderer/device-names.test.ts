// Named devices in the renderer: the approval card and the Devices view show a device's name (bold) with its kind,
// platform, method, paired-at, last seen and last address; same-named devices get the end of their id appended;
// the inline rename (Enter saves, Escape cancels); and the Pair view's "This device's name", prefilled with the
// host name and sent with the pairing.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { distinctNames } from '../../renderer/src/lib/device-names.js';
import DevicesView from '../../renderer/src/views/DevicesView.svelte';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import PairView from '../../renderer/src/views/PairView.svelte';
import type { QrDecoder } from '../../renderer/src/qr/decoder.js';
import { DEVICE_ID, deviceView, installFakePalyra, ipcError, OTHER_DEVICE_ID, REQUEST_ID, requestView, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

const THIRD_DEVICE_ID = '01J8ZK4Q6N3V7W2X9Y5T1R0MAR';
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

function rowOf(deviceId: string): HTMLElement {
  const row = rows().find((r) => r.dataset.deviceId === deviceId);
  if (row === undefined) throw new Error(`no row for ${deviceId}`);
  return row;
}

describe('distinctNames', () => {
  it('appends the last 6 of the id only where names read the same (ignoring case and Unicode form)', () => {
    const names = distinctNames([
      { device_id: DEVICE_ID, name: 'Ana laptop', client_kind: 'desktop' },
      { device_id: OTHER_DEVICE_ID, name: 'ana LAPTOP', client_kind: 'desktop' },
      { device_id: THIRD_DEVICE_ID, name: 'Caf\u00e9', client_kind: 'node' },
      { device_id: '01J8ZK4Q6N3V7W2X9Y5T1R0MBS', name: 'Cafe\u0301', client_kind: 'node' },
      { device_id: '01J8ZK4Q6N3V7W2X9Y5T1R0MCT', name: null, client_kind: 'node' },
    ]);
    expect(names.get(DEVICE_ID)).toBe('Ana laptop (1R0M8P)');
    expect(names.get(OTHER_DEVICE_ID)).toBe('ana LAPTOP (1R0M9Q)');
    expect(names.get(THIRD_DEVICE_ID)).toBe('Caf\u00e9 (1R0MAR)');
    expect(names.get('01J8ZK4Q6N3V7W2X9Y5T1R0MCT')).toBe('Node 1R0MCT');
    expect(new Set(names.values()).size).toBe(5);
  });

  it('leaves a unique name as it is, and one device listed twice is not a collision', () => {
    const names = distinctNames([
      { device_id: DEVICE_ID, name: 'Ana laptop', client_kind: 'desktop' },
      { device_id: DEVICE_ID, name: 'Ana laptop', client_kind: 'desktop' },
      { device_id: OTHER_DEVICE_ID, name: 'Kitchen Pi', client_kind: 'node' },
    ]);
    expect(names.get(DEVICE_ID)).toBe('Ana laptop');
    expect(names.get(OTHER_DEVICE_ID)).toBe('Kitchen Pi');
  });
});

describe('Devices: names and facts', () => {
  it('shows name (bold), kind and platform, how and when it paired, last seen and last address', async () => {
    const pairedAt = Date.UTC(2024, 4, 1, 9, 30);
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [
        deviceView({ name: 'Ana laptop', platform: 'darwin-arm64', method: 'pin', paired_at_unix_ms: pairedAt, last_address: '192.0.2.44', online: false, last_seen_at_unix_ms: Date.now() - 180_000 }),
        deviceView({ device_id: OTHER_DEVICE_ID, name: null, client_kind: 'node', platform: null, method: null, last_address: null }),
      ],
      revoked_certificate_fingerprints: [],
    });
    render(DevicesView);
    await waitFor(() => {
      expect(rows()).toHaveLength(2);
    });

    const first = rowOf(DEVICE_ID);
    const name = within(first).getByTestId('device-name');
    expect(name.tagName).toBe('STRONG');
    expect(name.textContent).toBe('Ana laptop');
    expect(within(first).getByTestId('device-kind').textContent).toBe('Desktop, darwin-arm64');
    expect(within(first).getByTestId('device-paired').textContent).toContain(new Date(pairedAt).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
    expect(within(first).getByTestId('device-paired').textContent).toContain('by PIN');
    expect(within(first).getByTestId('device-last-seen').textContent).toBe('3 min ago');
    expect(within(first).getByTestId('device-last-address').textContent).toBe('192.0.2.44');

    const second = rowOf(OTHER_DEVICE_ID);
    expect(within(second).getByTestId('device-name').textContent).toBe('Node 1R0M9Q');
    expect(within(second).getByTestId('device-last-address').textContent).toBe('unknown');
  });

  it('tells two devices with the same name apart by the end of their ids', async () => {
    palyra.gatewayListDevices.mockResolvedValue({
      devices: [deviceView({ name: 'Ana laptop' }), deviceView({ device_id: OTHER_DEVICE_ID, name: 'Ana laptop' }), deviceView({ device_id: THIRD_DEVICE_ID, name: 'Kitchen Pi' })],
      revoked_certificate_fingerprints: [],
    });
    render(DevicesView);
    await waitFor(() => {
      expect(rows()).toHaveLength(3);
    });
    expect(within(rowOf(DEVICE_ID)).getByTestId('device-name').textContent).toBe('Ana laptop (1R0M8P)');
    expect(within(rowOf(OTHER_DEVICE_ID)).getByTestId('device-name').textContent).toBe('Ana laptop (1R0M9Q)');
    expect(within(rowOf(THIRD_DEVICE_ID)).getByTestId('device-name').textContent).toBe('Kitchen Pi');
  });
});

describe('Devices: rename', () => {
  async function openEditor(): Promise<HTMLInputElement> {
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ name: 'Ana laptop' })], revoked_certificate_fingerprints: [] });
    render(DevicesView);
    await fireEvent.click(await screen.findByTestId('device-rename'));
    const input = screen.getByTestId<HTMLInputElement>('device-rename-input');
    expect(input.value).toBe('Ana laptop');
    expect(document.activeElement).toBe(input);
    return input;
  }

  it('saves on Enter, shows the new name and gives focus back to the Rename button', async () => {
    const input = await openEditor();
    palyra.gatewayListDevices.mockResolvedValue({ devices: [deviceView({ name: 'Studio Mac' })], revoked_certificate_fingerprints: [] });
    await fireEvent.input(input, { target: { value: 'Studio Mac' } });
    // Enter in a text field submits its form.
    await fireEvent.submit(input.form!);

    await waitFor(() => {
      expect(screen.queryByTestId('device-rename-input')).toBeNull();
    });
    expect(palyra.gatewayRenameDevice).toHaveBeenCalledWith({ device_id: DEVICE_ID, name: 'Studio Mac' });
    await waitFor(() => {
      expect(screen.getByTestId('device-name').textContent).toBe('Studio Mac');
    });
    expect(document.activeElement).toBe(screen.getByTestId('device-rename'));
  });

  it('cancels on Escape without calling the gateway', async () => {
    const input = await openEditor();
    await fireEvent.input(input, { target: { value: 'Something else' } });
    await fireEvent.keyDown(input, { key: 'Escape' });

    await waitFor(() => {
      expect(screen.queryByTestId('device-rename-input')).toBeNull();
    });
    expect(palyra.gatewayRenameDevice).not.toHaveBeenCalled();
    expect(screen.getByTestId('device-name').textContent).toBe('Ana laptop');
    expect(document.activeElement).toBe(screen.getByTestId('device-rename'));
  });

  it('keeps the editor open with the error when the gateway refuses the name', async () => {
    const input = await openEditor();
    palyra.gatewayRenameDevice.mockRejectedValue(ipcError('invalid_argument', 'device name must not contain control characters'));
    await fireEvent.input(input, { target: { value: 'bad' } });
    await fireEvent.submit(input.form!);

    expect(await screen.findByRole('alert')).toBeTruthy();
    expect(screen.getByTestId<HTMLInputElement>('device-rename-input').value).toBe('bad');
  });

  it('does not save a blank name', async () => {
    const input = await openEditor();
    await fireEvent.input(input, { target: { value: '   ' } });
    expect(screen.getByTestId<HTMLButtonElement>('device-rename-save').disabled).toBe(true);
    await fireEvent.submit(input.form!);
    expect(palyra.gatewayRenameDevice).not.toHaveBeenCalled();
  });
});

describe('Approval card', () => {
  it('shows the name the device sent, in bold, and appends the id end when two waiting requests share it', async () => {
    palyra.gatewayListRequests.mockResolvedValue({
      requests: [
        requestView({ device_name: 'Ana laptop' }),
        requestView({ request_id: '01J8ZK5A1B2C3D4E5F6G7H8J9M', device_id: OTHER_DEVICE_ID, device_name: 'Ana laptop' }),
        requestView({ request_id: '01J8ZK5A1B2C3D4E5F6G7H8J9N', device_id: THIRD_DEVICE_ID, device_name: null, client_kind: 'node' }),
      ],
    });
    render(GatewayView);
    await waitFor(() => {
      expect(screen.queryAllByTestId('request-row')).toHaveLength(3);
    });
    const [first, second, third] = screen.getAllByTestId('request-row') as [HTMLElement, HTMLElement, HTMLElement];
    expect(first.dataset.requestId).toBe(REQUEST_ID);
    const name = within(first).getByTestId('request-name');
    expect(name.tagName).toBe('STRONG');
    expect(name.textContent).toBe('Ana laptop (1R0M8P)');
    expect(first.getAttribute('aria-label')).toBe('Pairing request from Ana laptop (1R0M8P)');
    expect(within(second).getByTestId('request-name').textContent).toBe('Ana laptop (1R0M9Q)');
    expect(within(third).getByTestId('request-name').textContent).toBe('Node 1R0MAR');
    expect(first.textContent).toContain('Desktop, paired by QR code');
  });
});

describe('Pair view: this device\'s name', () => {
  const neverDecoder: QrDecoder = { decode: () => Promise.resolve(null) };

  function withHostName(hostName: string): void {
    palyra.appInfo.mockResolvedValue({ name: 'Palyra', version: '0.1.0', mode: 'browser', platform: 'linux', node_version: '20', electron_version: null, device_dir: '/d', state_dir: '/s', host_name: hostName });
  }

  async function pairByPin(): Promise<void> {
    await fireEvent.input(screen.getByTestId('pin-input'), { target: { value: '123456' } });
    await fireEvent.input(screen.getByTestId('gateway-input'), { target: { value: '10.0.0.2:7444' } });
    await fireEvent.click(screen.getByTestId('pin-submit'));
  }

  it('is prefilled with the host name and sent with the pairing', async () => {
    withHostName('ana-laptop.local');
    render(PairView, { props: { decoder: neverDecoder } });
    const field = screen.getByLabelText<HTMLInputElement>("This device's name");
    await waitFor(() => {
      expect(field.value).toBe('ana-laptop.local');
    });
    await pairByPin();
    expect(palyra.devicePairStart).toHaveBeenCalledWith({ method: 'pin', pin: '123456', gateway: '10.0.0.2:7444', device_name: 'ana-laptop.local' });
  });

  it('sends the name as edited, and none when it is cleared', async () => {
    withHostName('ana-laptop.local');
    const view = render(PairView, { props: { decoder: neverDecoder } });
    const field = screen.getByTestId<HTMLInputElement>('device-name-input');
    await waitFor(() => {
      expect(field.value).toBe('ana-laptop.local');
    });
    await fireEvent.input(field, { target: { value: '  Ana’s MacBook ' } });
    await pairByPin();
    expect(palyra.devicePairStart).toHaveBeenLastCalledWith({ method: 'pin', pin: '123456', gateway: '10.0.0.2:7444', device_name: 'Ana’s MacBook' });
    view.unmount();

    palyra = installFakePalyra();
    withHostName('ana-laptop.local');
    render(PairView, { props: { decoder: neverDecoder } });
    const again = screen.getByTestId<HTMLInputElement>('device-name-input');
    await waitFor(() => {
      expect(again.value).toBe('ana-laptop.local');
    });
    await fireEvent.input(again, { target: { value: '' } });
    await pairByPin();
    expect(palyra.devicePairStart).toHaveBeenLastCalledWith({ method: 'pin', pin: '123456', gateway: '10.0.0.2:7444' });
  });
});
