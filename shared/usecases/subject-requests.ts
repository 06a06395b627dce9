/**
 * Data-subject requests (GDPR Chapter III; the data-processing agreement, clause 9.1: the processor assists the
 * controller with them): intake, the tenant's decisions (cancel, reject, extend, retry), the views and the list, the
 * `start` step, the request sweep, and the closed-request retention class. Verification (codes, links, vouching) is in
 * subject-request-verification.ts, the e-mails and the deadline clock in subject-request-notices.ts, the work queue
 * and the one way a request is changed in subject-request-steps.ts.
 *
 * The person's address is stored only as a keyed hash (to find them) and an encrypted field under the request's own
 * data key (to write to them); all free text a request carries is encrypted under that key too. Reads that decrypt
 * those fields are audited. Nothing here looks at another tenant: answers and their timing do not depend on whether an
 * address is known elsewhere.
 */
import { lookupHash, normaliseEmail } from "../crypto";
import { canonicalJson } from "../domain/audit-chain";
import { RETENTION_CLASSES } from "../domain/retention";
import {
  detailsProblem,
  dueAtFor,
  extensionLimitFor,
  isFinalStatus,
  isOpenStatus,
  legalDueAtFor,
  MAX_RESENDS,
  MAX_WRONG_TRIES,
  newRequestId,
  NO_DATA_ANSWERS,
  planExtension,
  rejectionGroundProblem,
  tenantMayDecide,
  type DsrDetails,
  type DsrStatus,
  type DsrType,
  type RejectionGround,
} from "../domain/subject-requests";
import { beforeEarliestFactTime, EARLIEST_FACT_TIME_MESSAGE } from "../domain/time";
import { maskEmail } from "../domain/uploads";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { ListFilter, MarkerDoc, RequestDoc, StoredMarker, StoredRequest } from "../stores/subject-request-store";
import { declareSweep } from "../sweeps";
import { recordAudit, recordAuditOnce, type TenantCaller } from "./audit-trail";
import { markerHasher, newRequestKey, openRequestField, sealRequestField, unwrapRequestKey, type RequestField } from "./subject-request-keys";
import {
  afterChange,
  changeRequest,
  defineStep,
  openMarkerId,
  registerSubjectDataSource,
  releaseOpenMarker,
  requeueLostSteps,
  subjectDataHeldBy,
  SYSTEM,
  typesWithWork,
  withEvent,
  withoutSteps,
  withStep,
  withTransition,
  workFor,
} from "./subject-request-steps";
import "./subject-request-notices";
import "./subject-request-verification";
import { summaryOf, tenantZone, type RequestSummary } from "./subject-request-views";

export type { RequestSummary };

const DAY_MS = 86_400_000;
/** A marker naming a request that does not exist (yet) is taken for one being created this long, then for a leftover. */
const MARKER_SETTLE_MS = 60_000;

const notFound = () => new AppError("not-found", "no subject request with this id");

// --- views ----------------------------------------------------------------------------------------------------------

/** One request with its decrypted fields (while its key exists), history and steps. */
export interface RequestView extends RequestSummary {
  subjectEmail: string | null;
  details: DsrDetails | null;
  externalId: string | null;
  lateReason: string | null;
  maxExtendedDueAt: string;
  extension: { at: string; reason: string | null } | null;
  rejection: { ground: RejectionGround; reason: string | null; at: string } | null;
  cancellation: { reason: string | null; at: string } | null;
  verificationDetail: { wrongTries: number; triesLeft: number; resends: number; resendsLeft: number; emailsSent: number };
  history: Array<{ at: string; event: string; from: DsrStatus | null; to: DsrStatus; by: string }>;
  steps: Array<{ name: string; attempts: number; lastError: string | null; parked: boolean }>;
  /** Its personal fields were erased at the end of its evidence period. */
  erasedAt: string | null;
}

// --- intake ---------------------------------------------------------------------------------------------------------

export interface CreateRequestInput {
  type: DsrType;
  subjectEmail: string;
  details?: DsrDetails;
  /** ISO 8601: when the tenant received the request (default: now). */
  receivedAt?: string;
  /** The tenant's own id for the request, unique per tenant. */
  externalId?: string;
  /** Required when the due date has already passed at receivedAt + 28 days. */
  lateReason?: string;
}

const invalid = (path: string, message: string) => new AppError("validation-failed", `${path}: ${message}`, { errors: [{ path, message }] });

/**
 * Records a request the tenant received (POST /api/v1/subject-requests) and queues the person's verification e-mail.
 * Returns `created: false` with the existing request when this is the same request again: the same `externalId` with
 * the same body, or an open request of the same subject, type and details (an unverified one that failed verification
 * never stands in the way: a new request is made). Errors: validation-failed (a future receivedAt; a late one without
 * lateReason; details that do not fit the type), conflict (the externalId names another request, or the same request
 * is being recorded right now).
 */
export async function createSubjectRequest(s: Services, caller: TenantCaller, input: CreateRequestInput, linkOrigin: string, log?: Log): Promise<{ created: boolean; request: RequestSummary }> {
  const now = s.clock.now();
  const tenant = await s.tenants.get(caller.tenantId);
  if (!tenant) throw notFound();
  const timeZone = tenant.timeZone;
  const receivedAt = input.receivedAt ? new Date(input.receivedAt) : now;
  if (receivedAt.getTime() > now.getTime()) throw invalid("receivedAt", "must not be in the future: the clock starts when the request was received (omit it for now)");
  if (beforeEarliestFactTime(receivedAt)) throw invalid("receivedAt", EARLIEST_FACT_TIME_MESSAGE);
  const dueAt = dueAtFor(receivedAt, timeZone);
  const late = dueAt.getTime() < now.getTime();
  if (late && input.lateReason === undefined) throw invalid("lateReason", "the due date (28 days after receipt) has passed: say why the request is recorded late");
  if (!late && input.lateReason !== undefined) throw invalid("lateReason", "is only for a request whose due date has already passed");
  const problem = detailsProblem(input.type, input.details);
  if (problem) throw invalid(problem.path, problem.message);

  const subjectHash = lookupHash(await s.keys.lookupSecret(caller.tenantId), normaliseEmail(input.subjectEmail));
  const hash = await markerHasher(s, caller.tenantId);
  const details = input.details ?? null;
  const fingerprint = hash("fingerprint", canonicalJson({ type: input.type, subjectHash, details, receivedAt: input.receivedAt ?? null, lateReason: input.lateReason ?? null }));
  const existing = (req: StoredRequest) => ({ created: false, request: summaryOf(req, now, timeZone) });

  // The same external id again: the first request, if the body is the same.
  const extId = input.externalId !== undefined ? `dsrm-${hash("external-id", input.externalId)}` : undefined;
  let extMarker: StoredMarker | undefined;
  if (extId) {
    extMarker = await s.subjectRequests.getMarker(caller.tenantId, extId);
    if (extMarker) {
      if (extMarker.fingerprint !== fingerprint) throw new AppError("conflict", "externalId names another request of this tenant, sent with a different body");
      const first = await s.subjectRequests.get(caller.tenantId, extMarker.requestId);
      if (first) return existing(first);
      if (now.getTime() - Date.parse(extMarker.createdAt) < MARKER_SETTLE_MS) throw new AppError("conflict", "this request is being recorded by another call; retry in a moment");
    }
  }

  // An identical open request: that one (unless verification failed for it: then a new one, so it blocks nothing).
  const openId = openMarkerId(hash, subjectHash, input.type, details);
  const openMarker = await s.subjectRequests.getMarker(caller.tenantId, openId);
  if (openMarker) {
    const current = await s.subjectRequests.get(caller.tenantId, openMarker.requestId);
    if (current && isOpenStatus(current.status) && current.status !== "verification-failed") {
      if (extId) await claimMarker(s, { id: extId, tenantId: caller.tenantId, kind: "external-id", requestId: current.id, fingerprint, now }, extMarker);
      return existing(current);
    }
    if (!current && now.getTime() - Date.parse(openMarker.createdAt) < MARKER_SETTLE_MS) throw new AppError("conflict", "this request is being recorded by another call; retry in a moment");
  }

  const id = newRequestId();
  if (extId) await claimMarker(s, { id: extId, tenantId: caller.tenantId, kind: "external-id", requestId: id, fingerprint, now }, extMarker);
  await claimMarker(s, { id: openId, tenantId: caller.tenantId, kind: "open", requestId: id, fingerprint: null, now }, openMarker);

  const { dataKey, wrapped } = await newRequestKey(s, caller.tenantId, id, tenant.kekVersion);
  const seal = (field: RequestField, value: string | undefined | null) => (value === undefined || value === null ? null : sealRequestField(dataKey, caller.tenantId, id, field, value));
  const verifyBy = new Date(now.getTime() + s.settings.dsrVerifyDays * DAY_MS).toISOString();
  let doc: RequestDoc = {
    id,
    tenantId: caller.tenantId,
    type: "subject-request",
    requestType: input.type,
    status: "awaiting-verification",
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    receivedAt: receivedAt.toISOString(),
    late,
    dueAt: dueAt.toISOString(),
    legalDueAt: legalDueAtFor(receivedAt, timeZone).toISOString(),
    originalDueAt: dueAt.toISOString(),
    extendedAt: null,
    subjectHash,
    externalIdHash: extId ? extId.slice("dsrm-".length) : null,
    openMarkerId: openId,
    dataKey: wrapped,
    personal: {
      email: seal("email", input.subjectEmail.trim())!,
      details: details ? seal("details", JSON.stringify(details)) : null,
      externalId: seal("externalId", input.externalId),
      lateReason: seal("lateReason", input.lateReason),
      vouchStatement: null,
      extensionReason: null,
      rejectionReason: null,
      cancellationReason: null,
    },
    verification: { method: null, verifiedAt: null, verifyBy, wrongTries: 0, resends: 0, requested: 1, sent: 0, issued: [], linkOrigin: linkOrigin.slice(0, 300) },
    rejection: null,
    cancelledAt: null,
    outcome: null,
    completedAt: null,
    closedAt: null,
    attention: null,
    steps: [],
    stepsCheckAt: null,
    stepSeq: 0,
    notices: [],
    history: [{ at: now.toISOString(), event: "created", from: null, to: "awaiting-verification", by: caller.actor, requestId: caller.requestId, details: { late, dueAt: dueAt.toISOString() } }],
    announced: 0,
    workState: {},
    erasedAt: null,
  };
  doc = withStep(withStep(doc, "announce", now), "verification-email", now);
  doc = { ...doc, stepsCheckAt: now.toISOString() };
  if (!(await s.subjectRequests.create(doc))) throw new AppError("conflict", "a request with this id exists; retry");
  const stored: StoredRequest = { ...doc, _etag: "" };
  await afterChange(s, undefined, stored, log);
  return { created: true, request: summaryOf(doc, now, timeZone) };
}

/** Creates the marker, or takes over a leftover one (it named a request that is closed, or that was never made). */
async function claimMarker(
  s: Services,
  m: { id: string; tenantId: string; kind: MarkerDoc["kind"]; requestId: string; fingerprint: string | null; now: Date },
  leftover: StoredMarker | undefined,
): Promise<void> {
  const doc: MarkerDoc = { id: m.id, tenantId: m.tenantId, type: "dsr-marker", kind: m.kind, requestId: m.requestId, fingerprint: m.fingerprint, createdAt: m.now.toISOString() };
  if (leftover?.requestId === m.requestId) return;
  const ok = leftover ? await s.subjectRequests.replaceMarker(doc, leftover._etag) : await s.subjectRequests.createMarker(doc);
  if (!ok) throw new AppError("conflict", "the same request is being recorded by another call; retry");
}

// --- reading --------------------------------------------------------------------------------------------------------

async function mustGet(s: Services, tenantId: string, id: string): Promise<StoredRequest> {
  const doc = await s.subjectRequests.get(tenantId, id);
  if (!doc) throw notFound();
  return doc;
}

/**
 * One request (GET /api/v1/subject-requests/{id}) with its decrypted fields while its key exists: the address masked,
 * the details, reasons and external id. A read that decrypts is audited (`subject-request.read`, naming the fields)
 * before anything is shown. Errors: not-found (also for another tenant's id).
 */
export async function getSubjectRequest(s: Services, caller: TenantCaller, id: string): Promise<RequestView> {
  const doc = await mustGet(s, caller.tenantId, id);
  const { timeZone } = await tenantZone(s, caller.tenantId);
  const now = s.clock.now();
  const key = await unwrapRequestKey(s, doc);
  const open = (field: RequestField): string | null => {
    const sealed = doc.personal?.[field];
    return key && sealed ? openRequestField(key, doc.tenantId, doc.id, field, sealed) : null;
  };
  const fields = (Object.keys(doc.personal ?? {}) as RequestField[]).filter((f) => doc.personal?.[f]);
  const email = open("email");
  const details = open("details");
  const view: RequestView = {
    ...summaryOf(doc, now, timeZone),
    subjectEmail: email ? maskEmail(email) : null,
    details: details ? (JSON.parse(details) as DsrDetails) : null,
    externalId: open("externalId"),
    lateReason: open("lateReason"),
    maxExtendedDueAt: extensionLimitFor(new Date(doc.legalDueAt), timeZone).toISOString(),
    extension: doc.extendedAt ? { at: doc.extendedAt, reason: open("extensionReason") } : null,
    rejection: doc.rejection ? { ground: doc.rejection.ground, reason: open("rejectionReason"), at: doc.rejection.at } : null,
    cancellation: doc.cancelledAt ? { reason: open("cancellationReason"), at: doc.cancelledAt } : null,
    verificationDetail: {
      wrongTries: doc.verification.wrongTries,
      triesLeft: Math.max(0, MAX_WRONG_TRIES - doc.verification.wrongTries),
      resends: doc.verification.resends,
      resendsLeft: Math.max(0, MAX_RESENDS - doc.verification.resends),
      emailsSent: doc.verification.issued.filter((i) => i.sentAt).length,
    },
    history: doc.history.map(({ at, event, from, to, by }) => ({ at, event, from, to, by })),
    steps: doc.steps.map(({ name, attempts, lastError, parked }) => ({ name, attempts, lastError, parked })),
    erasedAt: doc.erasedAt,
  };
  if (key && fields.length > 0) await recordAudit(s, caller.tenantId, caller, "subject-request.read", { type: "subject-request", id }, { fields: fields.sort() });
  return view;
}

export interface ListQuery {
  status?: DsrStatus;
  dueBefore?: string;
  overdue?: boolean;
  limit: number;
  cursor?: string;
}

function filterOf(q: ListQuery, now: Date): ListFilter {
  return { status: q.status, dueBefore: q.dueBefore ? new Date(q.dueBefore) : undefined, overdueAt: q.overdue ? now : undefined };
}

/** GET /api/v1/subject-requests: a page, soonest due first; `overdue` gives the open ones past due and every one needing attention. */
export async function listSubjectRequests(s: Services, caller: TenantCaller, q: ListQuery): Promise<{ items: RequestSummary[]; nextCursor?: string }> {
  const now = s.clock.now();
  const { timeZone } = await tenantZone(s, caller.tenantId);
  const page = await s.subjectRequests.list(caller.tenantId, filterOf(q, now), q.limit, q.cursor);
  return { items: page.items.map((d) => summaryOf(d, now, timeZone)), nextCursor: page.cursor };
}

/** Every request the list query selects (from `cursor`, at most `max`), for the CSV export. */
export async function allSubjectRequests(s: Services, caller: TenantCaller, q: ListQuery, max = 10_000): Promise<{ items: RequestSummary[]; truncated: boolean }> {
  const now = s.clock.now();
  const { timeZone } = await tenantZone(s, caller.tenantId);
  const items: RequestSummary[] = [];
  let cursor = q.cursor;
  do {
    const page = await s.subjectRequests.list(caller.tenantId, filterOf(q, now), 200, cursor);
    items.push(...page.items.map((d) => summaryOf(d, now, timeZone)));
    cursor = page.cursor;
  } while (cursor && items.length < max);
  return { items: items.slice(0, max), truncated: items.length > max || cursor !== undefined };
}

// --- the tenant's decisions -----------------------------------------------------------------------------------------

/** Steps a closed request no longer runs: only its announcements and the notices it owes the person stay. */
const closingSteps = (name: string) => name !== "announce" && name !== "notices";

async function decide(
  s: Services,
  caller: TenantCaller,
  id: string,
  change: (doc: StoredRequest, seal: (field: RequestField, value: string) => string, now: Date) => RequestDoc,
): Promise<RequestSummary> {
  const now = s.clock.now();
  const { timeZone } = await tenantZone(s, caller.tenantId);
  const r = await changeRequest(s, caller.tenantId, id, async (doc) => {
    const key = await unwrapRequestKey(s, doc);
    const seal = (field: RequestField, value: string) => {
      if (!key) throw new AppError("conflict", "the request's personal fields were erased; it cannot be changed");
      return sealRequestField(key, doc.tenantId, doc.id, field, value);
    };
    return change(doc, seal, now);
  });
  if (!r.changed) throw notFound();
  return summaryOf(r.after, now, timeZone);
}

const mustBeOpen = (doc: RequestDoc, what: string) => {
  if (!tenantMayDecide(doc.status)) throw new AppError("conflict", `the request is ${doc.status}; only an open request can be ${what}`);
};

/** POST …/cancel: the request is withdrawn (by the person, through the tenant), with a reason. Errors: not-found, conflict. */
export function cancelSubjectRequest(s: Services, caller: TenantCaller, id: string, reason: string): Promise<RequestSummary> {
  return decide(s, caller, id, (doc, seal, now) => {
    mustBeOpen(doc, "cancelled");
    const moved = withTransition(withoutSteps(withoutMeta(doc), closingSteps), "cancelled", caller, now);
    return { ...moved, cancelledAt: now.toISOString(), attention: null, personal: { ...moved.personal!, cancellationReason: seal("cancellationReason", reason) } };
  });
}

/**
 * POST …/reject: refused as manifestly unfounded or excessive (Art. 12(5)) or because the person's identity was not
 * verified (Art. 12(6)), with a reason. The person is told the reason and their right to complain to the supervisory
 * authority and to a judicial remedy (Art. 12(4)). Errors: not-found, conflict (closed already), validation-failed
 * (identity-not-verified for a verified request: rejectionGroundProblem).
 */
export function rejectSubjectRequest(s: Services, caller: TenantCaller, id: string, input: { ground: RejectionGround; reason: string }): Promise<RequestSummary> {
  return decide(s, caller, id, (doc, seal, now) => {
    mustBeOpen(doc, "rejected");
    const groundProblem = rejectionGroundProblem(input.ground, doc.verification.verifiedAt);
    if (groundProblem) throw invalid("ground", groundProblem);
    const moved = withTransition(withoutSteps(withoutMeta(doc), closingSteps), "rejected", caller, now, { ground: input.ground });
    return withStep(
      {
        ...moved,
        rejection: { ground: input.ground, at: now.toISOString() },
        attention: null,
        personal: { ...moved.personal!, rejectionReason: seal("rejectionReason", input.reason) },
        notices: [...moved.notices, { kind: "rejected", createdAt: now.toISOString(), sentAt: null }],
      },
      "notices",
      now,
    );
  });
}

/**
 * POST …/extend: the one extension GDPR Art. 12(3) allows, declared before the due date, with a reason, to `until` (a
 * date in the tenant's zone) or as far as allowed (two months after the legal due date). The person is told, with the
 * reason. Errors: not-found, conflict (extended already, past the due date, closed), validation-failed (the date).
 */
export async function extendSubjectRequest(s: Services, caller: TenantCaller, id: string, input: { reason: string; until?: string }): Promise<RequestSummary> {
  const { timeZone } = await tenantZone(s, caller.tenantId);
  return decide(s, caller, id, (doc, seal, now) => {
    const plan = planExtension({ status: doc.status, dueAt: new Date(doc.dueAt), legalDueAt: new Date(doc.legalDueAt), extended: doc.extendedAt !== null }, now, timeZone, input.until);
    if (!plan.ok) throw plan.kind === "conflict" ? new AppError("conflict", plan.detail) : invalid("until", plan.detail);
    const moved = withEvent(withoutMeta(doc), "extended", caller, now, { dueAt: plan.dueAt.toISOString(), previousDueAt: doc.dueAt });
    return withStep(
      {
        ...moved,
        dueAt: plan.dueAt.toISOString(),
        extendedAt: now.toISOString(),
        personal: { ...moved.personal!, extensionReason: seal("extensionReason", input.reason) },
        notices: [...moved.notices, { kind: "extended", createdAt: now.toISOString(), sentAt: null }],
      },
      "notices",
      now,
    );
  });
}

/** POST …/retry: a request that needs attention resumes: its parked step is queued again. Errors: not-found, conflict. */
export function retrySubjectRequest(s: Services, caller: TenantCaller, id: string): Promise<RequestSummary> {
  return decide(s, caller, id, (doc, _seal, now) => {
    if (doc.status !== "needs-attention" || !doc.attention) throw new AppError("conflict", `the request is ${doc.status}; only a request that needs attention can be retried`);
    const resumed = withTransition(withoutMeta(doc), doc.attention.resumeTo, caller, now, { step: doc.attention.step });
    let next: RequestDoc = { ...resumed, attention: null, steps: resumed.steps.filter((st) => !st.parked) };
    for (const st of doc.steps.filter((x) => x.parked)) next = withStep(next, st.name, now);
    // A module's step that asked for the tenant (no parked step): it runs again from where it stood.
    if (!doc.steps.some((x) => x.parked) && doc.attention.step !== "announce") next = withStep(next, doc.attention.step, now);
    return next;
  });
}

// --- the start of the work ------------------------------------------------------------------------------------------

/**
 * A verified request's first step: a subject the service holds nothing about, for the types that are answered by
 * what is held, completes as "no personal data held" (the person is told); a type whose work exists starts it
 * (in-progress); any other waits in `verified`, its deadline running, until its work exists (the sweep starts it).
 */
defineStep("start", async (s, req, log) => {
  if (req.status !== "verified") return;
  const held = NO_DATA_ANSWERS.includes(req.requestType) ? await subjectDataHeldBy(s, req) : ["(not asked)"];
  const module = workFor(req.requestType);
  const now = s.clock.now();
  await changeRequest(s, req.tenantId, req.id, (fresh) => {
    if (fresh.status !== "verified") return undefined;
    if (held.length === 0) {
      const done = withTransition(withoutMeta(fresh), "completed", SYSTEM, now, { outcome: "no-personal-data" });
      return withStep(
        { ...done, outcome: "no-personal-data", completedAt: now.toISOString(), notices: [...done.notices, { kind: "completed-no-data", createdAt: now.toISOString(), sentAt: null }] },
        "notices",
        now,
      );
    }
    if (module) return withStep(withTransition(withoutMeta(fresh), "in-progress", SYSTEM, now), `work:${module.first}`, now);
    return undefined;
  }, { log });
});

// Where the service keeps personal data about people, for "no personal data held". Consent records are one (issue 15);
// an access package of part 2 adds nothing new (it is made from these).
registerSubjectDataSource({ name: "uploads", holds: async (s, tenantId, hash) => (await s.uploads.countNamingPerson(tenantId, hash)) > 0 });
registerSubjectDataSource({ name: "consents", holds: async (s, tenantId, hash) => (await s.consents.getSubjectByLookup(tenantId, hash)) !== undefined });
registerSubjectDataSource({
  name: "earlier-requests",
  holds: async (s, tenantId, hash, requestId) => (await s.subjectRequests.countVerifiedOfSubject(tenantId, hash, requestId)) > 0,
});

// --- the request sweep ----------------------------------------------------------------------------------------------

export const DSR_SWEEP = "subject-requests";
export const DSR_SWEEP_INTERVAL_MINUTES = 15;
/** Six-field NCRONTAB (UTC): every 15 minutes. */
export const DSR_SWEEP_SCHEDULE = "20 */15 * * * *";

declareSweep({ name: DSR_SWEEP, intervalMinutes: DSR_SWEEP_INTERVAL_MINUTES });

/**
 * One timer run, a catch-up: unverified requests whose DSR_VERIFY_DAYS are over close as closed-unverified (the person
 * is told); steps whose queue message was lost are queued again; verified requests of a type whose work now exists
 * start. Records the heartbeat health reports.
 */
export async function runSubjectRequestSweep(s: Services, opts: { pastDue?: boolean; log?: Log; limit?: number } = {}): Promise<{ closed: number; requeued: number; started: number }> {
  const started = s.clock.now();
  await s.heartbeats.started(DSR_SWEEP, started, opts.pastDue ?? false);
  try {
    const limit = opts.limit ?? 500;
    let closed = 0;
    for (const r of await s.subjectRequests.findVerificationLapsedAcrossTenants(started, limit)) {
      const now = s.clock.now();
      const result = await changeRequest(s, r.tenantId, r.id, (doc) => {
        if ((doc.status !== "awaiting-verification" && doc.status !== "verification-failed") || Date.parse(doc.verification.verifyBy) > now.getTime()) return undefined;
        const moved = withTransition(withoutSteps(withoutMeta(doc), closingSteps), "closed-unverified", SYSTEM, now, { verifyDays: s.settings.dsrVerifyDays });
        return withStep({ ...moved, notices: [...moved.notices, { kind: "closed-unverified", createdAt: now.toISOString(), sentAt: null }] }, "notices", now);
      }, { log: opts.log });
      if (result.changed) closed++;
    }
    const requeued = await requeueLostSteps(s, limit);
    let begun = 0;
    for (const r of await s.subjectRequests.findIdleVerifiedAcrossTenants(typesWithWork(), limit)) {
      const now = s.clock.now();
      const result = await changeRequest(s, r.tenantId, r.id, (doc) => (doc.status === "verified" && doc.steps.length === 0 ? withStep(withoutMeta(doc), "start", now) : undefined));
      if (result.changed) begun++;
    }
    const counts = { closed, requeued, started: begun };
    await s.heartbeats.finished(DSR_SWEEP, s.clock.now(), "succeeded", counts, null);
    if (closed + requeued + begun > 0) opts.log?.info("dsr.sweep", counts);
    return counts;
  } catch (err) {
    await s.heartbeats.finished(DSR_SWEEP, s.clock.now(), "failed", {}, null).catch(() => undefined);
    throw err;
  }
}

// --- closed-request retention ---------------------------------------------------------------------------------------

/** For the retention sweep: closed requests whose evidence period (EVIDENCE_RETENTION_YEARS after closing) is over. */
export async function findClosedRequestsDue(s: Services, now: Date, limit: number): Promise<Array<{ tenantId: string; id: string; dueAt: string }>> {
  const cutoff = new Date(now);
  cutoff.setUTCFullYear(cutoff.getUTCFullYear() - s.settings.evidenceRetentionYears);
  const rows = await s.subjectRequests.findErasureCandidatesAcrossTenants(cutoff, limit);
  return rows
    .map((r) => ({ tenantId: r.tenantId, id: r.id, due: RETENTION_CLASSES["closed-request"].dueAt({ closedAt: r.closedAt }, s.settings) }))
    .filter((r): r is { tenantId: string; id: string; due: Date } => r.due !== null && r.due.getTime() <= now.getTime())
    .map((r) => ({ tenantId: r.tenantId, id: r.id, dueAt: r.due.toISOString() }));
}

/**
 * Strips a closed request of everything personal in one conditional write: its open and external-id markers go, its
 * data key is destroyed (every encrypted field with it) and its fields and keyed hashes are cleared; the anonymous
 * record (type, dates, states, outcome, history) stays. Returns false when the request changed since `doc` was read
 * (its etag no longer matches), so the caller reads it again. Used by the retention sweep and by an erasure request.
 */
export async function stripClosedRequest(s: Services, doc: StoredRequest): Promise<boolean> {
  await releaseOpenMarker(s, doc);
  if (doc.externalIdHash) await s.subjectRequests.deleteMarkerOf(doc.tenantId, `dsrm-${doc.externalIdHash}`, doc.id);
  const now = s.clock.now().toISOString();
  const erased: RequestDoc = {
    ...withoutMeta(doc),
    dataKey: null,
    personal: null,
    subjectHash: null,
    externalIdHash: null,
    openMarkerId: null,
    verification: { ...doc.verification, issued: [], linkOrigin: "" },
    erasedAt: now,
    updatedAt: now,
  };
  return (await s.subjectRequests.replace(erased, doc._etag)) !== undefined;
}

/**
 * Erases a closed request's personal fields at the end of its evidence period, if its stored state says it is due: its
 * markers go, then one conditional write destroys the data key (which leaves every encrypted field unreadable, copies
 * and backups included) and clears the fields and keyed hashes; the anonymous record (type, dates, states, outcome,
 * history) stays. Audited once. Returns "purged", "skipped" (not due, or done) or "busy" (changed meanwhile).
 */
export async function eraseClosedRequest(s: Services, item: { tenantId: string; id: string }, sweepId: string): Promise<"purged" | "skipped" | "busy"> {
  const doc = await s.subjectRequests.get(item.tenantId, item.id);
  if (!doc || doc.erasedAt || !isFinalStatus(doc.status)) return "skipped";
  const due = RETENTION_CLASSES["closed-request"].dueAt({ closedAt: doc.closedAt }, s.settings);
  if (!due || due.getTime() > s.clock.now().getTime()) return "skipped";
  if (!(await stripClosedRequest(s, doc))) return "busy";
  await recordAuditOnce(s, doc.tenantId, { actor: "system:retention" }, "subject-request.erased", { type: "subject-request", id: doc.id }, { sweepId, closedAt: doc.closedAt }, `subject-request.erased:${doc.id}`);
  return "purged";
}
