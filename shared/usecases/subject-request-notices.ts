/**
 * What a data-subject request tells people by e-mail, each from its template (templates/email/dsr-*.<lang>.mustache)
 * in the tenant's language with dates in its time zone, each sent once (a stable message id per request and notice):
 *
 * - the person (the `notices` step): the extension with its reason (Art. 12(3)); the rejection with its reason, the
 *   right to complain to the supervisory authority and to a judicial remedy (Art. 12(4)); the closing of an unverified
 *   request; "no personal data held" (Art. 15(1): the confirmation that no data is processed);
 * - the tenant (the deadline watch's "dsr" clock): reminders 7 and 2 days before the due date, and the overdue mark
 *   when it passes (also a `subject-request.overdue` webhook event and an audit entry).
 * Every e-mail sent is an audit entry (`subject-request.notified`, or `.overdue`), which also records the use of the
 * decrypted address.
 */
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { daysLeft, DSR_TYPE_LABELS, isOpenStatus, REJECTION_GROUND_LABELS } from "../domain/subject-requests";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatDate } from "../domain/time";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { NoticeKind, RequestDoc, StoredRequest } from "../stores/subject-request-store";
import type { StoredTenant } from "../stores/tenant-store";
import { recordAuditOnce } from "./audit-trail";
import { declareDeadlineClock, type DueMilestone } from "./deadlines";
import { openRequestField, unwrapRequestKey } from "./subject-request-keys";
import { changeRequest, defineStep, deadlineItem, DSR_CLOCK } from "./subject-request-steps";
import { tenantContactEmail } from "./tenants";
import { emitWebhookEvent } from "./webhooks";

const TEMPLATE: Record<NoticeKind, string> = {
  extended: "dsr-extended",
  rejected: "dsr-rejected",
  "closed-unverified": "dsr-closed-unverified",
  "completed-no-data": "dsr-completed-no-data",
};

interface Context {
  language: Language;
  timeZone: string;
  controllerName: string;
  authorityName: string;
}

function contextOf(tenant: StoredTenant | undefined): Context {
  return {
    language: tenant?.language ?? DEFAULT_LANGUAGE,
    timeZone: tenant?.timeZone ?? DEFAULT_TIME_ZONE,
    controllerName: tenant?.name ?? "safedata",
    authorityName: tenant?.supervisoryAuthority.name ?? "",
  };
}

/** The common part of every view: who writes, which request, when it was received. */
function baseView(doc: RequestDoc, c: Context) {
  return {
    controllerName: c.controllerName,
    requestId: doc.id,
    requestType: DSR_TYPE_LABELS[c.language][doc.requestType],
    requestKind: doc.requestType,
    receivedDate: formatDate(new Date(doc.receivedAt), c.language, c.timeZone),
  };
}

/** Sends every notice the request owes the person and not yet sent, once each. */
async function sendNotices(s: Services, req: StoredRequest): Promise<void> {
  const doc = await s.subjectRequests.get(req.tenantId, req.id);
  if (!doc) return;
  const pending = doc.notices.filter((n) => n.sentAt === null);
  if (pending.length === 0) return;
  const key = await unwrapRequestKey(s, doc);
  if (!key || !doc.personal) {
    // Erased: there is no address to write to any more.
    await changeRequest(s, doc.tenantId, doc.id, (fresh) => ({ ...withoutMeta(fresh), notices: fresh.notices.filter((n) => n.sentAt !== null) }));
    return;
  }
  const c = contextOf(await s.tenants.get(doc.tenantId));
  const open = (field: "email" | "extensionReason" | "rejectionReason") => {
    const sealed = doc.personal?.[field];
    return sealed ? openRequestField(key, doc.tenantId, doc.id, field, sealed) : "";
  };
  const to = open("email");
  const base = baseView(doc, c);
  for (const notice of pending) {
    const date = (iso: string) => formatDate(new Date(iso), c.language, c.timeZone);
    const view =
      notice.kind === "extended"
        ? { ...base, previousDueDate: date(doc.originalDueAt), newDueDate: date(doc.dueAt), reason: open("extensionReason") }
        : notice.kind === "rejected"
          ? {
              ...base,
              ground: doc.rejection ? REJECTION_GROUND_LABELS[c.language][doc.rejection.ground] : "",
              reason: open("rejectionReason"),
              authorityName: c.authorityName,
            }
          : notice.kind === "closed-unverified"
            ? { ...base, verifyDays: s.settings.dsrVerifyDays }
            : base;
    const message = s.templates.render(TEMPLATE[notice.kind], c.language, view);
    await s.email.send({ messageId: `dsr-${notice.kind}-${doc.id}`, to: [to], ...message });
    await recordAuditOnce(s, doc.tenantId, { actor: "system:subject-requests" }, "subject-request.notified", { type: "subject-request", id: doc.id }, { to: "subject", notice: notice.kind }, `dsr-notice:${doc.id}:${notice.kind}`);
    const now = s.clock.now().toISOString();
    await changeRequest(s, doc.tenantId, doc.id, (fresh) =>
      fresh.notices.some((n) => n.kind === notice.kind && n.sentAt === null)
        ? { ...withoutMeta(fresh), notices: fresh.notices.map((n) => (n.kind === notice.kind && n.sentAt === null ? { ...n, sentAt: now } : n)) }
        : undefined,
    );
  }
}

defineStep("notices", sendNotices, (doc) => doc.notices.some((n) => n.sentAt === null));

// --- the deadline watch's clock -------------------------------------------------------------------------------------

/**
 * A milestone of a request's deadline: the reminder (7 days before) and the escalation (2 days before) e-mail the
 * tenant; the overdue mark e-mails it, emits `subject-request.overdue` and is audited. Each says nothing when the
 * request closed meanwhile, when its deadline moved (an extension has milestones of its own), or when a later
 * milestone has come already (a request recorded late gets the overdue mark only).
 */
async function notify(s: Services, m: DueMilestone): Promise<"sent" | "skipped"> {
  const [requestId] = m.itemId.split(":");
  const doc = await s.subjectRequests.get(m.tenantId, requestId!);
  if (!doc || !isOpenStatus(doc.status) || deadlineItem(doc.id, doc.extendedAt !== null) !== m.itemId) return "skipped";
  const now = s.clock.now();
  const dueAt = new Date(doc.dueAt);
  const day = 86_400_000;
  if (m.stage === "reminder" && now.getTime() >= dueAt.getTime() - 2 * day) return "skipped";
  if (m.stage === "escalation" && now.getTime() > dueAt.getTime()) return "skipped";
  if (m.stage === "overdue" && now.getTime() <= dueAt.getTime()) return "skipped";
  const tenant = await s.tenants.get(doc.tenantId);
  const c = contextOf(tenant);
  const messageId = `dsr-${m.stage}-${m.itemId.replace(":", "-")}`;
  if (m.stage === "overdue") {
    await emitWebhookEvent(s, doc.tenantId, "subject-request.overdue", `subject-request.overdue:${m.itemId}`, {
      requestId: doc.id,
      requestType: doc.requestType,
      status: doc.status,
      dueAt: doc.dueAt,
    });
    await recordAuditOnce(s, doc.tenantId, { actor: "system:deadline-watch" }, "subject-request.overdue", { type: "subject-request", id: doc.id }, { dueAt: doc.dueAt, status: doc.status }, `dsr-overdue:${m.itemId}`);
  }
  const to = tenant && !tenant.offboardedAt ? await tenantContactEmail(s, tenant) : undefined;
  if (to) {
    const view = {
      ...baseView(doc, c),
      status: doc.status,
      dueDate: formatDate(dueAt, c.language, c.timeZone),
      daysLeft: Math.max(0, daysLeft(dueAt, now, c.timeZone)),
      extended: doc.extendedAt !== null,
    };
    const message = s.templates.render(m.stage === "overdue" ? "dsr-tenant-overdue" : "dsr-tenant-reminder", c.language, view);
    await s.email.send({ messageId, to: [to], ...message });
    await recordAuditOnce(s, doc.tenantId, { actor: "system:deadline-watch" }, "subject-request.notified", { type: "subject-request", id: doc.id }, { to: "tenant", notice: m.stage }, `dsr-notice:${m.itemId}:${m.stage}`);
  }
  return "sent";
}

declareDeadlineClock({ name: DSR_CLOCK, notify });
