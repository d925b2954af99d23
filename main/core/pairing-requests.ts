/**
 * The strict pairing-request state machine (PROTOCOL.md §5; REFERENCE.md §1.10, §3.10):
 *
 *   pending_approval --approve--> approved --complete--> completed
 *   pending_approval --reject---> rejected
 *   pending_approval | approved --(now >= expiresAt)--> expired
 *   pending_approval | approved --device cancels--> cancelled
 *
 * Terminal states never change (the reference let approve/reject overwrite anything). Transitions are pure: they
 * return a new record and never mutate their input. Expiry is evaluated lazily, so every transition first applies
 * it: a request past its expiry cannot be approved, rejected or completed even if the stored copy still says pending.
 */

import type { ClientKind } from './client-kind.js';
import { isClientKind } from './client-kind.js';
import { normalizeDeviceName } from './device-name.js';
import { PalyraError } from './errors.js';
import { isCanonicalId } from './ids.js';
import type { PairingMethodKind } from './pairing-codes.js';
import { assertUnixMs, isPairingMethodKind } from './pairing-codes.js';

export const PAIRING_REQUEST_STATES = ['pending_approval', 'approved', 'rejected', 'completed', 'expired', 'cancelled'] as const;
export type PairingRequestState = (typeof PAIRING_REQUEST_STATES)[number];

const TERMINAL_STATES: ReadonlySet<PairingRequestState> = new Set(['rejected', 'completed', 'expired', 'cancelled']);

export const DEFAULT_APPROVE_REASON = 'approved_by_operator';
export const DEFAULT_REJECT_REASON = 'rejected_by_operator';
/** The reason of a request its device withdrew (CancelPairingRequest). */
export const CANCELLED_REASON = 'cancelled_by_device';
/** The reference's reason text for a request that ran out of time (REFERENCE.md §3.10). */
export const EXPIRED_REASON = 'pairing request expired';
/** Longest operator reason, in UTF-16 units; it is printed in listings and written to the audit log. */
const MAX_REASON_LENGTH = 512;

export interface PairingRequest {
  /** Equals the session id in the reference; kept separate as the record does. */
  readonly requestId: string;
  readonly sessionId: string;
  readonly deviceId: string;
  readonly clientKind: ClientKind;
  readonly method: PairingMethodKind;
  readonly codeIssuedBy: string;
  readonly requestedAtUnixMs: number;
  /** The consumed code's expiry. */
  readonly expiresAtUnixMs: number;
  readonly approvalId: string;
  readonly state: PairingRequestState;
  readonly decisionReason: string | null;
  /** When the operator decided, or when the request expired if nobody did. */
  readonly decidedAtUnixMs: number | null;
  /** Lowercase hex SHA-256 of the device's Ed25519 public key. */
  readonly identityFingerprint: string;
  readonly signingPublicKeyHex: string;
  readonly transcriptHashHex: string;
  /** Six-digit short authentication string shown on both sides (PROTOCOL.md §3). */
  readonly sas: string;
  /** False for hellos without an X25519 commitment (reference clients): their SAS proves nothing. */
  readonly sasVerifiable: boolean;
  /**
   * How the operator can trust this request: `confirmed` (PIN pairing v2: SPAKE2+ bound the device to this gateway's
   * CA, nothing to compare), `compare` (v1 with a commitment: compare the SAS), `unverifiable` (no commitment).
   */
  readonly sasStatus: SasStatus;
  readonly completedAtUnixMs: number | null;
  /**
   * The display name the device sent in Complete (normalized), or the one the gateway derived for it; absent or null
   * for a request filed before names existed.
   */
  readonly deviceName?: string | null;
}

export type SasStatus = 'confirmed' | 'compare' | 'unverifiable';
export const SAS_STATUSES: readonly SasStatus[] = ['confirmed', 'compare', 'unverifiable'];

/** The status of a request stored before `sasStatus` existed (or filed without it). */
export function defaultSasStatus(sasVerifiable: boolean): SasStatus {
  return sasVerifiable ? 'compare' : 'unverifiable';
}

export type NewPairingRequestInput = Omit<
  PairingRequest,
  'state' | 'decisionReason' | 'decidedAtUnixMs' | 'completedAtUnixMs' | 'sasStatus'
> & { readonly sasStatus?: SasStatus | undefined };

export function isPairingRequestState(value: unknown): value is PairingRequestState {
  return typeof value === 'string' && (PAIRING_REQUEST_STATES as readonly string[]).includes(value);
}

/** For `--state` filters: exactly one of the snake_case state names. */
export function parsePairingRequestState(text: string): PairingRequestState {
  if (!isPairingRequestState(text)) {
    throw new PalyraError('invalid_argument', `state must be one of ${PAIRING_REQUEST_STATES.join('|')}`);
  }
  return text;
}

export function isTerminalState(state: PairingRequestState): boolean {
  return TERMINAL_STATES.has(state);
}

const HEX_32_BYTES = /^[0-9a-f]{64}$/;

/** A new request in pending_approval, created once the handshake verified (REFERENCE.md §3.3 step 5). */
export function createPairingRequest(input: NewPairingRequestInput): PairingRequest {
  const bad = (message: string): never => {
    throw new PalyraError('invalid_argument', message);
  };
  for (const [name, id] of [
    ['requestId', input.requestId],
    ['sessionId', input.sessionId],
    ['deviceId', input.deviceId],
    ['approvalId', input.approvalId],
  ] as const) {
    if (!isCanonicalId(id)) bad(`${name} must be a canonical id`);
  }
  if (!isClientKind(input.clientKind)) bad('clientKind must be one of cli|desktop|node');
  if (!isPairingMethodKind(input.method)) bad('method must be pin or qr');
  assertUnixMs(input.requestedAtUnixMs, 'requestedAtUnixMs');
  assertUnixMs(input.expiresAtUnixMs, 'expiresAtUnixMs');
  for (const [name, hex] of [
    ['identityFingerprint', input.identityFingerprint],
    ['signingPublicKeyHex', input.signingPublicKeyHex],
    ['transcriptHashHex', input.transcriptHashHex],
  ] as const) {
    if (!HEX_32_BYTES.test(hex)) bad(`${name} must be 64 lowercase hex characters`);
  }
  if (!/^[0-9]{6}$/.test(input.sas)) bad('sas must be 6 decimal digits');
  // Stored names are already normalized: anything else did not come through the gateway's validation.
  if (input.deviceName != null && normalizeDeviceName(input.deviceName) !== input.deviceName) bad('deviceName must be normalized');
  const sasStatus = input.sasStatus ?? defaultSasStatus(input.sasVerifiable);
  if (!SAS_STATUSES.includes(sasStatus)) bad('sasStatus must be one of confirmed|compare|unverifiable');
  if (sasStatus === 'confirmed' && !input.sasVerifiable) bad('a confirmed request has a commitment');
  return { ...input, sasStatus, state: 'pending_approval', decisionReason: null, decidedAtUnixMs: null, completedAtUnixMs: null };
}

/**
 * Moves a pending or approved request past its expiry to `expired` (reason "pairing request expired" unless one is
 * set). Returns the same object when nothing changes, so callers can tell whether to persist.
 */
export function expirePairingRequestIfDue(req: PairingRequest, now: number): PairingRequest {
  assertUnixMs(now);
  if (isTerminalState(req.state) || now < req.expiresAtUnixMs) return req;
  return {
    ...req,
    state: 'expired',
    decisionReason: req.decisionReason ?? EXPIRED_REASON,
    decidedAtUnixMs: req.decidedAtUnixMs ?? req.expiresAtUnixMs,
  };
}

function decisionReason(reason: string | undefined, fallback: string): string {
  const trimmed = reason?.trim() ?? '';
  if (trimmed.length === 0) return fallback;
  if (trimmed.length > MAX_REASON_LENGTH) {
    throw new PalyraError('invalid_argument', `reason must be at most ${MAX_REASON_LENGTH} characters`);
  }
  // The reason is printed on one line in listings and logs; a control character could forge another line.
  if (/\p{Cc}/u.test(trimmed)) throw new PalyraError('invalid_argument', 'reason must not contain control characters');
  return trimmed;
}

function decide(
  req: PairingRequest,
  state: 'approved' | 'rejected',
  options: { readonly reason?: string | undefined; readonly now: number },
): PairingRequest {
  const current = expirePairingRequestIfDue(req, options.now).state;
  if (current !== 'pending_approval') {
    const verb = state === 'approved' ? 'approve' : 'reject';
    throw new PalyraError(
      'pairing_request_not_pending',
      `cannot ${verb} pairing request ${req.requestId}: it is ${current}, not pending_approval`,
      { details: { requestId: req.requestId, state: current } },
    );
  }
  const reason = decisionReason(options.reason, state === 'approved' ? DEFAULT_APPROVE_REASON : DEFAULT_REJECT_REASON);
  return { ...req, state, decisionReason: reason, decidedAtUnixMs: options.now };
}

/** pending_approval → approved; anything else (also a request now past expiry) → pairing_request_not_pending. */
export function approvePairingRequest(
  req: PairingRequest,
  options: { readonly reason?: string | undefined; readonly now: number },
): PairingRequest {
  return decide(req, 'approved', options);
}

/** pending_approval → rejected; anything else → pairing_request_not_pending. */
export function rejectPairingRequest(
  req: PairingRequest,
  options: { readonly reason?: string | undefined; readonly now: number },
): PairingRequest {
  return decide(req, 'rejected', options);
}

/**
 * pending_approval | approved → cancelled: the device withdrew its request. Cancelling a cancelled request returns it
 * unchanged (the same object: idempotent, nothing to persist); any other state (completed, rejected, expired — also
 * a request now past its expiry) → pairing_request_not_pending.
 */
export function cancelPairingRequest(req: PairingRequest, options: { readonly now: number }): PairingRequest {
  const current = expirePairingRequestIfDue(req, options.now).state;
  if (current === 'cancelled') return req;
  if (current !== 'pending_approval' && current !== 'approved') {
    throw new PalyraError('pairing_request_not_pending', `cannot cancel pairing request ${req.requestId}: it is ${current}`, {
      details: { requestId: req.requestId, state: current },
    });
  }
  return { ...req, state: 'cancelled', decisionReason: CANCELLED_REASON, decidedAtUnixMs: options.now };
}

/**
 * approved → completed, once the certificate was issued. Refused with pairing_rejected, pairing_expired (also when
 * an approved request is past expiry) or pairing_request_not_approved (pending, or already completed — so two
 * concurrent finalizations cannot both succeed).
 */
export function completePairingRequest(req: PairingRequest, options: { readonly now: number }): PairingRequest {
  const current = expirePairingRequestIfDue(req, options.now).state;
  const details = { details: { requestId: req.requestId, state: current } };
  switch (current) {
    case 'approved':
      return { ...req, state: 'completed', completedAtUnixMs: options.now };
    case 'rejected':
      throw new PalyraError('pairing_rejected', `pairing request ${req.requestId} was rejected`, details);
    case 'expired':
      throw new PalyraError('pairing_expired', `pairing request ${req.requestId} expired`, details);
    case 'pending_approval':
    case 'completed':
    case 'cancelled':
      throw new PalyraError(
        'pairing_request_not_approved',
        `cannot complete pairing request ${req.requestId}: it is ${current}, not approved`,
        details,
      );
  }
}
