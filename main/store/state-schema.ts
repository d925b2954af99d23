/**
 * Schema checks for the JSON documents kept at rest (identity state, pairing runtime, device state, app settings).
 * A document that does not match is `state_corrupt`, and the message names the document and the first field that
 * is wrong, e.g. `identity/state.v1.json: paired_devices.01J….client_kind: expected one of "cli" | "desktop" | "node"`.
 * Unknown fields are kept (a newer version may have written them).
 */

import type { z } from 'zod';
import { PalyraError } from '../core/errors.js';

/** `a.b[3].c` from a zod issue path. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(the document)' : out;
}

/** Parses `json` with `schema`, or throws `state_corrupt` naming `document` and the field. */
export function parseStateDocument<T>(schema: z.ZodType<T>, json: unknown, document: string): T {
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue === undefined ? '(the document)' : fieldPath(issue.path);
  const why = issue?.message ?? 'does not match its schema';
  throw new PalyraError('state_corrupt', `${document}: ${field}: ${why}`, { details: { document, field } });
}
