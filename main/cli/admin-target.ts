/**
 * The CLI's choice of AdminTarget for `palyra pairing …` and `palyra devices list|revoke|remove|unban`: remote when
 * `--device-dir DIR` is given explicitly (never from PALYRA_DEVICE_DIR, so an operator's environment does not silently
 * redirect a command to another gateway), the gateway being `--gateway HOST:PORT` or else the first address stored in
 * the device dir; otherwise the local state directory.
 */

import type { AdminTarget } from '../admin/admin-target.js';
import { LocalAdminTarget, stateDirSource } from '../admin/local-admin.js';
import { openAdminForRead, openAdminForWrite } from './state-open.js';
import { connectRemoteAdmin } from '../admin/remote-admin.js';
import { formatHostPort, parseHostPort } from '../core/net-address.js';
import { readRunningGateway } from '../gateway/gateway-info.js';
import { operatorName } from '../platform/operator.js';
import type { OptionSpec, ParsedCommand } from './args.js';
import { oneOf, parseOptionValue, usageError } from './args.js';
import type { CliContext } from './context.js';
import { resolveDatabase, resolveStateDir } from './context.js';
import { listLiveReplicas } from '../store/pg/pg-replicas.js';

/** The help section of the options that select a remote gateway. */
export const REMOTE_SECTION = 'Remote gateway (instead of the state directory)';

/** The options that select a remote gateway, for the specs of the commands that support it. */
export const REMOTE_ADMIN_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'device-dir': {
    type: 'string',
    placeholder: 'DIR',
    section: REMOTE_SECTION,
    description:
      "administer the gateway this admin device is paired with, over mTLS with its identity (the device needs the admin role: 'palyra devices grant-admin ID' on the gateway host)",
  },
  gateway: {
    type: 'string',
    placeholder: 'HOST:PORT',
    section: REMOTE_SECTION,
    description: 'the gateway to dial',
    default: 'the first gateway address stored in the device dir',
  },
  keychain: {
    type: 'string',
    placeholder: 'os|file',
    section: REMOTE_SECTION,
    description: "where the device's secrets live",
    default: 'os',
    env: 'PALYRA_KEYCHAIN=file forces file',
  },
};

/** The local target of this command line: the state dir, created on first use (as the gateway does). */
export function localAdminTarget(args: ParsedCommand, context: CliContext): LocalAdminTarget {
  const stateDir = resolveStateDir(args, context.env);
  const database = resolveDatabase(args, context.env);
  const source = stateDirSource({
    stateDir,
    // A command ends right after its change: anchor it before answering. --database-url: the state in PostgreSQL.
    open: () => openAdminForWrite(args, context),
    openExisting: () => openAdminForRead(args, context),
    runningGateway: async () => {
      const running = await readRunningGateway(stateDir);
      return running === null ? null : { listen: running.listen, name: running.name ?? null };
    },
    ...(database === null ? {} : { replicaAddresses: async () => (await listLiveReplicas(database.databaseUrl)).flatMap((r) => r.addresses) }),
  });
  return new LocalAdminTarget(source, { issuedBy: operatorName('cli'), noGatewayHint: "start one with 'palyra gateway run' or pass --gateway HOST:PORT" });
}

/**
 * Remote when `--device-dir` is given (the gateway: `--gateway`, else the device dir's first address), else local.
 * `--gateway`/`--keychain` without `--device-dir` are usage errors, except that the caller may say `--gateway` has
 * its own meaning then (`pairing code`). `--state-dir` with `--device-dir` is a usage error.
 */
export async function chooseAdminTarget(args: ParsedCommand, context: CliContext, options: { gatewayHasLocalMeaning?: boolean } = {}): Promise<AdminTarget> {
  const command = args.spec.name;
  const deviceDir = args.string('device-dir');
  const gatewayTexts = args.strings('gateway').flatMap((list) => list.split(','));
  if (deviceDir === undefined) {
    if (gatewayTexts.length > 0 && options.gatewayHasLocalMeaning !== true) {
      throw usageError('--gateway needs --device-dir DIR (the admin device that administers the remote gateway)', command);
    }
    if (args.string('keychain') !== undefined) throw usageError('--keychain applies to --device-dir', command);
    return localAdminTarget(args, context);
  }
  if (deviceDir === '') throw usageError('--device-dir must not be empty', command);
  if (args.stateDir !== undefined) throw usageError('--state-dir and --device-dir exclude each other (local state dir or remote gateway)', command);
  const first = gatewayTexts[0];
  let gateway: string | undefined;
  if (first !== undefined) {
    if (gatewayTexts.length > 1) throw usageError('--gateway: give one HOST:PORT to dial with --device-dir', command);
    if (first.trim() === '') throw usageError('--gateway: empty address', command);
    gateway = parseOptionValue('--gateway', command, () => formatHostPort(parseHostPort(first.trim())));
  }
  const keychain = remoteKeychainMode(args, context.env);
  // A QR code minted remotely carries the address this command dialled.
  return connectRemoteAdmin({ deviceDir, keychain, ...(gateway === undefined ? {} : { gateway }), advertiseDialledAddress: true });
}

/**
 * `--keychain` (default os); env PALYRA_KEYCHAIN=file forces the encrypted store in the device dir, as for
 * `palyra device …` (kept here so the operator commands do not load the device command module).
 */
function remoteKeychainMode(args: ParsedCommand, env: NodeJS.ProcessEnv): 'os' | 'file' {
  const command = args.spec.name;
  const setting = env.PALYRA_KEYCHAIN ?? '';
  if (setting !== '' && setting !== 'os' && setting !== 'file') {
    throw usageError(`environment variable PALYRA_KEYCHAIN must be 'os' or 'file' (got '${setting.slice(0, 32)}')`, command);
  }
  const flag = args.string('keychain');
  const chosen = flag === undefined ? 'os' : oneOf('--keychain', flag, ['os', 'file'] as const, command);
  return setting === 'file' ? 'file' : chosen;
}
