/**
 * Retention, enforced by a timer: every 15 minutes a catch-up sweep fans due items out to the purge-batches queue;
 * workers purge them. Tenants read what is due and what was deleted at GET /api/v1/retention.
 */
import { app, type Timer } from "@azure/functions";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import { httpEndpoint } from "../shared/http/endpoint";
import { invocationLog } from "../shared/observability";
import { queueHandler } from "../shared/queue-handler";
import { services } from "../shared/services";
import { z } from "zod";
import { purgeBatchMessage } from "../shared/usecases/messages";
import { purgeBatch, RETENTION_SCHEDULE, runRetentionSweep, tenantRetention, type RetentionView } from "../shared/usecases/retention";

const retentionView = z.object({
  policies: z.array(z.object({ class: z.string(), description: z.string(), keptFor: z.string(), action: z.string() })),
  uploads: z.object({
    overdue: z.number().describe("Past their expiry and about to be purged by the next sweep"),
    dueByDay: z.array(z.object({ date: z.string(), count: z.number() })).describe("Uploads expiring on each of the next 33 days (UTC)"),
  }),
  receipts: z.array(
    z.object({ sweepId: z.string(), at: z.string(), count: z.number(), idsHash: z.string(), auditSeq: z.number(), ids: z.array(z.string()) }),
  ),
}) satisfies z.ZodType<RetentionView>;

app.timer("retention-sweep", {
  schedule: RETENTION_SCHEDULE,
  handler: async (timer: Timer, context) => {
    await runRetentionSweep(services(), { pastDue: timer.isPastDue, log: invocationLog(context) });
  },
});

app.storageQueue("purge-batch", {
  queueName: QUEUES.purge.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.purge.name, purgeBatchMessage, async (msg, { services, log }) => {
    const r = await purgeBatch(services, msg);
    // A message naming no batch the sweep recorded (forged, or from a sweep already closed) does nothing.
    if (r.ignored === "unknown-batch") log.warn("retention.batch-unknown", { sweepId: msg.sweepId, batch: msg.batch, class: msg.class });
    log.info("retention.batch", { sweepId: msg.sweepId, batch: msg.batch, class: msg.class, ...r });
  }),
});

const view = httpEndpoint({
  name: "retention-get",
  method: "GET",
  route: "v1/retention",
  auth: "tenant",
  tags: ["Retention"],
  summary: "Retention policies, what falls due on which day, and the receipts of what was deleted",
  responses: { 200: { description: "The tenant's retention view", schema: retentionView } },
  handler: async ({ services, principal }) => ({ status: 200, json: await tenantRetention(services, principal.tenantId) }),
});
app.http(view.name, view.options);
