/**
 * The IPC messages between the primary of `palyra gateway run --workers N` (workers.ts) and its worker processes
 * (workers-child.ts). The channel uses the "advanced" serialization (structured clone), so byte arrays travel as
 * they are. Nothing here is secret beyond what the worker reads from the state itself: the database URL may carry
 * a password, which is why it travels over IPC and never in argv or the environment.
 */

import type { CapabilityCall } from './gateway.js';
import type { CapabilityResult } from './capabilities.js';

/** What a worker is started with (serializable GatewayStartOptions, without keychain, log or clock). */
export interface WorkerStartOptions {
  stateDir: string;
  listen: { host: string; port: number };
  name: string | null;
  insecureNodeRpcOptOut: boolean;
  allowServerGeneratedKeys: boolean;
  allowLegacyDeviceIds: boolean;
  requirePake: boolean;
  disablePake: boolean;
  announce: boolean;
  /** Slot 1 only: the pool is one replica of a state database (PROTOCOL.md 12.9). */
  registerReplica?: boolean;
  database: { databaseUrl: string; storeKeyFile: string | null } | null;
}

/** What a worker reports once it listens: the fields of the `gateway.ready` line. */
export interface WorkerReadyInfo {
  pid: number;
  listen: string;
  caPin: string;
  caFingerprint: string;
  caCertificatePem: string;
  mtlsRequired: boolean;
  rollbackProtection: 'keychain' | 'none';
  addresses: string[];
  reachable: string;
  announced: boolean;
  backend: string;
  keyLocation: string;
  /** The replica id slot 1 registered on a state database; null otherwise. */
  replicaId: string | null;
}

export interface WireError {
  code: string;
  message: string;
}

export type PrimaryToWorker =
  | { t: 'start'; slot: number; options: WorkerStartOptions }
  | { t: 'stop' }
  /** Resource use of the worker (benchmarks). */
  | { t: 'stats'; id: number }
  /** Whether `deviceId` has a stream on some other worker (`at`: when it came online there), or none (null). */
  | { t: 'peer.live'; deviceId: string; at: number | null }
  /** Run this call here if the device's stream is here. */
  | { t: 'exec.run'; id: number; call: CapabilityCall }
  /** The answer to this worker's `exec` (`notHere`: no other worker holds the device's stream). */
  | { t: 'exec.result'; id: number; result?: CapabilityResult; error?: WireError; notHere?: boolean };

export type WorkerToPrimary =
  /** The worker listens for messages: the primary may send `start`. */
  | { t: 'hello' }
  | { t: 'ready'; info: WorkerReadyInfo; startup: Record<string, unknown>[] }
  | { t: 'failed'; error: WireError; startup: Record<string, unknown>[] }
  | { t: 'log'; line: Record<string, unknown> }
  | { t: 'live'; deviceId: string; online: boolean }
  /** A capability call for a device whose stream is not here. */
  | { t: 'exec'; id: number; call: CapabilityCall }
  | { t: 'exec.done'; id: number; result?: CapabilityResult; error?: WireError; notHere?: boolean }
  | { t: 'stats'; id: number; stats: WorkerStats };

export interface WorkerStats {
  rss: number;
  heap: number;
  external: number;
  /** User + system CPU since the worker started, in microseconds. */
  cpuUs: number;
  /** Devices with a stream on this worker. */
  live: number;
}
