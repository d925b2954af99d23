/**
 * Opening the gateway state a command line names: the state directory, or PostgreSQL with `--database-url` (the
 * state directory then holds only the published CRL and the running-gateway file).
 */

import { PalyraError } from '../core/errors.js';
import { GatewayAdmin } from '../gateway/gateway-admin.js';
import { redactDatabaseUrl } from '../store/pg/pg-errors.js';
import { chooseKeychain } from '../platform/keychain-choice.js';
import type { ParsedCommand } from './args.js';
import type { CliContext } from './context.js';
import { resolveDatabase, resolveStateDir } from './context.js';

/** What the state is, for messages: the directory or the database URL without its password. */
export function stateLabel(args: ParsedCommand, context: CliContext): string {
  const database = resolveDatabase(args, context.env);
  return database === null ? resolveStateDir(args, context.env) : redactDatabaseUrl(database.databaseUrl);
}

/** For a change: creates the state on first use, as the gateway does. `anchorLagMs: 0`: anchored before answering. */
export async function openAdminForWrite(args: ParsedCommand, context: CliContext): Promise<GatewayAdmin> {
  const stateDir = resolveStateDir(args, context.env);
  const database = resolveDatabase(args, context.env);
  const keychain = (await chooseKeychain(context.env)).keychain;
  if (database !== null) return GatewayAdmin.openPg({ database, stateDir, keychain });
  return GatewayAdmin.open({ stateDir, keychain, anchorLagMs: 0 });
}

/** For a read: the existing state, creating nothing; null when there is none. */
export async function openAdminForRead(args: ParsedCommand, context: CliContext): Promise<GatewayAdmin | null> {
  const stateDir = resolveStateDir(args, context.env);
  const database = resolveDatabase(args, context.env);
  const keychain = (await chooseKeychain(context.env)).keychain;
  if (database !== null) return GatewayAdmin.openExistingPg({ database, stateDir, keychain });
  return GatewayAdmin.openExisting({ stateDir, keychain });
}

/** openAdminForRead, or `not_found` naming the state. */
export async function openExistingAdmin(args: ParsedCommand, context: CliContext): Promise<GatewayAdmin> {
  const admin = await openAdminForRead(args, context);
  if (admin === null) {
    const where = stateLabel(args, context);
    throw new PalyraError('not_found', `there is no gateway state in ${where}`, resolveDatabase(args, context.env) === null ? { details: { path: where } } : {});
  }
  return admin;
}
