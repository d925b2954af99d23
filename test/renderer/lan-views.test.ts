// The Pair view's "Gateways nearby" (DNS-SD results, a hint that only fills the address) and the Gateway view's
// choice of who can connect, against the fake API.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import PairView from '../../renderer/src/views/PairView.svelte';
import type { QrDecoder } from '../../renderer/src/qr/decoder.js';
import { gatewayStatus, installFakePalyra, ipcError, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

const neverDecoder: QrDecoder = { decode: () => Promise.resolve(null) };
const OFFICE = { name: 'Office gateway', addresses: ['192.168.1.20:7444', '[2001:db8::20]:7444'], ca_pin_prefix: 'cmsLDWPeRKolDbDy', protocol_versions: [1], host: 'office-palyra.local' };

describe('Pair view: gateways nearby', () => {
  it('lists what discovery found; "Use" fills the PIN form address and moves focus to the PIN, pairing nothing yet', async () => {
    palyra.discoveryList.mockResolvedValue({ gateways: [OFFICE] });
    render(PairView, { props: { decoder: neverDecoder } });
    const row = await screen.findByTestId('nearby-gateway');
    expect(row.textContent).toContain('Office gateway');
    expect(row.textContent).toContain('192.168.1.20:7444');
    expect(screen.getByTestId('nearby-status').textContent).toMatch(/PIN check\s+still decides/);
    await fireEvent.click(screen.getByRole('button', { name: 'Use Office gateway at 192.168.1.20:7444' }));
    expect(screen.getByTestId<HTMLInputElement>('gateway-input').value).toBe('192.168.1.20:7444');
    expect(document.activeElement).toBe(screen.getByTestId('pin-input'));
    expect(palyra.devicePairStart).not.toHaveBeenCalled();
  });

  it('says when nothing answered, searches again on request, and shows a coded failure', async () => {
    render(PairView, { props: { decoder: neverDecoder } });
    await waitFor(() => {
      expect(screen.getByTestId('nearby-status').textContent).toContain('No gateway answered');
    });
    expect(screen.queryByTestId('nearby-gateway')).toBeNull();
    palyra.discoveryList.mockRejectedValueOnce(ipcError('unavailable', 'cannot use multicast DNS (UDP 5353)'));
    await fireEvent.click(screen.getByTestId('nearby-search'));
    await waitFor(() => {
      expect(palyra.discoveryList).toHaveBeenCalledTimes(2);
      expect(screen.getByTestId('nearby-status').textContent).not.toContain('No gateway answered');
    });
    palyra.discoveryList.mockResolvedValueOnce({ gateways: [OFFICE] });
    await fireEvent.click(screen.getByTestId('nearby-search'));
    expect(await screen.findByTestId('nearby-gateway')).toBeTruthy();
  });
});

describe('Gateway view: who can connect', () => {
  it('shows "this computer only" with a note, and switching to the network asks main to reconfigure', async () => {
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ listen: '127.0.0.1:7444', network: 'local', addresses: ['127.0.0.1:7444'], announced: false }));
    palyra.gatewayConfigure.mockResolvedValue(
      gatewayStatus({ listen: '[::]:7444', network: 'lan', addresses: ['192.168.1.20:7444', 'office:7444'], announced: true }),
    );
    render(GatewayView);
    expect((await screen.findByTestId('gateway-network')).dataset.network).toBe('local');
    expect(screen.getByTestId('gateway-local-note').textContent).toContain('Other computers cannot reach');
    expect(screen.getByTestId<HTMLInputElement>('network-local').checked).toBe(true);
    await fireEvent.click(screen.getByTestId('network-lan'));
    await waitFor(() => {
      expect(palyra.gatewayConfigure).toHaveBeenCalledWith({ enabled: true, network: 'lan' });
    });
    await waitFor(() => {
      expect(screen.getByTestId('gateway-network').dataset.network).toBe('lan');
    });
    expect(screen.getByTestId('gateway-addresses').textContent).toContain('192.168.1.20:7444');
    expect(screen.getByTestId('gateway-announced').textContent).toContain('announced on this network');
    expect(screen.queryByTestId('gateway-local-note')).toBeNull();
  });
});
