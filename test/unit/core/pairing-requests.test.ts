import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PalyraError } from '../../../main/core/errors.js';
import { newUlid } from '../../../main/core/ids.js';
import type { PairingRequest, PairingRequestState } from '../../../main/core/pairing-requests.js';
import {
  approvePairingRequest,
  cancelPairingRequest,
  completePairingRequest,
  createPairingRequest,
  expirePairingRequestIfDue,
  isTerminalState,
  PAIRING_REQUEST_STATES,
  parsePairingRequestState,
  rejectPairingRequest,
} from '../../../main/core/pairing-requests.js';

const T0 = 1_700_000_000_000;
const EXPIRES = T0 + 600_000;
const SESSION = newUlid(T0, new Uint8Array(10).fill(1));

function pending(): PairingRequest {
  return createPairingRequest({
    requestId: SESSION,
    sessionId: SESSION,
    deviceId: newUlid(T0, new Uint8Array(10).fill(2)),
    clientKind: 'desktop',
    method: 'pin',
    codeIssuedBy: 'operator',
    requestedAtUnixMs: T0,
    expiresAtUnixMs: EXPIRES,
    approvalId: newUlid(T0, new Uint8Array(10).fill(3)),
    identityFingerprint: 'a'.repeat(64),
    signingPublicKeyHex: 'b'.repeat(64),
    transcriptHashHex: 'c'.repeat(64),
    sas: '042917',
    sasVerifiable: true,
  });
}

/** A request in the given state, reached through the real transitions. */
function inState(state: PairingRequestState): PairingRequest {
  const req = pending();
  switch (state) {
    case 'pending_approval':
      return req;
    case 'approved':
      return approvePairingRequest(req, { now: T0 + 1 });
    case 'rejected':
      return rejectPairingRequest(req, { now: T0 + 1 });
    case 'completed':
      return completePairingRequest(approvePairingRequest(req, { now: T0 + 1 }), { now: T0 + 2 });
    case 'expired':
      return expirePairingRequestIfDue(req, EXPIRES);
    case 'cancelled':
      return cancelPairingRequest(req, { now: T0 + 1 });
  }
}

function thrown(fn: () => unknown): PalyraError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PalyraError) return error;
    throw error;
  }
  throw new Error('expected a PalyraError');
}

describe('createPairingRequest', () => {
  it('starts in pending_approval with no decision', () => {
    const req = pending();
    expect(req.state).toBe('pending_approval');
    expect(req.decisionReason).toBeNull();
    expect(req.decidedAtUnixMs).toBeNull();
    expect(req.completedAtUnixMs).toBeNull();
  });

  it.each([
    ['a non-canonical device id', { deviceId: 'not-an-id' }],
    ['a lower-case session id', { sessionId: SESSION.toLowerCase() }],
    ['a short fingerprint', { identityFingerprint: 'a'.repeat(63) }],
    ['upper-case hex', { transcriptHashHex: 'C'.repeat(64) }],
    ['a five-digit SAS', { sas: '12345' }],
    ['an unknown kind', { clientKind: 'phone' }],
    ['an unknown method', { method: 'sms' }],
    ['a negative time', { requestedAtUnixMs: -1 }],
  ])('refuses %s', (_what, patch) => {
    const { state: _s, decisionReason: _r, decidedAtUnixMs: _d, completedAtUnixMs: _c, ...input } = pending();
    expect(thrown(() => createPairingRequest({ ...input, ...(patch as object) })).code).toBe('invalid_argument');
  });
});

describe('approve and reject', () => {
  it('approves a pending request with the default reason and the decision time', () => {
    const req = pending();
    const approved = approvePairingRequest(req, { now: T0 + 5 });
    expect(approved).toMatchObject({
      state: 'approved',
      decisionReason: 'approved_by_operator',
      decidedAtUnixMs: T0 + 5,
    });
    expect(req.state).toBe('pending_approval');
  });

  it('rejects a pending request with the default or a trimmed custom reason', () => {
    expect(rejectPairingRequest(pending(), { now: T0 + 5 })).toMatchObject({
      state: 'rejected',
      decisionReason: 'rejected_by_operator',
      decidedAtUnixMs: T0 + 5,
    });
    const custom = rejectPairingRequest(pending(), { reason: '  unknown laptop ', now: T0 });
    expect(custom.decisionReason).toBe('unknown laptop');
    expect(approvePairingRequest(pending(), { reason: '   ', now: T0 }).decisionReason).toBe('approved_by_operator');
  });

  it('does not mutate a frozen input', () => {
    const req = Object.freeze(pending());
    expect(approvePairingRequest(req, { now: T0 }).state).toBe('approved');
    expect(req.state).toBe('pending_approval');
  });

  it.each(['approved', 'rejected', 'completed', 'expired', 'cancelled'] as const)(
    'refuses to approve or reject a request that is %s, naming the state',
    (state) => {
      const req = inState(state);
      for (const decide of [approvePairingRequest, rejectPairingRequest]) {
        const error = thrown(() => decide(req, { now: T0 + 10 }));
        expect(error.code).toBe('pairing_request_not_pending');
        expect(error.grpcStatus).toBe('FAILED_PRECONDITION');
        expect(error.message).toContain(state);
        expect(error.details).toMatchObject({ state, requestId: SESSION });
      }
    },
  );

  it('refuses to approve a stored-pending request whose expiry has passed', () => {
    const error = thrown(() => approvePairingRequest(pending(), { now: EXPIRES }));
    expect(error.code).toBe('pairing_request_not_pending');
    expect(error.details).toMatchObject({ state: 'expired' });
    expect(approvePairingRequest(pending(), { now: EXPIRES - 1 }).state).toBe('approved');
  });

  it('refuses reasons with control characters or over 512 characters', () => {
    expect(thrown(() => approvePairingRequest(pending(), { reason: 'ok\nstate=approved', now: T0 })).code).toBe(
      'invalid_argument',
    );
    expect(thrown(() => rejectPairingRequest(pending(), { reason: 'x'.repeat(513), now: T0 })).code).toBe(
      'invalid_argument',
    );
    expect(rejectPairingRequest(pending(), { reason: 'x'.repeat(512), now: T0 }).decisionReason).toHaveLength(512);
  });
});

describe('completePairingRequest', () => {
  it('completes an approved request and keeps its decision', () => {
    const done = completePairingRequest(inState('approved'), { now: T0 + 9 });
    expect(done).toMatchObject({
      state: 'completed',
      completedAtUnixMs: T0 + 9,
      decisionReason: 'approved_by_operator',
    });
  });

  it.each([
    ['pending_approval', 'pairing_request_not_approved'],
    ['completed', 'pairing_request_not_approved'],
    ['rejected', 'pairing_rejected'],
    ['expired', 'pairing_expired'],
    ['cancelled', 'pairing_request_not_approved'],
  ] as const)('refuses a request that is %s with %s', (state, code) => {
    const error = thrown(() => completePairingRequest(inState(state), { now: T0 + 10 }));
    expect(error.code).toBe(code);
    expect(error.grpcStatus).toBe('FAILED_PRECONDITION');
  });

  it('refuses an approved request past its expiry', () => {
    expect(thrown(() => completePairingRequest(inState('approved'), { now: EXPIRES })).code).toBe('pairing_expired');
  });
});

describe('expirePairingRequestIfDue', () => {
  it('expires a pending request at its expiry instant with the reference reason', () => {
    const req = pending();
    expect(expirePairingRequestIfDue(req, EXPIRES - 1)).toBe(req);
    expect(expirePairingRequestIfDue(req, EXPIRES)).toMatchObject({
      state: 'expired',
      decisionReason: 'pairing request expired',
      decidedAtUnixMs: EXPIRES,
    });
  });

  it('expires an approved request but keeps its approval reason and time', () => {
    expect(expirePairingRequestIfDue(inState('approved'), EXPIRES + 1)).toMatchObject({
      state: 'expired',
      decisionReason: 'approved_by_operator',
      decidedAtUnixMs: T0 + 1,
    });
  });

  it.each(['rejected', 'completed', 'expired', 'cancelled'] as const)('leaves a %s request untouched forever', (state) => {
    const req = inState(state);
    expect(expirePairingRequestIfDue(req, EXPIRES + 10 ** 10)).toBe(req);
  });
});

describe('cancelPairingRequest', () => {
  it.each(['pending_approval', 'approved'] as const)('cancels a %s request with the device reason and the time', (state) => {
    const req = inState(state);
    expect(cancelPairingRequest(req, { now: T0 + 5 })).toMatchObject({ state: 'cancelled', decisionReason: 'cancelled_by_device', decidedAtUnixMs: T0 + 5 });
    expect(req.state).toBe(state);
  });

  it('is idempotent: a cancelled request comes back as the same object', () => {
    const cancelled = inState('cancelled');
    expect(cancelPairingRequest(cancelled, { now: T0 + 50 })).toBe(cancelled);
  });

  it.each(['rejected', 'completed', 'expired'] as const)('refuses a %s request with pairing_request_not_pending', (state) => {
    const error = thrown(() => cancelPairingRequest(inState(state), { now: T0 + 10 }));
    expect(error.code).toBe('pairing_request_not_pending');
    expect(error.details).toMatchObject({ state });
  });

  it('refuses a stored-pending request past its expiry', () => {
    expect(thrown(() => cancelPairingRequest(pending(), { now: EXPIRES })).details).toMatchObject({ state: 'expired' });
  });
});

describe('states', () => {
  it('lists the six states and marks rejected, completed, expired and cancelled terminal', () => {
    expect(PAIRING_REQUEST_STATES).toEqual(['pending_approval', 'approved', 'rejected', 'completed', 'expired', 'cancelled']);
    expect(PAIRING_REQUEST_STATES.filter(isTerminalState)).toEqual(['rejected', 'completed', 'expired', 'cancelled']);
  });

  it('parses a --state filter exactly', () => {
    expect(parsePairingRequestState('pending_approval')).toBe('pending_approval');
    expect(thrown(() => parsePairingRequestState('pending-approval')).code).toBe('invalid_argument');
  });

  it('follows only the allowed edges and never leaves a terminal state, whatever operations run', () => {
    const allowed = new Set([
      'pending_approval>approved',
      'pending_approval>rejected',
      'pending_approval>expired',
      'approved>completed',
      'approved>expired',
      'pending_approval>cancelled',
      'approved>cancelled',
    ]);
    const op = fc.tuple(
      fc.constantFrom('approve', 'reject', 'complete', 'expire', 'cancel'),
      fc.integer({ min: 0, max: 1_200_000 }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 12 }), (ops) => {
        let req = pending();
        for (const [name, offset] of ops) {
          const now = T0 + offset;
          let next = req;
          try {
            if (name === 'approve') next = approvePairingRequest(req, { now });
            else if (name === 'reject') next = rejectPairingRequest(req, { now });
            else if (name === 'complete') next = completePairingRequest(req, { now });
            else if (name === 'cancel') next = cancelPairingRequest(req, { now });
            else next = expirePairingRequestIfDue(req, now);
          } catch (error) {
            expect(error).toBeInstanceOf(PalyraError);
          }
          if (isTerminalState(req.state)) expect(next).toBe(req);
          if (next.state !== req.state) expect(allowed).toContain(`${req.state}>${next.state}`);
          req = next;
        }
      }),
      { numRuns: 500 },
    );
  });
});
