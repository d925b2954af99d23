// Test helpers: a real gateway on 127.0.0.1 with a temp state directory, and paired devices over real TLS.
import * as grpc from '@grpc/grpc-js';
import { Gateway } from '../../main/gateway/gateway.js';
import type { GatewayStartOptions } from '../../main/gateway/gateway.js';
import { DeviceStore } from '../../main/device/device-store.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import type { PairingProgress } from '../../main/device/pairing-client.js';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { createGatewayChannelCredentials, createNodeServiceClient } from '../../main/rpc/tls-client.js';
import type { NodeServiceClient } from '../../main/rpc/node-service.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import { tempDir } from './identity.js';

export async function startGateway(extra: Partial<GatewayStartOptions> = {}): Promise<{ gateway: Gateway; stateDir: string; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('palyra-gw-');
  const gateway = await Gateway.start({
    stateDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    name: 'Test Gateway',
    insecureNodeRpcOptOut: false,
    allowServerGeneratedKeys: false,
    allowLegacyDeviceIds: false,
    keychain: null,
    ...extra,
  });
  return {
    gateway,
    stateDir: dir,
    cleanup: async () => {
      await gateway.stop();
      await cleanup();
    },
  };
}

/** A device store in a temp dir over an in-memory keychain (the OS keychain has its own tests). */
export async function openTestDevice(): Promise<{ store: DeviceStore; dir: string; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('palyra-dev-');
  const store = await DeviceStore.open({ deviceDir: dir, keychain: 'os', osKeychain: new MemoryKeychain() });
  return { store, dir, cleanup };
}

/** Mints a QR code, pairs the device with it, and approves the request as soon as it arrives. */
export async function pairWithAutoApproval(gateway: Gateway, store: DeviceStore, events: PairingProgress[] = []) {
  const minted = await gateway.admin.mintCode({ method: 'qr', kind: 'desktop', issuedBy: 'test', gatewayAddresses: [gateway.listen], gatewayName: gateway.name });
  const uri = parsePairingUri(minted.uri!, { now: Date.now() });
  return pairDevice({
    store,
    target: { method: 'qr', uri },
    kind: 'desktop',
    onProgress: (event) => {
      events.push(event);
      if (event.type === 'awaiting_approval') void gateway.admin.approve(event.request_id);
    },
  });
}

/** An mTLS NodeService client with the device's stored certificate and key. */
export async function mtlsClient(gateway: Gateway, store: DeviceStore): Promise<NodeServiceClient> {
  const state = await store.readState();
  const key = await store.loadTlsPrivateKeyPem();
  if (state?.certificate_pem == null || key === null) throw new Error('device is not paired');
  return createNodeServiceClient(
    gateway.listen,
    createGatewayChannelCredentials({ caCertificatePem: gateway.caCertificatePem, clientCertificatePem: state.certificate_pem, clientPrivateKeyPem: key }),
  );
}

export function unary<Res>(invoke: (cb: (error: grpc.ServiceError | null, response?: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((error, response) => {
      if (error !== null) reject(error);
      else resolve(response!);
    });
  });
}
