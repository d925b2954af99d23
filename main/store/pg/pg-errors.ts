/**
 * PostgreSQL failures as PalyraErrors. A server that cannot be reached, refuses the login, lacks the database or
 * goes away mid-query is `state_unavailable` (the operation did not happen; try again when the database is back);
 * a malformed URL is `invalid_argument`. Messages name host, port and database, never the password.
 */

import { PalyraError } from '../../core/errors.js';

/** SQLSTATE classes and codes that mean "the database is not there for us right now". */
const UNAVAILABLE_SQLSTATES: Record<string, string> = {
  '28P01': 'password authentication failed',
  '28000': 'the login was refused',
  '3D000': 'the database does not exist',
  '57P01': 'the server is shutting down',
  '57P02': 'the server is shutting down',
  '57P03': 'the server is starting up or not accepting connections',
  '53300': 'the server has too many connections',
  '08000': 'connection failure',
  '08003': 'connection does not exist',
  '08006': 'connection failure',
  '08001': 'could not connect',
  '08004': 'the server rejected the connection',
  '40001': 'the transaction could not be serialized',
  '40P01': 'a deadlock was detected',
};

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** The URL as it may appear in messages and logs: no password, no query. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username === '' ? '' : `${decodeURIComponent(u.username)}@`}${u.host}${u.pathname}`;
  } catch {
    return '(malformed database URL)';
  }
}

/** Checks that `url` is a postgres:// or postgresql:// URL with a host and a database name; `invalid_argument` otherwise. */
export function validateDatabaseUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PalyraError('invalid_argument', 'the database URL is malformed: expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new PalyraError('invalid_argument', `the database URL must start with postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  if (parsed.hostname === '' && !parsed.searchParams.has('host')) throw new PalyraError('invalid_argument', 'the database URL names no host');
  if (parsed.pathname.length <= 1) throw new PalyraError('invalid_argument', 'the database URL names no database (postgres://HOST/DATABASE)');
}

function isUnavailable(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const e = error as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string') {
    const why = UNAVAILABLE_SQLSTATES[e.code];
    if (why !== undefined) return why;
    if (NETWORK_CODES.has(e.code)) return `cannot reach the server (${e.code})`;
  }
  const message = typeof e.message === 'string' ? e.message : '';
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout|not queryable/i.test(message)) {
    return 'the connection to the server was lost or timed out';
  }
  return null;
}

/** `error` as a PalyraError: PalyraErrors pass through; database unavailability becomes `state_unavailable`. */
export function pgError(error: unknown, url: string): PalyraError {
  if (error instanceof PalyraError) return error;
  const why = isUnavailable(error);
  const where = redactDatabaseUrl(url);
  if (why !== null) {
    return new PalyraError('state_unavailable', `the state database ${where} is unavailable: ${why}; nothing was changed, try again when it is back`, {
      cause: error,
      details: { database: where },
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new PalyraError('state_unavailable', `the state database ${where} failed: ${message}`, { cause: error, details: { database: where } });
}
