// Test helper: one desktop app in browser mode, in-process: DesktopServices on a temp user-data dir (device secrets
// in an in-memory keychain, the gateway store key in a key file), its browser-mode host, and an authenticated
// automation client.
import path from 'node:path';
import { startBrowserHost } from '../../main/app/browser-host.js';
import type { BrowserHost } from '../../main/app/browser-host.js';
import { DesktopServices } from '../../main/app/services.js';
import type { ChannelArgs, ChannelName, ChannelResult } from '../../main/ipc/contract.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import type { Keychain } from '../../main/store/keychain.js';
import { tempDir } from './identity.js';
import { connectIpc } from './ipc-client.js';
import type { IpcClient } from './ipc-client.js';

export interface TestApp {
  dir: string;
  services: DesktopServices;
  host: BrowserHost;
  client: IpcClient;
  /** Every line the services logged, as JSON. */
  logs: string[];
  /** Calls a channel and returns its result; throws with the error's code when the envelope is not ok. */
  ok<C extends ChannelName>(channel: C, args?: ChannelArgs<C>): Promise<ChannelResult<C>>;
  cleanup(): Promise<void>;
}

/**
 * `dir`: an existing directory to use (kept at cleanup: a second app on the same user data, as after a restart);
 * `gatewayKeychain`: the hosted gateway's keychain (default null: key files).
 */
export async function openTestApp(options: { rendererDir?: string; dir?: string; gatewayKeychain?: Keychain | null } = {}): Promise<TestApp> {
  const { dir, cleanup } = options.dir === undefined ? await tempDir('palyra-app-') : { dir: options.dir, cleanup: () => Promise.resolve() };
  const logs: string[] = [];
  const services = await DesktopServices.open({
    log: (line) => logs.push(JSON.stringify(line)),
    userDataDir: path.join(dir, 'userData'),
    keychain: 'os',
    osKeychain: new MemoryKeychain(),
    gatewayKeychain: options.gatewayKeychain ?? null,
    mode: 'browser',
    // No multicast DNS from an app inside the test process (DNS-SD is tested in a network namespace only).
    discovery: 'off',
  });
  const host = await startBrowserHost({ services, rendererDir: options.rendererDir ?? path.join(dir, 'no-renderer') });
  const client = await connectIpc(host);
  return {
    dir,
    services,
    host,
    client,
    logs,
    async ok<C extends ChannelName>(channel: C, args: ChannelArgs<C> | Record<string, never> = {}): Promise<ChannelResult<C>> {
      const envelope = await client.call(channel, args);
      if (!envelope.ok) throw Object.assign(new Error(`${channel}: ${envelope.error.code}: ${envelope.error.message}`), { code: envelope.error.code });
      return envelope.result as ChannelResult<C>;
    },
    async cleanup() {
      await client.close();
      await host.close();
      await services.dispose();
      await cleanup();
    },
  };
}
