// Failed code lookups are counted, not journaled one by one (issue 12 E): the PIN guessing budget and the
// aggregated audit entry, on a real gateway state directory (encrypted files, journal, keyed audit log). The deferred
// flushes run on timers this test fires by hand, so the number of records written is exact, whatever the machine's
// speed.
import { afterEach, describe, expect, it } from 'vitest';
import { newUlid } from '../../main/core/ids.js';
import { GatewayAdmin } from '../../main/gateway/gateway-admin.js';
import { BUDGET_PERSIST_INTERVAL_MS, PairingService } from '../../main/gateway/pairing-service.js';
import type { BeginInput } from '../../main/gateway/pairing-service.js';
import { PalyraError } from '../../main/core/errors.js';
import { tempDir } from '../helpers/identity.js';

const cleanups: (() => Promise<void>)[] = [];

/** The PalyraError code an async call rejects with (undefined when it resolves). */
async function codeOf(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (e) {
    return e instanceof PalyraError ? e.code : String(e);
  }
}

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Timers that fire only when the test says so; `fire(maxMs)` runs those set with a delay of at most maxMs. */
function manualTimers(): { set(fn: () => void, ms: number): unknown; clear(handle: unknown): void; fire(maxMs?: number): void } {
  const due = new Map<() => void, number>();
  return {
    set: (fn, ms) => {
      due.set(fn, ms);
      return fn;
    },
    clear: (handle) => {
      due.delete(handle as () => void);
    },
    fire: (maxMs = Number.POSITIVE_INFINITY) => {
      const now = [...due].filter(([, ms]) => ms <= maxMs).map(([fn]) => fn);
      for (const fn of now) due.delete(fn);
      for (const fn of now) fn();
    },
  };
}

async function openState(dir: string): Promise<{ admin: GatewayAdmin; service: PairingService; timers: ReturnType<typeof manualTimers> }> {
  const admin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
  const timers = manualTimers();
  const service = new PairingService({ admin, timers });
  return { admin, service, timers };
}

async function fresh(): Promise<{ dir: string; admin: GatewayAdmin; service: PairingService; timers: ReturnType<typeof manualTimers> }> {
  const { dir, cleanup } = await tempDir('palyra-failures-');
  const opened = await openState(dir);
  cleanups.push(async () => {
    await opened.admin.close();
    await cleanup();
  });
  return { dir, ...opened };
}

function attempt(kind: 'pin' | 'qr', proof: string, source = '203.0.113.7'): BeginInput {
  return { clientKind: 'node', method: { kind, proof }, commitment: null, source };
}

const junkToken = (i: number): string => newUlid(1_700_000_000_000 + i);

async function mintPin(admin: GatewayAdmin): Promise<string> {
  return (await admin.mintCode({ method: 'pin', kind: null, issuedBy: 'test', gatewayAddresses: [], gatewayName: null })).code;
}

async function auditEvents(admin: GatewayAdmin): Promise<{ event: string; fields: Record<string, unknown> }[]> {
  return (await admin.auditTail(100_000)).entries.map((e) => ({ event: e.event, fields: e.fields }));
}

describe('failed code lookups', () => {
  it('never count QR misses against the PIN budget: 20 junk tokens, then PIN pairing still works', async () => {
    const { admin, service } = await fresh();
    const pin = await mintPin(admin);
    for (let i = 0; i < 20; i++) expect(await codeOf(() => service.begin(attempt('qr', junkToken(i))))).toBe('pairing_code_invalid');
    // A 21st junk token is still only "invalid": no budget was touched.
    expect(await codeOf(() => service.begin(attempt('qr', junkToken(99))))).toBe('pairing_code_invalid');
    const session = await service.begin(attempt('pin', pin));
    expect(session.sessionId).toHaveLength(26);
    expect(admin.runtime.pinFailuresSinceMint).toBe(0);
  });

  it('grow the journal and the audit log by a bounded amount for 1000 misses, aggregated per source and method', async () => {
    const { admin, service } = await fresh();
    await mintPin(admin);
    const generation = admin.runtimeGeneration;
    const entriesBefore = (await auditEvents(admin)).length;
    for (let i = 0; i < 1000; i++) {
      expect(await codeOf(() => service.begin(attempt('qr', junkToken(i), i % 2 === 0 ? '203.0.113.7' : '198.51.100.9')))).toBe('pairing_code_invalid');
    }
    // Nothing was written while only counting.
    expect(admin.runtimeGeneration).toBe(generation);
    await service.close();
    // One record with one entry per (source, method).
    expect(admin.runtimeGeneration - generation).toBe(1);
    const entries = (await auditEvents(admin)).slice(entriesBefore);
    expect(entries.map((e) => e.event)).toEqual(['pairing_code_lookup_failures', 'pairing_code_lookup_failures']);
    expect(entries.map((e) => e.fields).sort((a, b) => String(a.source).localeCompare(String(b.source)))).toEqual([
      { source: '198.51.100.9', method: 'qr', count: 500, since: expect.any(Number), budget_tripped: false },
      { source: '203.0.113.7', method: 'qr', count: 500, since: expect.any(Number), budget_tripped: false },
    ]);
    expect((await auditEvents(admin)).some((e) => e.event === 'pairing_code_lookup_failed')).toBe(false);
  });

  it('persist PIN failures at a bounded rate, trip the budget durably at the 20th, and the trip survives a restart', async () => {
    const { dir, admin, service, timers } = await fresh();
    const pin = await mintPin(admin);
    const wrong = pin === '000000' ? '000001' : '000000';
    const generation = admin.runtimeGeneration;
    for (let i = 0; i < 5; i++) expect(await codeOf(() => service.begin(attempt('pin', wrong)))).toBe('pairing_code_invalid');
    expect(admin.runtimeGeneration).toBe(generation);
    // The deferred persist (not the later audit flush) writes the five failures in one record.
    timers.fire(BUDGET_PERSIST_INTERVAL_MS);
    await admin.refreshIfChanged();
    await expectEventually(() => admin.runtime.pinFailuresSinceMint === 5);
    expect(admin.runtimeGeneration - generation).toBe(1);
    for (let i = 5; i < 20; i++) expect(await codeOf(() => service.begin(attempt('pin', wrong)))).toBe('pairing_code_invalid');
    // The 20th tripped the budget, and that was written before it was answered: one more record, PIN codes voided.
    expect(admin.runtimeGeneration - generation).toBe(2);
    expect(admin.runtime.pinBudget?.trippedAtUnixMs).not.toBeNull();
    expect([...admin.runtime.codes.values()].filter((c) => c.method === 'pin')).toEqual([]);
    expect(await codeOf(() => service.begin(attempt('pin', pin)))).toBe('pairing_budget_exhausted');
    // QR pairing is not blocked by the PIN budget.
    expect(await codeOf(() => service.begin(attempt('qr', junkToken(1))))).toBe('pairing_code_invalid');
    await service.close();
    const tripped = (await auditEvents(admin)).filter((e) => e.event === 'pairing_code_lookup_failures' && e.fields.method === 'pin');
    expect(tripped.map((e) => e.fields.count).reduce((a, b) => Number(a) + Number(b), 0)).toBe(20);
    expect(tripped.some((e) => e.fields.budget_tripped === true)).toBe(true);
    await admin.close();

    // A restart: the state is opened again from disk by a new service.
    const again = await openState(dir);
    cleanups.push(() => again.admin.close());
    expect(await codeOf(() => again.service.begin(attempt('pin', '123456')))).toBe('pairing_budget_exhausted');
    // Minting a new PIN code is what heals it.
    const next = await mintPin(again.admin);
    expect((await again.service.begin(attempt('pin', next))).sessionId).toHaveLength(26);
  });

  it('with a shared budget (workers, replicas), write each PIN failure before answering, so two processes trip it at the 20th together', async () => {
    const { dir, admin } = await fresh();
    const pin = await mintPin(admin);
    const wrong = pin === '000000' ? '000001' : '000000';
    // Two gateway processes on one state, as `--workers 2` runs them; no timer is ever fired here.
    const a = new PairingService({ admin, timers: manualTimers(), sharedBudget: true });
    const otherAdmin = await GatewayAdmin.open({ stateDir: dir, keychain: null });
    cleanups.push(() => otherAdmin.close());
    const b = new PairingService({ admin: otherAdmin, timers: manualTimers(), sharedBudget: true });
    for (let i = 0; i < 19; i++) {
      const service = i % 2 === 0 ? a : b;
      expect(await codeOf(() => service.begin(attempt('pin', wrong)))).toBe('pairing_code_invalid');
      // Durable as the caller hears it: the state on disk already holds it.
      await admin.refreshIfChanged();
      expect(admin.runtime.pinFailuresSinceMint).toBe(i + 1);
    }
    // The 20th, on the second process, trips the budget for both: neither may try the right PIN now.
    expect(await codeOf(() => b.begin(attempt('pin', wrong)))).toBe('pairing_code_invalid');
    expect(await codeOf(() => a.begin(attempt('pin', pin)))).toBe('pairing_budget_exhausted');
    expect(await codeOf(() => b.begin(attempt('pin', pin)))).toBe('pairing_budget_exhausted');
    await a.close();
    await b.close();
  });

  it('do not count PIN failures from before the operator minted the current code', async () => {
    const { admin, service, timers } = await fresh();
    await mintPin(admin);
    for (let i = 0; i < 19; i++) expect(await codeOf(() => service.begin(attempt('pin', '999999')))).toBe('pairing_code_invalid');
    // Still only counted in memory when the operator mints again.
    await new Promise((resolve) => setTimeout(resolve, 2));
    const pin = await mintPin(admin);
    const wrong = pin === '000000' ? '000001' : '000000';
    expect(await codeOf(() => service.begin(attempt('pin', wrong)))).toBe('pairing_code_invalid');
    timers.fire(BUDGET_PERSIST_INTERVAL_MS);
    await expectEventually(() => admin.runtime.pinFailuresSinceMint === 1);
    expect(admin.runtime.pinBudget?.trippedAtUnixMs ?? null).toBeNull();
  });
});

/** Polls a condition a bounded number of times (the deferred write settles within a few event-loop turns). */
async function expectEventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(check()).toBe(true);
}
