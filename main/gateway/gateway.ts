/**
 * The running gateway: one TLS port for node RPC (PROTOCOL.md §5), the pairing service, capability dispatch,
 * and live revocation. It watches its state directory so that a CLI or the desktop app in another process can
 * mint, approve, reject and revoke while it runs: a revocation from anywhere closes the device's streams and
 * sockets at once, and new handshakes with a revoked certificate fail (CRL + fingerprint check).
 *
 * Also the in-process API the desktop app uses: `admin` for operator actions, `events` for the UI.
 */

import { EventEmitter } from 'node:events';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { PAIRING_PROTOCOL_VERSION } from '../core/handshake.js';
import { GATEWAY_TLS_SERVER_NAME, formatHostPort, isIpv4Literal, isIpv6Literal, isLoopbackHost, parseHostPort } from '../core/net-address.js';
import type { PgStateLocation } from '../store/pg/pg-open.js';
import type { Keychain } from '../store/keychain.js';
import { GatewayAdminService } from '../rpc/admin-service.js';
import { NodeService, NODE_RPC_MESSAGE_SIZE_OPTIONS } from '../rpc/node-service.js';
import { NODE_RPC_KEEPALIVE_OPTIONS } from '../rpc/keepalive.js';
import type { NodeEventRequest__Output, NodeEventResponse } from '../rpc/node-service.js';
import { TlsListener } from '../rpc/tls-listener.js';
import type { TlsListenerRoutes } from '../rpc/tls-listener.js';
import {
  UnauthenticatedCallGate,
  certificateRefusal,
  fieldLimitInterceptor,
  refusingHandlers,
  unauthenticatedServerOptions,
} from '../rpc/unauthenticated-limits.js';
import { AdminRpc } from './admin-rpc.js';
import { CapabilityDispatcher } from './capabilities.js';
import type { CapabilityResult } from './capabilities.js';
import { GatewayAdmin } from './gateway-admin.js';
import type { DeviceView, RequestView } from './gateway-admin.js';
import { removeGatewayInfo, writeGatewayInfo } from './gateway-info.js';
import { IDENTITY_STATE_KEY } from './identity-manager.js';
import { GatewayAnnouncer } from './discovery.js';
import { reachableAddresses } from './lan-addresses.js';
import type { Reachability } from './lan-addresses.js';
import { createNodeRpcHandlers, endStreamAndFlush, toServiceError } from './node-rpc.js';
import { PairingService } from './pairing-service.js';
import { RUNTIME_STATE_KEY } from './runtime-state.js';

export const DEFAULT_LISTEN = { host: '127.0.0.1', port: 7444 } as const;
/** Fallback poll of the state files, in case a file-system watch misses an event. */
const STATE_POLL_MS = 500;
/**
 * After a rotation the device's connection on its previous certificate stays open this long, so the Rotate
 * response is delivered and the device can reconnect with the new certificate; new handshakes with the old
 * certificate fail at once (CRL), and device-bound calls on it fail (current certificate only).
 */
export const ROTATION_GRACE_MS = 30_000;
/** Least time a revoked connection stays open after the revocation, so a unary answer (RevokeDevicePairing) leaves. */
const REVOCATION_STATUS_FLUSH_MS = 50;
/** Longest wait for a revoked stream's status to leave (its HTTP/2 stream closing) before the socket is destroyed. */
const REVOCATION_FLUSH_GRACE_MS = 2_000;
/** Re-issue the CRL well before its 7-day nextUpdate: Node refuses every client once it is stale. */
const CRL_REFRESH_MS = 24 * 3_600_000;

export type GatewayEvent =
  | { type: 'request.created'; request: RequestView }
  | { type: 'request.updated'; request: RequestView }
  | { type: 'device.paired'; device_id: string }
  | { type: 'device.revoked'; device_id: string; reason: string }
  | { type: 'devices.changed' }
  | { type: 'node.online'; device_id: string }
  | { type: 'node.offline'; device_id: string };

export interface GatewayStartOptions {
  stateDir: string;
  listen: { host: string; port: number };
  name: string | null;
  insecureNodeRpcOptOut: boolean;
  allowServerGeneratedKeys: boolean;
  allowLegacyDeviceIds: boolean;
  /** `--require-pake`: refuse v1 PIN Begins (the PIN in the clear) with `pake_required`. */
  requirePake?: boolean;
  /** Test only (PALYRA_TEST_DISABLE_PAKE): no PIN pairing v2 RPCs, like a reference gateway. */
  disablePake?: boolean;
  keychain: Keychain | null;
  /** Announce the gateway over DNS-SD (`_palyra._tcp`); a failure to do so is logged, not fatal. */
  announce?: boolean;
  /** On a state database: record this process as a replica (default true; of a worker pool only slot 1 does). */
  registerReplica?: boolean;
  /** The trust state in PostgreSQL (a cluster replica); omitted/null = in `stateDir`. */
  database?: PgStateLocation | null;
  /** Extra DNS names / IPs for the server certificate. */
  serverNames?: string[];
  certificateValidityMs?: number;
  log?: (line: Record<string, unknown>) => void;
  clock?: () => number;
  /**
   * One worker of `palyra gateway run --workers N` (main/gateway/workers.ts): the primary writes gateway.v1.json and
   * announces; this gateway tells it which devices hold streams here, and capability work for a device whose stream
   * is on another worker goes through it. Omitted/null = a gateway on its own (the desktop app, `--workers 1`).
   */
  peers?: GatewayPeers | null;
}

/** The other workers of one `gateway run --workers N`, as seen from one worker (the primary relays). */
export interface GatewayPeers {
  /** The first stream of `deviceId` opened here (`online`), or its last one ended. */
  liveChanged(deviceId: string, online: boolean): void;
  /** Runs the call on the worker holding the device's stream; null when no other worker holds one. */
  executeElsewhere(o: CapabilityCall): Promise<CapabilityResult | null>;
}

export interface CapabilityCall {
  deviceId: string;
  capability: string;
  inputJson: Uint8Array;
  maxPayloadBytes?: number;
  timeoutMs?: number;
}

type NodeStream = grpc.ServerDuplexStream<NodeEventRequest__Output, NodeEventResponse>;

interface LiveNode {
  streams: Set<grpc.ServerDuplexStream<NodeEventRequest__Output, NodeEventResponse>>;
  /** Streams that negotiated pushed dispatch, oldest first; work goes to the newest. Null while there are none. */
  pushers: Map<NodeStream, () => boolean> | null;
  lastSeenAtUnixMs: number;
}

export class Gateway {
  readonly admin: GatewayAdmin;
  readonly pairing: PairingService;
  readonly dispatcher: CapabilityDispatcher;
  readonly events = new EventEmitter();
  readonly stateDir: string;
  readonly mtlsRequired: boolean;
  readonly name: string | null;
  readonly #listener: TlsListener;
  readonly #grpc: grpc.Server;
  /** The servers behind certificate-less and refused connections (same services, small limits). */
  readonly #sideServers: grpc.Server[];
  readonly #live = new Map<string, LiveNode>();
  /** Every authenticated event stream from its start, by the fingerprint it authenticated with. */
  readonly #streamsByFingerprint = new Map<string, Set<NodeStream>>();
  /** Streams already given their final status (a revocation seen twice must not end one twice). */
  readonly #endedStreams = new WeakSet<NodeStream>();
  readonly #log: (line: Record<string, unknown>) => void;
  readonly #clock: () => number;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #serverNames: string[];
  readonly #validityMs: number | undefined;
  #watcher: FSWatcher | null = null;
  #stopped = false;
  #replicaId: string | null = null;
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;
  #knownRequests = new Map<string, string>();
  #paired = new Set<string>();
  #revoked = new Set<string>();
  readonly #rotationGrace = new Map<string, number>();
  /** palyra.admin.v1.GatewayAdmin on the same port (remote administration by 'admin' devices). */
  #adminRpc: AdminRpc | null = null;
  #announcer: GatewayAnnouncer | null = null;
  readonly #peers: GatewayPeers | null;
  /** Devices whose streams are on other workers, with when that worker reported them online. */
  readonly #peerLive = new Map<string, number>();

  private constructor(o: {
    admin: GatewayAdmin;
    pairing: PairingService;
    dispatcher: CapabilityDispatcher;
    listener: TlsListener;
    grpc: grpc.Server;
    sideServers: grpc.Server[];
    options: GatewayStartOptions;
    clock: () => number;
    log: (line: Record<string, unknown>) => void;
  }) {
    this.admin = o.admin;
    this.pairing = o.pairing;
    this.dispatcher = o.dispatcher;
    this.#listener = o.listener;
    this.#grpc = o.grpc;
    this.#sideServers = o.sideServers;
    this.stateDir = path.resolve(o.options.stateDir);
    this.mtlsRequired = !o.options.insecureNodeRpcOptOut;
    this.name = o.options.name;
    this.#clock = o.clock;
    this.#log = o.log;
    this.#serverNames = o.options.serverNames ?? [];
    this.#validityMs = o.options.certificateValidityMs;
    this.#peers = o.options.peers ?? null;
  }

  static async start(options: GatewayStartOptions): Promise<Gateway> {
    if (options.insecureNodeRpcOptOut && !isLoopbackHost(options.listen.host)) {
      throw new PalyraError('insecure_opt_out_refused', `--insecure-node-rpc-opt-out is only allowed on a loopback listen address, not ${options.listen.host}`);
    }
    const clock = options.clock ?? Date.now;
    const log = options.log ?? (() => undefined);
    const stateDir = path.resolve(options.stateDir);
    const validity = options.certificateValidityMs === undefined ? {} : { certificateValidityMs: options.certificateValidityMs };
    const admin =
      options.database === undefined || options.database === null
        ? await GatewayAdmin.open({ stateDir, keychain: options.keychain, clock, ...validity })
        : await GatewayAdmin.openPg({ database: options.database, stateDir, keychain: options.keychain, clock, listen: true, ...validity });
    const pairing = new PairingService({
      admin,
      clock,
      allowServerGeneratedKeys: options.allowServerGeneratedKeys,
      allowLegacyDeviceIds: options.allowLegacyDeviceIds,
      requirePake: options.requirePake ?? false,
      // Workers and database replicas share the guessing budget: each PIN failure is written before it is answered.
      sharedBudget: (options.peers !== undefined && options.peers !== null) || admin.backendKind === 'postgres',
    });
    let pushQueued: (deviceId: string) => void = () => undefined;
    const dispatcher = new CapabilityDispatcher({
      clock,
      onQueued: (deviceId) => {
        pushQueued(deviceId);
      },
    });
    const server = new grpc.Server({ ...NODE_RPC_MESSAGE_SIZE_OPTIONS, ...NODE_RPC_KEEPALIVE_OPTIONS, interceptors: [fieldLimitInterceptor] });
    // Opt-out mode has no certificates to tell devices apart from strangers: everything goes to the main server.
    const gate = new UnauthenticatedCallGate();
    const unauthenticated = options.insecureNodeRpcOptOut ? null : new grpc.Server(unauthenticatedServerOptions(gate));
    const refusalOptions = unauthenticatedServerOptions(gate);
    const revokedServer = options.insecureNodeRpcOptOut ? null : new grpc.Server(refusalOptions);
    const unknownServer = options.insecureNodeRpcOptOut ? null : new grpc.Server(refusalOptions);
    revokedServer?.addService(NodeService, refusingHandlers(NodeService, certificateRefusal('revoked')));
    revokedServer?.addService(GatewayAdminService, refusingHandlers(GatewayAdminService, certificateRefusal('revoked')));
    unknownServer?.addService(NodeService, refusingHandlers(NodeService, certificateRefusal('unknown')));
    unknownServer?.addService(GatewayAdminService, refusingHandlers(GatewayAdminService, certificateRefusal('unknown')));
    const routes: TlsListenerRoutes =
      unauthenticated === null || revokedServer === null || unknownServer === null
        ? {}
        : { unauthenticated, certificateRevoked: revokedServer, certificateUnknown: unknownServer };
    const serverCert = await Gateway.#issueServerCertificate(admin, options.listen.host, options.serverNames ?? [], options.certificateValidityMs);
    const listener = await TlsListener.start({
      host: options.listen.host,
      port: options.listen.port,
      grpcServer: server,
      serverCertificatePem: serverCert.certificatePem,
      serverPrivateKeyPem: serverCert.privateKeyPem,
      caCertificatePem: admin.identity.caCertificatePem,
      // Published at start too: the crl.pem a stopped gateway left may be past its nextUpdate.
      crlPem: await admin.identity.publishCrl({ force: true }).catch((e: unknown) => {
        log({ event: 'crl.publish_failed', message: toPalyraError(e).message });
        return admin.identity.crlPem();
      }),
      requestClientCertificates: !options.insecureNodeRpcOptOut,
      isCertificateRevoked: (fp) => admin.identity.isCertificateRevoked(fp),
      routes,
      onEvent: (event) => {
        if (event.kind === 'refused') log({ event: 'tls.refused', reason: event.reason, fingerprint: event.fingerprint });
      },
    });
    const sideServers = [unauthenticated, revokedServer, unknownServer].filter((s): s is grpc.Server => s !== null);
    const gateway = new Gateway({ admin, pairing, dispatcher, listener, grpc: server, sideServers, options, clock, log });
    pushQueued = (deviceId) => {
      gateway.#pushQueued(deviceId);
    };
    const nodeHandlers = createNodeRpcHandlers({
        admin,
        pairing,
        dispatcher,
        mtlsRequired: gateway.mtlsRequired,
        allowServerGeneratedKeys: options.allowServerGeneratedKeys,
        gatewayName: options.name,
        disablePake: options.disablePake ?? false,
        clock,
        execute: (call) => gateway.#execute(call),
        nodeOnline: (deviceId, stream, push) => gateway.#nodeOnline(deviceId, stream, push),
        streamOpened: (fingerprint, stream) => gateway.#streamOpened(fingerprint, stream),
        rotated: (fingerprint) => {
          gateway.#rotationGrace.set(fingerprint, clock() + ROTATION_GRACE_MS);
          const timer = setTimeout(() => {
            gateway.#rotationGrace.delete(fingerprint);
            gateway.#enforceRevocation();
          }, ROTATION_GRACE_MS + 10);
          timer.unref();
          gateway.#timers.push(timer);
        },
        nodeSeen: (deviceId) => {
          const live = gateway.#live.get(deviceId);
          if (live !== undefined) live.lastSeenAtUnixMs = clock();
        },
        log: (line) => {
          log(line);
        },
      });
    server.addService(NodeService, nodeHandlers);
    unauthenticated?.addService(NodeService, nodeHandlers);
    const adminRpc = new AdminRpc({
      admin,
      mtlsRequired: gateway.mtlsRequired,
      events: gateway.events,
      gatewayAddress: () => gateway.listen,
      gatewayName: options.name,
      liveNodes: () => gateway.liveNodes(),
      clock,
      log: (line) => {
        log(line);
      },
    });
    gateway.#adminRpc = adminRpc;
    server.addService(GatewayAdminService, adminRpc.handlers);
    unauthenticated?.addService(GatewayAdminService, adminRpc.handlers);
    gateway.#snapshotKnown();
    admin.onChange((change) => {
      gateway.#onStateChange(change);
    });
    gateway.#watchState();
    gateway.#scheduleRenewal(serverCert.expiresAtUnixMs, serverCert.issuedAtUnixMs);
    // Daily: drop revocations of certificates that have expired anyway (bounded state and CRL), then re-issue the CRL.
    const crlTimer = setInterval(() => {
      void admin
        .mutateIdentity((identity) => identity.pruneExpiredRevocations())
        .catch((e: unknown) => {
          log({ event: 'revocations.prune_failed', message: toPalyraError(e).message });
        })
        .then(() => gateway.#refreshCrl(true));
    }, CRL_REFRESH_MS);
    crlTimer.unref();
    gateway.#timers.push(crlTimer);
    if (options.peers === undefined || options.peers === null) await writeGatewayInfo(stateDir, {
      listen: gateway.listen,
      name: options.name,
      pid: process.pid,
      started_at_unix_ms: clock(),
      ca_pin: admin.identity.caSpkiPin,
      ca_fingerprint: admin.identity.caFingerprint,
      mtls_required: gateway.mtlsRequired,
    });
    // On a state database: seen by the other replicas (status, and the gw= list of every QR code).
    if (options.registerReplica !== false) gateway.#replicaId = await admin.registerReplica(gateway.addresses);
    await admin.audit('gateway_started', { listen: gateway.listen, mtls_required: gateway.mtlsRequired, insecure_opt_out: options.insecureNodeRpcOptOut });
    if (options.insecureNodeRpcOptOut) log({ event: 'gateway.insecure_opt_out', warning: 'node RPC mTLS is OFF: any local caller can act as any device' });
    if (options.announce === true) await gateway.#startAnnouncing();
    return gateway;
  }

  static async #issueServerCertificate(admin: GatewayAdmin, host: string, extra: string[], validityMs: number | undefined) {
    const ips = [host, ...extra].filter((h) => isIpv4Literal(h) || isIpv6Literal(h));
    const names = [os.hostname(), ...extra.filter((h) => !isIpv4Literal(h) && !isIpv6Literal(h))];
    if (!ips.includes('127.0.0.1')) ips.push('127.0.0.1');
    return admin.identity.issueGatewayServerCertificate({
      commonName: GATEWAY_TLS_SERVER_NAME,
      dnsNames: names.filter((n) => /^[A-Za-z0-9.-]+$/.test(n)),
      ipAddresses: ips.filter((ip) => ip !== '0.0.0.0' && ip !== '::'),
      ...(validityMs === undefined ? {} : { validityMs }),
    });
  }

  /** This gateway's id among the replicas of its state database; null on a state directory. */
  get replicaId(): string | null {
    return this.#replicaId;
  }

  get listen(): string {
    return formatHostPort({ host: this.#listener.host, port: this.#listener.port });
  }

  get port(): number {
    return this.#listener.port;
  }

  /** What other machines (or only this one) can dial: one entry per network address for a wildcard listener. */
  get addresses(): string[] {
    return reachableAddresses(this.listen).addresses;
  }

  get reachable(): Reachability {
    return reachableAddresses(this.listen).reachable;
  }

  /** The DNS-SD instance name while the gateway is announced, else null. */
  get announcedAs(): string | null {
    return this.#announcer?.instance ?? null;
  }

  async #startAnnouncing(): Promise<void> {
    const ips = this.addresses.map((a) => parseHostPort(a).host).filter((h) => isIpv4Literal(h) || isIpv6Literal(h));
    try {
      this.#announcer = await GatewayAnnouncer.start(
        { name: this.name ?? os.hostname(), caPin: this.caPin, port: this.port, ips, hostname: os.hostname(), protocolVersions: [PAIRING_PROTOCOL_VERSION] },
        (line) => {
          this.#log(line);
        },
      );
    } catch (error) {
      const e = toPalyraError(error);
      this.#log({ event: 'discovery.announce_failed', code: e.code, message: e.message });
    }
  }

  get caPin(): string {
    return this.admin.identity.caSpkiPin;
  }

  get caFingerprint(): string {
    return this.admin.identity.caFingerprint;
  }

  get caCertificatePem(): string {
    return this.admin.identity.caCertificatePem;
  }

  /** Devices with live streams (here or, for a worker, on another worker) and when they were last heard from. */
  liveNodes(): Map<string, number> {
    const live = new Map(this.#peerLive);
    for (const [id, node] of this.#live) live.set(id, node.lastSeenAtUnixMs);
    return live;
  }

  /** Devices with a stream on this gateway process itself. */
  localLiveNodes(): Set<string> {
    return new Set(this.#live.keys());
  }

  /** A worker: another worker reported `deviceId` online (with when) or offline (null). */
  setPeerLive(deviceId: string, atUnixMs: number | null): void {
    if (atUnixMs === null) this.#peerLive.delete(deviceId);
    else this.#peerLive.set(deviceId, atUnixMs);
  }

  /** A worker: runs a call relayed from another worker if this one holds the device's stream, else null. */
  executeIfLocal(call: CapabilityCall): Promise<CapabilityResult> | null {
    if (!this.#live.has(call.deviceId)) return null;
    return this.dispatcher.execute(call);
  }

  /**
   * A capability call for `deviceId`: queued here when its stream is here (or no worker holds one: it waits here
   * for the device's next stream, as on a single gateway), else run on the worker that holds the stream.
   */
  async #execute(call: CapabilityCall): Promise<CapabilityResult> {
    if (this.#peers === null || this.#live.has(call.deviceId)) return this.dispatcher.execute(call);
    const relayed = await this.#peers.executeElsewhere(call);
    return relayed ?? this.dispatcher.execute(call);
  }

  listDevices(): { devices: DeviceView[]; revoked_certificate_fingerprints: string[] } {
    return this.admin.listDevices(this.liveNodes());
  }

  /** Runs a capability on a connected node (operator path; REFERENCE.md §4.3 invoke). */
  async executeCapability(o: { deviceId: string; capability: string; input: unknown; maxPayloadBytes?: number; timeoutMs?: number }): Promise<CapabilityResult> {
    if (!this.#live.has(o.deviceId) && !this.#peerLive.has(o.deviceId)) throw new PalyraError('node_not_registered', `node ${o.deviceId} is not connected`);
    return this.#execute({
      deviceId: o.deviceId,
      capability: o.capability,
      inputJson: new TextEncoder().encode(JSON.stringify(o.input ?? null)),
      ...(o.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: o.maxPayloadBytes }),
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    });
  }

  #emit(event: GatewayEvent): void {
    this.events.emit('event', event);
  }

  #nodeOnline(deviceId: string, stream: grpc.ServerDuplexStream<NodeEventRequest__Output, NodeEventResponse>, push?: () => boolean): () => void {
    const live: LiveNode = this.#live.get(deviceId) ?? { streams: new Set(), pushers: null, lastSeenAtUnixMs: this.#clock() };
    const first = live.streams.size === 0;
    live.streams.add(stream);
    if (push !== undefined) (live.pushers ??= new Map()).set(stream, push);
    this.#live.set(deviceId, live);
    if (first) {
      this.#emit({ type: 'node.online', device_id: deviceId });
      this.#log({ event: 'node.online', device_id: deviceId });
      this.#peers?.liveChanged(deviceId, true);
    }
    return () => {
      live.streams.delete(stream);
      if (live.pushers?.delete(stream) === true) {
        if (live.pushers.size === 0) live.pushers = null;
        // Work queued for this stream and put back after a failed send goes to the device's other push stream.
        this.#pushQueued(deviceId);
      }
      if (live.streams.size === 0 && this.#live.get(deviceId) === live) {
        this.#live.delete(deviceId);
        this.#emit({ type: 'node.offline', device_id: deviceId });
        this.#log({ event: 'node.offline', device_id: deviceId });
        this.#peers?.liveChanged(deviceId, false);
      }
    };
  }

  /**
   * Work was queued for `deviceId`: the newest of its streams that negotiated push and can still write sends it now
   * (after a renewal that is the new certificate's stream; the old one is draining). Without one, the work waits for
   * the next event on any of its streams.
   */
  #pushQueued(deviceId: string): void {
    const pushers = this.#live.get(deviceId)?.pushers;
    if (pushers === null || pushers === undefined) return;
    const newestFirst = [...pushers.values()].reverse();
    for (const push of newestFirst) if (push()) return;
  }

  #streamOpened(fingerprint: string, stream: NodeStream): () => void {
    let streams = this.#streamsByFingerprint.get(fingerprint);
    if (streams === undefined) {
      streams = new Set();
      this.#streamsByFingerprint.set(fingerprint, streams);
    }
    streams.add(stream);
    return () => {
      const set = this.#streamsByFingerprint.get(fingerprint);
      set?.delete(stream);
      if (set?.size === 0) this.#streamsByFingerprint.delete(fingerprint);
    };
  }

  /** Ends `stream` with `error` once; resolves when the status has left (or the flush grace is over). */
  #endRevokedStream(stream: NodeStream, error: PalyraError): Promise<void> {
    if (this.#endedStreams.has(stream)) return Promise.resolve();
    this.#endedStreams.add(stream);
    return endStreamAndFlush(stream, error, REVOCATION_FLUSH_GRACE_MS);
  }

  #watchState(): void {
    const hex = (key: string) => Buffer.from(key, 'utf8').toString('hex');
    const interesting = new Set([IDENTITY_STATE_KEY, `${IDENTITY_STATE_KEY}.journal`, RUNTIME_STATE_KEY, `${RUNTIME_STATE_KEY}.journal`].map(hex));
    try {
      this.#watcher = watch(this.stateDir, { persistent: false }, (_kind, filename) => {
        const name = filename;
        if (name === null || interesting.has(name)) this.#scheduleRefresh();
      });
      this.#watcher.on('error', () => undefined);
    } catch {
      this.#watcher = null;
    }
    const poll = setInterval(() => {
      this.#scheduleRefresh();
    }, STATE_POLL_MS);
    poll.unref();
    this.#timers.push(poll);
  }

  /** Coalesces refresh requests: at most one running and one queued. */
  #scheduleRefresh(): void {
    if (this.#stopped) return;
    if (this.#refreshing !== null) {
      this.#refreshAgain = true;
      return;
    }
    this.#refreshing = this.admin
      .refreshIfChanged()
      .then(() => undefined)
      .catch((e: unknown) => {
        this.#log({ event: 'state.refresh_failed', code: toPalyraError(e).code, message: toPalyraError(e).message });
      })
      .finally(() => {
        this.#refreshing = null;
        if (this.#refreshAgain) {
          this.#refreshAgain = false;
          this.#scheduleRefresh();
        }
      });
  }

  #snapshotKnown(): void {
    this.#knownRequests = new Map(this.admin.listRequests().map((r) => [r.request_id, r.state]));
    this.#paired = new Set(this.admin.identity.listPairedDevices().map((d) => d.device_id));
    this.#revoked = new Set(this.admin.identity.listRevokedDevices().map((d) => d.device_id));
  }

  #onStateChange(change: { identity: boolean; runtime: boolean }): void {
    if (change.identity) {
      // Before anything else: a device that lost the admin role (or was revoked) must not see the events below.
      this.#adminRpc?.enforce();
      this.#enforceRevocation();
    }
    if (change.runtime) {
      for (const request of this.admin.listRequests()) {
        const before = this.#knownRequests.get(request.request_id);
        if (before === undefined) this.#emit({ type: 'request.created', request });
        else if (before !== request.state) this.#emit({ type: 'request.updated', request });
        this.#knownRequests.set(request.request_id, request.state);
      }
    }
    if (change.identity) {
      const paired = new Set(this.admin.identity.listPairedDevices().map((d) => d.device_id));
      for (const id of paired) if (!this.#paired.has(id)) this.#emit({ type: 'device.paired', device_id: id });
      const revoked = this.admin.identity.listRevokedDevices();
      for (const r of revoked) if (!this.#revoked.has(r.device_id)) this.#emit({ type: 'device.revoked', device_id: r.device_id, reason: r.reason });
      this.#paired = paired;
      this.#revoked = new Set(revoked.map((r) => r.device_id));
      this.#emit({ type: 'devices.changed' });
    }
  }

  /**
   * Ends the streams and sockets of every device whose certificate no longer maps (revoked, removed, superseded),
   * then refreshes the CRL for new handshakes. Streams get PERMISSION_DENIED first so devices can tell revocation
   * from a network failure.
   */
  #enforceRevocation(): void {
    const identity = this.admin.identity;
    const flushes: Promise<void>[] = [];
    for (const [deviceId, live] of this.#live) {
      const device = identity.pairedDevice(deviceId);
      if (device !== undefined && this.mtlsRequired) continue;
      if (device !== undefined && !identity.isDeviceRevoked(deviceId)) continue;
      if (!this.mtlsRequired && !identity.isDeviceRevoked(deviceId)) continue;
      const reason = identity.isDeviceRevoked(deviceId) ? 'device is revoked' : 'device certificate is revoked';
      for (const stream of live.streams) flushes.push(this.#endRevokedStream(stream, new PalyraError('device_revoked', reason)));
      this.dispatcher.cancelDevice(deviceId, reason);
    }
    // Streams that never sent an event are not in #live yet; their certificate tells.
    const now = this.#clock();
    const inGrace = (fp: string): boolean => (this.#rotationGrace.get(fp) ?? 0) > now && !this.#revokedDeviceOf(fp);
    for (const [fingerprint, streams] of this.#streamsByFingerprint) {
      if (identity.deviceIdForCertificateFingerprint(fingerprint) !== undefined || inGrace(fingerprint)) continue;
      const error = this.#revokedDeviceOf(fingerprint)
        ? new PalyraError('device_revoked', 'device is revoked')
        : new PalyraError('certificate_revoked', 'node RPC client certificate fingerprint is revoked');
      for (const stream of streams) flushes.push(this.#endRevokedStream(stream, error));
    }
    // Sockets close only once every status has left (the HTTP/2 streams closed, bounded by the flush grace), so a
    // device always learns PERMISSION_DENIED rather than a dropped connection. Only those unmapped now: one revoked
    // after this point gets its own full wait (its RevokeDevicePairing answer).
    const unmapped = new Set<string>();
    this.#listener.closeConnections((fp) => {
      if (fp !== null && identity.deviceIdForCertificateFingerprint(fp) === undefined) unmapped.add(fp);
      return false;
    });
    if (unmapped.size === 0 && flushes.length === 0) {
      void this.#refreshCrl();
      return;
    }
    const minimum = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, REVOCATION_STATUS_FLUSH_MS);
      timer.unref();
    });
    void Promise.all([minimum, ...flushes]).then(() => {
      if (this.#stopped) return;
      const later = this.#clock();
      const stillInGrace = (fp: string): boolean => (this.#rotationGrace.get(fp) ?? 0) > later && !this.#revokedDeviceOf(fp);
      const closed = this.#listener.closeConnections(
        (fp) => fp !== null && unmapped.has(fp) && identity.deviceIdForCertificateFingerprint(fp) === undefined && !stillInGrace(fp),
      );
      if (closed > 0) this.#log({ event: 'revocation.enforced', connections_closed: closed, streams_ended: flushes.length });
    });
    void this.#refreshCrl();
  }

  /** Whether the certificate belongs to a device that is now banned (no grace for those). */
  #revokedDeviceOf(fingerprint: string): boolean {
    const record = this.admin.identity.revokedCertificates().find((r) => r.fingerprint === fingerprint);
    return record?.device_id != null && this.admin.identity.isDeviceRevoked(record.device_id);
  }

  /** Re-issues the CRL for new handshakes and rewrites crl.pem (`force`: even when the serials are unchanged). */
  async #refreshCrl(force = false): Promise<void> {
    const identity = this.admin.identity;
    try {
      const pem = await identity.publishCrl({ force }).catch((e: unknown) => {
        this.#log({ event: 'crl.publish_failed', message: toPalyraError(e).message });
        return identity.crlPem();
      });
      this.#listener.updateSecureContext({ crlPem: pem });
    } catch (e) {
      this.#log({ event: 'crl.refresh_failed', message: toPalyraError(e).message });
    }
  }

  /** Renews the server certificate at two thirds of its life, without a restart. */
  #scheduleRenewal(expiresAt: number, issuedAt: number): void {
    const delay = Math.max(1000, issuedAt + ((expiresAt - issuedAt) * 2) / 3 - this.#clock());
    const timer = setTimeout(() => {
      void (async () => {
        try {
          const cert = await Gateway.#issueServerCertificate(this.admin, this.#listener.host, this.#serverNames, this.#validityMs);
          this.#listener.updateSecureContext({ serverCertificatePem: cert.certificatePem, serverPrivateKeyPem: cert.privateKeyPem });
          this.#log({ event: 'server_certificate.renewed', fingerprint: cert.fingerprint, expires_at_unix_ms: cert.expiresAtUnixMs });
          this.#scheduleRenewal(cert.expiresAtUnixMs, cert.issuedAtUnixMs);
        } catch (e) {
          this.#log({ event: 'server_certificate.renewal_failed', message: toPalyraError(e).message });
          this.#scheduleRenewal(this.#clock() + 60_000 * 3, this.#clock());
        }
      })();
    }, Math.min(delay, 2 ** 31 - 1));
    timer.unref();
    this.#timers.push(timer);
  }

  /** Stops accepting, ends streams and calls, removes the running-gateway marker. Resolves within about 2 s. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    // The goodbye goes out while the port still answers, so browsers drop the gateway before it disappears.
    await this.#announcer?.stop().catch(() => undefined);
    this.#watcher?.close();
    this.dispatcher.cancelAll('gateway is stopping');
    this.#adminRpc?.close(new PalyraError('unavailable', 'gateway is stopping'));
    for (const live of this.#live.values()) for (const stream of live.streams) stream.destroy(toServiceError(new PalyraError('unavailable', 'gateway is stopping')));
    await this.#listener.close(1000);
    this.#grpc.forceShutdown();
    for (const side of this.#sideServers) side.forceShutdown();
    await this.#refreshing?.catch(() => undefined);
    // Lookup failures counted in memory reach the journal and the audit log before the state closes.
    await this.pairing.close().catch(() => undefined);
    // A worker's primary owns gateway.v1.json.
    if (this.#peers === null) await removeGatewayInfo(this.stateDir).catch(() => undefined);
    await this.admin.audit('gateway_stopped', { listen: this.listen }).catch(() => undefined);
    await this.admin.close();
  }
}
