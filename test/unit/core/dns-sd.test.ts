import packet from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CA_PIN_PREFIX_LENGTH,
  DiscoveryCache,
  PALYRA_SERVICE_TYPE,
  SERVICE_TYPE_ENUMERATION,
  announcedHost,
  announcementRecords,
  answerQuery,
  decodeTxt,
  encodeTxt,
  instanceLabel,
} from '../../../main/core/dns-sd.js';
import type { DnsRecord, GatewayAnnouncement, ReceivedRecord } from '../../../main/core/dns-sd.js';

const PIN = 'cmsLDWPeRKolDbDyOC8DJCHqpVTjiLkpF-k-mITZLzw';
const GATEWAY: GatewayAnnouncement = {
  name: 'Office gateway',
  caPin: PIN,
  port: 7444,
  ips: ['192.168.1.20', '2001:DB8::20', 'office.example'],
  hostname: 'Office-PC.lan',
  protocolVersions: [1],
};
const enc = new TextEncoder();

function all(records: ReturnType<typeof announcementRecords>): DnsRecord[] {
  return [records.ptr, records.srv, records.txt, ...records.addresses];
}

/** Through the wire format and back, as the mDNS library does it. */
function viaWire(records: DnsRecord[]): ReceivedRecord[] {
  const answers = records.map((r) => (r.type === 'TXT' ? { ...r, data: r.data.map((b) => Buffer.from(b)) } : r)) as packet.Answer[];
  const decoded = packet.decode(packet.encode({ type: 'response', answers }));
  return (decoded.answers ?? []);
}

describe('announcementRecords', () => {
  it('builds PTR → SRV + TXT → A/AAAA with a pin prefix and no more of the pin', () => {
    const r = announcementRecords(GATEWAY);
    expect(r.instance).toBe(`Office gateway [cmsLDWPe].${PALYRA_SERVICE_TYPE}`);
    expect(r.host).toBe('office-pc-palyra.local');
    expect(r.ptr).toEqual({ name: PALYRA_SERVICE_TYPE, type: 'PTR', ttl: 120, data: r.instance });
    expect(r.srv).toMatchObject({ name: r.instance, type: 'SRV', data: { port: 7444, target: 'office-pc-palyra.local' } });
    expect(decodeTxt((r.txt as { data: Uint8Array[] }).data)).toEqual(
      new Map([
        ['txtvers', '1'],
        ['name', 'Office gateway'],
        ['pin', PIN.slice(0, CA_PIN_PREFIX_LENGTH)],
        ['pv', '1'],
      ]),
    );
    expect(r.addresses).toEqual([
      { name: r.host, type: 'A', ttl: 120, flush: true, data: '192.168.1.20' },
      { name: r.host, type: 'AAAA', ttl: 120, flush: true, data: '2001:db8::20' },
    ]);
    const wire = Buffer.from(packet.encode({ type: 'response', answers: viaWire(all(r)) as packet.Answer[] }));
    expect(wire.includes(Buffer.from(PIN))).toBe(false);
  });

  it('makes goodbyes with TTL 0 and refuses a bad port or a short pin', () => {
    expect(all(announcementRecords(GATEWAY, 0)).every((r) => r.ttl === 0)).toBe(true);
    expect(() => announcementRecords({ ...GATEWAY, port: 0 })).toThrow(/port/);
    expect(() => announcementRecords({ ...GATEWAY, caPin: 'short' })).toThrow(/pin/);
  });

  it('keeps instance labels within 63 bytes, without dots, whatever the name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), (name) => {
        const label = instanceLabel(name, PIN);
        expect(enc.encode(label).length).toBeLessThanOrEqual(63);
        expect(label).not.toContain('.');
        expect(label.endsWith(' [cmsLDWPe]')).toBe(true);
      }),
    );
    expect(instanceLabel('a.b\u0000c', PIN)).toBe('a b c [cmsLDWPe]');
    expect(instanceLabel('  ', PIN)).toBe('Palyra gateway [cmsLDWPe]');
    expect(announcedHost('')).toBe('gateway-palyra.local');
  });
});

describe('TXT', () => {
  it('reads keys case-insensitively, first one wins, boolean keys and bad UTF-8 as RFC 6763 says', () => {
    const entries = [enc.encode('TxtVers=1'), enc.encode('txtvers=2'), enc.encode('flag'), enc.encode('=x'), new Uint8Array([0x6e, 0x3d, 0xff])];
    expect(decodeTxt(entries)).toEqual(
      new Map([
        ['txtvers', '1'],
        ['flag', ''],
      ]),
    );
  });

  it('round-trips any key=value and refuses an entry over 255 bytes', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{1,9}$/), fc.string({ maxLength: 100 }), (key, value) => {
        expect(decodeTxt(encodeTxt([[key, value]])).get(key)).toBe(value);
      }),
    );
    expect(() => encodeTxt([['name', 'x'.repeat(251)]])).toThrow(/255/);
  });
});

describe('answerQuery', () => {
  const r = announcementRecords(GATEWAY);

  it('answers a browse with the PTR and puts SRV, TXT and addresses in the additionals', () => {
    const reply = answerQuery(r, [{ name: '_PALYRA._tcp.local', type: 'PTR' }]);
    expect(reply?.answers).toEqual([r.ptr]);
    expect(reply?.additionals).toEqual([r.srv, r.txt, ...r.addresses]);
  });

  it('answers SRV/TXT of the instance, A/AAAA of the host, the service enumeration, and nothing else', () => {
    expect(answerQuery(r, [{ name: r.instance, type: 'SRV' }])?.answers).toEqual([r.srv]);
    expect(answerQuery(r, [{ name: r.instance, type: 'ANY' }])?.answers).toEqual([r.srv, r.txt]);
    expect(answerQuery(r, [{ name: r.host, type: 'AAAA' }])?.answers).toEqual([r.addresses[1]]);
    expect(answerQuery(r, [{ name: SERVICE_TYPE_ENUMERATION, type: 'PTR' }])).toEqual({
      answers: [{ name: SERVICE_TYPE_ENUMERATION, type: 'PTR', ttl: 120, data: PALYRA_SERVICE_TYPE }],
      additionals: [],
    });
    expect(answerQuery(r, [{ name: '_http._tcp.local', type: 'PTR' }])).toBeNull();
    expect(answerQuery(r, [{ name: r.instance, type: 'A' }])).toBeNull();
  });
});

describe('DiscoveryCache', () => {
  const now = 1_000_000;

  it('joins the records of an announcement, received over the wire, into one gateway', () => {
    const cache = new DiscoveryCache();
    cache.add(viaWire(all(announcementRecords(GATEWAY))), now);
    expect(cache.gateways(now)).toEqual([
      {
        name: 'Office gateway',
        addresses: ['192.168.1.20:7444', '[2001:db8::20]:7444'],
        ca_pin_prefix: PIN.slice(0, CA_PIN_PREFIX_LENGTH),
        protocol_versions: [1],
        host: 'office-pc-palyra.local',
      },
    ]);
  });

  it('lists a gateway only once PTR, SRV and TXT are all there, in whatever order they come', () => {
    const r = announcementRecords(GATEWAY);
    const cache = new DiscoveryCache();
    cache.add(viaWire([r.txt, ...r.addresses]), now);
    expect(cache.gateways(now)).toEqual([]);
    cache.add(viaWire([r.ptr]), now);
    expect(cache.gateways(now)).toEqual([]);
    cache.add(viaWire([r.srv]), now);
    expect(cache.gateways(now)).toHaveLength(1);
  });

  it('drops a gateway on its goodbye and when its records expire', () => {
    const cache = new DiscoveryCache();
    cache.add(viaWire(all(announcementRecords(GATEWAY))), now);
    cache.add(viaWire(all(announcementRecords(GATEWAY, 0))), now + 1);
    expect(cache.gateways(now + 1)).toEqual([]);
    const later = new DiscoveryCache();
    later.add(viaWire(all(announcementRecords(GATEWAY))), now);
    expect(later.gateways(now + 119_000)).toHaveLength(1);
    expect(later.gateways(now + 120_000)).toEqual([]);
  });

  it('ignores other services, foreign TXT versions, bad pin prefixes and malformed records', () => {
    const r = announcementRecords(GATEWAY);
    const cache = new DiscoveryCache();
    const foreignTxt = { ...r.txt, data: encodeTxt([['txtvers', '2'], ['pin', PIN.slice(0, 16)]]) } as DnsRecord;
    cache.add(viaWire([r.ptr, r.srv, foreignTxt]), now);
    expect(cache.gateways(now)).toEqual([]);
    const badPin = { ...r.txt, data: encodeTxt([['txtvers', '1'], ['pin', 'not/a+pin!!!!!!!']]) } as DnsRecord;
    cache.add(viaWire([badPin]), now);
    expect(cache.gateways(now)).toEqual([]);
    cache.add(
      [
        { name: '_http._tcp.local', type: 'PTR', ttl: 120, data: 'x._http._tcp.local' },
        { name: r.instance, type: 'SRV', ttl: 120, data: { port: 70_000, target: 'x' } },
        { name: r.host, type: 'A', ttl: 120, data: '999.1.1.1' },
        { name: 5, type: 'A', ttl: 120, data: '10.0.0.1' },
        { name: r.host, type: 'A', ttl: -1, data: '10.0.0.1' },
      ],
      now,
    );
    cache.add(viaWire([r.txt]), now);
    // The good SRV survives the bad one; no valid address record arrived.
    expect(cache.gateways(now)).toEqual([expect.objectContaining({ name: 'Office gateway', addresses: [] })]);
  });
});
