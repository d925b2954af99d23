/**
 * The replicas seen on one state database (palyra_replicas): each `gateway run --database-url` records itself at
 * start — an id of its own, the addresses devices can dial, when it started — and a heartbeat every
 * REPLICA_HEARTBEAT_MS; it deletes its row when it stops. A replica is live while its last heartbeat is at most
 * REPLICA_LIVE_MS old, by the database's clock (replicas on machines whose clocks disagree still agree on who is
 * live). Nothing here is secret (addresses are in every QR code). Used for `gateway.ready`, `palyra gateway status`
 * and the `gw=` list of QR codes, so a device knows every replica to fail over to.
 */

import { newUlid } from '../../core/ids.js';
import { PgContext } from './pg-context.js';

export const REPLICA_HEARTBEAT_MS = 2_000;
/** A replica whose heartbeat is older than this is not listed (killed, or cut off from the database). */
export const REPLICA_LIVE_MS = 10_000;
/** Rows of replicas gone this long are deleted by the next replica that starts. */
const REPLICA_FORGET_MS = 24 * 3600_000;

const DB_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export interface ReplicaRecord {
  readonly id: string;
  readonly addresses: readonly string[];
  readonly started_at_unix_ms: number;
  readonly last_heartbeat_unix_ms: number;
}

interface ReplicaRow {
  id: string;
  addresses: string[];
  started_at_unix_ms: string;
  last_heartbeat_unix_ms: string;
}

export class PgReplicas {
  readonly #db: PgContext;
  #self: { id: string; addresses: string[] } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #beating: Promise<void> | null = null;

  constructor(db: PgContext) {
    this.#db = db;
  }

  /** This process's replica id once registered. */
  get id(): string | null {
    return this.#self?.id ?? null;
  }

  /** Records this process as a replica and keeps its heartbeat going until `unregister`. */
  async register(addresses: readonly string[]): Promise<string> {
    const id = newUlid(Date.now());
    this.#self = { id, addresses: [...addresses] };
    try {
      await this.#db.query(`DELETE FROM palyra_replicas WHERE last_heartbeat_unix_ms < ${DB_NOW_MS} - $1`, [REPLICA_FORGET_MS]);
      await this.#upsert();
    } catch {
      // The database went away just now: the heartbeat records this replica once it is back.
    }
    this.#timer = setInterval(() => {
      if (this.#beating !== null) return;
      // A database that is down misses beats; the row comes back (upsert) with the first one that succeeds.
      this.#beating = this.#upsert()
        .catch(() => undefined)
        .finally(() => {
          this.#beating = null;
        });
    }, REPLICA_HEARTBEAT_MS);
    this.#timer.unref();
    return id;
  }

  async #upsert(): Promise<void> {
    const self = this.#self;
    if (self === null) return;
    await this.#db.query(
      `INSERT INTO palyra_replicas (id, addresses, started_at_unix_ms, last_heartbeat_unix_ms) VALUES ($1, $2::jsonb, ${DB_NOW_MS}, ${DB_NOW_MS})
       ON CONFLICT (id) DO UPDATE SET last_heartbeat_unix_ms = ${DB_NOW_MS}, addresses = EXCLUDED.addresses`,
      [self.id, JSON.stringify(self.addresses)],
    );
  }

  /** The live replicas, oldest first (this one included once registered). */
  async live(): Promise<ReplicaRecord[]> {
    const rows = await this.#db.query<ReplicaRow>(
      `SELECT id, addresses, started_at_unix_ms, last_heartbeat_unix_ms FROM palyra_replicas WHERE last_heartbeat_unix_ms >= ${DB_NOW_MS} - $1 ORDER BY started_at_unix_ms, id`,
      [REPLICA_LIVE_MS],
    );
    return rows.map((r) => ({
      id: r.id,
      addresses: Array.isArray(r.addresses) ? r.addresses.filter((a): a is string => typeof a === 'string') : [],
      started_at_unix_ms: Number(r.started_at_unix_ms),
      last_heartbeat_unix_ms: Number(r.last_heartbeat_unix_ms),
    }));
  }

  /** Stops the heartbeat and deletes this replica's row (best effort: a dead database forgets it by liveness). */
  async unregister(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#beating?.catch(() => undefined);
    const self = this.#self;
    this.#self = null;
    if (self !== null) await this.#db.query('DELETE FROM palyra_replicas WHERE id = $1', [self.id]).catch(() => undefined);
  }
}

/** The live replicas of the database at `url`, for a reader without the store key (`palyra gateway status`). */
export async function listLiveReplicas(url: string): Promise<ReplicaRecord[]> {
  const db = new PgContext(url, { max: 1 });
  try {
    const exists = await db.query<{ t: string | null }>("SELECT to_regclass('palyra_replicas')::text AS t");
    if (exists[0]?.t == null) return [];
    return await new PgReplicas(db).live();
  } finally {
    await db.close();
  }
}
