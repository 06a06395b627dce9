/**
 * The breach register (GDPR Art. 33(5): every breach documented, whatever its outcome) and each affected
 * controller's side of it.
 *
 * The operator (admin key) registers a breach with when the processor became aware (`awareAt`: the clocks start
 * there, never at the API call), what happened and the scope per affected tenant; each change is a new immutable
 * version (Art. 33(4): information in phases) made with `If-Match` naming the current one. Each version is assessed
 * per tenant (ENISA severity, the proposal: shared/domain/breaches.ts) and reaches each tenant's part through the
 * `sync-tenant` job (breach-notices.ts), which also notifies the tenant. An audit-anchor tamper alarm opens a draft
 * for the operator to confirm or dismiss.
 *
 * A tenant (its key) sees only its own part: its scope, its clocks, its decision; never which or how many other
 * tenants are affected. It acknowledges, records its decision (the service proposes, the controller decides:
 * Art. 33(1), 34(1)), and records its notification to the supervisory authority or its reason not to notify.
 */
import { createHash } from "node:crypto";
import {
  assessSeverity,
  authorityClock,
  authorityDeadline,
  breachFieldProblems,
  changedFields,
  controllerNoticeClock,
  controllerNoticeDelayRequired,
  DEFAULT_PERSON_CATEGORIES,
  DEFAULT_PROPOSAL_POLICY,
  isLateAuthorityNotification,
  newBreachId,
  proposeNotices,
  type AuthorityClock,
  type AuthorityNotificationInput,
  type BreachFields,
  type BreachPatch,
  type ControllerNoticeClock,
  type DecisionInput,
  type Proposal,
  type ScopeEntry,
  type SeverityAssessment,
} from "../domain/breaches";
import { EARLIEST_FACT_TIME } from "../domain/time";
import type { DataCategory } from "../domain/uploads";
import { AppError, type FieldError } from "../errors";
import type { Services } from "../services";
import { SYSTEM_TENANT } from "../config/resources";
import { withoutMeta, type Page } from "../stores/cosmos";
import type {
  BreachHeadDoc,
  BreachOrigin,
  BreachPartDoc,
  BreachStatus,
  BreachVersionDoc,
  ResolvedScope,
  StoredBreachHead,
  StoredBreachPart,
  TenantAssessment,
  TenantContent,
} from "../stores/breach-store";
import { recordAudit, recordAuditOnce, type TenantCaller } from "./audit-trail";
import { afterControllerNotified, keepDeadlines, latestContent, latestVersion, queueTenantSync } from "./breach-notices";
import { personsView, type PersonsView } from "./breach-persons";
import type { OperatorActor } from "./tenants";

// ---------------------------------------------------------------------------------------------------------------
// Versions (ETags)

/** A breach version as an entity tag (RFC 9110 §8.8.3): `"v3"`. */
export const versionTag = (n: number) => `"v${n}"`;

/** What If-Match said: nothing, `*`, or a list of entity tags (weak ones never match: strong comparison). */
export type IfMatch = null | "*" | readonly string[];

/** Throws precondition-required without If-Match, precondition-failed unless it names the current version. */
function checkIfMatch(ifMatch: IfMatch, current: number): void {
  if (ifMatch === null) {
    throw new AppError("precondition-required", `send If-Match with the current version's ETag (${versionTag(current)}), from GET, so a change never overwrites one you have not seen`);
  }
  if (ifMatch === "*" || ifMatch.includes(versionTag(current))) return;
  throw new AppError("precondition-failed", `the breach is at version ${current} (ETag ${versionTag(current)}), not the one If-Match names; read it again and re-apply your change`);
}

// ---------------------------------------------------------------------------------------------------------------
// Building a version

const invalid = (errors: FieldError[]) => new AppError("validation-failed", errors.length === 1 ? `${errors[0]!.path} ${errors[0]!.message}` : "the breach is not valid; see errors", { errors });

/** Reads what a tenant's scope entry names and comes to. Upload ids that are not the tenant's are refused (422). */
async function resolveScope(s: Services, entry: ScopeEntry, index: number): Promise<ResolvedScope> {
  const personCategories = [...(entry.personCategories ?? DEFAULT_PERSON_CATEGORIES)];
  const categories = new Set<DataCategory>(entry.categories);
  if (!entry.uploads) {
    return { categories: [...categories].sort(), personCategories, approximatePersons: entry.approximatePersons ?? null, approximateRecords: entry.approximateRecords ?? null, uploadsFound: null };
  }
  const ids = [...new Set(entry.uploads)];
  const docs: Array<Awaited<ReturnType<Services["uploads"]["get"]>>> = [];
  for (let i = 0; i < ids.length; i += 16) docs.push(...(await Promise.all(ids.slice(i, i + 16).map((id) => s.uploads.get(entry.tenantId, id)))));
  const missing = ids.map((id, i) => (docs[i] ? undefined : entry.uploads!.indexOf(id))).filter((i): i is number => i !== undefined);
  if (missing.length > 0) {
    throw invalid(missing.slice(0, 20).map((j) => ({ path: `scope.${index}.uploads.${j}`, message: "is not an upload of this tenant" })));
  }
  let persons = 0;
  for (const d of docs) {
    for (const c of d!.categories) categories.add(c);
    persons += (personCategories.includes("data-subjects") ? d!.subjectCount : 0) + (personCategories.includes("recipients") ? d!.recipientCount : 0) + (personCategories.includes("senders") ? 1 : 0);
  }
  return {
    categories: [...categories].sort(),
    personCategories,
    // At most: a person named in several uploads is counted in each (part 2 resolves persons exactly).
    approximatePersons: entry.approximatePersons ?? persons,
    approximateRecords: entry.approximateRecords ?? docs.length,
    uploadsFound: docs.length,
  };
}

async function assess(s: Services, fields: BreachFields, entry: ScopeEntry, index: number): Promise<TenantAssessment> {
  const resolved = await resolveScope(s, entry, index);
  const severity = assessSeverity({
    categories: resolved.categories,
    nature: fields.nature,
    malicious: fields.malicious,
    exposure: fields.exposure,
    overrides: fields.severityOverrides,
    dpcOverride: entry.dpcOverride ?? null,
  });
  const proposal = proposeNotices({
    assessment: severity,
    policy: fields.proposalPolicy ?? DEFAULT_PROPOSAL_POLICY,
    nature: fields.nature,
    exposure: fields.exposure,
    measuresRemovedHighRisk: fields.measuresRemovedHighRisk,
    disproportionateEffort: fields.disproportionateEffort,
    approximatePersons: resolved.approximatePersons,
    emailSendsPerHour: s.settings.emailSendsPerHour,
    noticeMaxHours: s.settings.breachNoticeMaxHours,
  });
  return { tenantId: entry.tenantId, resolved, severity, proposal };
}

/**
 * The checks across fields and against stored state: times (awareAt not in the future, ...), the tenants in scope
 * (existing, not offboarded), and a reason for the delay when tenants who are still to be told can no longer be
 * told by the target. Throws validation-failed naming every problem's path.
 */
async function checkFields(s: Services, fields: BreachFields, now: Date, toBeTold: readonly string[]): Promise<void> {
  const errors: FieldError[] = breachFieldProblems(fields, now).map(([path, message]) => ({ path, message }));
  if (toBeTold.length > 0 && controllerNoticeDelayRequired(new Date(fields.awareAt), s.settings.breachControllerNoticeHours, now) && !fields.controllerNoticeDelayReason) {
    errors.push({
      path: "controllerNoticeDelayReason",
      message: `is required: the controllers cannot be told within ${s.settings.breachControllerNoticeHours} hours of awareAt any more; say why (GDPR Art. 33(2): without undue delay)`,
    });
  }
  const tenants = await Promise.all(fields.scope.map((e) => s.tenants.get(e.tenantId)));
  tenants.forEach((t, i) => {
    if (!t) errors.push({ path: `scope.${i}.tenantId`, message: "names no tenant" });
    else if (t.offboardedAt) errors.push({ path: `scope.${i}.tenantId`, message: "names a tenant that was offboarded: its contact details are gone; tell the controller by other means and record it here without this tenant" });
  });
  if (errors.length > 0) throw invalid(errors);
}

async function buildVersion(s: Services, breachId: string, n: number, fields: BreachFields, by: OperatorActor, changes: string[]): Promise<BreachVersionDoc> {
  const assessments: TenantAssessment[] = [];
  for (let i = 0; i < fields.scope.length; i += 8) {
    assessments.push(...(await Promise.all(fields.scope.slice(i, i + 8).map((e, j) => assess(s, fields, e, i + j)))));
  }
  return {
    id: `${breachId}.v${n}`,
    tenantId: SYSTEM_TENANT,
    type: "breach-version",
    breachId,
    n,
    at: s.clock.now().toISOString(),
    by: by.actor,
    requestId: by.requestId ?? null,
    changes,
    fields,
    assessments,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Views

export interface OperatorBreachView {
  id: string;
  status: BreachStatus;
  version: number;
  etag: string;
  origin: BreachOrigin;
  createdAt: string;
  updatedAt: string;
  createdBy: string;
  confirmation: BreachHeadDoc["confirmation"];
  dismissal: BreachHeadDoc["dismissal"];
  current: BreachFields;
  assessments: TenantAssessment[];
  tenants: Array<{
    tenantId: string;
    inScope: boolean;
    /** The tenant's clocks: from its part once made, else from the current version (nobody told yet). */
    clocks: { controllerNotice: ControllerNoticeClock; authority: AuthorityClock };
    part: null | {
      status: BreachPartDoc["status"];
      version: number;
      controllerNotifiedAt: string | null;
      controllerNotifiedVia: BreachPartDoc["controllerNotifiedVia"];
      acknowledgedAt: string | null;
      notice: { version: number; emailAcceptedAt: string | null; emailAttempts: number; emailLastFailure: string | null; webhook: string; pending: boolean } | null;
      decision: BreachPartDoc["decisions"][number] | null;
      /** The persons of the part's newest resolved version (GDPR Art. 34): counts only, nothing personal; null before the first resolution. */
      persons: OperatorPersonsProgress | null;
    };
  }>;
  versions: Array<{ version: number; at: string; by: string; changes: string[] }>;
}

/**
 * The operator's view of a part's persons: the scope resolution's counts (`resolved`: distinct persons found by keyed
 * hash; `unreachable`: at most, from purged records' own counts) and, once the tenant instructed the notices, sent /
 * pending / failed / unreachable and the estimated completion (ISO 8601) against BREACH_NOTICE_MAX_HOURS. Counts,
 * times and states only: no person, address, text or actor.
 */
export interface OperatorPersonsProgress {
  version: number;
  resolution: { status: "running" | "done"; records: number; resolved: number; unreachable: number; batches: number; finishedAt: string | null };
  notices: null | (Pick<
    NonNullable<PersonsView["notices"]>,
    "requestedAt" | "sent" | "pending" | "failed" | "unreachable" | "estimatedCompletionAt" | "deadlineAt" | "estimateBreaksDeadline" | "stoppedAt" | "stoppedReason" | "notTold" | "completedAt"
  > & { delayAlertAt: string | null });
}

function operatorPersons(v: PersonsView | null): OperatorPersonsProgress | null {
  if (!v) return null;
  const r = v.resolution;
  const n = v.notices;
  return {
    version: v.version,
    resolution: { status: r.status, records: r.records, resolved: r.persons, unreachable: r.unreachable, batches: r.batches, finishedAt: r.finishedAt },
    notices: n
      ? {
          requestedAt: n.requestedAt,
          sent: n.sent,
          pending: n.pending,
          failed: n.failed,
          unreachable: n.unreachable,
          estimatedCompletionAt: n.estimatedCompletionAt,
          deadlineAt: n.deadlineAt,
          estimateBreaksDeadline: n.estimateBreaksDeadline,
          stoppedAt: n.stoppedAt,
          stoppedReason: n.stoppedReason,
          notTold: n.notTold,
          delayAlertAt: n.delayAlert?.at ?? null,
          completedAt: n.completedAt,
        }
      : null,
  };
}

function clocksOf(s: Services, part: BreachPartDoc, now: Date) {
  const c = latestContent(part);
  const aware = new Date(c.awareAt);
  const told = part.controllerNotifiedAt ? new Date(part.controllerNotifiedAt) : null;
  const firstAuthority = part.authorityNotifications[0];
  return {
    controllerNotice: controllerNoticeClock(aware, s.settings.breachControllerNoticeHours, told, now),
    authority: authorityClock(aware, told, { notifiedAt: firstAuthority ? new Date(firstAuthority.notifiedAt) : null, notNotified: part.noAuthorityNotification !== null }, now),
  };
}

async function operatorView(s: Services, head: BreachHeadDoc, version: BreachVersionDoc): Promise<OperatorBreachView> {
  const now = s.clock.now();
  const tenants = await Promise.all(
    head.everTenants.map(async (tenantId) => {
      const part = head.status === "draft" ? undefined : await s.breaches.getPart(tenantId, head.id);
      const notice = part?.notices.at(-1);
      const aware = new Date(version.fields.awareAt);
      return {
        tenantId,
        inScope: head.tenants.includes(tenantId),
        clocks: part
          ? clocksOf(s, part, now)
          : {
              controllerNotice: controllerNoticeClock(aware, s.settings.breachControllerNoticeHours, null, now),
              authority: authorityClock(aware, null, { notifiedAt: null, notNotified: false }, now),
            },
        part: part
          ? {
              status: part.status,
              version: latestVersion(part).n,
              controllerNotifiedAt: part.controllerNotifiedAt,
              controllerNotifiedVia: part.controllerNotifiedVia,
              acknowledgedAt: part.acknowledgedAt,
              notice: notice
                ? {
                    version: notice.version,
                    emailAcceptedAt: notice.emailAcceptedAt,
                    emailAttempts: notice.emailAttempts,
                    emailLastFailure: notice.emailLastFailure,
                    webhook: notice.webhook,
                    pending: part.pendingNotice !== null,
                  }
                : null,
              decision: part.decisions.at(-1) ?? null,
              persons: operatorPersons(await personsView(s, part)),
            }
          : null,
      };
    }),
  );
  return {
    id: head.id,
    status: head.status,
    version: head.version,
    etag: versionTag(head.version),
    origin: head.origin,
    createdAt: head.createdAt,
    updatedAt: head.updatedAt,
    createdBy: head.createdBy,
    confirmation: head.confirmation,
    dismissal: head.dismissal,
    current: version.fields,
    assessments: version.assessments,
    tenants,
    versions: (await s.breaches.listVersions(head.id)).map((v) => ({ version: v.n, at: v.at, by: v.by, changes: v.changes })),
  };
}

export interface TenantBreachView {
  id: string;
  status: BreachPartDoc["status"];
  version: number;
  createdAt: string;
  updatedAt: string;
  current: TenantContent;
  severity: SeverityAssessment | null;
  proposal: Proposal | null;
  clocks: { controllerNotice: ControllerNoticeClock; authority: AuthorityClock };
  controllerNotifiedVia: BreachPartDoc["controllerNotifiedVia"];
  notices: Array<{ version: number; eventType: string; createdAt: string; emailAcceptedAt: string | null; webhook: string; webhookDeliveredAt: string | null; superseded: boolean }>;
  acknowledgedAt: string | null;
  decision: BreachPartDoc["decisions"][number] | null;
  decisions: BreachPartDoc["decisions"];
  authorityNotifications: BreachPartDoc["authorityNotifications"];
  noAuthorityNotification: BreachPartDoc["noAuthorityNotification"];
  versions: Array<{ version: number; at: string; changes: string[]; content: TenantContent | null; severity: SeverityAssessment | null; proposal: Proposal | null }>;
}

export interface TenantBreachSummary {
  id: string;
  status: BreachPartDoc["status"];
  version: number;
  awareAt: string;
  band: SeverityAssessment["band"] | null;
  controllerNotice: ControllerNoticeClock["status"];
  authority: AuthorityClock["status"];
  authorityDeadlineAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const lastSeverity = (part: BreachPartDoc) => [...part.versions].reverse().find((v) => v.severity);

/** The tenant's own part as it sees it. Nothing in it names another tenant or tells how many there are. */
export function tenantView(s: Services, part: BreachPartDoc): TenantBreachView {
  const assessed = lastSeverity(part);
  return {
    id: part.breachId,
    status: part.status,
    version: latestVersion(part).n,
    createdAt: part.createdAt,
    updatedAt: part.updatedAt,
    current: latestContent(part),
    severity: assessed?.severity ?? null,
    proposal: assessed?.proposal ?? null,
    clocks: clocksOf(s, part, s.clock.now()),
    controllerNotifiedVia: part.controllerNotifiedVia,
    notices: part.notices.map(({ version, eventType, createdAt, emailAcceptedAt, webhook, webhookDeliveredAt, superseded }) => ({ version, eventType, createdAt, emailAcceptedAt, webhook, webhookDeliveredAt, superseded })),
    acknowledgedAt: part.acknowledgedAt,
    decision: part.decisions.at(-1) ?? null,
    decisions: part.decisions,
    authorityNotifications: part.authorityNotifications,
    noAuthorityNotification: part.noAuthorityNotification,
    versions: part.versions.map((v) => ({ version: v.n, at: v.at, changes: v.changes, content: v.content, severity: v.severity, proposal: v.proposal })),
  };
}

function summary(s: Services, part: BreachPartDoc): TenantBreachSummary {
  const clocks = clocksOf(s, part, s.clock.now());
  return {
    id: part.breachId,
    status: part.status,
    version: latestVersion(part).n,
    awareAt: latestContent(part).awareAt,
    band: lastSeverity(part)?.severity?.band ?? null,
    controllerNotice: clocks.controllerNotice.status,
    authority: clocks.authority.status,
    authorityDeadlineAt: clocks.authority.deadlineAt,
    createdAt: part.createdAt,
    updatedAt: part.updatedAt,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The operator's register

async function mustGetHead(s: Services, id: string): Promise<StoredBreachHead> {
  const head = await s.breaches.getBreach(id);
  if (!head) throw new AppError("not-found", "no breach with this id");
  return head;
}

async function mustGetVersion(s: Services, id: string, n: number): Promise<BreachVersionDoc> {
  const v = await s.breaches.getVersion(id, n);
  if (!v) throw new Error(`breach ${id} names version ${n}, which is not stored`);
  return v;
}

/** The register entry with its current version, every tenant's progress and the version list. Errors: not-found. */
export async function getBreachForOperator(s: Services, id: string): Promise<OperatorBreachView> {
  const head = await mustGetHead(s, id);
  return operatorView(s, head, await mustGetVersion(s, id, head.version));
}

/** One stored version, as written. Errors: not-found. */
export async function getBreachVersion(s: Services, id: string, n: number): Promise<BreachVersionDoc> {
  await mustGetHead(s, id);
  const v = await s.breaches.getVersion(id, n);
  if (!v) throw new AppError("not-found", "no such version of this breach");
  return v;
}

export async function listBreachesForOperator(s: Services, opts: { status?: BreachStatus; limit: number; cursor?: string }): Promise<{ items: Array<Pick<BreachHeadDoc, "id" | "status" | "version" | "createdAt" | "updatedAt" | "origin"> & { tenants: number }>; nextCursor?: string }> {
  const page: Page<BreachHeadDoc> = await s.breaches.listBreaches(opts);
  return { items: page.items.map((h) => ({ id: h.id, status: h.status, version: h.version, createdAt: h.createdAt, updatedAt: h.updatedAt, origin: h.origin, tenants: h.tenants.length })), nextCursor: page.cursor };
}

/**
 * Registers a breach: version 1, assessed per tenant, then each tenant's part is made and notified by its job.
 * Errors: validation-failed (times, texts, tenants, upload ids, a missing delay reason).
 */
export async function createBreach(s: Services, fields: BreachFields, by: OperatorActor): Promise<OperatorBreachView> {
  const now = s.clock.now();
  const tenants = fields.scope.map((e) => e.tenantId);
  await checkFields(s, fields, now, tenants);
  const id = newBreachId();
  const version = await buildVersion(s, id, 1, fields, by, Object.keys(fields).sort());
  const head: BreachHeadDoc = {
    id,
    tenantId: SYSTEM_TENANT,
    type: "breach",
    status: "open",
    version: 1,
    tenants,
    everTenants: tenants,
    propagatedVersion: 0,
    origin: { kind: "operator" },
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    createdBy: by.actor,
    confirmation: null,
    dismissal: null,
  };
  if (!(await s.breaches.createVersion(version)) || !(await s.breaches.createBreach(head))) throw new Error("a new breach id was taken");
  for (const tenantId of tenants) await queueTenantSync(s, id, tenantId);
  return operatorView(s, head, version);
}

/** The current version's fields with `patch` applied: fields replaced, scope entries replaced or added, tenants removed. */
function applyPatch(current: BreachFields, patch: BreachPatch): BreachFields {
  const { scope, removeFromScope, ...rest } = patch;
  const merged: BreachFields = { ...current, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) };
  let entries = current.scope.filter((e) => !(removeFromScope ?? []).includes(e.tenantId));
  for (const e of scope ?? []) {
    const i = entries.findIndex((x) => x.tenantId === e.tenantId);
    entries = i >= 0 ? entries.map((x, j) => (j === i ? e : x)) : [...entries, e];
  }
  return { ...merged, scope: entries };
}

/**
 * Moves the head to `version` (written already), under its etag, re-reading on contention. A head found behind a
 * stored version (a change that crashed between the two writes) is moved forward the same way.
 */
async function advanceHead(s: Services, head: StoredBreachHead, next: Partial<BreachHeadDoc> & { version: number }): Promise<BreachHeadDoc> {
  let doc: StoredBreachHead | undefined = head;
  for (let attempt = 0; attempt < 5 && doc; attempt++) {
    if (doc.version > next.version) return doc;
    const tenants = next.tenants ?? doc.tenants;
    const updated: BreachHeadDoc = { ...withoutMeta(doc), ...next, tenants, everTenants: [...new Set([...doc.everTenants, ...tenants])], updatedAt: s.clock.now().toISOString() };
    if (await s.breaches.replaceBreach(updated, doc._etag)) return updated;
    doc = await s.breaches.getBreach(head.id);
  }
  throw new AppError("conflict", "the breach was changed by another request meanwhile; retry");
}

/** A change that crashed after writing its version but before moving the head is finished before anything else. */
async function repairHead(s: Services, head: StoredBreachHead): Promise<StoredBreachHead> {
  const ahead = await s.breaches.getVersion(head.id, head.version + 1);
  if (!ahead) return head;
  await advanceHead(s, head, { version: ahead.n, tenants: ahead.fields.scope.map((e) => e.tenantId) });
  if (head.status === "open") for (const t of new Set([...head.everTenants, ...ahead.fields.scope.map((e) => e.tenantId)])) await queueTenantSync(s, head.id, t);
  return (await s.breaches.getBreach(head.id))!;
}

/**
 * PATCH: a new version with `patch` applied, when If-Match names the current one. Earlier versions stay. Each
 * affected tenant (and each tenant taken out of the scope) gets the change through its job, as a new version of its
 * own part when its part changed. A patch that changes nothing makes no version. Errors: not-found,
 * precondition-required (no If-Match), precondition-failed (stale), conflict (dismissed), validation-failed.
 */
export async function patchBreach(s: Services, id: string, ifMatch: IfMatch, patch: BreachPatch, by: OperatorActor): Promise<OperatorBreachView> {
  const head = await repairHead(s, await mustGetHead(s, id));
  checkIfMatch(ifMatch, head.version);
  if (head.status === "dismissed") throw new AppError("conflict", "the breach was dismissed; register a new one if it turns out to be a breach after all");
  const current = await mustGetVersion(s, id, head.version);
  const fields = applyPatch(current.fields, patch);
  const changes = changedFields(current.fields as unknown as Record<string, unknown>, fields as unknown as Record<string, unknown>);
  if (changes.length === 0) return operatorView(s, head, current);
  const now = s.clock.now();
  const added = fields.scope.map((e) => e.tenantId).filter((t) => !head.everTenants.includes(t));
  await checkFields(s, fields, now, head.status === "open" ? added : []);
  const version = await buildVersion(s, id, head.version + 1, fields, by, changes);
  if (!(await s.breaches.createVersion(version))) {
    throw new AppError("precondition-failed", `another change made version ${head.version + 1} first; read the breach again and re-apply your change`);
  }
  const moved = await advanceHead(s, head, { version: version.n, tenants: fields.scope.map((e) => e.tenantId) });
  if (moved.status === "open") for (const tenantId of moved.everTenants) await queueTenantSync(s, id, tenantId);
  return operatorView(s, moved, version);
}

/**
 * What drafts opened by an alarm once said to the operator inside their description, which the tenants read once the
 * draft is confirmed. The description now holds only what happened; the operator's view of a draft (status `draft`)
 * says what to do.
 */
const DRAFT_INSTRUCTION = "Opened automatically as a draft: confirm it if personal data was, or may have been, affected, or dismiss it with the reason.";

/**
 * Confirms a draft (an alarm's): it becomes an open breach from a new version whose awareAt is the alarm's time
 * unless the operator names a later one (a short investigation is allowed, EDPB 9/2022), and its tenants are told.
 * Errors: not-found, conflict (not a draft), validation-failed.
 */
export async function confirmDraft(s: Services, id: string, input: { reason: string; awareAt?: string; controllerNoticeDelayReason?: string | null }, by: OperatorActor): Promise<OperatorBreachView> {
  const head = await repairHead(s, await mustGetHead(s, id));
  if (head.status !== "draft") throw new AppError("conflict", `the breach is ${head.status}, not a draft`);
  const current = await mustGetVersion(s, id, head.version);
  const detectedAt = head.origin.kind === "anchor-alarm" ? head.origin.detectedAt : current.fields.awareAt;
  if (input.awareAt && input.awareAt < detectedAt) {
    throw invalid([{ path: "awareAt", message: "must not be before the alarm was raised" }]);
  }
  const fields: BreachFields = {
    ...current.fields,
    // Drafts opened before the operator's instruction was kept out of the description lose it now: the tenants read it.
    description: current.fields.description.replace(` ${DRAFT_INSTRUCTION}`, "").replace(DRAFT_INSTRUCTION, "") || current.fields.description,
    awareAt: input.awareAt ?? detectedAt,
    ...(input.controllerNoticeDelayReason !== undefined ? { controllerNoticeDelayReason: input.controllerNoticeDelayReason } : {}),
  };
  const now = s.clock.now();
  await checkFields(s, fields, now, fields.scope.map((e) => e.tenantId));
  const version = await buildVersion(s, id, head.version + 1, fields, by, [...new Set(["status", ...changedFields(current.fields as unknown as Record<string, unknown>, fields as unknown as Record<string, unknown>)])].sort());
  if (!(await s.breaches.createVersion(version))) throw new AppError("conflict", "the draft was changed by another request meanwhile; retry");
  const moved = await advanceHead(s, head, { version: version.n, tenants: fields.scope.map((e) => e.tenantId), status: "open", confirmation: { at: now.toISOString(), by: by.actor, reason: input.reason } });
  for (const tenantId of moved.everTenants) await queueTenantSync(s, id, tenantId);
  return operatorView(s, moved, version);
}

/** Dismisses a draft with the reason (kept in the register: Art. 33(5)). Errors: not-found, conflict (not a draft). */
export async function dismissDraft(s: Services, id: string, input: { reason: string }, by: OperatorActor): Promise<OperatorBreachView> {
  const head = await mustGetHead(s, id);
  if (head.status !== "draft") throw new AppError("conflict", `the breach is ${head.status}, not a draft`);
  const moved = await advanceHead(s, head, { version: head.version, status: "dismissed", dismissal: { at: s.clock.now().toISOString(), by: by.actor, reason: input.reason } });
  return operatorView(s, moved, await mustGetVersion(s, id, head.version));
}

/** What the audit-anchor check found (shared/usecases/audit-anchoring.ts). */
export interface AnchorAlarm {
  tenantId: string;
  reason: string;
  anchoredSeq: number | null;
  anchoredAt: string | null;
  headSeq: number | null;
  /** The hash the alarm is about (the anchored one, or the head's): with the reason and sequence numbers, it names the alarm. */
  evidence: string;
  detectedAt: Date;
}

/**
 * Opens the draft integrity breach of an anchor alarm, once per alarm: its id derives from the tenant and the anchor
 * (or head) concerned, so later runs that find the same broken state name the same draft, also when the chain has
 * grown over the break meanwhile (a later, different break opens another). Returns the draft's id and whether this call opened it.
 */
export async function openAnchorAlarmDraft(s: Services, alarm: AnchorAlarm): Promise<{ id: string; opened: boolean }> {
  // The alarm is the anchor it violates (its sequence number and hash), whichever way the chain now disagrees with
  // it (behind it, or changed up to it), or the head document that disagrees with its entry.
  const what = alarm.reason === "head-disagrees-with-entry" ? `head\n${alarm.headSeq}` : `anchor\n${alarm.anchoredSeq}`;
  const id = "br-" + createHash("sha256").update(`anchor-alarm\n${alarm.tenantId}\n${what}\n${alarm.evidence}`).digest("hex").slice(0, 20);
  const existing = await s.breaches.getBreach(id);
  if (existing) return { id, opened: false };
  const detected = alarm.detectedAt.toISOString();
  const from = alarm.anchoredAt && alarm.anchoredAt < detected ? alarm.anchoredAt : new Date(alarm.detectedAt.getTime() - 3_600_000).toISOString();
  const fields: BreachFields = {
    awareAt: detected,
    occurredFrom: null,
    occurredTo: null,
    nature: { confidentiality: "not-affected", integrity: "altered-no-evidence-of-misuse", availability: "not-affected" },
    malicious: false,
    description:
      `The hourly audit-anchor check found a tenant's audit chain no longer agreeing with the anchors written outside the database (${alarm.reason}; ` +
      `anchored entry ${alarm.anchoredSeq ?? "none"}, chain head ${alarm.headSeq ?? "none"}). Entries may have been removed or rewritten by someone with write access to the database.`,
    cause: `Not known yet: found by the audit-anchor tamper check (${alarm.reason}).`,
    consequences: null,
    likelyConsequences: null,
    measuresTaken: null,
    measuresProposed: null,
    measuresBefore: null,
    measuresLimiting: null,
    followUp: null,
    exposure: null,
    measuresRemovedHighRisk: null,
    disproportionateEffort: null,
    severityOverrides: {},
    proposalPolicy: null,
    controllerNoticeDelayReason: null,
    scope: [{ tenantId: alarm.tenantId, window: { from, to: detected }, categories: [] }],
  };
  const by: OperatorActor = { actor: "system:audit-anchor", requestId: "" };
  const version = await buildVersion(s, id, 1, fields, by, Object.keys(fields).sort());
  const head: BreachHeadDoc = {
    id,
    tenantId: SYSTEM_TENANT,
    type: "breach",
    status: "draft",
    version: 1,
    tenants: [alarm.tenantId],
    everTenants: [alarm.tenantId],
    propagatedVersion: 0,
    origin: { kind: "anchor-alarm", alarmTenantId: alarm.tenantId, reason: alarm.reason, anchoredSeq: alarm.anchoredSeq, headSeq: alarm.headSeq, detectedAt: detected },
    createdAt: detected,
    updatedAt: detected,
    createdBy: by.actor,
    confirmation: null,
    dismissal: null,
  };
  // Version first, then the head: a crash between them leaves a version the next run's create skips over.
  await s.breaches.createVersion({ ...version, requestId: null });
  return { id, opened: await s.breaches.createBreach(head) };
}

// ---------------------------------------------------------------------------------------------------------------
// The tenant's side

async function mustGetPart(s: Services, caller: TenantCaller, id: string): Promise<StoredBreachPart> {
  const part = await s.breaches.getPart(caller.tenantId, id);
  // Another tenant's breach, a draft and an unknown id look the same.
  if (!part) throw new AppError("not-found", "no breach with this id affects you");
  return part;
}

export async function listMyBreaches(s: Services, caller: TenantCaller, opts: { limit: number; cursor?: string }): Promise<{ items: TenantBreachSummary[]; nextCursor?: string }> {
  const page = await s.breaches.listParts(caller.tenantId, opts);
  return { items: page.items.map((p) => summary(s, p)), nextCursor: page.cursor };
}

/** The tenant's part, with its persons (resolution, notices sent / pending / failed and the estimate: breach-persons.ts). */
export async function getMyBreach(s: Services, caller: TenantCaller, id: string): Promise<TenantBreachView & { persons: PersonsView | null }> {
  const part = await mustGetPart(s, caller, id);
  return { ...tenantView(s, part), persons: await personsView(s, part) };
}

/** A write to the tenant's part; `change` may throw to refuse. Errors: not-found, conflict (contended). */
async function changePart(s: Services, caller: TenantCaller, id: string, change: (doc: StoredBreachPart) => BreachPartDoc | undefined): Promise<StoredBreachPart> {
  const r = await s.breaches.updatePart(caller.tenantId, id, change);
  if (r.updated || r.reason === "unchanged") return r.doc!;
  if (r.reason === "not-found") throw new AppError("not-found", "no breach with this id affects you");
  throw new AppError("conflict", "the breach was changed by another request meanwhile; retry");
}

const mustBeOpen = (doc: BreachPartDoc) => {
  if (doc.status === "withdrawn") throw new AppError("conflict", "you are no longer in this breach's scope (see its newest version); there is nothing to decide");
};

/**
 * The tenant confirms it has the notice. Recorded once (a repeat answers the same). If neither the e-mail nor the
 * webhook had arrived yet, the acknowledgement is when the controller became aware.
 */
export async function acknowledgeBreach(s: Services, caller: TenantCaller, id: string): Promise<TenantBreachView> {
  const now = s.clock.now().toISOString();
  const part = await changePart(s, caller, id, (doc) =>
    doc.acknowledgedAt
      ? undefined
      : {
          ...withoutMeta(doc),
          acknowledgedAt: now,
          acknowledgedBy: caller.actor,
          ...(doc.controllerNotifiedAt ? {} : { controllerNotifiedAt: now, controllerNotifiedVia: "acknowledgement" as const }),
        },
  );
  await recordAuditOnce(s, caller.tenantId, caller, "breach.acknowledged", { type: "breach", id }, { breachId: id, version: latestVersion(part).n }, `breach:${id}:acknowledged`);
  await afterControllerNotified(s, part);
  return tenantView(s, part);
}

/**
 * A decision the stored facts contradict, as the conflict to refuse it with, or undefined. The report to the
 * authority (Art. 33(3), 34) states the newest decision, so it must not say what was not done:
 * - not to tell the persons (`notifyPersons: false`, with or without an Art. 34(3) exemption) of a version whose
 *   notices the tenant already instructed (they are being, or were, told), unless it cancelled them (then deciding not
 *   to tell them, e.g. a public communication instead under Art. 34(3)(c), is what it did; the report shows what
 *   was sent before the cancellation);
 * - not to notify the authority when a notification to it is recorded (as recordNoAuthorityNotification refuses).
 * Telling the persons, or notifying the authority, after a decision not to is allowed: the report then names the
 * contradiction (breach-report.ts).
 */
function contradictedDecision(doc: BreachPartDoc, version: number, input: DecisionInput): string | undefined {
  if (!input.notifyPersons && doc.persons?.notify && doc.persons.version === version && doc.persons.stopped?.reason !== "cancelled") {
    return (
      `the notices to the persons of version ${version} were instructed on ${doc.persons.notify.requestedAt}: a decision that they are not told ` +
      "would contradict what was done (GDPR Art. 34); record a decision with notifyPersons: true, or explain in a public communication (POST .../public-communication)"
    );
  }
  if (!input.notifyAuthority && doc.authorityNotifications.length > 0) {
    return `the authority was notified on ${doc.authorityNotifications[0]!.notifiedAt}: a decision not to notify it would contradict that record (GDPR Art. 33(5))`;
  }
  return undefined;
}

/**
 * The tenant's decision on the proposal (the controller decides: Art. 33(1), 34(1)), with its reasons, made on its
 * current version. Persons are told only on the tenant's instruction, never by the decision itself. Each decision is
 * kept; the newest counts. Errors: not-found, conflict (withdrawn; a decision the stored facts contradict:
 * contradictedDecision).
 */
export async function decideBreach(s: Services, caller: TenantCaller, id: string, input: DecisionInput): Promise<TenantBreachView> {
  const now = s.clock.now().toISOString();
  const part = await changePart(s, caller, id, (doc) => {
    mustBeOpen(doc);
    const contradiction = contradictedDecision(doc, latestVersion(doc).n, input);
    if (contradiction) throw new AppError("conflict", contradiction);
    return { ...withoutMeta(doc), decisions: [...doc.decisions, { at: now, by: caller.actor, version: latestVersion(doc).n, ...input }].slice(-50), updatedAt: now };
  });
  const v = latestVersion(part);
  await recordAudit(s, caller.tenantId, caller, "breach.decision-recorded", { type: "breach", id }, {
    breachId: id,
    version: v.n,
    notifyAuthority: input.notifyAuthority,
    notifyPersons: input.notifyPersons,
    exemption: input.exemption,
    followsProposal: v.proposal ? v.proposal.notifyAuthority.proposed === input.notifyAuthority && v.proposal.notifyPersons.proposed === input.notifyPersons : null,
  });
  return tenantView(s, part);
}

/**
 * The earliest time a notification to the authority can have been made: not before the breach became known (its
 * awareAt), nor before this controller was told of it (Art. 33(1): its 72 hours run from its awareness, which comes
 * from the processor's notice: EDPB Guidelines 9/2022), nor, for a supplementary one (Art. 33(4): in
 * phases), before the first, nor before EARLIEST_FACT_TIME.
 */
function authorityNotificationFloor(doc: BreachPartDoc): { at: string; what: string } {
  let floor = { at: EARLIEST_FACT_TIME, what: EARLIEST_FACT_TIME.slice(0, 10) };
  const later = (at: string | null | undefined, what: string) => {
    if (at && Date.parse(at) > Date.parse(floor.at)) floor = { at, what };
  };
  later(latestContent(doc).awareAt, "the breach became known");
  later(doc.controllerNotifiedAt, "you were told of the breach");
  later(doc.authorityNotifications[0]?.notifiedAt, "the first notification to the authority");
  return floor;
}

/**
 * Records the tenant's notification to the supervisory authority (the first, and any supplementary one in phases).
 * The first one later than 72 hours after the controller was told needs the reasons for the delay (Art. 33(1));
 * without them it is refused. One that claims to be in time but is recorded only after the deadline passed also
 * needs a reason, and is kept flagged `recordedAfterDeadline` (Art. 33(5): the documentation must let the authority
 * verify compliance; a claim made after the fact is shown as such). `notifiedAt` must not be before
 * authorityNotificationFloor. Errors: not-found, conflict (withdrawn), validation-failed.
 */
export async function recordAuthorityNotification(s: Services, caller: TenantCaller, id: string, input: AuthorityNotificationInput): Promise<TenantBreachView> {
  const now = s.clock.now();
  const claimed = Date.parse(input.notifiedAt);
  if (claimed > now.getTime()) throw invalid([{ path: "notifiedAt", message: "must not be in the future" }]);
  let late = false;
  let recordedAfterDeadline = false;
  const part = await changePart(s, caller, id, (doc) => {
    mustBeOpen(doc);
    const floor = authorityNotificationFloor(doc);
    if (claimed < Date.parse(floor.at)) throw invalid([{ path: "notifiedAt", message: `must not be before ${floor.what} (${floor.at})` }]);
    const first = doc.authorityNotifications.length === 0;
    const controllerNotifiedAt = doc.controllerNotifiedAt ? new Date(doc.controllerNotifiedAt) : null;
    late = first && isLateAuthorityNotification(new Date(input.notifiedAt), controllerNotifiedAt);
    recordedAfterDeadline = first && !late && isLateAuthorityNotification(now, controllerNotifiedAt);
    if (late && !input.delayReason) {
      throw invalid([
        {
          path: "delayReason",
          message: `is required: the notification is later than 72 hours after you were told of the breach (${doc.controllerNotifiedAt}); GDPR Art. 33(1) asks for the reasons for the delay`,
        },
      ]);
    }
    if (recordedAfterDeadline && !input.delayReason) {
      throw invalid([
        {
          path: "delayReason",
          message: `is required: the 72-hour deadline (${authorityDeadline(controllerNotifiedAt)!.toISOString()}) has passed and the notification is recorded only now; say why (GDPR Art. 33(5): the record must let the authority verify compliance)`,
        },
      ]);
    }
    return {
      ...withoutMeta(doc),
      authorityNotifications: [
        ...doc.authorityNotifications,
        { recordedAt: now.toISOString(), by: caller.actor, notifiedAt: input.notifiedAt, method: input.method, reference: input.reference, delayReason: input.delayReason, late, recordedAfterDeadline },
      ].slice(-50),
      updatedAt: now.toISOString(),
    };
  });
  await recordAudit(s, caller.tenantId, caller, "breach.authority-notified", { type: "breach", id }, {
    breachId: id,
    notifiedAt: input.notifiedAt,
    method: input.method,
    late,
    recordedAfterDeadline,
    supplementary: part.authorityNotifications.length > 1,
  });
  await keepDeadlines(s, part);
  return tenantView(s, part);
}

/**
 * Records the tenant's decision not to notify the authority, with the reason (the breach is unlikely to result in a
 * risk: Art. 33(1); documented: Art. 33(5)). Errors: not-found, conflict (withdrawn, already notified, already
 * recorded).
 */
export async function recordNoAuthorityNotification(s: Services, caller: TenantCaller, id: string, input: { reason: string }): Promise<TenantBreachView> {
  const now = s.clock.now().toISOString();
  const part = await changePart(s, caller, id, (doc) => {
    mustBeOpen(doc);
    if (doc.authorityNotifications.length > 0) throw new AppError("conflict", "the authority was notified already; that record stands");
    if (doc.noAuthorityNotification) throw new AppError("conflict", "a decision not to notify the authority is recorded already");
    return { ...withoutMeta(doc), noAuthorityNotification: { at: now, by: caller.actor, reason: input.reason }, updatedAt: now };
  });
  await recordAudit(s, caller.tenantId, caller, "breach.authority-not-notified", { type: "breach", id }, { breachId: id, version: latestVersion(part).n });
  await keepDeadlines(s, part);
  return tenantView(s, part);
}
