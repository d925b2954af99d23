// Our PIN pairing v2 core vectors (spake2plus-palyra.json, generated from node:crypto scrypt and the independent
// BigInt SPAKE2+), reproduced by main/core: PIN hash, w0/w1/L, the context binding and one exchange at fixed x, y.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../main/core/bytes.js';
import { parseClientKind } from '../../main/core/client-kind.js';
import { pinPairingV2Proof } from '../../main/core/pin-pairing-v2.js';
import { pinPairingPakeContext } from '../../main/core/pake-context.js';
import { pinHashInput, pinPasswordHash, pinProverSecret, pinVerifier } from '../../main/core/pin-hash.js';
import {
  proverFinish,
  proverSharedPoints,
  proverStart,
  spake2plusKeySchedule,
  spake2plusTranscript,
  verifierFinish,
  verifierRespond,
} from '../../main/core/spake2plus.js';

interface PalyraCase {
  name: string;
  pin: string;
  salt: string;
  session_id: string;
  client_kind: string;
  device_id: string;
  gateway_ephemeral_public: string;
  device_x25519_commitment: string;
  ca_pin: string;
  x: string;
  y: string;
  pin_hash_input: string;
  w0s_w1s: string;
  w0: string;
  w1: string;
  L: string;
  context: string;
  id_prover: string;
  id_verifier: string;
  shareP: string;
  shareV: string;
  Z: string;
  V: string;
  TT: string;
  K_main: string;
  K_confirmP: string;
  K_confirmV: string;
  confirmV: string;
  confirmP: string;
  K_shared: string;
  hello_proof: string;
}

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'spake2plus-palyra.json');
const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: PalyraCase[] };

describe.each(cases)('PIN pairing v2 vector $name', (c) => {
  const salt = fromHex(c.salt);
  const ctx = pinPairingPakeContext({
    sessionId: c.session_id,
    clientKind: parseClientKind(c.client_kind),
    gatewayEphemeralPublic: fromHex(c.gateway_ephemeral_public),
    deviceX25519Commitment: fromHex(c.device_x25519_commitment),
    deviceId: c.device_id,
    caPin: c.ca_pin,
  });

  it('reproduces the PIN hash, w0, w1 and the gateway record', () => {
    expect(toHex(pinHashInput(c.pin))).toBe(c.pin_hash_input);
    expect(toHex(pinPasswordHash(c.pin, salt))).toBe(c.w0s_w1s);
    const secret = pinProverSecret(c.pin, salt);
    expect(toHex(secret.w0)).toBe(c.w0);
    expect(toHex(secret.w1)).toBe(c.w1);
    const stored = pinVerifier(c.pin, salt);
    expect(toHex(stored.salt)).toBe(c.salt);
    expect(toHex(stored.w0)).toBe(c.w0);
    expect(toHex(stored.L)).toBe(c.L);
  });

  it('reproduces Context, idProver and idVerifier', () => {
    expect(toHex(ctx.context)).toBe(c.context);
    expect(toHex(ctx.idProver)).toBe(c.id_prover);
    expect(toHex(ctx.idVerifier)).toBe(c.id_verifier);
  });

  it('reproduces the exchange at fixed x, y', () => {
    const secret = { w0: fromHex(c.w0), w1: fromHex(c.w1) };
    const x = fromHex(c.x);
    const { shareP, state } = proverStart(secret, x);
    expect(toHex(shareP)).toBe(c.shareP);
    const response = verifierRespond({ w0: fromHex(c.w0), L: fromHex(c.L) }, shareP, ctx, fromHex(c.y));
    expect(toHex(response.shareV)).toBe(c.shareV);
    expect(toHex(response.confirmV)).toBe(c.confirmV);
    const points = proverSharedPoints(secret, x, response.shareV);
    expect(toHex(points.Z)).toBe(c.Z);
    expect(toHex(points.V)).toBe(c.V);
    const tt = spake2plusTranscript(ctx, shareP, response.shareV, points, secret.w0);
    expect(toHex(tt)).toBe(c.TT);
    const keys = spake2plusKeySchedule(tt);
    expect(toHex(keys.K_main)).toBe(c.K_main);
    expect(toHex(keys.K_confirmP)).toBe(c.K_confirmP);
    expect(toHex(keys.K_confirmV)).toBe(c.K_confirmV);
    const prover = proverFinish(state, response.shareV, response.confirmV, ctx);
    expect(toHex(prover.confirmP)).toBe(c.confirmP);
    expect(toHex(prover.sharedKey)).toBe(c.K_shared);
    expect(toHex(verifierFinish(response.state, prover.confirmP))).toBe(c.K_shared);
    // What the hello then proves instead of the PIN: the string its challenge signature covers.
    expect(pinPairingV2Proof(prover.sharedKey)).toBe(c.hello_proof);
  });
});
