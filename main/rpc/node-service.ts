/**
 * The node-RPC wire contract, `palyra.node.v1.NodeService`, loaded from main/rpc/proto at run time and typed with the
 * generated types in main/rpc/generated (regenerate with `node scripts/gen-proto.mjs`). The gateway serves
 * `NodeService` with `NodeServiceHandlers`; the device calls it through `NodeServiceClient`.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/node.js';
import type {
  NodeServiceClient as GeneratedNodeServiceClient,
  NodeServiceDefinition as GeneratedNodeServiceDefinition,
  NodeServiceHandlers as GeneratedNodeServiceHandlers,
} from './generated/palyra/node/v1/NodeService.js';

export type { CanonicalId, CanonicalId__Output } from './generated/palyra/common/v1/CanonicalId.js';
export type { ReplayProtection, ReplayProtection__Output } from './generated/palyra/common/v1/ReplayProtection.js';
export type { PairingMethod, PairingMethod__Output } from './generated/palyra/node/v1/PairingMethod.js';
export type {
  BeginPairingSessionRequest,
  BeginPairingSessionRequest__Output,
} from './generated/palyra/node/v1/BeginPairingSessionRequest.js';
export type {
  BeginPairingSessionResponse,
  BeginPairingSessionResponse__Output,
} from './generated/palyra/node/v1/BeginPairingSessionResponse.js';
export type {
  CompletePairingSessionRequest,
  CompletePairingSessionRequest__Output,
} from './generated/palyra/node/v1/CompletePairingSessionRequest.js';
export type {
  CompletePairingSessionResponse,
  CompletePairingSessionResponse__Output,
} from './generated/palyra/node/v1/CompletePairingSessionResponse.js';
export type {
  GetPairingRequestStatusRequest,
  GetPairingRequestStatusRequest__Output,
} from './generated/palyra/node/v1/GetPairingRequestStatusRequest.js';
export type {
  GetPairingRequestStatusResponse,
  GetPairingRequestStatusResponse__Output,
} from './generated/palyra/node/v1/GetPairingRequestStatusResponse.js';
export type {
  RotateDeviceCertificateRequest,
  RotateDeviceCertificateRequest__Output,
} from './generated/palyra/node/v1/RotateDeviceCertificateRequest.js';
export type {
  RotateDeviceCertificateResponse,
  RotateDeviceCertificateResponse__Output,
} from './generated/palyra/node/v1/RotateDeviceCertificateResponse.js';
export type {
  RevokeDevicePairingRequest,
  RevokeDevicePairingRequest__Output,
} from './generated/palyra/node/v1/RevokeDevicePairingRequest.js';
export type {
  RevokeDevicePairingResponse,
  RevokeDevicePairingResponse__Output,
} from './generated/palyra/node/v1/RevokeDevicePairingResponse.js';
export type { DeviceCapability, DeviceCapability__Output } from './generated/palyra/node/v1/DeviceCapability.js';
export type { RegisterNodeRequest, RegisterNodeRequest__Output } from './generated/palyra/node/v1/RegisterNodeRequest.js';
export type { RegisterNodeResponse, RegisterNodeResponse__Output } from './generated/palyra/node/v1/RegisterNodeResponse.js';
export type { NodeEventRequest, NodeEventRequest__Output } from './generated/palyra/node/v1/NodeEventRequest.js';
export type { NodeEventResponse, NodeEventResponse__Output } from './generated/palyra/node/v1/NodeEventResponse.js';
export type {
  NodeCapabilityDispatch,
  NodeCapabilityDispatch__Output,
} from './generated/palyra/node/v1/NodeCapabilityDispatch.js';
export type {
  ExecuteCapabilityRequest,
  ExecuteCapabilityRequest__Output,
} from './generated/palyra/node/v1/ExecuteCapabilityRequest.js';
export type {
  ExecuteCapabilityResponse,
  ExecuteCapabilityResponse__Output,
} from './generated/palyra/node/v1/ExecuteCapabilityResponse.js';

/** The method table of `palyra.node.v1.NodeService` (a grpc.ServiceDefinition), for `server.addService`. */
export type NodeServiceDefinition = GeneratedNodeServiceDefinition;
/** What a gateway implements: one handler per RPC. */
export type NodeServiceHandlers = GeneratedNodeServiceHandlers;
/** A connected client: each RPC in PascalCase and camelCase. */
export type NodeServiceClient = GeneratedNodeServiceClient;
/** `new NodeServiceClient(address, credentials, options?)`. */
export type NodeServiceClientConstructor = ProtoGrpcType['palyra']['node']['v1']['NodeService'];

/** Fully qualified service name; RPC paths are `/palyra.node.v1.NodeService/<Method>`. */
export const NODE_SERVICE_NAME = 'palyra.node.v1.NodeService';

/** gRPC max message size, decode and encode, on both sides (REFERENCE.md §2.1: 4 MiB each). */
export const NODE_RPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Channel / server options that apply NODE_RPC_MAX_MESSAGE_BYTES in both directions. */
export const NODE_RPC_MESSAGE_SIZE_OPTIONS = {
  'grpc.max_receive_message_length': NODE_RPC_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': NODE_RPC_MAX_MESSAGE_BYTES,
} as const satisfies grpc.ChannelOptions;

/** The service's .proto, relative to NODE_RPC_PROTO_ROOT (its imports resolve against that root too). */
const NODE_PROTO_FILE = 'palyra/node/v1/node.proto';
/** Where the .proto files live, relative to the package root. */
const PROTO_DIR_IN_PACKAGE = path.join('main', 'rpc', 'proto');

/**
 * This module runs as source (main/rpc/ under vitest) and compiled (dist/main/rpc/), while the .proto files stay in
 * main/rpc/proto: walk up from `startDir` to the first ancestor whose main/rpc/proto holds them.
 */
export function locateProtoRoot(startDir: string): string {
  const start = path.resolve(startDir);
  for (let dir = start; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, PROTO_DIR_IN_PACKAGE);
    if (fs.existsSync(path.join(candidate, NODE_PROTO_FILE))) return candidate;
    if (path.dirname(dir) === dir) {
      throw new Error(`cannot find ${path.join(PROTO_DIR_IN_PACKAGE, NODE_PROTO_FILE)} above ${start}`);
    }
  }
}

/** Absolute path of the directory holding the palyra/**.proto files. */
export const NODE_RPC_PROTO_ROOT = locateProtoRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The options the generated types assume (scripts/gen-proto.mjs passes the same ones to the generator). */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [NODE_RPC_PROTO_ROOT],
};

const loaded = grpc.loadPackageDefinition(
  protoLoader.loadSync(NODE_PROTO_FILE, LOADER_OPTIONS),
) as unknown as ProtoGrpcType;

/** Client constructor: `new NodeServiceClient('127.0.0.1:7444', credentials, NODE_RPC_MESSAGE_SIZE_OPTIONS)`. */
export const NodeServiceClient: NodeServiceClientConstructor = loaded.palyra.node.v1.NodeService;

/** The service definition to pass to `grpc.Server.addService(NodeService, handlers)`. */
export const NodeService: NodeServiceDefinition = NodeServiceClient.service;
