/**
 * The first-run choice, `<userData>/first-run.json`: whether the person chose to join a gateway or to host one here
 * when the app had neither a pairing nor a hosted gateway. Kept apart from settings.json (whose gateway section the
 * hosted gateway rewrites), written atomically; missing = not chosen yet. A file that does not parse counts as not
 * chosen (the question is asked again and the file rewritten): it holds no trust decision.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { PalyraError } from '../core/errors.js';
import { ensurePrivateDir, errnoOf, writeFileAtomic } from '../store/atomic-file.js';

export const FIRST_RUN_FILE = 'first-run.json';
const FIRST_RUN_VERSION = 1;

export type StartChoice = 'join' | 'host';

const documentSchema = z.looseObject({
  version: z.literal(FIRST_RUN_VERSION),
  choice: z.enum(['join', 'host']),
  chosen_at_unix_ms: z.number().int().nonnegative(),
});

export class FirstRunFile {
  readonly file: string;
  readonly #dir: string;

  constructor(userDataDir: string) {
    this.#dir = path.resolve(userDataDir);
    this.file = path.join(this.#dir, FIRST_RUN_FILE);
  }

  /** The choice made, or null (none yet, or an unreadable file). */
  async load(): Promise<StartChoice | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return null;
      throw new PalyraError('store_io_failed', `failed to read ${this.file}`, { cause: error, details: { path: this.file } });
    }
    try {
      const parsed = documentSchema.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data.choice : null;
    } catch {
      return null;
    }
  }

  async save(choice: StartChoice, now: number): Promise<void> {
    await ensurePrivateDir(this.#dir);
    const document = { version: FIRST_RUN_VERSION, choice, chosen_at_unix_ms: now };
    await writeFileAtomic(this.file, new TextEncoder().encode(`${JSON.stringify(document, null, 2)}\n`));
  }
}
