import type os from 'node:os';
import { describe, expect, it } from 'vitest';
import { lanAddresses, loopbackWarning, reachableAddresses } from '../../../main/gateway/lan-addresses.js';
import type { InterfaceTable } from '../../../main/gateway/lan-addresses.js';

function iface(address: string, family: 'IPv4' | 'IPv6', internal = false): os.NetworkInterfaceInfo {
  const base = { address, netmask: family === 'IPv4' ? '255.255.255.0' : 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', internal, cidr: null };
  return family === 'IPv4' ? { ...base, family } : { ...base, family, scopeid: 0 };
}

const TABLE: InterfaceTable = {
  lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
  eth0: [iface('192.168.1.20', 'IPv4'), iface('fe80::1c2b:3cff:fe4d:5e6f', 'IPv6'), iface('2001:DB8:0:0::20', 'IPv6')],
  wlan0: [iface('10.0.0.7', 'IPv4'), iface('192.168.1.20', 'IPv4')],
};

describe('lanAddresses', () => {
  it('lists non-internal addresses once each, IPv4 apart from IPv6, without link-local IPv6', () => {
    expect(lanAddresses(TABLE)).toEqual({ ipv4: ['192.168.1.20', '10.0.0.7'], ipv6: ['2001:db8::20'] });
  });

  it('finds nothing on a machine with loopback only', () => {
    expect(lanAddresses({ lo: TABLE.lo ?? [] })).toEqual({ ipv4: [], ipv6: [] });
  });
});

describe('reachableAddresses', () => {
  const hostname = () => 'office-gw';

  it('keeps a concrete address and says whether only this computer reaches it', () => {
    expect(reachableAddresses('127.0.0.1:7444', { interfaces: TABLE, hostname })).toEqual({ addresses: ['127.0.0.1:7444'], reachable: 'this_computer' });
    expect(reachableAddresses('[::1]:7444', { interfaces: TABLE, hostname })).toEqual({ addresses: ['[::1]:7444'], reachable: 'this_computer' });
    expect(reachableAddresses('192.168.1.20:7444', { interfaces: TABLE, hostname })).toEqual({ addresses: ['192.168.1.20:7444'], reachable: 'network' });
  });

  it('expands 0.0.0.0 to every IPv4 address and the host name, [::] to IPv6 as well', () => {
    expect(reachableAddresses('0.0.0.0:7444', { interfaces: TABLE, hostname })).toEqual({
      addresses: ['192.168.1.20:7444', '10.0.0.7:7444', 'office-gw:7444'],
      reachable: 'network',
    });
    expect(reachableAddresses('[::]:7444', { interfaces: TABLE, hostname })).toEqual({
      addresses: ['192.168.1.20:7444', '10.0.0.7:7444', '[2001:db8::20]:7444', 'office-gw:7444'],
      reachable: 'network',
    });
  });

  it('leaves out a host name that is no host name, and falls back to loopback when nothing else is left', () => {
    expect(reachableAddresses('0.0.0.0:7444', { interfaces: TABLE, hostname: () => 'bad_name' }).addresses).toEqual(['192.168.1.20:7444', '10.0.0.7:7444']);
    expect(reachableAddresses('0.0.0.0:7444', { interfaces: { lo: TABLE.lo ?? [] }, hostname: () => 'bad_name' })).toEqual({
      addresses: ['127.0.0.1:7444'],
      reachable: 'this_computer',
    });
  });

  it('never lists more addresses than a QR code carries', () => {
    const many: InterfaceTable = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`eth${i}`, [iface(`10.0.${i}.1`, 'IPv4')]]));
    const result = reachableAddresses('0.0.0.0:7444', { interfaces: many, hostname });
    expect(result.addresses).toHaveLength(8);
    expect(result.addresses[0]).toBe('10.0.0.1:7444');
  });
});

describe('loopbackWarning', () => {
  it('warns on loopback listen addresses and names the way out', () => {
    expect(loopbackWarning('127.0.0.1:7444')).toBe(
      'warning: listening on loopback only (127.0.0.1:7444): devices on other machines cannot reach this gateway; use --listen 0.0.0.0:7444 to accept them',
    );
    expect(loopbackWarning('[::1]:9000')).toContain('use --listen 0.0.0.0:9000');
    expect(loopbackWarning('localhost:7444')).not.toBeNull();
  });

  it('stays quiet when other machines can connect', () => {
    expect(loopbackWarning('0.0.0.0:7444')).toBeNull();
    expect(loopbackWarning('192.168.1.20:7444')).toBeNull();
  });
});
