// A second SPAKE2+ (RFC 9383, P256-SHA256-HKDF-SHA256-HMAC-SHA256), written from the RFC text: plain BigInt P-256
// arithmetic in Jacobian coordinates (no @noble), node:crypto for SHA-256, HMAC and HKDF. It must not import from
// main/: agreement between the two on the RFC vectors and on random runs is what the tests prove. Not constant time;
// test use only.
import { createHash, createHmac, hkdfSync } from 'node:crypto';

// --- P-256 (SEC 2 / FIPS 186-4 D.1.2.3) --------------------------------------------------------------------------

export const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
export const ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const A = P - 3n;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
const GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n;
const GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n;

const mod = (a: bigint, m = P): bigint => {
  const r = a % m;
  return r < 0n ? r + m : r;
};

function powMod(base: bigint, exponent: bigint, m = P): bigint {
  let result = 1n;
  let b = mod(base, m);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

const inverse = (a: bigint): bigint => powMod(a, P - 2n);

/** Jacobian (X, Y, Z) with x = X/Z², y = Y/Z³; Z = 0 is the point at infinity. */
interface Jacobian {
  readonly X: bigint;
  readonly Y: bigint;
  readonly Z: bigint;
}

export interface Affine {
  readonly x: bigint;
  readonly y: bigint;
}

const INFINITY: Jacobian = { X: 1n, Y: 1n, Z: 0n };

function toJacobian(p: Affine): Jacobian {
  return { X: p.x, Y: p.y, Z: 1n };
}

/** undefined for the point at infinity. */
function toAffine(p: Jacobian): Affine | undefined {
  if (p.Z === 0n) return undefined;
  const zInv = inverse(p.Z);
  const zInv2 = (zInv * zInv) % P;
  return { x: mod(p.X * zInv2), y: mod(p.Y * zInv2 * zInv) };
}

// "dbl-2001-b" for a = -3 (Bernstein–Lange explicit formulas database).
function double(p: Jacobian): Jacobian {
  if (p.Z === 0n || p.Y === 0n) return INFINITY;
  const delta = mod(p.Z * p.Z);
  const gamma = mod(p.Y * p.Y);
  const beta = mod(p.X * gamma);
  const alpha = mod(3n * (p.X - delta) * (p.X + delta));
  const X3 = mod(alpha * alpha - 8n * beta);
  const Z3 = mod((p.Y + p.Z) ** 2n - gamma - delta);
  const Y3 = mod(alpha * (4n * beta - X3) - 8n * gamma * gamma);
  return { X: X3, Y: Y3, Z: Z3 };
}

// "add-2007-bl".
function add(p: Jacobian, q: Jacobian): Jacobian {
  if (p.Z === 0n) return q;
  if (q.Z === 0n) return p;
  const z1z1 = mod(p.Z * p.Z);
  const z2z2 = mod(q.Z * q.Z);
  const u1 = mod(p.X * z2z2);
  const u2 = mod(q.X * z1z1);
  const s1 = mod(p.Y * q.Z * z2z2);
  const s2 = mod(q.Y * p.Z * z1z1);
  if (u1 === u2) return s1 === s2 ? double(p) : INFINITY;
  const h = mod(u2 - u1);
  const i = mod(4n * h * h);
  const j = mod(h * i);
  const r = mod(2n * (s2 - s1));
  const v = mod(u1 * i);
  const X3 = mod(r * r - j - 2n * v);
  const Y3 = mod(r * (v - X3) - 2n * s1 * j);
  const Z3 = mod(((p.Z + q.Z) ** 2n - z1z1 - z2z2) * h);
  return { X: X3, Y: Y3, Z: Z3 };
}

function negate(p: Jacobian): Jacobian {
  return { X: p.X, Y: mod(-p.Y), Z: p.Z };
}

/** Left-to-right double and add. */
function multiply(p: Jacobian, k: bigint): Jacobian {
  let result = INFINITY;
  for (let bit = BigInt(k.toString(2).length) - 1n; bit >= 0n; bit--) {
    result = double(result);
    if ((k >> bit) & 1n) result = add(result, p);
  }
  return result;
}

const G = toJacobian({ x: GX, y: GY });

export function isOnCurve(p: Affine): boolean {
  return mod(p.y * p.y) === mod(p.x ** 3n + A * p.x + B);
}

// --- encodings (SEC1) --------------------------------------------------------------------------------------------

const be32 = (n: bigint): Buffer => Buffer.from(n.toString(16).padStart(64, '0'), 'hex');
const fromBe = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt(`0x${b.toString('hex')}`));

export function encodeUncompressed(p: Jacobian): Buffer {
  const a = toAffine(p);
  if (a === undefined) throw new Error('cannot encode the point at infinity');
  return Buffer.concat([Buffer.from([0x04]), be32(a.x), be32(a.y)]);
}

/** Strict: 65 bytes, 0x04, coordinates < p, on the curve (cofactor 1: every such point has order n). */
export function decodeUncompressed(bytes: Buffer): Jacobian | undefined {
  if (bytes.length !== 65 || bytes[0] !== 0x04) return undefined;
  const point = { x: fromBe(bytes.subarray(1, 33)), y: fromBe(bytes.subarray(33)) };
  if (point.x >= P || point.y >= P || !isOnCurve(point)) return undefined;
  return toJacobian(point);
}

/** SEC1 2.3.4 for 33-byte compressed points; P ≡ 3 (mod 4), so √a = a^((P+1)/4). */
export function decodeCompressed(bytes: Buffer): Jacobian {
  const prefix = bytes[0];
  if (bytes.length !== 33 || (prefix !== 0x02 && prefix !== 0x03)) throw new Error('not a compressed point');
  const x = fromBe(bytes.subarray(1));
  const rhs = mod(x ** 3n + A * x + B);
  let y = powMod(rhs, (P + 1n) / 4n);
  if (mod(y * y) !== rhs) throw new Error('x has no point on the curve');
  if ((y & 1n) !== BigInt(prefix & 1)) y = P - y;
  return toJacobian({ x, y });
}

// M and N, RFC 9383 §4 (P-256).
const M = decodeCompressed(Buffer.from('02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f', 'hex'));
const N = decodeCompressed(Buffer.from('03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49', 'hex'));
export const M_UNCOMPRESSED = encodeUncompressed(M);
export const N_UNCOMPRESSED = encodeUncompressed(N);

// --- protocol ----------------------------------------------------------------------------------------------------

export interface Context {
  context: Buffer;
  idProver: Buffer;
  idVerifier: Buffer;
}

/** len(s): 8-byte little-endian. */
function len(b: Buffer): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(b.length));
  return out;
}

export function computeW0W1(output: Buffer): { w0: Buffer; w1: Buffer } {
  const half = output.length / 2;
  return { w0: be32(fromBe(output.subarray(0, half)) % ORDER), w1: be32(fromBe(output.subarray(half)) % ORDER) };
}

export function registrationL(w1: Buffer): Buffer {
  return encodeUncompressed(multiply(G, fromBe(w1)));
}

export function share(w0: Buffer, scalar: Buffer, role: 'prover' | 'verifier'): Buffer {
  return encodeUncompressed(add(multiply(G, fromBe(scalar)), multiply(role === 'prover' ? M : N, fromBe(w0))));
}

function mustDecode(bytes: Buffer, what: string): Jacobian {
  const point = decodeUncompressed(bytes);
  if (point === undefined) throw new Error(`${what} is not a valid point`);
  return point;
}

export function proverZV(w0: Buffer, w1: Buffer, x: Buffer, shareV: Buffer): { Z: Buffer; V: Buffer } {
  const base = add(mustDecode(shareV, 'shareV'), negate(multiply(N, fromBe(w0))));
  return { Z: encodeUncompressed(multiply(base, fromBe(x))), V: encodeUncompressed(multiply(base, fromBe(w1))) };
}

export function verifierZV(w0: Buffer, L: Buffer, y: Buffer, shareP: Buffer): { Z: Buffer; V: Buffer } {
  const base = add(mustDecode(shareP, 'shareP'), negate(multiply(M, fromBe(w0))));
  return { Z: encodeUncompressed(multiply(base, fromBe(y))), V: encodeUncompressed(multiply(mustDecode(L, 'L'), fromBe(y))) };
}

export function transcript(ctx: Context, shareP: Buffer, shareV: Buffer, Z: Buffer, V: Buffer, w0: Buffer): Buffer {
  const fields = [ctx.context, ctx.idProver, ctx.idVerifier, M_UNCOMPRESSED, N_UNCOMPRESSED, shareP, shareV, Z, V, w0];
  return Buffer.concat(fields.flatMap((f) => [len(f), f]));
}

export interface Keys {
  K_main: Buffer;
  K_confirmP: Buffer;
  K_confirmV: Buffer;
  K_shared: Buffer;
}

export function keySchedule(tt: Buffer): Keys {
  const K_main = createHash('sha256').update(tt).digest();
  const confirmation = Buffer.from(hkdfSync('sha256', K_main, Buffer.alloc(0), 'ConfirmationKeys', 64));
  return {
    K_main,
    K_confirmP: confirmation.subarray(0, 32),
    K_confirmV: confirmation.subarray(32),
    K_shared: Buffer.from(hkdfSync('sha256', K_main, Buffer.alloc(0), 'SharedKey', 32)),
  };
}

export function mac(key: Buffer, message: Buffer): Buffer {
  return createHmac('sha256', key).update(message).digest();
}

export interface Run {
  L: Buffer;
  shareP: Buffer;
  shareV: Buffer;
  Z: Buffer;
  V: Buffer;
  TT: Buffer;
  keys: Keys;
  confirmP: Buffer;
  confirmV: Buffer;
}

/** One honest exchange at fixed randomness, every intermediate value returned. */
export function run(ctx: Context, w0: Buffer, w1: Buffer, x: Buffer, y: Buffer): Run {
  const L = registrationL(w1);
  const shareP = share(w0, x, 'prover');
  const shareV = share(w0, y, 'verifier');
  const prover = proverZV(w0, w1, x, shareV);
  const verifier = verifierZV(w0, L, y, shareP);
  if (!prover.Z.equals(verifier.Z) || !prover.V.equals(verifier.V)) throw new Error('independent SPAKE2+: Z/V disagree');
  const TT = transcript(ctx, shareP, shareV, prover.Z, prover.V, w0);
  const keys = keySchedule(TT);
  return { L, shareP, shareV, ...prover, TT, keys, confirmP: mac(keys.K_confirmP, shareV), confirmV: mac(keys.K_confirmV, shareP) };
}
