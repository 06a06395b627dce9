/**
 * GET /api/health: can the service reach Cosmos, blobs and queues, and are its timer sweeps keeping up?
 * Anonymous, so it says up/down and times, never error text. 503 when anything is unhealthy.
 */
import { app } from "@azure/functions";
import { z } from "zod";
import { BLOB_CONTAINERS, QUEUES } from "../shared/config/resources";
import { httpEndpoint } from "../shared/http/endpoint";
import { errorFields, type Log } from "../shared/observability";
import type { Services } from "../shared/services";
import { declaredSweeps, sweepHealth } from "../shared/sweeps";

const CHECK_TIMEOUT_MS = 3_000;

const check = z.object({ status: z.enum(["up", "down"]), latencyMs: z.number() });
const healthSchema = z.object({
  status: z.enum(["healthy", "unhealthy"]),
  time: z.string(),
  checks: z.object({ cosmos: check, blob: check, queue: check }),
  sweeps: z.array(
    z.object({
      name: z.string(),
      healthy: z.boolean(),
      reason: z.string(),
      intervalMinutes: z.number(),
      lastStartedAt: z.string().nullable(),
      lastFinishedAt: z.string().nullable(),
      lastOutcome: z.string().nullable(),
      counts: z.record(z.string(), z.number()),
      oldestOverdueAt: z.string().nullable(),
    }),
  ),
});

async function probe(name: string, log: Log, fn: () => Promise<unknown>): Promise<z.infer<typeof check>> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: "up", latencyMs: Date.now() - started };
  } catch (err) {
    log.warn("health.check-failed", { check: name, ...errorFields(err) });
    return { status: "down", latencyMs: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

export async function healthReport(s: Services, log: Log): Promise<z.infer<typeof healthSchema>> {
  const [cosmos, blob, queue] = await Promise.all([
    probe("cosmos", log, () => s.database.read()),
    probe("blob", log, () => s.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getProperties()),
    probe("queue", log, () => s.queueService.getQueueClient(QUEUES.purge.name).getProperties()),
  ]);
  const now = s.clock.now();
  const sweeps = await Promise.all(
    declaredSweeps().map(async (def) => {
      const hb = cosmos.status === "up" ? await s.heartbeats.get(def.name).catch(() => undefined) : undefined;
      const h = cosmos.status === "up" ? sweepHealth(def, hb, now, s.settings, s.startedAt) : { healthy: false, reason: "heartbeat unreadable: Cosmos is down" };
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
  const healthy = [cosmos, blob, queue].every((c) => c.status === "up") && sweeps.every((w) => w.healthy);
  return { status: healthy ? "healthy" : "unhealthy", time: now.toISOString(), checks: { cosmos, blob, queue }, sweeps };
}

const health = httpEndpoint({
  name: "health",
  method: "GET",
  route: "health",
  auth: "none",
  tags: ["Operations"],
  summary: "Reachability of storage and the state of every timer sweep",
  responses: {
    200: { description: "Healthy", schema: healthSchema },
    503: { description: "Something is down or a sweep is behind", schema: healthSchema },
  },
  handler: async ({ services, log }) => {
    const report = await healthReport(services, log);
    return { status: report.status === "healthy" ? 200 : 503, json: report };
  },
});
app.http(health.name, health.options);
