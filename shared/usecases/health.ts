/**
 * Health: can the service reach every store, and are its timer sweeps keeping up (each sweep is declared in
 * shared/sweeps.ts with its interval and rule)? Probes answer up or down with a latency, never error text.
 * The full report is for operators (admin key); anyone else gets `publicHealth`: the status and the time.
 */
import { errorFields, type Log } from "../observability";
import type { Services, StoreProbe } from "../services";
import { declaredSweeps, sweepHealth } from "../sweeps";

const CHECK_TIMEOUT_MS = 3_000;

export interface ProbeResult {
  status: "up" | "down";
  latencyMs: number;
}

export interface SweepReport {
  name: string;
  healthy: boolean;
  reason: string;
  intervalMinutes: number;
  lastStartedAt: string | null;
  lastFinishedAt: string | null;
  lastOutcome: string | null;
  counts: Record<string, number>;
  oldestOverdueAt: string | null;
}

export interface HealthReport {
  status: "healthy" | "unhealthy";
  time: string;
  /** Per outside system: up when every store on it answered. */
  checks: Record<StoreProbe["system"], ProbeResult>;
  /** Per store. */
  stores: Array<{ name: string; system: StoreProbe["system"] } & ProbeResult>;
  sweeps: SweepReport[];
}

async function run(p: StoreProbe, log: Log): Promise<ProbeResult> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      p.probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: "up", latencyMs: Date.now() - started };
  } catch (err) {
    log.warn("health.check-failed", { check: p.name, ...errorFields(err) });
    return { status: "down", latencyMs: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** Probes every store at once (each bounded by 3 s) and reads every sweep's heartbeat. */
export async function healthReport(s: Services, log: Log): Promise<HealthReport> {
  const stores = await Promise.all(s.probes.map(async (p) => ({ name: p.name, system: p.system, ...(await run(p, log)) })));
  const checks = {} as HealthReport["checks"];
  for (const system of ["cosmos", "blob", "queue"] as const) {
    const mine = stores.filter((r) => r.system === system);
    checks[system] = { status: mine.every((r) => r.status === "up") ? "up" : "down", latencyMs: Math.max(0, ...mine.map((r) => r.latencyMs)) };
  }
  const now = s.clock.now();
  const cosmosUp = checks.cosmos.status === "up";
  const sweeps = await Promise.all(
    declaredSweeps().map(async (def): Promise<SweepReport> => {
      const hb = cosmosUp ? await s.heartbeats.get(def.name).catch(() => undefined) : undefined;
      const h = cosmosUp ? sweepHealth(def, hb, now, s.settings, s.startedAt) : { healthy: false, reason: "heartbeat unreadable: Cosmos is down" };
      return {
        name: def.name,
        ...h,
        intervalMinutes: def.intervalMinutes,
        lastStartedAt: hb?.lastStartedAt ?? null,
        lastFinishedAt: hb?.lastFinishedAt ?? null,
        lastOutcome: hb?.lastOutcome ?? null,
        counts: hb?.counts ?? {},
        oldestOverdueAt: hb?.oldestOverdueAt ?? null,
      };
    }),
  );
  const healthy = stores.every((c) => c.status === "up") && sweeps.every((w) => w.healthy);
  return { status: healthy ? "healthy" : "unhealthy", time: now.toISOString(), checks, stores, sweeps };
}

/** What an anonymous caller may know: healthy or not, and when that was decided. */
export function publicHealth(report: HealthReport): Pick<HealthReport, "status" | "time"> {
  return { status: report.status, time: report.time };
}
