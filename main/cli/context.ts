/**
 * What every `palyra` command gets (output, environment), the state directory of a command line, and the dispatch of
 * a command group to its subcommands.
 */

import path from 'node:path';
import { stateDirFrom } from '../platform/keychain-choice.js';
import { validateDatabaseUrl } from '../store/pg/pg-errors.js';
import type { ParsedCommand } from './args.js';
import type { Subcommand } from './help.js';
import { parseCommand, splitLeadingGlobals, usageError, wantsHelp, withGlobals } from './args.js';
import type { Output } from './output.js';
import { EXIT_OK } from './output.js';

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
  return stateDirFrom(args.stateDir, env);
}

/**
 * `--database-url`, else env PALYRA_DATABASE_URL: the PostgreSQL state, with the store key from `--store-key-file`
 * (else env PALYRA_STORE_KEY_FILE, else the OS keychain). null = the state directory holds the state.
 */
export function resolveDatabase(args: ParsedCommand, env: NodeJS.ProcessEnv): { databaseUrl: string; storeKeyFile: string | null } | null {
  const url = args.string('database-url') ?? (env.PALYRA_DATABASE_URL === '' ? undefined : env.PALYRA_DATABASE_URL);
  const keyFile = args.string('store-key-file') ?? (env.PALYRA_STORE_KEY_FILE === '' ? undefined : env.PALYRA_STORE_KEY_FILE);
  if (url === undefined) {
    if (args.string('store-key-file') !== undefined) throw usageError('--store-key-file applies to --database-url (a state directory keeps its own key)', args.spec.name);
    return null;
  }
  validateDatabaseUrl(url);
  return { databaseUrl: url, storeKeyFile: keyFile === undefined ? null : path.resolve(keyFile) };
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
