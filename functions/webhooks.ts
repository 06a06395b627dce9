/**
 * Signed webhooks: a tenant sets, reads, rotates, tests and removes its endpoint; a queue worker makes each delivery
 * attempt; a timer re-queues attempts whose message was lost.
 */
import { app, type Timer } from "@azure/functions";
import { z } from "zod";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import { WEBHOOK_EVENT_TYPES } from "../shared/domain/webhooks";
import { httpEndpoint, problems } from "../shared/http/endpoint";
import { pageOf, pagingQuery } from "../shared/http/schemas";
import { invocationLog } from "../shared/observability";
import { queueHandler } from "../shared/queue-handler";
import { services } from "../shared/services";
import { webhookAttemptMessage } from "../shared/usecases/messages";
import {
  attemptDelivery,
  deleteWebhook,
  getWebhook,
  listDeliveries,
  rotateWebhookSecret,
  runWebhookSweep,
  sendTestEvent,
  setWebhookEndpoint,
  WEBHOOK_SWEEP_SCHEDULE,
  type DeliveryView,
  type WebhookView,
} from "../shared/usecases/webhooks";

const tags = ["Webhooks"];
const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;

const secretNote =
  "Deliveries follow Standard Webhooks 1.0: headers webhook-id, webhook-timestamp (Unix seconds) and webhook-signature " +
  "(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the secret's bytes after `whsec_`; several, space-separated, while an old secret overlaps). " +
  "Reject timestamps more than 5 minutes from your clock, and deduplicate by webhook-id: delivery is at least once.";

const webhookView = z.object({
  url: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  secrets: z.array(z.object({ id: z.string(), createdAt: z.string(), retiresAt: z.string().nullable().describe("When a rotated secret stops signing") })),
  deliveries: z.object({
    pending: z.number().int(),
    delivered: z.number().int(),
    failed: z.number().int(),
    lastDeliveredAt: z.string().nullable(),
    lastFailedAt: z.string().nullable(),
  }),
}) satisfies z.ZodType<WebhookView>;

const deliveryView = z.object({
  id: z.string().describe("The webhook-id header of every attempt"),
  eventType: z.enum(WEBHOOK_EVENT_TYPES),
  createdAt: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.array(
    z.object({
      n: z.number().int(),
      at: z.string(),
      status: z.number().int().nullable().describe("Your endpoint's HTTP status; null when it did not answer"),
      failure: z.string().optional().describe("timeout, blocked-address, dns, connection, tls or protocol"),
      durationMs: z.number().int(),
    }),
  ),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  failedAt: z.string().nullable(),
  failure: z.enum(["retries-exhausted", "no-endpoint"]).nullable(),
}) satisfies z.ZodType<DeliveryView>;

const put = httpEndpoint({
  name: "webhook-put",
  method: "PUT",
  route: "v1/webhook",
  auth: "tenant",
  tags,
  summary: "Set the tenant's webhook endpoint; the first time, its signing secret is returned (shown once)",
  description: `An https:// URL on a public host name (no IP address, no credentials). ${secretNote}`,
  body: z.strictObject({ url: z.string().max(2048).describe("Where events are POSTed") }),
  responses: {
    201: { description: "Created, with the signing secret", schema: z.object({ url: z.string(), secret: z.string() }) },
    200: { description: "URL changed; the secrets stay (rotate them separately)", schema: z.object({ url: z.string(), secret: z.null() }) },
    // Changed by another request meanwhile.
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, body }) => {
    const r = await setWebhookEndpoint(services, principal, body.url);
    return { status: r.secret ? 201 : 200, json: r };
  },
});
app.http(put.name, put.options);

const get = httpEndpoint({
  name: "webhook-get",
  method: "GET",
  route: "v1/webhook",
  auth: "tenant",
  tags,
  summary: "The webhook endpoint, its secrets' ids and dates, and delivery statistics",
  responses: { 200: { description: "The endpoint", schema: webhookView }, 404: problems(["not-found"]) },
  handler: async ({ services, principal }) => ({ status: 200, json: await getWebhook(services, principal) }),
});
app.http(get.name, get.options);

const remove = httpEndpoint({
  name: "webhook-delete",
  method: "DELETE",
  route: "v1/webhook",
  auth: "tenant",
  tags,
  summary: "Remove the webhook endpoint (pending deliveries fail)",
  responses: { 204: { description: "Removed" }, 404: problems(["not-found"]) },
  handler: async ({ services, principal }) => {
    await deleteWebhook(services, principal);
    return { status: 204 };
  },
});
app.http(remove.name, remove.options);

const rotate = httpEndpoint({
  name: "webhook-rotate-secret",
  method: "POST",
  route: "v1/webhook/rotate-secret",
  auth: "tenant",
  tags,
  summary: "Make a new signing secret (shown once); the previous one keeps signing beside it for 24 hours",
  description: "A replay of this request with the same Idempotency-Key returns secret: null.",
  idempotency: { redact: (json) => ({ ...(json as object), secret: null }) },
  responses: {
    200: {
      description: "The new secret",
      schema: z.object({ secret: z.string().nullable(), secretId: z.string(), previousRetiresAt: z.string() }),
    },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal }) => ({ status: 200, json: await rotateWebhookSecret(services, principal) }),
});
app.http(rotate.name, rotate.options);

const test = httpEndpoint({
  name: "webhook-test",
  method: "POST",
  route: "v1/webhook/test",
  auth: "tenant",
  tags,
  summary: "Send a webhook.test event to the endpoint",
  idempotency: {},
  responses: { 202: { description: "Queued; see GET /api/v1/webhook/deliveries for the outcome", schema: z.object({ deliveryId: z.string() }) }, 404: problems(["not-found"]) },
  handler: async ({ services, principal }) => ({ status: 202, json: await sendTestEvent(services, principal) }),
});
app.http(test.name, test.options);

const deliveries = httpEndpoint({
  name: "webhook-deliveries",
  method: "GET",
  route: "v1/webhook/deliveries",
  auth: "tenant",
  tags,
  summary: "Deliveries, newest first, with every attempt",
  query: pagingQuery.extend({ status: z.enum(DELIVERY_STATUSES).optional() }),
  responses: { 200: { description: "A page of deliveries", schema: pageOf(deliveryView) } },
  handler: async ({ services, principal, query }) => ({
    status: 200,
    json: await listDeliveries(services, principal, { status: query.status, limit: query.limit, cursor: query.cursor }),
  }),
});
app.http(deliveries.name, deliveries.options);

app.storageQueue("webhook-attempt", {
  queueName: QUEUES.webhooks.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.webhooks.name, webhookAttemptMessage, async (msg, { services, log }) => {
    const outcome = await attemptDelivery(services, msg, log);
    log.info("webhook.attempt", { tenantId: msg.tenantId, deliveryId: msg.deliveryId, attempt: msg.attempt, outcome });
  }),
});

app.timer("webhook-sweep", {
  schedule: WEBHOOK_SWEEP_SCHEDULE,
  handler: async (timer: Timer, context) => {
    await runWebhookSweep(services(), { pastDue: timer.isPastDue, log: invocationLog(context) });
  },
});
