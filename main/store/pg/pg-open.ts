/**
 * Opening the PostgreSQL state: the store key (from `--store-key-file` or the OS keychain; never from or to the
 * database), the connection pool, migrations, the key check, and the backend with its notification connection.
 */

import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fromBase64, toBase64 } from '../../core/bytes.js';
import { PalyraError } from '../../core/errors.js';
import type { Keychain } from '../keychain.js';
import { KEYCHAIN_SERVICE } from '../keychain.js';
import { createKeyFileIfAbsent, readKeyFile, STORE_KEY_LENGTH } from '../store-key.js';
import { PgAuditLog } from './pg-audit-log.js';
import { PgContext } from './pg-context.js';
import { pgError, redactDatabaseUrl, validateDatabaseUrl } from './pg-errors.js';
import { migrate } from './pg-schema.js';
import { PgSecretStore } from './pg-secret-store.js';
import { PgStateBackend } from './pg-state-backend.js';

/** A sealed constant: decrypts only with the key the database was set up with. */
export const KEY_CHECK_SECRET = 'palyra/key-check.v1';
export const KEY_CHECK_VALUE = 'palyra-store-key-check-v1';

export interface PgStateLocation {
  /** postgres://… (env PALYRA_DATABASE_URL). */
  readonly databaseUrl: string;
  /** `--store-key-file FILE`: 32 raw bytes, created (0600) when absent; null = the OS keychain. */
  readonly storeKeyFile: string | null;
}

/** The keychain account of a database's store key: the URL without its password. */
export function pgStoreKeyAccount(url: string): string {
  return `store-key:${redactDatabaseUrl(url)}`;
}

/** The store key for `location`: from the key file (created if absent) or the keychain (created if absent). */
export async function resolvePgStoreKey(location: PgStateLocation, keychain: Keychain | null, create: boolean): Promise<Uint8Array> {
  if (location.storeKeyFile !== null) {
    const file = path.resolve(location.storeKeyFile);
    const existing = await readKeyFile(file);
    if (existing !== null) return existing;
    if (!create) throw new PalyraError('not_found', `the store key file ${file} does not exist`, { details: { path: file } });
    await createKeyFileIfAbsent(file, new Uint8Array(randomBytes(STORE_KEY_LENGTH)));
    const winner = await readKeyFile(file);
    if (winner === null) throw new PalyraError('store_io_failed', `store key file ${file} vanished after creation`);
    return winner;
  }
  if (keychain === null) {
    throw new PalyraError('keychain_unavailable', 'no OS keychain is available for the store key of the state database; pass --store-key-file FILE (the same key on every replica)');
  }
  const account = pgStoreKeyAccount(location.databaseUrl);
  const stored = await keychain.get(KEYCHAIN_SERVICE, account);
  if (stored !== null) {
    const key = fromBase64(stored);
    if (key.length !== STORE_KEY_LENGTH) throw new PalyraError('state_corrupt', `store key in the OS keychain (${account}) has ${key.length} bytes, expected ${STORE_KEY_LENGTH}`);
    return key;
  }
  if (!create) throw new PalyraError('not_found', `the OS keychain has no store key for ${redactDatabaseUrl(location.databaseUrl)}`);
  const key = new Uint8Array(randomBytes(STORE_KEY_LENGTH));
  await keychain.set(KEYCHAIN_SERVICE, account, toBase64(key));
  return key;
}

export interface OpenedPgState {
  readonly db: PgContext;
  readonly store: PgSecretStore;
  readonly backend: PgStateBackend;
  readonly key: Uint8Array;
  /** Migrations this open applied. */
  readonly migrated: number[];
}

/** Applies the migrations of `url` (the `palyra state migrate` step, also run by every open). */
export async function migrateDatabase(url: string, now: number): Promise<{ applied: number[] }> {
  const db = new PgContext(url, { max: 1 });
  try {
    const client = await db.connect();
    try {
      return { applied: await migrate(client, now) };
    } catch (error) {
      throw pgError(error, url);
    } finally {
      client.release();
    }
  } finally {
    await db.close();
  }
}

/**
 * Opens the state in `url` with `key`: migrations, then the key check (a database set up with another key is
 * `store_decrypt_failed`, naming the key options), then the backend; `listen`: also the notification connection.
 */
export async function openPgState(o: { databaseUrl: string; key: Uint8Array; clock?: () => number; listen: boolean }): Promise<OpenedPgState> {
  validateDatabaseUrl(o.databaseUrl);
  const now = (o.clock ?? Date.now)();
  const migrated = (await migrateDatabase(o.databaseUrl, now)).applied;
  const db = new PgContext(o.databaseUrl);
  try {
    const store = new PgSecretStore(db, o.key);
    await checkKey(db, store);
    const backend = new PgStateBackend({ db, store, audit: new PgAuditLog(db, o.key), ...(o.clock === undefined ? {} : { clock: o.clock }) });
    if (o.listen) await backend.listen();
    return { db, store, backend, key: o.key, migrated };
  } catch (error) {
    await db.close();
    throw error;
  }
}

async function checkKey(db: PgContext, store: PgSecretStore): Promise<void> {
  try {
    const value = await store.readSecret(KEY_CHECK_SECRET);
    if (Buffer.from(value).toString('utf8') !== KEY_CHECK_VALUE) throw new PalyraError('store_decrypt_failed', 'key check mismatch');
  } catch (error) {
    if (error instanceof PalyraError && error.code === 'secret_not_found') {
      // First use: written only when the row is still absent (a replica racing us keeps its key).
      await db.transaction(async () => {
        const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM palyra_secrets WHERE key = $1', [KEY_CHECK_SECRET]);
        if (Number(rows[0]?.n ?? 0) === 0) await store.writeSecret(KEY_CHECK_SECRET, Buffer.from(KEY_CHECK_VALUE, 'utf8'));
      });
      await checkKey(db, store);
      return;
    }
    if (error instanceof PalyraError && error.code === 'store_decrypt_failed') {
      throw new PalyraError(
        'store_decrypt_failed',
        `the store key does not open the state database ${db.where}: it was set up with another key (every replica needs the same --store-key-file or keychain key)`,
        { details: { database: db.where } },
      );
    }
    throw error;
  }
}
