/**
 * SecretStore over the palyra_secrets table. Values are sealed exactly as FilesystemSecretStore seals its files
 * (AES-256-GCM with the store key, AAD = the logical key), so the database holds no plaintext: the CA private key
 * and the state documents are readable only with the store key, which comes from the keychain or a key file and
 * is never written to the database. Each write bumps the row's `version` (change detection across replicas).
 */

import { PalyraError } from '../../core/errors.js';
import { openStoreRecord, sealStoreRecord } from '../fs-secret-store.js';
import type { SecretStore } from '../secret-store.js';
import { validateSecretStoreKey } from '../secret-store.js';
import type { PgContext } from './pg-context.js';

export class PgSecretStore implements SecretStore {
  readonly #db: PgContext;
  readonly #key: Uint8Array;

  constructor(db: PgContext, storeKey: Uint8Array) {
    this.#db = db;
    this.#key = storeKey;
  }

  async writeSecret(key: string, value: Uint8Array): Promise<void> {
    validateSecretStoreKey(key);
    const sealed = Buffer.from(sealStoreRecord(this.#key, key, value));
    await this.#db.query(
      'INSERT INTO palyra_secrets (key, version, sealed) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET version = palyra_secrets.version + 1, sealed = EXCLUDED.sealed',
      [key, sealed],
    );
  }

  async readSecret(key: string): Promise<Uint8Array> {
    return (await this.readVersioned(key)).value;
  }

  /** The value and its write counter; `secret_not_found` when absent. */
  async readVersioned(key: string): Promise<{ value: Uint8Array; version: number }> {
    validateSecretStoreKey(key);
    const rows = await this.#db.query<{ sealed: Buffer; version: string }>('SELECT sealed, version FROM palyra_secrets WHERE key = $1', [key]);
    const row = rows[0];
    if (row === undefined) throw new PalyraError('secret_not_found', `secret not found: ${key}`);
    return { value: openStoreRecord(this.#key, key, new Uint8Array(row.sealed), `${this.#db.where}#${key}`), version: Number(row.version) };
  }

  /** Write counters of `keys` (absent keys: 0), in one query. */
  async versions(keys: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.#db.query<{ key: string; version: string }>('SELECT key, version FROM palyra_secrets WHERE key = ANY($1::text[])', [keys]);
    const out = new Map<string, number>(keys.map((k) => [k, 0]));
    for (const r of rows) out.set(r.key, Number(r.version));
    return out;
  }

  async deleteSecret(key: string): Promise<void> {
    validateSecretStoreKey(key);
    await this.#db.query('DELETE FROM palyra_secrets WHERE key = $1', [key]);
  }
}
