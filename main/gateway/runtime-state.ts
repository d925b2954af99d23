/**
 * The gateway's pairing runtime (REFERENCE.md §1.10, §6.6, with PROTOCOL.md §5): minted codes (QR token hashes,
 * PIN SPAKE2+ verifiers),
 * pairing requests, registered nodes and the PIN guessing budget. Stored encrypted beside the identity state as
 * `node-runtime.v1.json` + journal, so a CLI in another process can mint, list, approve and reject while the
 * gateway runs. Heartbeats and capability traffic stay in memory (they would otherwise rewrite the file per beat).
 */

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
  | { op: 'put_node'; node: NodeRecord }
  | { op: 'delete_node'; device_id: string }
  | { op: 'set_pin_budget'; snapshot: PinGuessBudgetSnapshot | null }
  | { op: 'set_pin_failures_since_mint'; value: number }
  | { op: 'put_pake_guess'; guess: PakeGuessRecord }
  | { op: 'delete_pake_guess'; session_id: string };

export function emptyRuntimeState(): RuntimeState {
  return { codes: new Map(), requests: new Map(), nodes: new Map(), pinBudget: null, pinFailuresSinceMint: 0, pakeGuesses: new Map() };
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
  for (const r of o.requests) state.requests.set(r.requestId, { ...r, sasStatus: r.sasStatus ?? defaultSasStatus(r.sasVerifiable) });
  for (const n of o.nodes) state.nodes.set(n.deviceId, n);
  state.pinBudget = o.pin_budget;
  state.pinFailuresSinceMint = o.pin_failures_since_mint;
  for (const g of o.pake_guesses) state.pakeGuesses.set(g.sessionId, g);
  return { state, generation: o.generation };
}
