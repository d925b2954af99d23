/**
 * How the contract travels over Electron IPC: each channel is the `ipcMain.handle` channel `palyra:<name>`, and
 * every event crosses on the one channel `palyra:event` as `{event, payload}`. Shared by preload and the Electron
 * main process so the two can never disagree on a name. Renderer-safe: no node, no electron.
 */

import { isEventName } from './contract.js';
import type { ChannelName, EventName } from './contract.js';

export const IPC_CHANNEL_PREFIX = 'palyra:';
/** The one main → renderer channel; never a channel name of the contract (those all contain a dot). */
export const IPC_EVENT_CHANNEL = 'palyra:event';

export function ipcChannelOf(channel: ChannelName): string {
  return `${IPC_CHANNEL_PREFIX}${channel}`;
}

export interface IpcEventMessage {
  readonly event: EventName;
  readonly payload: unknown;
}

/** A message on `palyra:event` that names an event of the contract; anything else is dropped by the receiver. */
export function isIpcEventMessage(value: unknown): value is IpcEventMessage {
  if (typeof value !== 'object' || value === null) return false;
  return isEventName((value as { event?: unknown }).event) && Object.hasOwn(value, 'payload');
}
