/**
 * The gateway half of pairing (REFERENCE.md §3.2–§3.4 with PROTOCOL.md §3–§5): consume a code and start a
 * session (Begin), verify the hello and the CSR binding and file a request for approval (Complete), and answer the
 * device's status long-poll, issuing its certificate once an operator approved.
 *
 * Codes are looked up by hash and consumed at Begin; every failed lookup counts against the PIN guessing budget,
 * which, once tripped, refuses PIN pairing and voids PIN codes until an operator mints a new one. At most
 * `PIN_FAILURES_PER_CODE` failures are allowed per minted PIN code whatever their timing, so a code's guessing
 * chance stays ≤ 20 / 10⁶.
 */

import type { ClientKind } from '../core/client-kind.js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { newUlid } from '../core/ids.js';
import { verifyCsrBinding } from '../core/handshake.js';
import { parseAndVerifyCsr } from '../core/csr.js';
import { hashPairingCode, isPairingCodeExpired } from '../core/pairing-codes.js';
import type { PairingCodeRecord, PairingMethodKind } from '../core/pairing-codes.js';
import { completePairingRequest, createPairingRequest } from '../core/pairing-requests.js';
import { PairingSessionRegistry } from '../core/pairing-sessions.js';
import type { PublicPairingSession } from '../core/pairing-sessions.js';
import { PinGuessBudget } from '../core/pin-budget.js';
import { toBase64, fromBase64 } from '../core/bytes.js';
import type { GatewayAdmin } from './gateway-admin.js';
import type { PairingMaterial, RuntimeOp, StoredPairingRequest } from './runtime-state.js';

/** Longest a status call may be held open (PROTOCOL.md §4 `wait_ms`). */
export const MAX_STATUS_WAIT_MS = 30_000;
/** Failed lookups allowed per minted PIN code. */
export const PIN_FAILURES_PER_CODE = 20;

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
}

export interface StatusResult {
  request: StoredPairingRequest;
  /** Served until the device's first mTLS call. */
  material: PairingMaterial | null;
  /** Only in `--allow-server-generated-keys` mode, only in the response that finalized the pairing. */
  privateKeyPem: string | null;
}

export interface PairingServiceOptions {
  admin: GatewayAdmin;
  clock?: () => number;
  allowServerGeneratedKeys?: boolean;
  allowLegacyDeviceIds?: boolean;
  sessions?: PairingSessionRegistry;
}

interface Reservation {
  record: PairingCodeRecord;
  proof: string;
}

export class PairingService {
  readonly #admin: GatewayAdmin;
  readonly #clock: () => number;
  readonly #allowServerGeneratedKeys: boolean;
  readonly #allowLegacyDeviceIds: boolean;
  readonly #sessions: PairingSessionRegistry;
  readonly #reserved = new Map<string, Reservation>();
  readonly #waiters = new Set<() => void>();
  readonly #finalizing = new Map<string, Promise<StatusResult>>();

  constructor(o: PairingServiceOptions) {
    this.#admin = o.admin;
    this.#clock = o.clock ?? Date.now;
    this.#allowServerGeneratedKeys = o.allowServerGeneratedKeys ?? false;
    this.#allowLegacyDeviceIds = o.allowLegacyDeviceIds ?? false;
    this.#sessions = o.sessions ?? new PairingSessionRegistry();
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

  #budget(): PinGuessBudget {
    const budget = new PinGuessBudget();
    const snapshot = this.#admin.runtime.pinBudget;
    if (snapshot !== null) budget.restore(snapshot);
    return budget;
  }

  /** BeginPairingSession: consume the code, start a session. */
  async begin(input: BeginInput): Promise<PublicPairingSession> {
    const proof = input.method.proof.trim();
    const codeHash = hashPairingCode(proof);
    type Outcome = { error: PalyraError } | { record: PairingCodeRecord; session: PublicPairingSession };
    const outcome = await this.#admin.mutateRuntime<Outcome>((state, now) => {
      const budget = this.#budget();
      const exhausted = budget.isTripped(now) || state.pinFailuresSinceMint >= PIN_FAILURES_PER_CODE;
      if (input.method.kind === 'pin' && exhausted) {
        return { ops: [], result: { error: new PalyraError('pairing_budget_exhausted') } };
      }
      const record = state.codes.get(codeHash);
      if (record === undefined || isPairingCodeExpired(record, now)) {
        const tripped = budget.recordFailure(input.source, now) || state.pinFailuresSinceMint + 1 === PIN_FAILURES_PER_CODE;
        const ops: RuntimeOp[] = [
          { op: 'set_pin_budget', snapshot: budget.snapshot() },
          { op: 'set_pin_failures_since_mint', value: state.pinFailuresSinceMint + 1 },
        ];
        if (tripped) ops.push({ op: 'delete_codes', method: 'pin' });
        return {
          ops,
          result: { error: new PalyraError('pairing_code_invalid', 'pairing code is missing or expired') },
          audit: ['pairing_code_lookup_failed', { method: input.method.kind, source: input.source, budget_tripped: tripped }],
        };
      }
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
          now,
          ...(input.commitment === null ? {} : { deviceX25519Commitment: input.commitment }),
        });
      } catch (e) {
        const err = toPalyraError(e);
        return { ops: [], result: { error: new PalyraError(err.code, `failed to start pairing session: ${err.message}`, { details: err.details, cause: e }) } };
      }
      return {
        ops: [{ op: 'delete_code', code_hash: codeHash }],
        result: { record, session },
        audit: ['pairing_session_started', { session_id: session.sessionId, method: input.method.kind, client_kind: input.clientKind, committed: input.commitment !== null }],
      };
    });
    if ('error' in outcome) throw outcome.error;
    const { record, session } = outcome;
    this.#reserved.set(session.sessionId, { record, proof });
    return session;
  }

  /** CompletePairingSession: verify, check the CSR binding, file the request for approval. */
  async complete(input: CompleteInput): Promise<StoredPairingRequest> {
    const reservation = this.#reserved.get(input.sessionId);
    this.#reserved.delete(input.sessionId);
    if (reservation === undefined) throw new PalyraError('pairing_session_not_found', 'pairing session does not have a reserved code');
    await this.#admin.identity.refreshIfChanged();
    let verified;
    try {
      verified = this.#sessions.verify(
        {
          sessionId: input.sessionId,
          protocolVersion: Math.max(input.protocolVersion, 1),
          deviceId: input.deviceId,
          clientKind: input.clientKind,
          proof: reservation.proof,
          deviceSigningPublic: input.deviceSigningPublic,
          deviceX25519Public: input.deviceX25519Public,
          challengeSignature: input.challengeSignature,
          transcriptMac: input.transcriptMac,
        },
        { now: this.#clock(), isDeviceRevoked: (id) => this.#admin.identity.isDeviceRevoked(id), allowLegacyDeviceIds: this.#allowLegacyDeviceIds },
      );
    } catch (e) {
      const err = toPalyraError(e);
      await this.#admin.audit('pairing_verification_failed', { session_id: input.sessionId, device_id: input.deviceId, code: err.code });
      throw new PalyraError(err.code, `pairing verification failed: ${err.message}`, { details: err.details, cause: e });
    }
    if (input.csrDer === null || input.csrDer.length === 0) {
      if (!this.#allowServerGeneratedKeys) throw new PalyraError('server_generated_keys_disabled');
    } else {
      const signature = input.csrSignature ?? new Uint8Array();
      if (!verifyCsrBinding({ signature, sessionId: input.sessionId, csrDer: input.csrDer, signingPublicKey: verified.deviceSigningPublic })) {
        throw new PalyraError('csr_signature_invalid');
      }
      await parseAndVerifyCsr(input.csrDer);
    }
    const csrDerB64 = input.csrDer === null || input.csrDer.length === 0 ? null : toBase64(input.csrDer);
    return this.#admin.mutateRuntime((_state, now) => {
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
        }),
        csrDerB64,
        material: null,
        materialDeliveredAtUnixMs: null,
      };
      return {
        ops: [{ op: 'put_request', request }],
        result: request,
        audit: [
          'pairing_requested',
          { request_id: request.requestId, device_id: request.deviceId, client_kind: request.clientKind, method: request.method, sas: request.sas, sas_verifiable: request.sasVerifiable, identity_fingerprint: request.identityFingerprint },
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
    let request = await this.#lookup(input.sessionId, input.deviceId);
    while (request.state === 'pending_approval' && this.#clock() < deadline) {
      await this.#waitForChange(deadline - this.#clock());
      request = await this.#lookup(input.sessionId, input.deviceId);
    }
    if (request.state === 'approved') return this.#finalizeOnce(request);
    const material = request.state === 'completed' && request.materialDeliveredAtUnixMs === null ? request.material : null;
    return { request, material, privateKeyPem: null };
  }

  async #lookup(requestId: string, deviceId: string): Promise<StoredPairingRequest> {
    let request = this.#admin.request(requestId);
    if (request === undefined) {
      await this.#admin.refresh();
      request = this.#admin.request(requestId);
    }
    if (request === undefined) throw new PalyraError('pairing_request_not_found', 'pairing request was not found');
    if (request.deviceId !== deviceId) throw new PalyraError('pairing_request_forbidden', 'pairing request does not belong to the requested device_id');
    return request;
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
