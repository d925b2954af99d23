/**
 * The `palyra` command (CLI.md): `main(argv)` returns the exit code — 0 success, 1 operational error, 2 usage
 * error — and never throws. Command groups load lazily, so `palyra pairing list` does not load the gRPC server.
 *
 * The device side (`palyra device …`) is a separate module, `./commands/device.js`, exporting
 * `run(argv: string[], context: CliContext): Promise<number>` (CommandGroupModule in context.ts) with argv being
 * everything after `device`. Until a build contains it, `palyra device …` is a usage error.
 */

import { PalyraError, toPalyraError } from '../core/errors.js';
import { GLOBAL_OPTIONS_HELP, splitLeadingGlobals, usageError, wantsHelp, wantsJson, withGlobals } from './args.js';
import type { CliContext, CommandGroupModule } from './context.js';
import { EXIT_OK, Output } from './output.js';
import type { OutputStreams } from './output.js';

export const TOP_LEVEL_HELP = `Usage: palyra <command> [options]

Pair devices with a Palyra gateway you trust.

Gateway (operator side):
  gateway run       run the gateway (node-RPC port, pairing, revocation)
  pairing list      list active pairing codes and pairing requests
  pairing code      mint a single-use pairing code (QR or PIN)
  pairing approve   approve a pending pairing request
  pairing reject    reject a pending pairing request
  devices list      list paired and revoked devices
  devices revoke    ban a device and revoke its certificates
  devices remove    unpair a device
  devices unban     lift a device's ban

Device side:
  device …          pair this machine with a gateway and run it as a node

Run 'palyra <command> --help' (e.g. 'palyra pairing --help') for details.
Exit codes: 0 success, 1 operational error, 2 usage error.

${GLOBAL_OPTIONS_HELP}`;

/** Where the device commands will live; a variable so the type checker does not require the file yet. */
const DEVICE_COMMANDS_MODULE = './commands/device.js';

/** `Cannot find module '…/cli/commands/device.js' imported from …/cli/main.js` (or main.ts under a TS runner). */
const DEVICE_MODULE_MISSING = /Cannot find module '[^']*[/\\]cli[/\\]commands[/\\]device\.js' imported from .*[/\\]cli[/\\]main\.[jt]s$/;

/** Whether `error` says that the device module itself is missing (not something it imports). */
function isDeviceModuleMissing(error: unknown): boolean {
  if (!(error instanceof Error) || (error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') return false;
  const url = (error as Error & { url?: unknown }).url;
  return url === new URL(DEVICE_COMMANDS_MODULE, import.meta.url).href || DEVICE_MODULE_MISSING.test(error.message);
}

async function loadDeviceCommands(): Promise<CommandGroupModule> {
  try {
    return (await import(DEVICE_COMMANDS_MODULE)) as CommandGroupModule;
  } catch (error) {
    if (isDeviceModuleMissing(error)) {
      throw new PalyraError('usage', 'the device commands are not available in this build');
    }
    throw error;
  }
}

async function loadGroup(name: string): Promise<CommandGroupModule | null> {
  switch (name) {
    case 'gateway':
      return import('./commands/gateway.js');
    case 'pairing':
      return import('./commands/pairing.js');
    case 'devices':
      return import('./commands/devices.js');
    case 'device':
      return loadDeviceCommands();
    default:
      return null;
  }
}

async function dispatch(argv: string[], context: CliContext): Promise<number> {
  const { globals, name, rest } = splitLeadingGlobals(argv, undefined);
  if (name === undefined) {
    if (wantsHelp(globals)) {
      context.out.line(TOP_LEVEL_HELP);
      return EXIT_OK;
    }
    throw usageError('a command is needed: gateway, pairing, devices or device');
  }
  if (name === 'help') {
    // `palyra help [GROUP]` is `palyra [GROUP] --help`.
    const topic = rest[0];
    return topic === undefined ? dispatch(['--help'], context) : dispatch([topic, '--help'], context);
  }
  const group = await loadGroup(name);
  if (group === null) throw usageError(`unknown command '${name.slice(0, 64)}'`);
  return group.run(withGlobals(rest, globals), context);
}

/** Runs one `palyra` command line; resolves to its exit code. */
export async function main(argv: string[], options: { env?: NodeJS.ProcessEnv; streams?: OutputStreams } = {}): Promise<number> {
  const out = new Output({ json: wantsJson(argv), ...(options.streams === undefined ? {} : { streams: options.streams }) });
  const context: CliContext = { out, env: options.env ?? process.env };
  try {
    return await dispatch(argv, context);
  } catch (error) {
    return out.error(toPalyraError(error));
  }
}
