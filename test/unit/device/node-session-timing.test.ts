// Heartbeat cadence and silence timeout of a node session: the configured interval once the gateway pushes; at most
// 1 s towards one that does not (its answers are the only way work arrives); silence = 3 intervals, at least 5 s.
import { describe, expect, it } from 'vitest';
import { POLL_HEARTBEAT_MS, sessionTiming } from '../../../main/device/node-session.js';
import { DEFAULT_HEARTBEAT_MS } from '../../../main/device/device-agent.js';

describe('sessionTiming', () => {
  it('pushed: the configured interval (15 s by default), silence after three of them', () => {
    expect(DEFAULT_HEARTBEAT_MS).toBe(15_000);
    expect(sessionTiming(DEFAULT_HEARTBEAT_MS, true)).toEqual({ intervalMs: 15_000, silenceMs: 45_000 });
    expect(sessionTiming(100, true)).toEqual({ intervalMs: 100, silenceMs: 5_000 });
  });

  it('not pushed: polls at most every second, silence 5 s as before', () => {
    expect(POLL_HEARTBEAT_MS).toBe(1_000);
    expect(sessionTiming(15_000, false)).toEqual({ intervalMs: 1_000, silenceMs: 5_000 });
    expect(sessionTiming(250, false)).toEqual({ intervalMs: 250, silenceMs: 5_000 });
  });
});
