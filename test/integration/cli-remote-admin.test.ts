// Remote administration with the `palyra` CLI (issue 7): `palyra gateway run` as a child process, an admin device
// paired against it (code and approval through `palyra pairing … --state-dir`, role through `palyra devices
// grant-admin`), then the pairing/devices commands with `--device-dir A --gateway ADDR`, all as child processes, while
// a third device pairs in this process with the remotely minted code.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { DeviceStore } from '../../main/device/device-store.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { openTestDevice } from '../helpers/gateway.js';
import { tempDir } from '../helpers/identity.js';
import { certifiedClient, openRegisteredStream } from '../helpers/raw-pairing.js';
import { withDeadline } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function newDir(prefix: string): Promise<string> {
  const { dir, cleanup } = await tempDir(prefix);
  cleanups.push(cleanup);
  return dir;
}

async function runGateway(stateDir: string): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(stateDir);
  cleanups.push(() => gateway.kill());
  expect(gateway.ready).toMatchObject({ event: 'gateway.ready', mtls_required: true });
  return gateway;
}

/** Pairs a device dir (secrets in the file store, as `--keychain file` reads them) through the local operator CLI. */
async function pairLocally(stateDir: string, deviceDir: string): Promise<string> {
  const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
  expect(minted.code, minted.stderr).toBe(0);
  const store = await DeviceStore.open({ deviceDir, keychain: 'file' });
  const approvals: Promise<{ code: number | null; stderr: string }>[] = [];
  const paired = await pairDevice({
    store,
    target: { method: 'qr', uri: parsePairingUri((minted.json as { uri: string }).uri, { now: Date.now() }) },
    kind: 'cli',
    onProgress: (event) => {
      if (event.type === 'awaiting_approval') approvals.push(runCli(['pairing', 'approve', event.request_id, '--state-dir', stateDir]));
    },
  });
  const approval = await approvals[0]!;
  expect(approval.code, approval.stderr).toBe(0);
  return paired.deviceId;
}

interface RequestJson {
  request_id: string;
  device_id: string;
  state: string;
  sas: string;
}

describe('palyra pairing/devices against a remote gateway', () => {
  it('mints, lists, approves, lists devices and revokes over mTLS as an admin device; codes map exactly', async () => {
    const stateDir = await newDir('palyra-remote-state-');
    const gateway = await runGateway(stateDir);
    const address = gateway.ready.listen;

    const adminDir = await newDir('palyra-remote-admin-');
    const adminId = await pairLocally(stateDir, adminDir);
    const granted = await runCliJson(['devices', 'grant-admin', adminId, '--state-dir', stateDir]);
    expect(granted.code, granted.stderr).toBe(0);
    const plainDir = await newDir('palyra-remote-plain-');
    await pairLocally(stateDir, plainDir);

    const remote = ['--device-dir', adminDir, '--gateway', address, '--keychain', 'file'];

    // pairing code: a QR URI for the dialled address, pinned to the gateway's CA.
    const minted = await runCliJson(['pairing', 'code', '--kind', 'node', ...remote]);
    expect(minted.code, minted.stderr).toBe(0);
    const code = minted.json as { method: string; code: string; uri: string; expires_at_unix_ms: number };
    expect(code.method).toBe('qr');
    const uri = parsePairingUri(code.uri, { now: Date.now() });
    expect(uri.caPin).toBe(gateway.ready.ca_pin);
    expect(uri.kind).toBe('node');

    // A third device pairs with it and waits for the approval.
    const third = await openTestDevice();
    cleanups.push(third.cleanup);
    let announce!: (event: { request_id: string; sas: string }) => void;
    const awaiting = new Promise<{ request_id: string; sas: string }>((resolve) => (announce = resolve));
    const pairing = pairDevice({
      store: third.store,
      target: { method: 'qr', uri },
      kind: 'node',
      onProgress: (event) => {
        if (event.type === 'awaiting_approval') announce(event);
      },
    });
    const pending = await awaiting;

    // pairing list: no codes (not in the remote service), the pending request with the same SAS.
    const listed = await runCliJson(['pairing', 'list', ...remote]);
    expect(listed.code, listed.stderr).toBe(0);
    const list = listed.json as { codes: unknown[]; requests: RequestJson[] };
    expect(list.codes).toEqual([]);
    expect(list.requests).toContainEqual(expect.objectContaining({ request_id: pending.request_id, state: 'pending_approval', sas: pending.sas }));
    const text = await runCli(['pairing', 'list', '--state', 'pending_approval', ...remote]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(pending.request_id);
    expect(text.stderr).toMatch(/does not list its active pairing codes/);

    // pairing approve: the device finishes pairing.
    const approved = await runCliJson(['pairing', 'approve', pending.request_id, ...remote]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.json).toMatchObject({ request_id: pending.request_id, state: 'approved', sas: pending.sas, reason: 'approved_by_operator' });
    const paired = await pairing;
    expect(paired.deviceId).toBe((approved.json as RequestJson).device_id);

    // Approving the request again: the gateway's code, printed exactly as the local CLI prints it.
    const again = await runCli(['pairing', 'approve', pending.request_id, ...remote]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error\[pairing_request_not_pending\]: /);
    const againLocal = await runCli(['pairing', 'approve', pending.request_id, '--state-dir', stateDir]);
    expect(again.stderr).toBe(againLocal.stderr);
    const againJson = await runCliJson(['pairing', 'approve', pending.request_id, ...remote]);
    expect(againJson.code).toBe(1);
    expect(againJson.json).toMatchObject({ error: { code: 'pairing_request_not_pending' } });

    // devices list: the new device, with the same fields as the local list.
    const devices = await runCliJson(['devices', 'list', ...remote]);
    expect(devices.code, devices.stderr).toBe(0);
    const local = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
    const remoteDevices = (devices.json as { devices: { device_id: string; status: string }[] }).devices;
    expect(remoteDevices).toContainEqual(expect.objectContaining({ device_id: paired.deviceId, status: 'paired' }));
    expect(Object.keys(remoteDevices[0]!).sort()).toEqual(Object.keys((local.json as { devices: object[] }).devices[0]!).sort());

    // The paired device holds a live node stream; a remote revoke ends it promptly.
    const state = (await third.store.readState())!;
    const client = certifiedClient(
      { listen: address, caCertificatePem: state.gateway!.ca_certificate_pem },
      state.certificate_pem!,
      (await third.store.loadTlsPrivateKeyPem())!,
    );
    cleanups.push(() => {
      client.close();
    });
    const { ended } = await openRegisteredStream(client, paired.deviceId, cleanups);
    const revoked = await runCliJson(['devices', 'revoke', paired.deviceId, '--reason', 'lost', ...remote]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.json).toMatchObject({ device_id: paired.deviceId, status: 'revoked' });
    // The gateway ends the stream itself (how soon: the remote row of test/bench/admin.bench.mjs).
    const failure = await withDeadline(ended, { what: "the revoked device's stream to end" });
    expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED]).toContain(failure?.code);

    // Approving the (completed) request again after the ban: not pending comes first, printed exactly as locally.
    const afterBan = await runCli(['pairing', 'approve', pending.request_id, ...remote]);
    const afterBanLocal = await runCli(['pairing', 'approve', pending.request_id, '--state-dir', stateDir]);
    expect(afterBan.code).toBe(1);
    expect(afterBan.stderr).toMatch(/^error\[pairing_request_not_pending\]: /);
    expect(afterBan.stderr).toBe(afterBanLocal.stderr);

    // A paired device without the admin role is refused.
    const denied = await runCli(['devices', 'list', '--device-dir', plainDir, '--gateway', address, '--keychain', 'file']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^error\[permission_denied\]: /);

    // Without --gateway, the device dir's stored gateway address is used.
    const stored = await runCliJson(['devices', 'list', '--device-dir', adminDir, '--keychain', 'file']);
    expect(stored.code, stored.stderr).toBe(0);
    expect((stored.json as { devices: { device_id: string; status: string }[] }).devices).toContainEqual(
      expect.objectContaining({ device_id: paired.deviceId, status: 'revoked' }),
    );
  }, 120_000);

  it('--gateway without --device-dir is a usage error for the commands where it only selects a remote gateway', async () => {
    const stateDir = await newDir('palyra-remote-usage-');
    const result = await runCli(['devices', 'list', '--gateway', '127.0.0.1:1', '--state-dir', stateDir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error\[usage\]: --gateway needs --device-dir/);
    const both = await runCli(['pairing', 'list', '--device-dir', stateDir, '--state-dir', stateDir]);
    expect(both.code).toBe(2);
  }, 60_000);
});
