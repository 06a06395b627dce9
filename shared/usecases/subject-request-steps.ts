/**
 * The work queue of data-subject requests, and the one way a request is changed.
 *
 * Steps. Everything a request does after the API call that caused it is a step, named on the request itself
 * (`steps`: name, a sequence number, when it was queued, its failed attempts, a lease). A queue message names only the
 * tenant, the request, the step and its number; the worker re-reads the request and acts only when the stored step
 * with that name and number is there, not parked and not held by another worker (a forged, repeated or stale message
 * does nothing), takes a lease on it, runs it and removes it. Every step is idempotent: it re-reads what it needs and
 * keys what it sends (e-mail message ids, webhook event keys, audit entries written once), so a crash mid-step is
 * finished by the next attempt without doing anything twice. A step that fails is retried by the queue; after
 * STEP_MAX_ATTEMPTS failures (counted on the request, so a lost message does not reset them) it is parked and the
 * request shows `needs-attention` with the reason, until `POST …/retry` queues it again. The request sweep re-queues
 * steps whose message was lost (STEP_REQUEUE_AFTER_MS after they were queued).
 *
 * Built-in steps: `announce` (each history entry's audit entry, webhook event and deadline changes), `verification-email`,
 * `notices` (e-mails the person is owed), `start` (what a verified request does first). The work of each request type
 * is a module registered with `registerRequestWork` (parts 2 and 3: access and portability packages; erasure,
 * rectification, restriction, objection, consent withdrawal): its steps run as `work:<name>`. Until a type has a
 * module, a verified request of that type waits in `verified`; the sweep starts it once one is registered.
 *
 * Transitions. Every change of state goes through `withTransition` (the state machine of shared/domain/
 * subject-requests.ts) and appends a history entry; `announce` turns each entry into an audit entry and a webhook
 * event (keyed by the entry, so each is made once) and moves the deadline watch's milestones.
 */
import { QUEUES } from "../config/resources";
import { IntegrityError } from "../crypto";
import { assertDsrTransition, deadlineMilestones, FINAL_DSR_STATUSES, isFinalStatus, type DsrOutcome, type DsrStatus, type DsrType } from "../domain/subject-requests";
import type { WebhookEventType } from "../domain/webhooks";
import { AppError } from "../errors";
import { errorFields, type Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { HistoryEntry, RequestDoc, RequestStep, StoredRequest } from "../stores/subject-request-store";
import { recordAuditOnce, type Actor } from "./audit-trail";
import { cancelDeadlines, scheduleDeadlines } from "./deadlines";
import { subjectRequestStepMessage, type SubjectRequestStepMessage } from "./messages";
import { emitWebhookEvent } from "./webhooks";
import { canonicalJson } from "../domain/audit-chain";

/** Failed attempts of a step before it is parked and the request needs attention (the queue's maxDequeueCount is 5 too). */
export const STEP_MAX_ATTEMPTS = 5;
/** How long a worker holds a step. */
export const STEP_LEASE_MS = 5 * 60_000;
/** A step queued this long ago and still there is queued again by the sweep (its message was lost or its worker died). */
export const STEP_REQUEUE_AFTER_MS = 10 * 60_000;

/** The deadline watch's clock name, and the milestones' item ids (a new item after an extension: new reminders). */
export const DSR_CLOCK = "dsr";
export const deadlineItem = (requestId: string, extended: boolean) => (extended ? `${requestId}:extended` : requestId);

export const SYSTEM: Actor = { actor: "system:subject-requests" };

// --- step handlers --------------------------------------------------------------------------------------------------

export type StepHandler = (s: Services, req: StoredRequest, log?: Log) => Promise<void>;
const handlers = new Map<string, { run: StepHandler; stillDue?: (doc: RequestDoc) => boolean }>();

/**
 * Registers a built-in step (once per name). `stillDue` says whether the step has work left on the request as it is
 * now: checked when the step ends, so what was asked for while it ran (a history entry, a resend, a notice) is done by
 * the same step running again instead of being lost with it.
 */
export function defineStep(name: string, run: StepHandler, stillDue?: (doc: RequestDoc) => boolean): void {
  handlers.set(name, { run, stillDue });
}

// --- the work of each request type (parts 2 and 3) ------------------------------------------------------------------

/** What a type's work step reports. */
export type WorkOutcome =
  /** Queue this step of the module next. */
  | { next: string }
  /** The request is answered. */
  | { complete: DsrOutcome }
  /** It cannot go on without the tenant (e.g. its privacy information is missing): needs-attention with this reason. */
  | { attention: string }
  /** Nothing to do now; another action (an API call) queues the next step. */
  | { wait: true };

export type WorkStep = (s: Services, req: StoredRequest, log?: Log) => Promise<WorkOutcome>;

/** A request type's work: its steps by name and the first one. Each step must be idempotent (see the module comment). */
export interface RequestTypeWork {
  readonly type: DsrType;
  readonly first: string;
  readonly steps: Readonly<Record<string, WorkStep>>;
}

const work = new Map<DsrType, RequestTypeWork>();

/** Registers the work of a request type (one module per type). */
export function registerRequestWork(w: RequestTypeWork): void {
  if (!(w.first in w.steps)) throw new Error(`the work of ${w.type} names a first step it does not have: ${w.first}`);
  work.set(w.type, w);
}

/**
 * Removes the work of a request type and returns it (tests: a type as it was before its work existed; put it back with
 * `registerRequestWork`).
 */
export function unregisterRequestWork(type: DsrType): RequestTypeWork | undefined {
  const had = work.get(type);
  work.delete(type);
  return had;
}

export function workFor(type: DsrType): RequestTypeWork | undefined {
  return work.get(type);
}

/** The types whose work exists. */
export function typesWithWork(): DsrType[] {
  return [...work.keys()];
}

// --- what the service holds about a subject -------------------------------------------------------------------------

/**
 * A place the service keeps personal data about data subjects, asked whether it holds anything about one (by the
 * keyed hash of the address). Uploads and earlier requests are registered here; **issue 18 registers the consent
 * records** (a consent subject with this hash) as another source.
 */
export interface SubjectDataSource {
  readonly name: string;
  holds(s: Services, tenantId: string, subjectHash: string, requestId: string): Promise<boolean>;
}

const sources = new Map<string, SubjectDataSource>();

export function registerSubjectDataSource(source: SubjectDataSource): void {
  sources.set(source.name, source);
}

/** The names of the sources that hold something about the request's subject (empty: "no personal data held"). */
export async function subjectDataHeldBy(s: Services, req: Pick<RequestDoc, "tenantId" | "id" | "subjectHash">): Promise<string[]> {
  if (!req.subjectHash) return [];
  const held: string[] = [];
  // Every source is asked, whatever the first answers, so the time taken says nothing about where data is.
  for (const src of sources.values()) if (await src.holds(s, req.tenantId, req.subjectHash, req.id)) held.push(src.name);
  return held;
}

// --- changing a request ---------------------------------------------------------------------------------------------

/** Who acts, as a history entry and its audit entry name them. */
export interface ByWhom {
  actor: string;
  requestId?: string | null;
}

/**
 * `doc` moved to `to`: the state machine is checked (DsrTransitionError otherwise), a history entry appended, the
 * close time set on a final state, and the `announce` step added. Pure.
 */
export function withTransition(doc: RequestDoc, to: DsrStatus, by: ByWhom, now: Date, details: HistoryEntry["details"] = {}): RequestDoc {
  assertDsrTransition(doc.status, to);
  const entry: HistoryEntry = { at: now.toISOString(), event: "status", from: doc.status, to, by: by.actor, requestId: by.requestId ?? null, details };
  const closing = isFinalStatus(to) && !doc.closedAt;
  return withStep(
    {
      ...doc,
      status: to,
      history: [...doc.history, entry],
      closedAt: closing ? now.toISOString() : doc.closedAt,
    },
    "announce",
    now,
  );
}

/** A history entry that is not a change of state (an extension). Pure. */
export function withEvent(doc: RequestDoc, event: HistoryEntry["event"], by: ByWhom, now: Date, details: HistoryEntry["details"]): RequestDoc {
  const entry: HistoryEntry = { at: now.toISOString(), event, from: doc.status, to: doc.status, by: by.actor, requestId: by.requestId ?? null, details };
  return withStep({ ...doc, history: [...doc.history, entry] }, "announce", now);
}

/** `doc` with step `name` pending: a new one (next sequence number), unless one of that name is pending already. Pure. */
export function withStep(doc: RequestDoc, name: string, now: Date): RequestDoc {
  if (doc.steps.some((st) => st.name === name && !st.parked)) return doc;
  const seq = doc.stepSeq + 1;
  const step: RequestStep = { name, seq, queuedAt: now.toISOString(), attempts: 0, leaseUntil: null, lastError: null, parked: false };
  return { ...doc, stepSeq: seq, steps: [...doc.steps.filter((st) => st.name !== name), step] };
}

/** `doc` without the pending steps `names` (a closed request has no more work). Pure. */
export function withoutSteps(doc: RequestDoc, names: (name: string) => boolean): RequestDoc {
  return { ...doc, steps: doc.steps.filter((st) => !names(st.name)) };
}

const stepsCheckAt = (steps: readonly RequestStep[]) =>
  steps
    .filter((st) => !st.parked)
    .map((st) => st.queuedAt)
    .sort()[0] ?? null;

/** Writes `next` if the stored request is unchanged since `etag`; the stored result, or undefined when another writer won. */
export async function saveRequest(s: Services, next: RequestDoc, etag: string): Promise<StoredRequest | undefined> {
  const doc: RequestDoc = { ...next, updatedAt: s.clock.now().toISOString(), stepsCheckAt: stepsCheckAt(next.steps) };
  const newEtag = await s.subjectRequests.replace(doc, etag);
  return newEtag ? { ...doc, _etag: newEtag } : undefined;
}

export type ChangeResult = { changed: true; before: StoredRequest; after: StoredRequest } | { changed: false; current: StoredRequest | undefined };

/**
 * Reads the request and writes `change(doc)`, retrying on a fresh read when another writer won (up to `attempts`).
 * `change` returns the next document, undefined to leave it, or throws (an AppError refuses the call). Then queues the
 * steps it added and announces what it recorded (see `afterChange`).
 */
export async function changeRequest(
  s: Services,
  tenantId: string,
  id: string,
  change: (doc: StoredRequest) => RequestDoc | undefined | Promise<RequestDoc | undefined>,
  opts: { attempts?: number; current?: StoredRequest; log?: Log } = {},
): Promise<ChangeResult> {
  let doc = opts.current ?? (await s.subjectRequests.get(tenantId, id));
  for (let attempt = 0; attempt < (opts.attempts ?? 8); attempt++) {
    if (!doc) return { changed: false, current: undefined };
    const next = await change(doc);
    if (!next) return { changed: false, current: doc };
    const saved = await saveRequest(s, next, doc._etag);
    if (saved) {
      await afterChange(s, doc, saved, opts.log);
      return { changed: true, before: doc, after: saved };
    }
    doc = await s.subjectRequests.get(tenantId, id);
  }
  throw new AppError("conflict", "the request is being changed by other requests; retry");
}

/**
 * After a write: queue a message for each step it added, then announce its history entries now (best effort: the
 * queued `announce` step, or the sweep, finishes what fails here).
 */
export async function afterChange(s: Services, before: RequestDoc | undefined, after: StoredRequest, log?: Log): Promise<void> {
  const had = new Set((before?.steps ?? []).map((st) => `${st.name}#${st.seq}`));
  for (const st of after.steps) {
    if (st.parked || had.has(`${st.name}#${st.seq}`)) continue;
    try {
      await queueStep(s, after, st);
    } catch (err) {
      // The step is recorded: the sweep queues it again.
      log?.warn("dsr.queue-failed", { tenantId: after.tenantId, requestId: after.id, step: st.name, ...errorFields(err) });
    }
  }
  if (after.announced < after.history.length) {
    try {
      await announce(s, after.tenantId, after.id);
    } catch (err) {
      log?.warn("dsr.announce-deferred", { tenantId: after.tenantId, requestId: after.id, ...errorFields(err) });
    }
  }
}

export function queueStep(s: Services, doc: Pick<RequestDoc, "tenantId" | "id">, st: Pick<RequestStep, "name" | "seq">): Promise<void> {
  return s.queues.send(QUEUES.subjectRequests.name, subjectRequestStepMessage, { tenantId: doc.tenantId, requestId: doc.id, step: st.name, seq: st.seq });
}

// --- announcing history ---------------------------------------------------------------------------------------------

type DsrAuditAction =
  | "subject-request.created"
  | "subject-request.verified"
  | "subject-request.verification-failed"
  | "subject-request.in-progress"
  | "subject-request.completed"
  | "subject-request.rejected"
  | "subject-request.cancelled"
  | "subject-request.closed-unverified"
  | "subject-request.needs-attention"
  | "subject-request.resumed"
  | "subject-request.extended";

/** The audit action and webhook event of a history entry (a retry out of needs-attention is `resumed`). */
export function eventOf(entry: HistoryEntry): DsrAuditAction & WebhookEventType {
  if (entry.event === "created") return "subject-request.created";
  if (entry.event === "extended") return "subject-request.extended";
  if (entry.from === "needs-attention" && entry.to !== "rejected" && entry.to !== "cancelled") return "subject-request.resumed";
  return `subject-request.${entry.to}` as DsrAuditAction & WebhookEventType;
}

/**
 * Makes each history entry not yet announced into its audit entry and its webhook event (each keyed by the entry, so
 * made once however often this runs), and moves the deadline milestones (scheduled at creation, moved to the new
 * date by an extension, cancelled when the request closes). Then records how far it got.
 */
export async function announce(s: Services, tenantId: string, id: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const doc = await s.subjectRequests.get(tenantId, id);
    if (!doc) return;
    for (let i = doc.announced; i < doc.history.length; i++) {
      const entry = doc.history[i]!;
      const event = eventOf(entry);
      const key = `dsr:${id}:${i}`;
      const details = { requestType: doc.requestType, from: entry.from, to: entry.to, ...entry.details };
      const seq = await recordAuditOnce(s, tenantId, { actor: entry.by, requestId: entry.requestId }, event, { type: "subject-request", id }, details, key);
      // Another worker is writing this entry: leave the rest to it (or to the next attempt).
      if (seq === undefined) throw new Error("an audit entry of this request is being written by another worker");
      await emitWebhookEvent(s, tenantId, event, key, { requestId: id, requestType: doc.requestType, status: entry.to, at: entry.at, ...entry.details });
      await deadlineEffects(s, doc, entry);
    }
    const fresh = await s.subjectRequests.get(tenantId, id);
    if (!fresh) return;
    const announced = Math.max(fresh.announced, doc.history.length);
    const complete = announced >= fresh.history.length;
    const steps = complete ? fresh.steps.filter((st) => st.name !== "announce") : fresh.steps;
    if (announced === fresh.announced && steps.length === fresh.steps.length) {
      if (complete) return;
      continue;
    }
    if ((await saveRequest(s, { ...withoutMeta(fresh), announced, steps }, fresh._etag)) && complete) return;
  }
}

async function deadlineEffects(s: Services, doc: RequestDoc, entry: HistoryEntry): Promise<void> {
  if (entry.event === "created") {
    await scheduleDeadlines(s, DSR_CLOCK, doc.tenantId, deadlineItem(doc.id, false), deadlineMilestones(new Date(doc.originalDueAt)));
  } else if (entry.event === "extended") {
    await cancelDeadlines(s, DSR_CLOCK, doc.tenantId, deadlineItem(doc.id, false));
    const dueAt = typeof entry.details.dueAt === "string" ? new Date(entry.details.dueAt) : new Date(doc.dueAt);
    await scheduleDeadlines(s, DSR_CLOCK, doc.tenantId, deadlineItem(doc.id, true), deadlineMilestones(dueAt));
  } else if ((FINAL_DSR_STATUSES as readonly string[]).includes(entry.to)) {
    await cancelDeadlines(s, DSR_CLOCK, doc.tenantId, deadlineItem(doc.id, false));
    await cancelDeadlines(s, DSR_CLOCK, doc.tenantId, deadlineItem(doc.id, true));
    await releaseOpenMarker(s, doc);
  }
}

/** The id of the marker that makes a subject's open request of one type and details unique (a keyed hash). */
export function openMarkerId(hash: (...parts: string[]) => string, subjectHash: string, type: DsrType, details: unknown): string {
  return `dsrm-${hash("open", subjectHash, type, canonicalJson(details ?? null))}`;
}

/** A closed request no longer stands for its subject's open request: the next one of the kind is a new request. */
export async function releaseOpenMarker(s: Services, doc: RequestDoc): Promise<void> {
  if (doc.openMarkerId) await s.subjectRequests.deleteMarkerOf(doc.tenantId, doc.openMarkerId, doc.id);
}

defineStep(
  "announce",
  (s, req) => announce(s, req.tenantId, req.id),
  (doc) => doc.announced < doc.history.length,
);

// --- running a step -------------------------------------------------------------------------------------------------

export type StepRunOutcome = "done" | "skipped" | "failed" | "parked";

/** A failure's name for the record and the log: an error kind or class, never its message (which may quote data). */
function failureName(err: unknown): string {
  if (err instanceof AppError) return err.kind;
  if (err instanceof IntegrityError) return "integrity-error";
  return err instanceof Error ? err.name.slice(0, 60) : "unknown";
}

/**
 * One queue message's work (see the module comment). Returns `failed` when the step failed and will be retried (the
 * caller throws so the queue tries again), `parked` when it failed for the last time (the request needs attention).
 */
export async function runStep(s: Services, msg: SubjectRequestStepMessage, log?: Log): Promise<StepRunOutcome> {
  // The lease: taken on the stored step with a conditional write. A write lost to another change of the request (an
  // API call, an announcement) is tried again on a fresh read; only a step that is gone, parked or held is skipped.
  let claimed: StoredRequest | undefined;
  for (let attempt = 0; attempt < 10 && !claimed; attempt++) {
    const now = s.clock.now();
    const doc = await s.subjectRequests.get(msg.tenantId, msg.requestId);
    const step = doc?.steps.find((st) => st.name === msg.step && st.seq === msg.seq);
    if (!doc || !step || step.parked) return "skipped";
    if (step.leaseUntil && Date.parse(step.leaseUntil) > now.getTime()) return "skipped";
    const leased = { ...withoutMeta(doc), steps: doc.steps.map((st) => (st === step ? { ...st, leaseUntil: new Date(now.getTime() + STEP_LEASE_MS).toISOString() } : st)) };
    claimed = await saveRequest(s, leased, doc._etag);
  }
  if (!claimed) throw new AppError("conflict", "the request kept changing; the step is tried again");
  try {
    await runHandler(s, claimed, msg.step, log);
  } catch (err) {
    log?.warn("dsr.step-failed", { tenantId: msg.tenantId, requestId: msg.requestId, step: msg.step, failure: failureName(err), ...errorFields(err) });
    return (await stepFailed(s, msg, failureName(err), log)) ? "parked" : "failed";
  }
  const done = await changeRequest(s, msg.tenantId, msg.requestId, (fresh) => {
    const mine = (st: RequestStep) => st.name === msg.step && st.seq === msg.seq;
    if (!fresh.steps.some(mine)) return undefined;
    // Work asked for while the step ran (under its lease) is done by this step too: it runs again.
    if (handlers.get(msg.step)?.stillDue?.(fresh)) {
      return { ...withoutMeta(fresh), steps: fresh.steps.map((st) => (mine(st) ? { ...st, leaseUntil: null } : st)) };
    }
    return { ...withoutMeta(fresh), steps: fresh.steps.filter((st) => !mine(st)) };
  });
  if (done.changed && done.after.steps.some((st) => st.name === msg.step && st.seq === msg.seq)) await queueStep(s, done.after, { name: msg.step, seq: msg.seq });
  return "done";
}

async function runHandler(s: Services, req: StoredRequest, name: string, log?: Log): Promise<void> {
  const builtIn = handlers.get(name);
  if (builtIn) return builtIn.run(s, req, log);
  if (name.startsWith("work:")) return runWorkStep(s, req, name.slice("work:".length), log);
  throw new Error(`no step named ${name}`);
}

/** One step of the request type's module, then what it asks for next. */
async function runWorkStep(s: Services, req: StoredRequest, name: string, log?: Log): Promise<void> {
  if (req.status !== "in-progress") return;
  const module = workFor(req.requestType);
  const step = module?.steps[name];
  if (!step) throw new Error(`the work of ${req.requestType} has no step ${name}`);
  const outcome = await step(s, req, log);
  const now = s.clock.now();
  await changeRequest(s, req.tenantId, req.id, (fresh) => {
    if (fresh.status !== "in-progress") return undefined;
    if ("next" in outcome) return withStep(withoutMeta(fresh), `work:${outcome.next}`, now);
    if ("complete" in outcome) {
      const done = withTransition(withoutMeta(fresh), "completed", SYSTEM, now, { outcome: outcome.complete });
      return { ...done, outcome: outcome.complete, completedAt: now.toISOString() };
    }
    if ("attention" in outcome) return needsAttention(withoutMeta(fresh), `work:${name}`, outcome.attention.slice(0, 200), now);
    return undefined;
  }, { log });
}

/** `doc` in needs-attention for `reason`, remembering the state a retry returns to. Pure. */
export function needsAttention(doc: RequestDoc, step: string, reason: string, now: Date): RequestDoc {
  if (doc.status === "needs-attention") return { ...doc, attention: doc.attention ? { ...doc.attention, reason, step } : { reason, step, since: now.toISOString(), resumeTo: "verified" } };
  const moved = withTransition(doc, "needs-attention", SYSTEM, now, { step, reason: reason.slice(0, 200) });
  return { ...moved, attention: { reason, step, since: now.toISOString(), resumeTo: doc.status } };
}

/** Records a failed attempt; after STEP_MAX_ATTEMPTS parks the step and the request needs attention. True when parked. */
async function stepFailed(s: Services, msg: SubjectRequestStepMessage, failure: string, log?: Log): Promise<boolean> {
  let parked = false;
  const now = s.clock.now();
  await changeRequest(s, msg.tenantId, msg.requestId, (fresh) => {
    parked = false;
    const step = fresh.steps.find((st) => st.name === msg.step && st.seq === msg.seq);
    if (!step) return undefined;
    const attempts = step.attempts + 1;
    parked = attempts >= STEP_MAX_ATTEMPTS;
    const steps = fresh.steps.map((st) => (st === step ? { ...st, attempts, lastError: failure, leaseUntil: null, parked } : st));
    const next = { ...withoutMeta(fresh), steps };
    return parked ? needsAttention(next, msg.step, `step ${msg.step} failed ${attempts} times (${failure})`, now) : next;
  }, { log });
  return parked;
}

// --- the sweep's catch-up for lost messages --------------------------------------------------------------------------

/** Steps queued long enough ago that their message must be lost, queued again (same number). Returns how many. */
export async function requeueLostSteps(s: Services, limit = 500): Promise<number> {
  const now = s.clock.now();
  const cutoff = now.getTime() - STEP_REQUEUE_AFTER_MS;
  let queued = 0;
  for (const r of await s.subjectRequests.findStepsDueAcrossTenants(new Date(cutoff), limit)) {
    const lost = (st: RequestStep) => !st.parked && Date.parse(st.queuedAt) <= cutoff && (!st.leaseUntil || Date.parse(st.leaseUntil) <= now.getTime());
    const result = await changeRequest(s, r.tenantId, r.id, (fresh) =>
      fresh.steps.some(lost) ? { ...withoutMeta(fresh), steps: fresh.steps.map((st) => (lost(st) ? { ...st, queuedAt: now.toISOString(), leaseUntil: null } : st)) } : undefined,
    );
    if (!result.changed) continue;
    for (const st of result.after.steps.filter((x) => !x.parked && x.queuedAt === now.toISOString())) {
      await queueStep(s, result.after, st);
      queued++;
    }
  }
  return queued;
}
