// The Gateway view's "Stored in" line and its advanced database setting, against the fake API: the backend as the
// status reports it (the URL redacted by main), setting a URL sends it once and forgets it, clearing goes back to
// the files, and a refused database shows its coded error without claiming the gateway stopped.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import GatewayView from '../../renderer/src/views/GatewayView.svelte';
import { gatewayStatus, installFakePalyra, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

const URL_WITH_PASSWORD = 'postgres://palyra:s3cret@db.example:5432/palyra';
const REDACTED = 'postgres://palyra@db.example:5432/palyra';

describe('Gateway view: where the state is stored', () => {
  it('says "this computer (files)", keeps the database setting collapsed, and moves to PostgreSQL on request', async () => {
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ backend: 'file', database: null }));
    palyra.gatewayConfigure.mockResolvedValue(gatewayStatus({ backend: 'postgres', database: REDACTED }));
    render(GatewayView);
    const storedIn = await screen.findByTestId('gateway-stored-in');
    expect(storedIn.textContent).toMatch(/Stored in:\s+this computer \(files\)/);
    expect(screen.getByTestId<HTMLDetailsElement>('gateway-database-settings').open).toBe(false);
    expect(screen.queryByTestId('database-clear')).toBeNull();

    const input = screen.getByTestId<HTMLInputElement>('database-url-input');
    expect(input.type).toBe('password');
    const save = screen.getByTestId<HTMLButtonElement>('database-save');
    await fireEvent.input(input, { target: { value: 'mysql://root@db/x' } });
    expect(save.disabled).toBe(true);
    await fireEvent.input(input, { target: { value: URL_WITH_PASSWORD } });
    expect(save.disabled).toBe(false);
    await fireEvent.click(save);
    await waitFor(() => {
      expect(palyra.gatewayConfigure).toHaveBeenCalledWith({ enabled: true, database_url: URL_WITH_PASSWORD });
    });
    await waitFor(() => {
      expect(screen.getByTestId('gateway-storage').dataset.backend).toBe('postgres');
    });
    expect(screen.getByTestId('gateway-stored-in').textContent).toMatch(/Stored in:\s+PostgreSQL\s+postgres:\/\/palyra@db\.example:5432\/palyra/);
    // Sent once, then gone from the page: nothing shows the password.
    expect(screen.getByTestId<HTMLInputElement>('database-url-input').value).toBe('');
    expect(document.body.textContent).not.toContain('s3cret');
  });

  it('goes back to the files, and a refused database is an error about the change while the gateway keeps running', async () => {
    palyra.gatewayStatus.mockResolvedValue(gatewayStatus({ backend: 'postgres', database: REDACTED }));
    palyra.gatewayConfigure.mockResolvedValueOnce(gatewayStatus({ backend: 'file', database: null }));
    render(GatewayView);
    expect((await screen.findByTestId('gateway-database')).textContent).toBe(REDACTED);
    await fireEvent.click(screen.getByTestId('database-clear'));
    await waitFor(() => {
      expect(palyra.gatewayConfigure).toHaveBeenCalledWith({ enabled: true, database_url: null });
    });
    await waitFor(() => {
      expect(screen.getByTestId('gateway-stored-in').textContent).toContain('this computer (files)');
    });

    palyra.gatewayConfigure.mockResolvedValueOnce(
      gatewayStatus({
        backend: 'file',
        database: null,
        error: { code: 'state_unavailable', message: 'the state database postgres://palyra@db.example:5432/palyra is unavailable: password authentication failed' },
      }),
    );
    const input = screen.getByTestId<HTMLInputElement>('database-url-input');
    await fireEvent.input(input, { target: { value: URL_WITH_PASSWORD } });
    await fireEvent.click(screen.getByTestId('database-save'));
    const error = await screen.findByTestId('gateway-error');
    expect(error.dataset.code).toBe('state_unavailable');
    expect(error.textContent).toContain('The last change was not applied.');
    expect(error.textContent).not.toContain('stopped');
    expect(screen.getByTestId('gateway-storage').dataset.backend).toBe('file');
  });
});
