// The CLI's store key with a real Secret Service (gnome-keyring in a private D-Bus session): the OS keychain is used
// when there is one, and a locked keychain is the error keychain_locked (exit 1), never a fallback to a key file.
// Runs under `npm test` (scripts/with-secret-service.mjs sets PALYRA_TEST_SECRET_SERVICE=1).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { STORE_KEY_FILE, STORE_KEY_KEYCHAIN_MARKER } from '../../main/store/store-key.js';
import { ensureBuilt } from '../helpers/build.js';
import { cliEnv, inPrivateKeyringSession } from '../helpers/cli.js';

const enabled = process.env.PALYRA_TEST_SECRET_SERVICE === '1';
if (!enabled) console.warn('CLI keychain tests skipped: PALYRA_TEST_SECRET_SERVICE is not 1 (run them under scripts/with-secret-service.mjs)');

describe.skipIf(!enabled)('palyra with the OS keychain', () => {
  beforeAll(async () => {
    await ensureBuilt();
  }, 180_000);

  it('keeps the store key in the keychain, and reports a locked keychain as keychain_locked (exit 1)', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'palyra-cli-keyring-'));
    try {
      const root = path.join(home, 'state');
      await mkdir(path.join(home, 'run'), { recursive: true, mode: 0o700 });
      const env = cliEnv({ ROOT: root });
      delete env.PALYRA_KEYCHAIN;
      const script = [
        'echo -n palyra-cli-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1',
        // A write creates the state (reads create nothing), so its store key goes to the keychain.
        'node "$PALYRA_BIN" pairing code --method pin --json --state-dir "$ROOT"; echo "rc=$?"',
        'dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets ' +
          'org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null',
        'node "$PALYRA_BIN" pairing list --state-dir "$ROOT" 2>&1; echo "rc=$?"',
        'node "$PALYRA_BIN" gateway run --listen 127.0.0.1:0 --state-dir "$ROOT" 2>&1; echo "rc=$?"',
        'PALYRA_KEYCHAIN=file node "$PALYRA_BIN" pairing list --state-dir "$ROOT" 2>&1; echo "rc=$?"',
      ].join('\n');
      const lines = (await inPrivateKeyringSession(home, script, env)).trim().split('\n');
      expect(lines).toEqual([
        expect.stringMatching(/^\{"method":"pin","code":"\d{6}"/),
        'rc=0',
        expect.stringMatching(/^error\[keychain_locked\]: /),
        'rc=1',
        expect.stringMatching(/^error\[keychain_locked\]: /),
        'rc=1',
        // A directory whose key is in a keychain never gets a second key from a key file.
        expect.stringMatching(/^error\[keychain_unavailable\]: /),
        'rc=1',
      ]);
      expect(existsSync(path.join(root, STORE_KEY_KEYCHAIN_MARKER))).toBe(true);
      expect(existsSync(path.join(root, STORE_KEY_FILE))).toBe(false);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);
});
