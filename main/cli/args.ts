/**
 * Command-line parsing for `palyra`: node:util parseArgs in strict mode, per command. Every parse failure is a
 * `usage` error (exit 2) whose message ends with a hint to the command's `--help`.
 *
 * Global options (`--state-dir DIR`, `--json`, `--help`) are accepted by every command, also before the command
 * name (`palyra --json pairing list`): groups lift them from in front of the subcommand and hand them on.
 *
 * A string option takes one value: given twice (also once before and once after the subcommand) it is a usage
 * error naming it, unless its spec says `multiple`. A repeated boolean flag (`--json --json`) means the same as one.
 * The specs also carry the help texts' material (help.ts renders them).
 */

import { parseArgs } from 'node:util';
import { PalyraError } from '../core/errors.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** Repeatable (every value kept); any other string option given twice is a usage error. */
  readonly multiple?: boolean;
  readonly short?: string;
  /** What the help shows after a string option's name, e.g. `HOST:PORT` or `qr|pin`. */
  readonly placeholder?: string;
  /** One line of help text (the help wraps it); default and environment are added from the fields below. */
  readonly description: string;
  /** The value (or behaviour) when the option is not given, as the help shows it. */
  readonly default?: string;
  /** The environment variable that sets it, with its meaning when not obvious: `PALYRA_STATE_DIR`. */
  readonly env?: string;
  /** The help section the option is listed under (default `Options`). */
  readonly section?: string;
}

export interface PositionalSpec {
  /** Upper-case placeholder as the help shows it, e.g. `REQUEST_ID`. */
  readonly name: string;
  readonly required: boolean;
  readonly description: string;
}

/** What a command declares; defineCommand (help.ts) turns it into a CommandSpec with its generated help. */
export interface CommandDefinition {
  /** The command path without `palyra`, e.g. `pairing code`; used in messages and the `--help` hint. */
  readonly name: string;
  /** One line for the group's and the top level's command lists, e.g. `approve a pending pairing request`. */
  readonly summary: string;
  /** The help's usage forms after `palyra NAME ` (default: one form made from the positionals and options). */
  readonly usage?: readonly string[];
  /** What the command does: the paragraph(s) below the usage lines, as written (not re-wrapped). */
  readonly description: string;
  /** Command-specific options (the global ones are added). */
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly positionals: readonly PositionalSpec[];
  /** Free-form paragraphs after the options (e.g. the `--json` shape), as written. */
  readonly notes?: readonly string[];
}

export interface CommandSpec extends CommandDefinition {
  /** The full `--help` text, generated from the fields above. */
  readonly help: string;
}

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'state-dir': {
    type: 'string',
    placeholder: 'DIR',
    description: 'gateway state directory',
    env: 'PALYRA_STATE_DIR',
    default: "the desktop app's data directory",
  },
  'database-url': {
    type: 'string',
    placeholder: 'URL',
    description: 'keep the trust state in PostgreSQL (postgres://USER[:PASSWORD]@HOST[:PORT]/DB) instead of the state directory',
    env: 'PALYRA_DATABASE_URL',
  },
  'store-key-file': {
    type: 'string',
    placeholder: 'FILE',
    description: 'with --database-url: the 32-byte store key file (created if absent; the same on every replica)',
    env: 'PALYRA_STORE_KEY_FILE',
    default: 'the OS keychain',
  },
  json: { type: 'boolean', description: 'machine-readable output (one JSON document; JSON lines for `gateway run`)' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
};

/** A usage error (exit 2) with the hint to `--help`. */
export function usageError(message: string, command?: string): PalyraError {
  const target = command === undefined ? 'palyra --help' : `palyra ${command} --help`;
  return new PalyraError('usage', `${message}; run '${target}' for usage`);
}

/**
 * Runs a value parser from core (which throws PalyraError `invalid_argument` and friends) on an option value and
 * reports its failure as a usage error naming the option: a malformed flag is a usage error, not an operation's.
 */
export function parseOptionValue<T>(option: string, command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw usageError(`${option}: ${message}`, command);
  }
}

/** Index of a `--` terminator, or the length: options are only recognised before it. */
function optionsEnd(argv: readonly string[]): number {
  const end = argv.indexOf('--');
  return end < 0 ? argv.length : end;
}

/** Whether `--help`/`-h` appears among the options: help wins over any other problem with the line. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.slice(0, optionsEnd(argv)).some((a) => a === '--help' || a === '-h');
}

/** Whether `--json` appears among the options (errors found before parsing are then printed as JSON too). */
export function wantsJson(argv: readonly string[]): boolean {
  return argv.slice(0, optionsEnd(argv)).includes('--json');
}

/**
 * Splits `[global options…] NAME rest…`: the global options in front of a command or subcommand name, the name
 * (undefined when there is none) and what follows it. Any other option in front of the name is a usage error.
 */
export function splitLeadingGlobals(
  argv: readonly string[],
  command: string | undefined,
): { globals: string[]; name: string | undefined; rest: string[] } {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    const valued = VALUED_GLOBALS.find((g) => arg === g.flag);
    if (arg === '--json' || arg === '--help' || arg === '-h' || VALUED_GLOBALS.some((g) => arg.startsWith(`${g.flag}=`))) {
      globals.push(arg);
      i += 1;
    } else if (valued !== undefined) {
      const value = argv[i + 1];
      if (value === undefined) throw usageError(`option '${valued.flag} ${valued.placeholder}' needs a value`, command);
      globals.push(arg, value);
      i += 2;
    } else if (arg.startsWith('-')) {
      const where = command === undefined ? '' : ` before the '${command}' subcommand`;
      throw usageError(`unknown option '${optionName(arg)}'${where}`, command);
    } else {
      return { globals, name: arg, rest: argv.slice(i + 1) };
    }
  }
  return { globals, name: undefined, rest: [] };
}

/** Global options that take a value (accepted in front of a subcommand name too). */
const VALUED_GLOBALS: readonly { flag: string; placeholder: string }[] = [
  { flag: '--state-dir', placeholder: 'DIR' },
  { flag: '--database-url', placeholder: 'URL' },
  { flag: '--store-key-file', placeholder: 'FILE' },
];

/** Puts lifted global options back in, ahead of a `--` terminator if there is one. */
export function withGlobals(rest: readonly string[], globals: readonly string[]): string[] {
  const end = optionsEnd(rest);
  return [...rest.slice(0, end), ...globals, ...rest.slice(end)];
}

function optionName(arg: string): string {
  const eq = arg.indexOf('=');
  return (eq < 0 ? arg : arg.slice(0, eq)).slice(0, 64);
}

type ParsedValue = string | boolean | (string | boolean)[] | undefined;

/** A parsed command line: typed accessors over parseArgs' values, positionals by name. */
export class ParsedCommand {
  readonly spec: CommandDefinition;
  readonly #values: Readonly<Record<string, ParsedValue>>;
  readonly #positionals: ReadonlyMap<string, string>;

  constructor(spec: CommandDefinition, values: Readonly<Record<string, ParsedValue>>, positionals: ReadonlyMap<string, string>) {
    this.spec = spec;
    this.#values = values;
    this.#positionals = positionals;
  }

  get json(): boolean {
    return this.flag('json');
  }

  get stateDir(): string | undefined {
    return this.string('state-dir');
  }

  /** The value of a string option (parseCommand refuses a single-value option given twice). */
  string(name: string): string | undefined {
    const value = this.#values[name];
    if (Array.isArray(value)) {
      const last = value[value.length - 1];
      return typeof last === 'string' ? last : undefined;
    }
    return typeof value === 'string' ? value : undefined;
  }

  /** Every value of a repeatable string option. */
  strings(name: string): string[] {
    const value = this.#values[name];
    if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
    return typeof value === 'string' ? [value] : [];
  }

  flag(name: string): boolean {
    return this.#values[name] === true;
  }

  positional(name: string): string | undefined {
    return this.#positionals.get(name);
  }

  /** A required positional (parseCommand has already checked it is there). */
  requiredPositional(name: string): string {
    const value = this.#positionals.get(name);
    if (value === undefined) throw usageError(`missing ${name}`, this.spec.name);
    return value;
  }
}

interface NodeParseArgsError {
  code?: unknown;
  message?: unknown;
}

/** Node's parseArgs messages run on with advice that fits its own examples; keep the first sentence. */
function firstSentence(message: string): string {
  const cut = message.indexOf('. ');
  return cut < 0 ? message.replace(/\.$/, '') : message.slice(0, cut);
}

/** parseArgs' own view of an option: only the fields it knows. */
function parseArgsOptions(options: Readonly<Record<string, OptionSpec>>): Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> {
  return Object.fromEntries(
    Object.entries(options).map(([name, o]) => [
      name,
      { type: o.type, ...(o.multiple === true ? { multiple: true } : {}), ...(o.short === undefined ? {} : { short: o.short }) },
    ]),
  );
}

interface OptionToken {
  readonly kind: string;
  readonly name?: string;
}

/** A single-value string option given more than once is a usage error; repeated boolean flags are harmless. */
function refuseRepeats(options: Readonly<Record<string, OptionSpec>>, tokens: readonly OptionToken[], command: string): void {
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name === undefined) continue;
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (option === undefined || option.type !== 'string' || option.multiple === true) continue;
    if (seen.has(token.name)) throw usageError(`option '--${token.name}' is given more than once (it takes one value)`, command);
    seen.add(token.name);
  }
}

/** Parses `argv` (everything after the command name) against `spec` plus the global options. */
export function parseCommand(spec: CommandDefinition, argv: readonly string[]): ParsedCommand {
  const options = { ...GLOBAL_OPTIONS, ...spec.options };
  let parsed: { values: Record<string, ParsedValue>; positionals: string[]; tokens: OptionToken[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: parseArgsOptions(options),
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (error) {
    const e = error as NodeParseArgsError;
    const message = typeof e.message === 'string' ? e.message : String(error);
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const match = /'([^']*)'/.exec(message);
      throw usageError(`unknown option '${match?.[1] ?? '?'}' for 'palyra ${spec.name}'`, spec.name);
    }
    throw usageError(firstSentence(message), spec.name);
  }
  refuseRepeats(options, parsed.tokens, spec.name);
  const positionals = new Map<string, string>();
  parsed.positionals.forEach((value, index) => {
    const slot = spec.positionals[index];
    if (slot === undefined) throw usageError(`unexpected argument '${value.slice(0, 64)}'`, spec.name);
    positionals.set(slot.name, value);
  });
  for (const slot of spec.positionals) {
    if (slot.required && !positionals.has(slot.name)) throw usageError(`missing ${slot.name}`, spec.name);
  }
  if (parsed.values['state-dir'] === '') throw usageError('--state-dir must not be empty', spec.name);
  if (parsed.values['database-url'] === '') throw usageError('--database-url must not be empty', spec.name);
  if (parsed.values['store-key-file'] === '') throw usageError('--store-key-file must not be empty', spec.name);
  return new ParsedCommand(spec, parsed.values, positionals);
}

/** One of a fixed set of values, or a usage error listing them. */
export function oneOf<T extends string>(option: string, value: string, allowed: readonly T[], command: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw usageError(`${option} must be one of ${allowed.join('|')} (got '${value.slice(0, 32)}')`, command);
}
