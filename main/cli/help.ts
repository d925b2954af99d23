/**
 * The `--help` texts of `palyra`, generated from the command specs (args.ts) so that a command, option or argument
 * cannot be left out of them: each command's help from its CommandDefinition, each group's from its subcommands'
 * summaries, the top level's (main.ts) from the groups. Descriptions are wrapped to the help's width; the free-form
 * parts (a command's description and notes) are printed as written.
 */

import type { CommandDefinition, CommandSpec, OptionSpec, ParsedCommand, PositionalSpec } from './args.js';
import { GLOBAL_OPTIONS } from './args.js';
import type { CliContext } from './context.js';

/** Longest line the generated parts of a help text aim for. */
export const HELP_WIDTH = 116;
/** Widest label column in an option or command list; a longer label puts its text on the next line. */
const MAX_LABEL = 30;
const DEFAULT_SECTION = 'Options';

/** Greedy word wrap; a word longer than the width gets a line of its own. */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

type Row = readonly [label: string, text: string];

/** The text column for rows with these labels: after the longest label that fits, so lists printed together align. */
export function labelColumn(labels: readonly string[]): number {
  const fitting = labels.map((label) => label.length).filter((n) => n <= MAX_LABEL);
  return 2 + Math.max(0, ...fitting) + 3;
}

/** Two-column list: `  LABEL   text`, the text wrapped in its column. */
export function renderRows(rows: readonly Row[], column = labelColumn(rows.map(([label]) => label))): string {
  const textWidth = Math.max(30, HELP_WIDTH - column);
  const out: string[] = [];
  for (const [label, text] of rows) {
    const wrapped = wrapWords(text, textWidth);
    const head = `  ${label}`;
    if (head.length + 1 > column) {
      out.push(head);
      for (const line of wrapped) out.push(`${' '.repeat(column)}${line}`);
      continue;
    }
    const [first = '', ...more] = wrapped;
    out.push(`${head.padEnd(column)}${first}`.trimEnd());
    for (const line of more) out.push(`${' '.repeat(column)}${line}`);
  }
  return out.join('\n');
}

/** `--ttl DURATION`, `-h, --help`. */
export function optionLabel(name: string, option: OptionSpec): string {
  const flag = option.type === 'string' ? `--${name} ${option.placeholder ?? 'VALUE'}` : `--${name}`;
  return option.short === undefined ? flag : `-${option.short}, ${flag}`;
}

/** The description with what the spec says about repetition, default and environment. */
export function optionText(option: OptionSpec): string {
  const extras: string[] = [];
  if (option.multiple === true) extras.push('repeatable');
  if (option.default !== undefined) extras.push(`default: ${option.default}`);
  if (option.env !== undefined) extras.push(`env ${option.env}`);
  return extras.length === 0 ? option.description : `${option.description} (${extras.join('; ')})`;
}

function optionRows(options: Readonly<Record<string, OptionSpec>>): Row[] {
  return Object.entries(options).map(([name, option]) => [optionLabel(name, option), optionText(option)]);
}

/**
 * The option sections of a help text, ending with `Global options:`: options grouped by section in the order the
 * sections first appear, all in one column.
 */
export function optionSections(options: Readonly<Record<string, OptionSpec>>): { sections: string[]; global: string } {
  const column = labelColumn([...optionRows(options), ...optionRows(GLOBAL_OPTIONS)].map(([label]) => label));
  const sections = new Map<string, Row[]>();
  for (const [name, option] of Object.entries(options)) {
    const section = option.section ?? DEFAULT_SECTION;
    sections.set(section, [...(sections.get(section) ?? []), [optionLabel(name, option), optionText(option)]]);
  }
  return {
    sections: [...sections].map(([heading, rows]) => `${heading}:\n${renderRows(rows, column)}`),
    global: `Global options:\n${renderRows(optionRows(GLOBAL_OPTIONS), column)}`,
  };
}

/** The `Global options:` section on its own (the top-level help). */
export function globalOptionsHelp(): string {
  return optionSections({}).global;
}

/** The default usage form: positionals, then the options of the main section. */
function synopsis(definition: CommandDefinition): string {
  const parts = definition.positionals.map((p: PositionalSpec) => (p.required ? p.name : `[${p.name}]`));
  for (const [name, option] of Object.entries(definition.options)) {
    if ((option.section ?? DEFAULT_SECTION) !== DEFAULT_SECTION) continue;
    parts.push(`[${option.type === 'string' ? `--${name} ${option.placeholder ?? 'VALUE'}` : `--${name}`}]${option.multiple === true ? '...' : ''}`);
  }
  return parts.join(' ');
}

/** A usage form cut into the pieces a line may break between: `[…]` groups whole, `--opt VALUE` together. */
function usagePieces(form: string): string[] {
  const raw: string[] = [];
  let depth = 0;
  let piece = '';
  for (const ch of form) {
    if (ch === '[') depth += 1;
    if (ch === ']') depth = Math.max(0, depth - 1);
    if (ch === ' ' && depth === 0) {
      if (piece !== '') raw.push(piece);
      piece = '';
    } else {
      piece += ch;
    }
  }
  if (piece !== '') raw.push(piece);
  const pieces: string[] = [];
  for (const p of raw) {
    const previous = pieces[pieces.length - 1];
    if (previous !== undefined && /^--[^ ]+$/.test(previous) && !p.startsWith('-') && !p.startsWith('[')) pieces[pieces.length - 1] = `${previous} ${p}`;
    else pieces.push(p);
  }
  return pieces;
}

/** `Usage: palyra NAME form…`, further forms aligned under the first, long forms wrapped. */
export function usageHelp(command: string, forms: readonly string[]): string {
  const lines: string[] = [];
  forms.forEach((form, index) => {
    const lead = `${index === 0 ? 'Usage: ' : '       '}palyra ${command}`;
    const indent = ' '.repeat(lead.length + 1);
    let line = lead;
    let fresh = true;
    for (const piece of usagePieces(form)) {
      if (!fresh && line.length + 1 + piece.length > HELP_WIDTH) {
        lines.push(line);
        line = `${indent}${piece}`;
      } else {
        line += ` ${piece}`;
      }
      fresh = false;
    }
    lines.push(line);
  });
  return lines.join('\n');
}

/** The full `--help` text of one command. */
export function commandHelp(definition: CommandDefinition): string {
  const blocks = [usageHelp(definition.name, definition.usage ?? [synopsis(definition)]), definition.description];
  if (definition.positionals.length > 0) {
    blocks.push(`Arguments:\n${renderRows(definition.positionals.map((p) => [p.name, p.required ? p.description : `optional: ${p.description}`]))}`);
  }
  const { sections, global } = optionSections(definition.options);
  blocks.push(...sections, ...(definition.notes ?? []), global);
  return blocks.join('\n\n');
}

/** A command with its generated help. */
export function defineCommand(definition: CommandDefinition): CommandSpec {
  for (const name of Object.keys(definition.options)) {
    if (Object.hasOwn(GLOBAL_OPTIONS, name)) throw new Error(`${definition.name}: --${name} is a global option`);
  }
  if (/\n/.test(definition.summary)) throw new Error(`${definition.name}: the summary must be one line`);
  return { ...definition, help: commandHelp(definition) };
}

export interface Subcommand {
  readonly spec: CommandSpec;
  run(args: ParsedCommand, context: CliContext): Promise<number>;
}

export interface GroupDefinition {
  /** e.g. `pairing` */
  readonly name: string;
  /** What the group is about: the paragraph below its usage line. */
  readonly description: string;
  /** Keyed by the subcommand's name; each spec is named `GROUP NAME`. */
  readonly subcommands: Readonly<Record<string, Subcommand>>;
  /** Options every subcommand takes, listed in the group's help too. */
  readonly options?: Readonly<Record<string, OptionSpec>>;
}

export interface GroupSpec extends GroupDefinition {
  /** The group's `--help` text, listing its subcommands. */
  readonly help: string;
}

/** The `  pairing list   list active codes…` rows of a group's commands (`prefix` = `pairing ` on the top level). */
export function commandRows(group: GroupDefinition, prefix: string): [string, string][] {
  return Object.entries(group.subcommands).map(([name, sub]) => [`${prefix}${name}`, sub.spec.summary]);
}

export function groupHelp(group: GroupDefinition): string {
  const { sections, global } = optionSections(group.options ?? {});
  return [
    usageHelp(group.name, ['<command> [options]']),
    group.description,
    `Commands:\n${renderRows(commandRows(group, ''))}`,
    ...sections,
    `Run 'palyra ${group.name} <command> --help' for a command's options.`,
    global,
  ].join('\n\n');
}

/** A command group with its generated help; its subcommands' names must match their specs. */
export function defineGroup(group: GroupDefinition): GroupSpec {
  for (const [name, sub] of Object.entries(group.subcommands)) {
    if (sub.spec.name !== `${group.name} ${name}`) throw new Error(`group ${group.name}: subcommand ${name} has the spec of '${sub.spec.name}'`);
  }
  return { ...group, help: groupHelp(group) };
}
