/**
 * The gateway's pairing runtime (REFERENCE.md §1.10, §6.6, with PROTOCOL.md §5): minted codes (QR token hashes,
 * PIN SPAKE2+ verifiers),
 * pairing requests, registered nodes and the PIN guessing budget. Stored encrypted beside the identity state as
 * `node-runtime.v1.json` + journal, so a CLI in another process can mint, list, approve and reject while the
 * gateway runs, and pairing sessions started on one gateway process can be completed on another. Heartbeats and capability traffic stay in memory (they would otherwise rewrite the file per beat).
 */

import type { ClientKind } from '../core/client-kind.js';
import type { PairingCodeRecord } from '../core/pairing-codes.js';
import type { PairingRequest } from '../core/pairing-requests.js';
import type { PinGuessBudgetSnapshot } from '../core/pin-budget.js';
import { z } from 'zod';
import { CLIENT_KINDS } from '../core/client-kind.js';
import { PAIRING_REQUEST_STATES, SAS_STATUSES, defaultSasStatus } from '../core/pairing-requests.js';
import { parseStateDocument } from '../store/state-schema.js';

export const RUNTIME_STATE_KEY = 'node-runtime.v1.json';

/** Certificate material of a completed request, served to the device until its first mTLS call. */
export interface PairingMaterial {
  readonly certificatePem: string;
  readonly certificateFingerprint: string;
  readonly caCertificatePem: string;
  readonly certExpiresAtUnixMs: number;
}

export interface StoredPairingRequest extends PairingRequest {
  /** The device's PKCS#10 CSR (public), base64; null for a reference client in server-generated-keys mode. */
  readonly csrDerB64: string | null;
  readonly material: PairingMaterial | null;
  /** Set at the device's first mTLS call: from then on the material is no longer served. */
  readonly materialDeliveredAtUnixMs: number | null;
}

export interface NodeCapabilityRecord {
  readonly name: string;
  readonly available: boolean;
}

export interface NodeRecord {
  readonly deviceId: string;
  readonly platform: string;
  readonly capabilities: readonly NodeCapabilityRecord[];
  readonly registeredAtUnixMs: number;
  readonly lastSeenAtUnixMs: number;
  /** Peer address (no port) of the node's last RegisterNode; absent or null when not known. */
  readonly lastAddress?: string | null;
}

/**
 * A pairing session between Begin and Complete, shared by every process on the state (replicas of a cluster, or
 * several gateways on one directory): Begin on one, ExchangePinPake on another, Complete on a third. It holds the
 * gateway's ephemeral X25519 secret, the proof the hello must carry and, once ExchangePinPake answered, the SPAKE2+
 * verifier state — so it only ever lives in this document, which is sealed with the store key like the rest.
 * Consumed (deleted) by the Complete that filed the request, in the same record: one use, whichever replica.
 */
export interface StoredPairingSession {
  readonly sessionId: string;
  readonly protocolVersion: number;
  readonly clientKind: ClientKind;
  readonly method: 'pin' | 'qr';
  readonly gatewayEphemeralPublicB64: string;
  readonly gatewaySecretB64: string;
  readonly challengeB64: string;
  readonly expiresAtUnixMs: number;
  /** The device's X25519 commitment from Begin; null for reference clients. */
  readonly commitmentB64: string | null;
  /** v1 and QR: the code as the device sent it at Begin; v2: '' (the PAKE-derived proof is bound at Complete). */
  readonly proof: string;
  /** The code the session was started with (v1/QR: consumed at Begin; v2: consumed at Complete). */
  readonly code: PairingCodeRecord;
  /** PIN pairing v2: the device the PAKE runs for and the peer address (for the guessing budget). */
  readonly pake: { readonly deviceId: string; readonly source: string } | null;
  /** PIN pairing v2, once ExchangePinPake answered (at most once): what verifierFinish needs. */
  readonly exchange: { readonly atUnixMs: number; readonly expectedConfirmPB64: string; readonly sharedKeyB64: string } | null;
}

/**
 * A PIN pairing v2 exchange the gateway answered (ExchangePinPake) that has neither confirmed nor been counted as a
 * failure yet: written before the answer goes out, so a guess survives a gateway crash (PROTOCOL.md 5b.3).
 */
export interface PakeGuessRecord {
  readonly sessionId: string;
  /** The peer address the guess counts against (the per-source budget). */
  readonly source: string;
  readonly atUnixMs: number;
  /** The session's expiry: after it the exchange can no longer confirm and counts as a failure. */
  readonly expiresAtUnixMs: number;
}

export interface RuntimeState {
  codes: Map<string, PairingCodeRecord>;
  /** Pairing sessions between Begin and Complete (expired ones are pruned by the next mutation). */
  sessions: Map<string, StoredPairingSession>;
  requests: Map<string, StoredPairingRequest>;
  nodes: Map<string, NodeRecord>;
  pinBudget: PinGuessBudgetSnapshot | null;
  /** Failed code lookups since the last PIN code was minted: caps guesses per code regardless of time. */
  pinFailuresSinceMint: number;
  /** Answered v2 exchanges not confirmed yet, by session id. */
  pakeGuesses: Map<string, PakeGuessRecord>;
}

export type RuntimeOp =
  | { op: 'put_code'; record: PairingCodeRecord }
  | { op: 'delete_code'; code_hash: string }
  | { op: 'delete_codes'; method: 'pin' | 'qr' }
  | { op: 'put_request'; request: StoredPairingRequest }
  | { op: 'delete_request'; request_id: string }
  | { op: 'put_session'; session: StoredPairingSession }
  | { op: 'delete_session'; session_id: string }
  | { op: 'put_node'; node: NodeRecord }
  | { op: 'delete_node'; device_id: string }
  | { op: 'set_pin_budget'; snapshot: PinGuessBudgetSnapshot | null }
  | { op: 'set_pin_failures_since_mint'; value: number }
  | { op: 'put_pake_guess'; guess: PakeGuessRecord }
  | { op: 'delete_pake_guess'; session_id: string };

export function emptyRuntimeState(): RuntimeState {
  return { codes: new Map(), sessions: new Map(), requests: new Map(), nodes: new Map(), pinBudget: null, pinFailuresSinceMint: 0, pakeGuesses: new Map() };
}

export function applyRuntimeOp(state: RuntimeState, op: RuntimeOp): void {
  switch (op.op) {
    case 'put_code':
      state.codes.set(op.record.codeHash, op.record);
      return;
    case 'delete_code':
      state.codes.delete(op.code_hash);
      return;
    case 'delete_codes':
      for (const [hash, record] of state.codes) if (record.method === op.method) state.codes.delete(hash);
      return;
    case 'put_request':
      state.requests.set(op.request.requestId, op.request);
      return;
    case 'delete_request':
      state.requests.delete(op.request_id);
      return;
    case 'put_session':
      state.sessions.set(op.session.sessionId, op.session);
      return;
    case 'delete_session':
      state.sessions.delete(op.session_id);
      return;
    case 'put_node':
      state.nodes.set(op.node.deviceId, op.node);
      return;
    case 'delete_node':
      state.nodes.delete(op.device_id);
      return;
    case 'set_pin_budget':
      state.pinBudget = op.snapshot;
      return;
    case 'set_pin_failures_since_mint':
      state.pinFailuresSinceMint = op.value;
      return;
    case 'put_pake_guess':
      state.pakeGuesses.set(op.guess.sessionId, op.guess);
      return;
    case 'delete_pake_guess':
      state.pakeGuesses.delete(op.session_id);
      return;
  }
}

interface RuntimeJson {
  generation: number;
  codes: PairingCodeRecord[];
  sessions: StoredPairingSession[];
  requests: StoredPairingRequest[];
  nodes: NodeRecord[];
  pin_budget: PinGuessBudgetSnapshot | null;
  pin_failures_since_mint: number;
  pake_guesses: PakeGuessRecord[];
}

export function runtimeStateToJson(state: RuntimeState, generation: number): RuntimeJson {
  return {
    generation,
    codes: [...state.codes.values()],
    sessions: [...state.sessions.values()],
    requests: [...state.requests.values()],
    nodes: [...state.nodes.values()],
    pin_budget: state.pinBudget,
    pin_failures_since_mint: state.pinFailuresSinceMint,
    pake_guesses: [...state.pakeGuesses.values()],
  };
}

const unixMs = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const clientKind = z.enum(CLIENT_KINDS);
const method = z.enum(['pin', 'qr']);

const pinVerifierSchema = z.looseObject({ saltB64: z.string(), w0B64: z.string(), lB64: z.string() });

const codeSchema = z.looseObject({
  codeHash: z.string(),
  pin: pinVerifierSchema.optional(),
  method,
  kind: clientKind.nullable(),
  issuedBy: z.string(),
  createdAtUnixMs: unixMs,
  expiresAtUnixMs: unixMs,
});

const sessionSchema = z.looseObject({
  sessionId: z.string(),
  protocolVersion: z.number().int().min(1).max(0xffff_ffff),
  clientKind,
  method,
  gatewayEphemeralPublicB64: z.string(),
  gatewaySecretB64: z.string(),
  challengeB64: z.string(),
  expiresAtUnixMs: unixMs,
  commitmentB64: z.string().nullable(),
  proof: z.string(),
  code: codeSchema,
  pake: z.looseObject({ deviceId: z.string(), source: z.string() }).nullable(),
  exchange: z.looseObject({ atUnixMs: unixMs, expectedConfirmPB64: z.string(), sharedKeyB64: z.string() }).nullable(),
});

const materialSchema = z.looseObject({
  certificatePem: z.string(),
  certificateFingerprint: z.string(),
  caCertificatePem: z.string(),
  certExpiresAtUnixMs: unixMs,
});

const requestSchema = z.looseObject({
  requestId: z.string(),
  sessionId: z.string(),
  deviceId: z.string(),
  clientKind,
  method,
  codeIssuedBy: z.string(),
  requestedAtUnixMs: unixMs,
  expiresAtUnixMs: unixMs,
  approvalId: z.string(),
  state: z.enum(PAIRING_REQUEST_STATES),
  decisionReason: z.string().nullable(),
  decidedAtUnixMs: unixMs.nullable(),
  identityFingerprint: z.string(),
  signingPublicKeyHex: z.string(),
  transcriptHashHex: z.string(),
  sas: z.string(),
  sasVerifiable: z.boolean(),
  sasStatus: z.enum(SAS_STATUSES).optional(),
  completedAtUnixMs: unixMs.nullable(),
  csrDerB64: z.string().nullable(),
  material: materialSchema.nullable(),
  materialDeliveredAtUnixMs: unixMs.nullable(),
  // Requests filed before device names existed have none.
  deviceName: z.string().nullable().default(null),
});

const nodeSchema = z.looseObject({
  deviceId: z.string(),
  platform: z.string(),
  capabilities: z.array(z.looseObject({ name: z.string(), available: z.boolean() })),
  registeredAtUnixMs: unixMs,
  lastSeenAtUnixMs: unixMs,
  lastAddress: z.string().nullable().default(null),
});

const pinBudgetSchema = z.looseObject({
  version: z.literal(1),
  trippedAtUnixMs: unixMs.nullable(),
  globalFailures: z.array(unixMs),
  sources: z.array(z.looseObject({ source: z.string(), failures: z.array(unixMs) })),
});

const runtimeSchema = z.looseObject({
  generation: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  codes: z.array(codeSchema).default([]),
  // Documents written before sessions were shared have none (their sessions were in one process's memory).
  sessions: z.array(sessionSchema).default([]),
  requests: z.array(requestSchema).default([]),
  nodes: z.array(nodeSchema).default([]),
  pin_budget: pinBudgetSchema.nullable().default(null),
  pin_failures_since_mint: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  // Absent in states written before guesses were durable.
  pake_guesses: z.array(z.looseObject({ sessionId: z.string(), source: z.string(), atUnixMs: unixMs, expiresAtUnixMs: unixMs })).default([]),
});

/** Parses the runtime document; anything that does not match its schema is `state_corrupt` naming the field. */
export function runtimeStateFromJson(json: unknown, document = RUNTIME_STATE_KEY): { state: RuntimeState; generation: number } {
  const o = parseStateDocument(runtimeSchema, json, document);
  const state = emptyRuntimeState();
  // A PIN code stored before PIN pairing v2 (a hash, no verifier) is dropped: codes live at most 24 h.
  for (const c of o.codes) if (c.method !== 'pin' || c.pin !== undefined) state.codes.set(c.codeHash, c);
  for (const session of o.sessions) state.sessions.set(session.sessionId, session);
  for (const r of o.requests) state.requests.set(r.requestId, { ...r, sasStatus: r.sasStatus ?? defaultSasStatus(r.sasVerifiable) });
  for (const n of o.nodes) state.nodes.set(n.deviceId, n);
  state.pinBudget = o.pin_budget;
  state.pinFailuresSinceMint = o.pin_failures_since_mint;
  for (const g of o.pake_guesses) state.pakeGuesses.set(g.sessionId, g);
  return { state, generation: o.generation };
}
