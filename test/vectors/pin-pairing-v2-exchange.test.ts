// Whole-exchange PIN pairing v2 vectors (pin-pairing-v2-exchange.json, docs/PROTOCOL.md 5b.7): every request and
// response of one pairing at fixed randomness, as protobuf bytes, with the intermediate values. Regenerated here
// from the inputs through our code (pin-pairing-v2-exchange.ts) and compared byte for byte; then checked without
// our code: the SPAKE2+ part by the independent BigInt implementation, the password hash by node:crypto's scrypt,
// the hello by the independent handshake implementation, and every message by a protobuf reader written from the
// field tables of PROTOCOL.md 4.1 / 5b.1 (not from the .proto).
//
// Regenerate (only when the protocol changes on purpose): PALYRA_WRITE_VECTORS=1 npx vitest run --project node
// test/vectors/pin-pairing-v2-exchange.test.ts
import { createHash, scryptSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../main/core/bytes.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { DeviceIdentity } from '../../main/core/device-identity.js';
import { generateP256KeyPair } from '../../main/core/x509-keys.js';
import { buildExchange, type ExchangeInputs, type ExchangeVectors, type WireMessage } from './pin-pairing-v2-exchange.js';
import * as handshake from './independent-impl.js';
import * as spake from './spake2plus-independent.js';

interface VectorFile extends ExchangeVectors {
  description: string;
  inputs: ExchangeInputs;
}

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'pin-pairing-v2-exchange.json');

const DESCRIPTION =
  'PIN pairing v2 (docs/PROTOCOL.md 5b), one whole exchange at fixed randomness: inputs (keys, the SPAKE2+ scalars x and y, ' +
  'the PIN as typed, the salt, the session, a CA key and a CSR), the derived values, and every request and response as ' +
  'protobuf bytes in order: BeginPinPairingSession, ExchangePinPake, CompletePairingSession (pake_confirm_p = field 28), ' +
  'GetPairingRequestStatus while pending (the approved answer carries the issued certificate and is not part of the vector). ' +
  'Bytes are lowercase hex; ca_pin is base64url; hello_proof is the ASCII string the challenge signature covers in place of the PIN. ' +
  'Checked by test/vectors/pin-pairing-v2-exchange.test.ts.';

/** The fixed inputs (only used to write the file the first time). */
async function initialInputs(): Promise<ExchangeInputs> {
  const seed = '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb';
  const identity = DeviceIdentity.fromSeed(Buffer.from(seed, 'hex'));
  const csr = await createCertificateSigningRequest({ keys: await generateP256KeyPair(), deviceId: identity.deviceId });
  return {
    pin_as_typed: '655 376',
    pake_salt: '000102030405060708090a0b0c0d0e0f',
    device_ed25519_seed: seed,
    device_x25519_private: '1fe174772e43783f12d8299b5ad3f77145c79b00f6e79caf2ad19a2432d031d8',
    gateway_x25519_private: '285935415e927405713ebffe5a2665a71980bb153ecb2b4f0b76afbbbeac28a5',
    x: '30ccee41fcf898323e824108dce439cad266dac3647e2e637dc219cd022ed35d',
    y: '9abb5f26348d5a618705a815378032adaee8a5f0f69a0ec8f0b20322c3324a33',
    session_id: '01JF3N9X7QKZ2V5M8R4T6W0YHC',
    challenge: 'd914d6c64bf54015d73245eaa005f598fed74f3a800a207a8765fc4476a2fd96',
    client_kind: 'node',
    device_name: 'Kitchen sensor',
    gateway_name: 'Vector gateway',
    session_expires_at_unix_ms: 1_767_225_900_000,
    ca_p256_private: 'c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721',
    tls_csr_der: toHex(csr),
    status_wait_ms: 25_000,
    approval_id: '01JF3NA4Q8ZK7V2M5R9T3W6XYB',
    request_expires_at_unix_ms: 1_767_312_000_000,
  };
}

if (process.env.PALYRA_WRITE_VECTORS === '1') {
  const inputs = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as VectorFile).inputs : await initialInputs();
  const built = await buildExchange(inputs);
  writeFileSync(file, `${JSON.stringify({ description: DESCRIPTION, inputs, ...built }, null, 2)}\n`);
}

const vectors = JSON.parse(readFileSync(file, 'utf8')) as VectorFile;
const { inputs, derived } = vectors;
const buf = (h: string): Buffer => Buffer.from(h, 'hex');
const message = (name: string): WireMessage => {
  const found = vectors.messages.find((m) => m.message === name);
  if (found === undefined) throw new Error(`no ${name} in the vectors`);
  return found;
};

describe('PIN pairing v2 whole-exchange vectors: our code', () => {
  it('regenerates every derived value and every message byte for byte from the inputs', async () => {
    const built = await buildExchange(inputs);
    expect(built.derived).toEqual(derived);
    expect(built.messages.map((m) => m.message)).toEqual([
      'BeginPinPairingSessionRequest',
      'BeginPinPairingSessionResponse',
      'ExchangePinPakeRequest',
      'ExchangePinPakeResponse',
      'CompletePairingSessionRequest',
      'CompletePairingSessionResponse',
      'GetPairingRequestStatusRequest',
      'GetPairingRequestStatusResponse',
    ]);
    for (const [i, m] of built.messages.entries()) {
      expect(m.protobuf_hex, m.message).toBe(vectors.messages[i]!.protobuf_hex);
      expect(m.fields, m.message).toEqual(vectors.messages[i]!.fields);
    }
    expect(vectors.description).toBe(DESCRIPTION);
  });

  it('changes with the randomness: another y is another exchange with other keys', async () => {
    const other = await buildExchange({ ...inputs, y: inputs.x });
    expect(other.derived.K_shared).not.toBe(derived.K_shared);
    expect(other.messages[3]!.protobuf_hex).not.toBe(vectors.messages[3]!.protobuf_hex);
  });
});

describe('PIN pairing v2 whole-exchange vectors: without our code', () => {
  const ctx = { context: buf(derived.context!), idProver: buf(derived.id_prover!), idVerifier: buf(derived.id_verifier!) };

  it('the password hash: scrypt(N=32768, r=8, p=1, 80) of the PIN input with the salt, reduced into w0, w1', () => {
    expect(derived.pin).toBe(inputs.pin_as_typed.replace(/[\s-]/gu, ''));
    const output = scryptSync(buf(derived.pin_hash_input!), buf(inputs.pake_salt), 80, { N: 32_768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    expect(output.toString('hex')).toBe(derived.w0s_w1s);
    const { w0, w1 } = spake.computeW0W1(output);
    expect(w0.toString('hex')).toBe(derived.w0);
    expect(w1.toString('hex')).toBe(derived.w1);
  });

  it('the SPAKE2+ exchange: L, X, Y, Z, V, TT, the keys and both confirmations (independent BigInt SPAKE2+)', () => {
    const run = spake.run(ctx, buf(derived.w0!), buf(derived.w1!), buf(inputs.x), buf(inputs.y));
    expect(run.L.toString('hex')).toBe(derived.L);
    expect(run.shareP.toString('hex')).toBe(derived.X);
    expect(run.shareV.toString('hex')).toBe(derived.Y);
    expect(run.Z.toString('hex')).toBe(derived.Z);
    expect(run.V.toString('hex')).toBe(derived.V);
    expect(run.TT.toString('hex')).toBe(derived.TT);
    expect(run.keys.K_main.toString('hex')).toBe(derived.K_main);
    expect(run.keys.K_confirmP.toString('hex')).toBe(derived.K_confirmP);
    expect(run.keys.K_confirmV.toString('hex')).toBe(derived.K_confirmV);
    expect(run.keys.K_shared.toString('hex')).toBe(derived.K_shared);
    expect(run.confirmP.toString('hex')).toBe(derived.confirmP);
    expect(run.confirmV.toString('hex')).toBe(derived.confirmV);
    expect(derived.hello_proof).toBe(`pake-v2:${derived.K_shared}`);
  });

  it('the binding: Context, idProver, idVerifier from the session, the keys, the device id and the CA pin', () => {
    const len = (b: Buffer): Buffer => {
      const out = Buffer.alloc(8);
      out.writeBigUInt64LE(BigInt(b.length));
      return out;
    };
    const parts = [Buffer.from('palyra-pin-pairing-v2'), Buffer.from(inputs.session_id), Buffer.from(inputs.client_kind), buf(derived.gateway_ephemeral_public!), buf(derived.device_x25519_commitment!)];
    expect(Buffer.concat(parts.flatMap((p) => [len(p), p])).toString('hex')).toBe(derived.context);
    expect(Buffer.from(derived.device_id!).toString('hex')).toBe(derived.id_prover);
    const pinRaw = createHash('sha256').update(buf(derived.ca_spki_der!)).digest();
    expect(pinRaw.toString('hex')).toBe(derived.id_verifier);
    expect(pinRaw.toString('base64url')).toBe(derived.ca_pin);
  });

  it('the hello: identity, commitment, signature over the proof string, transcript MAC, SAS, CSR binding (independent handshake)', () => {
    const seed = buf(inputs.device_ed25519_seed);
    const pub = handshake.ed25519Public(seed);
    expect(pub.toString('hex')).toBe(derived.device_ed25519_public);
    expect(handshake.deviceId(pub)).toBe(derived.device_id);
    expect(handshake.fingerprint(pub)).toBe(derived.identity_fingerprint);
    const devicePub = handshake.x25519Public(buf(inputs.device_x25519_private));
    expect(devicePub.toString('hex')).toBe(derived.device_x25519_public);
    expect(handshake.commitment(devicePub).toString('hex')).toBe(derived.device_x25519_commitment);
    expect(handshake.x25519Public(buf(inputs.gateway_x25519_private)).toString('hex')).toBe(derived.gateway_ephemeral_public);
    const t = {
      protocolVersion: 1,
      sessionId: inputs.session_id,
      challenge: buf(inputs.challenge),
      gatewayEphemeralPublic: buf(derived.gateway_ephemeral_public!),
      deviceId: derived.device_id!,
      clientKind: inputs.client_kind,
      proof: derived.hello_proof!,
    };
    expect(handshake.signaturePayload(t).toString('hex')).toBe(derived.signature_payload);
    expect(handshake.ed25519Sign(seed, handshake.signaturePayload(t)).toString('hex')).toBe(derived.challenge_signature);
    const shared = handshake.x25519Shared(buf(inputs.gateway_x25519_private), devicePub);
    expect(shared.toString('hex')).toBe(derived.x25519_shared_secret);
    const context = handshake.transcriptContext(t);
    expect(context.toString('hex')).toBe(derived.transcript_context);
    const mac = handshake.transcriptMac(shared, buf(inputs.challenge), context);
    expect(mac.toString('hex')).toBe(derived.transcript_mac);
    expect(handshake.transcriptHash(mac).toString('hex')).toBe(derived.transcript_hash);
    expect(handshake.sas(mac)).toBe(derived.sas);
    const binding = handshake.csrBindingPayload(inputs.session_id, buf(inputs.tls_csr_der));
    expect(binding.toString('hex')).toBe(derived.csr_binding_payload);
    expect(handshake.ed25519Sign(seed, binding).toString('hex')).toBe(derived.tls_csr_signature);
  });

  // Field numbers and types transcribed from PROTOCOL.md 4.1 and 5b.1.
  type Kind = 'uint' | 'bool' | 'string' | 'bytes' | 'id';
  const FIELDS: Record<string, Record<string, [number, Kind]>> = {
    BeginPinPairingSessionRequest: { v: [1, 'uint'], client_kind: [2, 'string'], device_id: [3, 'id'], device_x25519_commitment: [4, 'bytes'] },
    BeginPinPairingSessionResponse: {
      v: [1, 'uint'],
      session_id: [2, 'string'],
      client_kind: [3, 'string'],
      gateway_ephemeral_public: [4, 'bytes'],
      challenge: [5, 'bytes'],
      expires_at_unix_ms: [6, 'uint'],
      gateway_name: [7, 'string'],
      pake_suite: [8, 'string'],
      pake_salt: [9, 'bytes'],
    },
    ExchangePinPakeRequest: { v: [1, 'uint'], session_id: [2, 'string'], pake_share_p: [3, 'bytes'] },
    ExchangePinPakeResponse: { v: [1, 'uint'], pake_share_v: [2, 'bytes'], pake_confirm_v: [3, 'bytes'] },
    CompletePairingSessionRequest: {
      v: [1, 'uint'],
      session_id: [2, 'string'],
      device_id: [3, 'id'],
      client_kind: [4, 'string'],
      proof: [5, 'string'],
      device_signing_public: [6, 'bytes'],
      device_x25519_public: [7, 'bytes'],
      challenge_signature: [8, 'bytes'],
      transcript_mac: [9, 'bytes'],
      tls_csr_der: [25, 'bytes'],
      tls_csr_signature: [26, 'bytes'],
      device_name: [27, 'string'],
      pake_confirm_p: [28, 'bytes'],
    },
    CompletePairingSessionResponse: {
      v: [1, 'uint'],
      paired: [2, 'bool'],
      reason: [3, 'string'],
      identity_fingerprint: [4, 'string'],
      transcript_hash: [5, 'string'],
      mtls_client_certificate_pem: [6, 'string'],
      mtls_client_private_key_pem: [7, 'string'],
      gateway_ca_certificate_pem: [8, 'string'],
      cert_expires_at_unix_ms: [9, 'uint'],
    },
    GetPairingRequestStatusRequest: { v: [1, 'uint'], session_id: [2, 'string'], device_id: [3, 'id'], wait_ms: [25, 'uint'] },
    GetPairingRequestStatusResponse: {
      v: [1, 'uint'],
      status: [2, 'string'],
      reason: [3, 'string'],
      paired: [4, 'bool'],
      approval_id: [5, 'string'],
      identity_fingerprint: [6, 'string'],
      transcript_hash: [7, 'string'],
      mtls_client_certificate_pem: [8, 'string'],
      mtls_client_private_key_pem: [9, 'string'],
      gateway_ca_certificate_pem: [10, 'string'],
      cert_expires_at_unix_ms: [11, 'uint'],
      sas: [25, 'string'],
      request_expires_at_unix_ms: [26, 'uint'],
    },
  };

  /** A protobuf reader for the two wire types these messages use: (field number, varint | bytes) in wire order. */
  function readFields(bytes: Buffer): { field: number; value: bigint | Buffer }[] {
    const out: { field: number; value: bigint | Buffer }[] = [];
    let i = 0;
    const varint = (): bigint => {
      let result = 0n;
      for (let shift = 0n; ; shift += 7n) {
        const b = bytes[i++];
        if (b === undefined) throw new Error('truncated varint');
        result |= BigInt(b & 0x7f) << shift;
        if ((b & 0x80) === 0) return result;
      }
    };
    while (i < bytes.length) {
      const tag = varint();
      const field = Number(tag >> 3n);
      const wire = Number(tag & 7n);
      if (wire === 0) out.push({ field, value: varint() });
      else if (wire === 2) {
        const n = Number(varint());
        out.push({ field, value: bytes.subarray(i, i + n) });
        i += n;
      } else throw new Error(`unexpected wire type ${wire}`);
    }
    return out;
  }

  /**
   * The value a field has on the wire, or undefined when it is not set. Our encoder (protobufjs, through grpc-js) writes
   * every field it was given, defaults included (`proof: ""` is `2a 00`, `paired: false` is `10 00`): a decoder treats
   * an explicit default like an absent field, but the bytes of these vectors are exactly what our code sends.
   */
  function expected(kind: Kind, value: unknown): bigint | Buffer | undefined {
    if (value === undefined) return undefined;
    if (kind === 'uint') return BigInt(value as number | string);
    if (kind === 'bool') return value === true ? 1n : 0n;
    if (kind === 'string') return Buffer.from(value as string);
    if (kind === 'bytes') return buf(value as string);
    const ulid = (value as { ulid: string }).ulid;
    return Buffer.concat([Buffer.from([0x0a, ulid.length]), Buffer.from(ulid)]);
  }

  it.each(vectors.messages.map((m) => [m.message, m] as const))('%s: the bytes are exactly the documented fields, in field order', (name, m) => {
    const table = FIELDS[name]!;
    const wire = readFields(buf(m.protobuf_hex));
    expect(wire.map((f) => f.field)).toEqual([...wire.map((f) => f.field)].sort((a, b) => a - b));
    expect(new Set(wire.map((f) => f.field)).size).toBe(wire.length);
    const want = Object.entries(table)
      .map(([field, [number, kind]]) => ({ field: number, value: expected(kind, m.fields[field]) }))
      .filter((f) => f.value !== undefined);
    expect(wire.map((f) => ({ field: f.field, value: typeof f.value === 'bigint' ? f.value.toString() : f.value.toString('hex') }))).toEqual(
      want.map((f) => ({ field: f.field, value: typeof f.value === 'bigint' ? f.value.toString() : (f.value as Buffer).toString('hex') })),
    );
    for (const key of Object.keys(m.fields)) expect(Object.keys(table), `${name}.${key} documented`).toContain(key);
  });

  it('carries the values the protocol says: suite, salt, shares, confirmations, empty proof, confirmed request', () => {
    expect(message('BeginPinPairingSessionResponse').fields).toMatchObject({
      pake_suite: 'P256-SHA256-HKDF-SHA256-HMAC-SHA256',
      pake_salt: inputs.pake_salt,
      session_id: inputs.session_id,
      challenge: inputs.challenge,
      gateway_ephemeral_public: derived.gateway_ephemeral_public,
      gateway_name: inputs.gateway_name,
    });
    expect(message('ExchangePinPakeRequest').fields).toMatchObject({ pake_share_p: derived.X });
    expect(message('ExchangePinPakeResponse').fields).toMatchObject({ pake_share_v: derived.Y, pake_confirm_v: derived.confirmV });
    expect(message('CompletePairingSessionRequest').fields).toMatchObject({
      proof: '',
      pake_confirm_p: derived.confirmP,
      challenge_signature: derived.challenge_signature,
      transcript_mac: derived.transcript_mac,
      tls_csr_der: inputs.tls_csr_der,
      tls_csr_signature: derived.tls_csr_signature,
      device_name: inputs.device_name,
    });
    expect(message('CompletePairingSessionResponse').fields).toMatchObject({ paired: false, reason: 'pending_approval', transcript_hash: derived.transcript_hash });
    expect(message('GetPairingRequestStatusResponse').fields).toMatchObject({ status: 'pending_approval', sas: derived.sas, mtls_client_certificate_pem: '' });
  });
});
