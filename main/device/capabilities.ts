/**
 * What a device does for its gateway (REFERENCE.md §1.12, §3.11): the first-party node capabilities and the
 * `capability.result` payload. `desktop.open_url` needs local mediation: it runs only when the person at the device
 * confirms (the app's `confirmOpenUrl`), only for http/https, and the agent itself never opens anything.
 */

import type { ClientKind } from '../core/client-kind.js';

export const CAPABILITY_ECHO = 'echo';
export const CAPABILITY_HEALTH = 'system.health';
export const CAPABILITY_IDENTITY = 'system.identity';
export const CAPABILITY_NOTIFY = 'desktop.notify';
export const CAPABILITY_OPEN_URL = 'desktop.open_url';

/** Registered with RegisterNode, in this order. */
export const NODE_CAPABILITIES = [CAPABILITY_ECHO, CAPABILITY_HEALTH, CAPABILITY_IDENTITY, CAPABILITY_NOTIFY, CAPABILITY_OPEN_URL] as const;

/** Capabilities that announce `capability.awaiting_local_mediation` before they run. */
export const MEDIATED_CAPABILITIES: ReadonlySet<string> = new Set([CAPABILITY_OPEN_URL]);

/** The error of a mediated capability nobody confirmed. */
export const DENIED_LOCALLY = 'denied locally';
/** Longest title/body handed to a notification, and longest URL handed to the confirmation. */
const MAX_NOTIFY_TEXT = 1_000;
const MAX_URL_LENGTH = 2_048;

export interface CapabilityHost {
  readonly deviceId: string;
  readonly identityFingerprint: string;
  readonly clientKind: ClientKind;
  readonly platform: string;
  readonly certificateFingerprint: string | null;
  readonly certExpiresAtUnixMs: number | null;
  readonly gatewayCaFingerprint: string | null;
  readonly uptimeMs: number;
  /** Asks the person at the device; true = they agreed and the app opened it. Absent = headless: always denied. */
  readonly confirmOpenUrl?: ((url: string) => Promise<boolean>) | undefined;
  readonly notify?: ((title: string, body: string) => void) | undefined;
  readonly log: (line: Record<string, unknown>) => void;
}

export type CapabilityOutcome =
  | { readonly state: 'succeeded'; readonly output: unknown }
  | { readonly state: 'failed' | 'denied'; readonly error: string };

/** The `capability.result` payload `{request_id, success, output_json, error}` and the final state. */
export interface CapabilityResultPayload {
  readonly payload: { request_id: string; success: boolean; output_json: unknown; error: string };
  readonly state: 'succeeded' | 'failed' | 'denied';
}

function failed(error: string): CapabilityOutcome {
  return { state: 'failed', error };
}

/** `input_json` as a value: empty means null; anything unparsable is the caller's failure. */
export function parseCapabilityInput(inputJson: Uint8Array): { ok: true; value: unknown } | { ok: false; error: string } {
  if (inputJson.length === 0) return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(Buffer.from(inputJson).toString('utf8')) as unknown };
  } catch {
    return { ok: false, error: 'capability input is not valid JSON' };
  }
}

function objectInput(input: unknown): Record<string, unknown> | null {
  return typeof input === 'object' && input !== null && !Array.isArray(input) ? (input as Record<string, unknown>) : null;
}

/** An absolute http(s) URL, or null. */
export function httpUrl(text: unknown): string | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_URL_LENGTH) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

async function openUrl(input: unknown, host: CapabilityHost): Promise<CapabilityOutcome> {
  const raw = typeof input === 'string' ? input : objectInput(input)?.url;
  const url = httpUrl(raw);
  if (url === null) return failed('desktop.open_url needs {"url"} with an absolute http or https URL');
  if (host.confirmOpenUrl === undefined) return { state: 'denied', error: DENIED_LOCALLY };
  let confirmed: boolean;
  try {
    confirmed = await host.confirmOpenUrl(url);
  } catch {
    confirmed = false;
  }
  return confirmed ? { state: 'succeeded', output: { opened: true, url } } : { state: 'denied', error: DENIED_LOCALLY };
}

function notify(input: unknown, host: CapabilityHost): CapabilityOutcome {
  const o = objectInput(input);
  const title = o?.title;
  const body = o?.body ?? '';
  if (typeof title !== 'string' || title.trim() === '' || typeof body !== 'string') {
    return failed('desktop.notify needs {"title","body"} strings');
  }
  const t = title.slice(0, MAX_NOTIFY_TEXT);
  const b = body.slice(0, MAX_NOTIFY_TEXT);
  if (host.notify !== undefined) {
    try {
      host.notify(t, b);
    } catch {
      return failed('the notification could not be shown');
    }
    return { state: 'succeeded', output: { delivered: true } };
  }
  host.log({ event: 'desktop.notify', title: t, body: b });
  return { state: 'succeeded', output: { delivered: false, logged: true } };
}

/** Runs one capability; never throws (a failure is an outcome). */
export async function runCapability(capability: string, inputJson: Uint8Array, host: CapabilityHost): Promise<CapabilityOutcome> {
  const input = parseCapabilityInput(inputJson);
  if (!input.ok) return failed(input.error);
  switch (capability) {
    case CAPABILITY_ECHO:
      return { state: 'succeeded', output: input.value };
    case CAPABILITY_HEALTH:
      return {
        state: 'succeeded',
        output: { status: 'ok', platform: host.platform, uptime_ms: Math.max(0, Math.round(host.uptimeMs)), cert_expires_at_unix_ms: host.certExpiresAtUnixMs },
      };
    case CAPABILITY_IDENTITY:
      return {
        state: 'succeeded',
        output: {
          device_id: host.deviceId,
          identity_fingerprint: host.identityFingerprint,
          client_kind: host.clientKind,
          platform: host.platform,
          certificate_fingerprint: host.certificateFingerprint,
          gateway_ca_fingerprint: host.gatewayCaFingerprint,
        },
      };
    case CAPABILITY_NOTIFY:
      return notify(input.value, host);
    case CAPABILITY_OPEN_URL:
      return openUrl(input.value, host);
    default:
      return failed(`unknown capability '${capability.slice(0, 128)}'`);
  }
}

/**
 * The `capability.result` payload for an outcome. An output whose JSON is larger than max(max_payload_bytes, 1)
 * bytes is replaced by the error `capability output exceeds max_payload_bytes=N` (REFERENCE.md §3.11).
 */
export function capabilityResultPayload(requestId: string, outcome: CapabilityOutcome, maxPayloadBytes: number): CapabilityResultPayload {
  if (outcome.state !== 'succeeded') {
    return { payload: { request_id: requestId, success: false, output_json: null, error: outcome.error }, state: outcome.state };
  }
  const limit = Math.max(Number.isFinite(maxPayloadBytes) ? Math.floor(maxPayloadBytes) : 0, 1);
  const output = outcome.output === undefined ? null : outcome.output;
  const size = Buffer.byteLength(JSON.stringify(output), 'utf8');
  if (size > limit) {
    return {
      payload: { request_id: requestId, success: false, output_json: null, error: `capability output exceeds max_payload_bytes=${limit}` },
      state: 'failed',
    };
  }
  return { payload: { request_id: requestId, success: true, output_json: output, error: '' }, state: 'succeeded' };
}
