/**
 * The seam between the in-memory session registry (which verifies hellos) and the pairing sessions every gateway
 * process on one state shares (RuntimeState.sessions, sealed with the store key). A session is written at Begin,
 * updated once by ExchangePinPake and deleted by the Complete that files the request; any replica can take it over
 * from the shared state (`snapshotOfStored` → PairingSessionRegistry.adopt).
 */

import { fromBase64, toBase64 } from '../core/bytes.js';
import type { PairingCodeRecord } from '../core/pairing-codes.js';
import type { PairingSessionSnapshot } from '../core/pairing-sessions.js';
import type { VerifierState } from '../core/spake2plus.js';
import type { StoredPairingSession } from './runtime-state.js';

/** Expired sessions stay this long (so a late Complete hears `pairing_session_expired`), then the next mutation drops them. */
export const EXPIRED_SESSION_RETENTION_MS = 60_000;

export function storedSession(
  snapshot: PairingSessionSnapshot,
  code: PairingCodeRecord,
  pake: { deviceId: string; source: string } | null,
): StoredPairingSession {
  const { session } = snapshot;
  return {
    sessionId: session.sessionId,
    protocolVersion: session.protocolVersion,
    clientKind: session.clientKind,
    method: session.method.kind,
    gatewayEphemeralPublicB64: toBase64(session.gatewayEphemeralPublic),
    gatewaySecretB64: toBase64(snapshot.gatewaySecret),
    challengeB64: toBase64(session.challenge),
    expiresAtUnixMs: session.expiresAtUnixMs,
    commitmentB64: snapshot.commitment === undefined ? null : toBase64(snapshot.commitment),
    proof: snapshot.proof,
    code,
    pake,
    exchange: null,
  };
}

export function snapshotOfStored(stored: StoredPairingSession): PairingSessionSnapshot {
  return {
    session: {
      sessionId: stored.sessionId,
      protocolVersion: stored.protocolVersion,
      clientKind: stored.clientKind,
      method: { kind: stored.method },
      gatewayEphemeralPublic: fromBase64(stored.gatewayEphemeralPublicB64),
      challenge: fromBase64(stored.challengeB64),
      expiresAtUnixMs: stored.expiresAtUnixMs,
    },
    gatewaySecret: fromBase64(stored.gatewaySecretB64),
    commitment: stored.commitmentB64 === null ? undefined : fromBase64(stored.commitmentB64),
    pakeDeviceId: stored.pake?.deviceId,
    proof: stored.proof,
  };
}

export function withExchange(stored: StoredPairingSession, state: VerifierState, at: number): StoredPairingSession {
  return { ...stored, exchange: { atUnixMs: at, expectedConfirmPB64: toBase64(state.expectedConfirmP), sharedKeyB64: toBase64(state.sharedKey) } };
}

export function verifierStateOf(stored: StoredPairingSession): VerifierState | null {
  if (stored.exchange === null) return null;
  return { expectedConfirmP: fromBase64(stored.exchange.expectedConfirmPB64), sharedKey: fromBase64(stored.exchange.sharedKeyB64) };
}

/** Whether the retention after expiry has passed (the pruning rule of every runtime mutation). */
export function sessionPrunable(stored: StoredPairingSession, now: number): boolean {
  return now - stored.expiresAtUnixMs > EXPIRED_SESSION_RETENTION_MS;
}
