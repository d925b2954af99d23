// Replicas seen and device failover on PostgreSQL (issue 15): three `palyra gateway run --database-url` replicas
// record themselves in the database; `gateway.ready` and `palyra gateway status --json` show the backend and the
// live replicas; a QR code minted through any of them lists every replica (`gw=A,B,C`); a device agent paired with
// it streams to A, and when A is killed with SIGKILL it comes back online on another replica by itself (liveness
// deadlines only); A then drops out of the live list.
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { formatHostPort } from '../../main/core/net-address.js';
import { DeviceAgent } from '../../main/device/device-agent.js';
import type { AgentEvent } from '../../main/device/device-agent.js';
import { MemoryKeychain } from '../../main/store/keychain.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';
import { describeWithPostgres, startPostgres } from '../helpers/postgres.js';
import type { PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
let server: PostgresServer | undefined;

async function newDir(prefix: string): Promise<string> {
  const { dir, cleanup } = await tempDir(prefix);
  cleanups.push(cleanup);
  return dir;
}

interface Replica {
  id: string;
  addresses: string[];
  started_at_unix_ms: number;
  last_heartbeat_unix_ms: number;
}

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

afterAll(async () => {
  await server?.stop();
}, 120_000);

describeWithPostgres('replicas seen and failover on PostgreSQL', () => {
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);

  it('lists the live replicas, puts every one in the QR code, and a device fails over when its replica is killed', async () => {
    const url = await server!.createDatabase('replicas');
    const keyFile = path.join(await newDir('palyra-pg-key-'), 'store.key');
    const cliDir = await newDir('palyra-pg-cli-');
    const db = (stateDir = cliDir): string[] => ['--database-url', url, '--store-key-file', keyFile, '--state-dir', stateDir];
    const replicas: (GatewayProcess & { stateDir: string })[] = [];
    for (let i = 0; i < 3; i++) {
      const stateDir = await newDir(`palyra-pg-replica${i}-`);
      const gateway = await startGatewayProcess(stateDir, ['--database-url', url, '--store-key-file', keyFile]);
      cleanups.push(() => gateway.kill());
      replicas.push({ ...gateway, stateDir });
    }
    const [a, b, c] = replicas as [(typeof replicas)[0], (typeof replicas)[0], (typeof replicas)[0]];
    const readyOf = (r: GatewayProcess) => r.ready as unknown as { backend: string; replica_id: string; replicas: Replica[]; listen: string };
    for (const r of replicas) {
      expect(readyOf(r).backend).toBe('postgres');
      expect(readyOf(r).replica_id).toMatch(/^[0-9A-Z]{26}$/);
      expect(readyOf(r).replicas.map((x) => x.id)).toContain(readyOf(r).replica_id);
    }
    // The last one to start saw all three.
    expect(readyOf(c).replicas.map((x) => x.id)).toEqual([readyOf(a).replica_id, readyOf(b).replica_id, readyOf(c).replica_id]);

    const status = await runCliJson(['gateway', 'status', '--database-url', url]);
    expect(status.code, status.stderr).toBe(0);
    const listed = status.json as { backend: string; database: string; replicas: Replica[] };
    expect(listed.backend).toBe('postgres');
    expect(listed.replicas.map((r) => r.addresses[0])).toEqual([a.ready.listen, b.ready.listen, c.ready.listen]);
    // A state directory: the file backend and the gateway running on it (none here).
    const fileStatus = await runCliJson(['gateway', 'status', '--state-dir', cliDir]);
    expect(fileStatus.json).toEqual({ backend: 'file', state_dir: cliDir, gateway: null });

    // A QR code minted with A's state dir lists A first, then B and C.
    const minted = await runCliJson(['pairing', 'code', '--kind', 'node', ...db(a.stateDir)]);
    expect(minted.code, minted.stderr).toBe(0);
    const uri = parsePairingUri((minted.json as { uri: string }).uri, { now: Date.now() });
    expect(uri.gateways.map(formatHostPort)).toEqual([a.ready.listen, b.ready.listen, c.ready.listen]);
    // A CLI with no gateway on its own state dir still gets every replica.
    const elsewhere = await runCliJson(['pairing', 'code', ...db()]);
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(parsePairingUri((elsewhere.json as { uri: string }).uri, { now: Date.now() }).gateways.map(formatHostPort)).toEqual([a.ready.listen, b.ready.listen, c.ready.listen]);

    // A device agent pairs with it (approved by a CLI) and streams to A, the first address.
    const deviceDir = await newDir('palyra-pg-device-');
    const agent = await DeviceAgent.open({ deviceDir, keychain: 'os', osKeychain: new MemoryKeychain(), heartbeatMs: 200 });
    const events: AgentEvent[] = [];
    agent.on((e) => events.push(e));
    cleanups.push(() => agent.stop());
    const approving = agent.on((e) => {
      if (e.type === 'awaiting_approval') void runCli(['pairing', 'approve', e.request_id, ...db()]);
    });
    await agent.pair({ method: 'qr', uri }, { kind: 'node' });
    approving();
    expect((await agent.status()).gateway).toBe(a.ready.listen);
    agent.start();
    await waitFor(() => events.some((e) => e.type === 'connection' && e.state === 'online'), { what: 'the agent online on replica A' });
    const onlineBefore = events.filter((e) => e.type === 'connection' && e.state === 'online').length;

    // Replica A dies without a goodbye: the agent loses its stream and comes back online on B or C.
    await a.kill();
    await waitFor(() => events.some((e) => e.type === 'connection' && e.state === 'offline'), { what: 'the agent to notice replica A is gone' });
    await waitFor(() => events.filter((e) => e.type === 'connection' && e.state === 'online').length > onlineBefore, {
      what: 'the agent back online on another replica',
      deadlineMs: 60_000,
      detail: () => JSON.stringify(events.slice(-10)),
    });
    // And the replicas list it as online there: its node record was written by B or C.
    const devices = await runCliJson(['devices', 'list', ...db()]);
    expect((devices.json as { devices: { status: string }[] }).devices.filter((d) => d.status === 'paired')).toHaveLength(1);

    // A's heartbeat stopped: it drops out of the live replicas, B and C stay.
    const after = await waitFor(
      async () => {
        const r = await runCliJson(['gateway', 'status', '--database-url', url]);
        const ids = (r.json as { replicas: Replica[] }).replicas.map((x) => x.id);
        return ids.includes(readyOf(a).replica_id) ? null : ids;
      },
      { what: 'replica A to drop out of the live list', deadlineMs: 60_000 },
    );
    expect(after).toEqual([readyOf(b).replica_id, readyOf(c).replica_id]);
  }, 240_000);
});
