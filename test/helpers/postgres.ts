/**
 * A real PostgreSQL 15 server for tests: `initdb` into a temp dir (owned by the unprivileged `postgres` user when
 * we run as root, since the server refuses to run as root), `pg_ctl start -w` on 127.0.0.1 and a free port with
 * the socket in the data dir, trust auth for the superuser `palyra` plus a password user for the wrong-password
 * case. Stopped (`pg_ctl stop -m fast`) and removed by `stop()`.
 *
 * `describeWithPostgres`: without the binaries the suite is skipped locally, but fails when CI=true.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'vitest';

export const PG_BIN = process.env.PALYRA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const POSTGRES_MISSING = `PostgreSQL 15 not found (${PG_BIN}/initdb; npm test installs the Debian postgresql package, or set PALYRA_PG_BIN)`;
/** Liveness bound for start/stop (pg_ctl -t). */
const PG_CTL_TIMEOUT_S = 60;

export function postgresAvailable(): boolean {
  return existsSync(path.join(PG_BIN, 'initdb')) && existsSync(path.join(PG_BIN, 'pg_ctl'));
}

export function describeWithPostgres(name: string, body: () => void): void {
  if (postgresAvailable()) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs PostgreSQL', () => {
        throw new Error(`${POSTGRES_MISSING}; CI must run the PostgreSQL tests`);
      });
    });
  } else {
    console.log(`${POSTGRES_MISSING}: skipping '${name}'`);
    describe.skip(name, body);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

function postgresIds(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export interface PostgresServer {
  readonly port: number;
  readonly dataDir: string;
  /** Superuser URL (trust auth) for database `db`. */
  url(db?: string): string;
  /** A fresh database; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** A login role with a password (for the wrong-password test). */
  createPasswordUser(user: string, password: string): Promise<void>;
  /** Runs SQL as the superuser (psql-free: through pg). */
  sql(text: string, db?: string): Promise<void>;
  /** Stops the server (fast) and starts it again on the same port and data. */
  restart(): Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<PostgresServer> {
  const root = await mkdtemp(path.join(tmpdir(), 'palyra-pg-'));
  const dataDir = path.join(root, 'data');
  const ids = postgresIds();
  if (ids !== null) await chown(root, ids.uid, ids.gid);
  await chmod(root, 0o755);
  const asPg = (cmd: string, args: string[]): void => {
    const full = path.join(PG_BIN, cmd);
    const r = ids === null
      ? spawnSync(full, args, { encoding: 'utf8', timeout: PG_CTL_TIMEOUT_S * 1000 + 10_000 })
      : spawnSync('runuser', ['-u', 'postgres', '--', full, ...args], { encoding: 'utf8', timeout: PG_CTL_TIMEOUT_S * 1000 + 10_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  };
  asPg('initdb', ['-D', dataDir, '--auth-local=trust', '--auth-host=scram-sha-256', '-U', 'palyra', '--no-sync', '-E', 'UTF8']);
  // Trust for the superuser over TCP too; every other role must give its password.
  await writeFile(
    path.join(dataDir, 'pg_hba.conf'),
    'local all all trust\nhost all palyra 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n',
  );
  if (ids !== null) await chown(path.join(dataDir, 'pg_hba.conf'), ids.uid, ids.gid);
  const port = await freePort();
  const options = `-k ${dataDir} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const start = (): void => {
    asPg('pg_ctl', ['-D', dataDir, '-o', options, '-l', path.join(dataDir, 'server.log'), '-t', String(PG_CTL_TIMEOUT_S), 'start', '-w']);
  };
  const stopNow = (): void => {
    asPg('pg_ctl', ['-D', dataDir, '-m', 'fast', '-t', String(PG_CTL_TIMEOUT_S), 'stop', '-w']);
  };
  start();
  let running = true;
  const url = (db = 'postgres'): string => `postgres://palyra@127.0.0.1:${port}/${db}`;
  const sql = async (text: string, db = 'postgres'): Promise<void> => {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url(db) });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  return {
    port,
    dataDir,
    url,
    async createDatabase(name) {
      await sql(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
      return url(name);
    },
    async createPasswordUser(user, password) {
      await sql(`CREATE ROLE "${user}" LOGIN PASSWORD '${password.replace(/'/g, "''")}'`);
    },
    sql,
    restart() {
      stopNow();
      start();
      return Promise.resolve();
    },
    stopServer() {
      stopNow();
      running = false;
      return Promise.resolve();
    },
    startServer() {
      start();
      running = true;
      return Promise.resolve();
    },
    async stop() {
      if (running) {
        try {
          stopNow();
        } catch {
          // already down
        }
      }
      running = false;
      await rm(root, { recursive: true, force: true });
    },
  };
}
