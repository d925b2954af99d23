/**
 * The IPC contract between the renderer and the main-process services: every channel with its argument and
 * result schema, every event with its payload schema. The Electron main process and the browser-mode host
 * validate arguments with these schemas before any handler runs; preload and the browser adapter expose one typed
 * method per channel (no generic invoke). Errors cross as `{code, message}` with codes from the error catalogue.
 *
 * Renderer-safe: no node, no electron, only zod and types.
 */

import { z } from 'zod';
import type { ErrorCode } from '../core/errors.js';

// In a page (the renderer, preload), zod must not probe for `new Function` to compile its fast paths: the renderer's
// CSP (script-src without 'unsafe-eval') refuses it, and even a refused, caught probe is a reported violation.
if (typeof document !== 'undefined') z.config({ jitless: true });

const id26 = z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'must be a canonical 26-character id');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const unixMs = z.number().int().nonnegative();
const clientKind = z.enum(['desktop', 'node', 'cli']);
const reason = z.string().max(512);
const hostPort = z.string().min(3).max(300);
const empty = z.strictObject({});

/** The first-run choice: join a gateway (pair this device) or host one here. */
export const StartChoiceSchema = z.enum(['join', 'host']);
/**
 * `choice`: what was chosen (persisted), null before; `needed`: ask now — nothing chosen, this device neither paired
 * nor revoked, and no gateway hosted here (settings: enabled).
 */
export const FirstRunSchema = z.object({ choice: StartChoiceSchema.nullable(), needed: z.boolean() });

export const KeychainStateSchema = z.enum(['os', 'file', 'locked']);

export const DeviceStatusSchema = z.object({
  device_id: id26.nullable(),
  identity_fingerprint: hex64.nullable(),
  paired: z.boolean(),
  revoked: z.boolean(),
  gateway: z.string().nullable(),
  gateway_name: z.string().nullable(),
  ca_fingerprint: hex64.nullable(),
  pinned_by: z.enum(['qr', 'pin', 'tofu']).nullable(),
  cert_expires_at_unix_ms: unixMs.nullable(),
  keychain: KeychainStateSchema,
  connection: z.enum(['offline', 'connecting', 'online']),
  renewal: z.enum(['idle', 'renewing', 'failed']),
  /**
   * Additive: why a revoked device is refused, as its gateway said it (null while not revoked): `banned` — the device
   * is revoked (it may pair again only once unbanned); `removed` — only its certificate is revoked (the operator
   * removed it: it may pair again with a new code); `refused` — refused at the TLS handshake, which does not say which.
   */
  revocation: z.enum(['banned', 'removed', 'refused']).nullable().optional(),
});

export const PairingProgressSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('connecting'), gateway: z.string() }),
  z.object({ type: z.literal('verifying_gateway'), gateway: z.string(), ca_fingerprint: z.string(), ca_pin: z.string(), pinned: z.boolean() }),
  z.object({
    type: z.literal('awaiting_approval'),
    sas: z.string(),
    request_id: z.string(),
    gateway: z.string(),
    gateway_name: z.string().nullable(),
    sas_status: z.enum(['confirmed', 'compare']).optional(),
    verified_by: z.enum(['qr', 'pin', 'tofu']).optional(),
  }),
  z.object({ type: z.literal('reconnecting'), gateway: z.string(), request_id: z.string(), attempt: z.number().int(), retry_in_ms: z.number().int(), code: z.string() }),
  z.object({ type: z.literal('paired'), device_id: z.string(), gateway: z.string(), cert_expires_at_unix_ms: unixMs }),
  z.object({ type: z.literal('rejected'), reason: z.string().nullable() }),
  z.object({ type: z.literal('expired') }),
  z.object({ type: z.literal('failed'), code: z.string(), message: z.string() }),
]);

export const ScannedPairingSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('uri'),
    uri: z.string(),
    gateways: z.array(z.string()),
    gateway_name: z.string().nullable(),
    ca_pin: z.string(),
    kind: clientKind,
    expires_at_unix_ms: unixMs,
  }),
  z.object({ type: z.literal('token'), token: z.string() }),
]);

/**
 * A display name as typed (bounded here; the main process trims, normalizes and checks it: 1–64 characters, no
 * control characters, else `invalid_argument`).
 */
const deviceNameInput = z.string().max(256);

export const PairStartArgsSchema = z.union([
  z.strictObject({ method: z.literal('uri'), uri: z.string().min(1).max(2048), kind: clientKind.optional(), device_name: deviceNameInput.optional() }),
  z.strictObject({ method: z.literal('token'), token: z.string().min(16).max(128), gateway: hostPort, kind: clientKind.optional(), device_name: deviceNameInput.optional() }),
  z.strictObject({ method: z.literal('pin'), pin: z.string().regex(/^[0-9]{6}$/, 'a PIN is 6 digits'), gateway: hostPort, kind: clientKind.optional(), device_name: deviceNameInput.optional() }),
]);

export const GatewayStatusSchema = z.object({
  enabled: z.boolean(),
  running: z.boolean(),
  listen: z.string().nullable(),
  name: z.string().nullable(),
  ca_fingerprint: hex64.nullable(),
  ca_pin: z.string().nullable(),
  mtls_required: z.boolean(),
  insecure_opt_out: z.boolean(),
  state_dir: z.string(),
  key_location: z.enum(['os', 'file', 'memory']).nullable(),
  /** While the hosted gateway runs: 'keychain' = rollback of the state is detected (anchor in the OS keychain); 'none' = key file mode, it is not. */
  rollback_protection: z.enum(['keychain', 'none']).nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  /**
   * Which gateway the gateway.* operator channels act on: 'hosted' = the gateway this app runs; 'remote' = the gateway
   * this device is paired with as an administrator (over GatewayAdmin with its mTLS identity); 'local_state' = no
   * running hosted gateway, the state dir on this machine.
   */
  managed: z.enum(['hosted', 'remote', 'local_state']),
  /** The managed remote gateway (managed 'remote'), else null. */
  remote_gateway: z.object({ address: z.string(), name: z.string().nullable() }).nullable(),
  /** Round 2, additive. Who the hosted gateway is for: 'local' = this computer only, 'lan' = devices on this network. */
  network: z.enum(['local', 'lan']).optional(),
  /** While the hosted gateway runs: every address devices can dial (what its QR codes carry); else empty. */
  addresses: z.array(z.string()).optional(),
  /** While the hosted gateway runs: whether it is announced over DNS-SD. */
  announced: z.boolean().optional(),
  /** The announce setting (DNS-SD while on 'lan'). */
  announce: z.boolean().optional(),
  /** Additive (issue 15): where the hosted gateway's trust state is, as configured: 'file' = the state dir, 'postgres' = a database. */
  backend: z.enum(['file', 'postgres']).optional(),
  /** The configured database URL, redacted (no password, no query); null on the file backend. */
  database: z.string().nullable().optional(),
});

/** A gateway that announced itself over DNS-SD (a hint for PIN pairing; trust still comes from the pin). */
export const DiscoveredGatewaySchema = z.object({
  name: z.string(),
  addresses: z.array(z.string()),
  ca_pin_prefix: z.string(),
  protocol_versions: z.array(z.number().int()),
  host: z.string(),
});

export const MintedCodeSchema = z.object({
  method: z.enum(['qr', 'pin']),
  code: z.string(),
  uri: z.string().nullable(),
  expires_at_unix_ms: unixMs,
});

export const CodeViewSchema = z.object({ method: z.enum(['qr', 'pin']), expires_at_unix_ms: unixMs, kind: clientKind.nullable() });

export const RequestViewSchema = z.object({
  request_id: z.string(),
  device_id: z.string(),
  client_kind: clientKind,
  state: z.enum(['pending_approval', 'approved', 'rejected', 'completed', 'expired', 'cancelled']),
  method: z.enum(['pin', 'qr']),
  sas: z.string(),
  sas_verifiable: z.boolean(),
  sas_status: z.enum(['confirmed', 'compare', 'unverifiable']),
  identity_fingerprint: z.string(),
  requested_at_unix_ms: unixMs,
  expires_at_unix_ms: unixMs,
  decided_at_unix_ms: unixMs.nullable(),
  reason: z.string().nullable(),
  /** The name the device sent (or the gateway derived); null for a request from before names. */
  device_name: z.string().nullable().default(null),
});

export const DeviceViewSchema = z.object({
  device_id: z.string(),
  client_kind: clientKind.nullable(),
  status: z.enum(['paired', 'revoked']),
  identity_fingerprint: z.string().nullable(),
  certificate_fingerprint: z.string().nullable(),
  cert_expires_at_unix_ms: unixMs.nullable(),
  last_seen_at_unix_ms: unixMs.nullable(),
  capabilities: z.array(z.string()),
  roles: z.array(z.string()),
  paired_at_unix_ms: unixMs.nullable(),
  revoked_at_unix_ms: unixMs.nullable(),
  revoked_reason: z.string().nullable(),
  platform: z.string().nullable(),
  online: z.boolean(),
  /** Display name; null for a device paired before names. */
  name: z.string().nullable().default(null),
  method: z.enum(['qr', 'pin']).nullable().default(null),
  /** Peer address (no port) of its last RegisterNode. */
  last_address: z.string().nullable().default(null),
});

export const AuditEntrySchema = z.object({
  seq: z.number().int(),
  ts_ms: unixMs,
  event: z.string(),
  fields: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  prev: z.string(),
  hash: z.string(),
});

export const GatewayEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('request.created'), request: RequestViewSchema }),
  z.object({ type: z.literal('request.updated'), request: RequestViewSchema }),
  z.object({ type: z.literal('device.paired'), device_id: z.string() }),
  z.object({ type: z.literal('device.revoked'), device_id: z.string(), reason: z.string() }),
  z.object({ type: z.literal('devices.changed') }),
  z.object({ type: z.literal('node.online'), device_id: z.string() }),
  z.object({ type: z.literal('node.offline'), device_id: z.string() }),
]);

export const DeviceEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('connection'), state: z.enum(['offline', 'connecting', 'online']), attempt: z.number().optional(), retry_in_ms: z.number().optional(), code: z.string().optional() }),
  z.object({ type: z.literal('renewed'), cert_expires_at_unix_ms: unixMs }),
  z.object({ type: z.literal('renewal_failed'), code: z.string() }),
  z.object({ type: z.literal('revoked'), reason: z.string() }),
  z.object({ type: z.literal('reauth_required'), reason: z.string() }),
  z.object({ type: z.literal('capability'), request_id: z.string(), capability: z.string(), state: z.enum(['started', 'succeeded', 'failed', 'denied']) }),
  z.object({ type: z.literal('unpaired') }),
]);

export const AppInfoSchema = z.object({
  name: z.string(),
  version: z.string(),
  mode: z.enum(['electron', 'browser']),
  platform: z.string(),
  node_version: z.string(),
  electron_version: z.string().nullable(),
  device_dir: z.string(),
  state_dir: z.string(),
  /** This computer's host name: the default display name when pairing. */
  host_name: z.string().default(''),
});

/** Every request/response channel. Names are `area.action`; preload exposes each as one method. */
export const CHANNELS = {
  'app.info': { args: empty, result: AppInfoSchema },

  'app.firstRun': { args: empty, result: FirstRunSchema },
  'app.chooseStart': { args: z.strictObject({ choice: StartChoiceSchema }), result: FirstRunSchema },
  'device.status': { args: empty, result: DeviceStatusSchema },
  'device.parseScan': { args: z.strictObject({ text: z.string().min(1).max(4096) }), result: ScannedPairingSchema },
  'device.pairStart': { args: PairStartArgsSchema, result: z.object({ pairing_id: z.string() }) },
  'device.pairCancel': { args: z.strictObject({ pairing_id: z.string().min(1).max(64) }), result: z.object({ cancelled: z.boolean() }) },
  'device.unpair': { args: empty, result: z.object({ unpaired: z.boolean() }) },
  // "Reconnect now": an offline paired device tries its gateway at once, with its backoff reset.
  'device.reconnect': { args: empty, result: z.object({ reconnecting: z.boolean() }) },

  'gateway.status': { args: empty, result: GatewayStatusSchema },
  'gateway.configure': {
    args: z.strictObject({
      enabled: z.boolean(),
      listen: hostPort.optional(),
      name: z.string().max(64).nullable().optional(),
      /** Moves the listen host to 127.0.0.1 ('local') or every interface ('lan'), keeping the port. */
      network: z.enum(['local', 'lan']).optional(),
      announce: z.boolean().optional(),
      /**
       * Additive (issue 15): a postgres:// or postgresql:// URL = host the trust state in PostgreSQL (the URL goes to the
       * keychain, never to settings.json); null = back to the file backend; omitted = unchanged.
       */
      database_url: z.string().min(1).max(2048).nullable().optional(),
    }),
    result: GatewayStatusSchema,
  },
  'gateway.mintCode': {
    args: z.strictObject({ method: z.enum(['qr', 'pin']), kind: clientKind.optional(), ttl_ms: z.number().int().min(30_000).max(86_400_000).optional() }),
    result: MintedCodeSchema,
  },
  'gateway.listCodes': { args: empty, result: z.object({ codes: z.array(CodeViewSchema) }) },
  'gateway.listRequests': {
    args: z.strictObject({ state: RequestViewSchema.shape.state.optional() }),
    result: z.object({ requests: z.array(RequestViewSchema) }),
  },
  'gateway.approve': { args: z.strictObject({ request_id: id26, reason: reason.optional() }), result: RequestViewSchema },
  'gateway.reject': { args: z.strictObject({ request_id: id26, reason: reason.optional() }), result: RequestViewSchema },
  'gateway.listDevices': {
    args: empty,
    result: z.object({ devices: z.array(DeviceViewSchema), revoked_certificate_fingerprints: z.array(z.string()) }),
  },
  'gateway.revokeDevice': { args: z.strictObject({ device_id: id26, reason: reason.optional() }), result: z.object({ device_id: z.string() }) },
  'gateway.removeDevice': { args: z.strictObject({ device_id: id26 }), result: z.object({ device_id: z.string() }) },
  'gateway.unbanDevice': { args: z.strictObject({ device_id: id26 }), result: z.object({ device_id: z.string() }) },
  /** Sets a paired device's display name (audited); not paired → `not_found`, a bad name → `invalid_argument`. */
  'gateway.renameDevice': { args: z.strictObject({ device_id: id26, name: deviceNameInput }), result: DeviceViewSchema },
  /** Grants a paired device the admin role (the hosted gateway or the local state dir only: a remote admin cannot). */
  'gateway.grantAdmin': { args: z.strictObject({ device_id: id26 }), result: DeviceViewSchema },
  /** Withdraws a paired device's admin role (the hosted gateway or the local state dir only). */
  'gateway.revokeAdmin': { args: z.strictObject({ device_id: id26 }), result: DeviceViewSchema },
  /** Browses DNS-SD for `timeout_ms` (default 2 s) and lists the gateways that answered. */
  'discovery.list': {
    args: z.strictObject({ timeout_ms: z.number().int().min(200).max(10_000).optional() }),
    result: z.object({ gateways: z.array(DiscoveredGatewaySchema) }),
  },
  'gateway.auditTail': {
    args: z.strictObject({ count: z.number().int().min(1).max(1000) }),
    result: z.object({
      entries: z.array(AuditEntrySchema),
      chain: z.object({ ok: z.boolean(), entries: z.number().int(), brokenAtSeq: z.number().int().optional(), reason: z.string().optional() }),
    }),
  },
} as const;

/** Every main → renderer event. */
export const EVENTS = {
  'device.pairing': z.object({ pairing_id: z.string(), progress: PairingProgressSchema }),
  'device.status': DeviceStatusSchema,
  'device.event': DeviceEventSchema,
  'gateway.status': GatewayStatusSchema,
  'gateway.event': GatewayEventSchema,
  /** A palyra://pair link was opened; the UI asks the user before pairing. */
  'app.deepLink': z.object({ uri: z.string() }),
  /** The user clicked a request notification (request_id) or the tray's review item (null): show the approval view. */
  'app.openRequests': z.object({ request_id: z.string().nullable() }),
} as const;

export type ChannelName = keyof typeof CHANNELS;
export type EventName = keyof typeof EVENTS;
export type ChannelArgs<C extends ChannelName> = z.input<(typeof CHANNELS)[C]['args']>;
export type ChannelResult<C extends ChannelName> = z.output<(typeof CHANNELS)[C]['result']>;
export type EventPayload<E extends EventName> = z.output<(typeof EVENTS)[E]>;

export const CHANNEL_NAMES = Object.keys(CHANNELS) as ChannelName[];
export const EVENT_NAMES = Object.keys(EVENTS) as EventName[];

/** What crosses the boundary for every call: a result or a coded error, never a thrown object. */
export type IpcEnvelope<T> = { ok: true; result: T } | { ok: false; error: IpcError };

export interface IpcError {
  code: ErrorCode | 'invalid_argument' | 'internal';
  message: string;
}

export function isChannelName(value: unknown): value is ChannelName {
  return typeof value === 'string' && Object.hasOwn(CHANNELS, value);
}

export function isEventName(value: unknown): value is EventName {
  return typeof value === 'string' && Object.hasOwn(EVENTS, value);
}

/** Validates arguments; a failure is an `invalid_argument` error naming the field, never an exception. */
export function parseChannelArgs<C extends ChannelName>(channel: C, args: unknown): { ok: true; value: z.output<(typeof CHANNELS)[C]['args']> } | { ok: false; error: IpcError } {
  const parsed = CHANNELS[channel].args.safeParse(args ?? {});
  if (parsed.success) return { ok: true, value: parsed.data as z.output<(typeof CHANNELS)[C]['args']> };
  const issue = parsed.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'arguments' : issue.path.join('.');
  return { ok: false, error: { code: 'invalid_argument', message: `${channel}: ${where}: ${issue?.message ?? 'invalid'}` } };
}

/** Validates a handler's result before it leaves the main process (a bug there must not leak odd shapes). */
export function parseChannelResult<C extends ChannelName>(channel: C, result: unknown): { ok: true; value: ChannelResult<C> } | { ok: false; error: IpcError } {
  const parsed = CHANNELS[channel].result.safeParse(result);
  if (parsed.success) return { ok: true, value: parsed.data as ChannelResult<C> };
  return { ok: false, error: { code: 'internal', message: `${channel}: the main process produced an invalid result` } };
}

// --- the typed API preload and the browser adapter expose --------------------------------------------------------

type CamelAfterDot<S extends string> = S extends `${infer A}.${infer B}` ? `${A}${Capitalize<B>}` : S;

/** `device.pairStart` → `devicePairStart`: one method per channel. */
export type MethodName<C extends ChannelName> = CamelAfterDot<C>;

export type PalyraApi = {
  [C in ChannelName as MethodName<C>]: (args: ChannelArgs<C>) => Promise<ChannelResult<C>>;
} & {
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
};

export function methodNameOf(channel: ChannelName): string {
  const [area, action] = channel.split('.') as [string, string];
  return `${area}${action.charAt(0).toUpperCase()}${action.slice(1)}`;
}

/** The error type the API methods reject with. */
export class PalyraIpcError extends Error {
  readonly code: string;
  constructor(error: IpcError) {
    super(error.message);
    this.name = 'PalyraIpcError';
    this.code = error.code;
  }
}

/** Builds the typed API over any transport (Electron IPC in preload, WebSocket in browser mode). */
export function createPalyraApi(transport: {
  invoke(channel: ChannelName, args: unknown): Promise<IpcEnvelope<unknown>>;
  subscribe(event: EventName, listener: (payload: unknown) => void): () => void;
}): PalyraApi {
  const api: Record<string, unknown> = {};
  for (const channel of CHANNEL_NAMES) {
    api[methodNameOf(channel)] = async (args: unknown) => {
      const envelope = await transport.invoke(channel, args ?? {});
      if (!envelope.ok) throw new PalyraIpcError(envelope.error);
      return envelope.result;
    };
  }
  api.on = (event: EventName, listener: (payload: unknown) => void) => transport.subscribe(event, listener);
  return Object.freeze(api) as unknown as PalyraApi;
}

/** Event listeners by name, shared by preload and the browser adapter: one failing listener never starves the rest. */
export class EventListeners {
  readonly #listeners = new Map<EventName, Set<(payload: unknown) => void>>();

  subscribe(event: EventName, listener: (payload: unknown) => void): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => {
      this.#listeners.get(event)?.delete(listener);
    };
  }

  /** Calls every listener of `event`; a listener's exception goes to `onError` instead of the other listeners. */
  emit(event: EventName, payload: unknown, onError: (error: unknown) => void = () => undefined): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(payload);
      } catch (error) {
        onError(error);
      }
    }
  }
}
