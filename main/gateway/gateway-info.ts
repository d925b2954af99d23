/**
 * `gateway.v1.json` in the state directory: what a running gateway tells other processes on the same state
 * (its listen address for pairing URIs, its name, its pid). Not secret; written atomically at start, removed at
 * stop. A file left by a killed gateway is recognised by its dead pid.
 */

import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../store/atomic-file.js';

export const GATEWAY_INFO_FILE = 'gateway.v1.json';

export interface GatewayInfo {
  listen: string;
  name: string | null;
  pid: number;
  started_at_unix_ms: number;
  ca_pin: string;
  ca_fingerprint: string;
  mtls_required: boolean;
}

export async function writeGatewayInfo(stateDir: string, info: GatewayInfo): Promise<void> {
  await writeFileAtomic(path.join(stateDir, GATEWAY_INFO_FILE), new TextEncoder().encode(`${JSON.stringify(info)}\n`));
}

export async function removeGatewayInfo(stateDir: string, pid = process.pid): Promise<void> {
  const current = await readGatewayInfoFile(stateDir);
  if (current?.pid === pid) await rm(path.join(stateDir, GATEWAY_INFO_FILE), { force: true });
}

async function readGatewayInfoFile(stateDir: string): Promise<GatewayInfo | null> {
  try {
    return JSON.parse(await readFile(path.join(stateDir, GATEWAY_INFO_FILE), 'utf8')) as GatewayInfo;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running gateway on this state directory, or null when none runs (no file, or its process is gone). */
export async function readRunningGateway(stateDir: string): Promise<GatewayInfo | null> {
  const info = await readGatewayInfoFile(stateDir);
  return info !== null && Number.isInteger(info.pid) && isAlive(info.pid) ? info : null;
}
