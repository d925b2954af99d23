/**
 * Where the desktop app keeps the PostgreSQL URL of its hosted gateway: the URL may hold a password, so it never goes
 * into settings.json (which keeps only the redacted form). With an OS keychain (the one the hosted gateway's store
 * key uses) it is a keychain entry; in key-file mode it is a sealed record in an encrypted secret store of its own
 * (`<userData>/gateway-database`, key file beside it), which also holds the database's store key file
 * (`pg-store-key.v1`: the CLI reaches the same state with `--store-key-file` naming it).
 */

import path from 'node:path';
import { fromUtf8, utf8 } from '../core/bytes.js';
import { PalyraError } from '../core/errors.js';
import { ensurePrivateDir } from '../store/atomic-file.js';
import { FilesystemSecretStore } from '../store/fs-secret-store.js';
import type { Keychain } from '../store/keychain.js';
import { KEYCHAIN_SERVICE } from '../store/keychain.js';
import { redactDatabaseUrl, validateDatabaseUrl } from '../store/pg/pg-errors.js';
import type { PgStateLocation } from '../store/pg/pg-open.js';

/** The directory name under userData. */
export const DATABASE_SECRETS_DIR = 'gateway-database';
/** The store key file of the database in key-file mode (32 raw bytes, 0600). */
export const DATABASE_STORE_KEY_FILE = 'pg-store-key.v1';
const SECRET_KEY = 'hosted-gateway/database-url';

export class HostedDatabaseSecret {
  readonly dir: string;
  readonly #stateDir: string;
  readonly #keychain: Keychain | null;

  constructor(o: { dir: string; stateDir: string; keychain: Keychain | null }) {
    this.dir = path.resolve(o.dir);
    this.#stateDir = path.resolve(o.stateDir);
    this.#keychain = o.keychain;
  }

  /** The keychain account: one per state directory (the app's gateway). */
  get #account(): string {
    return `hosted-gateway-database-url:${this.#stateDir}`;
  }

  /**
   * Where the state is and where its store key comes from: the keychain (the CLI's account for the URL) or the one key
   * file here (created on first use; to join an existing cluster in key-file mode, put the cluster's key file there).
   */
  async location(databaseUrl: string): Promise<PgStateLocation> {
    if (this.#keychain !== null) return { databaseUrl, storeKeyFile: null };
    await ensurePrivateDir(this.dir);
    return { databaseUrl, storeKeyFile: path.join(this.dir, DATABASE_STORE_KEY_FILE) };
  }

  async #store(): Promise<FilesystemSecretStore> {
    return FilesystemSecretStore.open(this.dir, { keychain: null });
  }

  /** The stored URL, or null when none is stored. */
  async read(): Promise<string | null> {
    if (this.#keychain !== null) return this.#keychain.get(KEYCHAIN_SERVICE, this.#account);
    try {
      return fromUtf8(await (await this.#store()).readSecret(SECRET_KEY));
    } catch (error) {
      if (error instanceof PalyraError && error.code === 'secret_not_found') return null;
      throw error;
    }
  }

  async write(databaseUrl: string): Promise<void> {
    validateDatabaseUrl(databaseUrl);
    if (this.#keychain !== null) {
      await this.#keychain.set(KEYCHAIN_SERVICE, this.#account, databaseUrl);
      return;
    }
    await (await this.#store()).writeSecret(SECRET_KEY, utf8(databaseUrl));
  }

  async clear(): Promise<void> {
    if (this.#keychain !== null) {
      await this.#keychain.delete(KEYCHAIN_SERVICE, this.#account);
      return;
    }
    await (await this.#store()).deleteSecret(SECRET_KEY);
  }

  /**
   * The URL settings.json names by its redacted form: `not_found` when the secret is gone, `state_corrupt` when it is
   * another database's (settings.json edited, or a crash between the two writes).
   */
  async expect(redacted: string): Promise<string> {
    const url = await this.read();
    if (url === null) {
      throw new PalyraError('not_found', `the database URL for ${redacted} is not in the ${this.#keychain === null ? 'app secret store' : 'OS keychain'}; set it again in the Gateway view`);
    }
    if (redactDatabaseUrl(url) !== redacted) {
      throw new PalyraError('state_corrupt', `the stored database URL is not the one settings.json names (${redacted}); set it again in the Gateway view`);
    }
    return url;
  }
}
