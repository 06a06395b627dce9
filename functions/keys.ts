/** Key-encryption key rotation (operator API) and the queue job that re-wraps data keys afterwards. */
import { app } from "@azure/functions";
import { z } from "zod";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import { tenantIdSchema } from "../shared/domain/tenant";
import { httpEndpoint, problems } from "../shared/http/endpoint";
import { queueHandler } from "../shared/queue-handler";
import { kekStatus, rotateTenantKek, runRewrapJob } from "../shared/usecases/key-rotation";
import { rewrapMessage } from "../shared/usecases/messages";

const tags = ["Admin: keys"];
const params = z.object({ tenantId: tenantIdSchema });

const rotate = httpEndpoint({
  name: "admin-kek-rotate",
  method: "POST",
  route: "v1/admin/tenants/{tenantId}/kek/rotate",
  auth: "admin",
  tags,
  summary: "Rotate the tenant's key-encryption key; a background job re-wraps existing data keys",
  params,
  idempotency: {},
  responses: {
    202: { description: "Rotated; re-wrapping has started", schema: z.object({ previousVersion: z.string(), version: z.string() }) },
    // Offboarded, another rotation still running after a wait, or this one outlived its lease.
    409: problems(["conflict"]),
  },
  handler: async ({ services, params, principal }) => ({
    status: 202,
    json: await rotateTenantKek(services, params.tenantId, principal),
  }),
});
app.http(rotate.name, rotate.options);

const status = httpEndpoint({
  name: "admin-kek-status",
  method: "GET",
  route: "v1/admin/tenants/{tenantId}/kek",
  auth: "admin",
  tags,
  summary: "The current KEK version and how many uploads still use an older one",
  params,
  responses: { 200: { description: "Status", schema: z.object({ currentVersion: z.string(), uploadsOnOlderVersions: z.number() }) } },
  handler: async ({ services, params }) => ({ status: 200, json: await kekStatus(services, params.tenantId) }),
});
app.http(status.name, status.options);

app.storageQueue("key-rewrap", {
  queueName: QUEUES.rewrap.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.rewrap.name, rewrapMessage, async (msg, { services, log }) => {
    // One batch per message keeps each run short; the next message continues where this one stopped.
    const r = await runRewrapJob(services, msg, log);
    log.info("key.rewrap-batch", { tenantId: msg.tenantId, rewrapped: r.rewrapped, damaged: r.damaged, remaining: r.remaining, version: r.version, final: msg.final ?? false });
  }),
});
