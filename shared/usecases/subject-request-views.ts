/** How a data-subject request is shown to its tenant in lists and answers: states, dates and counts, nothing personal. */
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { daysLeft, isOpenStatus, isOverdue, type DsrOutcome, type DsrStatus, type DsrType } from "../domain/subject-requests";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import type { Services } from "../services";
import type { RequestDoc, VerificationMethod } from "../stores/subject-request-store";
import { workFor } from "./subject-request-steps";

/** A request as listed: states, dates and counts; nothing personal. */
export interface RequestSummary {
  id: string;
  type: DsrType;
  status: DsrStatus;
  receivedAt: string;
  createdAt: string;
  /** The due date in force (four weeks, or the extended date). */
  dueAt: string;
  /** One month as Reg. 1182/71 Art. 3 counts it (weekends rolled forward; public holidays not applied), for information. */
  legalDueAt: string;
  originalDueAt: string;
  extended: boolean;
  overdue: boolean;
  /** Calendar days to the due date in the tenant's time zone (negative once overdue); null once closed. */
  daysLeft: number | null;
  /** Recorded after its due date had passed (a lateReason was given). */
  late: boolean;
  verification: { method: VerificationMethod | null; verifiedAt: string | null; verifyBy: string };
  outcome: DsrOutcome | null;
  completedAt: string | null;
  closedAt: string | null;
  /** Why it needs attention (a step failed after its retries); POST …/retry resumes it. */
  attention: { reason: string; step: string; since: string } | null;
  /** What an open request waits for: the person's verification, or the work of its type, which is not built yet. */
  waitingFor: "verification" | "type-support" | null;
}

/** The tenant's time zone and language (defaults when the tenant is gone). */
export async function tenantZone(s: Services, tenantId: string): Promise<{ timeZone: string; language: Language }> {
  const t = await s.tenants.get(tenantId);
  return { timeZone: t?.timeZone ?? DEFAULT_TIME_ZONE, language: t?.language ?? DEFAULT_LANGUAGE };
}

export function summaryOf(doc: RequestDoc, now: Date, timeZone: string): RequestSummary {
  const dueAt = new Date(doc.dueAt);
  const open = isOpenStatus(doc.status);
  return {
    id: doc.id,
    type: doc.requestType,
    status: doc.status,
    receivedAt: doc.receivedAt,
    createdAt: doc.createdAt,
    dueAt: doc.dueAt,
    legalDueAt: doc.legalDueAt,
    originalDueAt: doc.originalDueAt,
    extended: doc.extendedAt !== null,
    overdue: isOverdue({ status: doc.status, dueAt }, now),
    daysLeft: open ? daysLeft(dueAt, now, timeZone) : null,
    late: doc.late,
    verification: { method: doc.verification.method, verifiedAt: doc.verification.verifiedAt, verifyBy: doc.verification.verifyBy },
    outcome: doc.outcome,
    completedAt: doc.completedAt,
    closedAt: doc.closedAt,
    attention: doc.attention ? { reason: doc.attention.reason, step: doc.attention.step, since: doc.attention.since } : null,
    waitingFor:
      doc.status === "awaiting-verification"
        ? "verification"
        : doc.status === "verified" && !workFor(doc.requestType) && !doc.steps.some((st) => st.name === "start")
          ? "type-support"
          : null,
  };
}
