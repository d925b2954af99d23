import type { ChannelArgs, ChannelResult, EventPayload, PalyraApi } from '../../../main/ipc/contract.js';

export type { ChannelArgs, ChannelResult, EventPayload, PalyraApi };

export type DeviceStatus = ChannelResult<'device.status'>;
export type GatewayStatus = ChannelResult<'gateway.status'>;
export type ScannedPairing = ChannelResult<'device.parseScan'>;
export type PairStartArgs = ChannelArgs<'device.pairStart'>;
export type PairingProgress = EventPayload<'device.pairing'>['progress'];
export type MintedCode = ChannelResult<'gateway.mintCode'>;
export type CodeView = ChannelResult<'gateway.listCodes'>['codes'][number];
export type RequestView = ChannelResult<'gateway.listRequests'>['requests'][number];
export type DeviceView = ChannelResult<'gateway.listDevices'>['devices'][number];
export type GatewayEvent = EventPayload<'gateway.event'>;
export type DeviceEvent = EventPayload<'device.event'>;
export type ClientKind = DeviceView['client_kind'] & string;

/**
 * The API preload (Electron) or the WebSocket bridge (browser mode) installed on `window.palyra`. Read through a
 * cast rather than a global declaration so the renderer and preload/palyra.d.ts never declare it twice.
 */
export function getPalyra(): PalyraApi | undefined {
  return (globalThis as { palyra?: PalyraApi }).palyra;
}

export function requirePalyra(): PalyraApi {
  const api = getPalyra();
  if (api === undefined) throw new Error('window.palyra is not available: neither preload nor the browser bridge installed it');
  return api;
}
