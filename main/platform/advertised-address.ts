/** The address devices should dial for a gateway listening on a given address (CLI and desktop app alike). */

import os from 'node:os';
import { PalyraError } from '../core/errors.js';
import { formatHostPort, isLoopbackHost, parseHostPort } from '../core/net-address.js';

const ANY_INTERFACE_HOSTS = new Set(['0.0.0.0', '::']);

/**
 * A concrete listen host is advertised as it is; a wildcard host (`0.0.0.0`, `::`) becomes this machine's name.
 * `loopback` says that only this machine can reach the address.
 */
export function advertisedAddress(listen: string, hostname: () => string = os.hostname): { address: string; loopback: boolean } {
  const parsed = parseHostPort(listen, { allowPortZero: true });
  if (!ANY_INTERFACE_HOSTS.has(parsed.host)) {
    return { address: formatHostPort(parsed), loopback: isLoopbackHost(parsed.host) };
  }
  const host = hostname();
  try {
    return { address: formatHostPort(parseHostPort(formatHostPort({ host, port: parsed.port }))), loopback: false };
  } catch {
    throw new PalyraError(
      'invalid_argument',
      `the gateway listens on all interfaces and this machine's name '${host.slice(0, 64)}' is not a usable host name; pass --gateway HOST:PORT`,
    );
  }
}
