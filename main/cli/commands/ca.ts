/**
 * `palyra ca show | export | crl` (CLI.md): the gateway CA certificate and its certificate revocation list. All three
 * read the state without the lock and write nothing to the state directory, so they answer beside a running gateway;
 * the CRL is issued fresh from the state as loaded (signed with the CA key, hence the store key is needed), while
 * `crl.pem` beside the state is the copy the gateway and every revocation keep current.
 */

import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { toBase64, utf8 } from '../../core/bytes.js';
import { certificateDer, decodeCertificate, parseCertificate } from '../../core/certificates.js';
import { crlDer, normalizeSerialHex, parseCrl } from '../../core/crl.js';
import type { CrlInfo } from '../../core/crl.js';
import { PalyraError } from '../../core/errors.js';
import { crlFilePath, readCrlFile } from '../../gateway/crl-file.js';
import { openAdminForRead, stateLabel } from '../state-open.js';
import type { IdentityManager } from '../../gateway/identity-manager.js';
import { writeFileAtomic } from '../../store/atomic-file.js';
import type { CommandSpec, OptionSpec, ParsedCommand } from '../args.js';
import { usageError } from '../args.js';
import type { CliContext } from '../context.js';
import { runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK, formatTimestamp } from '../output.js';
import type { Output } from '../output.js';

/** Exported files hold public data: readable by everyone, unlike the state. */
const EXPORT_FILE_MODE = 0o644;

type Encoding = 'pem' | 'der';

/** The state's identity, read without the lock; no state (or no CA) yet is `ca_missing`. */
async function openIdentity(args: ParsedCommand, context: CliContext): Promise<IdentityManager> {
  const stateDir = stateLabel(args, context);
  const admin = await openAdminForRead(args, context);
  if (admin === null) {
    throw new PalyraError(
      'ca_missing',
      `there is no gateway CA in ${stateDir} yet: it is created by the first 'palyra gateway run' (or any command that writes the state, such as 'palyra pairing code')`,
      { details: { path: stateDir } },
    );
  }
  return admin.identity;
}

const ENCODING_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  pem: { type: 'boolean', description: 'PEM text (the default)' },
  der: { type: 'boolean', description: 'binary DER (to a file with --out, or to a redirected stdout)' },
  out: { type: 'string', placeholder: 'FILE', description: 'write to FILE (replaced atomically, mode 0644) instead of stdout' },
};

interface Destination {
  readonly encoding: Encoding;
  readonly out: string | undefined;
}

/** `--pem|--der` and `--out FILE`, checked before anything is read. */
function destinationOf(args: ParsedCommand, context: CliContext): Destination {
  const command = args.spec.name;
  if (args.flag('pem') && args.flag('der')) throw usageError('--pem and --der exclude each other', command);
  const encoding: Encoding = args.flag('der') ? 'der' : 'pem';
  const out = args.string('out');
  if (out?.trim() === '') throw usageError('--out must not be empty', command);
  if (out === undefined && encoding === 'der' && !context.out.json && context.out.streams.stdoutIsTty) {
    throw usageError('--der writes binary data: pass --out FILE or redirect stdout', command);
  }
  return { encoding, out: out === undefined ? undefined : path.resolve(out) };
}

/** Writes `pem` (or its DER) where the destination says; returns the bytes written to a file, or null for stdout. */
async function deliver(out: Output, destination: Destination, pem: string, der: Uint8Array): Promise<number | null> {
  const data = destination.encoding === 'pem' ? utf8(pem) : der;
  if (destination.out !== undefined) {
    await writeFileAtomic(destination.out, data);
    try {
      await chmod(destination.out, EXPORT_FILE_MODE);
    } catch (cause) {
      throw new PalyraError('store_io_failed', `failed to make ${destination.out} readable`, { cause, details: { path: destination.out } });
    }
    return data.length;
  }
  if (out.json) return null;
  if (destination.encoding === 'pem') out.streams.stdout(pem);
  else out.bytes(der);
  return null;
}

/** The `--json` fields of an encoded object: where it went, or the encoding itself. */
function encodedJson(destination: Destination, written: number | null, pem: string, der: Uint8Array): Record<string, unknown> {
  if (written !== null) return { format: destination.encoding, path: destination.out, bytes: written };
  return destination.encoding === 'pem' ? { format: 'pem', pem } : { format: 'der', der_base64: toBase64(der) };
}

// --- ca show -----------------------------------------------------------------------------------------------------

const SHOW_SPEC: CommandSpec = defineCommand({
  name: 'ca show',
  summary: 'the gateway CA: subject, pin, fingerprint, validity, revocations',
  description: `Shows the gateway CA certificate: its subject, the SPKI pin a pairing QR code carries (ca=…), the SHA-256
fingerprint of the certificate, its validity, how many revoked certificates a CRL lists now, and the state of the
published crl.pem beside the state. Reads without the lock. No gateway state yet fails with error[ca_missing] (exit 1).`,
  options: {},
  positionals: [],
  notes: [
    `With --json: {"subject":"CN=…","serial":"<hex>","spki_pin":"<base64url>","fingerprint":"<64 hex>",
"not_before_unix_ms":N,"not_after_unix_ms":N,"revoked_serials":N,"crl_file":{"path":"…","crl_number":N,
"this_update_unix_ms":N,"next_update_unix_ms":N,"revoked_serials":N,"current":true|false}|null}
(crl_file null: no crl.pem yet; current: it lists exactly the serials of the state and is not past its nextUpdate)`,
  ],
});

interface CrlFileStatus {
  path: string;
  crl_number: number | null;
  this_update_unix_ms: number | null;
  next_update_unix_ms: number | null;
  revoked_serials: number | null;
  current: boolean;
}

function serialSet(serials: readonly string[]): string {
  return [...new Set(serials.map(normalizeSerialHex))].sort().join(',');
}

async function crlFileStatus(identity: IdentityManager, now: number): Promise<CrlFileStatus | null> {
  const stateDir = identity.stateDir;
  if (stateDir === null) return null;
  let info: CrlInfo;
  try {
    const file = await readCrlFile(stateDir);
    if (file === null) return null;
    info = file.info;
  } catch {
    return { path: crlFilePath(stateDir), crl_number: null, this_update_unix_ms: null, next_update_unix_ms: null, revoked_serials: null, current: false };
  }
  const wanted = serialSet(identity.crlEntries(now).map((e) => e.serialHex));
  const listed = serialSet(info.revoked.map((e) => e.serialHex));
  return {
    path: crlFilePath(stateDir),
    crl_number: info.crlNumber ?? null,
    this_update_unix_ms: info.thisUpdateUnixMs,
    next_update_unix_ms: info.nextUpdateUnixMs ?? null,
    revoked_serials: info.revoked.length,
    current: listed === wanted && info.nextUpdateUnixMs !== undefined && info.nextUpdateUnixMs > now,
  };
}

async function runShow(args: ParsedCommand, context: CliContext): Promise<number> {
  const identity = await openIdentity(args, context);
  const now = Date.now();
  const pem = identity.caCertificatePem;
  const info = parseCertificate(pem);
  const crlFile = await crlFileStatus(identity, now);
  const shown = {
    subject: decodeCertificate(pem).subject,
    serial: info.serialHex,
    spki_pin: identity.caSpkiPin,
    fingerprint: identity.caFingerprint,
    not_before_unix_ms: info.notBeforeUnixMs,
    not_after_unix_ms: info.notAfterUnixMs,
    revoked_serials: identity.crlEntries(now).length,
    crl_file: crlFile,
  };
  const { out } = context;
  if (out.json) {
    out.document(shown);
    return EXIT_OK;
  }
  out.line(`Gateway CA: ${shown.subject}`);
  out.line(`  SPKI pin (ca=):      ${shown.spki_pin}`);
  out.line(`  SHA-256 fingerprint: ${shown.fingerprint}`);
  out.line(`  serial:              ${shown.serial}`);
  out.line(`  valid:               ${formatTimestamp(shown.not_before_unix_ms)} to ${formatTimestamp(shown.not_after_unix_ms)}`);
  out.line(`  revoked serials:     ${shown.revoked_serials}`);
  if (crlFile === null) out.line('  crl.pem:             none yet (written by the gateway and by every revocation)');
  else if (crlFile.crl_number === null) out.line(`  crl.pem:             unreadable (${crlFile.path}); 'palyra ca crl --out FILE' issues a fresh one`);
  else out.line(`  crl.pem:             #${crlFile.crl_number}, next update ${formatTimestamp(crlFile.next_update_unix_ms)}${crlFile.current ? '' : ' (OUT OF DATE)'} (${crlFile.path})`);
  return EXIT_OK;
}

// --- ca export ---------------------------------------------------------------------------------------------------

const EXPORT_SPEC: CommandSpec = defineCommand({
  name: 'ca export',
  usage: ['[--pem|--der] [--out FILE]'],
  summary: 'the gateway CA certificate (PEM or DER)',
  description: `Writes the gateway CA certificate: PEM to stdout by default. This is what 'openssl verify -CAfile' and
'openssl crl -CAfile' take. Reads without the lock. No gateway state yet fails with error[ca_missing] (exit 1).`,
  options: { ...ENCODING_OPTIONS },
  positionals: [],
  notes: [
    `With --json: {"format":"pem","pem":"-----BEGIN CERTIFICATE-----…"} or {"format":"der","der_base64":"…"};
with --out: {"format":"pem|der","path":"…","bytes":N}. --pem and --der together are a usage error (exit 2).`,
  ],
});

async function runExport(args: ParsedCommand, context: CliContext): Promise<number> {
  const destination = destinationOf(args, context);
  const identity = await openIdentity(args, context);
  const pem = identity.caCertificatePem;
  const der = certificateDer(pem);
  const written = await deliver(context.out, destination, pem, der);
  const { out } = context;
  if (out.json) out.document(encodedJson(destination, written, pem, der));
  else if (written !== null) out.line(`Wrote the gateway CA certificate (${destination.encoding.toUpperCase()}, ${written} bytes) to ${destination.out ?? ''}`);
  return EXIT_OK;
}

// --- ca crl ------------------------------------------------------------------------------------------------------

const CRL_SPEC: CommandSpec = defineCommand({
  name: 'ca crl',
  usage: ['[--pem|--der] [--out FILE]'],
  summary: 'a CRL issued now from the current state (PEM or DER)',
  description: `Issues an X.509 CRL from the state as it is now, signed by the gateway CA: every revoked certificate that has not
expired yet, thisUpdate now, nextUpdate 7 days later, cRLNumber above the published crl.pem's. Writes it to stdout (PEM
by default) or --out FILE; the state directory is not written and no lock is taken. The gateway keeps a current copy in
crl.pem beside the state. Check it with: openssl crl -in FILE -CAfile CA.pem -noout -verify
No gateway state yet fails with error[ca_missing] (exit 1).`,
  options: { ...ENCODING_OPTIONS },
  positionals: [],
  notes: [
    `With --json: {"format":"pem","pem":"-----BEGIN X509 CRL-----…"} or {"format":"der","der_base64":"…"} (with --out:
{"format","path","bytes"}), plus "crl_number":N,"this_update_unix_ms":N,"next_update_unix_ms":N,"revoked_serials":["<hex>",…].`,
  ],
});

async function runCrl(args: ParsedCommand, context: CliContext): Promise<number> {
  const destination = destinationOf(args, context);
  const identity = await openIdentity(args, context);
  const pem = await identity.issueCrl();
  const der = crlDer(pem);
  const info = parseCrl(der);
  const written = await deliver(context.out, destination, pem, der);
  const { out } = context;
  if (out.json) {
    out.document({
      ...encodedJson(destination, written, pem, der),
      crl_number: info.crlNumber ?? null,
      this_update_unix_ms: info.thisUpdateUnixMs,
      next_update_unix_ms: info.nextUpdateUnixMs ?? null,
      revoked_serials: info.revoked.map((e) => e.serialHex),
    });
  } else if (written !== null) {
    out.line(`Wrote CRL #${info.crlNumber ?? '?'} (${info.revoked.length} revoked, next update ${formatTimestamp(info.nextUpdateUnixMs ?? null)}, ${destination.encoding.toUpperCase()}) to ${destination.out ?? ''}`);
  }
  return EXIT_OK;
}

export const CA_GROUP = defineGroup({
  name: 'ca',
  description: 'The gateway CA certificate and its certificate revocation list (crl.pem beside the state is kept current).',
  subcommands: {
    show: { spec: SHOW_SPEC, run: runShow },
    export: { spec: EXPORT_SPEC, run: runExport },
    crl: { spec: CRL_SPEC, run: runCrl },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(CA_GROUP, argv, context);
}

