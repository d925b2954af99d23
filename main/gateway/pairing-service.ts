/**
 * The gateway half of pairing (REFERENCE.md §3.2–§3.4 with PROTOCOL.md §3–§5): consume a code and start a
 * session (Begin), verify the hello and the CSR binding and file a request for approval (Complete), and answer the
 * device's status long-poll, issuing its certificate once an operator approved.
 *
 * Codes are looked up by hash and consumed at Begin; every failed PIN lookup counts against the PIN guessing budget,
 * which, once tripped, refuses PIN pairing and voids PIN codes until an operator mints a new one. At most
 * `PIN_FAILURES_PER_CODE` failures are allowed per minted PIN code whatever their timing, so a code's guessing
 * chance stays ≤ 20 / 10⁶. A QR token (128 random bits) cannot be guessed, so its misses never touch the budget.
 *
 * Failures are counted, not journaled one by one: misses update in-memory counters; PIN failures are persisted at
 * most once per `BUDGET_PERSIST_INTERVAL_MS` (replayed onto the fresh persisted budget under the lock, so other
 * processes' resets are kept) and at once when they trip the budget — that record is durable before the caller is
 * answered. Every miss, PIN or QR, goes into one aggregated audit entry `pairing_code_lookup_failures` per source and
 * method, written every `AUDIT_FLUSH_INTERVAL_MS`, with a trip, or at `close()`.
 */

import type { ClientKind } from '../core/client-kind.js';
import { resolveDeviceName } from '../core/device-name.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { newUlid } from '../core/ids.js';
import { verifyCsrBinding } from '../core/handshake.js';
import { verifyCsr } from '../core/csr.js';
import { hashPairingCode, isPairingCodeExpired, loadPinVerifier, pinCodeMatches } from '../core/pairing-codes.js';
import { pinPairingPakeContext } from '../core/pake-context.js';
import { pinPairingV2Proof } from '../core/pin-pairing-v2.js';
import { verifierFinish, verifierRespond, type VerifierState } from '../core/spake2plus.js';
import type { PairingCodeRecord, PairingMethodKind } from '../core/pairing-codes.js';
import { cancelPairingRequest, completePairingRequest, createPairingRequest } from '../core/pairing-requests.js';
import { verifyPairingCancel } from '../core/pairing-cancel.js';
import { PairingSessionRegistry } from '../core/pairing-sessions.js';
import type { PublicPairingSession } from '../core/pairing-sessions.js';
import { PinGuessBudget } from '../core/pin-budget.js';
import type { PinGuessBudgetSnapshot } from '../core/pin-budget.js';
import { toBase64, fromBase64, fromHex } from '../core/bytes.js';
import type { AuditSpec, GatewayAdmin } from './gateway-admin.js';
import type { PairingMaterial, RuntimeOp, StoredPairingRequest, StoredPairingSession } from './runtime-state.js';
import { snapshotOfStored, storedSession, verifierStateOf, withExchange } from './shared-sessions.js';

/** Longest a status call may be held open (PROTOCOL.md §4 `wait_ms`). */
export const MAX_STATUS_WAIT_MS = 30_000;
/** Failed lookups allowed per minted PIN code. */
export const PIN_FAILURES_PER_CODE = 20;
/** PIN failures below the trip reach the journal at most this often. */
export const BUDGET_PERSIST_INTERVAL_MS = 1_000;
/** Aggregated lookup-failure audit entries are written at most this often (and at a trip, and at close). */
export const AUDIT_FLUSH_INTERVAL_MS = 10_000;
/** Distinct (source, method) aggregates kept before they are flushed early: bounded memory under a spray. */
const MAX_FAILURE_AGGREGATES = 256;

export interface BeginInput {
  clientKind: ClientKind;
  method: { kind: PairingMethodKind; proof: string };
  commitment: Uint8Array | null;
  /** Peer address, for the per-source guessing budget. */
  source: string;
}

export interface CompleteInput {
  sessionId: string;
  deviceId: string;
  clientKind: ClientKind;
  protocolVersion: number;
  deviceSigningPublic: Uint8Array;
  deviceX25519Public: Uint8Array;
  challengeSignature: Uint8Array;
  transcriptMac: Uint8Array;
  csrDer: Uint8Array | null;
  csrSignature: Uint8Array | null;
  /** `device_name` as sent (empty or absent: the gateway derives one). */
  deviceName?: string;
  /** PIN pairing v2: confirmP (32 bytes); null for v1 and QR. */
  pakeConfirmP?: Uint8Array | null;
}

export interface BeginPakeInput {
  clientKind: ClientKind;
  deviceId: string;
  commitment: Uint8Array;
  source: string;
}

export interface StatusResult {
  request: StoredPairingRequest;
  /** Served until the device's first mTLS call. */
  material: PairingMaterial | null;
  /** Only in `--allow-server-generated-keys` mode, only in the response that finalized the pairing. */
  privateKeyPem: string | null;
}

export interface CancelInput {
  sessionId: string;
  deviceId: string;
  signature: Uint8Array;
}

export interface PairingServiceOptions {
  admin: GatewayAdmin;
  clock?: () => number;
  /** Timers for the deferred flushes (tests pass ones they fire by hand). */
  timers?: { set(fn: () => void, ms: number): unknown; clear(handle: unknown): void };
  allowServerGeneratedKeys?: boolean;
  allowLegacyDeviceIds?: boolean;
  sessions?: PairingSessionRegistry;
  /** `--require-pake`: a v1 PIN Begin (the PIN in the clear) is refused with `pake_required`. */
  requirePake?: boolean;
  /**
   * Other gateway processes count against the same budget (`--workers`, replicas on one database): each PIN failure
   * is then written before its caller is answered, so the next check in any process sees it (a single process
   * batches them, at most `BUDGET_PERSIST_INTERVAL_MS` apart, since it sees its own unwritten ones).
   */
  sharedBudget?: boolean;
}

interface Reservation {
  record: PairingCodeRecord;
  proof: string;
  /** PIN pairing v2 sessions: who, and the verifier state once ExchangePinPake answered. */
  pake?: { deviceId: string; commitment: Uint8Array; source: string; state: VerifierState | null };
}

/** A v2 exchange that was answered and has neither confirmed nor failed yet: a guess that may still count. */
interface PakeGuess {
  source: string;
  at: number;
  expiresAt: number;
}

/** Lookup failures of one (source, method) since the last audit flush. */
interface FailureAggregate {
  source: string;
  method: PairingMethodKind;
  count: number;
  since: number;
  budgetTripped: boolean;
}

const REAL_TIMERS = {
  set(fn: () => void, ms: number): unknown {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear(handle: unknown): void {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** The one usable PIN code (minting voids the previous one), if any. */
function activePinCode(state: { codes: ReadonlyMap<string, PairingCodeRecord> }, now: number): PairingCodeRecord | undefined {
  let found: PairingCodeRecord | undefined;
  for (const c of state.codes.values()) {
    if (c.method !== 'pin' || c.pin === undefined || isPairingCodeExpired(c, now)) continue;
    if (found === undefined || c.createdAtUnixMs > found.createdAtUnixMs) found = c;
  }
  return found;
}

/** When the outstanding PIN code was minted (minting voids older ones), or -∞ when there is none. */
function lastPinMint(state: { codes: ReadonlyMap<string, PairingCodeRecord> }): number {
  let at = Number.NEGATIVE_INFINITY;
  for (const c of state.codes.values()) if (c.method === 'pin' && c.createdAtUnixMs > at) at = c.createdAtUnixMs;
  return at;
}

export class PairingService {
  readonly #admin: GatewayAdmin;
  readonly #clock: () => number;
  readonly #allowServerGeneratedKeys: boolean;
  readonly #allowLegacyDeviceIds: boolean;
  readonly #sessions: PairingSessionRegistry;
  readonly #waiters = new Set<() => void>();
  readonly #finalizing = new Map<string, Promise<StatusResult>>();
  readonly #timers: NonNullable<PairingServiceOptions['timers']>;
  /**
   * PIN failures not yet in the journal, oldest first (fewer than the trip threshold: a trip flushes at once). A failure
   * settled from a v2 exchange names its session: the flush deletes the durable guess in the same record (5b.3).
   */
  #pendingPin: { source: string; at: number; sessionId?: string }[] = [];
  #aggregates = new Map<string, FailureAggregate>();
  #lastBudgetPersist = Number.NEGATIVE_INFINITY;
  /** The budget snapshot a running flush wrote, and how many pending failures it holds. */
  #inFlight: { snapshot: PinGuessBudgetSnapshot; count: number } | null = null;
  #budgetTimer: unknown = null;
  #auditTimer: unknown = null;
  /** Flushes run one after another, so two never replay the same pending failures. */
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #requirePake: boolean;
  readonly #sharedBudget: boolean;
  /**
   * Answered v2 exchanges not yet confirmed: counted as failures in every budget check until they confirm. Each is
   * durable too (RuntimeState.pakeGuesses), so whichever replica the Complete reaches settles it exactly once.
   */
  readonly #pakeGuesses = new Map<string, PakeGuess>();

  constructor(o: PairingServiceOptions) {
    this.#admin = o.admin;
    this.#clock = o.clock ?? Date.now;
    this.#timers = o.timers ?? REAL_TIMERS;
    this.#allowServerGeneratedKeys = o.allowServerGeneratedKeys ?? false;
    this.#allowLegacyDeviceIds = o.allowLegacyDeviceIds ?? false;
    this.#sessions = o.sessions ?? new PairingSessionRegistry();
    this.#requirePake = o.requirePake ?? false;
    this.#sharedBudget = o.sharedBudget ?? false;
    o.admin.onChange((change) => {
      if (change.runtime || change.identity) this.#wake();
    });
  }

  get sessions(): PairingSessionRegistry {
    return this.#sessions;
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /**
   * The persisted budget with the failures not yet persisted replayed onto it; with `withGuesses`, the answered v2
   * exchanges that have not confirmed yet count as failures too (for refusals; a trip is decided without them).
   */
  #budgetView(withGuesses = false): { budget: PinGuessBudget; failuresSinceMint: number } {
    const budget = new PinGuessBudget();
    const snapshot = this.#admin.runtime.pinBudget;
    if (snapshot !== null) budget.restore(snapshot);
    // A flush's record is applied in memory while it is being written: its failures are in the state already.
    const written = this.#inFlight !== null && snapshot === this.#inFlight.snapshot ? this.#inFlight.count : 0;
    const mintedAt = lastPinMint(this.#admin.runtime);
    const pending = this.#pendingPin.slice(written).filter((f) => f.at >= mintedAt);
    for (const f of pending) budget.recordFailure(f.source, f.at);
    let guesses = 0;
    if (withGuesses) {
      for (const g of this.#unsettledGuesses().values()) {
        if (g.at < mintedAt) continue;
        budget.recordFailure(g.source, g.at);
        guesses += 1;
      }
    }
    return { budget, failuresSinceMint: this.#admin.runtime.pinFailuresSinceMint + pending.length + guesses };
  }

  /**
   * Answered v2 exchanges not yet counted: this process's, and the durable ones in the runtime state (those of a
   * gateway that crashed before settling them), less those already pending as failures.
   */
  #unsettledGuesses(): Map<string, PakeGuess> {
    const pending = new Set(this.#pendingPin.map((f) => f.sessionId));
    const all = new Map<string, PakeGuess>();
    for (const g of this.#admin.runtime.pakeGuesses.values()) {
      if (!pending.has(g.sessionId)) all.set(g.sessionId, { source: g.source, at: g.atUnixMs, expiresAt: g.expiresAtUnixMs });
    }
    for (const [sessionId, g] of this.#pakeGuesses) if (!pending.has(sessionId)) all.set(sessionId, g);
    return all;
  }

  /** Answered v2 exchanges whose session expired without a Complete (here or in a gateway that crashed) become failures now. */
  async #settleExpiredGuesses(now: number): Promise<void> {
    for (const [sessionId, g] of this.#unsettledGuesses()) {
      if (now <= g.expiresAt) continue;
      this.#pakeGuesses.delete(sessionId);
      this.#sessions.remove(sessionId);
      await this.#recordFailure(g.source, 'pin', g.at, sessionId);
    }
  }

  /**
   * The session as every process on the state sees it now (call after a refresh), taken over into this process's
   * registry so a hello can be verified here whichever replica ran Begin.
   */
  #reservation(sessionId: string): { stored: StoredPairingSession; reservation: Reservation } | undefined {
    const stored = this.#admin.runtime.sessions.get(sessionId);
    if (stored === undefined) {
      this.#sessions.remove(sessionId);
      return undefined;
    }
    this.#sessions.adopt(snapshotOfStored(stored));
    const pake =
      stored.pake === null
        ? undefined
        : { deviceId: stored.pake.deviceId, commitment: stored.commitmentB64 === null ? new Uint8Array() : fromBase64(stored.commitmentB64), source: stored.pake.source, state: verifierStateOf(stored) };
    return { stored, reservation: { record: stored.code, proof: stored.proof, ...(pake === undefined ? {} : { pake }) } };
  }

  /** Ends a session everywhere (a hostile failure, an expiry): best effort, the caller reports its own error. */
  async #dropShared(sessionId: string): Promise<void> {
    this.#sessions.remove(sessionId);
    await this.#admin
      .mutateRuntime((state) => ({ ops: state.sessions.has(sessionId) ? [{ op: 'delete_session', session_id: sessionId }] : [], result: undefined }))
      .catch(() => undefined);
  }

  static #exhausted(view: { budget: PinGuessBudget; failuresSinceMint: number }): boolean {
    return view.budget.isTripped() || view.failuresSinceMint >= PIN_FAILURES_PER_CODE;
  }

  /** BeginPairingSession: consume the code, start a session. */
  async begin(input: BeginInput): Promise<PublicPairingSession> {
    const proof = input.method.proof.trim();
    if (input.method.kind === 'pin' && this.#requirePake) {
      throw new PalyraError('pake_required', 'this gateway accepts PIN pairing only with SPAKE2+ (PIN pairing v2); update the device');
    }
    // Codes minted and budgets reset by other processes (the CLI) must be seen: a cheap stat, a load only on change.
    await this.#admin.refreshIfChanged();
    const now = this.#clock();
    if (input.method.kind === 'pin') await this.#settleExpiredGuesses(now);
    if (input.method.kind === 'pin' && PairingService.#exhausted(this.#budgetView(true))) throw new PalyraError('pairing_budget_exhausted');
    // QR tokens are looked up by hash; the one PIN code is checked against its verifier (scrypt, like the device).
    let codeHash: string;
    if (input.method.kind === 'pin') {
      const active = activePinCode(this.#admin.runtime, now);
      if (active === undefined || !(await pinCodeMatches(active, proof))) {
        // A QR token sent as a PIN names its code by hash (128 random bits: no guessing oracle): the reference's
        // method mismatch, and the code stays for the right method.
        if (this.#admin.runtime.codes.get(hashPairingCode(proof))?.method === 'qr') {
          throw new PalyraError('pairing_code_method_mismatch', 'pairing code method does not match request');
        }
        return this.#lookupFailed(input, this.#clock());
      }
      codeHash = active.codeHash;
    } else {
      codeHash = hashPairingCode(proof);
    }
    const known = this.#admin.runtime.codes.get(codeHash);
    if (known === undefined || isPairingCodeExpired(known, now)) return this.#lookupFailed(input, now);
    type Outcome = { error: PalyraError } | { missing: true } | { record: PairingCodeRecord; session: PublicPairingSession };
    const outcome = await this.#admin.mutateRuntime<Outcome>((state, at) => {
      const record = state.codes.get(codeHash);
      // Consumed (or expired) since the look without the lock: a miss like any other.
      if (record === undefined || isPairingCodeExpired(record, at)) return { ops: [], result: { missing: true } };
      if (record.method !== input.method.kind) {
        return { ops: [], result: { error: new PalyraError('pairing_code_method_mismatch', 'pairing code method does not match request') } };
      }
      // The session starts inside the same mutation: if it cannot start, the code is simply not consumed
      // (REFERENCE.md §3.2 step 4 restores it), and one lock and one audit entry cover the whole Begin.
      let session: PublicPairingSession;
      try {
        session = this.#sessions.start({
          clientKind: input.clientKind,
          method: { kind: input.method.kind, proof },
          now: at,
          ...(input.commitment === null ? {} : { deviceX25519Commitment: input.commitment }),
        });
      } catch (e) {
        const err = toPalyraError(e);
        return { ops: [], result: { error: new PalyraError(err.code, `failed to start pairing session: ${err.message}`, { details: err.details, cause: e }) } };
      }
      const snapshot = this.#sessions.snapshot(session.sessionId)!;
      return {
        ops: [
          { op: 'delete_code', code_hash: codeHash },
          { op: 'put_session', session: storedSession(snapshot, record, null) },
        ],
        result: { record, session },
        audit: ['pairing_session_started', { session_id: session.sessionId, method: input.method.kind, client_kind: input.clientKind, committed: input.commitment !== null, pake: false }],
      };
    });
    if ('missing' in outcome) return this.#lookupFailed(input, this.#clock());
    if ('error' in outcome) throw outcome.error;
    return outcome.session;
  }

  /**
   * A failed lookup: counted in memory. A PIN miss counts against the budget; the one that trips it is made durable
   * (with the PIN codes voided) before the caller hears anything. Always throws.
   */
  async #lookupFailed(input: BeginInput, now: number): Promise<never> {
    if (input.method.kind === 'pin' && PairingService.#exhausted(this.#budgetView(true))) throw new PalyraError('pairing_budget_exhausted');
    await this.#recordFailure(input.source, input.method.kind, now);
    throw new PalyraError('pairing_code_invalid', 'pairing code is missing or expired');
  }

  /** One failure (a missed lookup, or a v2 exchange that did not confirm) counted; a trip is durable on return. */
  async #recordFailure(source: string, method: PairingMethodKind, now: number, sessionId?: string): Promise<void> {
    let tripped = false;
    if (method === 'pin') {
      const view = this.#budgetView();
      tripped = view.budget.recordFailure(source, now) || view.failuresSinceMint + 1 >= PIN_FAILURES_PER_CODE;
      this.#pendingPin.push(sessionId === undefined ? { source, at: now } : { source, at: now, sessionId });
    }
    const input = { source, method: { kind: method } };
    const key = `${input.method.kind}\u0000${input.source}`;
    const aggregate = this.#aggregates.get(key) ?? { source: input.source, method: input.method.kind, count: 0, since: now, budgetTripped: false };
    aggregate.count += 1;
    aggregate.budgetTripped ||= tripped;
    this.#aggregates.set(key, aggregate);
    if (tripped || this.#aggregates.size >= MAX_FAILURE_AGGREGATES) {
      await this.#flush({ audit: true });
    } else if (method === 'pin' && this.#sharedBudget) {
      // Written before the answer; a failed write keeps the failure pending (still counted here) for the next flush.
      await this.#flush({ audit: false }).catch(() => {
        this.#scheduleBudgetPersist(now);
      });
      this.#scheduleAuditFlush();
    } else {
      if (input.method.kind === 'pin') this.#scheduleBudgetPersist(now);
      this.#scheduleAuditFlush();
    }
  }

  /**
   * BeginPinPairingSession (PIN pairing v2, round 1): a session for the one active PIN code, bound to the device id
   * and commitment; answers the code's public salt. Nothing about the PIN is tried yet, so nothing is counted.
   */
  async beginPake(input: BeginPakeInput): Promise<{ session: PublicPairingSession; salt: Uint8Array }> {
    await this.#admin.refreshIfChanged();
    const now = this.#clock();
    await this.#settleExpiredGuesses(now);
    if (PairingService.#exhausted(this.#budgetView(true))) throw new PalyraError('pairing_budget_exhausted');
    const record = activePinCode(this.#admin.runtime, now);
    if (record?.pin === undefined) throw new PalyraError('pairing_code_invalid', 'no PIN code is active on this gateway');
    const session = this.#sessions.start({
      clientKind: input.clientKind,
      method: { kind: 'pin', proof: '' },
      now,
      deviceX25519Commitment: input.commitment,
      pake: { deviceId: input.deviceId },
    });
    // Shared with every process on the state, so ExchangePinPake and Complete may reach another replica.
    const shared = storedSession(this.#sessions.snapshot(session.sessionId)!, record, { deviceId: input.deviceId, source: input.source });
    try {
      await this.#admin.mutateRuntime(() => ({
        ops: [{ op: 'put_session', session: shared }],
        result: undefined,
        audit: ['pairing_session_started', { session_id: session.sessionId, method: 'pin', client_kind: input.clientKind, committed: true, pake: true }],
      }));
    } catch (e) {
      this.#sessions.remove(session.sessionId);
      throw e;
    }
    return { session, salt: loadPinVerifier(record.pin).salt };
  }

  /**
   * ExchangePinPake (round 2): the verifier's answer to shareP. Once answered, the exchange counts as one guess in
   * the PIN budget until its session confirms; a session answers at most once.
   */
  async exchangePake(input: { sessionId: string; shareP: Uint8Array }): Promise<{ shareV: Uint8Array; confirmV: Uint8Array }> {
    // The session may have been started (or already answered) on another replica.
    await this.#admin.refreshIfChanged();
    const found = this.#reservation(input.sessionId);
    const reservation = found?.reservation;
    const pake = reservation?.pake;
    if (found === undefined || reservation === undefined || pake === undefined || pake.state !== null) {
      throw new PalyraError('pairing_session_not_found', 'no PIN pairing v2 session awaits an exchange under this id');
    }
    const drop = (): Promise<void> => this.#dropShared(input.sessionId);
    const session = this.#sessions.get(input.sessionId);
    const now = this.#clock();
    if (session === undefined) throw new PalyraError('pairing_session_not_found');
    if (now > session.expiresAtUnixMs) {
      await drop();
      throw new PalyraError('pairing_session_expired');
    }
    await this.#settleExpiredGuesses(now);
    if (PairingService.#exhausted(this.#budgetView(true))) {
      await drop();
      throw new PalyraError('pairing_budget_exhausted');
    }
    const current = this.#admin.runtime.codes.get(reservation.record.codeHash);
    if (current?.pin === undefined || isPairingCodeExpired(current, now)) {
      await drop();
      throw new PalyraError('pairing_code_invalid', 'the PIN code was used, voided or expired');
    }
    const ctx = pinPairingPakeContext({
      sessionId: session.sessionId,
      clientKind: session.clientKind,
      gatewayEphemeralPublic: session.gatewayEphemeralPublic,
      deviceX25519Commitment: pake.commitment,
      deviceId: pake.deviceId,
      caPin: this.#admin.identity.caSpkiPin,
    });
    let response;
    try {
      response = verifierRespond(loadPinVerifier(current.pin), input.shareP, ctx);
    } catch (e) {
      await drop();
      throw e;
    }
    // Counted from here on (set before the write, so a concurrent exchange's budget check sees it). One record, under
    // the state lock, before the answer leaves: the shared session takes the verifier state only if no other exchange
    // (on any replica) got there first — otherwise this answer is never sent — and the durable guess (5b.3) with it.
    this.#pakeGuesses.set(input.sessionId, { source: pake.source, at: now, expiresAt: session.expiresAtUnixMs });
    const guess = { sessionId: input.sessionId, source: pake.source, atUnixMs: now, expiresAtUnixMs: session.expiresAtUnixMs };
    try {
      await this.#admin.mutateRuntime((state) => {
        const stored = state.sessions.get(input.sessionId);
        if (stored === undefined || stored.exchange !== null) throw new PalyraError('pairing_session_not_found', 'no PIN pairing v2 session awaits an exchange under this id');
        return {
          ops: [
            { op: 'put_session', session: withExchange(stored, response.state, now) },
            { op: 'put_pake_guess', guess },
          ],
          result: undefined,
        };
      });
    } catch (e) {
      this.#pakeGuesses.delete(input.sessionId);
      // Lost the race to another exchange: that one's session stays; any other failure ends the session.
      if (!(e instanceof PalyraError && e.code === 'pairing_session_not_found')) await drop();
      else this.#sessions.remove(input.sessionId);
      throw e;
    }
    return { shareV: response.shareV, confirmV: response.confirmV };
  }

  #scheduleBudgetPersist(now: number): void {
    if (this.#budgetTimer !== null || this.#closed) return;
    const delay = Math.max(0, this.#lastBudgetPersist + BUDGET_PERSIST_INTERVAL_MS - now);
    this.#budgetTimer = this.#timers.set(() => {
      this.#budgetTimer = null;
      void this.#flush({ audit: false }).catch(() => undefined);
    }, delay);
  }

  #scheduleAuditFlush(): void {
    if (this.#auditTimer !== null || this.#closed) return;
    this.#auditTimer = this.#timers.set(() => {
      this.#auditTimer = null;
      void this.#flush({ audit: true }).catch(() => undefined);
    }, AUDIT_FLUSH_INTERVAL_MS);
  }

  /**
   * Writes the pending PIN failures (replayed onto the budget as stored now, under the lock) and, with `audit`, the
   * aggregated audit entries, in one record. A failed write keeps everything for the next flush.
   */
  #flush(o: { audit: boolean }): Promise<void> {
    const run = this.#flushing.then(() => this.#flushNow(o));
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #flushNow(o: { audit: boolean }): Promise<void> {
    const pending = this.#pendingPin.length;
    // Taken out of the map: failures counted while the record is written start new aggregates.
    const taken = o.audit ? this.#aggregates : new Map<string, FailureAggregate>();
    if (o.audit) this.#aggregates = new Map();
    const aggregates = [...taken.values()];
    if (pending === 0 && aggregates.length === 0) return;
    try {
      await this.#write(pending, aggregates);
    } catch (e) {
      this.#inFlight = null;
      // Nothing was written: the taken counts go back for the next flush.
      for (const [key, a] of taken) {
        const later = this.#aggregates.get(key);
        this.#aggregates.set(key, later === undefined ? a : { ...a, count: a.count + later.count, budgetTripped: a.budgetTripped || later.budgetTripped });
      }
      throw e;
    }
    if (pending > 0) {
      this.#pendingPin = this.#pendingPin.slice(pending);
      this.#lastBudgetPersist = this.#clock();
    }
    this.#inFlight = null;
  }

  async #write(pending: number, aggregates: readonly FailureAggregate[]): Promise<void> {
    await this.#admin.mutateRuntime((state) => {
      const ops: RuntimeOp[] = [];
      if (pending > 0) {
        const budget = new PinGuessBudget();
        if (state.pinBudget !== null) budget.restore(state.pinBudget);
        let tripped = false;
        // Failures from before the operator minted the current PIN code do not count against it.
        const mintedAt = lastPinMint(state);
        const written = this.#pendingPin.slice(0, pending);
        // A settled v2 guess counts once: only while its durable record is still there (another process sharing
        // the state may have settled it), and the record goes in the same write.
        for (const f of written) if (f.sessionId !== undefined && state.pakeGuesses.has(f.sessionId)) ops.push({ op: 'delete_pake_guess', session_id: f.sessionId });
        const counted = written.filter((f) => f.at >= mintedAt && (f.sessionId === undefined || state.pakeGuesses.has(f.sessionId)));
        for (const f of counted) tripped = budget.recordFailure(f.source, f.at) || tripped;
        const before = state.pinFailuresSinceMint;
        const after = before + counted.length;
        if (before < PIN_FAILURES_PER_CODE && after >= PIN_FAILURES_PER_CODE) tripped = true;
        const snapshot = budget.snapshot();
        this.#inFlight = { snapshot, count: pending };
        ops.push({ op: 'set_pin_budget', snapshot }, { op: 'set_pin_failures_since_mint', value: after });
        if (tripped) ops.push({ op: 'delete_codes', method: 'pin' });
      }
      const audits: AuditSpec[] = aggregates.map((a) => [
        'pairing_code_lookup_failures',
        { source: a.source, method: a.method, count: a.count, since: a.since, budget_tripped: a.budgetTripped },
      ]);
      return { ops, result: undefined, audits };
    });
  }

  /** Writes what is still only counted in memory (call before the gateway stops). */
  async close(): Promise<void> {
    this.#closed = true;
    // Answered exchanges that never confirmed count, as they would at their expiry (one another replica confirmed
    // — its session consumed, its request filed — does not).
    for (const [sessionId, g] of [...this.#pakeGuesses]) {
      this.#pakeGuesses.delete(sessionId);
      await this.#recordFailure(g.source, 'pin', g.at, sessionId);
    }
    for (const t of [this.#budgetTimer, this.#auditTimer]) if (t !== null) this.#timers.clear(t);
    this.#budgetTimer = null;
    this.#auditTimer = null;
    await this.#flush({ audit: true });
  }

  /** CompletePairingSession: verify, check the CSR binding, file the request for approval. */
  async complete(input: CompleteInput): Promise<StoredPairingRequest> {
    // Before the reservation is consumed: a bad name is a usage error the device can fix and send again.
    const deviceName = resolveDeviceName(input.deviceName ?? '', input.clientKind, input.deviceId);
    // Begin (and the exchange) may have run on another replica: the shared session is the one to complete.
    await this.#admin.refreshIfChanged();
    const found = this.#reservation(input.sessionId);
    if (found === undefined) throw new PalyraError('pairing_session_not_found', 'pairing session does not have a reserved code');
    const { reservation } = found;
    let proof = reservation.proof;
    const pake = reservation.pake;
    if (pake === undefined) {
      if (input.pakeConfirmP != null && input.pakeConfirmP.length > 0) {
        await this.#dropShared(input.sessionId);
        throw new PalyraError('invalid_argument', 'pake_confirm_p is only for PIN pairing v2 sessions');
      }
    } else {
      // This process's guess, or the durable one another replica wrote when it answered the exchange.
      const durable = this.#admin.runtime.pakeGuesses.get(input.sessionId);
      const guess = this.#pakeGuesses.get(input.sessionId) ?? (durable === undefined ? undefined : { source: durable.source, at: durable.atUnixMs, expiresAt: durable.expiresAtUnixMs });
      this.#pakeGuesses.delete(input.sessionId);
      if (pake.state === null) {
        await this.#dropShared(input.sessionId);
        throw new PalyraError('invalid_argument', 'a PIN pairing v2 session needs ExchangePinPake before CompletePairingSession');
      }
      let sharedKey: Uint8Array;
      try {
        sharedKey = verifierFinish(pake.state, input.pakeConfirmP ?? new Uint8Array());
      } catch (e) {
        await this.#dropShared(input.sessionId);
        const err = toPalyraError(e);
        if (guess !== undefined) await this.#recordFailure(guess.source, 'pin', guess.at, input.sessionId);
        await this.#admin.audit('pairing_verification_failed', { session_id: input.sessionId, device_id: input.deviceId, code: err.code });
        throw err;
      }
      proof = pinPairingV2Proof(sharedKey);
      this.#sessions.bindPakeProof(input.sessionId, proof);
      // Confirmed: the PIN was right, so the durable guess is dropped, never counted.
      await this.#admin.mutateRuntime(() => ({ ops: [{ op: 'delete_pake_guess', session_id: input.sessionId }], result: undefined }));
    }
    await this.#admin.identity.refreshIfChanged();
    let verified;
    try {
      verified = this.#sessions.verify(
        {
          sessionId: input.sessionId,
          protocolVersion: Math.max(input.protocolVersion, 1),
          deviceId: input.deviceId,
          clientKind: input.clientKind,
          proof,
          deviceSigningPublic: input.deviceSigningPublic,
          deviceX25519Public: input.deviceX25519Public,
          challengeSignature: input.challengeSignature,
          transcriptMac: input.transcriptMac,
        },
        { now: this.#clock(), isDeviceRevoked: (id) => this.#admin.identity.isDeviceRevoked(id), allowLegacyDeviceIds: this.#allowLegacyDeviceIds },
      );
    } catch (e) {
      const err = toPalyraError(e);
      // A failure that ends the session (the registry dropped it) ends it for every replica, in the audit's record.
      const ended = this.#sessions.get(input.sessionId) === undefined;
      await this.#admin.mutateRuntime((state) => ({
        ops: ended && state.sessions.has(input.sessionId) ? [{ op: 'delete_session', session_id: input.sessionId }] : [],
        result: undefined,
        audit: ['pairing_verification_failed', { session_id: input.sessionId, device_id: input.deviceId, code: err.code }],
      }));
      throw new PalyraError(err.code, `pairing verification failed: ${err.message}`, { details: err.details, cause: e });
    }
    if (input.csrDer === null || input.csrDer.length === 0) {
      if (!this.#allowServerGeneratedKeys) throw new PalyraError('server_generated_keys_disabled');
    } else {
      const signature = input.csrSignature ?? new Uint8Array();
      if (!verifyCsrBinding({ signature, sessionId: input.sessionId, csrDer: input.csrDer, signingPublicKey: verified.deviceSigningPublic })) {
        throw new PalyraError('csr_signature_invalid');
      }
      verifyCsr(input.csrDer);
    }
    const csrDerB64 = input.csrDer === null || input.csrDer.length === 0 ? null : toBase64(input.csrDer);
    return this.#admin.mutateRuntime((state, now) => {
      // One use, whichever replica: a concurrent Complete of the same session that committed first consumed it.
      if (!state.sessions.has(input.sessionId)) throw new PalyraError('pairing_session_not_found', 'pairing session was already completed or ended');
      const ops: RuntimeOp[] = [{ op: 'delete_session', session_id: input.sessionId }];
      // v2 consumes its PIN code only now, once the PAKE confirmed (v1 consumed it at Begin).
      if (pake !== undefined) {
        const code = state.codes.get(reservation.record.codeHash);
        if (code === undefined || isPairingCodeExpired(code, now)) throw new PalyraError('pairing_code_invalid', 'the PIN code was used, voided or expired');
        ops.push({ op: 'delete_code', code_hash: code.codeHash });
      }
      const request: StoredPairingRequest = {
        ...createPairingRequest({
          requestId: input.sessionId,
          sessionId: input.sessionId,
          deviceId: verified.deviceId,
          clientKind: verified.clientKind,
          method: reservation.record.method,
          codeIssuedBy: reservation.record.issuedBy,
          requestedAtUnixMs: now,
          expiresAtUnixMs: Math.max(reservation.record.expiresAtUnixMs, now + 1),
          approvalId: newUlid(now),
          identityFingerprint: verified.identityFingerprint,
          signingPublicKeyHex: verified.signingPublicKeyHex,
          transcriptHashHex: verified.transcriptHashHex,
          sas: verified.sas,
          sasVerifiable: verified.sasVerifiable,
          deviceName,
          sasStatus: pake !== undefined ? 'confirmed' : verified.sasVerifiable ? 'compare' : 'unverifiable',
        }),
        csrDerB64,
        material: null,
        materialDeliveredAtUnixMs: null,
      };
      return {
        ops: [...ops, { op: 'put_request', request }],
        result: request,
        audit: [
          'pairing_requested',
          { request_id: request.requestId, device_id: request.deviceId, client_kind: request.clientKind, method: request.method, sas: request.sas, sas_verifiable: request.sasVerifiable, sas_status: request.sasStatus, identity_fingerprint: request.identityFingerprint, device_name: deviceName },
        ],
      };
    });
  }

  /**
   * GetPairingRequestStatus: holds the call up to `waitMs` while the request is pending; finalizes an approved
   * request (issuing the certificate) and serves its material to the device that proved the key.
   */
  async status(input: { sessionId: string; deviceId: string; waitMs: number }): Promise<StatusResult> {
    const deadline = this.#clock() + Math.min(Math.max(input.waitMs, 0), MAX_STATUS_WAIT_MS);
    let request = await this.#lookup(input.sessionId, input.deviceId, true);
    while (request.state === 'pending_approval' && this.#clock() < deadline) {
      await this.#waitForChange(deadline - this.#clock());
      request = await this.#lookup(input.sessionId, input.deviceId, true);
    }
    if (request.state === 'approved') return this.#finalizeOnce(request);
    const material = request.state === 'completed' && request.materialDeliveredAtUnixMs === null ? request.material : null;
    return { request, material, privateKeyPem: null };
  }

  /**
   * The request as stored now. With `fresh`, the state files are checked first (a stat; a load when they changed), so
   * a decision another process made — a `palyra pairing reject` that has exited — is seen by the very next read, not
   * only once the gateway's file watcher fires.
   */
  async #lookup(requestId: string, deviceId: string, fresh = false): Promise<StoredPairingRequest> {
    if (fresh) await this.#admin.refreshIfChanged();
    let request = this.#admin.request(requestId);
    if (request === undefined) {
      await this.#admin.refresh();
      request = this.#admin.request(requestId);
    }
    if (request === undefined) throw new PalyraError('pairing_request_not_found', 'pairing request was not found');
    if (request.deviceId !== deviceId) throw new PalyraError('pairing_request_forbidden', 'pairing request does not belong to the requested device_id');
    return request;
  }

  /**
   * CancelPairingRequest: the device withdraws its request. Only the device that filed it can: the signature must
   * verify under the identity key the request was filed with. Idempotent (`changed: false` the second time).
   */
  async cancel(input: CancelInput): Promise<{ request: StoredPairingRequest; changed: boolean }> {
    const found = await this.#lookup(input.sessionId, input.deviceId, true);
    const signed = verifyPairingCancel({ signature: input.signature, sessionId: input.sessionId, deviceId: input.deviceId, signingPublicKey: fromHex(found.signingPublicKeyHex) });
    if (!signed) throw new PalyraError('signature_verification_failed', 'pairing cancel signature verification failed');
    const result = await this.#admin.mutateRuntime((state, now) => {
      const stored = state.requests.get(input.sessionId);
      if (stored === undefined) throw new PalyraError('pairing_request_not_found', 'pairing request was not found');
      const next = cancelPairingRequest(stored, { now });
      if (next === stored) return { ops: [], result: { request: stored, changed: false } };
      const request: StoredPairingRequest = { ...stored, ...next };
      return {
        ops: [{ op: 'put_request', request }],
        result: { request, changed: true },
        audit: ['pairing_cancelled', { request_id: request.requestId, device_id: request.deviceId, previous_state: stored.state }],
      };
    });
    return result;
  }

  #waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(ms, 0));
      this.#waiters.add(done);
    });
  }

  /** Two concurrent polls of one approved request issue one certificate. */
  #finalizeOnce(request: StoredPairingRequest): Promise<StatusResult> {
    const running = this.#finalizing.get(request.requestId);
    if (running !== undefined) return running.then((r) => ({ ...r, privateKeyPem: null }));
    const run = this.#finalize(request).finally(() => this.#finalizing.delete(request.requestId));
    this.#finalizing.set(request.requestId, run);
    return run;
  }

  async #finalize(request: StoredPairingRequest): Promise<StatusResult> {
    const issued = await this.#admin.mutateIdentity((identity) =>
      identity.finalizeVerifiedPairing({
        verified: {
          deviceId: request.deviceId,
          clientKind: request.clientKind,
          identityFingerprint: request.identityFingerprint,
          signingPublicKeyHex: request.signingPublicKeyHex,
          name: request.deviceName ?? null,
          method: request.method,
        },
        csrDer: request.csrDerB64 === null ? null : fromBase64(request.csrDerB64),
      }),
    );
    const material: PairingMaterial = {
      certificatePem: issued.certificate.certificatePem,
      certificateFingerprint: issued.certificate.fingerprint,
      caCertificatePem: issued.caCertificatePem,
      certExpiresAtUnixMs: issued.certificate.expiresAtUnixMs,
    };
    const completed = await this.#admin.mutateRuntime((state, now) => {
      const current = state.requests.get(request.requestId) ?? request;
      const next: StoredPairingRequest = { ...current, ...completePairingRequest(current, { now }), material, materialDeliveredAtUnixMs: null };
      return { ops: [{ op: 'put_request', request: next }], result: next };
    });
    return { request: completed, material, privateKeyPem: issued.privateKeyPem };
  }

  /** The device made its first mTLS call: stop serving its pairing material (PROTOCOL.md §5). */
  async markMaterialDelivered(deviceId: string): Promise<void> {
    const pending = [...this.#admin.runtime.requests.values()].some((r) => r.deviceId === deviceId && r.material !== null);
    if (!pending) return;
    await this.#admin.mutateRuntime((state, now) => ({
      ops: [...state.requests.values()]
        .filter((r) => r.deviceId === deviceId && r.material !== null)
        .map((r): RuntimeOp => ({ op: 'put_request', request: { ...r, material: null, materialDeliveredAtUnixMs: now } })),
      result: undefined,
    }));
  }
}
