/**
 * The connection pool of one process's PostgreSQL state, and the transaction in progress. Code running inside
 * `transaction(fn)` (the secret store, the audit log) queries through that transaction's client, found via
 * AsyncLocalStorage, so a mutation's document rows, audit rows and NOTIFY commit or roll back together.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import { pgError, redactDatabaseUrl, validateDatabaseUrl } from './pg-errors.js';
import { STATE_LOCK_KEY } from './pg-schema.js';

/** How long a connection attempt, and any one statement, may take before the operation fails (fast, not hanging). */
export const PG_CONNECT_TIMEOUT_MS = 3_000;
export const PG_STATEMENT_TIMEOUT_MS = 10_000;

export class PgContext {
  readonly url: string;
  readonly pool: pg.Pool;
  readonly #tx = new AsyncLocalStorage<PoolClient>();

  constructor(url: string, options: { max?: number } = {}) {
    validateDatabaseUrl(url);
    this.url = url;
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.max ?? 4,
      connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      query_timeout: PG_STATEMENT_TIMEOUT_MS,
      idleTimeoutMillis: 10_000,
      application_name: 'palyra',
      // A CLI command ends when its work is done, without waiting for idle connections to time out.
      allowExitOnIdle: true,
    });
    // An idle client that loses its server (database restart) must not crash the process.
    this.pool.on('error', () => undefined);
  }

  /** For messages: the URL without its password. */
  get where(): string {
    return redactDatabaseUrl(this.url);
  }

  get inTransaction(): boolean {
    return this.#tx.getStore() !== undefined;
  }

  async query<R extends QueryResultRow>(text: string, params: unknown[] = []): Promise<R[]> {
    const client = this.#tx.getStore();
    try {
      const result = client === undefined ? await this.pool.query<R>(text, params) : await client.query<R>(text, params);
      return result.rows;
    } catch (error) {
      throw pgError(error, this.url);
    }
  }

  /** A dedicated client (migrations, LISTEN); the caller releases it. */
  async connect(): Promise<PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      throw pgError(error, this.url);
    }
  }

  /**
   * Runs `fn` in one transaction holding the state lock (pg_advisory_xact_lock: every replica's mutations are
   * serialised, which also keeps the audit chain's seq numbers gap-free). Rolled back when `fn` throws.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn();
    const client = await this.connect();
    const conn = { broken: false };
    const control = async (sql: string, params: unknown[] = []): Promise<void> => {
      try {
        await client.query(sql, params);
      } catch (error) {
        conn.broken = true;
        throw pgError(error, this.url);
      }
    };
    try {
      await control('BEGIN');
      await control('SELECT pg_advisory_xact_lock($1)', [STATE_LOCK_KEY]);
      // Errors of `fn` pass through as they are (its queries already map database failures).
      const result = await this.#tx.run(client, fn);
      await control('COMMIT');
      return result;
    } catch (error) {
      if (!conn.broken) {
        try {
          await client.query('ROLLBACK');
        } catch {
          conn.broken = true;
        }
      }
      throw error;
    } finally {
      client.release(conn.broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
