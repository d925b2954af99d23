import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  NODE_RPC_MAX_MESSAGE_BYTES,
  NODE_RPC_MESSAGE_SIZE_OPTIONS,
  NODE_RPC_PROTO_ROOT,
  NodeService,
  NodeServiceClient,
  locateProtoRoot,
} from '../../../main/rpc/node-service.js';
import type {
  BeginPairingSessionResponse__Output,
  ExecuteCapabilityResponse__Output,
  NodeEventRequest__Output,
  NodeEventResponse__Output,
  NodeServiceHandlers,
} from '../../../main/rpc/node-service.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DEVICE_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

type TestHandlers = Partial<Pick<NodeServiceHandlers, 'BeginPairingSession' | 'StreamNodeEvents' | 'ExecuteCapability'>>;

let server: grpc.Server | undefined;
let client: NodeServiceClient | undefined;

async function startServer(handlers: TestHandlers, options: grpc.ServerOptions = {}): Promise<string> {
  const s = new grpc.Server(options);
  s.addService(NodeService, handlers);
  server = s;
  const port = await new Promise<number>((resolve, reject) => {
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error === null) resolve(boundPort);
      else reject(error);
    });
  });
  return `127.0.0.1:${port}`;
}

function connect(address: string, options: grpc.ChannelOptions = {}): NodeServiceClient {
  client = new NodeServiceClient(address, grpc.credentials.createInsecure(), options);
  return client;
}

afterEach(() => {
  client?.close();
  client = undefined;
  server?.forceShutdown();
  server = undefined;
});

describe('NodeService over a real gRPC connection', () => {
  it('answers a BeginPairingSession through the typed client with the handler response decoded', async () => {
    const address = await startServer({
      BeginPairingSession(call, callback) {
        const method = call.request.method;
        callback(null, {
          v: Math.max(call.request.v, 1),
          session_id: '01J00000000000000000000000',
          client_kind: call.request.client_kind.trim().toLowerCase(),
          gateway_ephemeral_public: Buffer.alloc(32, 4),
          challenge: Buffer.alloc(32, 5),
          expires_at_unix_ms: 1_700_000_300_000,
          gateway_name: `method=${method?.value ?? 'none'} commitment=${call.request.device_x25519_commitment.length}`,
        });
      },
    });
    const nodeClient = connect(address);

    const response = await new Promise<BeginPairingSessionResponse__Output>((resolve, reject) => {
      nodeClient.BeginPairingSession(
        { v: 0, client_kind: ' Desktop ', method: { pin_code: '123456' }, device_x25519_commitment: Buffer.alloc(32, 1) },
        (error, value) => {
          if (error !== null || value === undefined) reject(error ?? new Error('no response'));
          else resolve(value);
        },
      );
    });

    expect(response.v).toBe(1);
    expect(response.session_id).toBe('01J00000000000000000000000');
    expect(response.client_kind).toBe('desktop');
    expect(response.gateway_ephemeral_public).toEqual(Buffer.alloc(32, 4));
    expect(response.challenge).toHaveLength(32);
    expect(response.expires_at_unix_ms).toBe(1_700_000_300_000);
    expect(response.gateway_name).toBe('method=pin_code commitment=32');
  });

  it('echoes node events back on a bidi StreamNodeEvents stream in order and ends when the device ends', async () => {
    const address = await startServer({
      StreamNodeEvents(call) {
        call.on('data', (event: NodeEventRequest__Output) => {
          call.write({
            v: 1,
            event_id: event.device_id,
            accepted: true,
            reason: event.event_name,
            dispatch: { request_id: event.device_id, capability: 'echo', input_json: event.payload_json, max_payload_bytes: 1024 },
          });
        });
        call.on('end', () => {
          call.end();
        });
      },
    });
    const stream = connect(address).StreamNodeEvents();

    const received = new Promise<NodeEventResponse__Output[]>((resolve, reject) => {
      const responses: NodeEventResponse__Output[] = [];
      stream.on('data', (response: NodeEventResponse__Output) => responses.push(response));
      stream.on('end', () => {
        resolve(responses);
      });
      stream.on('error', reject);
    });
    stream.write({ v: 1, device_id: { ulid: DEVICE_ID }, event_name: 'heartbeat', payload_json: Buffer.from('{"n":1}') });
    stream.write({ v: 1, device_id: { ulid: DEVICE_ID }, event_name: 'capability.result', payload_json: Buffer.from('{"n":2}') });
    stream.end();
    const responses = await received;

    expect(responses.map((r) => r.reason)).toEqual(['heartbeat', 'capability.result']);
    expect(responses.map((r) => r.event_id?.ulid)).toEqual([DEVICE_ID, DEVICE_ID]);
    expect(responses.map((r) => r.dispatch?.input_json.toString())).toEqual(['{"n":1}', '{"n":2}']);
    expect(responses[0]?.dispatch?.max_payload_bytes).toBe(1024);
    expect(responses[0]?.accepted).toBe(true);
  });

  it('answers UNIMPLEMENTED for an RPC the server does not handle', async () => {
    const address = await startServer({});
    const nodeClient = connect(address);

    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      nodeClient.RegisterNode({ v: 1, device_id: { ulid: DEVICE_ID }, platform: 'linux' }, (e) => {
        resolve(e);
      });
    });

    expect(error?.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('refuses a request above 4 MiB at a server built with the message size options', async () => {
    let handled = false;
    const address = await startServer(
      {
        ExecuteCapability(_call, callback) {
          handled = true;
          callback(null, { v: 1, success: true });
        },
      },
      NODE_RPC_MESSAGE_SIZE_OPTIONS,
    );
    // The client has no limit of its own here, so the refusal can only come from the server.
    const nodeClient = connect(address, { 'grpc.max_send_message_length': -1 });
    const call = (bytes: number): Promise<ExecuteCapabilityResponse__Output | grpc.ServiceError> =>
      new Promise((resolve) => {
        nodeClient.ExecuteCapability(
          { v: 1, device_id: { ulid: DEVICE_ID }, capability: 'echo', input_json: Buffer.alloc(bytes) },
          (error, value) => {
            resolve(error ?? value!);
          },
        );
      });

    const tooLarge = await call(NODE_RPC_MAX_MESSAGE_BYTES);
    expect(handled).toBe(false);
    expect((tooLarge as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);

    const fits = await call(NODE_RPC_MAX_MESSAGE_BYTES - 1024);
    expect((fits as ExecuteCapabilityResponse__Output).success).toBe(true);
  });
});

describe('locating the .proto files', () => {
  it('finds main/rpc/proto from the source module', () => {
    expect(NODE_RPC_PROTO_ROOT).toBe(path.join(repoRoot, 'main', 'rpc', 'proto'));
  });

  it('finds main/rpc/proto from where the compiled module lives (dist/main/rpc)', () => {
    expect(locateProtoRoot(path.join(repoRoot, 'dist', 'main', 'rpc'))).toBe(path.join(repoRoot, 'main', 'rpc', 'proto'));
  });

  it('names the missing file when no ancestor holds the protos', () => {
    expect(() => locateProtoRoot(path.parse(repoRoot).root)).toThrow(/palyra\/node\/v1\/node\.proto/);
  });
});
