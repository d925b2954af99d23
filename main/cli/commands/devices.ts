/**
 * `palyra devices list|rename|revoke|remove|unban` (CLI.md "Gateway (operator side)"). Revocation goes through the shared
 * state directory, so a running gateway closes the device's live connections on its own.
 *
 * Printed results: `revoke` prints the device as `list` shows it after the change (status "revoked"); `remove` and
 * `unban` print `{"device_id","status":"removed"|"unbanned"}`, since afterwards there is no paired or banned device
 * left to show.
 */

import type { DeviceView } from '../../admin/admin-target.js';
import { withAdminTarget } from '../../admin/admin-target.js';
import type { ClientKind } from '../../core/client-kind.js';
import type { PairingMethodKind } from '../../core/pairing-codes.js';
import { REMOTE_ADMIN_OPTIONS, chooseAdminTarget, localAdminTarget } from '../admin-target.js';
import type { CommandSpec, ParsedCommand } from '../args.js';
import type { CliContext } from '../context.js';
import { runGroup } from '../context.js';
import { defineCommand, defineGroup } from '../help.js';
import { EXIT_OK, formatTable, formatTimestamp } from '../output.js';

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
  name: string | null;
  platform: string | null;
  method: PairingMethodKind | null;
  paired_at_unix_ms: number | null;
  last_address: string | null;
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
    name: d.name,
    platform: d.platform,
    method: d.method,
    paired_at_unix_ms: d.paired_at_unix_ms,
    last_address: d.last_address,
  };
}

/** First 16 hex characters of a fingerprint, enough to tell devices apart in a table. */
function shortFingerprint(fingerprint: string | null): string {
  return fingerprint === null ? '-' : fingerprint.slice(0, 16);
}

// --- devices list ------------------------------------------------------------------------------------------------

const LIST_SPEC: CommandSpec = defineCommand({
  name: 'devices list',
  summary: 'list paired and revoked devices',
  description: `Lists paired and revoked (banned) devices — name, platform, how and when each paired, when and from where it was
last seen — and the revoked certificate fingerprints.`,
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [],
  notes: [
    `With --json: {"devices":[{"device_id","client_kind","status":"paired|revoked","identity_fingerprint",
"certificate_fingerprint","cert_expires_at_unix_ms","last_seen_at_unix_ms","capabilities":[…],"roles":[…],"name",
"platform","method":"qr|pin","paired_at_unix_ms","last_address"}],"revoked_certificate_fingerprints":[…]}
(unknown values are null; last_address is the peer address, without port, of the device's last RegisterNode)`,
  ],
});

async function runList(args: ParsedCommand, context: CliContext): Promise<number> {
  const { devices, revoked_certificate_fingerprints: revoked } = await withAdminTarget(await chooseAdminTarget(args, context), (t) => t.listDevices());
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
        ['DEVICE_ID', 'NAME', 'KIND', 'PLATFORM', 'METHOD', 'STATUS', 'ROLES', 'PAIRED', 'LAST_SEEN', 'LAST_ADDRESS', 'IDENTITY', 'CERT_EXPIRES', 'CAPABILITIES'],
        devices.map((d) => [
          d.device_id,
          d.name ?? '-',
          d.client_kind ?? '-',
          d.platform ?? '-',
          d.method ?? '-',
          d.status === 'revoked' && d.revoked_reason !== null ? `revoked (${d.revoked_reason})` : d.status,
          d.roles.length === 0 ? '-' : d.roles.join(','),
          formatTimestamp(d.paired_at_unix_ms),
          formatTimestamp(d.last_seen_at_unix_ms),
          d.last_address ?? '-',
          shortFingerprint(d.identity_fingerprint),
          formatTimestamp(d.cert_expires_at_unix_ms),
          d.capabilities.length === 0 ? '-' : d.capabilities.join(','),
        ]),
      ),
    );
  }
  out.line(`Revoked certificates: ${revoked.length}`);
  return EXIT_OK;
}

// --- devices rename ----------------------------------------------------------------------------------------------

const RENAME_SPEC: CommandSpec = defineCommand({
  name: 'devices rename',
  summary: "change a paired device's display name",
  description: `Sets the display name shown for a paired device on the approval screen, in device lists and in the app (audited
as device_renamed). The name is trimmed and stored in Unicode NFC; it must be 1–64 characters without control
characters, else error[invalid_argument] (exit 1, nothing changes). A device that is not paired fails with
error[not_found] (exit 1).`,
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [
    { name: 'DEVICE_ID', required: true, description: "the paired device, as 'palyra devices list' shows it" },
    { name: 'NAME', required: true, description: 'the new display name (quote it if it has spaces)' },
  ],
  notes: ["With --json: the device after the change, as 'devices list --json' shows it."],
});

async function runRename(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const name = args.requiredPositional('NAME');
  const device = await withAdminTarget(await chooseAdminTarget(args, context), (t) => t.renameDevice(deviceId, name));
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Renamed device ${deviceId} to "${device.name ?? name}".`);
  return EXIT_OK;
}

// --- devices revoke / remove / unban -----------------------------------------------------------------------------

const REVOKE_SPEC: CommandSpec = defineCommand({
  name: 'devices revoke',
  summary: 'ban a device and revoke its certificates',
  description: `Bans a device: revokes its certificates and refuses it until 'palyra devices unban'. Also works for a device id
that never paired (a pre-emptive ban). A running gateway closes the device's connections at once.`,
  options: {
    reason: { type: 'string', placeholder: 'TEXT', description: 'recorded with the ban', default: 'revoked_by_operator' },
    ...REMOTE_ADMIN_OPTIONS,
  },
  positionals: [{ name: 'DEVICE_ID', required: true, description: "the device to ban, as 'palyra devices list' shows it (or any device id)" }],
  notes: ['With --json: the device after the change, as \'devices list --json\' shows it (status "revoked").'],
});

async function runRevoke(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const reason = args.string('reason') ?? '';
  const device = await withAdminTarget(await chooseAdminTarget(args, context), (t) => t.revokeDevice(deviceId, reason));
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Revoked device ${deviceId} (reason: ${device.revoked_reason ?? '-'}); it stays banned until 'palyra devices unban ${deviceId}'.`);
  return EXIT_OK;
}

const REMOVE_SPEC: CommandSpec = defineCommand({
  name: 'devices remove',
  summary: 'unpair a device (no ban; it may pair again)',
  description: `Unpairs a device without banning it: its certificates are revoked and it may pair again. A device that is not
paired fails with error[not_found] (exit 1).`,
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [{ name: 'DEVICE_ID', required: true, description: 'the paired device to remove' }],
  notes: ['With --json: {"device_id":"…","status":"removed"}'],
});

async function runRemove(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  await withAdminTarget(await chooseAdminTarget(args, context), (t) => t.removeDevice(deviceId));
  const { out } = context;
  if (out.json) out.document({ device_id: deviceId, status: 'removed' });
  else out.line(`Removed device ${deviceId}; its certificates are revoked and it may pair again.`);
  return EXIT_OK;
}

const UNBAN_SPEC: CommandSpec = defineCommand({
  name: 'devices unban',
  summary: "lift a device's ban",
  description: `Lifts a device's ban so it may pair again (its old certificates stay revoked). A device that is not banned fails
with error[not_found] (exit 1).`,
  options: { ...REMOTE_ADMIN_OPTIONS },
  positionals: [{ name: 'DEVICE_ID', required: true, description: 'the banned device' }],
  notes: ['With --json: {"device_id":"…","status":"unbanned"}'],
});

async function runUnban(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  await withAdminTarget(await chooseAdminTarget(args, context), (t) => t.unbanDevice(deviceId));
  const { out } = context;
  if (out.json) out.document({ device_id: deviceId, status: 'unbanned' });
  else out.line(`Unbanned device ${deviceId}; it may pair again.`);
  return EXIT_OK;
}

// --- devices grant-admin / revoke-admin ---------------------------------------------------------------------------

const GRANT_ADMIN_SPEC: CommandSpec = defineCommand({
  name: 'devices grant-admin',
  summary: 'give a paired device the admin role (remote administration)',
  description: `Gives a paired device the admin role: with its mTLS certificate it may then administer this gateway remotely
(palyra.admin.v1.GatewayAdmin on the gateway port). A device that is not paired fails with error[device_not_paired]
(exit 1). Revoking or removing the device drops the role with it.`,
  options: {},
  positionals: [{ name: 'DEVICE_ID', required: true, description: 'the paired device' }],
  notes: ["With --json: the device after the change, as 'devices list --json' shows it."],
});

async function runGrantAdmin(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const device = await localAdminTarget(args, context).grantAdmin(deviceId);
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Granted the admin role to device ${deviceId}; it may now administer this gateway over mTLS.`);
  return EXIT_OK;
}

const REVOKE_ADMIN_SPEC: CommandSpec = defineCommand({
  name: 'devices revoke-admin',
  summary: "withdraw a device's admin role",
  description: `Withdraws a paired device's admin role. A running gateway refuses its next admin call and ends its event watch at
once; the device stays paired. A device that is not paired fails with error[device_not_paired] (exit 1).`,
  options: {},
  positionals: [{ name: 'DEVICE_ID', required: true, description: 'the paired device' }],
  notes: ["With --json: the device after the change, as 'devices list --json' shows it."],
});

async function runRevokeAdmin(args: ParsedCommand, context: CliContext): Promise<number> {
  const deviceId = args.requiredPositional('DEVICE_ID');
  const device = await localAdminTarget(args, context).revokeAdmin(deviceId);
  const { out } = context;
  if (out.json) out.document(deviceOutput(device));
  else out.line(`Withdrew the admin role from device ${deviceId}; it stays paired.`);
  return EXIT_OK;
}

export const DEVICES_GROUP = defineGroup({
  name: 'devices',
  description: 'Paired and revoked devices of the gateway state directory.',
  subcommands: {
    list: { spec: LIST_SPEC, run: runList },
    rename: { spec: RENAME_SPEC, run: runRename },
    revoke: { spec: REVOKE_SPEC, run: runRevoke },
    remove: { spec: REMOVE_SPEC, run: runRemove },
    unban: { spec: UNBAN_SPEC, run: runUnban },
    'grant-admin': { spec: GRANT_ADMIN_SPEC, run: runGrantAdmin },
    'revoke-admin': { spec: REVOKE_ADMIN_SPEC, run: runRevokeAdmin },
  },
});

export function run(argv: string[], context: CliContext): Promise<number> {
  return runGroup(DEVICES_GROUP, argv, context);
}
