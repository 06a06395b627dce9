/**
 * Who acts, and the one way a use case records what it did in the tenant's audit log (the hash chain of
 * shared/stores/audit-store.ts). Entries hold ids, counts and hashes, never personal data, so the log survives
 * erasure (GDPR Art. 5(2) accountability; the data-processing agreement's logging of change and access).
 */
import type { AuditAction, AuditEntry } from "../domain/audit-chain";
import type { Services } from "../services";

/** Who did something: an API key (`key:<id>`), the operator (`admin`) or a timer or queue step (`system:<name>`). */
export interface Actor {
  readonly actor: string;
  /** The request that caused it; absent for timers and queue steps. */
  readonly requestId?: string | null;
}

/** A tenant's API caller as authenticated (shared/http/auth.ts), with the request it is making. */
export interface TenantCaller extends Actor {
  readonly tenantId: string;
  /** The tenant's current KEK version, as read when the request was authenticated. */
  readonly kekVersion: string;
  readonly requestId: string;
}

export type AuditTarget = { type: "upload" | "breach" | "tenant" | "sweep" | "webhook-delivery" | "consent-purpose" | "consent-event" | "consent-subject" | "subject-request"; id: string };

/** Appends one entry to `tenantId`'s chain and returns it (with its sequence number). */
export function recordAudit(
  s: Pick<Services, "audit">,
  tenantId: string,
  by: Actor,
  action: AuditAction,
  target: AuditTarget,
  details?: AuditEntry["details"],
): Promise<AuditEntry> {
  return s.audit.append({ tenantId, actor: by.actor, action, target, requestId: by.requestId ?? undefined, details });
}

/**
 * After an append of `action` on `targetId` threw: was the entry stored all the same (its answer lost after the
 * store's own retries)? `{ seq }` when the log shows it, "absent" when it does not, "unknown" when the log cannot be
 * read either. A use case that undoes its own write when its entry fails undoes it on "absent" only, so the log never
 * names a record that is gone (Art. 5(2) accountability: every entry stands for something that happened). For
 * targets whose id is fresh to this write (nothing else appends an entry for it).
 */
export async function entryAfterFailedAppend(
  s: Pick<Services, "audit">,
  tenantId: string,
  action: AuditAction,
  targetId: string,
): Promise<{ seq: number } | "absent" | "unknown"> {
  try {
    const seq = await s.audit.findByTarget(tenantId, action, targetId);
    return seq === undefined ? "absent" : { seq };
  } catch {
    return "unknown";
  }
}

/**
 * Appends the entry once per `onceKey`, however many workers or retries try (receipts, notices). Returns its
 * sequence number, or undefined while another writer holds the claim (try again later).
 */
export function recordAuditOnce(
  s: Pick<Services, "audit">,
  tenantId: string,
  by: Actor,
  action: AuditAction,
  target: AuditTarget,
  details: AuditEntry["details"],
  onceKey: string,
): Promise<number | undefined> {
  return recordAuditOnceAt(s, tenantId, by, action, target, details, onceKey).then((r) => r?.seq);
}

/**
 * As recordAuditOnce, with the entry's hash when the log knows it without reading the entry back (see
 * AuditStore.appendOnceAt); undefined while another writer holds the claim.
 */
export function recordAuditOnceAt(
  s: Pick<Services, "audit">,
  tenantId: string,
  by: Actor,
  action: AuditAction,
  target: AuditTarget,
  details: AuditEntry["details"],
  onceKey: string,
): Promise<{ seq: number; hash: string | undefined } | undefined> {
  return s.audit.appendOnceAt({ tenantId, actor: by.actor, action, target, requestId: by.requestId ?? undefined, details }, onceKey);
}
