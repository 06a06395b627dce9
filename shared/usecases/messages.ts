/**
 * The queue messages use cases send and queue-triggered functions receive: one zod schema each, checked before a
 * message is sent and again when it is received (a message that fails goes to the poison queue, never vanishes).
 * Messages carry ids only; a worker re-reads the stored state before it acts.
 */
import { z } from "zod";
import { SYSTEM_TENANT } from "../config/resources";
import { breachIdSchema } from "../domain/breaches";
import { requestIdSchema } from "../domain/subject-requests";
import { tenantIdSchema } from "../domain/tenant";
import { uploadIdSchema } from "../domain/uploads";

/*
 * Ids in messages are checked against the shape the service gives them (tn-…, up-…, dsr-…, br-…, msg_…, dl-…), so a
 * forged or damaged message (`../../x`) is refused at the door and goes to the poison queue at once, instead of
 * reaching a store whose SDK throws on it five times. Ids whose shape is not fixed are held to letters, digits and `-`.
 */
/** A webhook delivery's id (shared/usecases/webhooks.ts emitWebhookEvent): `msg_` and 26 base64url characters. */
const deliveryIdSchema = z.string().regex(/^msg_[A-Za-z0-9_-]{26}$/, "must be a webhook delivery id");
/** A deadline milestone's id (shared/stores/deadline-store.ts milestoneId): `dl-` and 40 hex digits. */
const milestoneIdSchema = z.string().regex(/^dl-[0-9a-f]{40}$/, "must be a milestone id");
/** A tenant's id, or the service's own partition (deadlines of the operator's own work). */
const tenantOrSystemSchema = z.union([tenantIdSchema, z.literal(SYSTEM_TENANT)]);

/** Retention classes the purge applies today (shared/domain/retention.ts). */
export const ACTIVE_RETENTION_CLASSES = ["safedata", "suspended-tenant", "idempotency-record", "consent-evidence", "closed-request", "dsr-export"] as const;
export type ActiveRetentionClass = (typeof ACTIVE_RETENTION_CLASSES)[number];

/**
 * queue purge-batches: one batch of items the retention sweep found due, named by the sweep's record of it
 * (shared/stores/sweep-store.ts). The items are not in the message: the worker reads them from that record and
 * re-reads each item before it acts, so a message can only point at work the sweep recorded. (Messages queued by
 * earlier versions also listed the items; those are ignored.)
 */
export const purgeBatchMessage = z.object({
  sweepId: z.string().regex(/^[A-Za-z0-9-]{1,100}$/, "must be a sweep id: letters, digits and '-'"),
  batch: z.number().int().nonnegative(),
  class: z.enum(ACTIVE_RETENTION_CLASSES),
});
export type PurgeBatchMessage = z.infer<typeof purgeBatchMessage>;

/** queue key-rewrap: a tenant whose data keys should move to its current KEK version. */
export const rewrapMessage = z.object({
  tenantId: tenantIdSchema,
  /** The version the rotation that queued this made current (for the log; the job follows the tenant document). */
  version: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/).optional(),
  /** The delayed last look after the job ran out of work. */
  final: z.boolean().optional(),
});
export type RewrapMessage = z.infer<typeof rewrapMessage>;

/** queue notifications: an e-mail notice to send once. */
export const notificationMessage = z.object({
  kind: z.literal("first-download"),
  tenantId: tenantIdSchema,
  uploadId: uploadIdSchema,
});
export type NotificationMessage = z.infer<typeof notificationMessage>;

/** queue webhook-deliveries: attempt `attempt` (1-based) of one webhook delivery. */
export const webhookAttemptMessage = z.object({
  tenantId: tenantIdSchema,
  deliveryId: deliveryIdSchema,
  attempt: z.number().int().min(1).max(1000),
});
export type WebhookAttemptMessage = z.infer<typeof webhookAttemptMessage>;

/** queue deadline-notices: one milestone whose notice is to be sent (the worker re-reads it). */
export const deadlineNoticeMessage = z.object({
  tenantId: tenantOrSystemSchema,
  milestoneId: milestoneIdSchema,
});
export type DeadlineNoticeMessage = z.infer<typeof deadlineNoticeMessage>;

/**
 * queue subject-request-steps: step `step` (its `seq`-th queueing) of one data-subject request. The worker re-reads
 * the request and acts only when that step, with that number, is pending on it (shared/usecases/subject-request-steps.ts).
 */
export const subjectRequestStepMessage = z.object({
  tenantId: tenantIdSchema,
  requestId: requestIdSchema,
  step: z.string().regex(/^[a-z][a-z0-9:-]{0,59}$/),
  seq: z.number().int().positive(),
});
export type SubjectRequestStepMessage = z.infer<typeof subjectRequestStepMessage>;

/**
 * queue breach-jobs: breach work, each message naming ids only; the worker re-reads the register and the part, so a
 * duplicated or forged message finds nothing to do.
 * - sync-tenant: bring one tenant's part up to the register's current version and deliver its controller notice;
 * - resolve-persons: the next step of resolving the persons of one version of a tenant's part (a page of uploads);
 * - fan-out-persons: queue one person-batch message per batch of that version (on the tenant's instruction);
 * - person-batch: e-mail the persons of one batch, within the send budget.
 */
const breachRef = { breachId: breachIdSchema, tenantId: tenantIdSchema };
export const breachJobMessage = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("sync-tenant"), ...breachRef }),
  z.object({ kind: z.literal("resolve-persons"), ...breachRef, version: z.number().int().positive() }),
  z.object({ kind: z.literal("fan-out-persons"), ...breachRef, version: z.number().int().positive() }),
  z.object({ kind: z.literal("person-batch"), ...breachRef, version: z.number().int().positive(), batch: z.string().regex(/^z?\d{1,9}\.\d{1,6}$/) }),
]);
export type BreachJobMessage = z.infer<typeof breachJobMessage>;
