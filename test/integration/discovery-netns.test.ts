// DNS-SD announce and `palyra gateway discover`, with real processes and real multicast — inside a private network
// namespace (unshare -n), never on this machine's interfaces. The gateway runs in the background of a shell script;
// discover runs while it is up and again after it stopped (its goodbye must have removed it).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CA_PIN_PREFIX_LENGTH } from '../../main/core/dns-sd.js';
import { ensureBuilt, repoRoot } from '../helpers/build.js';
import { cliEnv } from '../helpers/cli.js';
import { tempDir } from '../helpers/identity.js';
import { describeInNetns, netnsPrelude, runInNetns } from '../helpers/netns.js';

const BIN = path.join(repoRoot, 'bin/palyra.js');
/** Liveness bound for the whole script (a gateway start, two discover runs); it takes a few seconds when idle. */
const SCRIPT_DEADLINE_MS = 90_000;
const cleanups: (() => Promise<void>)[] = [];

interface Discovered {
  gateways: { name: string; addresses: string[]; ca_pin_prefix: string; protocol_versions: number[]; host: string }[];
}

/**
 * Runs a gateway with `gatewayArgs` in a fresh namespace and `gateway discover --json` during and after it; returns
 * the gateway's ready line and both listings.
 */
async function scenario(o: { veth: boolean; gatewayArgs: string }): Promise<{ ready: Record<string, unknown>; during: Discovered; after: Discovered; gatewayErr: string }> {
  const { dir, cleanup } = await tempDir('palyra-netns-');
  cleanups.push(cleanup);
  const script = `${netnsPrelude({ veth: o.veth })}
node "$PALYRA_BIN" gateway run --state-dir "$DIR/state" ${o.gatewayArgs} > "$DIR/gateway.out" 2> "$DIR/gateway.err" &
gw=$!
i=0
until grep -q gateway.ready "$DIR/gateway.out" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 600 ] || ! kill -0 "$gw" 2>/dev/null; then echo "gateway did not get ready" >&2; cat "$DIR/gateway.err" >&2; kill "$gw" 2>/dev/null; exit 3; fi
  sleep 0.1
done
node "$PALYRA_BIN" gateway discover --json --timeout 3s > "$DIR/during.json"
kill -TERM "$gw"
wait "$gw" || true
node "$PALYRA_BIN" gateway discover --json --timeout 1500ms > "$DIR/after.json"
`;
  const result = await runInNetns(script, { env: cliEnv({ PALYRA_BIN: BIN, DIR: dir }), timeoutMs: SCRIPT_DEADLINE_MS });
  expect(result, result.stderr).toMatchObject({ code: 0 });
  const read = (name: string): Promise<string> => readFile(path.join(dir, name), 'utf8');
  return {
    ready: JSON.parse((await read('gateway.out')).split('\n')[0]!) as Record<string, unknown>,
    during: JSON.parse(await read('during.json')) as Discovered,
    after: JSON.parse(await read('after.json')) as Discovered,
    gatewayErr: await read('gateway.err'),
  };
}

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describeInNetns('DNS-SD in a private network namespace', () => {
  it('finds a loopback gateway announced with --announce, with its name, address, pin prefix and versions; not after it stopped', async () => {
    const { ready, during, after } = await scenario({ veth: false, gatewayArgs: "--listen 127.0.0.1:0 --announce --name 'Office gateway'" });
    expect(ready.announced).toBe(true);
    expect(during.gateways).toEqual([
      {
        name: 'Office gateway',
        addresses: [ready.listen],
        ca_pin_prefix: (ready.ca_pin as string).slice(0, CA_PIN_PREFIX_LENGTH),
        protocol_versions: [1],
        host: expect.stringMatching(/-palyra\.local$/),
      },
    ]);
    expect(after.gateways).toEqual([]);
  }, SCRIPT_DEADLINE_MS + 10_000);

  it('announces a gateway on 0.0.0.0 by default, with its LAN address; --no-announce and plain loopback stay silent', async () => {
    const lan = await scenario({ veth: true, gatewayArgs: '--listen 0.0.0.0:0' });
    const port = (lan.ready.listen as string).split(':').pop();
    expect(lan.ready).toMatchObject({ reachable: 'network', announced: true });
    expect(lan.ready.addresses).toContain(`10.99.0.1:${port}`);
    expect(lan.during.gateways).toHaveLength(1);
    expect(lan.during.gateways[0]?.addresses).toEqual([`10.99.0.1:${port}`]);
    expect(lan.gatewayErr).not.toContain('listening on loopback only');

    const quiet = await scenario({ veth: true, gatewayArgs: '--listen 0.0.0.0:0 --no-announce' });
    expect(quiet.ready.announced).toBe(false);
    expect(quiet.during.gateways).toEqual([]);
    const loopback = await scenario({ veth: false, gatewayArgs: '--listen 127.0.0.1:0' });
    expect(loopback.ready.announced).toBe(false);
    expect(loopback.during.gateways).toEqual([]);
  }, 3 * SCRIPT_DEADLINE_MS + 10_000);
});
