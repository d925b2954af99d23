/**
 * The desktop app's log: one JSON object per line in `<userData>/logs/palyra-desktop.log` (0600 in a 0700 folder),
 * rotated once at start when it has grown past a size. Lines carry event names and error codes; anything that looks
 * like a secret is replaced before it is written, by field name (`pin`, `token`, `ca_pin`, `privateKey`, …) and by
 * shape (6-digit PINs, long random-looking strings, PEM blocks, pairing URIs and their query parameters), so a
 * careless call site cannot leak a pairing code, a PIN or a key into a file the user may attach to a bug report.
 */

import { createWriteStream, mkdirSync, renameSync, statSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import path from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../store/atomic-file.js';

export const LOG_DIR_NAME = 'logs';
export const LOG_FILE_NAME = 'palyra-desktop.log';
/** Rotate to `<file>.1` at start once the log is larger than this. */
export const DEFAULT_MAX_LOG_BYTES = 5 * 1024 * 1024;
export const REDACTED = '[redacted]';

export type LogLevel = 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Flushes and closes the file; later calls are ignored. */
  close(): Promise<void>;
}

// --- redaction -----------------------------------------------------------------------------------------------------

/** Name parts (after splitting snake, kebab and camel case) whose values are never logged. */
const SECRET_NAME_PARTS = new Set([
  'pin', 'pins', 'token', 'tokens', 'secret', 'secrets', 'password', 'passphrase', 'private', 'key', 'keys', 'pem',
  'sas', 'uri', 'url', 'csr', 'cert', 'certificate', 'signature', 'auth', 'authorization', 'cookie', 'mac', 'nonce',
  'seed', 'otp', 'credential', 'credentials',
]);

/** Longest string written (after redaction); the rest is cut. */
const MAX_STRING_LENGTH = 2000;
const MAX_DEPTH = 4;
const MAX_ARRAY_ITEMS = 50;
const EVENT_NAME = /^[a-z][A-Za-z0-9_.-]{0,63}$/;
const RESERVED_KEYS = new Set(['ts', 'level', 'event']);

export function isSecretFieldName(name: string): boolean {
  const parts = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z0-9]+/);
  return parts.some((p) => SECRET_NAME_PARTS.has(p));
}

const PEM_BLOCK = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)/g;
const PAIRING_URI = /palyra:\/\/[^\s"'<>]*/gi;
const SECRET_QUERY_PARAM = /([?&;](?:t|token|pin|key|ca|code|secret)=)[^&;\s#"'<>]*/gi;
/** Six digits on their own (a PIN or a SAS), also written `123 456` or `123-456`. */
const SIX_DIGITS = /(?<![A-Za-z0-9])\d{3}[ -]?\d{3}(?![A-Za-z0-9])/g;
/** Runs of base64/base64url/hex characters long enough to be a token, a key or a fingerprint. */
const LONG_RUN = /[A-Za-z0-9_+=-]{16,}/g;
const CANONICAL_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
/** Snake/kebab/dotted lower-case words (error codes, event names) and camel-case words (identifiers). */
const WORDS = /^(?:[a-z]+(?:[_.-][a-z]+)*|[A-Za-z][a-z]+(?:[A-Z][a-z]+)*)$/;

function redactRun(run: string): string {
  return CANONICAL_ID.test(run) || WORDS.test(run) ? run : REDACTED;
}

/** Replaces everything in a free text that looks like a secret. */
export function redactText(text: string): string {
  const redacted = text
    .replace(PEM_BLOCK, REDACTED)
    .replace(PAIRING_URI, `palyra://${REDACTED}`)
    .replace(SECRET_QUERY_PARAM, `$1${REDACTED}`)
    .replace(LONG_RUN, redactRun)
    .replace(SIX_DIGITS, REDACTED);
  return redacted.length > MAX_STRING_LENGTH ? `${redacted.slice(0, MAX_STRING_LENGTH)}…` : redacted;
}

function redactError(error: Error, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: redactText(error.name), message: redactText(error.message) };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) out.code = redactValue(code, depth + 1);
  if (error.stack !== undefined) out.stack = redactText(error.stack);
  return out;
}

/** A value made safe to log: secret-named fields and secret-looking strings replaced, depth and size bounded. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value === 'string') return redactText(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') return `[${typeof value}]`;
  if (depth >= MAX_DEPTH) return '[…]';
  if (value instanceof Error) return redactError(value, depth);
  if (value instanceof Uint8Array) return REDACTED;
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ARRAY_ITEMS).map((v: unknown) => redactValue(v, depth + 1));
    if (value.length > MAX_ARRAY_ITEMS) items.push(`[${value.length - MAX_ARRAY_ITEMS} more]`);
    return items;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = isSecretFieldName(k) ? REDACTED : redactValue(v, depth + 1);
  return out;
}

/** One log line (with its newline). Pure: the time is passed in. */
export function formatLogLine(level: LogLevel, event: string, fields: LogFields, nowMs: number): string {
  const line: Record<string, unknown> = {
    ts: new Date(nowMs).toISOString(),
    level,
    event: EVENT_NAME.test(event) ? event : 'log.invalid_event_name',
  };
  for (const [k, v] of Object.entries(fields)) {
    const key = RESERVED_KEYS.has(k) ? `field_${k}` : k;
    line[key] = isSecretFieldName(k) ? REDACTED : redactValue(v, 1);
  }
  return `${JSON.stringify(line)}\n`;
}

// --- the file ------------------------------------------------------------------------------------------------------

export interface FileLoggerOptions {
  /** The logs folder, normally `<userData>/logs`. */
  readonly dir: string;
  readonly fileName?: string;
  readonly maxBytes?: number;
  readonly now?: () => number;
  /** Also hands every (redacted) line here, e.g. to stderr in development. */
  readonly mirror?: (line: string) => void;
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Opens (creating, and rotating if too large) the log file. Write failures never throw into the app. */
export function openFileLogger(options: FileLoggerOptions): Logger {
  const file = path.join(options.dir, options.fileName ?? LOG_FILE_NAME);
  const now = options.now ?? Date.now;
  mkdirSync(options.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (sizeOf(file) > (options.maxBytes ?? DEFAULT_MAX_LOG_BYTES)) renameSync(file, `${file}.1`);
  let stream: WriteStream | null = createWriteStream(file, { flags: 'a', mode: PRIVATE_FILE_MODE });
  let closed = false;
  stream.on('error', () => {
    // A full disk or a vanished folder must not take the app down; the log just stops.
    stream = null;
  });

  const write = (level: LogLevel, event: string, fields: LogFields = {}): void => {
    if (closed) return;
    const line = formatLogLine(level, event, fields, now());
    options.mirror?.(line);
    stream?.write(line);
  };

  return {
    info: (event, fields) => {
      write('info', event, fields);
    },
    warn: (event, fields) => {
      write('warn', event, fields);
    },
    error: (event, fields) => {
      write('error', event, fields);
    },
    close: () =>
      new Promise<void>((resolve) => {
        const s = stream;
        stream = null;
        closed = true;
        if (s === null) {
          resolve();
          return;
        }
        s.end(() => {
          resolve();
        });
      }),
  };
}
