/**
 * Command-line parsing for `palyra`: node:util parseArgs in strict mode, per command. Every parse failure is a
 * `usage` error (exit 2) whose message ends with a hint to the command's `--help`.
 *
 * Global options (`--state-dir DIR`, `--json`, `--help`) are accepted by every command, also before the command
 * name (`palyra --json pairing list`): groups lift them from in front of the subcommand and hand them on.
 */

import { parseArgs } from 'node:util';
import { PalyraError } from '../core/errors.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
}

export interface PositionalSpec {
  /** Upper-case placeholder as the help shows it, e.g. `REQUEST_ID`. */
  readonly name: string;
  readonly required: boolean;
}

export interface CommandSpec {
  /** The command path without `palyra`, e.g. `pairing code`; used in messages and the `--help` hint. */
  readonly name: string;
  /** Command-specific options (the global ones are added). */
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly positionals: readonly PositionalSpec[];
  /** The full `--help` text. */
  readonly help: string;
}

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'state-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** The help text's lines about the global options, shared by every command's help. */
export const GLOBAL_OPTIONS_HELP = [
  'Global options:',
  '  --state-dir DIR   gateway state directory (env PALYRA_STATE_DIR; default: the desktop app\'s data directory)',
  '  --json            machine-readable output (one JSON document; JSON lines for `gateway run`)',
  '  -h, --help        show help',
].join('\n');

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
    if (arg === '--json' || arg === '--help' || arg === '-h' || arg.startsWith('--state-dir=')) {
      globals.push(arg);
      i += 1;
    } else if (arg === '--state-dir') {
      const value = argv[i + 1];
      if (value === undefined) throw usageError("option '--state-dir DIR' needs a value", command);
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
  readonly spec: CommandSpec;
  readonly #values: Readonly<Record<string, ParsedValue>>;
  readonly #positionals: ReadonlyMap<string, string>;

  constructor(spec: CommandSpec, values: Readonly<Record<string, ParsedValue>>, positionals: ReadonlyMap<string, string>) {
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

  /** The last value of a string option (a repeated single-value option: the last one wins, as usual). */
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

/** Parses `argv` (everything after the command name) against `spec` plus the global options. */
export function parseCommand(spec: CommandSpec, argv: readonly string[]): ParsedCommand {
  let parsed: { values: Record<string, ParsedValue>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...GLOBAL_OPTIONS, ...spec.options },
      strict: true,
      allowPositionals: true,
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
  return new ParsedCommand(spec, parsed.values, positionals);
}

/** One of a fixed set of values, or a usage error listing them. */
export function oneOf<T extends string>(option: string, value: string, allowed: readonly T[], command: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw usageError(`${option} must be one of ${allowed.join('|')} (got '${value.slice(0, 32)}')`, command);
}
