import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import { gatewayStatus, installFakePalyra, ipcError, mockClipboard, PAIRING_URI, REQUEST_ID, requestView, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

/** Selects an option the way a person does: the option becomes selected, then the select fires change. */
async function choose(select: HTMLElement, value: string): Promise<void> {
  for (const option of (select as HTMLSelectElement).options) option.selected = option.value === value;
  await fireEvent.change(select);
}

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

describe('Gateway: pairing requests', () => {
  it('lists a pending request with its SAS in large digits, fingerprint and kind', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(GatewayView);

    const row = await screen.findByTestId('request-row');
    expect(palyra.gatewayListRequests).toHaveBeenCalledWith({ state: 'pending_approval' });
    expect(row.dataset.requestId).toBe(REQUEST_ID);
    expect(within(row).getByTestId('request-sas').textContent).toBe('042 917');
    expect(within(row).getByTestId('request-sas').dataset.sas).toBe('042917');
    expect(row.textContent).toContain('Desktop, paired by QR code');
    expect(row.textContent).toContain('a1b2 c3d4');
    expect(within(row).queryByTestId('sas-unverifiable')).toBeNull();
  });

  it('approves with the request id', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(GatewayView);

    await fireEvent.click(await screen.findByTestId('request-approve'));

    expect(palyra.gatewayApprove).toHaveBeenCalledWith({ request_id: REQUEST_ID });
    await waitFor(() => {
      expect(screen.queryByTestId('request-row')).toBeNull();
    });
    expect(screen.getByTestId('request-notice').textContent).toContain('Approved device');
  });

  it('rejects with the request id', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    render(GatewayView);

    await fireEvent.click(await screen.findByTestId('request-reject'));
    // Issue 13: Reject asks first.
    expect(palyra.gatewayReject).not.toHaveBeenCalled();
    await fireEvent.click(within(screen.getByTestId('reject-dialog')).getByTestId('confirm-accept'));

    expect(palyra.gatewayReject).toHaveBeenCalledWith({ request_id: REQUEST_ID });
    await waitFor(() => {
      expect(screen.queryByTestId('request-row')).toBeNull();
    });
    expect(screen.getByTestId('request-notice').textContent).toContain('Rejected device');
  });

  it('reports a failed approval and keeps the request', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView()] });
    palyra.gatewayApprove.mockRejectedValue(ipcError('pairing_request_not_pending', 'already decided'));
    render(GatewayView);

    await fireEvent.click(await screen.findByTestId('request-approve'));

    await waitFor(() => {
      expect(screen.getByTestId('request-notice').textContent).toContain('Could not approve the request: already decided');
    });
  });

  it('marks a SAS that cannot be verified (reference client)', async () => {
    palyra.gatewayListRequests.mockResolvedValue({ requests: [requestView({ sas_verifiable: false, sas_status: 'unverifiable' })] });
    render(GatewayView);

    const row = await screen.findByTestId('request-row');
    expect(within(row).getByTestId('sas-unverifiable').textContent).toBe('SAS unverifiable');
    expect(row.textContent).toContain('matching digits do not rule out interception');
  });

  it('shows a request as soon as request.created arrives and drops it when it is decided elsewhere', async () => {
    render(GatewayView);
    expect(await screen.findByTestId('no-requests')).toBeTruthy();

    palyra.emit('gateway.event', { type: 'request.created', request: requestView({ sas: '555123' }) });
    const row = await screen.findByTestId('request-row');
    expect(within(row).getByTestId('request-sas').textContent).toBe('555 123');

    palyra.emit('gateway.event', { type: 'request.updated', request: requestView({ state: 'approved' }) });
    await waitFor(() => {
      expect(screen.queryByTestId('request-row')).toBeNull();
    });
  });
});

describe('Gateway: hosting', () => {
  it('turns the gateway off and on with the switch', async () => {
    render(GatewayView);
    const toggle = await screen.findByRole('switch');
    expect(toggle.getAttribute('aria-checked')).toBe('true');

    await fireEvent.click(toggle);

    expect(palyra.gatewayConfigure).toHaveBeenCalledWith({ enabled: false });
    await waitFor(() => {
      expect(screen.getByRole('switch').getAttribute('aria-checked')).toBe('false');
    });
    expect(screen.queryByTestId('mint-qr')).toBeNull();
  });

  it('saves the name and listen address', async () => {
    render(GatewayView);
    const name = await screen.findByTestId('gateway-name-input');
    expect((name as HTMLInputElement).value).toBe('Office');

    await fireEvent.input(name, { target: { value: 'Lab' } });
    await fireEvent.input(screen.getByTestId('gateway-listen-input'), { target: { value: '127.0.0.1:7555' } });
    await fireEvent.submit(name.closest('form')!);

    expect(palyra.gatewayConfigure).toHaveBeenCalledWith({ enabled: true, listen: '127.0.0.1:7555', name: 'Lab' });
  });

  it('says whether rollback of the state is detected: on with the keychain anchor, off in key-file mode', async () => {
    render(GatewayView);
    const on = await screen.findByTestId('rollback-protection');
    expect(on.getAttribute('data-state')).toBe('keychain');
    expect(on.textContent).toContain('detected');
    cleanup();
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ rollback_protection: 'none', key_location: 'file' }));
    render(GatewayView);
    const off = await screen.findByTestId('rollback-protection');
    expect(off.getAttribute('data-state')).toBe('none');
    expect(off.textContent).toContain('unnoticed');
  });

  it('shows the insecure opt-out as a warning banner', async () => {
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ insecure_opt_out: true, mtls_required: false, listen: '127.0.0.1:7444' }));
    render(GatewayView);

    const banner = await screen.findByTestId('insecure-banner');
    expect(banner.textContent).toContain('Insecure mode');
  });

  it('shows no insecure banner normally', async () => {
    render(GatewayView);
    await screen.findByTestId('gateway-switch');

    expect(screen.queryByTestId('insecure-banner')).toBeNull();
  });

  it('mints a QR code with an expiry countdown, a copyable link and Regenerate', async () => {
    const writeText = mockClipboard();
    render(GatewayView);

    await fireEvent.click(await screen.findByTestId('mint-qr'));

    expect(palyra.gatewayMintCode).toHaveBeenCalledWith({ method: 'qr', kind: 'desktop', ttl_ms: 600_000 });
    const qr = await screen.findByTestId('minted-qr');
    expect(qr.dataset.qrText).toBe(PAIRING_URI);
    expect(screen.getByTestId('minted-expiry').textContent).toMatch(/expires in (10:00|9:5\d)/);

    await fireEvent.click(screen.getByRole('button', { name: 'Copy pairing link' }));
    expect(writeText).toHaveBeenCalledWith(PAIRING_URI);

    await fireEvent.click(screen.getByTestId('mint-regenerate'));
    expect(palyra.gatewayMintCode).toHaveBeenCalledTimes(2);
  });

  it('mints a PIN shown in large digits, for the chosen kind and lifetime', async () => {
    render(GatewayView);
    await screen.findByTestId('mint-pin');
    await choose(screen.getByLabelText('Device kind'), 'node');
    await choose(screen.getByLabelText('Valid for'), '30');

    await fireEvent.click(screen.getByTestId('mint-pin'));

    expect(palyra.gatewayMintCode).toHaveBeenCalledWith({ method: 'pin', kind: 'node', ttl_ms: 1_800_000 });
    const pin = await screen.findByTestId('minted-pin');
    expect(pin.textContent).toBe('381 054');
    expect(pin.dataset.pin).toBe('381054');
  });

  it('copies the CA fingerprint', async () => {
    const writeText = mockClipboard();
    render(GatewayView);

    await fireEvent.click(await screen.findByRole('button', { name: 'Copy gateway fingerprint' }));

    expect(writeText).toHaveBeenCalledWith(gatewayStatus().ca_fingerprint);
  });
});

describe('Gateway: a code that was used', () => {
  let palyra: FakePalyra;
  beforeEach(() => {
    palyra = installFakePalyra();
  });
  afterEach(() => {
    cleanup();
    uninstallFakePalyra();
  });

  it('replaces the used QR code by who used it, and a cancel or expiry is told, not left approvable', async () => {
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('mint-qr'));
    await screen.findByTestId('minted-qr');
    palyra.emit('gateway.event', { type: 'request.created', request: requestView({ method: 'qr', device_name: 'Ana’s laptop', requested_at_unix_ms: Date.now() }) });
    const used = await screen.findByTestId('code-used');
    expect(used.textContent).toContain('Used by Ana’s laptop');
    expect(screen.queryByTestId('minted-qr')).toBeNull();
    expect(await screen.findByTestId('request-row')).toBeTruthy();

    palyra.emit('gateway.event', { type: 'request.updated', request: requestView({ method: 'qr', device_name: 'Ana’s laptop', state: 'cancelled' }) });
    await waitFor(() => {
      expect(screen.getByTestId('request-notice').textContent).toContain('Ana’s laptop cancelled its pairing request');
    });
    // Still listed, as cancelled, with no way to approve or reject it (request-ended.test.ts has the rest).
    const row = screen.getByTestId('request-row');
    expect(row.dataset.state).toBe('cancelled');
    expect(within(row).queryByTestId('request-approve')).toBeNull();
    expect(screen.getByTestId('no-requests')).toBeTruthy();
  });

  it('keeps a PIN on screen when a QR code made the request', async () => {
    render(GatewayView);
    await fireEvent.click(await screen.findByTestId('mint-pin'));
    await screen.findByTestId('minted-pin');
    palyra.emit('gateway.event', { type: 'request.created', request: requestView({ method: 'qr', requested_at_unix_ms: Date.now() }) });
    await screen.findByTestId('request-row');
    expect(screen.getByTestId('minted-pin')).toBeTruthy();
    expect(screen.queryByTestId('code-used')).toBeNull();
  });
});
