// Revocation across processes: `palyra gateway run` as a child process, a device paired against it in this process
// (code minted and request approved by `palyra pairing …` children), and `palyra devices revoke` in another child:
// the device's live stream must end promptly and its certificate must be refused from then on, also when it was
// revoked while the gateway was stopped (REFERENCE.md §7 item 50, adapted).
import { spawn } from 'node:child_process';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parsePairingUri } from '../../main/core/pairing-uri.js';
import { createCertificateSigningRequest } from '../../main/core/csr.js';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../main/core/x509-keys.js';
import { pairDevice } from '../../main/device/pairing-client.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import type { NodeServiceClient } from '../../main/rpc/node-service.js';
import { ensureBuilt, repoRoot } from '../helpers/build.js';
import { cliEnv, runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { openTestDevice } from '../helpers/gateway.js';
import { randomVerifiedDevice, tempDir } from '../helpers/identity.js';
import { certifiedClient, openRegisteredStream, rpc } from '../helpers/raw-pairing.js';
import type { RpcOutcome } from '../helpers/raw-pairing.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function newStateDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-cli-revoke-');
  cleanups.push(cleanup);
  return dir;
}

async function runGateway(stateDir: string): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(stateDir);
  cleanups.push(() => gateway.kill());
  expect(gateway.ready).toMatchObject({ event: 'gateway.ready', mtls_required: true });
  return gateway;
}

/** SIGTERM and wait for a clean exit (CLI.md: exit 0 within 2 s). */
async function stopGateway(gateway: GatewayProcess): Promise<void> {
  gateway.child.kill('SIGTERM');
  const status = await gateway.exited;
  expect(status.code).toBe(0);
}

/** The outcome of a RegisterNode on a fresh connection with the given certificate. */
async function registerWith(endpoint: { listen: string; caCertificatePem: string }, deviceId: string, certificatePem: string, privateKeyPem: string): Promise<RpcOutcome<unknown>> {
  const client = certifiedClient(endpoint, certificatePem, privateKeyPem);
  try {
    return await rpc.register(client, { v: 1, device_id: { ulid: deviceId }, platform: 'test' });
  } finally {
    client.close();
  }
}

/** Spawns `palyra …` and resolves with its exit code and stderr. */
function spawnCli(args: string[]): { exited: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/palyra.js'), ...args], { cwd: repoRoot, env: cliEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`palyra ${args.join(' ')} did not exit within 20 s`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  return { exited };
}

describe('revocation by another process', () => {
  it('`palyra devices revoke` ends the live stream of a device paired through the CLI, and its certificate is refused after', async () => {
    const stateDir = await newStateDir();
    const gateway = await runGateway(stateDir);

    // Operator mints a QR code with the CLI; the device pairs in this process; the operator approves with the CLI.
    const minted = await runCliJson(['pairing', 'code', '--state-dir', stateDir]);
    expect(minted.code).toBe(0);
    const { uri } = minted.json as { uri: string };
    const device = await openTestDevice();
    cleanups.push(device.cleanup);
    const approvals: Promise<{ code: number | null; stdout: string; stderr: string }>[] = [];
    const paired = await pairDevice({
      store: device.store,
      target: { method: 'qr', uri: parsePairingUri(uri, { now: Date.now() }) },
      kind: 'desktop',
      onProgress: (event) => {
        if (event.type === 'awaiting_approval') approvals.push(runCli(['pairing', 'approve', event.request_id, '--state-dir', stateDir, '--json']));
      },
    });
    expect(approvals).toHaveLength(1);
    const approval = await approvals[0]!;
    expect(approval.code, approval.stderr).toBe(0);
    expect(JSON.parse(approval.stdout)).toMatchObject({ device_id: paired.deviceId });

    const state = (await device.store.readState())!;
    const privateKeyPem = (await device.store.loadTlsPrivateKeyPem())!;
    const endpoint = { listen: gateway.ready.listen, caCertificatePem: state.gateway!.ca_certificate_pem };
    const client: NodeServiceClient = certifiedClient(endpoint, state.certificate_pem!, privateKeyPem);
    cleanups.push(() => {
      client.close();
    });
    const { ended } = await openRegisteredStream(client, paired.deviceId, cleanups);

    const revoke = spawnCli(['devices', 'revoke', paired.deviceId, '--reason', 'lost', '--state-dir', stateDir]);
    const exit = await revoke.exited;
    expect(exit.code, exit.stderr).toBe(0);
    // The gateway child sees the change in its state directory and ends the stream itself, with no traffic from the
    // device (how soon: the CLI row of test/bench/gateway.bench.mjs's revocation table).
    const failure = await withDeadline(ended, { what: "the revoked device's stream to end" });
    // PERMISSION_DENIED is sent first; the socket is closed right after, so a loaded machine may show the close.
    expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED]).toContain(failure?.code);

    // A new handshake with the revoked certificate fails (connection refused at TLS, or the call denied).
    const again = await registerWith(endpoint, paired.deviceId, state.certificate_pem!, privateKeyPem);
    expect(again.ok).toBe(false);
    if (!again.ok) expect([grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED]).toContain(again.error.code);

    const listed = await runCliJson(['devices', 'list', '--state-dir', stateDir]);
    expect((listed.json as { devices: { device_id: string; status: string }[] }).devices).toContainEqual(expect.objectContaining({ device_id: paired.deviceId, status: 'revoked' }));
  }, 60_000);

  it('refuses a certificate revoked while the gateway was stopped (§7 item 50)', async () => {
    const stateDir = await newStateDir();
    // A device paired the way a finished pairing leaves it: its own P-256 key, certified through a CSR.
    const admin = await GatewayAdmin.open({ stateDir, keychain: null });
    const verified = randomVerifiedDevice('node');
    const keys = await generateP256KeyPair();
    const issued = await admin.identity.finalizeVerifiedPairing({ verified, csrDer: await createCertificateSigningRequest({ keys, deviceId: verified.deviceId }) });
    const privateKeyPem = await exportPrivateKeyPem(keys.privateKey);
    const certificatePem = issued.certificate.certificatePem;
    const caCertificatePem = issued.caCertificatePem;

    // Baseline: the certificate works against a running gateway.
    const first = await runGateway(stateDir);
    const before = await registerWith({ listen: first.ready.listen, caCertificatePem }, verified.deviceId, certificatePem, privateKeyPem);
    expect(before.ok, JSON.stringify(before)).toBe(true);
    await stopGateway(first);

    const revoked = await runCli(['devices', 'revoke', verified.deviceId, '--state-dir', stateDir]);
    expect(revoked.code, revoked.stderr).toBe(0);

    const second = await runGateway(stateDir);
    const after = await registerWith({ listen: second.ready.listen, caCertificatePem }, verified.deviceId, certificatePem, privateKeyPem);
    expect(after.ok).toBe(false);
    if (!after.ok) expect([grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED]).toContain(after.error.code);
    // The refusal happened at the handshake: the gateway logged it.
    const refusedLine = await waitForLine(second, (line) => line.includes('"tls.refused"'));
    expect(refusedLine).toBeDefined();
    await stopGateway(second);
  }, 60_000);
});

/** The first stdout line of `gateway` matching, waiting (bounded) for it to arrive. */
async function waitForLine(gateway: GatewayProcess, match: (line: string) => boolean): Promise<string> {
  return waitFor(() => gateway.lines.find(match), { what: 'a matching gateway log line', detail: () => gateway.lines.join('\n') });
}
