// `palyra ca show|export|crl` and the published crl.pem, as real processes, checked with the real openssl binary.
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate } from '../../main/core/certificates.js';
import { parseCrl } from '../../main/core/crl.js';
import { CRL_FILE_NAME } from '../../main/gateway/crl-file.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { withStateLock } from '../../main/store/state-lock.js';
import { ensureBuilt } from '../helpers/build.js';
import { runCli, runCliJson, startGatewayProcess } from '../helpers/cli.js';
import type { GatewayProcess } from '../helpers/cli.js';
import { csrFor, randomVerifiedDevice, tempDir } from '../helpers/identity.js';

interface ShowJson {
  subject: string;
  serial: string;
  spki_pin: string;
  fingerprint: string;
  not_before_unix_ms: number;
  not_after_unix_ms: number;
  revoked_serials: number;
  crl_file: {
    path: string;
    crl_number: number | null;
    this_update_unix_ms: number | null;
    next_update_unix_ms: number | null;
    revoked_serials: number | null;
    current: boolean;
  } | null;
}

const cleanups: (() => Promise<void>)[] = [];
let gateway: GatewayProcess | null = null;

beforeAll(async () => {
  // CI installs openssl (scripts/ensure-system-deps.mjs): its absence is a failure, not a skip.
  const probe = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  expect(probe.error?.message ?? probe.status, 'the openssl binary is needed (apt-get install openssl)').toBe(0);
  await ensureBuilt();
}, 180_000);

afterEach(async () => {
  await gateway?.kill();
  gateway = null;
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function newDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('palyra-cli-ca-');
  cleanups.push(cleanup);
  return dir;
}

/** A state directory with `count` paired devices, as a finished pairing leaves them. */
async function stateWithDevices(count: number): Promise<{ stateDir: string; caPem: string; devices: { deviceId: string; serialHex: string }[] }> {
  const stateDir = await newDir();
  const admin = await GatewayAdmin.open({ stateDir, keychain: null });
  const devices = [];
  for (let i = 0; i < count; i++) {
    const verified = randomVerifiedDevice('node');
    const issued = await admin.identity.finalizeVerifiedPairing({ verified, csrDer: await csrFor(verified.deviceId) });
    devices.push({ deviceId: verified.deviceId, serialHex: issued.certificate.serialHex });
  }
  const caPem = admin.identity.caCertificatePem;
  await admin.close();
  return { stateDir, caPem, devices };
}

function openssl(args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `openssl crl -verify -text` of a CRL file against the CA file: whether it verified, and the serials it lists. */
function opensslCrl(crlFile: string, caFile: string, inform: 'PEM' | 'DER' = 'PEM'): { verified: boolean; serials: string[]; crlNumber: number | null; text: string } {
  const r = openssl(['crl', '-inform', inform, '-in', crlFile, '-CAfile', caFile, '-noout', '-verify', '-text']);
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  const serials = [...r.stdout.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase());
  const number = /CRL Number:\s*\n\s*(\d+)/.exec(r.stdout);
  return { verified: /verify OK/.test(`${r.stdout}${r.stderr}`), serials, crlNumber: number === null ? null : Number(number[1]), text: r.stdout };
}

/** Lowercase hex without leading zero octets, the way openssl prints serials once lowercased. */
function serialForm(hex: string): string {
  let h = hex.toLowerCase();
  while (h.length > 2 && h.startsWith('00')) h = h.slice(2);
  return h.length % 2 === 1 ? `0${h}` : h;
}

async function exportCa(stateDir: string, dir: string): Promise<string> {
  const file = path.join(dir, 'ca.pem');
  const exported = await runCli(['ca', 'export', '--out', file, '--state-dir', stateDir]);
  expect({ code: exported.code, stderr: exported.stderr }).toEqual({ code: 0, stderr: '' });
  return file;
}

describe('palyra ca', () => {
  it('shows the CA with the pairing pin, fingerprint, validity and how many serials are revoked', async () => {
    const { stateDir, caPem, devices } = await stateWithDevices(2);
    expect((await runCli(['devices', 'revoke', devices[0]!.deviceId, '--state-dir', stateDir])).code).toBe(0);
    const shown = await runCliJson(['ca', 'show', '--state-dir', stateDir]);
    expect(shown.code).toBe(0);
    const json = shown.json as ShowJson;
    const info = parseCertificate(caPem);
    expect(Object.keys(json)).toEqual(['subject', 'serial', 'spki_pin', 'fingerprint', 'not_before_unix_ms', 'not_after_unix_ms', 'revoked_serials', 'crl_file']);
    expect(json).toMatchObject({
      subject: 'CN=Palyra Gateway CA',
      serial: info.serialHex,
      spki_pin: info.spkiPin,
      fingerprint: info.fingerprint,
      not_before_unix_ms: info.notBeforeUnixMs,
      not_after_unix_ms: info.notAfterUnixMs,
      revoked_serials: 1,
    });
    expect(json.crl_file).toMatchObject({ path: path.join(stateDir, CRL_FILE_NAME), revoked_serials: 1, current: true });

    // The same fingerprint openssl computes from the exported certificate.
    const dir = await newDir();
    const caFile = await exportCa(stateDir, dir);
    const fp = openssl(['x509', '-in', caFile, '-noout', '-fingerprint', '-sha256']);
    expect(fp.stdout.trim().split('=')[1]?.replace(/:/g, '').toLowerCase()).toBe(json.fingerprint);

    const text = await runCli(['ca', 'show', '--state-dir', stateDir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(json.spki_pin);
    expect(text.stdout).toMatch(/revoked serials:\s+1\n/);
  });

  it('keeps crl.pem beside the state current: openssl verifies it and lists exactly the revoked serials', async () => {
    const { stateDir, devices } = await stateWithDevices(3);
    const dir = await newDir();
    const caFile = await exportCa(stateDir, dir);
    const crlFile = path.join(stateDir, CRL_FILE_NAME);
    // Written with the CA, before any revocation.
    const initial = opensslCrl(crlFile, caFile);
    expect(initial).toMatchObject({ verified: true, serials: [] });
    expect(initial.text).toMatch(/Next Update: /);

    expect((await runCli(['devices', 'revoke', devices[0]!.deviceId, '--state-dir', stateDir])).code).toBe(0);
    const afterRevoke = opensslCrl(crlFile, caFile);
    expect(afterRevoke.verified).toBe(true);
    expect(afterRevoke.serials).toEqual([serialForm(devices[0]!.serialHex)]);

    expect((await runCli(['devices', 'remove', devices[1]!.deviceId, '--state-dir', stateDir])).code).toBe(0);
    const afterRemove = opensslCrl(crlFile, caFile);
    expect(afterRemove.serials.sort()).toEqual([devices[0]!, devices[1]!].map((d) => serialForm(d.serialHex)).sort());
    expect(afterRemove.serials).not.toContain(serialForm(devices[2]!.serialHex));
    // Every re-issue carries a larger cRLNumber, also within one second.
    expect(afterRevoke.crlNumber).toBeGreaterThan(initial.crlNumber!);
    expect(afterRemove.crlNumber).toBeGreaterThan(afterRevoke.crlNumber!);
    // The state's own view agrees.
    const parsed = parseCrl(await readFile(crlFile, 'utf8'));
    expect(parsed.nextUpdateUnixMs! - parsed.thisUpdateUnixMs).toBe(7 * 86_400_000);
  });

  it('issues a fresh CRL as PEM and as DER that openssl verifies, numbered above the published one', async () => {
    const { stateDir, devices } = await stateWithDevices(2);
    expect((await runCli(['devices', 'revoke', devices[1]!.deviceId, '--state-dir', stateDir])).code).toBe(0);
    const dir = await newDir();
    const caFile = await exportCa(stateDir, dir);
    const published = parseCrl(await readFile(path.join(stateDir, CRL_FILE_NAME), 'utf8'));
    const expected = [serialForm(devices[1]!.serialHex)];

    const pemOut = await runCli(['ca', 'crl', '--state-dir', stateDir]);
    expect(pemOut.code).toBe(0);
    expect(pemOut.stdout).toMatch(/^-----BEGIN X509 CRL-----\n/);
    await writeFile(path.join(dir, 'stdout.pem'), pemOut.stdout);
    const fromStdout = opensslCrl(path.join(dir, 'stdout.pem'), caFile);
    expect(fromStdout).toMatchObject({ verified: true, serials: expected });
    expect(fromStdout.crlNumber).toBeGreaterThan(published.crlNumber!);

    const derFile = path.join(dir, 'crl.der');
    const der = await runCliJson(['ca', 'crl', '--der', '--out', derFile, '--state-dir', stateDir]);
    expect(der.json).toMatchObject({ format: 'der', path: derFile, revoked_serials: [devices[1]!.serialHex] });
    expect((await readFile(derFile))[0]).toBe(0x30); // a DER SEQUENCE, not PEM text
    expect(opensslCrl(derFile, caFile, 'DER')).toMatchObject({ verified: true, serials: expected });
    expect((await stat(derFile)).mode & 0o777).toBe(0o644);

    const base64 = await runCliJson(['ca', 'crl', '--der', '--state-dir', stateDir]);
    const bytes = Buffer.from((base64.json as { der_base64: string }).der_base64, 'base64');
    const viaStdin = openssl(['crl', '-inform', 'DER', '-CAfile', caFile, '-noout', '-verify'], bytes);
    expect(`${viaStdin.stdout}${viaStdin.stderr}`).toMatch(/verify OK/);

    // An export as DER is the certificate openssl reads as DER.
    const caDer = path.join(dir, 'ca.der');
    expect((await runCli(['ca', 'export', '--der', '--out', caDer, '--state-dir', stateDir])).code).toBe(0);
    expect(openssl(['x509', '-inform', 'DER', '-in', caDer, '-noout', '-subject']).stdout).toMatch(/CN\s*=\s*Palyra Gateway CA/);
  });

  it('reads without the lock: answers while another process holds it', async () => {
    const { stateDir } = await stateWithDevices(1);
    const [show, crl] = await withStateLock(
      stateDir,
      () => Promise.all([runCliJson(['ca', 'show', '--state-dir', stateDir]), runCli(['ca', 'crl', '--state-dir', stateDir])]),
      { timeoutMs: 0 },
    );
    expect(show.code).toBe(0);
    expect(crl.code).toBe(0);
    expect(crl.stdout).toContain('-----BEGIN X509 CRL-----');
  });

  it('refuses on a state directory without a CA with error[ca_missing], creating nothing', async () => {
    const stateDir = path.join(await newDir(), 'absent');
    for (const command of [['ca', 'show'], ['ca', 'export'], ['ca', 'crl', '--der', '--out', path.join(path.dirname(stateDir), 'x.der')]]) {
      const text = await runCli([...command, '--state-dir', stateDir]);
      expect({ command, code: text.code, stdout: text.stdout }).toEqual({ command, code: 1, stdout: '' });
      expect(text.stderr).toMatch(/^error\[ca_missing\]: there is no gateway CA in /);
      const json = await runCliJson([...command, '--state-dir', stateDir]);
      expect(json.code).toBe(1);
      expect((json.json as { error: { code: string } }).error.code).toBe('ca_missing');
    }
    await expect(stat(stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(path.join(path.dirname(stateDir), 'x.der'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('treats bad flags as usage errors (exit 2) before reading anything', async () => {
    const stateDir = path.join(await newDir(), 'absent');
    const cases: [string[], RegExp][] = [
      [['ca', 'crl', '--pem', '--der'], /--pem and --der exclude each other/],
      [['ca', 'export', '--der', '--pem'], /--pem and --der exclude each other/],
      [['ca', 'crl', '--out'], /--out/],
      [['ca', 'export', '--out', ''], /--out must not be empty/],
      [['ca', 'crl', '--out', 'a', '--out', 'b'], /given more than once/],
      [['ca', 'show', '--der'], /unknown option '--der'/],
      [['ca', 'show', 'extra'], /unexpected argument 'extra'/],
      [['ca', 'frobnicate'], /unknown command 'palyra ca frobnicate' \(expected one of show, export, crl\)/],
      [['ca'], /'palyra ca' needs a subcommand/],
    ];
    for (const [argv, message] of cases) {
      const r = await runCli([...argv, '--state-dir', stateDir]);
      expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
      expect(r.stderr).toMatch(/^error\[usage\]: /);
      expect(r.stderr).toMatch(message);
    }
  });

  it('a starting gateway re-issues crl.pem, and a revocation beside it is in the file at once', async () => {
    const { stateDir, devices } = await stateWithDevices(2);
    const dir = await newDir();
    const caFile = await exportCa(stateDir, dir);
    const crlFile = path.join(stateDir, CRL_FILE_NAME);
    const before = opensslCrl(crlFile, caFile).crlNumber!;
    gateway = await startGatewayProcess(stateDir);
    const atStart = opensslCrl(crlFile, caFile);
    expect(atStart.verified).toBe(true);
    expect(atStart.crlNumber).toBeGreaterThan(before);

    // A revocation from another process while the gateway runs: the file lists it at once, whoever wrote it last.
    expect((await runCli(['devices', 'revoke', devices[0]!.deviceId, '--state-dir', stateDir])).code).toBe(0);
    const afterRevoke = opensslCrl(crlFile, caFile);
    expect(afterRevoke).toMatchObject({ verified: true, serials: [serialForm(devices[0]!.serialHex)] });
    expect(afterRevoke.crlNumber).toBeGreaterThan(atStart.crlNumber!);
  });
});
