/**
 * The gateway's pairing runtime (REFERENCE.md §1.10, §6.6, with PROTOCOL.md §5): minted codes (hashes only),
 * pairing requests, registered nodes and the PIN guessing budget. Stored encrypted beside the identity state as
 * `node-runtime.v1.json` + journal, so a CLI in another process can mint, list, approve and reject while the
 * gateway runs. Heartbeats and capability traffic stay in memory (they would otherwise rewrite the file per beat).
 */

import type { PairingCodeRecord } from '../core/pairing-codes.js';
import type { PairingRequest } from '../core/pairing-requests.js';
import type { PinGuessBudgetSnapshot } from '../core/pin-budget.js';
import { PalyraError } from '../core/errors.js';

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
}

export interface RuntimeState {
  codes: Map<string, PairingCodeRecord>;
  requests: Map<string, StoredPairingRequest>;
  nodes: Map<string, NodeRecord>;
  pinBudget: PinGuessBudgetSnapshot | null;
  /** Failed code lookups since the last PIN code was minted: caps guesses per code regardless of time. */
  pinFailuresSinceMint: number;
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
  | { op: 'set_pin_failures_since_mint'; value: number };

export function emptyRuntimeState(): RuntimeState {
  return { codes: new Map(), requests: new Map(), nodes: new Map(), pinBudget: null, pinFailuresSinceMint: 0 };
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
  }
}

interface RuntimeJson {
  generation: number;
  codes: PairingCodeRecord[];
  requests: StoredPairingRequest[];
  nodes: NodeRecord[];
  pin_budget: PinGuessBudgetSnapshot | null;
  pin_failures_since_mint: number;
}

export function runtimeStateToJson(state: RuntimeState, generation: number): RuntimeJson {
  return {
    generation,
    codes: [...state.codes.values()],
    requests: [...state.requests.values()],
    nodes: [...state.nodes.values()],
    pin_budget: state.pinBudget,
    pin_failures_since_mint: state.pinFailuresSinceMint,
  };
}

export function runtimeStateFromJson(json: unknown): { state: RuntimeState; generation: number } {
  const o = json as Partial<RuntimeJson> | null;
  if (typeof o !== 'object' || o === null || typeof o.generation !== 'number') {
    throw new PalyraError('state_corrupt', 'pairing runtime state is corrupt');
  }
  const state = emptyRuntimeState();
  for (const c of o.codes ?? []) state.codes.set(c.codeHash, c);
  for (const r of o.requests ?? []) state.requests.set(r.requestId, r);
  for (const n of o.nodes ?? []) state.nodes.set(n.deviceId, n);
  state.pinBudget = o.pin_budget ?? null;
  state.pinFailuresSinceMint = o.pin_failures_since_mint ?? 0;
  return { state, generation: o.generation };
}
