import { describe, expect, it } from 'vitest';
import type { CommandSpec } from '../../../main/cli/args.js';
import { parseCommand, splitLeadingGlobals, wantsHelp, wantsJson, withGlobals } from '../../../main/cli/args.js';
import { PalyraError } from '../../../main/core/errors.js';

const SPEC: CommandSpec = {
  name: 'pairing approve',
  options: { reason: { type: 'string' }, gateway: { type: 'string', multiple: true } },
  positionals: [{ name: 'REQUEST_ID', required: true }],
  help: 'help text',
};

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PalyraError);
    expect((error as PalyraError).code).toBe('usage');
    return (error as PalyraError).message;
  }
  throw new Error('expected a usage error');
}

describe('parseCommand', () => {
  it('reads options, repeated options, positionals and the global options', () => {
    const parsed = parseCommand(SPEC, ['01ARZ3NDEKTSV4RRFFQ69G5FAV', '--reason', 'ok', '--gateway', 'a:1', '--gateway=b:2', '--json', '--state-dir', '/s']);
    expect(parsed.requiredPositional('REQUEST_ID')).toBe('01ARZ3NDEKTSV4RRFFQ69G5FAV');
    expect(parsed.string('reason')).toBe('ok');
    expect(parsed.strings('gateway')).toEqual(['a:1', 'b:2']);
    expect(parsed.json).toBe(true);
    expect(parsed.stateDir).toBe('/s');
    expect(parsed.flag('help')).toBe(false);
  });

  it('turns every parse failure into a usage error that points at --help', () => {
    const cases: [string[], RegExp][] = [
      [['X', '--bogus'], /^unknown option '--bogus' for 'palyra pairing approve'/],
      [[], /^missing REQUEST_ID/],
      [['X', 'Y'], /^unexpected argument 'Y'/],
      [['X', '--reason'], /--reason/],
      [['X', '--json=yes'], /--json/],
      [['X', '--state-dir='], /--state-dir must not be empty/],
    ];
    for (const [argv, pattern] of cases) {
      const message = usageMessage(() => parseCommand(SPEC, argv));
      expect(message).toMatch(pattern);
      expect(message).toMatch(/run 'palyra pairing approve --help' for usage$/);
    }
  });

  it('takes values after -- as positionals', () => {
    expect(parseCommand(SPEC, ['--', '--odd']).positional('REQUEST_ID')).toBe('--odd');
  });
});

describe('global options around command names', () => {
  it('lifts global options in front of a name and puts them back before a -- terminator', () => {
    expect(splitLeadingGlobals(['--json', '--state-dir', '/s', 'list', '--state', 'expired'], 'pairing')).toEqual({
      globals: ['--json', '--state-dir', '/s'],
      name: 'list',
      rest: ['--state', 'expired'],
    });
    expect(splitLeadingGlobals(['--help'], 'pairing')).toEqual({ globals: ['--help'], name: undefined, rest: [] });
    expect(withGlobals(['A', '--', 'B'], ['--json'])).toEqual(['A', '--json', '--', 'B']);
    expect(withGlobals(['A'], ['--state-dir=/s'])).toEqual(['A', '--state-dir=/s']);
  });

  it('refuses other options in front of a name', () => {
    expect(usageMessage(() => splitLeadingGlobals(['--verbose', 'list'], 'pairing'))).toMatch(/^unknown option '--verbose' before the 'pairing' subcommand/);
    expect(usageMessage(() => splitLeadingGlobals(['--state-dir'], undefined))).toMatch(/needs a value/);
  });

  it('sees --help and --json only before a -- terminator', () => {
    expect(wantsHelp(['x', '-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
    expect(wantsJson(['list', '--json'])).toBe(true);
    expect(wantsJson(['--', '--json'])).toBe(false);
  });
});
