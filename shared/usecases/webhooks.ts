/**
 * Signed webhooks: each tenant's endpoint and the deliveries of events to it (Standard Webhooks 1.0).
 *
 * - The tenant sets its endpoint (PUT /api/v1/webhook) and gets a signing secret, shown once. Rotating adds a new
 *   secret; the old one keeps signing beside it for 24 hours (the `webhook-signature` header then carries both).
 * - An event becomes one delivery document and one queue message per attempt. The worker re-reads the delivery,
 *   takes a lease on the attempt, signs and sends, and records the attempt (status, time, duration; no body). A
 *   failed attempt is tried again with exponential back-off for 24 hours, then marked failed. A sweep re-queues
 *   attempts whose message was lost. Delivery is at least once: receivers deduplicate by `webhook-id`.
 * - The `webhook-timestamp` is the real time of sending (receivers check it against their own clock, within five
 *   minutes), never the service's movable local clock.
 */
import { createHash, randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { QUEUES } from "../config/resources";
import { decryptField, encryptField, fieldAssociatedData, inIntegrityContext } from "../crypto";
import { canonicalWebhookUrl, isDelivered, nextAttemptAt, SECRET_OVERLAP_MS, signingSecrets, webhookUrlProblem, type WebhookEventType } from "../domain/webhooks";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { DeliveryStatus, StoredWebhookEndpoint, WebhookDeliveryDoc, WebhookEndpointDoc, WebhookSecret } from "../stores/webhook-store";
import { declareSweep } from "../sweeps";
import { recordAudit, type Actor, type TenantCaller } from "./audit-trail";
import { webhookAttemptMessage, type WebhookAttemptMessage } from "./messages";

/** How long a worker holds an attempt (well over the receiver's 10-second deadline). */
const ATTEMPT_LEASE_MS = 2 * 60_000;
/** A due attempt whose message has not been worked this long after it was due is queued again by the sweep. */
const LOST_MESSAGE_GRACE_MS = 2 * 60_000;

export interface WebhookView {
  url: string;
  createdAt: string;
  updatedAt: string;
  /** Ids and dates only; a secret is shown once, when it is made. */
  secrets: Array<{ id: string; createdAt: string; retiresAt: string | null }>;
  deliveries: Record<DeliveryStatus, number> & { lastDeliveredAt: string | null; lastFailedAt: string | null };
}

export interface DeliveryView {
  id: string;
  eventType: WebhookEventType;
  createdAt: string;
  status: DeliveryStatus;
  attempts: Array<{ n: number; at: string; status: number | null; failure?: string; durationMs: number }>;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  failedAt: string | null;
  failure: "retries-exhausted" | "no-endpoint" | null;
}

const onWebhook = (tenantId: string) => ({ type: "tenant" as const, id: tenantId });

function newSecret(): { id: string; secret: string } {
  return { id: "ws-" + randomBytes(6).toString("hex"), secret: "whsec_" + randomBytes(32).toString("base64") };
}

async function sealSecret(s: Services, tenantId: string, kekVersion: string, id: string, secret: string): Promise<WebhookSecret["sealed"]> {
  const kek = await s.keys.kek(tenantId, kekVersion);
  return { kekVersion, value: encryptField(kek, secret, fieldAssociatedData(tenantId, id, "webhookSecret")) };
}

async function openSecret(s: Services, tenantId: string, secret: WebhookSecret): Promise<string> {
  return inIntegrityContext({ tenantId, target: `webhook-secret:${secret.id}`, field: "webhookSecret" }, async () => {
    const kek = await s.keys.kek(tenantId, secret.sealed.kekVersion);
    return decryptField(kek, secret.sealed.value, fieldAssociatedData(tenantId, secret.id, "webhookSecret"));
  });
}

/**
 * The one check of a webhook URL, for every route that sets one: throws validation-failed (naming `path`) unless
 * `url` may be a webhook endpoint here (webhookUrlProblem, with this deployment's ALLOW_LOOPBACK_WEBHOOKS); returns
 * the spelling to store (canonicalWebhookUrl).
 */
export function checkWebhookUrl(s: Services, url: string, path = "url"): string {
  const problem = webhookUrlProblem(url, { allowLoopback: s.settings.allowLoopbackWebhooks });
  if (problem) throw new AppError("validation-failed", `${path} ${problem}`, { errors: [{ path, message: problem }] });
  return canonicalWebhookUrl(url);
}

/**
 * Creates the tenant's first endpoint with a new signing secret (returned, to be shown once). For the operator's
 * tenant creation and the tenant's own first PUT. Errors: conflict when an endpoint exists already.
 */
export async function createWebhookEndpoint(s: Services, by: Actor & { tenantId: string; kekVersion: string }, given: string): Promise<{ url: string; secret: string }> {
  const url = checkWebhookUrl(s, given);
  const now = s.clock.now().toISOString();
  const made = newSecret();
  const doc: WebhookEndpointDoc = {
    id: "endpoint",
    tenantId: by.tenantId,
    type: "webhook-endpoint",
    url,
    secrets: [{ id: made.id, sealed: await sealSecret(s, by.tenantId, by.kekVersion, made.id, made.secret), createdAt: now, retiresAt: null }],
    createdAt: now,
    updatedAt: now,
  };
  if (!(await s.webhooks.saveEndpoint(doc, undefined))) throw new AppError("conflict", "the webhook endpoint was changed by another request; retry");
  await recordAudit(s, by.tenantId, by, "webhook.endpoint-set", onWebhook(by.tenantId), { created: true, secretId: made.id });
  return { url, secret: made.secret };
}

/**
 * Sets the tenant's endpoint. The first time, a signing secret is made and returned (shown this once); changing the
 * URL later keeps the secrets (rotate them separately). Errors: validation-failed (the URL), conflict (raced).
 */
export async function setWebhookEndpoint(s: Services, caller: TenantCaller, given: string): Promise<{ url: string; secret: string | null }> {
  const url = checkWebhookUrl(s, given);
  const existing = await s.webhooks.getEndpoint(caller.tenantId);
  if (!existing) return createWebhookEndpoint(s, caller, url);
  const doc: WebhookEndpointDoc = { ...withoutMeta(existing), url, updatedAt: s.clock.now().toISOString() };
  if (!(await s.webhooks.saveEndpoint(doc, existing._etag))) throw new AppError("conflict", "the webhook endpoint was changed by another request; retry");
  await recordAudit(s, caller.tenantId, caller, "webhook.endpoint-set", onWebhook(caller.tenantId), { created: false, secretId: doc.secrets.at(-1)!.id });
  return { url, secret: null };
}

/**
 * The key re-wrap job's share (key-rotation.ts): re-seals the endpoint's signing secrets that `isOlder` says are
 * sealed under an older KEK version with `target`. A secret that fails authentication is not re-sealed (IntegrityError,
 * with the ids). A write that lost to a concurrent change is left for the next batch. Returns how many were re-sealed.
 */
export async function resealWebhookSecrets(s: Services, tenantId: string, target: { version: string; key: Buffer }, isOlder: (version: string) => boolean): Promise<number> {
  const endpoint = await s.webhooks.getEndpoint(tenantId);
  const stale = endpoint?.secrets.filter((sec) => sec.sealed.kekVersion !== target.version && isOlder(sec.sealed.kekVersion)) ?? [];
  if (!endpoint || stale.length === 0) return 0;
  const secrets: WebhookSecret[] = [];
  for (const sec of endpoint.secrets) {
    if (!stale.includes(sec)) {
      secrets.push(sec);
      continue;
    }
    const plain = await openSecret(s, tenantId, sec);
    secrets.push({ ...sec, sealed: { kekVersion: target.version, value: encryptField(target.key, plain, fieldAssociatedData(tenantId, sec.id, "webhookSecret")) } });
  }
  return (await s.webhooks.saveEndpoint({ ...withoutMeta(endpoint), secrets }, endpoint._etag)) ? stale.length : 0;
}

async function mustGetEndpoint(s: Services, tenantId: string): Promise<StoredWebhookEndpoint> {
  const doc = await s.webhooks.getEndpoint(tenantId);
  if (!doc) throw new AppError("not-found", "no webhook endpoint is set; PUT /api/v1/webhook sets one");
  return doc;
}

/**
 * Makes a new signing secret (returned, shown this once) the current one; the previous one keeps signing beside it
 * for 24 hours. Secrets whose overlap ended are dropped. Errors: not-found, conflict.
 */
export async function rotateWebhookSecret(s: Services, caller: TenantCaller): Promise<{ secret: string; secretId: string; previousRetiresAt: string }> {
  const doc = await mustGetEndpoint(s, caller.tenantId);
  const now = s.clock.now();
  const retiresAt = new Date(now.getTime() + SECRET_OVERLAP_MS).toISOString();
  const made = newSecret();
  const kept = signingSecrets(doc.secrets, now).map((sec) => (sec.retiresAt === null ? { ...sec, retiresAt } : sec));
  const next: WebhookEndpointDoc = {
    ...withoutMeta(doc),
    secrets: [...kept, { id: made.id, sealed: await sealSecret(s, caller.tenantId, caller.kekVersion, made.id, made.secret), createdAt: now.toISOString(), retiresAt: null }].slice(-5),
    updatedAt: now.toISOString(),
  };
  if (!(await s.webhooks.saveEndpoint(next, doc._etag))) throw new AppError("conflict", "the webhook endpoint was changed by another request; retry");
  await recordAudit(s, caller.tenantId, caller, "webhook.secret-rotated", onWebhook(caller.tenantId), { secretId: made.id, previousRetiresAt: retiresAt });
  return { secret: made.secret, secretId: made.id, previousRetiresAt: retiresAt };
}

/** The endpoint, its secrets' ids and dates, and delivery statistics. Errors: not-found. */
export async function getWebhook(s: Services, caller: TenantCaller): Promise<WebhookView> {
  const doc = await mustGetEndpoint(s, caller.tenantId);
  const now = s.clock.now();
  return {
    url: doc.url,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    secrets: signingSecrets(doc.secrets, now).map(({ id, createdAt, retiresAt }) => ({ id, createdAt, retiresAt })),
    deliveries: await s.webhooks.deliveryStats(caller.tenantId),
  };
}

/** Removes the endpoint; deliveries still pending fail with `no-endpoint`. Errors: not-found. */
export async function deleteWebhook(s: Services, caller: TenantCaller): Promise<void> {
  if (!(await s.webhooks.deleteEndpoint(caller.tenantId))) throw new AppError("not-found", "no webhook endpoint is set");
  await recordAudit(s, caller.tenantId, caller, "webhook.endpoint-deleted", onWebhook(caller.tenantId));
}

/** A page of deliveries, newest first. */
export async function listDeliveries(s: Services, caller: TenantCaller, opts: { status?: DeliveryStatus; limit: number; cursor?: string }): Promise<{ items: DeliveryView[]; nextCursor?: string }> {
  const page = await s.webhooks.listDeliveries(caller.tenantId, opts);
  return { items: page.items.map(deliveryView), nextCursor: page.cursor };
}

function deliveryView(d: WebhookDeliveryDoc): DeliveryView {
  const { id, eventType, createdAt, status, attempts, nextAttemptAt, deliveredAt, failedAt, failure } = d;
  return { id, eventType, createdAt, status, attempts, nextAttemptAt, deliveredAt, failedAt, failure };
}

/**
 * Emits an event to the tenant's endpoint, if it has one: one delivery, first attempted at once. `eventKey` names
 * the event uniquely (e.g. `dsr.overdue:dsr-…`): emitting the same key again is a no-op, so callers that retry do not
 * send twice. `data` holds ids only. Returns the delivery id, or undefined when the tenant has no endpoint.
 */
export async function emitWebhookEvent(
  s: Services,
  tenantId: string,
  type: WebhookEventType,
  eventKey: string,
  data: Record<string, string | number | boolean | null>,
): Promise<string | undefined> {
  if (!(await s.webhooks.getEndpoint(tenantId))) return undefined;
  const id = "msg_" + createHash("sha256").update(`${tenantId}\n${eventKey}`).digest("base64url").slice(0, 26);
  const now = s.clock.now();
  const body = JSON.stringify({ type, timestamp: now.toISOString(), data: { tenantId, ...data } });
  const created = await s.webhooks.createDelivery({
    id,
    tenantId,
    type: "webhook-delivery",
    eventType: type,
    body,
    createdAt: now.toISOString(),
    status: "pending",
    attempts: [],
    nextAttemptAt: now.toISOString(),
    lease: null,
    deliveredAt: null,
    failedAt: null,
    failure: null,
  });
  // Created just now, or by an earlier call that may have crashed before queuing: queuing attempt 1 again is
  // harmless (the worker acts once per attempt).
  if (created || (await s.webhooks.getDelivery(tenantId, id))?.attempts.length === 0) {
    await s.queues.send(QUEUES.webhooks.name, webhookAttemptMessage, { tenantId, deliveryId: id, attempt: 1 });
  }
  return id;
}

/** POST /api/v1/webhook/test: a `webhook.test` event, so a tenant can check its receiver. Errors: not-found. */
export async function sendTestEvent(s: Services, caller: TenantCaller): Promise<{ deliveryId: string }> {
  await mustGetEndpoint(s, caller.tenantId);
  const deliveryId = await emitWebhookEvent(s, caller.tenantId, "webhook.test", `webhook.test:${caller.requestId}`, { requestId: caller.requestId });
  if (!deliveryId) throw new AppError("not-found", "no webhook endpoint is set");
  return { deliveryId };
}

export type AttemptOutcome = "delivered" | "retry-queued" | "failed" | "skipped";

/** A delivery that was delivered (its endpoint answered 2xx), as a capability that emitted it learns of it. */
export interface DeliveredEvent {
  tenantId: string;
  deliveryId: string;
  eventType: WebhookEventType;
  /** When the 2xx answer came (service clock). */
  deliveredAt: string;
  /** The event's `data` (ids only), as sent. */
  data: Record<string, unknown>;
}
export type DeliveredListener = (s: Services, event: DeliveredEvent, log?: Log) => Promise<void>;

const deliveredListeners = new Map<WebhookEventType, DeliveredListener[]>();

/**
 * Tells a capability when a delivery of one of its event types is delivered, without polling (a breach's controller
 * notice counts as given when the first of its e-mail and its webhook arrives). Listeners run after the delivery is
 * recorded as delivered; one that fails is logged and does not undo that, so a listener's capability must also be
 * able to find out later (it can read the delivery by its id).
 */
export function onWebhookDelivered(eventType: WebhookEventType, listener: DeliveredListener): void {
  deliveredListeners.set(eventType, [...(deliveredListeners.get(eventType) ?? []), listener]);
}

async function tellDelivered(s: Services, doc: WebhookDeliveryDoc, log?: Log): Promise<void> {
  const listeners = deliveredListeners.get(doc.eventType) ?? [];
  if (listeners.length === 0 || !doc.deliveredAt) return;
  let data: Record<string, unknown>;
  try {
    data = (JSON.parse(doc.body) as { data?: Record<string, unknown> }).data ?? {};
  } catch {
    // The body is ours; unreadable means there is nothing to tell.
    return;
  }
  for (const listener of listeners) {
    await listener(s, { tenantId: doc.tenantId, deliveryId: doc.id, eventType: doc.eventType, deliveredAt: doc.deliveredAt, data }, log).catch((err: unknown) =>
      log?.warn("webhook.delivered-listener-failed", { tenantId: doc.tenantId, deliveryId: doc.id, eventType: doc.eventType, error: err instanceof Error ? err.name : "unknown" }),
    );
  }
}

/**
 * One queue message's work: attempt `msg.attempt` of a delivery. Acts only when the stored delivery says this
 * attempt is the next one and is due, and no other worker holds it: a duplicated, stale or forged message does
 * nothing. Records the attempt, then either marks the delivery delivered, queues the next attempt after its back-off,
 * or marks it failed once the 24-hour window is over.
 */
export async function attemptDelivery(s: Services, msg: WebhookAttemptMessage, log?: Log): Promise<AttemptOutcome> {
  const now = s.clock.now();
  const doc = await s.webhooks.getDelivery(msg.tenantId, msg.deliveryId);
  if (!doc || doc.status !== "pending") return "skipped";
  if (msg.attempt !== doc.attempts.length + 1) return "skipped";
  if (doc.nextAttemptAt && Date.parse(doc.nextAttemptAt) > now.getTime()) return "skipped";
  if (doc.lease && Date.parse(doc.lease.until) > now.getTime()) return "skipped";
  const claimed = { ...withoutMeta(doc), lease: { attempt: msg.attempt, until: new Date(now.getTime() + ATTEMPT_LEASE_MS).toISOString() } };
  const etag = await s.webhooks.replaceDelivery(claimed, doc._etag);
  if (!etag) return "skipped";

  const endpoint = await s.webhooks.getEndpoint(msg.tenantId);
  if (!endpoint) {
    await finish(s, { ...claimed, status: "failed", failedAt: now.toISOString(), failure: "no-endpoint", nextAttemptAt: null, lease: null }, etag, { actor: "system:webhooks" });
    return "failed";
  }
  const secrets = await Promise.all(signingSecrets(endpoint.secrets, now).map((sec) => openSecret(s, msg.tenantId, sec)));
  // Real time, not the service clock: the receiver checks the timestamp against its own clock (Standard Webhooks).
  const sentAt = new Date();
  const signature = secrets.map((secret) => new Webhook(secret).sign(doc.id, sentAt, doc.body)).join(" ");
  const result = await s.webhookSender.send({
    url: endpoint.url,
    headers: { "webhook-id": doc.id, "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)), "webhook-signature": signature, "user-agent": "safedata-webhooks/1" },
    body: doc.body,
  });
  const after = s.clock.now();
  const attempt = { n: msg.attempt, at: after.toISOString(), status: result.status, ...(result.failure ? { failure: result.failure } : {}), durationMs: result.durationMs };
  const attempts = [...claimed.attempts, attempt];
  if (isDelivered(result.status)) {
    const delivered: WebhookDeliveryDoc = { ...claimed, attempts, status: "delivered", deliveredAt: after.toISOString(), nextAttemptAt: null, lease: null };
    if (await finish(s, delivered, etag)) await tellDelivered(s, delivered, log);
    return "delivered";
  }
  log?.warn("webhook.attempt-failed", { tenantId: msg.tenantId, deliveryId: doc.id, attempt: msg.attempt, status: result.status, failure: result.failure ?? null });
  const next = nextAttemptAt(new Date(doc.createdAt), attempts.length, after);
  if (!next) {
    await finish(s, { ...claimed, attempts, status: "failed", failedAt: after.toISOString(), failure: "retries-exhausted", nextAttemptAt: null, lease: null }, etag, { actor: "system:webhooks" });
    return "failed";
  }
  await finish(s, { ...claimed, attempts, nextAttemptAt: next.toISOString(), lease: null }, etag);
  await s.queues.send(QUEUES.webhooks.name, webhookAttemptMessage, { tenantId: msg.tenantId, deliveryId: doc.id, attempt: msg.attempt + 1 }, {
    visibilityTimeoutSeconds: Math.ceil((next.getTime() - after.getTime()) / 1000),
  });
  return "retry-queued";
}

/**
 * Writes the delivery's new state under the attempt's lease; a failed delivery is also recorded in the audit log.
 * Returns whether the write went through.
 */
async function finish(s: Services, doc: WebhookDeliveryDoc, etag: string, auditAs?: Actor): Promise<boolean> {
  // The lease is ours until it runs out; a write that lost anyway leaves the attempt to the sweep's catch-up.
  if (!(await s.webhooks.replaceDelivery(doc, etag))) return false;
  if (auditAs && doc.status === "failed") {
    await recordAudit(s, doc.tenantId, auditAs, "webhook.delivery-failed", { type: "webhook-delivery", id: doc.id }, {
      eventType: doc.eventType,
      attempts: doc.attempts.length,
      reason: doc.failure,
    });
  }
  return true;
}

export const WEBHOOK_SWEEP = "webhooks";
export const WEBHOOK_SWEEP_INTERVAL_MINUTES = 5;
/** Six-field NCRONTAB (UTC): every five minutes. */
export const WEBHOOK_SWEEP_SCHEDULE = "0 */5 * * * *";

declareSweep({ name: WEBHOOK_SWEEP, intervalMinutes: WEBHOOK_SWEEP_INTERVAL_MINUTES });

/** One timer run: re-queue lost attempts, record the heartbeat. */
export async function runWebhookSweep(s: Services, opts: { pastDue?: boolean; log?: Log } = {}): Promise<{ requeued: number }> {
  const started = s.clock.now();
  await s.heartbeats.started(WEBHOOK_SWEEP, started, opts.pastDue ?? false);
  try {
    const requeued = await requeueOverdueDeliveries(s);
    await s.heartbeats.finished(WEBHOOK_SWEEP, s.clock.now(), "succeeded", { requeued }, null);
    if (requeued > 0) opts.log?.info("webhook.sweep", { requeued });
    return { requeued };
  } catch (err) {
    await s.heartbeats.finished(WEBHOOK_SWEEP, s.clock.now(), "failed", {}, null).catch(() => undefined);
    throw err;
  }
}

/**
 * The webhook sweep's catch-up: attempts that were due a while ago and that no worker holds (their queue message was
 * lost, or a worker died mid-attempt) are queued again. Queuing twice is harmless.
 */
export async function requeueOverdueDeliveries(s: Services, limit = 500): Promise<number> {
  const now = s.clock.now();
  const overdue = await s.webhooks.findOverdueAcrossTenants(new Date(now.getTime() - LOST_MESSAGE_GRACE_MS), now, limit);
  for (const d of overdue) await s.queues.send(QUEUES.webhooks.name, webhookAttemptMessage, { tenantId: d.tenantId, deliveryId: d.id, attempt: d.attempts + 1 });
  return overdue.length;
}
