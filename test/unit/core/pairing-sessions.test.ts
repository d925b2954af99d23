import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../../main/core/bytes.js';
import type { ClientKind } from '../../../main/core/client-kind.js';
import { DeviceIdentity, generatePairingKeyExchange, x25519Commitment, type PairingKeyExchange } from '../../../main/core/device-identity.js';
import { PalyraError, isPalyraError, type ErrorCode } from '../../../main/core/errors.js';
import {
  buildDeviceHello,
  deriveTranscriptMac,
  signaturePayload,
  transcriptContext,
  x25519SharedSecret,
  type DevicePairingHelloFields,
} from '../../../main/core/handshake.js';
import { newUlid } from '../../../main/core/ids.js';
import {
  DEFAULT_PAIRING_WINDOW_MS,
  MAX_ACTIVE_PAIRING_SESSIONS,
  PairingSessionRegistry,
  describePairingMethod,
  pairingMethodLabel,
  type PairingMethod,
  type PublicPairingSession,
  type VerifyPairingOptions,
} from '../../../main/core/pairing-sessions.js';

const NOW = 1_700_000_000_000;
const PIN: PairingMethod = { kind: 'pin', proof: '482913' };
const QR: PairingMethod = { kind: 'qr', proof: '7Q2M9VK3XH8RZP4D6WJ1TNC5GB' };
const notRevoked: VerifyPairingOptions = { now: NOW + 1, isDeviceRevoked: () => false };

function errorOf(fn: () => unknown): PalyraError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PalyraError) return error;
    throw error;
  }
  throw new Error('expected a PalyraError');
}

function codeOf(fn: () => unknown): ErrorCode {
  return errorOf(fn).code;
}

interface Pairing {
  registry: PairingSessionRegistry;
  session: PublicPairingSession;
  identity: DeviceIdentity;
  keyExchange: PairingKeyExchange;
  hello: DevicePairingHelloFields;
  sas: string;
}

function pair(options: { method?: PairingMethod; clientKind?: ClientKind; commit?: boolean; registry?: PairingSessionRegistry } = {}): Pairing {
  const registry = options.registry ?? new PairingSessionRegistry();
  const method = options.method ?? PIN;
  const identity = DeviceIdentity.generate();
  const keyExchange = generatePairingKeyExchange();
  const session = registry.start({
    clientKind: options.clientKind ?? 'node',
    method,
    now: NOW,
    ...(options.commit === false ? {} : { deviceX25519Commitment: x25519Commitment(keyExchange.publicKey) }),
  });
  const { hello, sas } = buildDeviceHello({ identity, session, proof: method.proof, keyExchange });
  return { registry, session, identity, keyExchange, hello, sas };
}

/** A hello whose device_id is chosen freely (a reference device's random ULID), otherwise honest. */
function helloWithDeviceId(p: Pairing, deviceId: string): DevicePairingHelloFields {
  const { session, identity, keyExchange } = p;
  const proof = p.hello.proof;
  const signature = identity.sign(signaturePayload({ ...session, deviceId, proof }));
  const transcriptMac = deriveTranscriptMac({
    sharedSecret: x25519SharedSecret(keyExchange.privateKey, session.gatewayEphemeralPublic),
    challenge: session.challenge,
    context: transcriptContext({ ...session, deviceId }),
  });
  return { ...p.hello, deviceId, challengeSignature: signature, transcriptMac };
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

describe('starting a pairing session', () => {
  it('answers the public session: ULID id, version 1, fresh key and challenge, expiry after the window', () => {
    const registry = new PairingSessionRegistry();
    const session = registry.start({ clientKind: 'desktop', method: QR, now: NOW });
    expect(session.sessionId).toMatch(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    expect(session.protocolVersion).toBe(1);
    expect(session.clientKind).toBe('desktop');
    expect(session.method).toEqual({ kind: 'qr' });
    expect(session.gatewayEphemeralPublic).toHaveLength(32);
    expect(session.challenge).toHaveLength(32);
    expect(session.expiresAtUnixMs).toBe(NOW + DEFAULT_PAIRING_WINDOW_MS);
    const other = registry.start({ clientKind: 'desktop', method: QR, now: NOW });
    expect(toHex(other.challenge)).not.toBe(toHex(session.challenge));
    expect(toHex(other.gatewayEphemeralPublic)).not.toBe(toHex(session.gatewayEphemeralPublic));
    expect(registry.activeCount).toBe(2);
  });

  it('accepts PINs of exactly 6 ASCII digits only', () => {
    const registry = new PairingSessionRegistry();
    const start = (proof: string) => () => registry.start({ clientKind: 'cli', method: { kind: 'pin', proof }, now: NOW });
    expect(start('000000')().method.kind).toBe('pin');
    for (const bad of ['12345', '1234567', '12345a', ' 12345', '１２３４５６', '']) {
      expect(codeOf(start(bad))).toBe('invalid_pairing_proof');
    }
  });

  it('accepts QR tokens of 16 to 128 bytes, counted in UTF-8 bytes', () => {
    const registry = new PairingSessionRegistry();
    const start = (proof: string) => () => registry.start({ clientKind: 'cli', method: { kind: 'qr', proof }, now: NOW });
    for (const good of ['a'.repeat(16), 'a'.repeat(128), 'é'.repeat(8), 'any chars: !@# ✓✓']) expect(start(good)().method.kind).toBe('qr');
    for (const bad of ['a'.repeat(15), 'a'.repeat(129), 'é'.repeat(65), 'é'.repeat(7)]) expect(codeOf(start(bad))).toBe('invalid_pairing_proof');
  });

  it('refuses a commitment that is not 32 bytes', () => {
    const registry = new PairingSessionRegistry();
    expect(codeOf(() => registry.start({ clientKind: 'node', method: PIN, now: NOW, deviceX25519Commitment: new Uint8Array(31) }))).toBe('invalid_argument');
    expect(registry.activeCount).toBe(0);
  });

  it('prunes an earlier session once its 1 ms window has passed', () => {
    const registry = new PairingSessionRegistry({ windowMs: 1 });
    registry.start({ clientKind: 'node', method: PIN, now: NOW });
    registry.start({ clientKind: 'node', method: PIN, now: NOW + 1_000 });
    expect(registry.activeCount).toBe(1);
  });

  it('refuses a start at capacity with the limit in message and details', () => {
    const registry = new PairingSessionRegistry({ maxActiveSessions: 3 });
    for (let i = 0; i < 3; i++) registry.start({ clientKind: 'node', method: PIN, now: NOW + i });
    const error = errorOf(() => registry.start({ clientKind: 'node', method: PIN, now: NOW + 3 }));
    expect(error.code).toBe('pairing_session_capacity_exceeded');
    expect(error.message).toBe('active pairing session capacity exceeded (limit: 3)');
    expect(error.details).toEqual({ limit: 3 });
  });

  it('holds at most 10 000 sessions by default', () => {
    expect(MAX_ACTIVE_PAIRING_SESSIONS).toBe(10_000);
    expect(new PairingSessionRegistry().toJSON().maxActiveSessions).toBe(10_000);
  });

  it('lets 32 starts one second apart through under the default limits', () => {
    const registry = new PairingSessionRegistry();
    for (let i = 0; i < 32; i++) registry.start({ clientKind: 'node', method: PIN, now: NOW + i * 1_000 });
    expect(registry.activeCount).toBe(32);
  });

  it('rate-limits starts in a sliding window: 2 per 30 s', () => {
    const registry = new PairingSessionRegistry({ startRateMax: 2, startRateWindowMs: 30_000 });
    const start = (seconds: number) => () => registry.start({ clientKind: 'node', method: PIN, now: NOW + seconds * 1_000 });
    start(0)();
    start(1)();
    const error = errorOf(start(2));
    expect(error.code).toBe('pairing_session_rate_limited');
    expect(error.message).toBe('pairing session start rate limit exceeded (max 2 per 30000 ms)');
    expect(error.details).toEqual({ max: 2, window_ms: 30_000 });
    expect(start(32)().sessionId).toHaveLength(26);
  });

  it('checks the rate limit before capacity, and capacity before the proof', () => {
    const rateLimited = new PairingSessionRegistry({ startRateMax: 1, maxActiveSessions: 1 });
    rateLimited.start({ clientKind: 'node', method: PIN, now: NOW });
    expect(codeOf(() => rateLimited.start({ clientKind: 'node', method: { kind: 'pin', proof: 'x' }, now: NOW + 1 }))).toBe(
      'pairing_session_rate_limited',
    );
    const full = new PairingSessionRegistry({ maxActiveSessions: 1 });
    full.start({ clientKind: 'node', method: PIN, now: NOW });
    expect(codeOf(() => full.start({ clientKind: 'node', method: { kind: 'pin', proof: 'x' }, now: NOW + 1 }))).toBe(
      'pairing_session_capacity_exceeded',
    );
  });

  it('counts only successful starts toward the rate limit', () => {
    const registry = new PairingSessionRegistry({ startRateMax: 1 });
    for (let i = 0; i < 5; i++) {
      expect(codeOf(() => registry.start({ clientKind: 'node', method: { kind: 'pin', proof: 'bad' }, now: NOW }))).toBe('invalid_pairing_proof');
    }
    expect(registry.start({ clientKind: 'node', method: PIN, now: NOW }).sessionId).toHaveLength(26);
  });

  it('clamps a zero rate maximum to 1 and a zero window to 1 ms', () => {
    const registry = new PairingSessionRegistry({ startRateMax: 0, startRateWindowMs: 0 });
    expect(registry.toJSON()).toMatchObject({ startRateMax: 1, startRateWindowMs: 1 });
    registry.start({ clientKind: 'node', method: PIN, now: NOW });
    expect(codeOf(() => registry.start({ clientKind: 'node', method: PIN, now: NOW }))).toBe('pairing_session_rate_limited');
    expect(registry.start({ clientKind: 'node', method: PIN, now: NOW + 1 }).sessionId).toHaveLength(26);
    registry.setStartRateLimit(0, 0);
    expect(registry.toJSON()).toMatchObject({ startRateMax: 1, startRateWindowMs: 1 });
  });

  it('hands out copies, so a caller cannot change the stored challenge', () => {
    const p = pair();
    p.registry.get(p.session.sessionId)!.challenge.fill(0);
    p.session.challenge.fill(0);
    expect(p.registry.verify(p.hello, notRevoked).deviceId).toBe(p.identity.deviceId);
  });
});

describe('secrets stay out of logs', () => {
  it('describes a PIN method by its code length and a QR method by its token length', () => {
    expect(describePairingMethod({ kind: 'pin', proof: '123456' })).toEqual({ kind: 'pin', codeLen: 6 });
    expect(describePairingMethod(QR)).toEqual({ kind: 'qr', tokenLen: 26 });
    expect(pairingMethodLabel({ kind: 'pin', proof: '123456' })).toBe('pin:******');
    expect(pairingMethodLabel(QR)).toBe('qr:7Q2M9V...');
  });

  it('never shows the proof or the gateway secret in a session, the registry or a proof error', () => {
    const registry = new PairingSessionRegistry();
    const pinSession = registry.start({ clientKind: 'node', method: { kind: 'pin', proof: '123456' }, now: NOW });
    const qrSession = registry.start({ clientKind: 'desktop', method: QR, now: NOW });
    const proofError = errorOf(() => registry.start({ clientKind: 'node', method: { kind: 'qr', proof: 'short-secret' }, now: NOW }));
    const outputs = [
      inspect(registry, { depth: 10, showHidden: true }),
      JSON.stringify(registry),
      inspect(pinSession, { depth: 10 }),
      inspect(qrSession, { depth: 10 }),
      JSON.stringify(proofError.details),
      proofError.message,
    ];
    for (const output of outputs) {
      expect(output).not.toContain('123456');
      expect(output).not.toContain(QR.proof);
      expect(output).not.toContain('short-secret');
    }
    expect(proofError.details).toEqual({ kind: 'qr', tokenLen: 12 });
  });
});

describe('verifying a hello', () => {
  it('pairs an honest device and returns the verified facts', () => {
    const p = pair({ clientKind: 'desktop', method: QR });
    const verified = p.registry.verify(p.hello, notRevoked);
    expect(verified.sessionId).toBe(p.session.sessionId);
    expect(verified.deviceId).toBe(p.identity.deviceId);
    expect(verified.clientKind).toBe('desktop');
    expect(verified.identityFingerprint).toBe(p.identity.fingerprint);
    expect(verified.signingPublicKeyHex).toBe(toHex(p.identity.signingPublicKey));
    expect(toHex(verified.deviceSigningPublic)).toBe(verified.signingPublicKeyHex);
    expect(toHex(verified.transcriptMac)).toBe(toHex(p.hello.transcriptMac));
    expect(verified.transcriptHashHex).toMatch(/^[0-9a-f]{64}$/);
    expect(verified.sas).toBe(p.sas);
    expect(verified.sasVerifiable).toBe(true);
  });

  it('is single use: the session is gone after success', () => {
    const p = pair();
    p.registry.verify(p.hello, notRevoked);
    expect(p.registry.activeCount).toBe(0);
    expect(codeOf(() => p.registry.verify(p.hello, notRevoked))).toBe('pairing_session_not_found');
  });

  it('marks the SAS unverifiable when the device made no commitment', () => {
    const p = pair({ commit: false });
    expect(p.registry.verify(p.hello, notRevoked).sasVerifiable).toBe(false);
  });

  it('answers version 0 with a mismatch {expected 1, got 0} and keeps the session', () => {
    const p = pair();
    const old = buildDeviceHello({ identity: p.identity, session: { ...p.session, protocolVersion: 0 }, proof: PIN.proof, keyExchange: p.keyExchange });
    const error = errorOf(() => p.registry.verify(old.hello, notRevoked));
    expect(error.code).toBe('pairing_version_mismatch');
    expect(error.message).toBe('pairing protocol version mismatch (expected 1, got 0)');
    expect(error.details).toEqual({ expected: 1, got: 0 });
    expect(p.registry.verify(p.hello, notRevoked).deviceId).toBe(p.identity.deviceId);
  });

  it('refuses another client kind and keeps the session', () => {
    const p = pair({ clientKind: 'node' });
    expect(codeOf(() => p.registry.verify({ ...p.hello, clientKind: 'cli' }, notRevoked))).toBe('pairing_client_kind_mismatch');
    expect(p.registry.activeCount).toBe(1);
  });

  it('refuses a wrong PIN and then treats a correct retry as an unknown session', () => {
    const p = pair();
    expect(codeOf(() => p.registry.verify({ ...p.hello, proof: '482914' }, notRevoked))).toBe('invalid_pairing_proof');
    expect(codeOf(() => p.registry.verify(p.hello, notRevoked))).toBe('pairing_session_not_found');
  });

  it('refuses one flipped signature bit, then the session is gone', () => {
    const p = pair();
    const tampered = { ...p.hello, challengeSignature: flipBit(p.hello.challengeSignature, 100) };
    expect(codeOf(() => p.registry.verify(tampered, notRevoked))).toBe('signature_verification_failed');
    expect(codeOf(() => p.registry.verify(p.hello, notRevoked))).toBe('pairing_session_not_found');
  });

  it('refuses one flipped MAC bit, then the session is gone', () => {
    const p = pair();
    const tampered = { ...p.hello, transcriptMac: flipBit(p.hello.transcriptMac, 0) };
    expect(codeOf(() => p.registry.verify(tampered, notRevoked))).toBe('transcript_verification_failed');
    expect(codeOf(() => p.registry.verify(p.hello, notRevoked))).toBe('pairing_session_not_found');
  });

  it('refuses a signature with S + L in place of S', () => {
    const p = pair();
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(p.hello.challengeSignature[i]!);
    const malleated = new Uint8Array(p.hello.challengeSignature);
    let sl = s + L;
    for (let i = 32; i < 64; i++) {
      malleated[i] = Number(sl & 0xffn);
      sl >>= 8n;
    }
    expect(codeOf(() => p.registry.verify({ ...p.hello, challengeSignature: malleated }, notRevoked))).toBe('signature_verification_failed');
    expect(p.registry.activeCount).toBe(0);
  });

  it('refuses a signing key that is not a valid point, or of small order', () => {
    for (const key of [new Uint8Array(32).fill(0xff), Uint8Array.from([1, ...new Uint8Array(31)]), new Uint8Array(31)]) {
      const p = pair();
      expect(codeOf(() => p.registry.verify({ ...p.hello, deviceSigningPublic: key }, notRevoked))).toBe('signature_verification_failed');
      expect(p.registry.activeCount).toBe(0);
    }
  });

  it('refuses a non-canonical device_id before looking at the session, and keeps it', () => {
    const p = pair();
    const error = errorOf(() => p.registry.verify({ ...p.hello, deviceId: p.hello.deviceId.toLowerCase() }, notRevoked));
    expect(error.code).toBe('invalid_canonical_id');
    expect(error.message).toMatch(/^invalid canonical device ID: /);
    expect(codeOf(() => p.registry.verify({ ...p.hello, deviceId: p.hello.deviceId, sessionId: 'nope' }, notRevoked))).toBe('pairing_session_not_found');
    expect(p.registry.verify(p.hello, notRevoked).deviceId).toBe(p.identity.deviceId);
  });

  it('refuses a revoked device and keeps the session', () => {
    const p = pair();
    const asked: string[] = [];
    const revoked = { now: NOW + 1, isDeviceRevoked: (id: string) => (asked.push(id), true) };
    expect(codeOf(() => p.registry.verify(p.hello, revoked))).toBe('device_revoked');
    expect(asked).toEqual([p.identity.deviceId]);
    expect(p.registry.activeCount).toBe(1);
  });

  it('reports an expired session as expired (not unknown) and removes it', () => {
    const p = pair();
    const later = { now: p.session.expiresAtUnixMs + 1, isDeviceRevoked: () => false };
    expect(codeOf(() => p.registry.verify(p.hello, later))).toBe('pairing_session_expired');
    expect(codeOf(() => p.registry.verify(p.hello, later))).toBe('pairing_session_not_found');
  });

  it('still accepts a hello at the exact expiry instant, and drops other expired sessions meanwhile', () => {
    const registry = new PairingSessionRegistry();
    const p = pair({ registry });
    registry.start({ clientKind: 'node', method: PIN, now: NOW - 10 });
    expect(registry.activeCount).toBe(2);
    expect(registry.verify(p.hello, { now: p.session.expiresAtUnixMs, isDeviceRevoked: () => false }).deviceId).toBe(p.identity.deviceId);
    expect(registry.activeCount).toBe(0);
  });

  it('refuses an X25519 key other than the committed one', () => {
    const p = pair();
    const swapped = buildDeviceHello({ identity: p.identity, session: p.session, proof: PIN.proof, keyExchange: generatePairingKeyExchange() });
    expect(codeOf(() => p.registry.verify(swapped.hello, notRevoked))).toBe('transcript_verification_failed');
    expect(p.registry.activeCount).toBe(0);
  });

  it('refuses a device_id not derived from the signing key unless legacy ids are allowed', () => {
    const p = pair();
    const legacyId = newUlid(NOW);
    const legacy = helloWithDeviceId(p, legacyId);
    const error = errorOf(() => p.registry.verify(legacy, notRevoked));
    expect(error.code).toBe('legacy_device_id_refused');
    expect(error.message).toContain('--allow-legacy-device-ids');
    expect(p.registry.activeCount).toBe(0);

    const q = pair();
    const verified = q.registry.verify(helloWithDeviceId(q, legacyId), { ...notRevoked, allowLegacyDeviceIds: true });
    expect(verified.deviceId).toBe(legacyId);
    expect(verified.identityFingerprint).toBe(q.identity.fingerprint);
  });

  it('refuses a low-order device X25519 key as a weak key exchange', () => {
    const p = pair({ commit: false });
    const weak = { ...p.hello, deviceX25519Public: new Uint8Array(32) };
    expect(codeOf(() => p.registry.verify(weak, notRevoked))).toBe('weak_key_exchange');
    expect(p.registry.activeCount).toBe(0);
  });

  it('refuses a hello for a removed session', () => {
    const p = pair();
    expect(p.registry.remove(p.session.sessionId)).toBe(true);
    expect(p.registry.get(p.session.sessionId)).toBeUndefined();
    expect(codeOf(() => p.registry.verify(p.hello, notRevoked))).toBe('pairing_session_not_found');
  });

  it('refuses any single flipped bit in the signing key, X25519 key, signature or MAC', () => {
    const fields = ['deviceSigningPublic', 'deviceX25519Public', 'challengeSignature', 'transcriptMac'] as const;
    const p = pair();
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.nat(), (field, n) => {
        const q = pair({ registry: p.registry });
        const bits = q.hello[field].length * 8;
        const tampered = { ...q.hello, [field]: flipBit(q.hello[field], n % bits) };
        try {
          q.registry.verify(tampered, notRevoked);
          return false;
        } catch (error) {
          return (
            isPalyraError(error) &&
            ['signature_verification_failed', 'transcript_verification_failed', 'legacy_device_id_refused', 'weak_key_exchange'].includes(error.code) &&
            q.registry.get(q.session.sessionId) === undefined
          );
        }
      }),
      { numRuns: 60 },
    );
  });

  it('refuses a hello whose signing key was swapped for another device\'s', () => {
    const p = pair();
    const forged = { ...p.hello, deviceSigningPublic: DeviceIdentity.generate().signingPublicKey };
    expect(codeOf(() => p.registry.verify(forged, notRevoked))).toBe('signature_verification_failed');
  });

  it('gives a MITM that swaps the unsigned X25519 key a different SAS on each leg', () => {
    // The MITM terminates TLS on both legs: it commits to its own key, relays the session, then swaps the key and MAC.
    const registry = new PairingSessionRegistry();
    const mitmKey = generatePairingKeyExchange();
    const session = registry.start({ clientKind: 'node', method: PIN, now: NOW, deviceX25519Commitment: x25519Commitment(mitmKey.publicKey) });
    const device = DeviceIdentity.generate();
    const deviceView = buildDeviceHello({ identity: device, session, proof: PIN.proof, keyExchange: generatePairingKeyExchange() });
    const wire: DevicePairingHelloFields = deviceView.hello;
    const relayed = {
      ...wire,
      deviceX25519Public: mitmKey.publicKey,
      transcriptMac: deriveTranscriptMac({
        sharedSecret: x25519SharedSecret(mitmKey.privateKey, session.gatewayEphemeralPublic),
        challenge: session.challenge,
        context: transcriptContext({ ...session, deviceId: device.deviceId }),
      }),
    };
    const gatewayView = registry.verify(relayed, notRevoked);
    expect(gatewayView.deviceId).toBe(device.deviceId);
    expect(gatewayView.sas).not.toBe(deviceView.sas);
  });
});
