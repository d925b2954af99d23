/**
 * The device's own count of failed PIN confirmations (PIN pairing v2), per gateway CA pin, in
 * `<deviceDir>/pake-failures.json` ({"version":1,"pins":{"<ca_pin>":<count>}}, mode 0600). A gateway counts guesses
 * too, but a man in the middle runs its own "gateway": this stops a device that keeps typing PINs into one, after
 * DEVICE_PAKE_FAILURE_LIMIT failures, with `pake_attempts_exhausted`. A successful confirmation clears the count.
 */

import fs from 'node:fs/promises';
import path from 'node:path';
import { PalyraError } from '../core/errors.js';
import { DEVICE_PAKE_FAILURE_LIMIT } from '../core/pin-pairing-v2.js';

const FILE = 'pake-failures.json';
/** Pins remembered; the least recently failing go first (a bound on the file, not a security limit). */
const MAX_PINS = 256;

/** In insertion order: least recently failing first. */
async function read(deviceDir: string): Promise<Map<string, number>> {
  const pins = new Map<string, number>();
  try {
    const o = JSON.parse(await fs.readFile(path.join(deviceDir, FILE), 'utf8')) as { version?: unknown; pins?: unknown };
    if (o.version !== 1 || typeof o.pins !== 'object' || o.pins === null) return pins;
    for (const [k, v] of Object.entries(o.pins)) if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) pins.set(k, v);
  } catch {
    // Missing or unreadable: no failures recorded.
  }
  return pins;
}

async function write(deviceDir: string, pins: Map<string, number>): Promise<void> {
  const kept = [...pins].slice(-MAX_PINS);
  const target = path.join(deviceDir, FILE);
  const tmp = `${target}.${process.pid}.tmp`;
  // Synced before the rename: a failure counted here must survive a crash or power loss right after.
  const handle = await fs.open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(JSON.stringify({ version: 1, pins: Object.fromEntries(kept) }));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, target);
}

export async function pakeFailures(deviceDir: string, caPin: string): Promise<number> {
  return (await read(deviceDir)).get(caPin) ?? 0;
}

/** Refuses to start another PIN exchange with a gateway that failed too often. */
export async function assertPakeAttemptsLeft(deviceDir: string, caPin: string): Promise<void> {
  const failures = await pakeFailures(deviceDir, caPin);
  if (failures >= DEVICE_PAKE_FAILURE_LIMIT) {
    throw new PalyraError('pake_attempts_exhausted', undefined, { details: { failures, limit: DEVICE_PAKE_FAILURE_LIMIT } });
  }
}

export async function recordPakeFailure(deviceDir: string, caPin: string): Promise<number> {
  const pins = await read(deviceDir);
  const count = (pins.get(caPin) ?? 0) + 1;
  pins.delete(caPin);
  pins.set(caPin, count);
  await write(deviceDir, pins);
  return count;
}

export async function clearPakeFailures(deviceDir: string, caPin: string): Promise<void> {
  const pins = await read(deviceDir);
  if (!pins.delete(caPin)) return;
  await write(deviceDir, pins);
}
