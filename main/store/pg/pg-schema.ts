/**
 * The versioned schema of the PostgreSQL state. Migrations run in order, each once, in one transaction guarded by
 * pg_advisory_xact_lock, so replicas starting together apply them exactly once and none sees a half-made schema.
 *
 *   palyra_schema   (version, applied_at_unix_ms)              one row per applied migration
 *   palyra_secrets  (key, version, sealed)                     sealed with the store key (AEAD, AAD = the key)
 *   palyra_audit    (seq, entry JSON incl. prev + hash, hash)  the keyed audit chain, one row per entry
 *   palyra_replicas (id, addresses, started_at_unix_ms, last_heartbeat_unix_ms)   the replicas seen (version 2)
 * Documents (identity state, pairing runtime) are palyra_secrets rows whose `version` is their write counter
 * (change detection); the CA lives there too. The store key itself is never stored.
 */

import type { ClientBase } from 'pg';

/** Advisory lock keys (arbitrary constants; the same in every replica). */
export const MIGRATION_LOCK_KEY = 0x7061_6c01;
export const STATE_LOCK_KEY = 0x7061_6c02;
/** NOTIFY channel: payload `<document>:<version>`. */
export const NOTIFY_CHANNEL = 'palyra_state';

export const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE palyra_secrets (
        key text PRIMARY KEY,
        version bigint NOT NULL,
        sealed bytea NOT NULL
      );
      CREATE TABLE palyra_audit (
        seq bigint PRIMARY KEY CHECK (seq > 0),
        entry jsonb NOT NULL,
        hash text NOT NULL
      );`,
  },
  {
    // The replicas seen (pg-replicas.ts): not secret, not part of the trust state.
    version: 2,
    sql: `
      CREATE TABLE palyra_replicas (
        id text PRIMARY KEY,
        addresses jsonb NOT NULL,
        started_at_unix_ms bigint NOT NULL,
        last_heartbeat_unix_ms bigint NOT NULL
      );`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** Applies the migrations not applied yet; returns the versions it applied (empty when up to date). */
export async function migrate(client: ClientBase, now: number): Promise<number[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query('CREATE TABLE IF NOT EXISTS palyra_schema (version integer PRIMARY KEY, applied_at_unix_ms bigint NOT NULL)');
    const rows = (await client.query<{ version: number }>('SELECT version FROM palyra_schema')).rows;
    const applied = new Set(rows.map((r) => r.version));
    const done: number[] = [];
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO palyra_schema (version, applied_at_unix_ms) VALUES ($1, $2)', [m.version, now]);
      done.push(m.version);
    }
    await client.query('COMMIT');
    return done;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The highest applied migration (0 for an empty database). */
export async function schemaVersion(client: ClientBase): Promise<number> {
  const exists = await client.query<{ t: string | null }>("SELECT to_regclass('palyra_schema')::text AS t");
  if (exists.rows[0]?.t === null || exists.rows[0]?.t === undefined) return 0;
  const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM palyra_schema');
  return r.rows[0]?.v ?? 0;
}
