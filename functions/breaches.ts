/**
 * Personal-data breaches. The operator's register (admin key) under /api/v1/admin/breaches: register, change in
 * versions (If-Match), read, confirm or dismiss an alarm's draft. Each affected tenant's side (its key) under
 * /api/v1/breaches: its own part only, its acknowledgement, decision, authority notification and report. A queue
 * worker brings each tenant's part up to date and delivers its notice; a timer finishes what was left.
 */
import { app, type Timer } from "@azure/functions";
import Negotiator from "negotiator";
import { z } from "zod";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import {
  AUTHORITY_METHODS,
  authorityNotificationSchema,
  breachFieldsSchema,
  breachIdSchema,
  breachPatchSchema,
  decisionSchema,
  EXEMPTIONS,
  noAuthorityNotificationSchema,
  proposalSchema,
  reasonText,
  SEVERITY_BANDS,
  severityAssessmentSchema,
  tenantContentSchema,
  resolvedScopeSchema,
} from "../shared/domain/breaches";
import { WEBHOOK_EVENT_TYPES } from "../shared/domain/webhooks";
import { httpEndpoint, problems, type EndpointResult } from "../shared/http/endpoint";
import { authorityReportSchema } from "../shared/http/breach-report-schema";
import { parseIfMatch } from "../shared/http/preconditions";
import { factDateTime, pageOf, pagingQuery } from "../shared/http/schemas";
import { AppError } from "../shared/errors";
import { invocationLog } from "../shared/observability";
import { queueHandler } from "../shared/queue-handler";
import { services } from "../shared/services";
import { BREACH_SWEEP_SCHEDULE, runBreachSweep, syncTenantPart } from "../shared/usecases/breach-notices";
import { cancelPersonNotices, getPersonsOfBreach, recordPublicCommunication, requestPersonNotices, runPersonJob, STOP_REASONS } from "../shared/usecases/breach-persons";
import { publicCommunicationSchema } from "../shared/domain/breach-persons";
import { dataCategories } from "../shared/domain/uploads";
import { authorityReport, authorityReportHtml } from "../shared/usecases/breach-report";
import {
  acknowledgeBreach,
  confirmDraft,
  createBreach,
  decideBreach,
  dismissDraft,
  getBreachForOperator,
  getBreachVersion,
  getMyBreach,
  listBreachesForOperator,
  listMyBreaches,
  patchBreach,
  recordAuthorityNotification,
  recordNoAuthorityNotification,
  versionTag,
} from "../shared/usecases/breaches";
import { breachJobMessage } from "../shared/usecases/messages";

const adminTags = ["Admin: breaches"];
const tags = ["Breaches"];
const params = z.object({ id: breachIdSchema });
const BREACH_STATUSES = ["draft", "open", "dismissed"] as const;

// --- response shapes --------------------------------------------------------------------------------------------

const controllerNoticeClock = z.object({
  targetAt: z.string().describe("awareAt + BREACH_CONTROLLER_NOTICE_HOURS: the processor's target (Art. 33(2): without undue delay)"),
  limitAt: z.string().describe("awareAt + 72 h: the data-processing agreement's limit (clause 10.2)"),
  notifiedAt: z.string().nullable().describe("When the controller was first told (e-mail accepted, webhook answered 2xx, or acknowledged)"),
  status: z.enum(["pending", "past-target", "past-limit", "on-target", "within-limit", "late"]),
});
const authorityClockSchema = z.object({
  deadlineAt: z.string().nullable().describe("controllerNotifiedAt + 72 h (Art. 33(1); EDPB 9/2022: the controller is aware when told)"),
  productTargetAt: z.string().describe("awareAt + 72 h: the stricter target the product shows"),
  notifiedAt: z.string().nullable(),
  status: z.enum(["waiting-for-controller-notice", "open", "overdue", "notified", "notified-late", "not-notified"]),
});
const clocks = z.object({ controllerNotice: controllerNoticeClock, authority: authorityClockSchema });
const decisionRecord = z.object({
  at: z.string(),
  by: z.string(),
  version: z.number().int(),
  notifyAuthority: z.boolean(),
  notifyPersons: z.boolean(),
  exemption: z.enum(EXEMPTIONS).nullable(),
  reasons: z.string(),
});

const personsView = z.object({
  breachId: z.string(),
  version: z.number().int().describe("Your part's version whose persons these are"),
  resolution: z
    .object({
      status: z.enum(["running", "done"]),
      phase: z.enum(["uploads", "consents", "packages"]).describe("What is being read: the scope's uploads, then (a time window) the consent events and the access and portability packages made within it"),
      page: z.number().int(),
      cursor: z.string().nullable(),
      records: z.number().int().describe("Records in the scope read so far (uploads; for a time window also consent events and request packages)"),
      persons: z.number().int().describe("Distinct persons found (by keyed hash)"),
      unreachable: z.number().int().describe("Approximate: persons named by records whose keyed hashes were cleared (purged or erased); from those records' own counts, so at most"),
      unreachableRecords: z.number().int(),
      categories: z.array(z.enum(dataCategories)),
      batches: z.number().int(),
      finishedAt: z.string().nullable(),
      startedAt: z.string(),
    })
    .describe("The scope resolution (a queue job, a page of records per step)"),
  notices: z
    .object({
      requestedAt: z.string(),
      requestedBy: z.string(),
      queuedAt: z.string().nullable().describe("When every batch was queued"),
      batchesQueued: z.number().int(),
      sent: z.number().int(),
      pending: z.number().int().describe("Persons not yet told; while the resolution still runs (resolution.status running), of the persons found so far"),
      failed: z.number().int(),
      unreachable: z.number().int().describe("Persons whose records were deleted after the resolution"),
      estimatedCompletionAt: z.string().nullable().describe("When the last pending notice is expected to go at the e-mail service's pace (EMAIL_SENDS_PER_MINUTE, EMAIL_SENDS_PER_HOUR)"),
      deadlineAt: z.string().describe("The instruction + BREACH_NOTICE_MAX_HOURS: the bound kept for \"without undue delay\" (Art. 34(1))"),
      estimateBreaksDeadline: z.boolean(),
      stoppedAt: z.string().nullable().describe("When the notices stopped: a later version of the breach took you out of its scope, or you cancelled them (null: not stopped)"),
      stoppedReason: z
        .enum(STOP_REASONS)
        .nullable()
        .describe("Why they stopped: withdrawn (a version took you out of the scope), cancelled (DELETE .../notify-persons); null: not stopped"),
      stoppedBy: z.string().nullable().describe("Who cancelled them (your API key's actor) when cancelled; null otherwise"),
      notTold: z.number().int().describe("Persons still pending when the notices stopped: they are not told (0 unless stopped)"),
      delayAlert: z.object({ at: z.string(), estimateAt: z.string(), deadlineAt: z.string() }).nullable().describe("The alert sent once to you and the operator when the estimate broke the bound"),
      completedAt: z.string().nullable().describe("When the breach sweep found nothing pending any more"),
      limits: z.object({ perMinute: z.number().int(), perHour: z.number().int() }),
    })
    .nullable()
    .describe("Null until you instruct the notices (POST .../notify-persons)"),
  earlier: z
    .array(
      z.object({
        version: z.number().int(),
        requestedAt: z.string(),
        sent: z.number().int(),
        failed: z.number().int(),
        unreachable: z.number().int(),
        notTold: z.number().int().describe("Not told of this version: the persons it found less those sent, failed or unreachable, counted from its counters at each read (the later version's notice tells them)"),
        endedAt: z.string(),
        reason: z
          .enum(["replaced", ...STOP_REASONS])
          .describe("replaced: you instructed notices for a later version; withdrawn: a version took you out of the scope; cancelled: you cancelled them"),
        by: z.string().nullable().describe("Who cancelled them (your API key's actor) when the reason is cancelled; null otherwise"),
      }),
    )
    .describe("The notices of earlier versions of your part, as they stood when a later run replaced theirs, oldest first"),
  publicCommunications: z
    .array(z.object({ recordedAt: z.string(), by: z.string(), publishedAt: z.string(), text: z.string(), where: z.string(), version: z.number().int() }))
    .describe("Art. 34(3)(c): the public communications you recorded"),
});

const tenantView = z.object({
  id: z.string(),
  status: z.enum(["open", "withdrawn"]).describe("withdrawn: a later version took you out of the scope"),
  version: z.number().int().describe("Your part's version: it moves only when your part changed"),
  createdAt: z.string(),
  updatedAt: z.string(),
  current: tenantContentSchema.describe("The breach as it concerns you: the shared account and your own scope"),
  severity: severityAssessmentSchema.nullable().describe("ENISA 2013: SE = DPC × EI + CB, every factor with its justification"),
  proposal: proposalSchema.nullable().describe("What the service proposes; you decide"),
  clocks,
  controllerNotifiedVia: z.enum(["email", "webhook", "acknowledgement"]).nullable(),
  notices: z.array(
    z.object({
      version: z.number().int(),
      eventType: z.enum(WEBHOOK_EVENT_TYPES),
      createdAt: z.string(),
      emailAcceptedAt: z.string().nullable(),
      webhook: z.enum(["pending", "delivered", "failed", "no-endpoint"]),
      webhookDeliveredAt: z.string().nullable(),
      superseded: z.boolean(),
    }),
  ),
  acknowledgedAt: z.string().nullable(),
  decision: decisionRecord.nullable(),
  decisions: z.array(decisionRecord),
  authorityNotifications: z.array(
    z.object({
      recordedAt: z.string(),
      by: z.string(),
      notifiedAt: z.string(),
      method: z.enum(AUTHORITY_METHODS),
      reference: z.string().nullable(),
      delayReason: z.string().nullable(),
      late: z.boolean(),
      recordedAfterDeadline: z.boolean().describe("Claimed in time, but recorded only after the 72-hour deadline had passed"),
    }),
  ),
  noAuthorityNotification: z.object({ at: z.string(), by: z.string(), reason: z.string() }).nullable(),
  versions: z.array(
    z.object({
      version: z.number().int(),
      at: z.string(),
      changes: z.array(z.string()),
      content: tenantContentSchema.nullable().describe("Null for the version that took you out of the scope"),
      severity: severityAssessmentSchema.nullable(),
      proposal: proposalSchema.nullable(),
    }),
  ),
});

const tenantSummary = z.object({
  id: z.string(),
  status: z.enum(["open", "withdrawn"]),
  version: z.number().int(),
  awareAt: z.string(),
  band: z.enum(SEVERITY_BANDS).nullable(),
  controllerNotice: controllerNoticeClock.shape.status,
  authority: authorityClockSchema.shape.status,
  authorityDeadlineAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const assessment = z.object({ tenantId: z.string(), resolved: resolvedScopeSchema, severity: severityAssessmentSchema, proposal: proposalSchema });
const origin = z.object({
  kind: z.enum(["operator", "anchor-alarm"]),
  alarmTenantId: z.string().optional(),
  reason: z.string().optional(),
  anchoredSeq: z.number().int().nullable().optional(),
  headSeq: z.number().int().nullable().optional(),
  detectedAt: z.string().optional(),
});
const operatorPersons = z.object({
  version: z.number().int().describe("The part's version whose persons these are"),
  resolution: z.object({
    status: z.enum(["running", "done"]),
    records: z.number().int().describe("Records read"),
    resolved: z.number().int().describe("Distinct persons found (by keyed hash)"),
    unreachable: z.number().int().describe("Approximate, at most: persons named by records whose keyed hashes were cleared"),
    batches: z.number().int(),
    finishedAt: z.string().nullable(),
  }),
  notices: z
    .object({
      requestedAt: z.string(),
      sent: z.number().int(),
      pending: z.number().int(),
      failed: z.number().int(),
      unreachable: z.number().int(),
      estimatedCompletionAt: z.string().nullable().describe("When the last pending notice is expected to go, at the e-mail service's pace"),
      deadlineAt: z.string().describe("BREACH_NOTICE_MAX_HOURS after the tenant's instruction"),
      estimateBreaksDeadline: z.boolean(),
      stoppedAt: z.string().nullable().describe("When the notices stopped: a later version took the tenant out of the scope, or the tenant cancelled them (null: not stopped)"),
      stoppedReason: z.enum(STOP_REASONS).nullable().describe("Why they stopped: withdrawn (taken out of the scope) or cancelled (by the tenant); null: not stopped"),
      notTold: z.number().int().describe("Persons still pending when the notices stopped: not told (0 unless stopped)"),
      delayAlertAt: z.string().nullable().describe("When the delay alert went (once)"),
      completedAt: z.string().nullable(),
    })
    .nullable()
    .describe("Null until the tenant instructs the notices"),
});
const operatorView = z.object({
  id: z.string(),
  status: z.enum(BREACH_STATUSES),
  version: z.number().int(),
  etag: z.string().describe("The current version as an entity tag: send it as If-Match to change the breach"),
  origin,
  createdAt: z.string(),
  updatedAt: z.string(),
  createdBy: z.string(),
  confirmation: z.object({ at: z.string(), by: z.string(), reason: z.string() }).nullable(),
  dismissal: z.object({ at: z.string(), by: z.string(), reason: z.string() }).nullable(),
  current: breachFieldsSchema,
  assessments: z.array(assessment),
  tenants: z.array(
    z.object({
      tenantId: z.string(),
      inScope: z.boolean(),
      clocks: clocks.describe("From the tenant's part once made, else from the current version (nobody told yet)"),
      part: z
        .object({
          status: z.enum(["open", "withdrawn"]),
          version: z.number().int(),
          controllerNotifiedAt: z.string().nullable(),
          controllerNotifiedVia: z.enum(["email", "webhook", "acknowledgement"]).nullable(),
          acknowledgedAt: z.string().nullable(),
          notice: z
            .object({ version: z.number().int(), emailAcceptedAt: z.string().nullable(), emailAttempts: z.number().int(), emailLastFailure: z.string().nullable(), webhook: z.string(), pending: z.boolean() })
            .nullable(),
          decision: decisionRecord.nullable(),
          persons: operatorPersons.nullable().describe("The persons of the part's newest resolved version (Art. 34): counts only; null before the first resolution"),
        })
        .nullable()
        .describe("Null until the tenant's part is made (and for drafts)"),
    }),
  ),
  versions: z.array(z.object({ version: z.number().int(), at: z.string(), by: z.string(), changes: z.array(z.string()) })),
});

const etagHeader = { ETag: { description: "The current version, for If-Match", required: true } };
const ifMatchHeader = {
  "If-Match": {
    description: "The current version's ETag (from GET or the last change), e.g. \"v3\"; required (428 without it, 412 when it is not the current one)",
    schema: z.string().max(1000),
    examples: ['"v1"', "*"],
  },
};

// --- the operator's register ------------------------------------------------------------------------------------

const create = httpEndpoint({
  name: "admin-breaches-create",
  method: "POST",
  route: "v1/admin/breaches",
  auth: "admin",
  tags: adminTags,
  summary: "Register a personal-data breach (version 1); each affected tenant is told",
  description:
    "awareAt is when the processor became aware: the clocks start there (not in the future). The scope names each affected tenant with upload ids or a time " +
    "window plus data categories. Texts must hold no identifier of a person (e-mail addresses and CPR numbers are refused): they go to every tenant in scope " +
    "and into the authority report. Past awareAt + BREACH_CONTROLLER_NOTICE_HOURS, controllerNoticeDelayReason is required.",
  body: breachFieldsSchema,
  idempotency: {},
  responses: {
    201: { description: "Registered: the version, each tenant's assessment and clocks", schema: operatorView, headers: etagHeader },
  },
  handler: async ({ services, principal, body, requestId }) => {
    const view = await createBreach(services, body, { actor: principal.actor, requestId });
    return { status: 201, json: view, headers: { etag: view.etag } };
  },
});
app.http(create.name, create.options);

const list = httpEndpoint({
  name: "admin-breaches-list",
  method: "GET",
  route: "v1/admin/breaches",
  auth: "admin",
  tags: adminTags,
  summary: "The breach register, newest first",
  query: pagingQuery.extend({ status: z.enum(BREACH_STATUSES).optional() }),
  responses: {
    200: {
      description: "A page of breaches",
      schema: pageOf(z.object({ id: z.string(), status: z.enum(BREACH_STATUSES), version: z.number().int(), createdAt: z.string(), updatedAt: z.string(), origin, tenants: z.number().int() })),
    },
  },
  handler: async ({ services, query }) => ({ status: 200, json: await listBreachesForOperator(services, { status: query.status, limit: query.limit, cursor: query.cursor }) }),
});
app.http(list.name, list.options);

const get = httpEndpoint({
  name: "admin-breaches-get",
  method: "GET",
  route: "v1/admin/breaches/{id}",
  auth: "admin",
  tags: adminTags,
  summary: "One breach: its current version, every tenant's assessment, clocks and progress, and the list of versions",
  params,
  responses: { 200: { description: "The breach", schema: operatorView, headers: etagHeader }, 404: problems(["not-found"]) },
  handler: async ({ services, params }) => {
    const view = await getBreachForOperator(services, params.id);
    return { status: 200, json: view, headers: { etag: view.etag } };
  },
});
app.http(get.name, get.options);

const patch = httpEndpoint({
  name: "admin-breaches-patch",
  method: "PATCH",
  route: "v1/admin/breaches/{id}",
  auth: "admin",
  tags: adminTags,
  summary: "Add a version (GDPR Art. 33(4): information in phases); earlier versions stay",
  description:
    "Fields given replace the current version's (null clears one); scope entries replace or add a tenant's entry; removeFromScope takes tenants out (each is told). " +
    "If-Match must name the current version. A change that changes nothing adds no version.",
  params,
  body: breachPatchSchema,
  requestHeaders: ifMatchHeader,
  responses: {
    200: { description: "The breach at its new version", schema: operatorView, headers: etagHeader },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
    412: problems(["precondition-failed"]),
    428: problems(["precondition-required"]),
  },
  handler: async ({ services, principal, params, body, request, requestId }) => {
    const view = await patchBreach(services, params.id, parseIfMatch(request.headers.get("if-match")), body, { actor: principal.actor, requestId });
    return { status: 200, json: view, headers: { etag: view.etag } };
  },
});
app.http(patch.name, patch.options);

const version = httpEndpoint({
  name: "admin-breaches-version",
  method: "GET",
  route: "v1/admin/breaches/{id}/versions/{n}",
  auth: "admin",
  tags: adminTags,
  summary: "One version of a breach, as it was written (immutable)",
  params: z.object({ id: breachIdSchema, n: z.string().regex(/^[1-9][0-9]{0,5}$/, "must be a version number") }),
  responses: {
    200: {
      description: "The version",
      schema: z.object({ breachId: z.string(), n: z.number().int(), at: z.string(), by: z.string(), requestId: z.string().nullable(), changes: z.array(z.string()), fields: breachFieldsSchema, assessments: z.array(assessment) }),
      headers: { ETag: { description: "This version as an entity tag", required: true } },
    },
    404: problems(["not-found"]),
  },
  handler: async ({ services, params }) => {
    const { breachId, n, at, by, requestId, changes, fields, assessments } = await getBreachVersion(services, params.id, Number(params.n));
    return { status: 200, json: { breachId, n, at, by, requestId, changes, fields, assessments }, headers: { etag: versionTag(n) } };
  },
});
app.http(version.name, version.options);

const confirm = httpEndpoint({
  name: "admin-breaches-confirm",
  method: "POST",
  route: "v1/admin/breaches/{id}/confirm",
  auth: "admin",
  tags: adminTags,
  summary: "Confirm a draft (an audit-anchor alarm's): it becomes a breach and its tenants are told",
  description: "awareAt defaults to when the alarm was raised; a later one (a short investigation, EDPB 9/2022) may be given, not an earlier one.",
  params,
  body: z.strictObject({
    reason: reasonText.describe("Why this is a personal-data breach"),
    awareAt: factDateTime.optional(),
    controllerNoticeDelayReason: reasonText.nullable().optional(),
  }),
  idempotency: {},
  responses: { 200: { description: "Confirmed", schema: operatorView, headers: etagHeader }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params, body, requestId }) => {
    const view = await confirmDraft(services, params.id, { ...body, ...(body.awareAt ? { awareAt: new Date(body.awareAt).toISOString() } : {}) }, { actor: principal.actor, requestId });
    return { status: 200, json: view, headers: { etag: view.etag } };
  },
});
app.http(confirm.name, confirm.options);

const dismiss = httpEndpoint({
  name: "admin-breaches-dismiss",
  method: "POST",
  route: "v1/admin/breaches/{id}/dismiss",
  auth: "admin",
  tags: adminTags,
  summary: "Dismiss a draft with the reason (it stays in the register: Art. 33(5))",
  params,
  body: z.strictObject({ reason: reasonText.describe("Why this is not a personal-data breach") }),
  idempotency: {},
  responses: { 200: { description: "Dismissed", schema: operatorView, headers: etagHeader }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params, body, requestId }) => {
    const view = await dismissDraft(services, params.id, body, { actor: principal.actor, requestId });
    return { status: 200, json: view, headers: { etag: view.etag } };
  },
});
app.http(dismiss.name, dismiss.options);

// --- the tenant's side ------------------------------------------------------------------------------------------

const myList = httpEndpoint({
  name: "breaches-list",
  method: "GET",
  route: "v1/breaches",
  auth: "tenant",
  tags,
  summary: "The breaches that affect you, newest first",
  query: pagingQuery,
  responses: { 200: { description: "A page of breaches", schema: pageOf(tenantSummary) } },
  handler: async ({ services, principal, query }) => ({ status: 200, json: await listMyBreaches(services, principal, { limit: query.limit, cursor: query.cursor }) }),
});
app.http(myList.name, myList.options);

const myGet = httpEndpoint({
  name: "breaches-get",
  method: "GET",
  route: "v1/breaches/{id}",
  auth: "tenant",
  tags,
  summary: "Your part of a breach: what happened, your scope, its severity and the proposal, your clocks, every version",
  params,
  responses: {
    200: { description: "Your part", schema: tenantView.extend({ persons: personsView.nullable().describe("The persons of your part's newest resolved version and the notices to them; null before the first resolution") }) },
    404: problems(["not-found"]),
  },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getMyBreach(services, principal, params.id) }),
});
app.http(myGet.name, myGet.options);

const acknowledge = httpEndpoint({
  name: "breaches-acknowledge",
  method: "POST",
  route: "v1/breaches/{id}/acknowledge",
  auth: "tenant",
  tags,
  summary: "Acknowledge the notice (recorded once); if nothing had reached you yet, this is when you became aware",
  params,
  idempotency: {},
  responses: { 200: { description: "Your part", schema: tenantView }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await acknowledgeBreach(services, principal, params.id) }),
});
app.http(acknowledge.name, acknowledge.options);

const decide = httpEndpoint({
  name: "breaches-decision",
  method: "POST",
  route: "v1/breaches/{id}/decision",
  auth: "tenant",
  tags,
  summary: "Record your decision on the proposal, with reasons (the controller decides: GDPR Art. 33(1), 34(1))",
  description:
    "Persons are told only on your separate instruction, never by this decision. A decision the stored facts contradict is refused (409): the persons not told " +
    "(notifyPersons: false) of a version whose notices you instructed, or the authority not notified (notifyAuthority: false) after a notification is recorded.",
  params,
  body: decisionSchema,
  idempotency: {},
  responses: { 200: { description: "Your part", schema: tenantView }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await decideBreach(services, principal, params.id, body) }),
});
app.http(decide.name, decide.options);

const notified = httpEndpoint({
  name: "breaches-authority-notification",
  method: "POST",
  route: "v1/breaches/{id}/authority-notification",
  auth: "tenant",
  tags,
  summary: "Record your notification to the supervisory authority: when, how, the reference received",
  description: "A first notification later than 72 hours after you were told needs delayReason (GDPR Art. 33(1)); without it, 422. Later ones supplement it (Art. 33(4)).",
  params,
  body: authorityNotificationSchema,
  idempotency: {},
  responses: { 200: { description: "Your part", schema: tenantView }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await recordAuthorityNotification(services, principal, params.id, body) }),
});
app.http(notified.name, notified.options);

const notNotified = httpEndpoint({
  name: "breaches-no-authority-notification",
  method: "POST",
  route: "v1/breaches/{id}/no-authority-notification",
  auth: "tenant",
  tags,
  summary: "Record your decision not to notify the authority, with the reason (unlikely to result in a risk: Art. 33(1); documented: Art. 33(5))",
  params,
  body: noAuthorityNotificationSchema,
  idempotency: {},
  responses: { 200: { description: "Your part", schema: tenantView }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await recordNoAuthorityNotification(services, principal, params.id, body) }),
});
app.http(notNotified.name, notNotified.options);

const notifyPersons = httpEndpoint({
  name: "breaches-notify-persons",
  method: "POST",
  route: "v1/breaches/{id}/notify-persons",
  auth: "tenant",
  tags,
  summary: "Instruct the notices to the persons of your part's newest version (GDPR Art. 34(1)); each is e-mailed once",
  description:
    "Recorded once per version (a repeat answers 200 with the progress). Once the persons are resolved, each is e-mailed in your language with their own " +
    "data categories, the likely consequences, the measures and your contact point, at the pace the e-mail service allows (EMAIL_SENDS_PER_MINUTE, " +
    "EMAIL_SENDS_PER_HOUR; a throttled answer's Retry-After is honoured). Follow sent / pending / failed and the estimate with GET .../persons.",
  params,
  idempotency: {},
  responses: {
    200: { description: "Already instructed for this version: the progress", schema: personsView },
    202: { description: "Instructed: the persons are resolved and told in the background", schema: personsView },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, params }) => {
    const { view, created } = await requestPersonNotices(services, principal, params.id);
    return { status: created ? 202 : 200, json: view };
  },
});
app.http(notifyPersons.name, notifyPersons.options);

const cancelNotifyPersons = httpEndpoint({
  name: "breaches-notify-persons-cancel",
  method: "DELETE",
  route: "v1/breaches/{id}/notify-persons",
  auth: "tenant",
  tags,
  summary: "Cancel your instruction to tell the persons (e.g. given by mistake, or a public communication decided instead: GDPR Art. 34(3)(c))",
  description:
    "Stops the notices of your part's current run: nobody more is told once the cancellation is stored (a batch already sending may finish the group of at " +
    "most 8 e-mails it has started; every later step sends nothing). The persons view then shows stoppedAt, stoppedReason cancelled and notTold; no " +
    "estimate or delay alert is kept. A repeat answers the same (200). Instructing notices again for the same version is refused (409): they go again only " +
    "for a newer version of the breach. 409 when there is nothing to cancel: no notices instructed, you were taken out of the scope, or every notice is done.",
  params,
  responses: {
    200: { description: "Cancelled (or cancelled before): the persons' progress as it stands; counts settle within seconds as steps already sending finish", schema: personsView },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, params, log }) => ({ status: 200, json: await cancelPersonNotices(services, principal, params.id, log) }),
});
app.http(cancelNotifyPersons.name, cancelNotifyPersons.options);

const persons = httpEndpoint({
  name: "breaches-persons",
  method: "GET",
  route: "v1/breaches/{id}/persons",
  auth: "tenant",
  tags,
  summary: "The persons of your part: the scope resolution, the notices sent / pending / failed, the estimated completion, public communications",
  params,
  responses: { 200: { description: "The persons' progress (counts only)", schema: personsView }, 404: problems(["not-found"]) },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getPersonsOfBreach(services, principal, params.id) }),
});
app.http(persons.name, persons.options);

const publicCommunication = httpEndpoint({
  name: "breaches-public-communication",
  method: "POST",
  route: "v1/breaches/{id}/public-communication",
  auth: "tenant",
  tags,
  summary: "Record a public communication (GDPR Art. 34(3)(c)): its text, where and when it was published",
  description: "For when telling each person would take disproportionate effort (e.g. the e-mail service's pace breaks BREACH_NOTICE_MAX_HOURS). Each is kept: at most 20 per breach, the 21st is refused (409), none is dropped. publishedAt may not be in the future nor before the breach's awareAt.",
  params,
  body: publicCommunicationSchema,
  idempotency: {},
  responses: { 200: { description: "The persons' progress with the communications recorded", schema: personsView }, 404: problems(["not-found"]), 409: problems(["conflict"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await recordPublicCommunication(services, principal, params.id, body) }),
});
app.http(publicCommunication.name, publicCommunication.options);

const REPORT_TYPES = ["application/json", "text/html"];

const report = httpEndpoint({
  name: "breaches-report",
  method: "GET",
  route: "v1/breaches/{id}/report",
  auth: "tenant",
  tags,
  summary: "The report for your supervisory authority (Art. 33(3)), structured as Datatilsynet's form",
  description:
    "JSON (the default) or, with Accept: text/html, a printable page in your language (escaped, no scripts, a strict Content-Security-Policy). It names your " +
    "contact point and holds no identifier of any affected person. Each read is audited (breach.report-read: it shows your decrypted contact address).",
  params,
  responses: {
    200: {
      description: "The report: application/json unless Accept prefers text/html (a printable page with a Content-Security-Policy)",
      schema: authorityReportSchema,
      alternatives: { "text/html": z.string().describe("The same report as an HTML page in your language") },
    },
    404: problems(["not-found"]),
    406: problems(["not-acceptable"]),
  },
  handler: async ({ services, principal, params, request }): Promise<EndpointResult> => {
    const accept = request.headers.get("accept");
    const type = new Negotiator({ headers: accept === null ? {} : { accept } }).mediaType(REPORT_TYPES);
    if (!type) throw new AppError("not-acceptable", "the report is available as application/json or text/html; send an Accept header that allows one");
    const doc = await authorityReport(services, principal, params.id, type === "text/html" ? "html" : "json");
    if (type !== "text/html") return { status: 200, json: doc, headers: { vary: "Accept" } };
    const tenant = await services.tenants.get(principal.tenantId);
    const { html, contentSecurityPolicy } = authorityReportHtml(services, doc, tenant?.timeZone);
    return {
      status: 200,
      body: html,
      headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": contentSecurityPolicy, "referrer-policy": "no-referrer", vary: "Accept" },
    };
  },
});
app.http(report.name, report.options);

// --- jobs -------------------------------------------------------------------------------------------------------

app.storageQueue("breach-job", {
  queueName: QUEUES.breaches.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.breaches.name, breachJobMessage, async (msg, { services, log }) => {
    if (msg.kind !== "sync-tenant") {
      const outcome = await runPersonJob(services, msg, log);
      log.info("breach.persons-job", { kind: msg.kind, breachId: msg.breachId, tenantId: msg.tenantId, version: msg.version, outcome });
      return;
    }
    const outcome = await syncTenantPart(services, msg.breachId, msg.tenantId, log);
    log.info("breach.sync", { breachId: msg.breachId, tenantId: msg.tenantId, outcome });
  }),
});

app.timer("breach-sweep", {
  schedule: BREACH_SWEEP_SCHEDULE,
  handler: async (timer: Timer, context) => {
    await runBreachSweep(services(), { pastDue: timer.isPastDue, log: invocationLog(context) });
  },
});
