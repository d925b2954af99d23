/** Pairing client kinds (REFERENCE.md §1.7): canonical lowercase text used in crypto payloads and on the wire. */

import { PalyraError } from './errors.js';

export const CLIENT_KINDS = ['cli', 'desktop', 'node'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export function isClientKind(value: unknown): value is ClientKind {
  return typeof value === 'string' && (CLIENT_KINDS as readonly string[]).includes(value);
}

/** The reference's RPC parsing: trim, ASCII-lowercase, then one of cli|desktop|node. */
export function parseClientKind(value: string): ClientKind {
  const kind = value.trim().toLowerCase();
  if (!isClientKind(kind)) throw new PalyraError('invalid_argument', 'client_kind must be one of cli|desktop|node');
  return kind;
}

/** The reference's identity-bundle JSON form is the PascalCase variant name (`"Node"`). */
export function clientKindToPascal(kind: ClientKind): 'Cli' | 'Desktop' | 'Node' {
  return kind === 'cli' ? 'Cli' : kind === 'desktop' ? 'Desktop' : 'Node';
}

export function clientKindFromPascal(value: string): ClientKind {
  const kind = value.toLowerCase();
  if (!isClientKind(kind)) throw new PalyraError('invalid_argument', `unknown client kind '${value}'`);
  return kind;
}
