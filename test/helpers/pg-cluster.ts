// A gateway cluster for the PostgreSQL tests: a fresh database on the suite's server, one store-key file, and N
// `palyra gateway run --database-url` replicas, each with a state dir of its own (gateway.v1.json, crl.pem).
// Everything it makes is handed to `cleanups` (run by the caller's afterEach).
import path from 'node:path';
import { startGatewayProcess } from './cli.js';
import type { GatewayProcess } from './cli.js';
import { tempDir } from './identity.js';
import type { PostgresServer } from './postgres.js';

export type Cleanups = (() => Promise<void> | void)[];

export interface PgCluster {
  url: string;
  keyFile: string;
  /** Global options naming the database (and a state dir of its own for the CLI's local files). */
  db: (stateDir?: string) => string[];
  replicas: (GatewayProcess & { stateDir: string })[];
}

/** A temp dir removed by `cleanups`. */
export async function cleanedDir(cleanups: Cleanups, prefix: string): Promise<string> {
  const { dir, cleanup } = await tempDir(prefix);
  cleanups.push(cleanup);
  return dir;
}

export async function startPgCluster(o: { server: PostgresServer; database: string; replicas: number; cleanups: Cleanups }): Promise<PgCluster> {
  const url = await o.server.createDatabase(o.database);
  const keyFile = path.join(await cleanedDir(o.cleanups, 'palyra-pg-key-'), 'store.key');
  const cliDir = await cleanedDir(o.cleanups, 'palyra-pg-cli-');
  const db = (stateDir = cliDir): string[] => ['--database-url', url, '--store-key-file', keyFile, '--state-dir', stateDir];
  const replicas: PgCluster['replicas'] = [];
  for (let i = 0; i < o.replicas; i++) {
    const stateDir = await cleanedDir(o.cleanups, `palyra-pg-replica${i}-`);
    const gateway = await startGatewayProcess(stateDir, ['--database-url', url, '--store-key-file', keyFile]);
    o.cleanups.push(() => gateway.kill());
    replicas.push({ ...gateway, stateDir });
  }
  return { url, keyFile, db, replicas };
}
