/**
 * The registry of timer sweeps health reports on. A capability that adds a sweep declares it here with its
 * interval and health rule; GET /api/health then reports it without knowing about it.
 */
import type { Settings } from "./config/settings";
import type { Heartbeat } from "./stores/heartbeat-store";

export interface SweepHealth {
  healthy: boolean;
  reason: string;
}

export interface SweepDefinition {
  name: string;
  /** How often the sweep's timer fires. */
  intervalMinutes: number;
  /** Extra rule beyond "finished within 2 x interval" (e.g. nothing overdue beyond a grace period). */
  check?: (hb: Heartbeat, now: Date, settings: Settings) => SweepHealth | undefined;
}

const sweeps: SweepDefinition[] = [];

export function declareSweep(def: SweepDefinition): SweepDefinition {
  if (!sweeps.some((s) => s.name === def.name)) sweeps.push(def);
  return def;
}

export function declaredSweeps(): readonly SweepDefinition[] {
  return sweeps;
}

/** Pure: is this sweep keeping up? Unhealthy if it has not finished for longer than twice its interval. */
export function sweepHealth(def: SweepDefinition, hb: Heartbeat | undefined, now: Date, settings: Settings, startedUpAt: Date): SweepHealth {
  const limitMs = 2 * def.intervalMinutes * 60_000;
  const lastFinished = hb?.lastFinishedAt ? new Date(hb.lastFinishedAt) : undefined;
  if (!lastFinished) {
    // A fresh deployment gets two intervals to complete its first run.
    return now.getTime() - startedUpAt.getTime() > limitMs
      ? { healthy: false, reason: `no run has finished since start-up, over ${2 * def.intervalMinutes} minutes ago` }
      : { healthy: true, reason: "waiting for the first run" };
  }
  if (now.getTime() - lastFinished.getTime() > limitMs) {
    return { healthy: false, reason: `last finished ${lastFinished.toISOString()}, more than ${2 * def.intervalMinutes} minutes ago` };
  }
  const extra = hb && def.check?.(hb, now, settings);
  return extra ?? { healthy: true, reason: "keeping up" };
}
