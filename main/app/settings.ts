/**
 * The desktop app's own settings, `<userData>/settings.json`: whether the app hosts a gateway, where it listens and
 * the name it shows to devices. Not secret, but written like the stores write (0600 temp file, fsync, rename) so a
 * crash never leaves half a file. A missing file means the defaults; a file that does not parse is reported, never
 * silently replaced (the user may have edited it).
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { PalyraError } from '../core/errors.js';
import { parseHostPort, formatHostPort, isLoopbackHost } from '../core/net-address.js';
import { ensurePrivateDir, errnoOf, writeFileAtomic } from '../store/atomic-file.js';
import { redactDatabaseUrl } from '../store/pg/pg-errors.js';
import { parseStateDocument } from '../store/state-schema.js';

export const SETTINGS_FILE = 'settings.json';
const SETTINGS_VERSION = 1;
/** The listen address of a hosted gateway until the user picks one: the CLI's default, loopback only. */
export const DEFAULT_GATEWAY_LISTEN = '127.0.0.1:7444';
/** Longest gateway name (the contract's limit, and the pairing URI's `n` limit). */
const MAX_NAME_LENGTH = 64;

export interface GatewaySettings {
  enabled: boolean;
  /** `host:port`; port 0 = any free port. */
  listen: string;
  name: string | null;
  /** Announce over DNS-SD while listening beyond loopback (absent = yes). */
  announce?: boolean;
  /**
   * The PostgreSQL state, by its redacted URL (no password, no query: the URL itself is in the keychain or the app's
   * secret store); absent/null = the embedded file backend in the state directory.
   */
  database?: string | null;
}

/** Who can reach the hosted gateway: `local` = this computer only (loopback), `lan` = devices on this network. */
export type GatewayNetwork = 'local' | 'lan';

/** The network a listen address serves; the listen address decides, `network` in settings.json mirrors it. */
export function networkOf(listen: string): GatewayNetwork {
  return isLoopbackHost(parseHostPort(listen, { allowPortZero: true }).host) ? 'local' : 'lan';
}

/** `listen` moved to `network`, keeping its port: loopback → 127.0.0.1, beyond → every interface (0.0.0.0). */
export function listenFor(listen: string, network: GatewayNetwork): string {
  if (networkOf(listen) === network) return listen;
  const { port } = parseHostPort(listen, { allowPortZero: true });
  return formatHostPort({ host: network === 'local' ? '127.0.0.1' : '0.0.0.0', port });
}

export interface AppSettings {
  gateway: GatewaySettings;
}

export function defaultSettings(): AppSettings {
  return { gateway: { enabled: false, listen: DEFAULT_GATEWAY_LISTEN, name: null } };
}

/** Normalises a listen address (`[::1]:0`, `127.0.0.1:7444`); throws `invalid_argument` for anything else. */
export function normalizeListen(text: string): string {
  return formatHostPort(parseHostPort(text, { allowPortZero: true }));
}

/** A gateway name as stored: trimmed, null when empty. */
export function normalizeName(name: string | null): string | null {
  if (name === null) return null;
  const trimmed = name.trim();
  if (trimmed.length > MAX_NAME_LENGTH) throw new PalyraError('invalid_argument', `the gateway name is longer than ${MAX_NAME_LENGTH} characters`);
  return trimmed === '' ? null : trimmed;
}

/** A listen address that normalizes, with the parser's reason as the issue otherwise. */
const listenSchema = z.string().transform((text, ctx) => {
  try {
    return normalizeListen(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : 'not HOST:PORT' });
    return z.NEVER;
  }
});

const nameSchema = z
  .string()
  .nullable()
  .refine((name) => name === null || name.trim().length <= MAX_NAME_LENGTH, `longer than ${MAX_NAME_LENGTH} characters`)
  .transform((name) => normalizeName(name));

const settingsSchema = z.looseObject({
  version: z.literal(SETTINGS_VERSION),
  gateway: z
    .looseObject({ enabled: z.boolean(), listen: listenSchema, name: nameSchema, announce: z.boolean().optional(), database: z.string().min(1).max(2048).nullable().optional() })
    .optional(),
});

function parseSettings(text: string, file: string): AppSettings {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PalyraError('state_corrupt', `${file} is invalid: not JSON; fix or delete it`, { details: { path: file }, cause: error });
  }
  const parsed = parseStateDocument(settingsSchema, value, file);
  const settings = defaultSettings();
  if (parsed.gateway !== undefined) {
    settings.gateway = { enabled: parsed.gateway.enabled, listen: parsed.gateway.listen, name: parsed.gateway.name };
    if (parsed.gateway.announce !== undefined) settings.gateway.announce = parsed.gateway.announce;
    // Only ever the redacted form: a URL with a password typed into the file by hand is not carried further.
    if (parsed.gateway.database !== undefined && parsed.gateway.database !== null) settings.gateway.database = redactDatabaseUrl(parsed.gateway.database);
  }
  return settings;
}

/** Loads and saves the settings of one user-data directory. */
export class SettingsFile {
  readonly file: string;
  readonly #dir: string;

  constructor(userDataDir: string) {
    this.#dir = path.resolve(userDataDir);
    this.file = path.join(this.#dir, SETTINGS_FILE);
  }

  async load(): Promise<AppSettings> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return defaultSettings();
      throw new PalyraError('store_io_failed', `failed to read ${this.file}`, { cause: error, details: { path: this.file } });
    }
    return parseSettings(text, this.file);
  }

  async save(settings: AppSettings): Promise<void> {
    await ensurePrivateDir(this.#dir);
    // `network` is written for people reading the file; loading goes by `listen`.
    const document = { version: SETTINGS_VERSION, gateway: { ...settings.gateway, network: networkOf(settings.gateway.listen) } };
    await writeFileAtomic(this.file, new TextEncoder().encode(`${JSON.stringify(document, null, 2)}\n`));
  }
}
