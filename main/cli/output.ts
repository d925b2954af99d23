/**
 * What the `palyra` command writes (CLI.md): text for people, or with `--json` one JSON document on stdout (JSON
 * lines for `gateway run`). Errors: `error[CODE]: message` on stderr, or `{"error":{"code","message"}}` on stdout
 * with `--json`. Exit codes: 0 success, 1 operational error, 2 usage error.
 */

import { PalyraError } from '../core/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface OutputStreams {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Whether stdout is an interactive terminal (QR rendering picks colours for it). */
  readonly stdoutIsTty: boolean;
  /** Raw bytes on stdout (`ca export --der`); absent where only text can be captured. */
  readonly stdoutBytes?: (bytes: Uint8Array) => void;
}

export function processStreams(): OutputStreams {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    stdoutIsTty: process.stdout.isTTY,
    stdoutBytes: (bytes) => process.stdout.write(bytes),
  };
}

export function exitCodeFor(error: PalyraError): number {
  return error.code === 'usage' ? EXIT_USAGE : EXIT_FAILURE;
}

/** One line of error text: no newlines, so `error[CODE]: …` stays greppable. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

export class Output {
  readonly json: boolean;
  readonly streams: OutputStreams;

  constructor(options: { json: boolean; streams?: OutputStreams }) {
    this.json = options.json;
    this.streams = options.streams ?? processStreams();
  }

  /** A line of text on stdout. */
  line(text = ''): void {
    this.streams.stdout(`${text}\n`);
  }

  /** One compact JSON document (or JSON line) on stdout. */
  document(value: unknown): void {
    this.streams.stdout(`${JSON.stringify(value)}\n`);
  }

  /** Binary data on stdout, as it is (DER). */
  bytes(data: Uint8Array): void {
    if (this.streams.stdoutBytes === undefined) throw new PalyraError('internal', 'this output takes text only; write binary data with --out FILE');
    this.streams.stdoutBytes(data);
  }

  /** A note for people on stderr; never part of the machine-readable output. */
  note(text: string): void {
    this.streams.stderr(`${text}\n`);
  }

  /** Prints an error in the contract's shape and returns its exit code. */
  error(error: PalyraError): number {
    const message = oneLine(error.message);
    if (this.json) this.document({ error: { code: error.code, message } });
    else this.streams.stderr(`error[${error.code}]: ${message}\n`);
    return exitCodeFor(error);
  }
}

/** A plain text table: left-aligned columns separated by two spaces, no trailing spaces. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [render(headers), ...rows.map(render)].join('\n');
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** Local wall-clock time `HH:MM`. */
export function formatClock(unixMs: number): string {
  const d = new Date(unixMs);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** Local date and time `YYYY-MM-DD HH:MM:SS`, or `-` for none. */
export function formatTimestamp(unixMs: number | null): string {
  if (unixMs === null) return '-';
  const d = new Date(unixMs);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** A remaining time for people: `45 s`, `10 min`, `2 h 30 min`. Rounded to the nearest unit shown. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} h` : `${hours} h ${rest} min`;
}

/** "expires in 10 min (14:05)"; the date is added when the expiry is not today. */
export function formatExpiry(expiresAtUnixMs: number, now: number): string {
  const sameDay = new Date(expiresAtUnixMs).toDateString() === new Date(now).toDateString();
  const when = sameDay ? formatClock(expiresAtUnixMs) : formatTimestamp(expiresAtUnixMs).slice(0, 16);
  return `expires in ${formatDuration(expiresAtUnixMs - now)} (${when})`;
}
