/**
 * The storage the code uses, by name. The local runtime provisions exactly these on start; the Bicep in
 * infra/ creates the same names in Azure (tests/infra compares them). Add a container or queue here, and
 * in the Bicep, in the same commit.
 */

export interface CosmosContainerSpec {
  readonly name: string;
  readonly partitionKey: "/tenantId";
  /** Seconds; a backstop only (Cosmos TTL), never the mechanism that keeps a promise. -1 = on, per item. */
  readonly defaultTtl?: number;
  readonly purpose: string;
}

export const COSMOS_CONTAINERS = {
  tenants: { name: "tenants", partitionKey: "/tenantId", purpose: "tenants (controllers): settings, API key hash" },
  audit: { name: "audit", partitionKey: "/tenantId", purpose: "hash-chained audit log, one chain per tenant" },
  uploads: { name: "uploads", partitionKey: "/tenantId", purpose: "SafeData upload records and tombstones" },
  idempotency: {
    name: "idempotency",
    partitionKey: "/tenantId",
    defaultTtl: -1,
    purpose: "stored results of POSTs sent with an Idempotency-Key (expire after 24 h)",
  },
  operations: {
    name: "operations",
    partitionKey: "/tenantId",
    purpose: "timer heartbeats, sweep leases and per-tenant job state (tenantId '_system' for service-wide records)",
  },
  webhooks: {
    name: "webhooks",
    partitionKey: "/tenantId",
    purpose: "each tenant's webhook endpoint (URL, encrypted signing secrets) and its deliveries with every attempt",
  },
  consents: {
    name: "consents",
    partitionKey: "/tenantId",
    defaultTtl: -1,
    purpose: "consent purposes, notice versions, subjects (keyed hash, wrapped data key), append-only consent events, evidence clocks, withdrawal-link secrets, markers and rate counters (these expire)",
  },
  subjectRequests: {
    name: "subject-requests",
    partitionKey: "/tenantId",
    purpose: "data-subject requests (access, erasure, ...): their state, deadlines, verification and steps",
  },
  breaches: {
    name: "breaches",
    partitionKey: "/tenantId",
    purpose: "personal-data breaches: the operator's register (tenantId '_system') and each affected tenant's view, clocks and decisions",
  },
} as const satisfies Record<string, CosmosContainerSpec>;

export const BLOB_CONTAINERS = {
  payloads: { name: "payloads", purpose: "encrypted SafeData payloads (ciphertext only)" },
  auditAnchors: {
    name: "audit-anchors",
    purpose: "hourly anchors of each tenant's audit chain head (ids and hashes); WORM in Azure: append-only, undeletable",
  },
  consentEvidence: {
    name: "consent-evidence",
    purpose: "consent events' evidence files (screenshots, PDFs, rendered notices), encrypted with the consent subject's data key (ciphertext only)",
  },
} as const;

/** Queues the code sends to or is triggered by. Each has a `<name>-poison` twin, as the Functions host uses. */
export const QUEUES = {
  purge: { name: "purge-batches", purpose: "pages of expired records the purge timer fans out to workers" },
  rewrap: { name: "key-rewrap", purpose: "per-tenant jobs moving wrapped data keys to the newest key-encryption key" },
  notifications: { name: "notifications", purpose: "e-mails to send (first-download notices), one message each, sent idempotently" },
  deadlines: { name: "deadline-notices", purpose: "deadline milestones (reminders, escalations, overdue marks) whose notice is to be sent, one message each" },
  subjectRequests: { name: "subject-request-steps", purpose: "the steps of data-subject requests (verification e-mails, the work of each type), one message per step" },
  breaches: { name: "breach-jobs", purpose: "breach work: controller notices, scope resolution, notices to persons in batches" },
  webhooks: { name: "webhook-deliveries", purpose: "webhook deliveries to attempt, one message per attempt, retried with back-off for 24 hours" },
} as const satisfies Record<string, { name: string; purpose: string }>;

/** Resources the local runtime creates that do not exist in Azure (local stand-ins for outside services). */
export const LOCAL_ONLY_BLOB_CONTAINERS = {
  outbox: { name: "email-outbox", purpose: "e-mails the local outbox adapter 'sent' (ACS is not available locally)" },
} as const;

export const SYSTEM_TENANT = "_system";
