/**
 * The remote administration contract, `palyra.admin.v1.GatewayAdmin`, loaded from main/rpc/proto at run time and typed
 * with the generated types in main/rpc/generated (regenerate with `node scripts/gen-proto.mjs`). The gateway serves
 * it on the node-RPC TLS port next to NodeService; an admin device calls it through `GatewayAdminClient` with its
 * mTLS credentials (`createGatewayChannelCredentials`).
 */

import { GATEWAY_TLS_SERVER_NAME } from '../core/net-address.js';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/admin.js';
import type {
  GatewayAdminClient as GeneratedGatewayAdminClient,
  GatewayAdminDefinition as GeneratedGatewayAdminDefinition,
  GatewayAdminHandlers as GeneratedGatewayAdminHandlers,
} from './generated/palyra/admin/v1/GatewayAdmin.js';
import { NODE_RPC_MESSAGE_SIZE_OPTIONS, NODE_RPC_PROTO_ROOT } from './node-service.js';

export type { AuditChain, AuditChain__Output } from './generated/palyra/admin/v1/AuditChain.js';
export type { AuditEntry as AdminAuditEntry, AuditEntry__Output as AdminAuditEntry__Output } from './generated/palyra/admin/v1/AuditEntry.js';
export type {
  DecidePairingRequestRequest,
  DecidePairingRequestRequest__Output,
} from './generated/palyra/admin/v1/DecidePairingRequestRequest.js';
export type {
  DecidePairingRequestResponse,
  DecidePairingRequestResponse__Output,
} from './generated/palyra/admin/v1/DecidePairingRequestResponse.js';
export type { Device as AdminDevice, Device__Output as AdminDevice__Output } from './generated/palyra/admin/v1/Device.js';
export type { DeviceIdRequest, DeviceIdRequest__Output } from './generated/palyra/admin/v1/DeviceIdRequest.js';
export type { DeviceStatusResponse, DeviceStatusResponse__Output } from './generated/palyra/admin/v1/DeviceStatusResponse.js';
export type { GatewayEvent as AdminGatewayEvent, GatewayEvent__Output as AdminGatewayEvent__Output } from './generated/palyra/admin/v1/GatewayEvent.js';
export type { GetAuditLogRequest, GetAuditLogRequest__Output } from './generated/palyra/admin/v1/GetAuditLogRequest.js';
export type { GetAuditLogResponse, GetAuditLogResponse__Output } from './generated/palyra/admin/v1/GetAuditLogResponse.js';
export type { ListDevicesRequest, ListDevicesRequest__Output } from './generated/palyra/admin/v1/ListDevicesRequest.js';
export type { ListDevicesResponse, ListDevicesResponse__Output } from './generated/palyra/admin/v1/ListDevicesResponse.js';
export type {
  ListPairingRequestsRequest,
  ListPairingRequestsRequest__Output,
} from './generated/palyra/admin/v1/ListPairingRequestsRequest.js';
export type {
  ListPairingRequestsResponse,
  ListPairingRequestsResponse__Output,
} from './generated/palyra/admin/v1/ListPairingRequestsResponse.js';
export type { MintPairingCodeRequest, MintPairingCodeRequest__Output } from './generated/palyra/admin/v1/MintPairingCodeRequest.js';
export type { MintPairingCodeResponse, MintPairingCodeResponse__Output } from './generated/palyra/admin/v1/MintPairingCodeResponse.js';
export type { PairingRequest as AdminPairingRequest, PairingRequest__Output as AdminPairingRequest__Output } from './generated/palyra/admin/v1/PairingRequest.js';
export type { RevokeDeviceRequest, RevokeDeviceRequest__Output } from './generated/palyra/admin/v1/RevokeDeviceRequest.js';
export type { RevokeDeviceResponse, RevokeDeviceResponse__Output } from './generated/palyra/admin/v1/RevokeDeviceResponse.js';
export type { WatchEventsRequest, WatchEventsRequest__Output } from './generated/palyra/admin/v1/WatchEventsRequest.js';

/** The method table of `palyra.admin.v1.GatewayAdmin`, for `server.addService`. */
export type GatewayAdminServiceDefinition = GeneratedGatewayAdminDefinition;
/** What the gateway implements: one handler per RPC. */
export type GatewayAdminServiceHandlers = GeneratedGatewayAdminHandlers;
/** A connected admin client: each RPC in PascalCase and camelCase. */
export type GatewayAdminClient = GeneratedGatewayAdminClient;
/** `new GatewayAdminClient(address, credentials, options?)`. */
export type GatewayAdminClientConstructor = ProtoGrpcType['palyra']['admin']['v1']['GatewayAdmin'];

/** Fully qualified service name; RPC paths are `/palyra.admin.v1.GatewayAdmin/<Method>`. */
export const ADMIN_SERVICE_NAME = 'palyra.admin.v1.GatewayAdmin';

/** The service's .proto, relative to NODE_RPC_PROTO_ROOT. */
const ADMIN_PROTO_FILE = 'palyra/admin/v1/admin.proto';

/** The options the generated types assume (scripts/gen-proto.mjs passes the same ones to the generator). */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [NODE_RPC_PROTO_ROOT],
};

const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(ADMIN_PROTO_FILE, LOADER_OPTIONS)) as unknown as ProtoGrpcType;

/** Client constructor (pass `ssl_target_name_override` as createGatewayAdminClient does). */
export const GatewayAdminClient: GatewayAdminClientConstructor = loaded.palyra.admin.v1.GatewayAdmin;

/** The service definition to pass to `grpc.Server.addService(GatewayAdminService, handlers)`. */
export const GatewayAdminService: GatewayAdminServiceDefinition = GatewayAdminClient.service;

/**
 * A GatewayAdmin client for `host:port` with the node-RPC message limits; SNI and the name check use
 * `palyrad-node-rpc` like every client of the gateway port. `credentials` must carry the admin device's certificate.
 */
export function createGatewayAdminClient(address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions = {}): GatewayAdminClient {
  return new GatewayAdminClient(address, credentials, {
    ...NODE_RPC_MESSAGE_SIZE_OPTIONS,
    ...options,
    'grpc.ssl_target_name_override': GATEWAY_TLS_SERVER_NAME,
  });
}
