import { getContext, setContext } from 'svelte';
import { Announcer } from './announcer.svelte.js';
import { requirePalyra, type PalyraApi } from './api.js';
import { DeepLinkStore } from './deep-link.svelte.js';
import { DevicesStore } from './devices.svelte.js';
import { DeviceStore } from './device.svelte.js';
import { GatewayStore } from './gateway.svelte.js';
import { PairingStore } from './pairing.svelte.js';

export interface Stores {
  readonly api: PalyraApi;
  readonly device: DeviceStore;
  readonly pairing: PairingStore;
  readonly gateway: GatewayStore;
  readonly devices: DevicesStore;
  readonly deepLink: DeepLinkStore;
  /** The app's one polite live region (rendered by App; a view tested on its own just sets its text). */
  readonly announcer: Announcer;
}

const STORES = Symbol('palyra.stores');

export function createStores(api: PalyraApi): Stores {
  return {
    api,
    device: new DeviceStore(api),
    pairing: new PairingStore(api),
    gateway: new GatewayStore(api),
    devices: new DevicesStore(api),
    deepLink: new DeepLinkStore(api),
    announcer: new Announcer(),
  };
}

/** Called once by App: every view below shares these stores. */
export function provideStores(api: PalyraApi): Stores {
  return setContext(STORES, createStores(api));
}

/** The shared stores; a view rendered on its own (a component test) gets fresh ones over window.palyra. */
export function useStores(): Stores {
  return getContext<Stores | undefined>(STORES) ?? setContext(STORES, createStores(requirePalyra()));
}
