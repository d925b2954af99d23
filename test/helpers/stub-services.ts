// Test helper: stand-in services for the browser-mode host where a test is about the transport, not the services.
// Every channel fails with not_found unless overridden; events are pushed with `emit`.
import { PalyraError } from '../../main/core/errors.js';
import type { ChannelHandlers } from '../../main/app/ipc-router.js';
import type { HostedServices } from '../../main/app/browser-host.js';
import { CHANNEL_NAMES } from '../../main/ipc/contract.js';
import type { EventName } from '../../main/ipc/contract.js';

export const STUB_APP_INFO = {
  name: 'Palyra Desktop',
  version: '0.0.0-test',
  mode: 'browser',
  platform: process.platform,
  node_version: process.versions.node,
  electron_version: null,
  device_dir: '/tmp/device',
  state_dir: '/tmp/gateway',
  host_name: 'test-host',
} as const;

export function stubServices(overrides: Partial<Record<string, (args: never) => Promise<unknown>>> = {}): HostedServices & {
  emit(event: EventName, payload: unknown): void;
  listenerCount(): number;
  calls: string[];
} {
  const listeners = new Set<(event: EventName, payload: unknown) => void>();
  const calls: string[] = [];
  const all: Record<string, (args: unknown) => Promise<unknown>> = {};
  const defaults: Record<string, (args: never) => Promise<unknown>> = { 'app.info': () => Promise.resolve(STUB_APP_INFO) };
  for (const channel of CHANNEL_NAMES) {
    all[channel] = (args) => {
      calls.push(channel);
      const handler = overrides[channel] ?? defaults[channel];
      return handler === undefined ? Promise.reject(new PalyraError('not_found', `${channel} is not stubbed`)) : handler(args as never);
    };
  }
  return {
    handlers: all as unknown as ChannelHandlers,
    calls,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(event, payload) {
      for (const l of listeners) l(event, payload);
    },
    listenerCount: () => listeners.size,
  };
}
