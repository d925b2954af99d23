/**
 * LAN discovery over multicast DNS: the gateway's announcer (answers queries for `_palyra._tcp.local`, announces at
 * start, says goodbye at stop) and the browse behind `palyra gateway discover` and the Pair view's "Gateways nearby".
 * The records themselves are built and read in core/dns-sd.ts. Discovery is a hint only: what a device dials is
 * still authenticated by the CA pin of the pairing handshake.
 */

import type { RemoteInfo } from 'node:dgram';
import makeMdns from 'multicast-dns';
import { PalyraError, toPalyraError } from '../core/errors.js';
import { DiscoveryCache, PALYRA_SERVICE_TYPE, announcementRecords, answerQuery } from '../core/dns-sd.js';
import type { AnnouncementRecords, DiscoveredGateway, DnsRecord, GatewayAnnouncement, ReceivedRecord } from '../core/dns-sd.js';

/** The mDNS port (RFC 6762 §3); a query from another port is a legacy unicast query and gets a unicast answer. */
const MDNS_PORT = 5353;
/** RFC 6762 §8.3: announce at least twice, one second apart. */
const ANNOUNCE_REPEAT_MS = 1_000;
/** A browse re-asks this often, so a gateway that missed the first query (or started late) is still found. */
const QUERY_INTERVAL_MS = 1_000;
/** How long the goodbye may take before the socket is closed anyway. */
const GOODBYE_DEADLINE_MS = 500;
export const DEFAULT_DISCOVER_TIMEOUT_MS = 5_000;
export const MAX_DISCOVER_TIMEOUT_MS = 60_000;

type MulticastDns = ReturnType<typeof makeMdns>;
/** The library's record type, named through its API (dns-packet is its dependency, not ours). */
type Answer = Extract<Parameters<MulticastDns['respond']>[0], unknown[]>[number];
type Log = (line: Record<string, unknown>) => void;

/** The library types TXT data as Buffer; ours are Uint8Array. */
function toWire(records: readonly DnsRecord[]): Answer[] {
  return records.map((r) => (r.type === 'TXT' ? { ...r, data: r.data.map((b) => Buffer.from(b)) } : r) as Answer);
}

/** Opens an mDNS socket on the standard port; rejects with `unavailable` when it cannot be bound. */
function openMdns(): Promise<MulticastDns> {
  return new Promise((resolve, reject) => {
    let mdns: MulticastDns;
    try {
      mdns = makeMdns({ reuseAddr: true, loopback: true });
    } catch (cause) {
      reject(new PalyraError('unavailable', 'cannot open the multicast DNS socket', { cause }));
      return;
    }
    const onError = (cause: Error): void => {
      mdns.destroy();
      reject(new PalyraError('unavailable', `cannot use multicast DNS (UDP ${MDNS_PORT}): ${cause.message}`, { cause }));
    };
    mdns.once('error', onError);
    mdns.once('ready', () => {
      mdns.off('error', onError);
      resolve(mdns);
    });
  });
}

function closeMdns(mdns: MulticastDns): Promise<void> {
  return new Promise((resolve) => {
    mdns.destroy(() => {
      resolve();
    });
  });
}

/** Announces one gateway until `stop()`. */
export class GatewayAnnouncer {
  readonly instance: string;
  readonly #mdns: MulticastDns;
  readonly #records: AnnouncementRecords;
  readonly #goodbye: AnnouncementRecords;
  readonly #log: Log;
  readonly #timers: NodeJS.Timeout[] = [];
  #stopping: Promise<void> | null = null;

  private constructor(mdns: MulticastDns, announcement: GatewayAnnouncement, log: Log) {
    this.#mdns = mdns;
    this.#records = announcementRecords(announcement);
    this.#goodbye = announcementRecords(announcement, 0);
    this.instance = this.#records.instance;
    this.#log = log;
    mdns.on('query', (query, rinfo: RemoteInfo) => {
      this.#answer(query.questions ?? [], query.id, rinfo);
    });
    mdns.on('warning', (error: Error) => {
      log({ event: 'discovery.warning', message: error.message });
    });
    mdns.on('error', (error: Error) => {
      log({ event: 'discovery.error', message: error.message });
    });
  }

  /** Binds the mDNS socket and sends the first announcement; `unavailable` if the socket cannot be had. */
  static async start(announcement: GatewayAnnouncement, log: Log = () => undefined): Promise<GatewayAnnouncer> {
    // Built first, so bad input fails before any socket exists.
    announcementRecords(announcement);
    const announcer = new GatewayAnnouncer(await openMdns(), announcement, log);
    announcer.#announce(announcer.#records);
    const again = setTimeout(() => {
      announcer.#announce(announcer.#records);
    }, ANNOUNCE_REPEAT_MS);
    again.unref();
    announcer.#timers.push(again);
    log({ event: 'discovery.announced', instance: announcer.instance, service: PALYRA_SERVICE_TYPE });
    return announcer;
  }

  #all(records: AnnouncementRecords): DnsRecord[] {
    return [records.ptr, records.srv, records.txt, ...records.addresses];
  }

  #announce(records: AnnouncementRecords, done?: () => void): void {
    this.#mdns.respond({ answers: toWire(this.#all(records)) }, (error) => {
      if (error !== null) this.#log({ event: 'discovery.send_failed', message: error.message });
      done?.();
    });
  }

  #answer(questions: readonly { name: string; type: string }[], id: number | undefined, rinfo: RemoteInfo): void {
    if (this.#stopping !== null) return;
    const reply = answerQuery(this.#records, questions);
    if (reply === null) return;
    const packet = { answers: toWire(reply.answers), additionals: toWire(reply.additionals) };
    const send = (error: Error | null): void => {
      if (error !== null) this.#log({ event: 'discovery.send_failed', message: error.message });
    };
    if (rinfo.port === MDNS_PORT) this.#mdns.respond(packet, send);
    else this.#mdns.respond({ ...packet, id: id ?? 0 }, { port: rinfo.port, address: rinfo.address }, send);
  }

  /** Sends the goodbye (TTL 0, so browsers drop the gateway at once) and closes the socket. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const t of this.#timers) clearTimeout(t);
      await new Promise<void>((resolve) => {
        const deadline = setTimeout(resolve, GOODBYE_DEADLINE_MS);
        deadline.unref();
        this.#announce(this.#goodbye, () => {
          clearTimeout(deadline);
          resolve();
        });
      });
      await closeMdns(this.#mdns);
    })();
    return this.#stopping;
  }
}

export interface DiscoverOptions {
  readonly timeoutMs: number;
  /** Ends the browse early once this says the list is enough (the benchmark waits for one gateway). */
  readonly until?: (gateways: DiscoveredGateway[]) => boolean;
  readonly signal?: AbortSignal;
  readonly now?: () => number;
}

/**
 * Asks for `_palyra._tcp.local` every second for `timeoutMs` and returns the gateways whose records arrived (and
 * did not say goodbye). `unavailable` when the mDNS socket cannot be opened.
 */
export async function discoverGateways(options: DiscoverOptions): Promise<DiscoveredGateway[]> {
  const { timeoutMs } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_DISCOVER_TIMEOUT_MS) {
    throw new PalyraError('invalid_argument', `the discovery timeout is 1 ms to ${MAX_DISCOVER_TIMEOUT_MS / 1000} s`);
  }
  const now = options.now ?? Date.now;
  const mdns = await openMdns();
  const cache = new DiscoveryCache();
  try {
    return await new Promise<DiscoveredGateway[]>((resolve) => {
      const timers: NodeJS.Timeout[] = [];
      const finish = (): void => {
        for (const t of timers) clearTimeout(t);
        options.signal?.removeEventListener('abort', finish);
        resolve(cache.gateways(now()));
      };
      mdns.on('response', (response) => {
        cache.add([...(response.answers ?? []), ...(response.additionals ?? [])] as ReceivedRecord[], now());
        if (options.until?.(cache.gateways(now())) === true) finish();
      });
      mdns.on('warning', () => undefined);
      mdns.on('error', () => undefined);
      const ask = (): void => {
        mdns.query({ questions: [{ name: PALYRA_SERVICE_TYPE, type: 'PTR' }] }, () => undefined);
      };
      ask();
      for (let at = QUERY_INTERVAL_MS; at < timeoutMs; at += QUERY_INTERVAL_MS) timers.push(setTimeout(ask, at));
      timers.push(setTimeout(finish, timeoutMs));
      if (options.signal?.aborted === true) finish();
      else options.signal?.addEventListener('abort', finish, { once: true });
    });
  } catch (error) {
    throw toPalyraError(error);
  } finally {
    await closeMdns(mdns);
  }
}
