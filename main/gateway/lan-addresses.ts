/**
 * Which addresses other machines can use to reach a gateway listening on a given address: the ones written into QR
 * codes, printed in the `gateway.ready` line, shown in the Gateway view and announced over DNS-SD. A wildcard listener
 * is reachable on every non-internal address of this machine; a loopback one only from this computer.
 */

import os from 'node:os';
import { MAX_PAIRING_URI_GATEWAYS } from '../core/pairing-uri.js';
import { formatHostPort, isHostname, isIpv4Literal, isIpv6Literal, isLoopbackHost, normalizeIpAddress, parseHostPort } from '../core/net-address.js';

/** `this_computer`: only loopback clients can connect; `network`: other machines can (if no firewall is in the way). */
export type Reachability = 'this_computer' | 'network';

export interface ReachableAddresses {
  /** `host:port` values, best first, at most MAX_PAIRING_URI_GATEWAYS (the QR code's limit). */
  readonly addresses: string[];
  readonly reachable: Reachability;
}

export type InterfaceTable = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

const IPV4_ANY = '0.0.0.0';
const IPV6_ANY = '::';

/** fe80::/10 needs a zone id (`%eth0`) to be dialled, which no address grammar of ours carries. */
function isIpv6LinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/**
 * This machine's non-internal addresses, IPv4 first, in interface order, without duplicates. IPv6 link-local ones are
 * left out (they need a zone id), and so is anything the address grammar refuses.
 */
export function lanAddresses(interfaces: InterfaceTable = os.networkInterfaces()): { ipv4: string[]; ipv6: string[] } {
  const ipv4: string[] = [];
  const ipv6: string[] = [];
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) {
      if (entry.internal || isLoopbackHost(entry.address)) continue;
      if (entry.family === 'IPv4' && isIpv4Literal(entry.address)) {
        if (!ipv4.includes(entry.address)) ipv4.push(entry.address);
      } else if (entry.family === 'IPv6' && isIpv6Literal(entry.address) && !isIpv6LinkLocal(entry.address)) {
        const normal = normalizeIpAddress(entry.address);
        if (!ipv6.includes(normal)) ipv6.push(normal);
      }
    }
  }
  return { ipv4, ipv6 };
}

export interface ReachableOptions {
  readonly interfaces?: InterfaceTable;
  readonly hostname?: () => string;
}

/**
 * The addresses that reach a listener on `listen` (`HOST:PORT`, port already bound). A concrete host is its own
 * only address. `0.0.0.0` lists this machine's IPv4 addresses, `::` (dual stack) its IPv4 and IPv6 ones, then this
 * machine's name when it is a usable host name; with no network interface up that leaves the name alone, or
 * loopback when the name is unusable too.
 */
export function reachableAddresses(listen: string, options: ReachableOptions = {}): ReachableAddresses {
  const { host, port } = parseHostPort(listen, { allowPortZero: true });
  if (host !== IPV4_ANY && host !== IPV6_ANY) {
    return { addresses: [formatHostPort({ host, port })], reachable: isLoopbackHost(host) ? 'this_computer' : 'network' };
  }
  const lan = lanAddresses(options.interfaces);
  const ips = host === IPV6_ANY ? [...lan.ipv4, ...lan.ipv6] : lan.ipv4;
  const name = (options.hostname ?? os.hostname)();
  const named = isHostname(name) && !isLoopbackHost(name) ? [name] : [];
  const hosts = [...ips, ...named].slice(0, MAX_PAIRING_URI_GATEWAYS);
  if (hosts.length === 0) return { addresses: [formatHostPort({ host: '127.0.0.1', port })], reachable: 'this_computer' };
  return { addresses: hosts.map((h) => formatHostPort({ host: h, port })), reachable: 'network' };
}

/** The stderr warning of `gateway run` on a loopback-only listener; null when other machines can connect. */
export function loopbackWarning(listen: string): string | null {
  const { host, port } = parseHostPort(listen, { allowPortZero: true });
  if (!isLoopbackHost(host)) return null;
  return (
    `warning: listening on loopback only (${listen}): devices on other machines cannot reach this gateway; ` +
    `use --listen 0.0.0.0:${port} to accept them`
  );
}
