/**
 * HTTP/2 keepalive on the node-RPC port (PROTOCOL.md §4.9). With pushed dispatch a device's event stream carries a
 * heartbeat only every 15 s, so a dead path is found by HTTP/2 PINGs instead: the device pings every
 * DEVICE_KEEPALIVE_TIME_MS while its stream is open, the gateway pings connections silent for
 * GATEWAY_KEEPALIVE_TIME_MS. Either side drops the connection when a PING is not answered within its timeout.
 * The gateway (grpc-js) enforces no minimum ping interval of its own, so device pings never earn a GOAWAY; a gateway
 * that does (gRPC core: 5 minutes without data) still sees data on the stream between two of our pings.
 */

import type * as grpc from '@grpc/grpc-js';

export const DEVICE_KEEPALIVE_TIME_MS = 20_000;
export const DEVICE_KEEPALIVE_TIMEOUT_MS = 10_000;
export const GATEWAY_KEEPALIVE_TIME_MS = 60_000;
export const GATEWAY_KEEPALIVE_TIMEOUT_MS = 20_000;

/** Channel options of a device's node channel (pings only while a call is open). */
export const DEVICE_KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': DEVICE_KEEPALIVE_TIME_MS,
  'grpc.keepalive_timeout_ms': DEVICE_KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 0,
} as const satisfies grpc.ChannelOptions;

/**
 * Server options of the gateway's authenticated node-RPC server. Channelz is off: nothing reads it, and it costs every
 * connection a registered socket ref and call tracker and every message a counter update (the per-stream state is
 * what 10 000 streams multiply).
 */
export const NODE_RPC_KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': GATEWAY_KEEPALIVE_TIME_MS,
  'grpc.keepalive_timeout_ms': GATEWAY_KEEPALIVE_TIMEOUT_MS,
  'grpc.enable_channelz': 0,
} as const satisfies grpc.ServerOptions;
