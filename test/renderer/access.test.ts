// Issue 13, layout and access in the renderer: focus follows each step (never dropped to <body>) and state changes
// are read out from the app's one polite live region.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import App from '../../renderer/src/App.svelte';
import type { QrDecoder } from '../../renderer/src/qr/decoder.js';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import PairView from '../../renderer/src/views/PairView.svelte';
import { createFakePalyra, installFakePalyra, REQUEST_ID, requestView, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

const SECOND_REQUEST_ID = '01J8ZK5A1B2C3D4E5F6G7H8J9M';
const neverDecoder: QrDecoder = { decode: () => Promise.resolve(null) };

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
  window.location.hash = '';
});

afterEach(() => {
  uninstallFakePalyra();
  window.location.hash = '';
});

async function submitPin(value = '123456'): Promise<void> {
  await fireEvent.input(screen.getByTestId('pin-input'), { target: { value } });
  await fireEvent.input(screen.getByTestId('gateway-input'), { target: { value: 'gw.example:7444' } });
  await fireEvent.click(screen.getByTestId('pin-submit'));
}

describe('focus after each step', () => {
  it('moves focus to the pairing heading after "Pair with PIN", then to the SAS to compare', async () => {
    render(PairView, { props: { decoder: neverDecoder } });
    screen.getByTestId('pin-input').focus();
    await submitPin();

    await waitFor(() => {
      expect(document.activeElement).toBe(screen.getByTestId('pairing-heading'));
    });

    palyra.emit('device.pairing', {
      pairing_id: 'pairing-1',
      progress: { type: 'awaiting_approval', gateway: 'gw.example:7444', sas: '042917', request_id: REQUEST_ID, gateway_name: 'Office' },
    });
    await waitFor(() => {
      expect(document.activeElement).toBe(screen.getByTestId('pairing-sas-heading'));
    });
    expect(document.activeElement).not.toBe(document.body);
  });

  it('after Approve, focus moves to the next request, and to the list heading when none is left', async () => {
    palyra.gatewayListRequests.mockResolvedValue({
      requests: [requestView(), requestView({ request_id: SECOND_REQUEST_ID, device_id: '01J8ZK4Q6N3V7W2X9Y5T1R0M9Q', requested_at_unix_ms: Date.now() - 5_000 })],
    });
    render(GatewayView);
    await waitFor(() => {
      expect(screen.getAllByTestId('request-row')).toHaveLength(2);
    });

    const [first] = screen.getAllByTestId('request-approve');
    first!.focus();
    await fireEvent.click(first!);
    await waitFor(() => {
      expect((document.activeElement as HTMLElement).dataset.requestId).toBe(SECOND_REQUEST_ID);
    });

    await fireEvent.click(screen.getByTestId('request-approve'));
    await waitFor(() => {
      expect(document.activeElement).toBe(screen.getByTestId('requests-heading'));
    });
  });
});

describe('the polite live region', () => {
  it('is the one aria-live region of the app and reads out the pairing steps', async () => {
    const api = createFakePalyra();
    render(App, { props: { api } });

    const regions = document.querySelectorAll('[aria-live]');
    expect(regions).toHaveLength(1);
    const region = screen.getByTestId('live-region');
    expect(region.getAttribute('aria-live')).toBe('polite');

    await submitPin();
    api.emit('device.pairing', {
      pairing_id: 'pairing-1',
      progress: { type: 'awaiting_approval', gateway: 'gw.example:7444', sas: '042917', request_id: REQUEST_ID, gateway_name: 'Office' },
    });
    await waitFor(() => {
      expect(region.textContent).toBe('Waiting for the operator of Office to approve this device.');
    });
  });

  it('reads out a new pairing request and a decision on the Gateway view', async () => {
    const api = createFakePalyra();
    window.location.hash = '#/gateway';
    render(App, { props: { api } });
    const region = screen.getByTestId('live-region');
    await screen.findByTestId('no-requests');

    api.emit('gateway.event', { type: 'request.created', request: requestView({ device_name: 'Lab laptop' }) });
    await waitFor(() => {
      expect(region.textContent).toContain('Lab laptop asks to pair');
    });

    await fireEvent.click(await screen.findByTestId('request-approve'));
    await waitFor(() => {
      expect(region.textContent).toContain('Approved');
    });
  });
});
