// Issue 13: a request that ends while the host lists it (the device cancelled, or it expired) stays in the list,
// marked as such, with no Approve or Reject; it goes when dismissed. One past its expiry is marked at once, before
// the gateway's event. The pending count in the sidebar counts only pending requests.
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import RequestRow from '../../renderer/src/components/RequestRow.svelte';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import { installFakePalyra, REQUEST_ID, requestView, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

const OTHER_REQUEST_ID = '01J8ZK5A1B2C3D4E5F6G7H8J9M';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  cleanup();
  uninstallFakePalyra();
});

describe('Gateway: requests that ended', () => {
  it.each([
    ['cancelled', 'Cancelled by the device', 'cancelled its pairing request'],
    ['expired', 'Expired', 'expired'],
  ] as const)('a %s request stays listed as such, with no Approve or Reject, until dismissed', async (state, badge, notice) => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView({ device_name: 'Ana’s laptop' }), requestView({ request_id: OTHER_REQUEST_ID, device_name: 'Bo’s phone' })] });
    render(GatewayView);
    await waitFor(() => {
      expect(screen.getAllByTestId('request-row')).toHaveLength(2);
    });

    palyra.emit('gateway.event', { type: 'request.updated', request: requestView({ device_name: 'Ana’s laptop', state }) });

    const ended = await screen.findByTestId('ended-requests');
    const row = within(ended).getByTestId('request-row');
    expect(row.dataset.requestId).toBe(REQUEST_ID);
    expect(row.dataset.state).toBe(state);
    expect(within(row).getByTestId('request-ended').textContent).toBe(badge);
    expect(row.getAttribute('aria-label')).toContain(state);
    expect(within(row).queryByTestId('request-approve')).toBeNull();
    expect(within(row).queryByTestId('request-reject')).toBeNull();
    expect(row.textContent).toContain('it cannot be approved');
    expect(screen.getByTestId('request-notice').textContent).toContain(notice);
    // The other request is still pending and approvable.
    const pending = screen.getAllByTestId('request-row').filter((r) => r.dataset.requestId === OTHER_REQUEST_ID);
    expect(pending).toHaveLength(1);
    expect(within(pending[0]!).getByTestId('request-approve')).toBeTruthy();

    await fireEvent.click(within(row).getByTestId('request-dismiss'));
    expect(screen.queryByTestId('ended-requests')).toBeNull();
    expect(palyra.gatewayApprove).not.toHaveBeenCalled();
  });

  it('a request the host never listed does not appear when it ends', async () => {
    render(GatewayView);
    await screen.findByTestId('no-requests');
    palyra.emit('gateway.event', { type: 'request.updated', request: requestView({ state: 'expired' }) });
    await waitFor(() => {
      expect(screen.getByTestId('request-notice').textContent).toContain('expired');
    });
    expect(screen.queryByTestId('ended-requests')).toBeNull();
  });

  it('an approved request leaves the list (only cancelled and expired ones are kept)', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(GatewayView);
    await screen.findByTestId('request-row');
    palyra.emit('gateway.event', { type: 'request.updated', request: requestView({ state: 'approved' }) });
    await waitFor(() => {
      expect(screen.queryByTestId('request-row')).toBeNull();
    });
    expect(screen.queryByTestId('ended-requests')).toBeNull();
  });
});

describe('RequestRow past its expiry', () => {
  it('is marked expired by the clock, before any event, and offers no Approve', async () => {
    render(RequestRow, {
      request: requestView({ expires_at_unix_ms: Date.now() + 150 }),
      busy: false,
      onapprove: () => undefined,
      onreject: () => undefined,
    });
    expect(screen.getByTestId('request-approve')).toBeTruthy();
    await waitFor(() => {
      expect(screen.getByTestId('request-row').dataset.state).toBe('expired');
    });
    expect(screen.queryByTestId('request-approve')).toBeNull();
    expect(screen.queryByTestId('request-reject')).toBeNull();
    expect(screen.getByTestId('request-ended').textContent).toBe('Expired');
  });
});
