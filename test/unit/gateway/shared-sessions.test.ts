// The pairing sessions of the runtime document (shared by every gateway process on one state): what one process's
// registry starts survives the document's JSON form and verifies a hello in another process's registry, once; an
// older document without sessions loads with none; a malformed session is state_corrupt naming the field; expired
// sessions are prunable only after the retention.
import { describe, expect, it } from 'vitest';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment } from '../../../main/core/device-identity.js';
import { PalyraError } from '../../../main/core/errors.js';
import { buildDeviceHello } from '../../../main/core/handshake.js';
import { newPairingCodeRecord } from '../../../main/core/pairing-codes.js';
import { PairingSessionRegistry } from '../../../main/core/pairing-sessions.js';
import { applyRuntimeOp, emptyRuntimeState, runtimeStateFromJson, runtimeStateToJson } from '../../../main/gateway/runtime-state.js';
import { EXPIRED_SESSION_RETENTION_MS, sessionPrunable, snapshotOfStored, storedSession } from '../../../main/gateway/shared-sessions.js';

const NOW = 1_800_000_000_000;

function started() {
  const a = new PairingSessionRegistry();
  const { code, record } = newPairingCodeRecord({ method: 'qr', kind: 'desktop', issuedBy: 'test', now: NOW });
  const identity = DeviceIdentity.generate();
  const kx = generatePairingKeyExchange();
  const session = a.start({ clientKind: 'desktop', method: { kind: 'qr', proof: code }, now: NOW, deviceX25519Commitment: x25519Commitment(kx.publicKey) });
  const stored = storedSession(a.snapshot(session.sessionId)!, record, null);
  const { hello } = buildDeviceHello({ identity, session, proof: code, keyExchange: kx });
  return { a, code, record, identity, session, stored, hello };
}

const options = { now: NOW + 1, isDeviceRevoked: () => false };

describe('shared pairing sessions', () => {
  it('round-trips through the runtime document and verifies a hello in another registry, once', () => {
    const { session, stored, hello } = started();
    const state = emptyRuntimeState();
    applyRuntimeOp(state, { op: 'put_session', session: stored });
    const json = JSON.parse(JSON.stringify(runtimeStateToJson(state, 7))) as unknown;
    const loaded = runtimeStateFromJson(json);
    expect(loaded.generation).toBe(7);
    expect(loaded.state.sessions.get(session.sessionId)).toEqual(stored);

    const b = new PairingSessionRegistry();
    b.adopt(snapshotOfStored(loaded.state.sessions.get(session.sessionId)!));
    const verified = b.verify(hello, options);
    expect(verified.sessionId).toBe(session.sessionId);
    expect(verified.sasVerifiable).toBe(true);
    expect(() => b.verify(hello, options)).toThrow(expect.objectContaining({ code: 'pairing_session_not_found' }) as Error);

    applyRuntimeOp(state, { op: 'delete_session', session_id: session.sessionId });
    expect(state.sessions.size).toBe(0);
  });

  it('a hello for another session does not verify against an adopted one (its secret and challenge are its own)', () => {
    const first = started();
    const second = started();
    const b = new PairingSessionRegistry();
    b.adopt(snapshotOfStored(first.stored));
    const h = second.hello;
    const forged = {
      sessionId: first.session.sessionId,
      protocolVersion: h.protocolVersion,
      deviceId: h.deviceId,
      clientKind: h.clientKind,
      proof: first.code,
      deviceSigningPublic: h.deviceSigningPublic,
      deviceX25519Public: h.deviceX25519Public,
      challengeSignature: h.challengeSignature,
      transcriptMac: h.transcriptMac,
    };
    expect(() => b.verify(forged, options)).toThrow(PalyraError);
  });

  it('an older document without sessions loads with none; a malformed session is state_corrupt', () => {
    const { stored } = started();
    const state = emptyRuntimeState();
    const json = runtimeStateToJson(state, 1) as unknown as Record<string, unknown>;
    delete json.sessions;
    expect(runtimeStateFromJson(json).state.sessions.size).toBe(0);
    const { gatewaySecretB64: _dropped, ...broken } = stored;
    let error: unknown;
    try {
      runtimeStateFromJson({ ...json, sessions: [broken] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PalyraError);
    expect((error as PalyraError).code).toBe('state_corrupt');
    expect((error as PalyraError).message).toContain('gatewaySecretB64');
  });

  it('an expired session is pruned only after the retention', () => {
    const { stored } = started();
    expect(sessionPrunable(stored, stored.expiresAtUnixMs + 1)).toBe(false);
    expect(sessionPrunable(stored, stored.expiresAtUnixMs + EXPIRED_SESSION_RETENTION_MS)).toBe(false);
    expect(sessionPrunable(stored, stored.expiresAtUnixMs + EXPIRED_SESSION_RETENTION_MS + 1)).toBe(true);
  });
});
