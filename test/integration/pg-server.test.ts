import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';

describeWithPostgres('test PostgreSQL server', () => {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  }, 120_000);

  it('serves a fresh database on 127.0.0.1 and survives a restart', async () => {
    const url = await server!.createDatabase('helper_check');
    const query = async (): Promise<string> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<{ v: string }>('SELECT current_database() AS v')).rows[0]!.v;
      } finally {
        await client.end();
      }
    };
    expect(await query()).toBe('helper_check');
    await server!.restart();
    expect(await query()).toBe('helper_check');
  }, 120_000);
});
