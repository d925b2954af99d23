/**
 * The `palyra` command (CLI.md): `main(argv)` returns the exit code — 0 success, 1 operational error, 2 usage
 * error — and never throws. Command groups load lazily, so `palyra pairing list` does not load the gRPC server;
 * only the top-level help loads them all, since it lists every command from the groups' specs.
 */

import { toPalyraError } from '../core/errors.js';
import { installNodeCrypto } from '../platform/node-crypto.js';
import { splitLeadingGlobals, usageError, wantsHelp, wantsJson, withGlobals } from './args.js';
import type { CliContext } from './context.js';
import type { GroupSpec } from './help.js';
import { commandRows, globalOptionsHelp, labelColumn, renderRows, usageHelp } from './help.js';
import { EXIT_OK, Output } from './output.js';
import type { OutputStreams } from './output.js';

/** A command group module: its spec (for help) and its entry point, `run(argv after the group name, context)`. */
export interface LoadedGroup {
  readonly group: GroupSpec;
  run(argv: string[], context: CliContext): Promise<number>;
}

const OPERATOR_SIDE = 'Gateway (operator side)';
const DEVICE_SIDE = 'Device side';

/** The command groups, in the order the top-level help lists them, under its headings. */
export const GROUPS: readonly { readonly name: string; readonly heading: string; load(): Promise<LoadedGroup> }[] = [
  {
    name: 'gateway',
    heading: OPERATOR_SIDE,
    load: async () => {
      const m = await import('./commands/gateway.js');
      return { group: m.GATEWAY_GROUP, run: m.run };
    },
  },
  {
    name: 'pairing',
    heading: OPERATOR_SIDE,
    load: async () => {
      const m = await import('./commands/pairing.js');
      return { group: m.PAIRING_GROUP, run: m.run };
    },
  },
  {
    name: 'devices',
    heading: OPERATOR_SIDE,
    load: async () => {
      const m = await import('./commands/devices.js');
      return { group: m.DEVICES_GROUP, run: m.run };
    },
  },
  {
    name: 'audit',
    heading: OPERATOR_SIDE,
    load: async () => {
      const m = await import('./commands/audit.js');
      return { group: m.AUDIT_GROUP, run: m.run };
    },
  },
  {
    name: 'state',
    heading: OPERATOR_SIDE,
    load: async () => {
      const m = await import('./commands/state.js');
      return { group: m.STATE_GROUP, run: m.run };
    },
  },
  {
    name: 'ca',
    heading: OPERATOR_SIDE,
    load: async () => {
      const m = await import('./commands/ca.js');
      return { group: m.CA_GROUP, run: m.run };
    },
  },
  {
    name: 'device',
    heading: DEVICE_SIDE,
    load: async () => {
      const m = await import('./commands/device.js');
      return { group: m.DEVICE_GROUP, run: m.run };
    },
  },
];

function groupNames(): string {
  const names = GROUPS.map((g) => g.name);
  return `${names.slice(0, -1).join(', ')} or ${names[names.length - 1] ?? ''}`;
}

/** `palyra --help`: every command of every group, by heading. */
export async function topLevelHelp(): Promise<string> {
  const loaded = await Promise.all(GROUPS.map(async (g) => ({ heading: g.heading, group: (await g.load()).group })));
  const headings = [...new Set(loaded.map((l) => l.heading))];
  const rowsOf = (heading: string): [string, string][] =>
    loaded.filter((l) => l.heading === heading).flatMap((l) => commandRows(l.group, `${l.group.name} `));
  const column = labelColumn(headings.flatMap((heading) => rowsOf(heading).map(([label]) => label)));
  const sections = headings.map((heading) => `${heading}:\n${renderRows(rowsOf(heading), column)}`);
  return [
    usageHelp('<command>', ['[options]']),
    'Pair devices with a Palyra gateway you trust.',
    ...sections,
    "Run 'palyra <command> --help' (e.g. 'palyra pairing --help') for details.\nExit codes: 0 success, 1 operational error, 2 usage error.",
    globalOptionsHelp(),
  ].join('\n\n');
}

async function dispatch(argv: string[], context: CliContext): Promise<number> {
  const { globals, name, rest } = splitLeadingGlobals(argv, undefined);
  if (name === undefined) {
    if (wantsHelp(globals)) {
      context.out.line(await topLevelHelp());
      return EXIT_OK;
    }
    throw usageError(`a command is needed: ${groupNames()}`);
  }
  if (name === 'help') {
    // `palyra help [GROUP [COMMAND]]` is `palyra [GROUP [COMMAND]] --help`.
    return dispatch([...rest, '--help'], context);
  }
  const entry = GROUPS.find((g) => g.name === name);
  if (entry === undefined) throw usageError(`unknown command '${name.slice(0, 64)}' (expected one of ${groupNames()})`);
  return (await entry.load()).run(withGlobals(rest, globals), context);
}

/** Runs one `palyra` command line; resolves to its exit code. */
export async function main(argv: string[], options: { env?: NodeJS.ProcessEnv; streams?: OutputStreams } = {}): Promise<number> {
  // The main-process crypto fast path (same answers as @noble, main/core/crypto.ts); @noble where unavailable.
  installNodeCrypto();
  const out = new Output({ json: wantsJson(argv), ...(options.streams === undefined ? {} : { streams: options.streams }) });
  const context: CliContext = { out, env: options.env ?? process.env };
  try {
    return await dispatch(argv, context);
  } catch (error) {
    return out.error(toPalyraError(error));
  }
}
