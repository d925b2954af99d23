/**
 * What every `palyra` command gets (output, environment) and the choices they share: the state directory, the
 * keychain for the state store key, and the dispatch of a command group to its subcommands.
 */

import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { GatewayAdmin } from '../gateway/gateway-admin.js';
import type { Keychain } from '../store/keychain.js';
import { openOsKeychain } from '../store/keychain.js';
import type { CommandSpec, ParsedCommand } from './args.js';
import { parseCommand, splitLeadingGlobals, usageError, wantsHelp, withGlobals } from './args.js';
import type { Output } from './output.js';
import { EXIT_OK } from './output.js';
import { defaultStateDir } from './paths.js';

export interface CliContext {
  readonly out: Output;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * A command group as main.ts loads it (`./commands/<group>.js`). The device group follows the same shape: its
 * module exports `run(argv, context)`, where argv is everything after the group name.
 */
export interface CommandGroupModule {
  run(argv: string[], context: CliContext): Promise<number>;
}

/** `--state-dir`, else env PALYRA_STATE_DIR, else the desktop app's gateway directory; always absolute. */
export function resolveStateDir(args: ParsedCommand, env: NodeJS.ProcessEnv): string {
  const fromEnv = env.PALYRA_STATE_DIR;
  const chosen = args.stateDir ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : defaultStateDir());
  return path.resolve(chosen);
}

export interface KeychainChoice {
  /** null: the store key lives in a key file in the state directory. */
  readonly keychain: Keychain | null;
  /** Why, for `gateway run`'s log. */
  readonly reason: 'PALYRA_KEYCHAIN=file' | 'PALYRA_KEYCHAIN=os' | 'os_keychain_available' | 'no_os_keychain';
}

/**
 * PALYRA_KEYCHAIN=file forces the key file; =os requires the OS keychain; unset tries the OS keychain and falls back
 * to the key file only when there is none. A locked keychain is returned as such: opening the store then fails with
 * `keychain_locked`, never silently using a key file.
 */
export async function chooseKeychain(env: NodeJS.ProcessEnv): Promise<KeychainChoice> {
  const setting = env.PALYRA_KEYCHAIN ?? '';
  if (setting === 'file') return { keychain: null, reason: 'PALYRA_KEYCHAIN=file' };
  if (setting !== '' && setting !== 'os') {
    throw new PalyraError('usage', `PALYRA_KEYCHAIN must be 'os' or 'file' (got '${setting.slice(0, 32)}')`);
  }
  const keychain = await openOsKeychain();
  if (keychain !== null) return { keychain, reason: setting === 'os' ? 'PALYRA_KEYCHAIN=os' : 'os_keychain_available' };
  if (setting === 'os') throw new PalyraError('keychain_unavailable', 'PALYRA_KEYCHAIN=os but no OS keychain is available');
  return { keychain: null, reason: 'no_os_keychain' };
}

/** The gateway state of this command line (created on first use, like the gateway does). */
export async function openAdmin(args: ParsedCommand, context: CliContext): Promise<{ admin: GatewayAdmin; stateDir: string }> {
  const stateDir = resolveStateDir(args, context.env);
  const { keychain } = await chooseKeychain(context.env);
  return { admin: await GatewayAdmin.open({ stateDir, keychain }), stateDir };
}

export interface Subcommand {
  readonly spec: CommandSpec;
  run(args: ParsedCommand, context: CliContext): Promise<number>;
}

export interface CommandGroup {
  /** e.g. `pairing` */
  readonly name: string;
  /** The group's `--help` text, listing its subcommands. */
  readonly help: string;
  readonly subcommands: Readonly<Record<string, Subcommand>>;
}

/** Dispatches `argv` (after the group name) to a subcommand: help, parsing, then its run. */
export async function runGroup(group: CommandGroup, argv: string[], context: CliContext): Promise<number> {
  const { globals, name, rest } = splitLeadingGlobals(argv, group.name);
  const names = Object.keys(group.subcommands).join(', ');
  if (name === undefined) {
    if (wantsHelp(globals)) {
      context.out.line(group.help);
      return EXIT_OK;
    }
    throw usageError(`'palyra ${group.name}' needs a subcommand: one of ${names}`, group.name);
  }
  const subcommand = Object.hasOwn(group.subcommands, name) ? group.subcommands[name] : undefined;
  if (subcommand === undefined) {
    throw usageError(`unknown command 'palyra ${group.name} ${name.slice(0, 64)}' (expected one of ${names})`, group.name);
  }
  const args = withGlobals(rest, globals);
  if (wantsHelp(args)) {
    context.out.line(subcommand.spec.help);
    return EXIT_OK;
  }
  return subcommand.run(parseCommand(subcommand.spec, args), context);
}
