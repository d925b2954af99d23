/**
 * `palyra devices list|revoke|remove|unban` (CLI.md "Gateway (operator side)"). Revocation goes through the shared
 * state directory, so a running gateway closes the device's live connections on its own.
 *
 * Printed results: `revoke` prints the device as `list` shows it after the change (status "revoked"); `remove` and
 * `unban` print `{"device_id","status":"removed"|"unbanned"}`, since afterwards there is no paired or banned device
 * left to show.
 */

import type { ClientKind } from '../../core/client-kind.js';
import { PalyraError } from '../../core/errors.js';
import type { DeviceView } from '../../gateway/gateway-admin.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import { GLOBAL_OPTIONS_HELP } from '../args.js';
import type { CliContext, CommandGroup } from '../context.js';
import { openAdmin, runGroup } from '../context.js';
import { EXIT_OK, formatTable, formatTimestamp } from '../output.js';
import { REMOTE_ADMIN_HELP, REMOTE_ADMIN_OPTIONS, chooseAdminTarget, withRemote } from '../remote-admin.js';

export interface DeviceOutput {
  device_id: string;
  client_kind: ClientKind | null;
  status: 'paired' | 'revoked';
  identity_fingerprint: string | null;
  certificate_fingerprint: string | null;
  cert_expires_at_unix_ms: number | null;
  last_seen_at_unix_ms: number | null;
  capabilities: string[];
  roles: string[];
}

export function deviceOutput(d: DeviceView): DeviceOutput {
  return {
    device_id: d.device_id,
    client_kind: d.client_kind,
    status: d.status,
    identity_fingerprint: d.identity_fingerprint,
    certificate_fingerprint: d.certificate_fingerprint,
    cert_expires_at_unix_ms: d.cert_expires_at_unix_ms,
    last_seen_at_unix_ms: d.last_seen_at_unix_ms,
    capabilities: [...d.capabilities],
    roles: [...d.roles],
  };
}

/** First 16 hex characters of a fingerprint, enough to tell devices apart in a table. */
function shortFingerprint(fingerprint: string | null): string {
  return fingerprint === null ? '-' : fingerprint.slice(0, 16);
}

// --- devices list ------------------------------------------------------------------------------------------------

const LIST_SPEC: CommandSpec = {
  name: 'devices list',
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [],
  help: `Usage: palyra devices list

Lists paired and revoked (banned) devices, and the revoked certificate fingerprints.

With --json: {"devices":[{"device_id","client_kind","status":"paired|revoked","identity_fingerprint",
"certificate_fingerprint","cert_expires_at_unix_ms","last_seen_at_unix_ms","capabilities":[…],"roles":[…]}],
"revoked_certificate_fingerprints":[…]}

${REMOTE_ADMIN_HELP}

${GLOBAL_OPTIONS_HELP}`,
};

async function runList(args: ParsedCommand, context: CliContext): Promise<number> {
  const remote = await chooseAdminTarget(args, context);
  const { devices, revoked_certificate_fingerprints: revoked } =
    remote === null ? (await openAdmin(args, context)).admin.listDevices() : await withRemote(remote, (r) => r.listDevices());
  const { out } = context;
  if (out.json) {
    out.document({ devices: devices.map(deviceOutput), revoked_certificate_fingerprints: [...revoked] });
    return EXIT_OK;
  }
  if (devices.length === 0) {
    out.line('No devices.');
  } else {
    out.line(`Devices (${devices.length}):`);
    out.line(
      formatTable(
        ['DEVICE_ID', 'KIND', 'STATUS', 'ROLES', 'IDENTITY', 'CERT_EXPIRES', 'LAST_SEEN', 'CAPABILITIES'],
        devices.map((d) => [
          d.device_id,
          d.client_kind ?? '-',
          d.status === 'revoked' && d.revoked_reason !== null ? `revoked (${d.revoked_reason})` : d.status,
          d.roles.length === 0 ? '-' : d.roles.join(','),
          shortFingerprint(d.identity_fingerprint),
          formatTimestamp(d.cert_expires_at_unix_ms),
          formatTimestamp(d.last_seen_at_unix_ms),
          d.capabilities.length === 0 ? '-' : d.capabilities.join(','),
        ]),
      ),
    );
  }
  out.line(`Revoked certificates: ${revoked.length}`);
  return EXIT_OK;
}

// --- devices revoke / remove / unban -----------------------------------------------------------------------------

const REVOKE_SPEC: CommandSpec = {
  name: 'devices revoke',
  options: { reason: { type: 'string' }, ...REMOTE_ADMIN_OPTIONS },
  positionals: [{ name: 'DEVICE_ID', required: true }],
  help: `Usage: palyra devices revoke DEVICE_ID [--reason TEXT]

Bans a device: revokes its certificates and refuses it until 'palyra devices unban'. Also works for a device id
that never paired (a pre-emptive ban). A running gateway closes the device's connections at once.

Options:
  --reason TEXT   recorded with the ban (default: revoked_by_operator)

With --json: the device after the change, as 'devices list --json' shows it (status "revoked").

${REMOTE_ADMIN_HELP}

${GLOBAL_OPTIONS_HELP}`,
};

async function runRevoke(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const reason = args.string('reason') ?? '';
  const remote = await chooseAdminTarget(args, context);
  let device: DeviceView | undefined;
  if (remote === null) {
    const { admin } = await openAdmin(args, context);
    await admin.revokeDevice(deviceId, reason);
    device = admin.listDevices().devices.find((d) => d.device_id === deviceId && d.status === 'revoked');
  } else {
    device = await withRemote(remote, (r) => r.revokeDevice(deviceId, reason));
  }
  if (device === undefined) throw new PalyraError('internal', `device ${deviceId} was revoked but is not listed as revoked`);
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Revoked device ${deviceId} (reason: ${device.revoked_reason ?? '-'}); it stays banned until 'palyra devices unban ${deviceId}'.`);
  return EXIT_OK;
}

const REMOVE_SPEC: CommandSpec = {
  name: 'devices remove',
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [{ name: 'DEVICE_ID', required: true }],
  help: `Usage: palyra devices remove DEVICE_ID

Unpairs a device without banning it: its certificates are revoked and it may pair again. A device that is not
paired fails with error[not_found] (exit 1).

With --json: {"device_id":"…","status":"removed"}

${REMOTE_ADMIN_HELP}

${GLOBAL_OPTIONS_HELP}`,
};

async function runRemove(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const remote = await chooseAdminTarget(args, context);
  if (remote === null) await (await openAdmin(args, context)).admin.removeDevice(deviceId);
  else await withRemote(remote, (r) => r.removeDevice(deviceId));
  const { out } = context;
  if (out.json) out.document({ device_id: deviceId, status: 'removed' });
  else out.line(`Removed device ${deviceId}; its certificates are revoked and it may pair again.`);
  return EXIT_OK;
}

const UNBAN_SPEC: CommandSpec = {
  name: 'devices unban',
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [{ name: 'DEVICE_ID', required: true }],
  help: `Usage: palyra devices unban DEVICE_ID

Lifts a device's ban so it may pair again (its old certificates stay revoked). A device that is not banned fails
with error[not_found] (exit 1).

With --json: {"device_id":"…","status":"unbanned"}

${REMOTE_ADMIN_HELP}

${GLOBAL_OPTIONS_HELP}`,
};

async function runUnban(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const remote = await chooseAdminTarget(args, context);
  if (remote === null) await (await openAdmin(args, context)).admin.unbanDevice(deviceId);
  else await withRemote(remote, (r) => r.unbanDevice(deviceId));
  const { out } = context;
  if (out.json) out.document({ device_id: deviceId, status: 'unbanned' });
  else out.line(`Unbanned device ${deviceId}; it may pair again.`);
  return EXIT_OK;
}

// --- devices grant-admin / revoke-admin ---------------------------------------------------------------------------

const GRANT_ADMIN_SPEC: CommandSpec = {
  name: 'devices grant-admin',
  options: {},
  positionals: [{ name: 'DEVICE_ID', required: true }],
  help: `Usage: palyra devices grant-admin DEVICE_ID

Gives a paired device the admin role: with its mTLS certificate it may then administer this gateway remotely
(palyra.admin.v1.GatewayAdmin on the gateway port). A device that is not paired fails with error[device_not_paired]
(exit 1). Revoking or removing the device drops the role with it.

With --json: the device after the change, as 'devices list --json' shows it.

${GLOBAL_OPTIONS_HELP}`,
};

async function runGrantAdmin(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const { admin } = await openAdmin(args, context);
  const device = await admin.grantAdmin(deviceId);
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Granted the admin role to device ${deviceId}; it may now administer this gateway over mTLS.`);
  return EXIT_OK;
}

const REVOKE_ADMIN_SPEC: CommandSpec = {
  name: 'devices revoke-admin',
  options: {},
  positionals: [{ name: 'DEVICE_ID', required: true }],
  help: `Usage: palyra devices revoke-admin DEVICE_ID

Withdraws a paired device's admin role. A running gateway refuses its next admin call and ends its event watch at
once; the device stays paired. A device that is not paired fails with error[device_not_paired] (exit 1).

With --json: the device after the change, as 'devices list --json' shows it.

${GLOBAL_OPTIONS_HELP}`,
};

async function runRevokeAdmin(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const { admin } = await openAdmin(args, context);
  const device = await admin.revokeAdmin(deviceId);
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Withdrew the admin role from device ${deviceId}; it stays paired.`);
  return EXIT_OK;
}

export const DEVICES_GROUP: CommandGroup = {
  name: 'devices',
  help: `Usage: palyra devices <command> [options]

Paired and revoked devices of the gateway state directory.

Commands:
  list     list paired and revoked devices
  revoke   ban a device and revoke its certificates
  remove   unpair a device (no ban; it may pair again)
  unban    lift a device's ban
  grant-admin    give a paired device the admin role (remote administration)
  revoke-admin   withdraw a device's admin role

Run 'palyra devices <command> --help' for a command's options.

${GLOBAL_OPTIONS_HELP}`,
  subcommands: {
    list: { spec: LIST_SPEC, run: runList },
    revoke: { spec: REVOKE_SPEC, run: runRevoke },
    remove: { spec: REMOVE_SPEC, run: runRemove },
    unban: { spec: UNBAN_SPEC, run: runUnban },
    'grant-admin': { spec: GRANT_ADMIN_SPEC, run: runGrantAdmin },
    'revoke-admin': { spec: REVOKE_ADMIN_SPEC, run: runRevokeAdmin },
  },
};

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(DEVICES_GROUP, argv, context);
}
