/**
 * Telling the persons of a breach (GDPR Art. 34), for each affected tenant: who is affected, and an e-mail to each,
 * exactly once per version of the tenant's part, at the pace the e-mail service allows.
 *
 * - Scope resolution (a queue job, one message per step): each new version of a tenant's part is resolved into its
 *   persons, streaming over the records in its scope a page at a time (uploads by id or created in a window): each
 *   person is a document keyed by the tenant's keyed hash of the address (the records' lookup hashes; no address is
 *   read or copied), with the data categories of every record naming it, in batches of PERSON_BATCH_SIZE. The part
 *   shows the progress and the counts: records, persons, and the persons who cannot be reached because their
 *   records' keyed hashes were cleared (purged or erased), counted from those records' own counts (an upper bound,
 *   never a guess). A step run again (a crash, a duplicated message) finds its persons made and its batches named.
 * - The notices (on the tenant's instruction, POST /api/v1/breaches/{id}/notify-persons): once resolved, a fan-out
 *   queues one message per batch. A batch's worker holds a lease on it, takes what it may from the shared send
 *   budget (EMAIL_SENDS_PER_MINUTE and EMAIL_SENDS_PER_HOUR; a 429's Retry-After blocks all sending until it has
 *   passed), reads the addresses of those persons from their records (decrypting them; audited per batch), and
 *   e-mails each in the tenant's language with its own data categories, the likely consequences, the measures and
 *   the contact point. Each e-mail's message id is derived from (breach, version, person), so the e-mail service never
 *   delivers it twice, also when a worker died between the send and recording it; each person is marked sent as soon
 *   as the service accepted its e-mail. What the budget did not allow waits for the next window (a delayed message;
 *   the breach sweep re-queues batches whose message was lost or whose worker died).
 * - The estimate: from the persons still pending and the budgets, when the last notice is expected (checked when
 *   the fan-out has queued every batch, on a 429, and by each breach sweep while notices are pending). When it is
 *   later than BREACH_NOTICE_MAX_HOURS after the instruction, the tenant and the operator are e-mailed once and
 *   pointed to a public communication (Art. 34(3)(c)), whose text and place of publication the tenant records.
 */
import { lookupHash, normaliseEmail } from "../crypto";
import { CATEGORY_LABELS } from "../domain/breach-labels";
import {
  batchesFor,
  waitingBehindShare,
  alertMinutes,
  batchKeyOf,
  blockSends,
  breaksDeadline,
  estimateCompletion,
  MAX_SEND_ATTEMPTS,
  noticeDeadline,
  personNoticeMessageId,
  progressOfCounts,
  RESOLVE_PAGE_UPLOADS,
  retryAfterInstant,
  takeSends,
  type BatchCounts,
  type Grant,
  type RateState,
  type PublicCommunicationInput,
  type SendLimits,
} from "../domain/breach-persons";
import { DEFAULT_PERSON_CATEGORIES } from "../domain/breaches";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatInstant } from "../domain/time";
import type { DataCategory } from "../domain/uploads";
import { AppError } from "../errors";
import { errorFields, type Log } from "../observability";
import type { Services } from "../services";
import { QUEUES } from "../config/resources";
import { withoutMeta } from "../stores/cosmos";
import {
  batchId,
  personId,
  type BreachPartDoc,
  type BreachPersonDoc,
  type PersonRole,
  type PersonsRun,
  type StoredBreachPart,
  type StoredBreachPerson,
  type StoredPersonBatch,
  type EarlierNotices,
  type StopReason,
  type TenantContent,
} from "../stores/breach-store";
import type { UploadScopeRow } from "../stores/upload-store";
import { recordAudit, recordAuditOnce, type Actor, type TenantCaller } from "./audit-trail";
import { latestContent, latestVersion } from "./breach-notices";
import { registerExportSection, type JsonValue } from "./export-sections";
import { breachJobMessage, type BreachJobMessage } from "./messages";
import { tenantContactEmail } from "./tenants";
import { emitWebhookEvent } from "./webhooks";
import { inParallel } from "./in-parallel";
import { openConsentField, unwrapSubjectKey } from "./consent-keys";
import { openRequestField, unwrapRequestKey } from "./subject-request-keys";
import { openField, unwrapUploadKey } from "./upload-keys";

export { STOP_REASONS } from "../stores/breach-store";

const SYSTEM: Actor = { actor: "system:breach-persons" };
const MINUTE = 60_000;
/** How long a worker holds a batch (a batch is at most PERSON_BATCH_SIZE e-mails). */
const BATCH_LEASE_MS = 5 * MINUTE;
/** Parallel e-mail sends within a batch, and parallel document writes. */
const SEND_CONCURRENCY = 8;
const STORE_CONCURRENCY = 16;
/** Records read per person, by keyed hash, when none of the records the resolution kept for them names them any more. */
const FALLBACK_RECORDS = 5;
/** Batches named per fan-out page (one message queued for each). */
const FAN_OUT_PAGE = 200;

type PersonJob = Exclude<BreachJobMessage, { kind: "sync-tenant" }>;

async function queueJob(s: Services, msg: PersonJob, delayMs?: number): Promise<void> {
  const seconds = delayMs && delayMs > 0 ? Math.min(7 * 24 * 3600, Math.ceil(delayMs / 1000)) : 0;
  await s.queues.send(QUEUES.breaches.name, breachJobMessage, msg, seconds ? { visibilityTimeoutSeconds: seconds } : {});
}


const limitsOf = (s: Services): SendLimits => ({ perMinute: s.settings.emailSendsPerMinute, perHour: s.settings.emailSendsPerHour });

function contentOf(part: BreachPartDoc, version: number): TenantContent | undefined {
  return part.versions.find((v) => v.n === version)?.content ?? undefined;
}

function newRun(version: number, now: Date, earlier: EarlierNotices[] = []): PersonsRun {
  return {
    version,
    startedAt: now.toISOString(),
    resolution: { status: "running", phase: "uploads", page: 0, cursor: null, records: 0, persons: 0, unreachable: 0, unreachableRecords: 0, categories: [], batches: 0, heardBefore: 0, finishedAt: null },
    notify: null,
    stopped: null,
    earlier,
  };
}

/** What the part's notified run came to, to keep when a new run replaces it (undefined: no notices were instructed). */
async function endedRun(s: Services, part: BreachPartDoc, now: Date): Promise<EarlierNotices | undefined> {
  const run = part.persons;
  if (!run?.notify) return undefined;
  const p = await progressOf(s, part, run);
  const { sent, failed, unreachable, pending } = p;
  // A stopped run ended when it stopped (withdrawn from the scope, or cancelled by the tenant: who, then), a run
  // still sending when the later one replaces it.
  const stop = run.stopped;
  return {
    version: run.version,
    requestedAt: run.notify.requestedAt,
    sent,
    failed,
    unreachable,
    notTold: pending,
    endedAt: stop?.at ?? now.toISOString(),
    reason: stop?.reason ?? "replaced",
    by: stop?.reason === "cancelled" ? (stop.by ?? null) : null,
  };
}

/**
 * A new run for `version` in place of the part's current one, keeping the earlier runs' notices and the one it
 * replaces (`ended`, counted before the write). Why and when the replaced run ended is taken from the document being
 * replaced, not from `ended`: a run stopped between the caller's read and this write (a cancellation racing a newer
 * version's instruction) is kept as stopped, with its reason, who and when. The counts need no refresh: an earlier
 * run's counts are read again from its version's counters whenever it is shown (settledEarlier).
 */
function replacingRun(doc: BreachPartDoc, version: number, now: Date, ended: EarlierNotices | undefined): PersonsRun {
  const cur = doc.persons;
  if (cur?.notify && ended?.version !== cur.version) throw new AppError("conflict", "the breach's notices changed meanwhile; retry");
  const stop = cur?.stopped;
  const asStored: EarlierNotices | undefined = cur?.notify && ended
    ? { ...ended, endedAt: stop?.at ?? ended.endedAt, reason: stop?.reason ?? "replaced", by: stop?.reason === "cancelled" ? (stop.by ?? null) : null }
    : undefined;
  return newRun(version, now, [...(cur?.earlier ?? []), ...(asStored ? [asStored] : [])]);
}

// ---------------------------------------------------------------------------------------------------------------
// Starting a resolution

/**
 * Starts resolving the persons of the part's newest version, unless that version is resolved or being resolved, or
 * has no content (the tenant was taken out of the scope), or notices of an older version were instructed. Called by
 * the sync job after each new version; safe to call any number of times.
 */
export async function startPersonResolution(s: Services, part: BreachPartDoc): Promise<void> {
  const latest = latestVersion(part);
  if (part.status !== "open" || !latest.content) return;
  // Notices the tenant instructed go on through later versions: a newer version is resolved (and the older one's
  // remaining notices stopped) only when the tenant instructs notices for it.
  if (part.persons?.notify && !part.persons.stopped && part.persons.version < latest.n) return;
  if (part.persons && part.persons.version >= latest.n) {
    if (part.persons.resolution.status === "running") await queueJob(s, { kind: "resolve-persons", breachId: part.breachId, tenantId: part.tenantId, version: part.persons.version });
    return;
  }
  const now = s.clock.now();
  const ended = await endedRun(s, part, now);
  const r = await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
    (doc.persons && doc.persons.version >= latest.n) || (doc.persons?.notify && !doc.persons.stopped) ? undefined : { ...withoutMeta(doc), persons: replacingRun(doc, latest.n, now, ended) },
  );
  if (r.updated) await queueJob(s, { kind: "resolve-persons", breachId: part.breachId, tenantId: part.tenantId, version: latest.n });
}

// ---------------------------------------------------------------------------------------------------------------
// The resolution step

interface Found {
  roles: Set<PersonRole>;
  categories: Set<DataCategory>;
  sources: Array<{ kind: "upload" | "consent-subject" | "subject-request"; id: string }>;
}

/** The prefix of the batches of persons told of an earlier version: sorted after every other batch. */
const HEARD_BEFORE = "z";
/** How long a batch of persons told before waits at most before it looks again whether the others are done. */
const HEARD_BEFORE_RECHECK_MS = 5 * MINUTE;

/** What of a recipient a transfer holds: their address. */
const RECIPIENT_CATEGORIES: readonly DataCategory[] = ["contact"];

/** Consent events read per resolution step. */
const CONSENT_PAGE = 200;

/** The rows of the next page of the scope, and where the next page starts (null: this was the last). */
async function scopePage(s: Services, tenantId: string, content: TenantContent, cursor: string | null): Promise<{ rows: UploadScopeRow[]; last: string | null; done: boolean }> {
  const scope = content.scope;
  if (scope.uploads) {
    const ids = [...new Set(scope.uploads)].sort().filter((id) => cursor === null || id > cursor);
    const page = ids.slice(0, RESOLVE_PAGE_UPLOADS);
    const rows = await s.uploads.scopeRowsByIds(tenantId, page);
    return { rows, last: page.at(-1) ?? cursor, done: ids.length <= RESOLVE_PAGE_UPLOADS };
  }
  const window = scope.window!;
  const rows = await s.uploads.scopeRowsInWindow(tenantId, window.from, window.to, cursor, RESOLVE_PAGE_UPLOADS);
  const last = rows.at(-1)?.id ?? cursor;
  // A window names data categories: uploads of other categories only are not in scope (none named: all count).
  const wanted = scope.categories;
  const inScope = wanted.length === 0 ? rows : rows.filter((r) => r.categories.some((c) => wanted.includes(c)));
  return { rows: inScope, last, done: rows.length < RESOLVE_PAGE_UPLOADS };
}

/**
 * One step of the resolution of one version: reads a page of the scope's uploads, makes the persons it names (a
 * person already made by an earlier step gets this page's categories and records added), names the page's batches,
 * and moves the part's progress on (only from the step it read, so a step run twice counts once). Then queues the
 * next step, or, when done and the tenant has instructed it, the fan-out.
 */
async function resolveStep(s: Services, msg: Extract<PersonJob, { kind: "resolve-persons" }>, log?: Log): Promise<string> {
  const part = await s.breaches.getPart(msg.tenantId, msg.breachId);
  const run = part?.persons;
  // A cancelled run's resolution still finishes (it tells nobody), so the count not told is exact; a run withdrawn
  // from the scope does nothing more.
  if (!part || !run || run.version !== msg.version || part.status !== "open" || (run.stopped && run.stopped.reason !== "cancelled")) return "skipped";
  if (run.resolution.status === "done") {
    if (run.notify && !run.notify.queuedAt && !run.stopped) await queueJob(s, { ...msg, kind: "fan-out-persons" });
    return "resolved";
  }
  const content = contentOf(part, msg.version);
  if (!content) return "skipped";
  const page = run.resolution.page;
  const phase = run.resolution.phase;
  const found = new Map<string, Found>();
  const categories = new Set<DataCategory>(run.resolution.categories);
  const note = (h: string, role: PersonRole, cats: readonly DataCategory[], source: Found["sources"][number]) => {
    const f = found.get(h) ?? { roles: new Set(), categories: new Set(), sources: [] };
    f.roles.add(role);
    for (const c of cats) f.categories.add(c);
    if (!f.sources.some((x) => x.id === source.id) && f.sources.length < 5) f.sources.push(source);
    found.set(h, f);
  };
  let unreachable = 0;
  let unreachableRecords = 0;
  let records = 0;
  let last: string | null;
  let phaseDone: boolean;
  if (phase === "uploads") {
    const pageOf = await scopePage(s, part.tenantId, content, run.resolution.cursor);
    last = pageOf.last;
    phaseDone = pageOf.done;
    records = pageOf.rows.length;
    const personCategories = content.scope.personCategories ?? [...DEFAULT_PERSON_CATEGORIES];
    for (const row of pageOf.rows) {
      const rowCategories = [...new Set([...row.categories, ...content.scope.categories])];
      for (const c of rowCategories) categories.add(c);
      let lost = 0;
      const add = (hashes: string[], count: number, role: "data-subject" | "recipient", cats: readonly DataCategory[]) => {
        // Deleted records keep their counts but lose their keyed hashes: those persons cannot be reached.
        if (hashes.length === 0 && count > 0) lost += count;
        for (const h of hashes) note(h, role, cats, { kind: "upload", id: row.id });
      };
      if (personCategories.includes("data-subjects")) add(row.lookups.subjects, row.subjectCount, "data-subject", rowCategories);
      // A recipient's own data in a transfer is their address, not what the transfer says of its data subjects.
      if (personCategories.includes("recipients")) add(row.lookups.recipients, row.recipientCount, "recipient", RECIPIENT_CATEGORIES);
      if (lost > 0) {
        unreachable += lost;
        unreachableRecords++;
      }
    }
  } else if (phase === "packages") {
    // Access and portability packages made within the window: each holds all its person's data. A request erased
    // since has lost its keyed hash: its person cannot be reached (one each).
    const window = content.scope.window!;
    const packages = await s.packages.createdBetween(part.tenantId, window.from, window.to, run.resolution.cursor, CONSENT_PAGE);
    records = packages.length;
    last = packages.at(-1)?.id ?? run.resolution.cursor;
    phaseDone = packages.length < CONSENT_PAGE;
    const cats: DataCategory[] = [...new Set<DataCategory>(["contact", ...content.scope.categories])];
    const requests = await Promise.all(packages.map((p) => s.subjectRequests.get(part.tenantId, p.requestId)));
    requests.forEach((r, i) => {
      if (!r?.subjectHash) {
        unreachable++;
        unreachableRecords++;
        return;
      }
      for (const c of cats) categories.add(c);
      note(r.subjectHash, "request-subject", cats, { kind: "subject-request", id: packages[i]!.requestId });
    });
  } else {
    // Consent evidence recorded within the window: each event names its subject by the same keyed hash. Erased
    // subjects' events are gone with them, so there is nothing to count of them.
    const window = content.scope.window!;
    const events = await s.consents.recordedEventsBetween(part.tenantId, new Date(window.from), new Date(window.to), Number(run.resolution.cursor ?? "0"), CONSENT_PAGE);
    records = events.length;
    last = events.length > 0 ? String(events.at(-1)!.audit!.seq) : run.resolution.cursor;
    phaseDone = events.length < CONSENT_PAGE;
    const cats: DataCategory[] = [...new Set<DataCategory>(["contact", ...content.scope.categories])];
    if (events.length > 0) for (const c of cats) categories.add(c);
    for (const e of events) note(e.subjectHash, "consent-subject", cats, { kind: "consent-subject", id: e.subjectId });
  }
  // A window's uploads are followed by the consent events recorded in it and the packages made in it; a list of
  // uploads names uploads only.
  const nextPhase = !phaseDone || !content.scope.window ? null : phase === "uploads" ? "consents" : phase === "consents" ? "packages" : null;
  const done = phaseDone && nextPhase === null;

  const now = s.clock.now().toISOString();
  // Persons told of an earlier version go in batches of their own, named to come after the others (the fan-out
  // queues batches in name order): a new version reaches first those who have heard nothing yet.
  const notified = run.earlier.map((e) => e.version).reverse();
  const heard = await inParallel([...found.keys()], STORE_CONCURRENCY, async (h) => {
    for (const v of notified) if ((await s.breaches.getPerson(msg.tenantId, msg.breachId, v, h))?.state === "sent") return true;
    return false;
  });
  const entries = [...found.entries()];
  const order = new Map<string, string>();
  let fresh = 0;
  let again = 0;
  entries.forEach(([hash], i) => order.set(hash, heard[i] ? `${HEARD_BEFORE}${batchKeyOf(page, again++)}` : batchKeyOf(page, fresh++)));
  const mine = await inParallel(entries, STORE_CONCURRENCY, async ([hash, f]) => {
    const batch = order.get(hash)!;
    const doc: BreachPersonDoc = {
      id: personId(msg.breachId, msg.version, hash),
      tenantId: msg.tenantId,
      type: "breach-person",
      breachId: msg.breachId,
      version: msg.version,
      personHash: hash,
      roles: [...f.roles].sort(),
      categories: [...f.categories].sort(),
      sources: f.sources,
      batch,
      state: "pending",
      attempts: 0,
      lastFailure: null,
      messageId: personNoticeMessageId(msg.breachId, msg.version, hash),
      sentAt: null,
      createdAt: now,
    };
    if (await s.breaches.createPerson(doc)) return batch;
    // Made before: by this very step (run again after a crash) it is this step's; by an earlier step, merge.
    for (let attempt = 0; attempt < 5; attempt++) {
      const existing = await s.breaches.getPerson(msg.tenantId, msg.breachId, msg.version, hash);
      if (!existing) throw new Error("a breach person vanished while it was merged");
      if (existing.batch === batch) return batch;
      const merged = mergePerson(existing, doc);
      if (!merged || (await s.breaches.replacePerson(merged, existing._etag))) return null;
    }
    throw new Error("a breach person was contended while it was merged");
  });

  const batches = new Map<string, string[]>();
  entries.forEach(([hash], i) => {
    const b = mine[i];
    if (b) batches.set(b, [...(batches.get(b) ?? []), hash]);
  });
  await inParallel([...batches.entries()], STORE_CONCURRENCY, ([batch, hashes]) =>
    s.breaches.createBatch({
      id: batchId(msg.breachId, msg.version, batch),
      tenantId: msg.tenantId,
      type: "breach-person-batch",
      breachId: msg.breachId,
      version: msg.version,
      batch,
      personHashes: hashes,
      // Not due before the tenant instructs the notices: never instructed (the usual case below a high risk), it must
      // not fill the sweep's catch-up for lost batches.
      state: "resolved",
      sent: 0,
      failed: 0,
      unreachable: 0,
      nextAttemptAt: now,
      leaseUntil: null,
      updatedAt: now,
    }),
  );

  const persons = mine.filter((b) => b !== null).length;
  const r = await s.breaches.updatePart(msg.tenantId, msg.breachId, (doc) => {
    const cur = doc.persons;
    if (!cur || cur.version !== msg.version || cur.resolution.status !== "running" || cur.resolution.page !== page || cur.resolution.phase !== phase) return undefined;
    return {
      ...withoutMeta(doc),
      persons: {
        ...cur,
        resolution: {
          status: done ? "done" : "running",
          phase: nextPhase ?? phase,
          page: page + 1,
          cursor: nextPhase ? null : last,
          records: cur.resolution.records + records,
          persons: cur.resolution.persons + persons,
          unreachable: cur.resolution.unreachable + unreachable,
          unreachableRecords: cur.resolution.unreachableRecords + unreachableRecords,
          categories: [...categories].sort(),
          batches: cur.resolution.batches + batches.size,
          heardBefore: cur.resolution.heardBefore + mine.filter((b) => b?.startsWith(HEARD_BEFORE)).length,
          finishedAt: done ? s.clock.now().toISOString() : null,
        },
      },
    };
  });
  if (!r.updated) return "skipped";
  const res = r.doc.persons!;
  if (!done) {
    await queueJob(s, msg);
    return "resolving";
  }
  await recordAuditOnce(
    s,
    msg.tenantId,
    SYSTEM,
    "breach.persons-resolved",
    { type: "breach", id: `${msg.breachId}.v${msg.version}` },
    { breachId: msg.breachId, version: msg.version, records: res.resolution.records, persons: res.resolution.persons, unreachable: res.resolution.unreachable, batches: res.resolution.batches },
    `breach:${msg.breachId}:v${msg.version}:persons-resolved`,
  );
  log?.info("breach.persons-resolved", { breachId: msg.breachId, tenantId: msg.tenantId, version: msg.version, persons: res.resolution.persons, unreachable: res.resolution.unreachable });
  if (res.notify && !res.notify.queuedAt && !res.stopped) await queueJob(s, { ...msg, kind: "fan-out-persons" });
  return "resolved";
}

/** The person with another record's roles, categories and sources added; undefined when that adds nothing. */
function mergePerson(existing: StoredBreachPerson, found: BreachPersonDoc): BreachPersonDoc | undefined {
  const roles = [...new Set([...existing.roles, ...found.roles])].sort();
  const categories = [...new Set([...existing.categories, ...found.categories])].sort();
  const sources = [...existing.sources];
  for (const src of found.sources) if (sources.length < 5 && !sources.some((x) => x.id === src.id)) sources.push(src);
  if (roles.length === existing.roles.length && categories.length === existing.categories.length && sources.length === existing.sources.length) return undefined;
  return { ...withoutMeta(existing), roles, categories, sources };
}

// ---------------------------------------------------------------------------------------------------------------
// The instruction and the fan-out

/** Persons of the tenant's part: the resolution, the notices' progress and estimate, the public communications. */
export interface PersonsView {
  breachId: string;
  version: number;
  resolution: PersonsRun["resolution"] & { startedAt: string };
  notices: null | {
    requestedAt: string;
    requestedBy: string;
    queuedAt: string | null;
    batchesQueued: number;
    sent: number;
    pending: number;
    failed: number;
    unreachable: number;
    /** When the last pending notice is expected to go, at the e-mail service's pace. */
    estimatedCompletionAt: string | null;
    /** BREACH_NOTICE_MAX_HOURS after the instruction. */
    deadlineAt: string;
    estimateBreaksDeadline: boolean;
    /** When the notices stopped: the tenant was taken out of the breach's scope, or cancelled them (null: not stopped). */
    stoppedAt: string | null;
    /** Why they stopped: "withdrawn" (taken out of the scope) or "cancelled" (DELETE .../notify-persons); null: not stopped. */
    stoppedReason: StopReason | null;
    /** Who cancelled them (the tenant's actor) when cancelled; null otherwise. */
    stoppedBy: string | null;
    /** Persons who were still pending when the notices stopped: they are not told (0 unless stopped). */
    notTold: number;
    delayAlert: NonNullable<PersonsRun["notify"]>["delayAlert"];
    completedAt: string | null;
    limits: SendLimits;
  };
  /**
   * The notices of earlier versions, oldest first: why and when each ended (when a later run replaced theirs), and
   * their counts read again from their version's counters at each read (settledEarlier), so a step still sending
   * when the run was replaced is counted once it ends.
   */
  earlier: EarlierNotices[];
  publicCommunications: BreachPartDoc["publicCommunications"];
}

/** A count of pending notices across every breach older than this is not used (the sweep counts every 5 minutes). */
const BACKLOG_FRESH_MS = 15 * MINUTE;

const runKey = (part: BreachPartDoc) => `${part.tenantId}/${part.breachId}`;

/**
 * The notices an estimate waits behind: its share of every notice pending across every breach, which share one send
 * budget (waitingBehindShare): this run's pending now, the other runs' as the breach sweep last counted them (fresh
 * within BACKLOG_FRESH_MS; the estimate uses their sum and batches only).
 */
async function waitingBehind(s: Services, part: BreachPartDoc, ownPending: number, now: Date): Promise<number> {
  if (ownPending === 0) return 0;
  const backlog = await s.breaches.getSendBacklog();
  if (!backlog || now.getTime() - Date.parse(backlog.at) > BACKLOG_FRESH_MS) return ownPending;
  const others = Object.entries(backlog.runs).filter(([k]) => k !== runKey(part)).map(([, n]) => n);
  const pending = ownPending + others.reduce((a, n) => a + n, 0);
  const batches = batchesFor(ownPending) + others.reduce((a, n) => a + batchesFor(n), 0);
  return waitingBehindShare(ownPending, pending, batches);
}

/**
 * The notices' progress of a run: from the counters the batch workers keep (PROGRESS_SHARDS point reads, however
 * many persons), or, for an instruction stored before those counters existed, by reading every batch.
 */
async function progressOf(s: Services, part: BreachPartDoc, run: PersonsRun): Promise<{ sent: number; failed: number; unreachable: number; pending: number }> {
  if (run.notify?.progress === "counters") {
    return progressOfCounts(run.resolution.persons, (await s.breaches.recordedBatchCounts(part.tenantId, part.breachId, run.version)).map((r) => r.counts));
  }
  const rows = await s.breaches.batchCounts(part.tenantId, part.breachId, run.version);
  let sent = 0;
  let failed = 0;
  let unreachable = 0;
  let size = 0;
  for (const r of rows) {
    sent += r.sent;
    failed += r.failed;
    unreachable += r.unreachable;
    size += r.size;
  }
  // Before the resolution is done, persons still to be found are pending too.
  const total = Math.max(size, run.resolution.persons);
  return { sent, failed, unreachable, pending: Math.max(0, total - sent - failed - unreachable) };
}

/**
 * The notices of earlier versions with their counts as they stand now: each snapshot was taken when a later run
 * replaced its run, when a step of it could still be in its send loop (a step records its counts only when its loop
 * ends), so its counts are read again from its version's counters (kept per version; they only grow). Each count is
 * the larger of the snapshot's and the counters' (a run instructed before the counters existed has none: its
 * snapshot stands), and notTold is what of the snapshot's persons is left. PROGRESS_SHARDS point reads per entry.
 */
async function settledEarlier(s: Services, part: BreachPartDoc, earlier: readonly EarlierNotices[]): Promise<EarlierNotices[]> {
  return Promise.all(
    earlier.map(async (e) => {
      const counted = progressOfCounts(0, (await s.breaches.recordedBatchCounts(part.tenantId, part.breachId, e.version)).map((r) => r.counts));
      const sent = Math.max(e.sent, counted.sent);
      const failed = Math.max(e.failed, counted.failed);
      const unreachable = Math.max(e.unreachable, counted.unreachable);
      const total = e.sent + e.failed + e.unreachable + e.notTold;
      return { ...e, sent, failed, unreachable, notTold: Math.max(0, total - sent - failed - unreachable) };
    }),
  );
}

/** The persons view of a part (null before its first resolution). */
export async function personsView(s: Services, part: BreachPartDoc): Promise<PersonsView | null> {
  const run = part.persons;
  if (!run) return null;
  let notices: PersonsView["notices"] = null;
  if (run.notify) {
    const counted = await progressOf(s, part, run);
    // A stopped run tells nobody more: what was pending is not told, and there is nothing to estimate. (A part
    // withdrawn before runs were stopped at the withdrawal is stopped too; the sweep marks it so.)
    const stoppedAt = run.stopped?.at ?? (part.status !== "open" ? (part.withdrawnAt ?? part.updatedAt) : null);
    const stoppedReason: StopReason | null = run.stopped?.reason ?? (stoppedAt ? "withdrawn" : null);
    const p = stoppedAt ? { ...counted, pending: 0 } : counted;
    const now = s.clock.now();
    const rate = await s.breaches.getSendRate();
    const estimate = estimateCompletion(await waitingBehind(s, part, p.pending, now), rate?.state, now, limitsOf(s));
    const requestedAt = new Date(run.notify.requestedAt);
    notices = {
      requestedAt: run.notify.requestedAt,
      requestedBy: run.notify.by,
      queuedAt: run.notify.queuedAt,
      batchesQueued: run.notify.queued,
      ...p,
      estimatedCompletionAt: p.pending > 0 ? estimate.toISOString() : null,
      deadlineAt: noticeDeadline(requestedAt, s.settings.breachNoticeMaxHours).toISOString(),
      estimateBreaksDeadline: p.pending > 0 && breaksDeadline(estimate, requestedAt, s.settings.breachNoticeMaxHours),
      stoppedAt,
      stoppedReason,
      stoppedBy: run.stopped?.reason === "cancelled" ? (run.stopped.by ?? null) : null,
      notTold: stoppedAt ? counted.pending : 0,
      delayAlert: run.notify.delayAlert,
      completedAt: run.notify.completedAt,
      limits: limitsOf(s),
    };
  }
  return {
    breachId: part.breachId,
    version: run.version,
    resolution: { ...run.resolution, startedAt: run.startedAt },
    notices,
    earlier: await settledEarlier(s, part, run.earlier),
    publicCommunications: part.publicCommunications,
  };
}

/** The tenant's persons view of its part. Errors: not-found. */
export async function getPersonsOfBreach(s: Services, caller: TenantCaller, id: string): Promise<PersonsView> {
  const part = await s.breaches.getPart(caller.tenantId, id);
  if (!part) throw new AppError("not-found", "no breach with this id affects you");
  return (await personsView(s, part)) ?? emptyView(part);
}

function emptyView(part: BreachPartDoc): PersonsView {
  const v = latestVersion(part).n;
  return {
    breachId: part.breachId,
    version: v,
    resolution: { ...newRun(v, new Date(part.createdAt)).resolution, startedAt: part.createdAt },
    notices: null,
    earlier: part.persons?.earlier ?? [],
    publicCommunications: part.publicCommunications,
  };
}

/**
 * The tenant's instruction to tell the persons of its part's newest version (Art. 34(1)): recorded once per version
 * (a repeat answers the same), audited; the notices go once the persons are resolved. Errors: not-found, conflict
 * (the tenant was taken out of the scope; or it cancelled the notices of this version: they go again only for a
 * newer version, whose run replaces the cancelled one as after a withdrawal).
 */
export async function requestPersonNotices(s: Services, caller: TenantCaller, id: string): Promise<{ view: PersonsView; created: boolean }> {
  const now = s.clock.now();
  let created = false;
  const before = await s.breaches.getPart(caller.tenantId, id);
  const ended = before && before.persons?.version !== latestVersion(before).n ? await endedRun(s, before, now) : undefined;
  const r = await s.breaches.updatePart(caller.tenantId, id, (doc) => {
    // The callback runs again when the write lost a race: only the run that writes the instruction created it.
    created = false;
    const latest = latestVersion(doc);
    if (doc.status !== "open" || !latest.content) throw new AppError("conflict", "you are no longer in this breach's scope (see its newest version): there is no one to tell");
    const run = doc.persons && doc.persons.version === latest.n ? doc.persons : replacingRun(doc, latest.n, now, ended);
    if (run.stopped?.reason === "cancelled") {
      throw new AppError(
        "conflict",
        `you cancelled the notices to the persons of version ${run.version} of your part on ${run.stopped.at}: they are not instructed again for that version; ` +
          "notices go again only for a newer version of the breach (a later version of your part)",
      );
    }
    if (run.notify) return undefined;
    created = true;
    return {
      ...withoutMeta(doc),
      persons: { ...run, notify: { requestedAt: now.toISOString(), by: caller.actor, queued: 0, cursor: null, queuedAt: null, delayAlert: null, completedAt: null, progress: "counters" } },
      updatedAt: now.toISOString(),
    };
  });
  if (!r.updated && r.reason === "not-found") throw new AppError("not-found", "no breach with this id affects you");
  if (!r.updated && r.reason === "contended") throw new AppError("conflict", "the breach was changed by another request meanwhile; retry");
  const part = r.doc!;
  const run = part.persons!;
  await recordAuditOnce(
    s,
    caller.tenantId,
    caller,
    "breach.persons-notify-requested",
    { type: "breach", id: `${id}.v${run.version}` },
    { breachId: id, version: run.version },
    `breach:${id}:v${run.version}:notify-persons`,
  );
  const ref = { breachId: id, tenantId: caller.tenantId, version: run.version };
  await queueJob(s, run.resolution.status === "done" ? { kind: "fan-out-persons", ...ref } : { kind: "resolve-persons", ...ref });
  return { view: (await personsView(s, part))!, created };
}

/**
 * The tenant's cancellation of its instruction to tell the persons (e.g. given by mistake, or a public communication
 * decided instead: Art. 34(3)(c)): the part's current run (the notices last instructed, also of an earlier version
 * still going on through later ones) is stopped (`stopped: { reason: "cancelled", by }`), so
 * nobody more is told. Each batch step re-reads the part before each group of SEND_CONCURRENCY sends, so a step
 * already sending when the stop is stored sends at most the group it has begun (8 notices; the stop takes effect at
 * the worker's next read that sees it: Session consistency in Azure), and every later step closes its
 * batch as `stopped` without sending; the resolution still finishes (telling nobody), so `notTold` comes out exact. No
 * estimate or delay alert is kept for it and the breach sweep does not count it. Recorded once, audited once
 * (`breach.persons-notify-cancelled`, with the ids, the version and `stoppedAt` only); a repeat answers the same.
 * The answer's counts (sent, failed, unreachable, notTold) are the counters as they stand at the answer: a step
 * already sending records its counts when its loop ends, so they settle within seconds (the persons view then shows
 * them; those told before the stop move from notTold to sent). Errors: not-found; conflict when there is nothing to
 * cancel (no notices instructed, those of an earlier version ended and the newest not instructed, the part taken out
 * of the scope, or every notice already done).
 */
export async function cancelPersonNotices(s: Services, caller: TenantCaller, id: string, log?: Log): Promise<PersonsView> {
  const before = await s.breaches.getPart(caller.tenantId, id);
  if (!before) throw new AppError("not-found", "no breach with this id affects you");
  const cur = before.persons;
  // Whether every notice of the run is done is counted before the write (a batch finishing meanwhile only leaves
  // fewer not told); the write refuses a run that changed since.
  const done = cur?.notify && !cur.stopped && cur.resolution.status === "done" ? (cur.notify.completedAt !== null || (await progressOf(s, before, cur)).pending === 0) : false;
  const now = s.clock.now();
  const r = await s.breaches.updatePart(caller.tenantId, id, (doc) => {
    const run = doc.persons;
    if (run?.stopped?.reason === "cancelled") return undefined;
    if (doc.status !== "open" || run?.stopped) {
      throw new AppError("conflict", "you are no longer in this breach's scope (see its newest version): its notices to the persons stopped then; there is nothing to cancel");
    }
    if (!run?.notify) throw new AppError("conflict", nothingInstructed(doc));
    if (run.version !== cur?.version || !cur.notify) throw new AppError("conflict", "the breach's notices changed meanwhile; retry");
    if (done) throw new AppError("conflict", `every notice to the persons of version ${run.version} is done already (sent, failed or unreachable): there is nothing to cancel`);
    return { ...withoutMeta(doc), persons: { ...run, stopped: { at: now.toISOString(), reason: "cancelled", by: caller.actor } }, updatedAt: now.toISOString() };
  });
  if (!r.updated && r.reason === "not-found") throw new AppError("not-found", "no breach with this id affects you");
  if (!r.updated && r.reason === "contended") throw new AppError("conflict", "the breach was changed by another request meanwhile; retry");
  const part = r.doc!;
  const run = part.persons!;
  const view = (await personsView(s, part))!;
  const n = view.notices!;
  await recordAuditOnce(
    s,
    caller.tenantId,
    caller,
    "breach.persons-notify-cancelled",
    { type: "breach", id: `${id}.v${run.version}` },
    // No counts: a step already in its send loop records its counts only after the loop, so counts read now may
    // still grow; the persons view (and the report) show them as they settle, a permanent entry would freeze them.
    { breachId: id, version: run.version, stoppedAt: run.stopped!.at },
    `breach:${id}:v${run.version}:notify-persons-cancelled`,
  );
  if (r.updated) log?.info("breach.persons-notify-cancelled", { breachId: id, tenantId: caller.tenantId, version: run.version, stoppedAt: n.stoppedAt });
  return view;
}

/**
 * Why there is nothing to cancel when the part's current run is not instructed: no notice was ever instructed, or
 * those of an earlier version ended (cancelled, withdrawn or replaced: when) and none of the newest is instructed.
 */
function nothingInstructed(doc: BreachPartDoc): string {
  const last = doc.persons?.earlier.at(-1);
  const newest = doc.persons?.version ?? latestVersion(doc).n;
  if (!last) return "no notices to the persons were instructed for this breach (POST .../notify-persons): there is nothing to cancel";
  const how = last.reason === "cancelled" ? "were cancelled" : last.reason === "withdrawn" ? "stopped when you were taken out of the breach's scope" : "were replaced by a later version's run";
  return (
    `the notices to the persons of version ${last.version} of your part ${how} on ${last.endedAt}; ` +
    `no notice of version ${newest} is instructed (POST .../notify-persons): there is nothing to cancel`
  );
}

/** A batch named by the resolution made due (pending) once the notices are instructed; any other state is kept. */
async function markInstructed(s: Services, tenantId: string, breachId: string, version: number, batch: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const doc = await s.breaches.getBatch(tenantId, breachId, version, batch);
    if (!doc || doc.state !== "resolved") return;
    const now = s.clock.now().toISOString();
    if (await s.breaches.replaceBatch({ ...withoutMeta(doc), state: "pending", nextAttemptAt: now, updatedAt: now }, doc._etag)) return;
  }
  throw new Error("a breach batch was contended while the fan-out queued it");
}

/**
 * Queues one message per batch of the resolved version, a page of batches at a time, remembering the last one
 * queued (a crash resumes there; a batch queued twice is worked once). Then checks the estimate.
 */
async function fanOutStep(s: Services, msg: Extract<PersonJob, { kind: "fan-out-persons" }>, log?: Log): Promise<string> {
  let part = await s.breaches.getPart(msg.tenantId, msg.breachId);
  let run = part?.persons;
  if (!part || !run || run.version !== msg.version || part.status !== "open" || run.stopped || !run.notify) return "skipped";
  if (run.resolution.status !== "done") return "waiting-for-resolution";
  while (!run.notify!.queuedAt) {
    const names = await s.breaches.batchNames(msg.tenantId, msg.breachId, msg.version, run.notify!.cursor === null ? null : batchId(msg.breachId, msg.version, run.notify!.cursor), FAN_OUT_PAGE);
    await inParallel(names, STORE_CONCURRENCY, async (n) => {
      await markInstructed(s, msg.tenantId, msg.breachId, msg.version, n.batch);
      await queueJob(s, { kind: "person-batch", breachId: msg.breachId, tenantId: msg.tenantId, version: msg.version, batch: n.batch });
    });
    const finished = names.length < FAN_OUT_PAGE;
    const cursor = run.notify!.cursor;
    const r = await s.breaches.updatePart(msg.tenantId, msg.breachId, (doc) => {
      const cur = doc.persons;
      if (!cur?.notify || cur.version !== msg.version || cur.stopped || cur.notify.queuedAt || cur.notify.cursor !== cursor) return undefined;
      return {
        ...withoutMeta(doc),
        persons: {
          ...cur,
          notify: { ...cur.notify, queued: cur.notify.queued + names.length, cursor: names.at(-1)?.batch ?? cur.notify.cursor, queuedAt: finished ? s.clock.now().toISOString() : null },
        },
      };
    });
    if (!r.updated) return "skipped";
    part = r.doc;
    run = part.persons!;
  }
  log?.info("breach.persons-queued", { breachId: msg.breachId, tenantId: msg.tenantId, version: msg.version, batches: run.notify!.queued });
  await checkDelay(s, part, log);
  return "queued";
}

// ---------------------------------------------------------------------------------------------------------------
// The send budget

/** Takes up to `want` sends from the shared budget (optimistic concurrency on one document). */
async function takeBudget(s: Services, want: number): Promise<Grant> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const cur = await s.breaches.getSendRate();
    const g = takeSends(cur?.state, s.clock.now(), want, limitsOf(s));
    if (g.granted === 0) return g;
    if (await s.breaches.saveSendRate(g.state, cur?.etag)) return g;
  }
  throw new Error("the e-mail send budget was contended; the batch is retried");
}

/**
 * Gives `n` sends taken with `taken` (the state a grant stored) back to the budget: from each window (minute, hour)
 * still the one they were taken in; a window that has ended since started again at zero and gets nothing back. Best
 * effort (the budget is contended by many workers): after 10 lost races the sends stay used until their window ends.
 */
async function giveBackBudget(s: Services, taken: RateState, n: number): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = await s.breaches.getSendRate();
    if (!cur) return;
    const minute = cur.state.minuteStart === taken.minuteStart;
    const hour = cur.state.hourStart === taken.hourStart;
    if (!minute && !hour) return;
    const next: RateState = {
      ...cur.state,
      minuteCount: minute ? Math.max(0, cur.state.minuteCount - n) : cur.state.minuteCount,
      hourCount: hour ? Math.max(0, cur.state.hourCount - n) : cur.state.hourCount,
    };
    if (await s.breaches.saveSendRate(next, cur.etag)) return;
  }
}

/** Blocks all sending until `until` (the e-mail service's Retry-After). */
async function blockBudget(s: Services, until: Date): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const cur = await s.breaches.getSendRate();
    if (await s.breaches.saveSendRate(blockSends(cur?.state, s.clock.now(), until), cur?.etag)) return;
  }
  throw new Error("the e-mail send budget was contended while recording a Retry-After");
}

// ---------------------------------------------------------------------------------------------------------------
// A batch

const laterOf = (a: Date | null, b: Date): Date => (a && a.getTime() > b.getTime() ? a : b);

/** What an e-mail sender's error says (the ACS adapter's EmailSendError; the outbox's errors say nothing of this). */
function sendFailure(err: unknown): { code: string; retryable: boolean; throttled: boolean; retryAfter?: { seconds: number } | { at: Date } } {
  const e = err as { name?: unknown; code?: unknown; retryable?: unknown; statusCode?: unknown; retryAfter?: { seconds: number } | { at: Date } } | null;
  const code = typeof e?.code === "string" ? e.code : typeof e?.name === "string" ? e.name : "unknown";
  if (e?.name === "InvalidEmailMessageError") return { code: code.slice(0, 60), retryable: false, throttled: false };
  const throttled = e?.statusCode === 429;
  return { code: code.slice(0, 60), retryable: typeof e?.retryable === "boolean" ? e.retryable : true, throttled, ...(e?.retryAfter ? { retryAfter: e.retryAfter } : {}) };
}

/**
 * The addresses of `persons`, read from their records: each record's data key is unwrapped and its subjects and
 * recipients decrypted once; an address is matched to a person by the tenant's keyed hash. Records deleted since the
 * resolution read nothing (those persons are unreachable now).
 */
async function addressesOf(s: Services, tenantId: string, persons: readonly BreachPersonDoc[]): Promise<{ addresses: Map<string, string>; recordsRead: number }> {
  const secret = await s.keys.lookupSecret(tenantId);
  const wanted = new Set(persons.map((p) => p.personHash));
  const addresses = new Map<string, string>();
  const uploads = [...new Set(persons.flatMap((p) => p.sources.filter((x) => x.kind === "upload").map((x) => x.id)))];
  const subjects = [...new Set(persons.flatMap((p) => p.sources.filter((x) => x.kind === "consent-subject").map((x) => x.id)))];
  let recordsRead = 0;
  const take = (h: string, address: string) => {
    if (wanted.has(h) && !addresses.has(h)) addresses.set(h, address);
  };
  const fromUpload = async (doc: Awaited<ReturnType<typeof s.uploads.get>>) => {
    if (!doc?.personal || !doc.dataKey) return;
    const key = await unwrapUploadKey(s, doc);
    recordsRead++;
    const lists = [openField(key, tenantId, doc.id, "subjects", doc.personal.subjects), openField(key, tenantId, doc.id, "recipients", doc.personal.recipients)];
    for (const list of lists) for (const address of JSON.parse(list) as string[]) take(lookupHash(secret, normaliseEmail(address)), address);
  };
  // Read the records in order, stopping once every person has an address (most persons have one record).
  for (let i = 0; i < uploads.length && addresses.size < wanted.size; i += STORE_CONCURRENCY) {
    for (const doc of await Promise.all(uploads.slice(i, i + STORE_CONCURRENCY).map((id) => s.uploads.get(tenantId, id)))) await fromUpload(doc);
  }
  const requests = [...new Set(persons.flatMap((p) => p.sources.filter((x) => x.kind === "subject-request").map((x) => x.id)))];
  for (let i = 0; i < requests.length && addresses.size < wanted.size; i += STORE_CONCURRENCY) {
    const docs = await Promise.all(requests.slice(i, i + STORE_CONCURRENCY).map((id) => s.subjectRequests.get(tenantId, id)));
    for (const doc of docs) {
      if (!doc?.personal || !doc.subjectHash || !wanted.has(doc.subjectHash) || addresses.has(doc.subjectHash)) continue;
      const key = await unwrapRequestKey(s, doc);
      if (!key) continue;
      recordsRead++;
      take(doc.subjectHash, openRequestField(key, tenantId, doc.id, "email", doc.personal.email));
    }
  }
  const fromSubject = async (doc: Awaited<ReturnType<typeof s.consents.getSubjectById>>) => {
    if (!doc || !wanted.has(doc.lookup) || addresses.has(doc.lookup)) return;
    const key = await unwrapSubjectKey(s, doc);
    recordsRead++;
    take(doc.lookup, openConsentField(key, tenantId, doc.subjectId, "email", doc.email));
  };
  for (let i = 0; i < subjects.length && addresses.size < wanted.size; i += STORE_CONCURRENCY) {
    for (const doc of await Promise.all(subjects.slice(i, i + STORE_CONCURRENCY).map((id) => s.consents.getSubjectById(tenantId, id)))) await fromSubject(doc);
  }
  // A person keeps at most five source records: when those were all deleted since, a live record the resolution did
  // not keep may still name them. Found by their keyed hash (uploads, then their consent record), a few each.
  for (const p of persons) {
    if (addresses.has(p.personHash)) continue;
    const ids = (await s.uploads.idsNamingPerson(tenantId, p.personHash, FALLBACK_RECORDS)).filter((id) => !uploads.includes(id));
    for (const doc of await Promise.all(ids.map((id) => s.uploads.get(tenantId, id)))) if (!addresses.has(p.personHash)) await fromUpload(doc);
    if (!addresses.has(p.personHash)) await fromSubject(await s.consents.getSubjectByLookup(tenantId, p.personHash));
  }
  return { addresses, recordsRead };
}

interface NoticeContext {
  language: Language;
  timeZone: string;
  controllerName: string;
  contactPoint: string;
  content: TenantContent;
}

async function noticeContext(s: Services, part: BreachPartDoc, version: number): Promise<NoticeContext> {
  const tenant = await s.tenants.get(part.tenantId);
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const contact = tenant ? await tenantContactEmail(s, tenant) : undefined;
  const v = part.versions.find((x) => x.n === version);
  return {
    language,
    timeZone: tenant?.timeZone ?? DEFAULT_TIME_ZONE,
    controllerName: tenant?.name ?? "",
    contactPoint: contact ?? s.settings.operatorContactEmail ?? "",
    content: v!.content!,
  };
}

function personNoticeView(ctx: NoticeContext, breachId: string, version: number, person: BreachPersonDoc) {
  const c = ctx.content;
  const unknown = ctx.language === "da" ? "endnu ikke kendt" : "not known yet";
  return {
    controllerName: ctx.controllerName,
    contactPoint: ctx.contactPoint,
    breachId,
    version,
    description: c.description,
    awareAt: formatInstant(new Date(c.awareAt), ctx.language, ctx.timeZone),
    categories: person.categories.map((cat) => ({ label: CATEGORY_LABELS[cat][ctx.language] })),
    noCategories: person.categories.length === 0,
    likelyConsequences: c.likelyConsequences ?? c.consequences ?? unknown,
    measuresTaken: c.measuresTaken ?? unknown,
    measuresProposed: c.measuresProposed ?? unknown,
    measuresLimiting: c.measuresLimiting ?? "",
    hasMeasuresLimiting: c.measuresLimiting !== null,
  };
}

/**
 * One batch: under a lease, takes what the budget allows of its pending persons, reads their addresses, e-mails
 * each once (a keyed send) and records each as sent as soon as it went. What is left waits for the budget (a
 * delayed message; the sweep if it is lost). Returns what happened, for the log.
 */
async function batchStep(s: Services, msg: Extract<PersonJob, { kind: "person-batch" }>, log?: Log): Promise<string> {
  const part = await s.breaches.getPart(msg.tenantId, msg.breachId);
  const run = part?.persons;
  const batch = await s.breaches.getBatch(msg.tenantId, msg.breachId, msg.version, msg.batch);
  if (!batch || batch.state !== "pending") return "skipped";
  // A batch of a run that was stopped (the tenant taken out of the scope, or its notices cancelled) or replaced by a later version's is closed,
  // so that the sweep's catch-up for lost batches never picks it again (nothing is sent for it).
  if (!part || part.status !== "open" || !run || run.stopped || run.version > msg.version) {
    await s.breaches.replaceBatch({ ...withoutMeta(batch), state: "stopped", leaseUntil: null, updatedAt: s.clock.now().toISOString() }, batch._etag);
    return "stopped";
  }
  if (run.version !== msg.version) return "skipped";
  if (!run.notify) {
    // A batch made due before the instruction (stored before batches waited for it): it waits for the fan-out again.
    await s.breaches.replaceBatch({ ...withoutMeta(batch), state: "resolved", updatedAt: s.clock.now().toISOString() }, batch._etag);
    return "not-instructed";
  }
  const now = s.clock.now();
  if (batch.leaseUntil && Date.parse(batch.leaseUntil) > now.getTime()) {
    // Another worker holds it: look again when its lease runs out (it may die holding it), not only at the sweep.
    await queueJob(s, msg, Date.parse(batch.leaseUntil) - now.getTime() + 1000);
    return "held";
  }
  if (Date.parse(batch.nextAttemptAt) > now.getTime()) return "waiting";
  // Persons told of an earlier version wait until those who heard nothing yet are told (or given up on).
  if (msg.batch.startsWith(HEARD_BEFORE) && run.notify.progress === "counters") {
    const rows = await s.breaches.recordedBatchCounts(msg.tenantId, msg.breachId, msg.version);
    const freshDone = rows.filter((r) => !r.batch.startsWith(HEARD_BEFORE)).reduce((n, r) => n + r.counts[0] + r.counts[1] + r.counts[2], 0);
    const freshLeft = run.resolution.persons - run.resolution.heardBefore - freshDone;
    if (freshLeft > 0) {
      // Looked at again when the others are expected to be done, or sooner (they may finish early: found without an
      // address, given up): between one and HEARD_BEFORE_RECHECK_MS on; the sweep leaves it until then.
      const expected = estimateCompletion(freshLeft, (await s.breaches.getSendRate())?.state, now, limitsOf(s)).getTime();
      const at = new Date(Math.min(now.getTime() + HEARD_BEFORE_RECHECK_MS, Math.max(now.getTime() + MINUTE, expected)));
      if (await s.breaches.replaceBatch({ ...withoutMeta(batch), nextAttemptAt: at.toISOString(), updatedAt: now.toISOString() }, batch._etag)) {
        await queueJob(s, msg, at.getTime() - now.getTime());
      }
      return "after-the-others";
    }
  }
  // The budget first, one read: at a window's start many waiting batches wake at once, and those the budget has no
  // room for wait for the next window without taking a lease or reading their persons.
  if (batch.sent + batch.failed + batch.unreachable < batch.personHashes.length) {
    const peek = takeSends((await s.breaches.getSendRate())?.state, now, 1, limitsOf(s));
    if (peek.granted === 0) {
      const at = peek.retryAt ?? new Date(now.getTime() + MINUTE);
      // Not due before then: the sweep's catch-up leaves it, and a duplicate message for it ends at once ("waiting").
      if (await s.breaches.replaceBatch({ ...withoutMeta(batch), nextAttemptAt: at.toISOString(), updatedAt: now.toISOString() }, batch._etag)) {
        await queueJob(s, msg, at.getTime() - now.getTime());
      }
      return "waiting-for-budget";
    }
  }
  const leaseUntil = new Date(now.getTime() + BATCH_LEASE_MS).toISOString();
  const leaseEtag = await s.breaches.replaceBatch({ ...withoutMeta(batch), leaseUntil, updatedAt: now.toISOString() }, batch._etag);
  if (!leaseEtag) return "held";
  try {
    return await workLeasedBatch(s, msg, part, batch, leaseEtag, log);
  } catch (err) {
    // A step that failed half-way (a storage call that timed out, a lost race) gives its lease back at once, so the
    // queue's retry (seconds later) works the batch again instead of waiting out the lease: each person told so far
    // is recorded as sent, and the retry tells only the others.
    await releaseBatch(s, msg, leaseEtag).catch(() => undefined);
    throw err;
  }
}

/**
 * Whether the run of a batch's message no longer sends: the part gone or withdrawn, its run stopped (the tenant
 * cancelled, or the part left the scope) or replaced by a later version's. One point read of the part.
 */
async function runStopped(s: Services, msg: Extract<PersonJob, { kind: "person-batch" }>): Promise<boolean> {
  const part = await s.breaches.getPart(msg.tenantId, msg.breachId);
  const run = part?.persons;
  return !part || part.status !== "open" || !run || run.stopped !== null || run.version !== msg.version;
}

/** A batch's persons told, given up and unreachable, as its counters hold them. */
function countsOf(persons: readonly BreachPersonDoc[]): BatchCounts {
  return [persons.filter((p) => p.state === "sent").length, persons.filter((p) => p.state === "failed").length, persons.filter((p) => p.state === "unreachable").length];
}

/**
 * Gives a batch's lease back and makes it due now, unless it changed since the lease was taken; first records the
 * counts of its persons as they are stored (those told before the failure show as sent at once).
 */
async function releaseBatch(s: Services, msg: Extract<PersonJob, { kind: "person-batch" }>, leaseEtag: string): Promise<void> {
  const fresh = await s.breaches.getBatch(msg.tenantId, msg.breachId, msg.version, msg.batch);
  if (!fresh || fresh._etag !== leaseEtag) return;
  const persons = await inParallel(fresh.personHashes, STORE_CONCURRENCY, (h) => s.breaches.getPerson(msg.tenantId, msg.breachId, msg.version, h));
  const [sent, failed, unreachable] = countsOf(persons.filter((p): p is StoredBreachPerson => p !== undefined));
  const now = s.clock.now();
  await s.breaches.recordBatchCounts(msg.tenantId, msg.breachId, msg.version, msg.batch, [sent, failed, unreachable], now);
  await s.breaches.replaceBatch({ ...withoutMeta(fresh), sent, failed, unreachable, leaseUntil: null, nextAttemptAt: now.toISOString(), updatedAt: now.toISOString() }, fresh._etag);
}

/** The work on one batch once its lease is held (see batchStep). */
async function workLeasedBatch(
  s: Services,
  msg: Extract<PersonJob, { kind: "person-batch" }>,
  part: StoredBreachPart,
  batch: StoredPersonBatch,
  leaseEtag: string,
  log?: Log,
): Promise<string> {
  const persons = (await inParallel(batch.personHashes, STORE_CONCURRENCY, (h) => s.breaches.getPerson(msg.tenantId, msg.breachId, msg.version, h))).filter(
    (p): p is StoredBreachPerson => p !== undefined,
  );
  // A stop stored since batchStep looked (its lease write) reads no address and takes nothing of the budget.
  let stopped = await runStopped(s, msg);
  const pending = stopped ? [] : persons.filter((p) => p.state === "pending");
  // The addresses first (decrypted from the persons' records, audited before any is used: a worker may die sending):
  // a person without one is unreachable and takes nothing of the send budget.
  const read = pending.length > 0 ? await addressesOf(s, msg.tenantId, pending) : { addresses: new Map<string, string>(), recordsRead: 0 };
  if (pending.length > 0) {
    await recordAudit(s, msg.tenantId, SYSTEM, "breach.person-addresses-read", { type: "breach", id: `${msg.breachId}.v${msg.version}` }, {
      breachId: msg.breachId,
      version: msg.version,
      batch: msg.batch,
      recordsRead: read.recordsRead,
      persons: pending.length,
      found: read.addresses.size,
    });
    await inParallel(
      pending.filter((p) => !read.addresses.has(p.personHash)),
      STORE_CONCURRENCY,
      async (person) => {
        const next: BreachPersonDoc = { ...withoutMeta(person), state: "unreachable", lastFailure: "record-deleted" };
        if (!(await s.breaches.replacePerson(next, person._etag))) throw new Error("a breach person changed under the batch's lease");
        Object.assign(person, next);
      },
    );
  }
  const reachable = pending.filter((p) => p.state === "pending");
  const grant = reachable.length > 0 ? await takeBudget(s, reachable.length) : { granted: 0, retryAt: null, state: undefined };
  const toSend = reachable.slice(0, grant.granted);
  let retryAt: Date | null = grant.retryAt;
  const throttle: { until: Date | null } = { until: null };

  let unsent = 0;
  if (toSend.length > 0) {
    const ctx = await noticeContext(s, part, msg.version);
    const sendOne = async (person: StoredBreachPerson): Promise<void> => {
      if (throttle.until) return; // the service said stop: the rest stay pending
      const address = read.addresses.get(person.personHash);
      let next: BreachPersonDoc;
      if (!address) {
        next = { ...withoutMeta(person), state: "unreachable", lastFailure: "record-deleted" };
      } else {
        try {
          const mail = s.templates.render("breach-person-notice", ctx.language, personNoticeView(ctx, msg.breachId, msg.version, person));
          await s.email.send({ messageId: person.messageId, to: [address], ...mail });
          next = { ...withoutMeta(person), state: "sent", attempts: person.attempts + 1, lastFailure: null, sentAt: s.clock.now().toISOString() };
        } catch (err) {
          const f = sendFailure(err);
          if (f.throttled) {
            const until = retryAfterInstant(s.clock.now(), f.retryAfter);
            throttle.until = laterOf(throttle.until as Date | null, until);
            return; // not an attempt of this person's: the service refused all sending for a while
          }
          const attempts = person.attempts + 1;
          const giveUp = !f.retryable || attempts >= MAX_SEND_ATTEMPTS;
          next = { ...withoutMeta(person), state: giveUp ? "failed" : "pending", attempts, lastFailure: f.code };
          if (!giveUp) retryAt = new Date(Math.max(retryAt?.getTime() ?? 0, s.clock.now().getTime() + MINUTE * 2 ** (attempts - 1)));
          log?.warn("breach.person-notice-failed", { breachId: msg.breachId, tenantId: msg.tenantId, batch: msg.batch, attempts, giveUp, ...errorFields(err) });
        }
      }
      // Recorded as soon as it happened: a worker that dies later never sends this person's notice again.
      if (!(await s.breaches.replacePerson(next, person._etag))) throw new Error("a breach person changed under the batch's lease");
      Object.assign(person, next);
    };
    // The sends go in groups of SEND_CONCURRENCY, each after a fresh read of the part: a stop (the tenant's
    // cancellation, a withdrawal from the scope) stored before that read sends nothing more, so at most one group
    // (SEND_CONCURRENCY notices) of a step already sending goes after the stop is stored; its later groups and every
    // later step send nothing.
    for (let i = 0; i < toSend.length && !throttle.until; i += SEND_CONCURRENCY) {
      if (await runStopped(s, msg)) {
        stopped = true;
        unsent = toSend.length - i;
        break;
      }
      await inParallel(toSend.slice(i, i + SEND_CONCURRENCY), SEND_CONCURRENCY, sendOne);
    }
  }
  if (throttle.until) {
    await blockBudget(s, throttle.until);
    retryAt = throttle.until;
  }
  // What a stopped step took of the shared budget and did not send goes back to it (other runs' notices use it).
  if (unsent > 0 && grant.state) await giveBackBudget(s, grant.state, unsent).catch(() => undefined);

  const [sent, failed, unreachable] = countsOf(persons);
  const left = persons.length - sent - failed - unreachable;
  const later = s.clock.now();
  const nextAttemptAt = left > 0 ? (retryAt ?? new Date(later.getTime() + MINUTE)) : later;
  // The progress counters first, then the batch: a worker that dies between the two leaves the batch to be worked
  // again, which finds every person recorded and records the same counts (they only grow).
  if (sent !== batch.sent || failed !== batch.failed || unreachable !== batch.unreachable) {
    await s.breaches.recordBatchCounts(msg.tenantId, msg.breachId, msg.version, msg.batch, [sent, failed, unreachable], later);
  }
  const fresh = await s.breaches.getBatch(msg.tenantId, msg.breachId, msg.version, msg.batch);
  if (fresh && fresh._etag === leaseEtag) {
    await s.breaches.replaceBatch(
      // A run stopped half-way closes the batch (as batchStep does for one woken after the stop): nothing more of it goes.
      { ...withoutMeta(fresh), sent, failed, unreachable, state: stopped ? "stopped" : left > 0 ? "pending" : "done", nextAttemptAt: nextAttemptAt.toISOString(), leaseUntil: null, updatedAt: later.toISOString() },
      fresh._etag,
    );
  }
  if (stopped) return "stopped";
  if (left > 0) {
    await queueJob(s, msg, nextAttemptAt.getTime() - later.getTime());
    // A throttled answer moves the estimate; the budget's own pace was estimated at the fan-out (and the sweep
    // checks it again every run), so a batch waiting for the next window does not recount every batch.
    if (throttle.until) await checkDelay(s, part, log);
    return throttle.until ? "throttled" : "waiting-for-budget";
  }
  return "done";
}

// ---------------------------------------------------------------------------------------------------------------
// The estimate's alert

/**
 * When the estimate for the persons still pending breaks BREACH_NOTICE_MAX_HOURS after the instruction: e-mails the
 * tenant's contact (its language) and the operator contact (English) and emits `breach.persons-delayed` to the
 * tenant's webhook endpoint, once per version (keyed sends and event, then recorded on the part and in the tenant's
 * chain), pointing to Art. 34(3)(c).
 */
async function checkDelay(s: Services, part: StoredBreachPart, log?: Log): Promise<void> {
  const fresh = await s.breaches.getPart(part.tenantId, part.breachId);
  const run = fresh?.persons;
  if (!fresh || fresh.status !== "open" || !run?.notify || run.stopped || run.notify.delayAlert) return;
  const p = await progressOf(s, fresh, run);
  if (p.pending === 0) return;
  const now = s.clock.now();
  const rate = await s.breaches.getSendRate();
  const estimate = estimateCompletion(await waitingBehind(s, fresh, p.pending, now), rate?.state, now, limitsOf(s));
  const requestedAt = new Date(run.notify.requestedAt);
  const maxHours = s.settings.breachNoticeMaxHours;
  if (!breaksDeadline(estimate, requestedAt, maxHours)) return;
  const deadline = noticeDeadline(requestedAt, maxHours);
  const tenant = await s.tenants.get(fresh.tenantId);
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const timeZone = tenant?.timeZone ?? DEFAULT_TIME_ZONE;
  const to = tenant ? await tenantContactEmail(s, tenant) : undefined;
  const view = (lang: Language, tz: string) => ({
    breachId: fresh.breachId,
    controllerName: tenant?.name ?? fresh.tenantId,
    persons: p.sent + p.pending + p.failed + p.unreachable,
    estimateAt: formatInstant(alertMinutes(estimate, deadline).estimate, lang, tz),
    deadlineAt: formatInstant(alertMinutes(estimate, deadline).deadline, lang, tz),
    maxHours,
    perMinute: s.settings.emailSendsPerMinute,
    perHour: s.settings.emailSendsPerHour,
    ...p,
  });
  const idBase = `bpd-${fresh.breachId.replace(/^br-/, "")}-${fresh.tenantId.slice(0, 40)}-v${run.version}`.replace(/[^A-Za-z0-9._-]/g, "-");
  if (to) await s.email.send({ messageId: `${idBase}-tenant`, to: [to], ...s.templates.render("breach-persons-delay", language, view(language, timeZone)) });
  if (s.settings.operatorContactEmail) {
    await s.email.send({ messageId: `${idBase}-operator`, to: [s.settings.operatorContactEmail], ...s.templates.render("breach-persons-delay", "en", view("en", "UTC")) });
  }
  const alert = { at: now.toISOString(), estimateAt: estimate.toISOString(), deadlineAt: deadline.toISOString() };
  // The tenant's endpoint is told too (keyed: a check run again after a crash emits nothing new). Counts and ids only.
  await emitWebhookEvent(s, fresh.tenantId, "breach.persons-delayed", `breach.persons-delayed:${fresh.breachId}:v${run.version}`, {
    breachId: fresh.breachId,
    version: run.version,
    pending: p.pending,
    estimateAt: alert.estimateAt,
    deadlineAt: alert.deadlineAt,
  });
  const r = await s.breaches.updatePart(fresh.tenantId, fresh.breachId, (doc) =>
    doc.persons?.version === run.version && doc.persons.notify && !doc.persons.notify.delayAlert
      ? { ...withoutMeta(doc), persons: { ...doc.persons, notify: { ...doc.persons.notify, delayAlert: alert } } }
      : undefined,
  );
  await recordAuditOnce(
    s,
    fresh.tenantId,
    SYSTEM,
    "breach.persons-delay-alert",
    { type: "breach", id: `${fresh.breachId}.v${run.version}` },
    { breachId: fresh.breachId, version: run.version, pending: p.pending, estimateAt: alert.estimateAt, deadlineAt: alert.deadlineAt, toTenant: to !== undefined, toOperator: s.settings.operatorContactEmail !== undefined },
    `breach:${fresh.breachId}:v${run.version}:persons-delay`,
  );
  if (r.updated) log?.warn("breach.persons-delayed", { breachId: fresh.breachId, tenantId: fresh.tenantId, version: run.version, pending: p.pending });
}

// ---------------------------------------------------------------------------------------------------------------
// The public communication (Art. 34(3)(c))

/** Public communications kept per breach part (each up to 20,000 characters: the part stays far below 2 MB). */
export const MAX_PUBLIC_COMMUNICATIONS = 20;

/**
 * Records the tenant's public communication: its text, where and when it was published, for the part's newest
 * version; kept with the earlier ones (each a record of its own; none is ever dropped), audited. Errors: not-found,
 * validation-failed (published in the future, or before the breach became known), conflict (MAX_PUBLIC_COMMUNICATIONS
 * recorded already).
 */
export async function recordPublicCommunication(s: Services, caller: TenantCaller, id: string, input: PublicCommunicationInput): Promise<PersonsView> {
  const now = s.clock.now();
  if (Date.parse(input.publishedAt) > now.getTime()) {
    throw new AppError("validation-failed", "publishedAt must not be in the future", { errors: [{ path: "publishedAt", message: "must not be in the future" }] });
  }
  const r = await s.breaches.updatePart(caller.tenantId, id, (doc) => {
    const awareAt = latestContent(doc).awareAt;
    if (Date.parse(input.publishedAt) < Date.parse(awareAt)) {
      throw new AppError("validation-failed", "publishedAt is before the breach became known (its awareAt): a communication about it cannot be older", {
        errors: [{ path: "publishedAt", message: `must not be before ${awareAt}` }],
      });
    }
    if (doc.publicCommunications.length >= MAX_PUBLIC_COMMUNICATIONS) {
      throw new AppError("conflict", `this breach has ${MAX_PUBLIC_COMMUNICATIONS} public communications recorded, the most it keeps; each is kept, none is replaced`);
    }
    return {
      ...withoutMeta(doc),
      publicCommunications: [...doc.publicCommunications, { recordedAt: now.toISOString(), by: caller.actor, publishedAt: input.publishedAt, text: input.text, where: input.where, version: latestVersion(doc).n }],
      updatedAt: now.toISOString(),
    };
  });
  if (!r.updated && r.reason === "not-found") throw new AppError("not-found", "no breach with this id affects you");
  if (!r.updated) throw new AppError("conflict", "the breach was changed by another request meanwhile; retry");
  await recordAudit(s, caller.tenantId, caller, "breach.public-communication", { type: "breach", id }, {
    breachId: id,
    version: latestVersion(r.doc).n,
    publishedAt: input.publishedAt,
    count: r.doc.publicCommunications.length,
  });
  return (await personsView(s, r.doc)) ?? emptyView(r.doc);
}

// ---------------------------------------------------------------------------------------------------------------
// For an access request: the notices sent to a person

/** A breach notice to one person, as an access request's export shows it (no other person, no address). */
export interface PersonBreachNotice {
  breachId: string;
  version: number;
  state: BreachPersonDoc["state"];
  sentAt: string | null;
  categories: DataCategory[];
  roles: BreachPersonDoc["roles"];
}

/** Every breach notice of the tenant to the person with this keyed hash (Art. 15: what is held about them). */
export async function breachNoticesOfPerson(s: Services, tenantId: string, personHash: string): Promise<PersonBreachNotice[]> {
  const docs = await s.breaches.personNotices(tenantId, personHash);
  return docs.map((d) => ({ breachId: d.breachId, version: d.version, state: d.state, sentAt: d.sentAt, categories: d.categories, roles: d.roles }));
}

const str = { type: "string" };
const LABELS = {
  breach: { en: "Breach", da: "Brud" },
  sentAt: { en: "Sent", da: "Sendt" },
  categories: { en: "Your data concerned", da: "Dine berørte oplysninger" },
  description: { en: "What happened", da: "Hvad der skete" },
} as const;

// The access package (issue 18's registry): the breach notices e-mailed to the person, with what they said of them.
registerExportSection({
  name: "breachNotices",
  description: "Notices of personal-data breaches e-mailed to the person (GDPR Art. 34): which breach and version, when, and which of their data it concerned",
  title: { en: "Breach notices sent to you", da: "Underretninger om brud sendt til dig" },
  scopes: ["access"],
  itemSchema: {
    type: "object",
    additionalProperties: false,
    required: ["breachId", "version", "sentAt", "roles", "categories", "description"],
    properties: {
      breachId: str,
      version: { type: "integer" },
      sentAt: { type: "string", format: "date-time" },
      roles: { type: "array", items: str },
      categories: { type: "array", items: str },
      description: { ...str, description: "The account of the breach the notice gave" },
    },
  },
  async *items(s, ctx) {
    const notices = (await s.breaches.personNotices(ctx.tenantId, ctx.subjectHash)).filter((n) => n.state === "sent" && n.sentAt !== null);
    for (const n of notices) {
      const part = await s.breaches.getPart(ctx.tenantId, n.breachId);
      const description = (part && contentOf(part, n.version)?.description) ?? "";
      const data: { [k: string]: JsonValue } = { breachId: n.breachId, version: n.version, sentAt: n.sentAt!, roles: n.roles, categories: n.categories, description };
      yield {
        data,
        rows: [
          { label: LABELS.breach[ctx.language], value: `${n.breachId} (${n.version})` },
          { label: LABELS.sentAt[ctx.language], value: formatInstant(new Date(n.sentAt!), ctx.language, ctx.timeZone) },
          { label: LABELS.categories[ctx.language], value: n.categories.map((c) => CATEGORY_LABELS[c][ctx.language]).join(", ") },
          { label: LABELS.description[ctx.language], value: description },
        ],
      };
    }
  },
});

// ---------------------------------------------------------------------------------------------------------------
// The jobs and the sweep's part

/** Runs one persons job of the breach-jobs queue. */
export async function runPersonJob(s: Services, msg: PersonJob, log?: Log): Promise<string> {
  switch (msg.kind) {
    case "resolve-persons":
      return resolveStep(s, msg, log);
    case "fan-out-persons":
      return fanOutStep(s, msg, log);
    case "person-batch":
      return batchStep(s, msg, log);
  }
}

/**
 * A run of a withdrawn part (the tenant taken out of the scope) marked stopped, for parts withdrawn before runs were
 * stopped at the withdrawal itself (shared/usecases/breach-notices.ts): true when the part is not open.
 */
async function stopIfWithdrawn(s: Services, part: BreachPartDoc): Promise<boolean> {
  if (part.status === "open") return false;
  const at = s.clock.now().toISOString();
  await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
    doc.status !== "open" && doc.persons && !doc.persons.stopped ? { ...withoutMeta(doc), persons: { ...doc.persons, stopped: { at, reason: "withdrawn" } } } : undefined,
  );
  return true;
}

/** A batch whose time came this long ago and that nobody holds lost its message (or its worker died). */
const LOST_BATCH_GRACE_MS = MINUTE;

/**
 * The breach sweep's catch-up for the persons: resolutions and fan-outs whose message was lost are queued again,
 * and so are batches due (their time came) that no worker holds; the estimate of each fan-out still sending is
 * checked (and its alert sent, once). Queuing twice is harmless.
 */
export async function sweepPersonJobs(s: Services): Promise<number> {
  const now = s.clock.now();
  let queued = 0;
  for (const ref of await s.breaches.findActivePersonRunsAcrossTenants(200)) {
    const part = await s.breaches.getPart(ref.tenantId, ref.breachId);
    const run = part?.persons;
    if (!part || !run) continue;
    if (await stopIfWithdrawn(s, part)) continue;
    const key = { breachId: ref.breachId, tenantId: ref.tenantId, version: run.version };
    if (run.resolution.status === "running") await queueJob(s, { kind: "resolve-persons", ...key });
    else if (run.notify && !run.notify.queuedAt && !run.stopped) await queueJob(s, { kind: "fan-out-persons", ...key });
    else continue;
    queued++;
  }
  // The estimate of each fan-out still sending (its alert, once), behind every notice pending across all of them (one
  // send budget); one found with nothing pending is marked complete.
  const sending: Array<{ part: StoredBreachPart; run: PersonsRun; pending: number }> = [];
  for (const ref of await s.breaches.findSendingPersonRunsAcrossTenants(200)) {
    const part = await s.breaches.getPart(ref.tenantId, ref.breachId);
    const run = part?.persons;
    if (!part || !run?.notify) continue;
    if (await stopIfWithdrawn(s, part)) continue;
    sending.push({ part, run, pending: (await progressOf(s, part, run)).pending });
  }
  await s.breaches.saveSendBacklog(Object.fromEntries(sending.filter((x) => x.pending > 0).map((x) => [runKey(x.part), x.pending])), now);
  for (const { part, run, pending } of sending) {
    if (pending > 0) {
      await checkDelay(s, part);
      continue;
    }
    const at = now.toISOString();
    await s.breaches.updatePart(part.tenantId, part.breachId, (doc) =>
      doc.persons?.version === run.version && doc.persons.notify && !doc.persons.notify.completedAt
        ? { ...withoutMeta(doc), persons: { ...doc.persons, notify: { ...doc.persons.notify, completedAt: at } } }
        : undefined,
    );
  }
  for (const b of await s.breaches.findDueBatchesAcrossTenants(new Date(now.getTime() - LOST_BATCH_GRACE_MS), now, 500)) {
    await queueJob(s, { kind: "person-batch", breachId: b.breachId, tenantId: b.tenantId, version: b.version, batch: b.batch });
    queued++;
  }
  return queued;
}
