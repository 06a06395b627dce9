/**
 * A breach reaching each affected controller (GDPR Art. 33(2), the data-processing agreement's clause 10): the
 * queue job that brings one tenant's part up to the register's current version and delivers its notice, the
 * webhook-delivered hook, the deadline watch's clock for the four deadlines of each part, and the sweep that
 * finishes what a crash or a lost message left.
 *
 * - One job per (breach, tenant), `sync-tenant`. It re-reads the register and the part and does only what is
 *   missing: the part's new version (the tenant's own numbering; a version that changes nothing of the tenant's part
 *   makes none), its audit entry, its deadline milestones, and the notice of its newest version: an e-mail to the
 *   tenant's contact in its language and a signed webhook event (`breach.notified`, then `breach.updated`). A
 *   duplicated or forged message finds nothing to do.
 * - The e-mail is retried until the e-mail service accepts it (1 minute, doubling to an hour between attempts); the
 *   webhook by the webhook machinery (24 hours). `controllerNotifiedAt` is when the first of the two arrived (the
 *   e-mail accepted, or the endpoint answered 2xx), or the tenant's acknowledgement if that came first.
 * - The deadline watch (shared/usecases/deadlines.ts) e-mails the tenant and the operator contact 24 h, 12 h and 2 h
 *   before each deadline and when it passes, each once; a deadline's milestones are cancelled when its step is done.
 */
import { createHash } from "node:crypto";
import { QUEUES } from "../config/resources";
import { BAND_LABELS, CATEGORY_LABELS, DEADLINE_LABELS, KIND_LABELS, LEVEL_LABELS, OPERATOR_DEADLINE_LABELS, YES_NO } from "../domain/breach-labels";
import {
  authorityClock,
  BREACH_DEADLINES,
  breachDeadlines,
  breachKinds,
  changedFields,
  controllerNoticeClock,
  deadlineMarks,
  type BreachDeadline,
  type BreachDeadlineStage,
} from "../domain/breaches";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatInstant } from "../domain/time";
import type { WebhookEventType } from "../domain/webhooks";
import { errorFields, type Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { BreachPartDoc, BreachVersionDoc, PartNotice, PartVersion, StoredBreachHead, StoredBreachPart, TenantContent } from "../stores/breach-store";
import type { TenantDoc } from "../stores/tenant-store";
import { declareSweep } from "../sweeps";
import { recordAuditOnce, type Actor } from "./audit-trail";
import { declareDeadlineClock, scheduleDeadlines } from "./deadlines";
import { startPersonResolution, sweepPersonJobs } from "./breach-persons";
import { breachJobMessage } from "./messages";
import { tenantContactEmail } from "./tenants";
import { emitWebhookEvent, onWebhookDelivered } from "./webhooks";

export const BREACH_CLOCK = "breach";
const SYSTEM: Actor = { actor: "system:breaches" };
const MINUTE = 60_000;
/** How long a worker holds a notice's e-mail attempt (the send takes seconds). */
const ATTEMPT_CLAIM_MS = 2 * MINUTE;

/** The e-mail retry's wait after `attempts` failed attempts: 1 minute, doubling, at most an hour. */
export function emailRetryDelayMs(attempts: number): number {
  return Math.min(MINUTE * 2 ** Math.max(0, attempts - 1), 60 * MINUTE);
}

/** Queues the sync job of one tenant's part (at once, or after `delaySeconds`). */
export async function queueTenantSync(s: Services, breachId: string, tenantId: string, delaySeconds?: number): Promise<void> {
  await s.queues.send(QUEUES.breaches.name, breachJobMessage, { kind: "sync-tenant", breachId, tenantId }, delaySeconds ? { visibilityTimeoutSeconds: Math.ceil(delaySeconds) } : {});
}

// ---------------------------------------------------------------------------------------------------------------
// The tenant's projection of a register version

/** What `tenantId` sees of `version`: the shared fields, its own scope entry and what it came to; undefined when out of scope. */
export function projectionOf(version: BreachVersionDoc, tenantId: string): Pick<PartVersion, "content" | "severity" | "proposal"> | undefined {
  const entry = version.fields.scope.find((e) => e.tenantId === tenantId);
  const assessment = version.assessments.find((a) => a.tenantId === tenantId);
  if (!entry || !assessment) return undefined;
  const { scope: _scope, proposalPolicy: _policy, ...shared } = version.fields;
  const content: TenantContent = { ...shared, scope: entry, resolved: assessment.resolved };
  return { content, severity: assessment.severity, proposal: assessment.proposal };
}

/** The part's newest version entry. */
export const latestVersion = (part: BreachPartDoc): PartVersion => part.versions[part.versions.length - 1]!;

/** The content of the newest version that had content (a withdrawal entry has none). */
export function latestContent(part: BreachPartDoc): TenantContent {
  for (let i = part.versions.length - 1; i >= 0; i--) {
    const c = part.versions[i]!.content;
    if (c) return c;
  }
  throw new Error("a breach part without content");
}

function newNotice(part: Pick<BreachPartDoc, "breachId" | "tenantId">, version: number, eventType: WebhookEventType, now: Date): PartNotice {
  return {
    version,
    eventType,
    createdAt: now.toISOString(),
    emailMessageId: `breach-${part.breachId}-${hashOf(part.tenantId).slice(0, 12)}-v${version}`,
    emailAcceptedAt: null,
    emailAttempts: 0,
    emailLastFailure: null,
    webhookDeliveryId: null,
    webhook: "pending",
    webhookDeliveredAt: null,
    superseded: false,
  };
}

const hashOf = (s: string) => createHash("sha256").update(s).digest("hex");

/**
 * The part as it should be after `version` of the register (undefined when it already is): a new tenant version
 * when the tenant's projection changed (or it left the scope), with a notice for it.
 */
function advancePart(part: BreachPartDoc, version: BreachVersionDoc, now: Date): BreachPartDoc | undefined {
  if (part.breachVersion >= version.n) return undefined;
  const projected = projectionOf(version, part.tenantId);
  const last = latestVersion(part);
  const base = { ...part, breachVersion: version.n, updatedAt: now.toISOString() };
  if (!projected) {
    if (part.status === "withdrawn") return base;
    const n = last.n + 1;
    return {
      ...base,
      status: "withdrawn",
      withdrawnAt: now.toISOString(),
      // Its persons are no longer this tenant's to tell for this breach: the run stops where it is.
      persons: part.persons && !part.persons.stopped ? { ...part.persons, stopped: { at: now.toISOString(), reason: "withdrawn" } } : part.persons,
      versions: [...part.versions, { n, at: now.toISOString(), breachVersion: version.n, changes: ["scope"], content: null, severity: null, proposal: null, audited: false }],
      notices: [...part.notices.map((x) => (x.emailAcceptedAt ? x : { ...x, superseded: true })), newNotice(part, n, "breach.updated", now)],
      pendingNotice: { version: n, nextAttemptAt: now.toISOString() },
    };
  }
  const before = latestContent(part);
  const changes = [
    ...changedFields(before as unknown as Record<string, unknown>, projected.content as unknown as Record<string, unknown>),
    ...(JSON.stringify(last.severity) !== JSON.stringify(projected.severity) ? ["severity"] : []),
    ...(JSON.stringify(last.proposal) !== JSON.stringify(projected.proposal) ? ["proposal"] : []),
  ];
  if (changes.length === 0 && part.status === "open") return base;
  const n = last.n + 1;
  return {
    ...base,
    status: "open",
    withdrawnAt: null,
    versions: [...part.versions, { n, at: now.toISOString(), breachVersion: version.n, changes: part.status === "withdrawn" ? [...new Set([...changes, "scope"])].sort() : changes, ...projected, audited: false }],
    notices: [...part.notices.map((x) => (x.emailAcceptedAt ? x : { ...x, superseded: true })), newNotice(part, n, "breach.updated", now)],
    pendingNotice: { version: n, nextAttemptAt: now.toISOString() },
  };
}

function firstPart(version: BreachVersionDoc, tenantId: string, now: Date): BreachPartDoc | undefined {
  const projected = projectionOf(version, tenantId);
  if (!projected) return undefined;
  const base = { breachId: version.breachId, tenantId };
  return {
    id: version.breachId,
    tenantId,
    type: "breach-part",
    breachId: version.breachId,
    status: "open",
    breachVersion: version.n,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    versions: [{ n: 1, at: now.toISOString(), breachVersion: version.n, changes: Object.keys(projected.content!).sort(), ...projected, audited: false }],
    notices: [newNotice(base, 1, "breach.notified", now)],
    pendingNotice: { version: 1, nextAttemptAt: now.toISOString() },
    controllerNotifiedAt: null,
    controllerNotifiedVia: null,
    acknowledgedAt: null,
    acknowledgedBy: null,
    decisions: [],
    authorityNotifications: [],
    noAuthorityNotification: null,
    withdrawnAt: null,
    persons: null,
    publicCommunications: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The sync job

export type SyncOutcome = "synced" | "retry-queued" | "skipped";

/**
 * One `sync-tenant` job: bring the tenant's part up to the register, audit its versions, keep its deadlines, and
 * deliver the notice of its newest version. Safe to run any number of times, at once too.
 */
export async function syncTenantPart(s: Services, breachId: string, tenantId: string, log?: Log): Promise<SyncOutcome> {
  const head = await s.breaches.getBreach(breachId);
  if (!head || head.status !== "open" || !head.everTenants.includes(tenantId)) return "skipped";
  const version = await s.breaches.getVersion(breachId, head.version);
  if (!version) throw new Error(`breach ${breachId} names version ${head.version}, which is not stored`);
  let part = await bringUpToDate(s, head, version, tenantId);
  if (!part) return "skipped";
  part = await auditVersions(s, part);
  await keepDeadlines(s, part);
  await startPersonResolution(s, part);
  return deliverNotice(s, part, log);
}

/**
 * Makes the part, or steps it through every register version it has not seen, in order (Art. 33(4): each phase a
 * version of its own when it changed the tenant's part). A tenant told for the first time gets the current version
 * as its version 1.
 */
async function bringUpToDate(s: Services, head: StoredBreachHead, current: BreachVersionDoc, tenantId: string): Promise<StoredBreachPart | undefined> {
  const now = s.clock.now();
  const existing = await s.breaches.getPart(tenantId, head.id);
  if (!existing) {
    const first = firstPart(current, tenantId, now);
    if (!first) return undefined; // never told, and no longer in scope: nothing to say
    if (!(await s.breaches.createPart(first))) return bringUpToDate(s, head, current, tenantId);
    return s.breaches.getPart(tenantId, head.id);
  }
  const missing: BreachVersionDoc[] = [];
  for (let n = existing.breachVersion + 1; n <= current.n; n++) {
    const v = n === current.n ? current : await s.breaches.getVersion(head.id, n);
    if (!v) throw new Error(`breach ${head.id} has no version ${n}`);
    missing.push(v);
  }
  const r = await s.breaches.updatePart(tenantId, head.id, (doc) => {
    let next: BreachPartDoc | undefined;
    for (const v of missing) next = advancePart(next ?? withoutMeta(doc), v, now) ?? next;
    return next;
  });
  if (r.updated) return r.doc;
  if (r.reason === "contended") throw new Error(`breach part ${head.id} of ${tenantId} was contended; the job is retried`);
  return r.doc;
}

const versionTarget = (breachId: string, n: number) => ({ type: "breach" as const, id: `${breachId}.v${n}` });

/** Writes each version's audit entry once (registered, updated or withdrawn), then marks it audited. */
async function auditVersions(s: Services, part: StoredBreachPart): Promise<StoredBreachPart> {
  const pending = part.versions.filter((v) => !v.audited);
  if (pending.length === 0) return part;
  for (const v of pending) {
    const action = v.n === 1 ? "breach.registered" : v.content === null ? "breach.withdrawn" : "breach.updated";
    const seq = await recordAuditOnce(
      s,
      part.tenantId,
      SYSTEM,
      action,
      versionTarget(part.breachId, v.n),
      {
        breachId: part.breachId,
        version: v.n,
        changes: v.changes.slice(0, 50),
        band: v.severity?.band ?? null,
        // Factors the operator set by hand (their reasons are kept in the record).
        overrides: v.severity
          ? Object.entries(v.severity.factors)
              .filter(([, f]) => f.override !== null)
              .map(([k]) => k)
          : [],
      },
      `breach:${part.breachId}:v${v.n}`,
    );
    if (seq === undefined) throw new Error("the breach version's audit entry is being written by another worker");
  }
  const r = await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
    doc.versions.some((v) => !v.audited && pending.some((p) => p.n === v.n))
      ? { ...withoutMeta(doc), versions: doc.versions.map((v) => (pending.some((p) => p.n === v.n) ? { ...v, audited: true } : v)) }
      : undefined,
  );
  return r.doc ?? part;
}

// ---------------------------------------------------------------------------------------------------------------
// Deadlines

const itemId = (breachId: string, deadline: BreachDeadline) => `${breachId}/${deadline}`;

/** Is the step a deadline watches done (or no longer the tenant's to do)? */
export function deadlineDone(part: BreachPartDoc, deadline: BreachDeadline): boolean {
  if (part.status === "withdrawn") return true;
  if (deadline === "controller-target" || deadline === "controller-limit") return part.controllerNotifiedAt !== null;
  return part.authorityNotifications.length > 0 || part.noAuthorityNotification !== null;
}

/**
 * Schedules the marks of each deadline whose step is not done, and cancels the rest (scheduleDeadlines leaves a
 * notice already queued or sent as it is). Marks are relative to when the deadline became known: the part's
 * creation, or (the authority's deadline) when the controller was told.
 */
export async function keepDeadlines(s: Services, part: BreachPartDoc): Promise<void> {
  const awareAt = new Date(latestContent(part).awareAt);
  const controllerNotifiedAt = part.controllerNotifiedAt ? new Date(part.controllerNotifiedAt) : null;
  const when = breachDeadlines(awareAt, s.settings.breachControllerNoticeHours, controllerNotifiedAt);
  for (const deadline of BREACH_DEADLINES) {
    const at = when[deadline];
    const known = deadline === "authority" ? controllerNotifiedAt : new Date(part.createdAt);
    const marks = at && known && !deadlineDone(part, deadline) ? deadlineMarks(at, known) : [];
    await scheduleDeadlines(s, BREACH_CLOCK, part.tenantId, itemId(part.breachId, deadline), marks);
  }
}

const STAGE_HOURS: Record<BreachDeadlineStage, number> = { "reminder-24h": 24, "reminder-12h": 12, "reminder-2h": 2, overdue: 0 };

interface TenantLocale {
  doc: TenantDoc | undefined;
  language: Language;
  timeZone: string;
}

async function localeOf(s: Services, tenantId: string): Promise<TenantLocale> {
  const doc = await s.tenants.get(tenantId);
  return { doc, language: doc?.language ?? DEFAULT_LANGUAGE, timeZone: doc?.timeZone ?? DEFAULT_TIME_ZONE };
}

declareDeadlineClock({
  name: BREACH_CLOCK,
  /**
   * One mark of one deadline of one part: re-reads the part; when the step is done (or the part withdrawn) there is
   * nothing to say. Otherwise e-mails the tenant (its language and time zone) and the operator contact (English,
   * when set), each with a message id of its own for this mark, and records the notice in the tenant's chain.
   */
  notify: async (s, m) => {
    const [breachId, deadline] = m.itemId.split("/") as [string, BreachDeadline];
    const part = await s.breaches.getPart(m.tenantId, breachId);
    if (!part || !BREACH_DEADLINES.includes(deadline) || deadlineDone(part, deadline)) return "skipped";
    const stage = m.stage as BreachDeadlineStage;
    if (!(stage in STAGE_HOURS)) return "skipped";
    const deadlineAt = new Date(m.dueAt.getTime() + STAGE_HOURS[stage] * 3_600_000);
    const locale = await localeOf(s, m.tenantId);
    const key = `breach-deadline-${breachId}-${hashOf(`${m.tenantId}\n${deadline}\n${stage}`).slice(0, 16)}`;
    const view = (language: Language, timeZone: string) => ({
      breachId,
      deadline: DEADLINE_LABELS[deadline][language],
      deadlineAt: formatInstant(deadlineAt, language, timeZone),
      hoursLeft: STAGE_HOURS[stage],
      passed: stage === "overdue",
      isControllerNotice: deadline === "controller-target" || deadline === "controller-limit",
      isAuthority: deadline === "authority" || deadline === "authority-target",
    });
    const to = locale.doc ? await tenantContactEmail(s, locale.doc) : undefined;
    if (to) {
      const msg = s.templates.render("breach-deadline", locale.language, { ...view(locale.language, locale.timeZone), controllerName: locale.doc?.name ?? "" });
      await s.email.send({ messageId: `${key}-t`, to: [to], ...msg });
    }
    const operator = s.settings.operatorContactEmail;
    if (operator) {
      const msg = s.templates.render("breach-operator-deadline", "en", {
        ...view("en", DEFAULT_TIME_ZONE),
        // The operator reads of the tenant's deadline, not "your" deadline.
        deadline: OPERATOR_DEADLINE_LABELS[deadline].en,
        tenantId: m.tenantId,
        controllerName: locale.doc?.name ?? m.tenantId,
      });
      await s.email.send({ messageId: `${key}-o`, to: [operator], ...msg });
    }
    const seq = await recordAuditOnce(
      s,
      m.tenantId,
      { actor: "system:deadline-watch" },
      "breach.deadline-notice",
      { type: "breach", id: `${breachId}/${deadline}/${stage}` },
      { breachId, deadline, stage, deadlineAt: deadlineAt.toISOString(), toTenant: to !== undefined, toOperator: operator !== undefined },
      key,
    );
    if (seq === undefined) throw new Error("the deadline notice's audit entry is being written by another worker");
    return "sent";
  },
});

// ---------------------------------------------------------------------------------------------------------------
// The notice

/**
 * Which of the breach's start and end are known, so a template says "from A to B", "from A (end not yet known)",
 * "until B" or "not yet known" instead of "from not yet known to not yet known".
 */
export function occurredFlags(from: string | null, to: string | null): { occurredBoth: boolean; occurredFromOnly: boolean; occurredToOnly: boolean; occurredUnknown: boolean } {
  return { occurredBoth: from !== null && to !== null, occurredFromOnly: from !== null && to === null, occurredToOnly: from === null && to !== null, occurredUnknown: from === null && to === null };
}

/** The e-mail's view: the Art. 33(3) content of the tenant's part, in its language and time zone. */
function noticeView(part: BreachPartDoc, notice: PartNotice, tenantName: string, language: Language, timeZone: string, s: Services) {
  const v = part.versions.find((x) => x.n === notice.version) ?? latestVersion(part);
  const c = latestContent(part);
  const when = (iso: string | null) => (iso ? formatInstant(new Date(iso), language, timeZone) : null);
  const words = YES_NO[language];
  const clock = controllerNoticeClock(new Date(c.awareAt), s.settings.breachControllerNoticeHours, null, s.clock.now());
  const authority = authorityClock(new Date(c.awareAt), null, { notifiedAt: null, notNotified: false }, s.clock.now());
  const sev = v.severity ?? [...part.versions].reverse().find((x) => x.severity)?.severity ?? null;
  return {
    controllerName: tenantName,
    breachId: part.breachId,
    version: notice.version,
    isUpdate: notice.version > 1,
    withdrawn: v.content === null,
    awareAt: when(c.awareAt)!,
    occurredFrom: when(c.occurredFrom) ?? words.unknown,
    occurredTo: when(c.occurredTo) ?? words.unknown,
    ...occurredFlags(c.occurredFrom, c.occurredTo),
    kinds: breachKinds(c.nature).map((k) => ({ kind: KIND_LABELS[k][language], level: LEVEL_LABELS[c.nature[k]]![language] })),
    malicious: c.malicious ? words.yes : words.no,
    description: c.description,
    cause: c.cause,
    categories: c.resolved.categories.map((cat) => ({ label: CATEGORY_LABELS[cat][language] })),
    noCategories: c.resolved.categories.length === 0,
    approximatePersons: c.resolved.approximatePersons === null ? words.unknown : String(c.resolved.approximatePersons),
    approximateRecords: c.resolved.approximateRecords === null ? words.unknown : String(c.resolved.approximateRecords),
    consequences: c.consequences ?? words.unknown,
    likelyConsequences: c.likelyConsequences ?? words.unknown,
    measuresTaken: c.measuresTaken ?? words.unknown,
    measuresProposed: c.measuresProposed ?? words.unknown,
    note: c.scope.note ?? "",
    hasNote: Boolean(c.scope.note),
    followUp: c.followUp ? `${c.followUp.missing}${c.followUp.expectedBy ? ` (${when(c.followUp.expectedBy)})` : ""}` : "",
    hasFollowUp: c.followUp !== null,
    band: sev ? BAND_LABELS[sev.band][language] : words.unknown,
    formula: sev?.formula ?? "",
    proposeAuthority: v.proposal?.notifyAuthority.proposed ? words.yes : words.no,
    proposePersons: v.proposal?.notifyPersons.proposed ? words.yes : words.no,
    exemptions: (v.proposal?.exemptions ?? []).map((e) => ({ article: e.article })),
    hasExemptions: (v.proposal?.exemptions.length ?? 0) > 0,
    targetAt: when(clock.targetAt)!,
    limitAt: when(clock.limitAt)!,
    authorityTargetAt: when(authority.productTargetAt)!,
    processorContact: s.settings.operatorContactEmail ?? "",
    hasProcessorContact: s.settings.operatorContactEmail !== undefined,
    breachPath: `/api/v1/breaches/${part.breachId}`,
  };
}

/**
 * Delivers the notice of the part's pending version, if its time has come: emits the webhook event (once, keyed by
 * the version), then sends the e-mail (once: a stable message id). A failed e-mail is retried later by a delayed
 * message and, if that is lost, by the sweep.
 */
async function deliverNotice(s: Services, part: StoredBreachPart, log?: Log): Promise<SyncOutcome> {
  await reconcileWebhook(s, part);
  const pending = part.pendingNotice;
  if (!pending) return "synced";
  const now = s.clock.now();
  if (Date.parse(pending.nextAttemptAt) > now.getTime()) return "synced";
  const notice = part.notices.find((x) => x.version === pending.version);
  if (!notice) throw new Error(`breach part ${part.breachId} of ${part.tenantId} has no notice for version ${pending.version}`);
  // Claim the attempt: of several workers (a retry's message and the sweep's), one makes it; a worker that dies
  // holding it leaves it to the sweep once the claim has run out.
  const claim = await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
    doc.pendingNotice?.version === pending.version && doc.pendingNotice.nextAttemptAt === pending.nextAttemptAt
      ? { ...withoutMeta(doc), pendingNotice: { version: pending.version, nextAttemptAt: new Date(now.getTime() + ATTEMPT_CLAIM_MS).toISOString() } }
      : undefined,
  );
  if (!claim.updated) return "synced";

  if (notice.webhookDeliveryId === null && notice.webhook === "pending") {
    const v = part.versions.find((x) => x.n === notice.version);
    const deliveryId = await emitWebhookEvent(s, part.tenantId, notice.eventType, `breach:${part.breachId}:v${notice.version}`, {
      breachId: part.breachId,
      version: notice.version,
      withdrawn: v?.content === null,
      band: v?.severity?.band ?? null,
    });
    await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
      mapNotice(doc, notice.version, (x) => (x.webhookDeliveryId === null && x.webhook === "pending" ? { ...x, webhookDeliveryId: deliveryId ?? null, webhook: deliveryId ? "pending" : "no-endpoint" } : undefined)),
    );
  }

  const locale = await localeOf(s, part.tenantId);
  const to = locale.doc ? await tenantContactEmail(s, locale.doc) : undefined;
  if (!to) {
    // Offboarded: its contact details are gone. The webhook (if any) is the only way left; stop retrying e-mail.
    await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
      doc.pendingNotice ? { ...mapNoticeDoc(doc, notice.version, (x) => ({ ...x, emailLastFailure: "no-contact-address" })), pendingNotice: null } : undefined,
    );
    return "synced";
  }
  try {
    const msg = s.templates.render("breach-notice", locale.language, noticeView(part, notice, locale.doc?.name ?? "", locale.language, locale.timeZone, s));
    await s.email.send({ messageId: notice.emailMessageId, to: [to], ...msg });
  } catch (err) {
    const attempts = notice.emailAttempts + 1;
    const delay = emailRetryDelayMs(attempts);
    const failure = (err instanceof Error ? err.name : "unknown").slice(0, 60);
    log?.warn("breach.notice-failed", { breachId: part.breachId, tenantId: part.tenantId, version: notice.version, attempts, ...errorFields(err) });
    await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
      doc.pendingNotice?.version === notice.version
        ? {
            ...mapNoticeDoc(doc, notice.version, (x) => ({ ...x, emailAttempts: attempts, emailLastFailure: failure })),
            pendingNotice: { version: notice.version, nextAttemptAt: new Date(now.getTime() + delay).toISOString() },
          }
        : undefined,
    );
    await queueTenantSync(s, part.breachId, part.tenantId, delay / 1000);
    return "retry-queued";
  }
  const acceptedAt = s.clock.now().toISOString();
  const r = await s.breaches.updatePart(part.tenantId, part.breachId, (doc) => {
    const fresh = doc.notices.find((x) => x.version === notice.version);
    if (!fresh || fresh.emailAcceptedAt) return doc.pendingNotice?.version === notice.version ? { ...withoutMeta(doc), pendingNotice: null } : undefined;
    const next = mapNoticeDoc(doc, notice.version, (x) => ({ ...x, emailAcceptedAt: acceptedAt, emailAttempts: x.emailAttempts + 1, emailLastFailure: null }));
    return {
      ...next,
      pendingNotice: doc.pendingNotice?.version === notice.version ? null : doc.pendingNotice,
      ...(doc.controllerNotifiedAt ? {} : { controllerNotifiedAt: acceptedAt, controllerNotifiedVia: "email" as const }),
    };
  });
  const seq = await recordAuditOnce(
    s,
    part.tenantId,
    SYSTEM,
    "breach.notice-sent",
    versionTarget(part.breachId, notice.version),
    { breachId: part.breachId, version: notice.version, channel: "email", eventType: notice.eventType },
    `breach:${part.breachId}:v${notice.version}:email`,
  );
  if (seq === undefined) throw new Error("the notice's audit entry is being written by another worker");
  if (r.doc) await afterControllerNotified(s, r.doc);
  return "synced";
}

function mapNoticeDoc(doc: StoredBreachPart, version: number, f: (n: PartNotice) => PartNotice): BreachPartDoc {
  return { ...withoutMeta(doc), notices: doc.notices.map((x) => (x.version === version ? f(x) : x)) };
}

function mapNotice(doc: StoredBreachPart, version: number, f: (n: PartNotice) => PartNotice | undefined): BreachPartDoc | undefined {
  const target = doc.notices.find((x) => x.version === version);
  const changed = target && f(target);
  return changed ? { ...withoutMeta(doc), notices: doc.notices.map((x) => (x.version === version ? changed : x)) } : undefined;
}

/**
 * Once the controller was told (by whichever channel came first): the controller-notice deadlines are cancelled,
 * the authority's is scheduled, and the moment is recorded once in the tenant's chain.
 */
export async function afterControllerNotified(s: Services, part: BreachPartDoc): Promise<void> {
  if (!part.controllerNotifiedAt) return;
  const seq = await recordAuditOnce(
    s,
    part.tenantId,
    SYSTEM,
    "breach.controller-notified",
    { type: "breach", id: part.breachId },
    { breachId: part.breachId, at: part.controllerNotifiedAt, via: part.controllerNotifiedVia },
    `breach:${part.breachId}:controller-notified`,
  );
  if (seq === undefined) throw new Error("the controller notice's audit entry is being written by another worker");
  await keepDeadlines(s, part);
}

/** Learns, from the stored deliveries, of webhook notices delivered or failed that the hook did not report. */
async function reconcileWebhook(s: Services, part: StoredBreachPart): Promise<void> {
  for (const notice of part.notices.filter((x) => x.webhook === "pending" && x.webhookDeliveryId)) {
    const delivery = await s.webhooks.getDelivery(part.tenantId, notice.webhookDeliveryId!);
    if (delivery?.status === "delivered" && delivery.deliveredAt) await recordWebhookDelivered(s, part.tenantId, part.breachId, notice.version, delivery.id, delivery.deliveredAt);
    else if (delivery?.status === "failed" || !delivery) {
      await s.breaches.updatePart(part.tenantId, part.breachId, (doc) => mapNotice(doc, notice.version, (x) => (x.webhook === "pending" ? { ...x, webhook: "failed" } : undefined)));
    }
  }
}

async function recordWebhookDelivered(s: Services, tenantId: string, breachId: string, version: number, deliveryId: string, deliveredAt: string): Promise<void> {
  const r = await s.breaches.updatePart(tenantId, breachId, (doc) => {
    const notice = doc.notices.find((x) => x.version === version && x.webhookDeliveryId === deliveryId);
    if (!notice || notice.webhook === "delivered") return undefined;
    const next = mapNoticeDoc(doc, version, (x) => ({ ...x, webhook: "delivered", webhookDeliveredAt: deliveredAt }));
    const earlier = !doc.controllerNotifiedAt || Date.parse(deliveredAt) < Date.parse(doc.controllerNotifiedAt);
    return earlier && (!doc.controllerNotifiedAt || doc.controllerNotifiedVia !== "acknowledgement") ? { ...next, controllerNotifiedAt: deliveredAt, controllerNotifiedVia: "webhook" } : next;
  });
  if (r.updated) await afterControllerNotified(s, r.doc);
}

// The webhook machinery tells us when a breach event's endpoint answered 2xx.
for (const type of ["breach.notified", "breach.updated"] as const) {
  onWebhookDelivered(type, async (s, event) => {
    const breachId = typeof event.data.breachId === "string" ? event.data.breachId : undefined;
    const version = typeof event.data.version === "number" ? event.data.version : undefined;
    if (!breachId || version === undefined) return;
    await recordWebhookDelivered(s, event.tenantId, breachId, version, event.deliveryId, event.deliveredAt);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The sweep

export const BREACH_SWEEP = "breach-notices";
export const BREACH_SWEEP_INTERVAL_MINUTES = 5;
/** Six-field NCRONTAB (UTC): every five minutes, at 45 seconds past. */
export const BREACH_SWEEP_SCHEDULE = "45 */5 * * * *";
/** A notice whose attempt was due this long ago and is still pending lost its message: queue it again. */
const LOST_MESSAGE_GRACE_MS = 2 * MINUTE;

declareSweep({ name: BREACH_SWEEP, intervalMinutes: BREACH_SWEEP_INTERVAL_MINUTES });

/**
 * One timer run, a catch-up: every open breach whose newest version some tenant's part does not reflect yet gets the
 * sync jobs it is missing (and is marked propagated once every part does); every notice whose e-mail attempt is
 * overdue (its message was lost) is queued again. Queuing twice is harmless.
 */
export async function runBreachSweep(s: Services, opts: { pastDue?: boolean; log?: Log } = {}): Promise<{ requeued: number; propagated: number }> {
  const started = s.clock.now();
  await s.heartbeats.started(BREACH_SWEEP, started, opts.pastDue ?? false);
  try {
    let requeued = 0;
    let propagated = 0;
    for (const head of await s.breaches.findUnpropagated(100)) {
      const behind = await tenantsBehind(s, head);
      for (const tenantId of behind) await queueTenantSync(s, head.id, tenantId);
      requeued += behind.length;
      if (behind.length === 0 && (await s.breaches.replaceBreach({ ...withoutMeta(head), propagatedVersion: head.version }, head._etag))) propagated++;
    }
    for (const p of await s.breaches.findPendingNoticesAcrossTenants(new Date(started.getTime() - LOST_MESSAGE_GRACE_MS), 500)) {
      await queueTenantSync(s, p.breachId, p.tenantId);
      requeued++;
    }
    // The persons' resolutions, fan-outs and batches whose message was lost or whose worker died.
    requeued += await sweepPersonJobs(s);
    await s.heartbeats.finished(BREACH_SWEEP, s.clock.now(), "succeeded", { requeued, propagated }, null);
    if (requeued > 0) opts.log?.info("breach.sweep", { requeued, propagated });
    return { requeued, propagated };
  } catch (err) {
    await s.heartbeats.finished(BREACH_SWEEP, s.clock.now(), "failed", {}, null).catch(() => undefined);
    throw err;
  }
}

/** The tenants of a breach whose part is missing or behind the register's version. */
async function tenantsBehind(s: Services, head: StoredBreachHead): Promise<string[]> {
  const out: string[] = [];
  for (const tenantId of head.everTenants) {
    const part = await s.breaches.getPart(tenantId, head.id);
    if (part ? part.breachVersion < head.version || part.versions.some((v) => !v.audited) : head.tenants.includes(tenantId)) out.push(tenantId);
  }
  return out;
}
