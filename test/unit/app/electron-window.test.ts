// What the tray, notifications and taskbar progress show, computed from the same events the renderer receives.
import { describe, expect, it } from 'vitest';
import {
  pendingAfterEvent,
  pendingFromList,
  PROGRESS_INDETERMINATE,
  PROGRESS_NONE,
  progressBarValue,
  requestNotification,
  trayRequestsLabel,
  trayTooltip,
} from '../../../main/app/electron-window.js';
import type { EventPayload } from '../../../main/ipc/contract.js';

type RequestView = Extract<EventPayload<'gateway.event'>, { type: 'request.created' }>['request'];

function request(id: string, state: RequestView['state'], kind: RequestView['client_kind'] = 'node'): RequestView {
  return {
    request_id: id,
    device_id: '01HZX3V4W5Y6Z7A8B9C0D1E2F3',
    client_kind: kind,
    state,
    method: 'pin',
    sas: '042917',
    sas_verifiable: true,
    sas_status: 'compare',
    identity_fingerprint: 'ab'.repeat(32),
    requested_at_unix_ms: 1_700_000_000_000,
    expires_at_unix_ms: 1_700_000_600_000,
    decided_at_unix_ms: null,
    reason: null,
    device_name: null,
  };
}

describe('pending requests', () => {
  it('counts a created request until it is decided or expires', () => {
    let pending: ReadonlySet<string> = new Set();
    pending = pendingAfterEvent(pending, { type: 'request.created', request: request('r1', 'pending_approval') });
    pending = pendingAfterEvent(pending, { type: 'request.created', request: request('r2', 'pending_approval') });
    expect([...pending].sort()).toEqual(['r1', 'r2']);
    pending = pendingAfterEvent(pending, { type: 'request.updated', request: request('r1', 'approved') });
    pending = pendingAfterEvent(pending, { type: 'request.updated', request: request('r2', 'expired') });
    expect(pending.size).toBe(0);
  });

  it('returns the same set for events that change nothing, so callers can skip a tray update', () => {
    const pending: ReadonlySet<string> = new Set(['r1']);
    expect(pendingAfterEvent(pending, { type: 'devices.changed' })).toBe(pending);
    expect(pendingAfterEvent(pending, { type: 'node.online', device_id: 'd' })).toBe(pending);
    expect(pendingAfterEvent(pending, { type: 'request.updated', request: request('r1', 'pending_approval') })).toBe(pending);
    expect(pendingAfterEvent(pending, { type: 'request.updated', request: request('r9', 'rejected') })).toBe(pending);
  });

  it('recounts from a listRequests answer', () => {
    expect([...pendingFromList([request('a', 'pending_approval'), request('b', 'completed'), request('c', 'pending_approval')])]).toEqual(['a', 'c']);
  });
});

describe('tray text', () => {
  it('says how many requests wait, in the tooltip and the menu', () => {
    expect(trayTooltip(0)).toBe('Palyra Desktop');
    expect(trayTooltip(1)).toBe('Palyra Desktop: 1 pairing request waiting');
    expect(trayTooltip(3)).toBe('Palyra Desktop: 3 pairing requests waiting');
    expect(trayRequestsLabel(0)).toBe('No pairing requests');
    expect(trayRequestsLabel(1)).toBe('Review 1 pairing request…');
    expect(trayRequestsLabel(2)).toBe('Review 2 pairing requests…');
  });
});

describe('requestNotification', () => {
  it('announces a new pending request by device kind, carrying its id for the click', () => {
    const n = requestNotification({ type: 'request.created', request: request('r1', 'pending_approval', 'cli') });
    expect(n).toEqual({ title: 'Pairing request', body: expect.stringContaining('A command-line device asks to pair') as string, requestId: 'r1' });
  });

  it('never puts the SAS, the fingerprint or the device id on the notification', () => {
    const r = request('r1', 'pending_approval');
    const n = requestNotification({ type: 'request.created', request: r });
    const text = `${n?.title ?? ''} ${n?.body ?? ''}`;
    expect(text).not.toContain(r.sas);
    expect(text).not.toContain(r.identity_fingerprint.slice(0, 8));
    expect(text).not.toContain(r.device_id);
  });

  it('stays quiet for updates and for anything but a new pending request', () => {
    expect(requestNotification({ type: 'request.updated', request: request('r1', 'pending_approval') })).toBeNull();
    expect(requestNotification({ type: 'request.created', request: request('r1', 'approved') })).toBeNull();
    expect(requestNotification({ type: 'device.paired', device_id: 'd' })).toBeNull();
  });
});

describe('progressBarValue', () => {
  it('spins while waiting for approval and clears on every outcome', () => {
    expect(progressBarValue({ type: 'awaiting_approval', sas: '042917', request_id: 'r', gateway: 'g:1', gateway_name: null })).toBe(PROGRESS_INDETERMINATE);
    expect(PROGRESS_INDETERMINATE).toBeGreaterThan(1);
    expect(PROGRESS_NONE).toBeLessThan(0);
    for (const done of [
      { type: 'paired', device_id: 'd', gateway: 'g:1', cert_expires_at_unix_ms: 1 } as const,
      { type: 'rejected', reason: null } as const,
      { type: 'expired' } as const,
      { type: 'failed', code: 'cancelled', message: 'pairing was cancelled' } as const,
    ]) {
      expect(progressBarValue(done)).toBe(PROGRESS_NONE);
    }
  });

  it('leaves the bar alone while connecting and verifying', () => {
    expect(progressBarValue({ type: 'connecting', gateway: 'g:1' })).toBeNull();
    expect(progressBarValue({ type: 'verifying_gateway', gateway: 'g:1', ca_fingerprint: 'f', ca_pin: 'p', pinned: false })).toBeNull();
  });
});
