// A fake window.palyra for component tests: every API method is a vitest mock with a plausible default answer,
// and `emit` delivers an event to the listeners the app registered with `on`.
import { vi, type Mock } from 'vitest';
import type { ChannelResult, EventName, EventPayload, PalyraApi } from '../../main/ipc/contract.js';

type Methods = Omit<PalyraApi, 'on'>;
export type FakePalyra = { [K in keyof Methods]: Mock<Methods[K]> } & {
  on: PalyraApi['on'];
  emit<E extends EventName>(event: E, payload: EventPayload<E>): void;
  listenerCount(event: EventName): number;
};

export const DEVICE_ID = '01J8ZK4Q6N3V7W2X9Y5T1R0M8P';
export const OTHER_DEVICE_ID = '01J8ZK4Q6N3V7W2X9Y5T1R0M9Q';
export const REQUEST_ID = '01J8ZK5A1B2C3D4E5F6G7H8J9K';
export const FINGERPRINT = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
export const CA_FINGERPRINT = '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0';
export const CA_PIN = 'qUqP5cyxm6YcTAhz05Hph5gvu9M-RKOydJQ1Dt2BSk0';
export const PAIRING_URI = `palyra://pair?v=1&gw=gw.example:7444&m=qr&t=0123456789ABCDEFGHJKMNPQRS&ca=${CA_PIN}&k=desktop&exp=4102444800&n=Office`;

export function deviceStatus(overrides: Partial<ChannelResult<'device.status'>> = {}): ChannelResult<'device.status'> {
  return {
    device_id: DEVICE_ID,
    identity_fingerprint: FINGERPRINT,
    paired: true,
    revoked: false,
    gateway: 'gw.example:7444',
    gateway_name: 'Office',
    ca_fingerprint: CA_FINGERPRINT,
    pinned_by: 'qr',
    cert_expires_at_unix_ms: Date.now() + 3 * 3_600_000,
    keychain: 'os',
    connection: 'online',
    renewal: 'idle',
    ...overrides,
  };
}

/** This device after the gateway revoked it, as main reports it: no longer paired, revoked, its identity and gateway kept. */
export function revokedDeviceStatus(overrides: Partial<ChannelResult<'device.status'>> = {}): ChannelResult<'device.status'> {
  return deviceStatus({ paired: false, revoked: true, connection: 'offline', ...overrides });
}

/** This device after an unpair wiped it: no identity, no gateway. */
export function unpairedDeviceStatus(): ChannelResult<'device.status'> {
  return deviceStatus({
    device_id: null,
    identity_fingerprint: null,
    paired: false,
    revoked: false,
    gateway: null,
    gateway_name: null,
    ca_fingerprint: null,
    pinned_by: null,
    cert_expires_at_unix_ms: null,
    connection: 'offline',
  });
}

export function gatewayStatus(overrides: Partial<ChannelResult<'gateway.status'>> = {}): ChannelResult<'gateway.status'> {
  return {
    enabled: true,
    running: true,
    listen: '0.0.0.0:7444',
    name: 'Office',
    ca_fingerprint: CA_FINGERPRINT,
    ca_pin: CA_PIN,
    mtls_required: true,
    insecure_opt_out: false,
    state_dir: '/home/user/.local/share/palyra',
    key_location: 'os',
    rollback_protection: 'keychain',
    error: null,
    managed: 'hosted',
    remote_gateway: null,
    ...overrides,
  };
}

export type RequestView = ChannelResult<'gateway.listRequests'>['requests'][number];
export type DeviceView = ChannelResult<'gateway.listDevices'>['devices'][number];

export function requestView(overrides: Partial<RequestView> = {}): RequestView {
  const now = Date.now();
  return {
    request_id: REQUEST_ID,
    device_id: DEVICE_ID,
    client_kind: 'desktop',
    state: 'pending_approval',
    method: 'qr',
    sas: '042917',
    sas_verifiable: true,
    sas_status: 'compare',
    identity_fingerprint: FINGERPRINT,
    requested_at_unix_ms: now - 10_000,
    expires_at_unix_ms: now + 290_000,
    decided_at_unix_ms: null,
    reason: null,
    device_name: null,
    ...overrides,
  };
}

export function deviceView(overrides: Partial<DeviceView> = {}): DeviceView {
  const now = Date.now();
  return {
    device_id: DEVICE_ID,
    client_kind: 'desktop',
    status: 'paired',
    identity_fingerprint: FINGERPRINT,
    certificate_fingerprint: CA_FINGERPRINT,
    cert_expires_at_unix_ms: now + 86_400_000,
    last_seen_at_unix_ms: now - 120_000,
    capabilities: ['system.info'],
    roles: ['node'],
    paired_at_unix_ms: now - 3_600_000,
    revoked_at_unix_ms: null,
    revoked_reason: null,
    platform: 'linux',
    online: true,
    name: null,
    method: null,
    last_address: null,
    ...overrides,
  };
}

/** An error shaped like PalyraIpcError: what the API methods reject with. */
export function ipcError(code: string, message = `${code} happened`): Error & { code: string } {
  return Object.assign(new Error(message), { name: 'PalyraIpcError', code });
}

export function createFakePalyra(): FakePalyra {
  const listeners = new Map<EventName, Set<(payload: unknown) => void>>();
  const fake = {
    appInfo: vi.fn(() =>
      Promise.resolve({ name: 'Palyra', version: '0.1.0', mode: 'browser' as const, platform: 'linux', node_version: '20', electron_version: null, device_dir: '/d', state_dir: '/s', host_name: '' }),
    ),
    // Chosen already, so views tested on their own never show the first-run card (first-run.test.ts does).
    appFirstRun: vi.fn(() => Promise.resolve({ choice: 'join', needed: false })),
    appChooseStart: vi.fn((args: { choice: 'join' | 'host' }) => Promise.resolve({ choice: args.choice, needed: false })),
    deviceStatus: vi.fn(() => Promise.resolve(deviceStatus())),
    deviceParseScan: vi.fn(() =>
      Promise.resolve({ type: 'uri' as const, uri: PAIRING_URI, gateways: ['gw.example:7444', '192.0.2.10:7444'], gateway_name: 'Office', ca_pin: CA_PIN, kind: 'desktop' as const, expires_at_unix_ms: Date.now() + 600_000 }),
    ),
    devicePairStart: vi.fn(() => Promise.resolve({ pairing_id: 'pairing-1' })),
    devicePairCancel: vi.fn(() => Promise.resolve({ cancelled: true })),
    deviceUnpair: vi.fn(() => Promise.resolve({ unpaired: true })),
    deviceReconnect: vi.fn(() => Promise.resolve({ reconnecting: true })),
    gatewayStatus: vi.fn(() => Promise.resolve(gatewayStatus())),
    gatewayConfigure: vi.fn((args: { enabled: boolean }) => Promise.resolve(gatewayStatus({ enabled: args.enabled, running: args.enabled }))),
    gatewayMintCode: vi.fn((args: { method: 'qr' | 'pin' }) =>
      Promise.resolve(
        args.method === 'qr'
          ? { method: 'qr' as const, code: '0123456789ABCDEFGHJKMNPQRS', uri: PAIRING_URI, expires_at_unix_ms: Date.now() + 600_000 }
          : { method: 'pin' as const, code: '381054', uri: null, expires_at_unix_ms: Date.now() + 600_000 },
      ),
    ),
    gatewayListCodes: vi.fn(() => Promise.resolve({ codes: [] })),
    gatewayListRequests: vi.fn(() => Promise.resolve({ requests: [] as RequestView[] })),
    gatewayApprove: vi.fn((args: { request_id: string }) => Promise.resolve(requestView({ request_id: args.request_id, state: 'approved' }))),
    gatewayReject: vi.fn((args: { request_id: string }) => Promise.resolve(requestView({ request_id: args.request_id, state: 'rejected' }))),
    gatewayListDevices: vi.fn(() => Promise.resolve({ devices: [] as DeviceView[], revoked_certificate_fingerprints: [] as string[] })),
    gatewayRevokeDevice: vi.fn((args: { device_id: string }) => Promise.resolve({ device_id: args.device_id })),
    gatewayRemoveDevice: vi.fn((args: { device_id: string }) => Promise.resolve({ device_id: args.device_id })),
    gatewayUnbanDevice: vi.fn((args: { device_id: string }) => Promise.resolve({ device_id: args.device_id })),
    gatewayRenameDevice: vi.fn((args: { device_id: string; name: string }) => Promise.resolve(deviceView({ device_id: args.device_id, name: args.name.trim() }))),
    gatewayGrantAdmin: vi.fn((args: { device_id: string }) => Promise.resolve(deviceView({ device_id: args.device_id, roles: ['admin'] }))),
    gatewayRevokeAdmin: vi.fn((args: { device_id: string }) => Promise.resolve(deviceView({ device_id: args.device_id, roles: [] }))),
    gatewayAuditTail: vi.fn(() => Promise.resolve({ entries: [], chain: { ok: true, entries: 0 } })),
    discoveryList: vi.fn(() => Promise.resolve({ gateways: [] as ChannelResult<'discovery.list'>['gateways'] })),
    on(event: EventName, listener: (payload: unknown) => void): () => void {
      let set = listeners.get(event);
      if (set === undefined) {
        set = new Set();
        listeners.set(event, set);
      }
      set.add(listener);
      return () => set.delete(listener);
    },
    emit(event: EventName, payload: unknown): void {
      for (const listener of [...(listeners.get(event) ?? [])]) listener(payload);
    },
    listenerCount(event: EventName): number {
      return listeners.get(event)?.size ?? 0;
    },
  };
  return fake as unknown as FakePalyra;
}

/** Installs the fake as window.palyra (what preload or the browser bridge does for real). */
export function installFakePalyra(): FakePalyra {
  const fake = createFakePalyra();
  (globalThis as { palyra?: unknown }).palyra = fake;
  return fake;
}

export function uninstallFakePalyra(): void {
  delete (globalThis as { palyra?: unknown }).palyra;
}

/** Replaces navigator.clipboard with a recording fake. */
export function mockClipboard(): Mock<(text: string) => Promise<void>> {
  const writeText = vi.fn((_text: string) => Promise.resolve());
  Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
  return writeText;
}
