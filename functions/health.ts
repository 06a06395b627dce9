/**
 * GET /api/health: can the service reach its stores, and are its timer sweeps keeping up?
 * Anonymous, so it says up/down and times, never error text. 503 when anything is unhealthy.
 */
import { app } from "@azure/functions";
import { z } from "zod";
import { httpEndpoint } from "../shared/http/endpoint";
import { healthReport, type HealthReport } from "../shared/usecases/health";

const check = z.object({ status: z.enum(["up", "down"]), latencyMs: z.number() });
const healthSchema = z.object({
  status: z.enum(["healthy", "unhealthy"]),
  time: z.string(),
  checks: z.object({ cosmos: check, blob: check, queue: check }),
  stores: z.array(check.extend({ name: z.string(), system: z.enum(["cosmos", "blob", "queue"]) })),
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
}) satisfies z.ZodType<HealthReport>;

const health = httpEndpoint({
  name: "health",
  method: "GET",
  route: "health",
  auth: "none",
  tags: ["Operations"],
  summary: "Reachability of every store and the state of every timer sweep",
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
