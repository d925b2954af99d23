import { describe, expect, it } from 'vitest';
import { parseCommand, splitLeadingGlobals, wantsHelp, wantsJson, withGlobals } from '../../../main/cli/args.js';
import { defineCommand } from '../../../main/cli/help.js';
import { PalyraError } from '../../../main/core/errors.js';

const SPEC = defineCommand({
  name: 'pairing approve',
  summary: 'approve a request',
  description: 'Approves a request.',
  options: {
    reason: { type: 'string', placeholder: 'TEXT', description: 'why' },
    gateway: { type: 'string', multiple: true, placeholder: 'HOST:PORT', description: 'where' },
    force: { type: 'boolean', description: 'no questions' },
  },
  positionals: [{ name: 'REQUEST_ID', required: true, description: 'the request' }],
});

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

  it('refuses a single-value option given twice, naming it, but keeps repeatable options and repeated flags', () => {
    const cases: string[][] = [
      ['X', '--reason', 'a', '--reason', 'b'],
      ['X', '--reason=a', '--reason=a'],
      ['X', '--state-dir', '/a', '--state-dir=/b'],
      // What a group hands on for `palyra --state-dir /a pairing approve X --state-dir /b`.
      withGlobals(['X', '--state-dir', '/b'], ['--state-dir', '/a']),
    ];
    for (const argv of cases) {
      const option = argv.some((a) => a.startsWith('--reason')) ? '--reason' : '--state-dir';
      const message = usageMessage(() => parseCommand(SPEC, argv));
      expect(message).toMatch(new RegExp(`^option '${option}' is given more than once`));
      expect(message).toMatch(/run 'palyra pairing approve --help' for usage$/);
    }
    const parsed = parseCommand(SPEC, ['X', '--json', '--json', '--force', '--force', '-h', '--help', '--gateway', 'a:1', '--gateway', 'a:1']);
    expect(parsed.json).toBe(true);
    expect(parsed.flag('force')).toBe(true);
    expect(parsed.strings('gateway')).toEqual(['a:1', 'a:1']);
    // After a -- terminator nothing is an option, so nothing repeats.
    expect(parseCommand(SPEC, ['--reason', 'a', '--', '--reason']).positional('REQUEST_ID')).toBe('--reason');
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
