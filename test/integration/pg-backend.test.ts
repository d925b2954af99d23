// The PostgreSQL backend in process, on a real PostgreSQL: concurrent migrations apply each version once, a change
// made through one GatewayAdmin reaches another by LISTEN/NOTIFY, and after the notification connection is cut the
// listener reconnects and resyncs what it missed.
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { migrateDatabase } from '../../main/store/pg/pg-open.js';
import { MIGRATIONS } from '../../main/store/pg/pg-schema.js';
import { PgStateBackend } from '../../main/store/pg/pg-state-backend.js';
import { tempDir } from '../helpers/identity.js';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

let server: PostgresServer | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

afterAll(async () => {
  await server?.stop();
}, 120_000);

async function admins(db: string, count: number): Promise<GatewayAdmin[]> {
  const url = await server!.createDatabase(db);
  const { dir, cleanup } = await tempDir('palyra-pg-admin-');
  cleanups.push(cleanup);
  const out: GatewayAdmin[] = [];
  for (let i = 0; i < count; i++) {
    const admin = await GatewayAdmin.openPg({
      database: { databaseUrl: url, storeKeyFile: path.join(dir, 'key') },
      stateDir: path.join(dir, `local${i}`),
      keychain: null,
      listen: true,
    });
    cleanups.push(() => admin.close());
    out.push(admin);
  }
  return out;
}

describeWithPostgres('PostgreSQL state backend', () => {
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);

  it('applies each migration exactly once when several processes migrate at the same time', async () => {
    const url = await server!.createDatabase('concurrent_migrate');
    const results = await Promise.all([1, 2, 3, 4].map(() => migrateDatabase(url, Date.now())));
    expect(results.flatMap((r) => r.applied).sort((x, y) => x - y)).toEqual(MIGRATIONS.map((m) => m.version));
  }, 60_000);

  it('a change through one admin reaches another by NOTIFY, and again after its notification connection was cut', async () => {
    const [a, b] = (await admins('notify_check', 2)) as [GatewayAdmin, GatewayAdmin];
    expect(a.backendKind).toBe('postgres');
    expect(a.identity.caFingerprint).toBe(b.identity.caFingerprint);
    const seen: boolean[] = [];
    b.onChange((change) => {
      if (change.runtime) seen.push(true);
    });
    await a.mintCode({ method: 'pin', kind: null, issuedBy: 'test', gatewayAddresses: [], gatewayName: null });
    await waitFor(() => b.listCodes().length === 1, { what: 'the code minted on A to show on B' });
    expect(seen.length).toBeGreaterThan(0);

    const backend = b.backend;
    if (!(backend instanceof PgStateBackend)) throw new Error('not the PostgreSQL backend');
    const connectsBefore = backend.listenConnects;
    backend.dropNotificationConnection();
    await a.mintCode({ method: 'qr', kind: null, issuedBy: 'test', gatewayAddresses: ['127.0.0.1:7444'], gatewayName: null });
    await waitFor(() => backend.listenConnects > connectsBefore && backend.listening, { what: 'the notification connection to come back' });
    await waitFor(() => b.listCodes().length === 2, { what: 'the code minted while B was not listening to reach B' });

    // Both wrote audit entries into one chain that verifies.
    const chain = await b.identity.auditLog!.verifyChain();
    expect(chain.ok).toBe(true);
    expect(chain.entries).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
