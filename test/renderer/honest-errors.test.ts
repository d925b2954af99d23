// Issue 13, honest errors: a used, wrong or expired code fails at "Checking the code" with a way to a new code (not
// at "Verifying the gateway" with a Retry that can only fail), and the PIN field takes a PIN as it is displayed.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readPin } from '../../renderer/src/lib/pin.js';
import type { QrDecoder } from '../../renderer/src/qr/decoder.js';
import PairView from '../../renderer/src/views/PairView.svelte';
import { CA_PIN, installFakePalyra, PAIRING_URI, uninstallFakePalyra, type FakePalyra } from './fake-palyra.js';

const neverDecoder: QrDecoder = { decode: () => Promise.resolve(null) };
let palyra: FakePalyra;

beforeEach(() => {
  palyra = installFakePalyra();
});

afterEach(() => {
  uninstallFakePalyra();
});

function progress(p: Parameters<typeof palyra.emit<'device.pairing'>>[1]['progress']): void {
  palyra.emit('device.pairing', { pairing_id: 'pairing-1', progress: p });
}

async function typePin(value: string, gateway = 'gw.example:7444'): Promise<void> {
  await fireEvent.input(screen.getByTestId('pin-input'), { target: { value } });
  await fireEvent.input(screen.getByTestId('gateway-input'), { target: { value: gateway } });
}

function stepStates(): Record<string, string> {
  const items = within(screen.getByTestId('pairing-status')).getAllByRole('listitem');
  return Object.fromEntries(items.map((li) => [li.textContent.replace(/\(.*\)/, '').replace(/^[✓✕0-9]/, '').trim(), li.className.split(' ')[0] ?? '']));
}

describe('a code problem is a "Checking the code" failure', () => {
  const CODE_PROBLEMS = ['pairing_code_invalid', 'pairing_code_expired', 'pairing_budget_exhausted', 'pairing_code_method_mismatch', 'invalid_pairing_proof'] as const;

  it.each(CODE_PROBLEMS)('PIN pairing failing with %s offers "Enter the PIN again", not Retry', async (code) => {
    render(PairView, { props: { decoder: neverDecoder } });
    await typePin('655 376');
    await fireEvent.click(screen.getByTestId('pin-submit'));
    progress({ type: 'verifying_gateway', gateway: 'gw.example:7444', ca_fingerprint: 'ab'.repeat(32), ca_pin: CA_PIN, pinned: false });
    progress({ type: 'failed', code, message: `raw ${code}` });

    await screen.findByTestId('pairing-new-pin');
    const states = stepStates();
    expect(states['Verifying the gateway']).toBe('done');
    expect(states['Checking the code']).toBe('failed');
    expect(screen.queryByTestId('pairing-retry')).toBeNull();

    await fireEvent.click(screen.getByTestId('pairing-new-pin'));
    const pinInput = screen.getByTestId<HTMLInputElement>('pin-input');
    expect(pinInput.value).toBe('');
    // The address stays, focus waits in the PIN field.
    expect(screen.getByTestId<HTMLInputElement>('gateway-input').value).toBe('gw.example:7444');
    await waitFor(() => {
      expect(document.activeElement).toBe(pinInput);
    });
  });

  it('a QR code already used offers "Scan a new code" and goes back to the scanner', async () => {
    render(PairView, { props: { decoder: neverDecoder } });
    await fireEvent.input(screen.getByTestId('link-input'), { target: { value: PAIRING_URI } });
    await fireEvent.click(screen.getByTestId('link-submit'));
    await fireEvent.click(await screen.findByTestId('pair-confirm'));
    progress({ type: 'verifying_gateway', gateway: 'gw.example:7444', ca_fingerprint: 'ab'.repeat(32), ca_pin: CA_PIN, pinned: true });
    progress({ type: 'failed', code: 'pairing_code_invalid', message: 'pairing code is missing or expired' });

    await screen.findByTestId('pairing-new-code');
    expect(stepStates()['Checking the code']).toBe('failed');
    expect(screen.queryByTestId('pairing-retry')).toBeNull();
    expect(screen.queryByTestId('pairing-new-pin')).toBeNull();

    await fireEvent.click(screen.getByTestId('pairing-new-code'));
    await waitFor(() => {
      expect(document.activeElement?.id).toBe('camera-title');
    });
  });

  it('a network failure keeps Retry and fails at its own step', async () => {
    render(PairView, { props: { decoder: neverDecoder } });
    await typePin('655376');
    await fireEvent.click(screen.getByTestId('pin-submit'));
    progress({ type: 'failed', code: 'gateway_unreachable', message: 'ECONNREFUSED' });

    await screen.findByTestId('pairing-retry');
    expect(stepStates()['Connecting to the gateway']).toBe('failed');
    expect(stepStates()['Checking the code']).toBe('pending');
    expect(screen.queryByTestId('pairing-new-pin')).toBeNull();
  });
});

describe('the PIN field takes a PIN as it is displayed', () => {
  it.each([
    ['655 376', '655376'],
    ['655-376', '655376'],
    [' 655376 ', '655376'],
    ['655 – 376', '655376'],
  ])('"%s" pairs with %s', async (typed, digits) => {
    render(PairView, { props: { decoder: neverDecoder } });
    await typePin(typed);
    const input = screen.getByTestId<HTMLInputElement>('pin-input');
    expect(input.value).toBe(typed);
    await fireEvent.click(screen.getByTestId('pin-submit'));

    expect(palyra.devicePairStart).toHaveBeenCalledWith({ method: 'pin', pin: digits, gateway: 'gw.example:7444' });
  });

  it('a PIN typed or pasted with separators is not cut by the field (no six-character limit)', () => {
    render(PairView, { props: { decoder: neverDecoder } });
    const input = screen.getByTestId<HTMLInputElement>('pin-input');
    expect(input.maxLength).toBeGreaterThanOrEqual('655 - 376'.length);
  });

  it.each([
    ['65537', 'A PIN has 6 digits; this has 5 digits.'],
    ['6553761', 'A PIN has 6 digits; this has 7 digits.'],
    ['65a376', 'A PIN has only digits'],
  ])('"%s" is not sent, and the form says why', async (typed, said) => {
    render(PairView, { props: { decoder: neverDecoder } });
    await typePin(typed);
    const submit = screen.getByTestId<HTMLButtonElement>('pin-submit');
    expect(submit.disabled).toBe(false);
    await fireEvent.click(submit);

    expect(palyra.devicePairStart).not.toHaveBeenCalled();
    const problem = await screen.findByTestId('pin-problem');
    expect(problem.textContent).toContain(said);
    const input = screen.getByTestId('pin-input');
    expect(input.getAttribute('aria-invalid')).toBe('true');
    expect(input.getAttribute('aria-describedby')).toContain(problem.id);
    expect(document.activeElement).toBe(input);
  });

  it('says what is wrong when the person leaves the field, not while typing', async () => {
    render(PairView, { props: { decoder: neverDecoder } });
    await typePin('655');
    expect(screen.queryByTestId('pin-problem')).toBeNull();
    await fireEvent.blur(screen.getByTestId('pin-input'));
    expect((await screen.findByTestId('pin-problem')).textContent).toContain('this has 3 digits');
  });

  it('readPin: separators only between digits, anything else is a problem', () => {
    expect(readPin('')).toEqual({ pin: null, problem: null });
    expect(readPin('123.456').pin).toBe('123456');
    expect(readPin('12345x').problem).toMatch(/only digits/);
    expect(readPin('1').problem).toBe('A PIN has 6 digits; this has 1 digit.');
  });
});
