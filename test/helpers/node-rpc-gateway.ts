// Test helpers: a NodeService behind the real TlsListener on 127.0.0.1 whose handlers echo what they saw, devices
// with CSR-issued certificates, and promise wrappers around the client calls.
import * as grpc from '@grpc/grpc-js';
import type { CertificateAuthority } from '../../main/core/certificate-authority.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { newUlid } from '../../main/core/ids.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { NodeService } from '../../main/rpc/node-service.js';
import type {
  NodeEventRequest__Output,
  NodeEventResponse__Output,
  NodeServiceClient,
  NodeServiceHandlers,
  RegisterNodeResponse__Output,
} from '../../main/rpc/node-service.js';
import { callPeerFingerprint, TlsListener } from '../../main/rpc/tls-listener.js';
import type { TlsListenerEvent, TlsListenerOptions } from '../../main/rpc/tls-listener.js';

/** Bound on every test call, so a hang shows up as DEADLINE_EXCEEDED instead of a stuck suite. */
export const CALL_DEADLINE_MS = 5_000;

export interface TlsDevice {
  readonly deviceId: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly fingerprint: string;
  readonly serialHex: string;
}

/** A device as PROTOCOL.md §2 has it: its own P-256 key, certified through a CSR. */
export async function enrolTlsDevice(ca: CertificateAuthority, now: number): Promise<TlsDevice> {
  const deviceId = newUlid(now);
  const keys = await generateP256KeyPair();
  const csrDer = await createCertificateSigningRequest({ keys, deviceId });
  const issued = await ca.issueClientCertificate({ csrDer, deviceId, now });
  return {
    deviceId,
    certificatePem: issued.certificatePem,
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
    fingerprint: issued.fingerprint,
    serialHex: issued.serialHex,
  };
}

export interface EchoGateway {
  readonly listener: TlsListener;
  readonly address: string;
  /** The fingerprint each RegisterNode handler saw, in call order. */
  readonly registerCalls: (string | null)[];
  /** Fingerprints of StreamNodeEvents calls the server saw cancelled (connection gone). */
  readonly cancelledStreams: (string | null)[];
  readonly events: TlsListenerEvent[];
  close(): Promise<void>;
}

type EchoHandlers = Pick<NodeServiceHandlers, 'RegisterNode' | 'StreamNodeEvents'>;

/**
 * RegisterNode answers `reason` = the caller's certificate fingerprint ('' for none); StreamNodeEvents stays open and
 * answers each event with `reason` = its event_name.
 */
export async function startEchoGateway(
  options: Omit<TlsListenerOptions, 'grpcServer' | 'host' | 'port' | 'onEvent'>,
): Promise<EchoGateway> {
  const registerCalls: (string | null)[] = [];
  const cancelledStreams: (string | null)[] = [];
  const events: TlsListenerEvent[] = [];
  const handlers: EchoHandlers = {
    RegisterNode(call, callback) {
      const fingerprint = callPeerFingerprint(call);
      registerCalls.push(fingerprint);
      callback(null, { v: Math.max(call.request.v, 1), device_id: call.request.device_id, accepted: true, reason: fingerprint ?? '' });
    },
    StreamNodeEvents(call) {
      const fingerprint = callPeerFingerprint(call);
      call.on('data', (event: NodeEventRequest__Output) => {
        call.write({ v: Math.max(event.v, 1), accepted: true, reason: event.event_name });
      });
      call.on('end', () => {
        call.end();
      });
      call.on('cancelled', () => {
        cancelledStreams.push(fingerprint);
      });
      call.on('error', () => {
        // The client went away; nothing to answer.
      });
    },
  };
  const grpcServer = new grpc.Server();
  grpcServer.addService(NodeService, handlers);
  let listener: TlsListener;
  try {
    listener = await TlsListener.start({
      ...options,
      host: '127.0.0.1',
      port: 0,
      grpcServer,
      onEvent: (event) => events.push(event),
    });
  } catch (error) {
    grpcServer.forceShutdown();
    throw error;
  }
  return {
    listener,
    address: `127.0.0.1:${listener.port}`,
    registerCalls,
    cancelledStreams,
    events,
    close: async () => {
      await listener.close(0);
      grpcServer.forceShutdown();
    },
  };
}

/** Each test client gets its own connection: grpc-js otherwise shares subchannels between equal channels. */
export const ISOLATED_CHANNEL: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

export function registerNode(client: NodeServiceClient, deviceId: string): Promise<RegisterNodeResponse__Output> {
  return new Promise((resolve, reject) => {
    client.RegisterNode(
      { v: 1, device_id: { ulid: deviceId }, platform: 'test' },
      { deadline: Date.now() + CALL_DEADLINE_MS },
      (error, response) => {
        if (error !== null) reject(error);
        else if (response === undefined) reject(new Error('RegisterNode returned no response'));
        else resolve(response);
      },
    );
  });
}

/** The gRPC status code of a failed call, or 'ok' if it succeeded. */
export async function registerNodeStatus(client: NodeServiceClient, deviceId: string): Promise<grpc.status | 'ok'> {
  try {
    await registerNode(client, deviceId);
    return 'ok';
  } catch (error) {
    return (error as grpc.ServiceError).code;
  }
}

export interface StreamEnd {
  readonly how: 'error' | 'end';
  readonly code: grpc.status | null;
}

export interface EventStream {
  /** Sends one event and resolves with the server's echo of it. */
  echo(eventName: string): Promise<NodeEventResponse__Output>;
  /** Settles when the client sees an error or the end of the stream. */
  readonly ended: Promise<StreamEnd>;
  /** True until `ended` settled. */
  isOpen(): boolean;
  cancel(): void;
}

export function openEventStream(client: NodeServiceClient, deviceId: string): EventStream {
  const call = client.StreamNodeEvents();
  const waiting = new Map<string, (response: NodeEventResponse__Output) => void>();
  let open = true;
  const ended = new Promise<StreamEnd>((resolve) => {
    call.on('error', (error: grpc.ServiceError) => {
      open = false;
      resolve({ how: 'error', code: error.code });
    });
    call.on('end', () => {
      open = false;
      resolve({ how: 'end', code: null });
    });
  });
  call.on('data', (response: NodeEventResponse__Output) => {
    waiting.get(response.reason)?.(response);
    waiting.delete(response.reason);
  });
  return {
    echo: (eventName) => {
      const reply = new Promise<NodeEventResponse__Output>((resolve, reject) => {
        waiting.set(eventName, resolve);
        void ended.then(() => {
          reject(new Error(`stream ended before the echo of ${eventName}`));
        });
      });
      call.write({ v: 1, device_id: { ulid: deviceId }, event_name: eventName, payload_json: Buffer.from('{}') });
      return reply;
    },
    ended,
    isOpen: () => open,
    cancel: () => {
      call.cancel();
    },
  };
}
