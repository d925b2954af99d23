/**
 * Fault injection for the store's crash-safety tests (test/integration/state-faults.test.ts). Every write, fsync,
 * truncate, rename and unlink a mutation makes goes through `ioBoundary` first; with no configuration (every real
 * run) it returns at once.
 *
 * A test child process gets `PALYRA_TEST_IO_FAULT`, JSON:
 * - `{"trace": FILE}` appends one line `<n> <kind> <basename>` per boundary to FILE, so a test learns how many
 *   boundaries a mutation crosses;
 * - `{"at": N, "action": "kill" | "enospc"}` at the N-th boundary (1-based) kills the process with SIGKILL (a crash
 *   at exactly that point) or makes that one operation fail with ENOSPC (a full disk; not an unlink, which cannot),
 *   everything else untouched;
 * - `"compactEvery": K` (with either) compacts the journals every K records, so short runs cross compaction too.
 *
 * The variable only ever makes this process fail or die; it grants nothing.
 */

import { appendFileSync } from 'node:fs';
import path from 'node:path';

export type IoBoundaryKind = 'open' | 'write' | 'sync' | 'truncate' | 'rename' | 'unlink' | 'dirsync';

interface FaultConfig {
  trace?: string;
  at?: number;
  action?: 'kill' | 'enospc';
  compactEvery?: number;
}

function readConfig(): FaultConfig | null {
  const raw = process.env.PALYRA_TEST_IO_FAULT;
  if (raw === undefined || raw === '') return null;
  try {
    const parsed = JSON.parse(raw) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed) : null;
  } catch {
    return null;
  }
}

const config = readConfig();
let crossed = 0;

/** Journal compaction interval forced by the fault configuration, if any. */
export function faultCompactEvery(): number | undefined {
  const k = config?.compactEvery;
  return typeof k === 'number' && Number.isSafeInteger(k) && k > 0 ? k : undefined;
}

/** Called just before an I/O operation on `file`; see the module comment. */
export function ioBoundary(kind: IoBoundaryKind, file: string): void {
  if (config === null) return;
  crossed += 1;
  if (config.trace !== undefined) appendFileSync(config.trace, `${crossed} ${kind} ${path.basename(file)}\n`);
  if (config.at !== crossed) return;
  if (config.action === 'kill') process.kill(process.pid, 'SIGKILL');
  // unlink frees space and never fails with ENOSPC; a crash there is still worth injecting.
  if (config.action === 'enospc' && kind !== 'unlink') {
    const error = new Error(`ENOSPC: no space left on device, ${kind} '${file}' (injected)`) as NodeJS.ErrnoException;
    error.code = 'ENOSPC';
    error.errno = -28;
    error.syscall = kind;
    throw error;
  }
}
