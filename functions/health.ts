/**
 * GET /api/health: can the service reach its stores, and are its timer sweeps keeping up?
 * Anonymous callers (load balancers, uptime probes) get the status and the time only; the details (every store,
 * every sweep with its counts, alarm counts) describe the service's inside and need the admin key. Never error text.
 * 503 when anything is unhealthy, for either caller.
 */
import { app } from "@azure/functions";
import { z } from "zod";
import { authenticateAdmin } from "../shared/http/auth";
import { httpEndpoint, problems } from "../shared/http/endpoint";
import { healthReport, publicHealth, type HealthReport } from "../shared/usecases/health";

const check = z.object({ status: z.enum(["up", "down"]), latencyMs: z.number() });

const healthSchema = z.object({
  status: z.enum(["healthy", "unhealthy"]),
  time: z.string(),
  checks: z.object({ cosmos: check, blob: check, queue: check }).optional().describe("Admin key only"),
  stores: z.array(check.extend({ name: z.string(), system: z.enum(["cosmos", "blob", "queue"]) })).optional().describe("Admin key only"),
  sweeps: z
    .array(
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
    )
    .optional()
    .describe("Admin key only"),
}) satisfies z.ZodType<Partial<HealthReport> & Pick<HealthReport, "status" | "time">>;

const health = httpEndpoint({
  name: "health",
  method: "GET",
  route: "health",
  auth: "none",
  tags: ["Operations"],
  summary: "Whether the service is healthy; with the admin key, every store and timer sweep",
  description:
    "Without credentials: the status and the time only. With 'Authorization: Bearer <admin key>': also the reachability of every " +
    "store and the state of every timer sweep (counts, overdue items, alarms). Any other key is refused (401).",
  responses: {
    200: { description: "Healthy", schema: healthSchema },
    // An answer, not an error: a store did not answer its probe in time, or a sweep is behind.
    503: { description: "Unhealthy: something is down or a sweep is behind", schema: healthSchema },
    401: problems(["unauthenticated"], { "WWW-Authenticate": { description: "Bearer: credentials were sent and are not the admin key", required: true } }),
  },
  handler: async ({ services, log, request, requestId }) => {
    // Credentials are optional here, but a caller that sends some must send the admin key (never a silent downgrade).
    const admin = request.headers.get("authorization") !== null ? authenticateAdmin(request, services, requestId) : undefined;
    const report = await healthReport(services, log);
    return { status: report.status === "healthy" ? 200 : 503, json: admin ? report : publicHealth(report) };
  },
});
app.http(health.name, health.options);
