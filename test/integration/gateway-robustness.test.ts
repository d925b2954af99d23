// Malformed and oversized requests sent to the gateway with a raw HTTP/2 client (node:http2 over TLS, ALPN h2):
// each gets a gRPC error status, never a crash, and the gateway keeps serving valid calls afterwards.
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../main/gateway/gateway.js';
import { NODE_RPC_MAX_MESSAGE_BYTES } from '../../main/rpc/node-service.js';
import { GATEWAY_TLS_SERVER_NAME } from '../../main/rpc/tls-client.js';
import { startGateway } from '../helpers/gateway.js';
import { anonymousClient, beginRequest, mintQr, newRawDevice, ok, refused, rpc } from '../helpers/raw-pairing.js';

const SERVICE = '/palyra.node.v1.NodeService';
/** Bound on one raw exchange. */
const EXCHANGE_TIMEOUT_MS = 15_000;

let gateway: Gateway;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const g = await startGateway();
  gateway = g.gateway;
  cleanup = g.cleanup;
});

afterAll(async () => {
  await cleanup();
});

/** A gRPC length-prefixed message: compressed flag, 4-byte big-endian length, payload. */
function grpcFrame(payload: Uint8Array, o: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const header = Buffer.alloc(5);
  header[0] = o.compressed === true ? 1 : 0;
  header.writeUInt32BE(o.declaredLength ?? payload.length, 1);
  return Buffer.concat([header, payload]);
}

interface RawExchange {
  /** HTTP :status, or null if the stream died before headers. */
  httpStatus: number | null;
  /** grpc-status from the trailers (or from trailers-only headers), null if none arrived. */
  grpcStatus: number | null;
  grpcMessage: string | null;
  /** A stream/session error (e.g. a reset), if the exchange ended that way. */
  error: string | null;
}

/** One POST to `path` with `body`, over a fresh HTTP/2 session with the gateway (TLS, CA-verified, no client cert). */
function rawPost(path: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const session = http2.connect(`https://${gateway.listen}`, { ca: gateway.caCertificatePem, servername: GATEWAY_TLS_SERVER_NAME });
    const result: RawExchange = { httpStatus: null, grpcStatus: null, grpcMessage: null, error: null };
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      result.error ??= 'timeout';
      finish();
    }, EXCHANGE_TIMEOUT_MS);
    session.on('error', (e) => {
      result.error ??= e.message;
      finish();
    });
    const readStatus = (h: http2.IncomingHttpHeaders): void => {
      const status = h['grpc-status'];
      if (typeof status === 'string') result.grpcStatus = Number(status);
      const message = h['grpc-message'];
      if (typeof message === 'string') result.grpcMessage = decodeURIComponent(message);
    };
    const stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    stream.on('response', (h) => {
      result.httpStatus = Number(h[':status']);
      readStatus(h);
    });
    stream.on('trailers', readStatus);
    stream.on('data', () => undefined);
    stream.on('error', (e) => {
      result.error ??= e.message;
    });
    stream.on('close', finish);
    // A peer may refuse the body part-way through (flow control, reset): write errors end up on the stream.
    stream.end(body);
  });
}

async function gatewayStillServes(): Promise<void> {
  const client = anonymousClient(gateway);
  try {
    const device = await newRawDevice();
    const token = await mintQr(gateway);
    const begin = await ok(rpc.begin(client, beginRequest(device, { qr: token })));
    expect(begin.session_id).toHaveLength(26);
  } finally {
    client.close();
  }
}

describe('gateway robustness against malformed gRPC traffic', () => {
  const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x1a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);

  it.each([
    ['CompletePairingSession', 'garbage protobuf', grpcFrame(garbage)],
    ['BeginPairingSession', 'garbage protobuf', grpcFrame(garbage)],
    ['GetPairingRequestStatus', 'a string field running past the end (decoded leniently, then refused by validation)', grpcFrame(Buffer.from([0x12, 0x7f, 0x41]))],
    ['CompletePairingSession', 'a frame declaring more bytes than sent', grpcFrame(Buffer.from([0x08, 0x01]), { declaredLength: 1000 })],
    ['CompletePairingSession', 'a compressed frame without grpc-encoding', grpcFrame(garbage, { compressed: true })],
    ['CompletePairingSession', 'a truncated frame header', Buffer.from([0x00, 0x00])],
    ['RegisterNode', 'garbage protobuf without a client certificate', grpcFrame(garbage)],
  ])('%s with %s → an error status, never a crash', async (method, _what, body) => {
    const exchange = await rawPost(`${SERVICE}/${method}`, body);
    expect(exchange.error === null || exchange.grpcStatus !== null, JSON.stringify(exchange)).toBe(true);
    expect(exchange.grpcStatus, JSON.stringify(exchange)).not.toBeNull();
    expect(exchange.grpcStatus).not.toBe(grpc.status.OK);
    await gatewayStillServes();
  });

  it('an unknown method → UNIMPLEMENTED', async () => {
    const exchange = await rawPost(`${SERVICE}/DropAllTables`, grpcFrame(Buffer.alloc(0)));
    expect(exchange.grpcStatus).toBe(grpc.status.UNIMPLEMENTED);
    await gatewayStillServes();
  });

  it('a message over 4 MiB → RESOURCE_EXHAUSTED (raw frame)', async () => {
    const payload = Buffer.alloc(NODE_RPC_MAX_MESSAGE_BYTES + 1024, 0x41);
    // Field 2 (session_id), length-delimited, so the bytes would even parse if they were let in.
    const varint = (n: number): number[] => {
      const out: number[] = [];
      while (n > 0x7f) {
        out.push((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      out.push(n);
      return out;
    };
    const message = Buffer.concat([Buffer.from([0x12, ...varint(payload.length)]), payload]);
    const exchange = await rawPost(`${SERVICE}/CompletePairingSession`, grpcFrame(message));
    expect(exchange.grpcStatus, JSON.stringify(exchange)).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await gatewayStillServes();
  });

  it('a message over 4 MiB from a gRPC client with its own send limit lifted → RESOURCE_EXHAUSTED', async () => {
    const client = anonymousClient(gateway, { 'grpc.max_send_message_length': -1 });
    try {
      const device = await newRawDevice();
      const failure = await refused(rpc.begin(client, beginRequest(device, { qr: 'Q'.repeat(NODE_RPC_MAX_MESSAGE_BYTES + 1) })));
      expect(failure.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      client.close();
    }
    await gatewayStillServes();
  });

  it('many malformed calls in parallel leave the gateway serving', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rawPost(`${SERVICE}/CompletePairingSession`, grpcFrame(Buffer.from(garbage.subarray(0, 1 + (i % garbage.length)))))));
    for (const r of results) {
      expect(r.grpcStatus, JSON.stringify(r)).not.toBeNull();
      expect(r.grpcStatus).not.toBe(grpc.status.OK);
    }
    await gatewayStillServes();
  });
});
