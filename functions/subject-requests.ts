/**
 * Data-subject requests (GDPR Chapter III): the tenant records a request and decides on it; the person proves control
 * of the address with a code or a link (a public page); a queue works each request's steps; a timer closes unverified
 * requests and re-queues lost steps. See shared/usecases/subject-requests.ts.
 */
import { createHash } from "node:crypto";
import { app, type Timer } from "@azure/functions";
import Negotiator from "negotiator";
import { z } from "zod";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import { calendarDateSchema, CODE_DIGITS, codeSchema, DSR_OUTCOMES, DSR_STATUSES, DSR_TYPES, REJECTION_GROUNDS, requestIdSchema } from "../shared/domain/subject-requests";
import { hasControlOrFormat } from "../shared/domain/uploads";
import { AppError } from "../shared/errors";
import { toCsv } from "../shared/http/csv";
import { httpEndpoint, problems, type EndpointResult, type ResponseHeaderSpec } from "../shared/http/endpoint";
import { factDateTime, isoDateTime, pageOf, pagingQuery, singleLine } from "../shared/http/schemas";
import { invocationLog } from "../shared/observability";
import { queueHandler } from "../shared/queue-handler";
import { services } from "../shared/services";
import { subjectRequestStepMessage } from "../shared/usecases/messages";
import { runStep } from "../shared/usecases/subject-request-steps";
import { resendVerification, verificationPage, verifyCode, vouchForSubject } from "../shared/usecases/subject-request-verification";
import {
  allSubjectRequests,
  cancelSubjectRequest,
  createSubjectRequest,
  DSR_SWEEP_SCHEDULE,
  extendSubjectRequest,
  getSubjectRequest,
  listSubjectRequests,
  rejectSubjectRequest,
  retrySubjectRequest,
  runSubjectRequestSweep,
  type RequestSummary,
  type RequestView,
} from "../shared/usecases/subject-requests";

const tags = ["Data-subject requests"];
const idParams = z.object({ id: requestIdSchema });

/** Text a person may read (reasons, statements): trimmed, bounded, line breaks allowed, no other control or format character. */
const freeText = (max: number) =>
  z
    .string()
    .refine((v) => !hasControlOrFormat(v.replace(/\r\n|\n/g, "")), "must not contain control or format characters other than line breaks")
    .trim()
    .min(1)
    .max(max);

const summarySchema = z.object({
  id: z.string(),
  type: z.enum(DSR_TYPES),
  status: z.enum(DSR_STATUSES),
  receivedAt: z.string(),
  createdAt: z.string(),
  dueAt: z.string().describe("The due date in force: the end of the day (tenant's time zone) 28 days after the day of receipt, or the extended date"),
  legalDueAt: z.string().describe("One month counted as Regulation 1182/71 Art. 3 counts it (weekends rolled forward; public holidays not applied), for information"),
  originalDueAt: z.string(),
  extended: z.boolean(),
  overdue: z.boolean(),
  daysLeft: z.number().int().nullable().describe("Calendar days to the due date in the tenant's time zone (negative once overdue); null once closed"),
  late: z.boolean().describe("Recorded after its due date had passed"),
  verification: z.object({ method: z.enum(["code", "link", "vouch"]).nullable(), verifiedAt: z.string().nullable(), verifyBy: z.string() }),
  outcome: z.enum(DSR_OUTCOMES).nullable(),
  completedAt: z.string().nullable(),
  closedAt: z.string().nullable(),
  attention: z.object({ reason: z.string(), step: z.string(), since: z.string() }).nullable(),
  waitingFor: z.enum(["verification", "type-support"]).nullable().describe("type-support: the work of this request type is not built yet; it waits in verified, its deadline running"),
}) satisfies z.ZodType<RequestSummary>;

const detailsSchema = z.strictObject({
  field: singleLine(100).optional().describe("Rectification: the field to correct (e.g. email, name)"),
  value: freeText(1000).optional().describe("Rectification: the correct value"),
  purposes: z.array(singleLine(100)).min(1).max(50).optional().describe("Restriction, objection, withdraw-consent: the purposes concerned"),
  consentProof: z
    .enum(["keep", "erase"])
    .optional()
    .describe("Erasure: keep the person's consent proof for its evidence period (Art. 17(3)(e); the default) or erase it with the rest"),
});

const viewSchema = summarySchema.extend({
  subjectEmail: z.string().nullable().describe("Masked; null once erased"),
  details: detailsSchema.nullable(),
  externalId: z.string().nullable(),
  lateReason: z.string().nullable(),
  maxExtendedDueAt: z.string().describe("The latest date an extension may reach (two months after legalDueAt, clamped to the month's end)"),
  extension: z.object({ at: z.string(), reason: z.string().nullable() }).nullable(),
  rejection: z.object({ ground: z.enum(REJECTION_GROUNDS), reason: z.string().nullable(), at: z.string() }).nullable(),
  cancellation: z.object({ reason: z.string().nullable(), at: z.string() }).nullable(),
  verificationDetail: z.object({ wrongTries: z.number().int(), triesLeft: z.number().int(), resends: z.number().int(), resendsLeft: z.number().int(), emailsSent: z.number().int() }),
  history: z.array(z.object({ at: z.string(), event: z.string(), from: z.enum(DSR_STATUSES).nullable(), to: z.enum(DSR_STATUSES), by: z.string() })),
  steps: z.array(z.object({ name: z.string(), attempts: z.number().int(), lastError: z.string().nullable(), parked: z.boolean() })),
  erasedAt: z.string().nullable(),
}) satisfies z.ZodType<RequestView>;

const decided = { 200: { description: "Done; the request as it now is", schema: summarySchema }, 404: problems(["not-found"]), 409: problems(["conflict"]) };

// --- intake and reading ---------------------------------------------------------------------------------------------

const create = httpEndpoint({
  name: "subject-requests-create",
  method: "POST",
  route: "v1/subject-requests",
  auth: "tenant",
  tags,
  summary: "Record a data-subject request the tenant received; the person is e-mailed a code and a link to confirm it",
  description:
    "The due date runs from receivedAt (when the tenant received the request; never in the future), not from this call. A receivedAt so old that " +
    "the due date has passed is accepted, flagged overdue, and needs lateReason. The same externalId again returns the first request (200); with " +
    "another body it is 409. An open request of the same subject, type and details is returned instead of a new one (200); one whose verification " +
    "failed never stands in the way.",
  body: z.strictObject({
    type: z.enum(DSR_TYPES),
    subjectEmail: z.email().max(254).describe("The person's address (stored only encrypted; found by a keyed hash)"),
    details: detailsSchema.optional(),
    receivedAt: factDateTime.optional().describe("When the tenant received the request (default: now)"),
    externalId: singleLine(100).optional().describe("Your own id for the request, unique per tenant"),
    lateReason: freeText(2000).optional().describe("Required when the due date has already passed"),
  }),
  idempotency: {},
  responses: {
    201: { description: "Recorded", schema: summarySchema },
    200: { description: "The same request was recorded before: that one", schema: summarySchema },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, body, request, log }) => {
    const r = await createSubjectRequest(services, principal, body, new URL(request.url).origin, log);
    return { status: r.created ? 201 : 200, json: r.request, headers: { location: `/api/v1/subject-requests/${r.request.id}` } };
  },
});
app.http(create.name, create.options);

/** The list's media types, the first the default (RFC 9110 §12.5.1: Accept chooses, by q-value). */
const LIST_TYPES = ["application/json", "text/csv"];
const CSV_HEADER = ["id", "received", "type", "status", "due", "extended", "completed", "outcome"];

const list = httpEndpoint({
  name: "subject-requests-list",
  method: "GET",
  route: "v1/subject-requests",
  auth: "tenant",
  tags,
  summary: "The tenant's requests, soonest due first, each with daysLeft; overdue=true: those past due and those that need attention",
  description:
    "With `Accept: text/csv` the same list (every matching request, at most 10,000, not paged) as RFC 4180 CSV for an audit: id, received, type, " +
    "status, due, extended, completed, outcome; a cell starting with =, +, -, @, a tab or a carriage return is prefixed with a single quote.",
  query: pagingQuery.extend({
    status: z.enum(DSR_STATUSES).optional(),
    dueBefore: isoDateTime.optional().describe("Only requests due at or before this time"),
    overdue: z.enum(["true", "false"]).optional().describe("true: only open requests past their due date, and every request that needs attention"),
  }),
  responses: {
    200: {
      description: "A page of requests: application/json unless Accept prefers text/csv (every matching request, not paged)",
      schema: pageOf(summarySchema),
      alternatives: { "text/csv": z.string().describe("RFC 4180 CSV with a header record: id, received, type, status, due, extended, completed, outcome") },
    },
    406: problems(["not-acceptable"]),
  },
  handler: async ({ services, principal, query, request }): Promise<EndpointResult> => {
    const q = { status: query.status, dueBefore: query.dueBefore, overdue: query.overdue === "true", limit: query.limit, cursor: query.cursor };
    const accept = request.headers.get("accept");
    const type = new Negotiator({ headers: accept === null ? {} : { accept } }).mediaType(LIST_TYPES);
    if (!type) throw new AppError("not-acceptable", "the list is available as application/json or text/csv; send an Accept header that allows one");
    if (type === "text/csv") {
      const { items, truncated } = await allSubjectRequests(services, principal, q);
      const rows = items.map((r) => [r.id, r.receivedAt, r.type, r.status, r.dueAt, r.extended ? "yes" : "no", r.completedAt ?? r.closedAt ?? "", r.outcome ?? (r.status === "rejected" ? "rejected" : "")]);
      return {
        status: 200,
        body: toCsv(CSV_HEADER, rows),
        headers: {
          "content-type": "text/csv; charset=utf-8; header=present",
          "content-disposition": 'attachment; filename="subject-requests.csv"',
          "x-truncated": String(truncated),
          vary: "Accept",
        },
      };
    }
    return { status: 200, json: await listSubjectRequests(services, principal, q), headers: { vary: "Accept" } };
  },
});
app.http(list.name, list.options);

const get = httpEndpoint({
  name: "subject-requests-get",
  method: "GET",
  route: "v1/subject-requests/{id}",
  auth: "tenant",
  tags,
  summary: "One request with its decrypted details (the address masked), history and steps; each read is audited",
  params: idParams,
  responses: { 200: { description: "The request", schema: viewSchema }, 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getSubjectRequest(services, principal, params.id) }),
});
app.http(get.name, get.options);

// --- verification ---------------------------------------------------------------------------------------------------

const verify = httpEndpoint({
  name: "subject-requests-verify",
  method: "POST",
  route: "v1/subject-requests/{id}/verify",
  auth: "tenant",
  tags,
  summary: "Relay the code the person received: it verifies the request (at most 5 wrong codes, then verification-failed)",
  params: idParams,
  body: z.strictObject({ code: codeSchema.describe(`The ${CODE_DIGITS}-digit code from the person's e-mail`) }),
  idempotency: {},
  responses: { ...decided, 422: problems(["verification-failed"]), 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await verifyCode(services, principal, params.id, body.code) }),
});
app.http(verify.name, verify.options);

const vouch = httpEndpoint({
  name: "subject-requests-vouch",
  method: "POST",
  route: "v1/subject-requests/{id}/vouch",
  auth: "tenant",
  tags,
  summary: "Vouch for the person's identity with a statement (recorded in the audit log as the tenant's)",
  params: idParams,
  body: z.strictObject({ statement: freeText(2000).describe("How the tenant verified the person's identity") }),
  idempotency: {},
  responses: { ...decided, 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await vouchForSubject(services, principal, params.id, body.statement) }),
});
app.http(vouch.name, vouch.options);

const resend = httpEndpoint({
  name: "subject-requests-resend",
  method: "POST",
  route: "v1/subject-requests/{id}/resend",
  auth: "tenant",
  tags,
  summary: "E-mail the person a new code and link (at most 3 times); earlier ones keep working until they expire",
  params: idParams,
  idempotency: {},
  responses: decided,
  handler: async ({ services, principal, params, request }) => ({ status: 200, json: await resendVerification(services, principal, params.id, new URL(request.url).origin) }),
});
app.http(resend.name, resend.options);

// --- decisions ------------------------------------------------------------------------------------------------------

const extend = httpEndpoint({
  name: "subject-requests-extend",
  method: "POST",
  route: "v1/subject-requests/{id}/extend",
  auth: "tenant",
  tags,
  summary: "Extend the deadline once, before it passes, with a reason (GDPR Art. 12(3)); the person is told",
  description: "until (a date in the tenant's time zone) may be at most two months after legalDueAt (clamped to the month's last day); omitted, it is that limit. After dueAt: 409.",
  params: idParams,
  body: z.strictObject({ reason: freeText(2000).describe("Why more time is needed (sent to the person)"), until: calendarDateSchema.optional() }),
  idempotency: {},
  responses: { ...decided, 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await extendSubjectRequest(services, principal, params.id, body) }),
});
app.http(extend.name, extend.options);

const reject = httpEndpoint({
  name: "subject-requests-reject",
  method: "POST",
  route: "v1/subject-requests/{id}/reject",
  auth: "tenant",
  tags,
  summary: "Refuse the request (manifestly unfounded or excessive, Art. 12(5); or identity not verified); the person is told why and of their right to complain",
  params: idParams,
  body: z.strictObject({ ground: z.enum(REJECTION_GROUNDS), reason: freeText(2000).describe("Sent to the person") }),
  idempotency: {},
  responses: { ...decided, 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await rejectSubjectRequest(services, principal, params.id, body) }),
});
app.http(reject.name, reject.options);

const cancel = httpEndpoint({
  name: "subject-requests-cancel",
  method: "POST",
  route: "v1/subject-requests/{id}/cancel",
  auth: "tenant",
  tags,
  summary: "Cancel the request (e.g. the person withdrew it), with a reason",
  params: idParams,
  body: z.strictObject({ reason: freeText(2000) }),
  idempotency: {},
  responses: { ...decided, 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await cancelSubjectRequest(services, principal, params.id, body.reason) }),
});
app.http(cancel.name, cancel.options);

const retry = httpEndpoint({
  name: "subject-requests-retry",
  method: "POST",
  route: "v1/subject-requests/{id}/retry",
  auth: "tenant",
  tags,
  summary: "Resume a request that needs attention: the step that failed is queued again",
  params: idParams,
  idempotency: {},
  responses: decided,
  handler: async ({ services, principal, params }) => ({ status: 200, json: await retrySubjectRequest(services, principal, params.id) }),
});
app.http(retry.name, retry.options);

// --- the person's link ----------------------------------------------------------------------------------------------

/**
 * The page's policy: nothing loads or runs; its one style block is allowed by its hash, its one form posts back to the
 * page itself; nobody may frame it.
 */
function pageHeaders(html: string): Record<string, string> {
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`);
  return {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": `default-src 'none'; style-src ${styles.length > 0 ? styles.join(" ") : "'none'"}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
  };
}

const pageHeaderSpecs: Record<string, ResponseHeaderSpec> = {
  "Content-Security-Policy": { description: "default-src 'none'; the page's style by its hash; form-action 'self'; no script may run", required: true },
  "Referrer-Policy": { description: "no-referrer: the link's token is never sent on to another site", required: true },
};
const htmlPage = z.string().describe("An HTML page (escaped, no scripts)");
const pageResponses = {
  200: { description: "The page: confirm (GET), or confirmed (POST) (HTML)", contentType: "text/html", schema: htmlPage, headers: pageHeaderSpecs },
  403: { description: "This link does not work (forged, changed, or naming nothing): a page that says so (HTML)", contentType: "text/html", schema: htmlPage, headers: pageHeaderSpecs },
  410: {
    description: "This link can no longer be used: it was used already, its request was verified otherwise, it expired, or its request was closed unverified; a page that says so (HTML)",
    contentType: "text/html",
    schema: htmlPage,
    headers: pageHeaderSpecs,
  },
};
const tokenParams = z.object({ token: z.string().min(1).max(1024) });

const pageGet = httpEndpoint({
  name: "subject-request-verification-page",
  method: "GET",
  route: "public/subject-request-verification/{token}",
  auth: "none",
  tags,
  summary: "The page a verification link opens: what the request is and one button (opening it confirms nothing)",
  params: tokenParams,
  responses: pageResponses,
  handler: async ({ services, params, requestId, log }) => {
    const r = await verificationPage(services, params.token, "GET", requestId, log);
    return { status: r.status, body: r.html, headers: pageHeaders(r.html) };
  },
});
app.http(pageGet.name, pageGet.options);

const pagePost = httpEndpoint({
  name: "subject-request-verification-confirm",
  method: "POST",
  route: "public/subject-request-verification/{token}",
  auth: "none",
  tags,
  summary: "Confirm the request, as the page's button does: once per link",
  params: tokenParams,
  idempotency: {},
  responses: { ...pageResponses, 409: problems(["conflict"]) },
  handler: async ({ services, params, requestId, log }) => {
    const r = await verificationPage(services, params.token, "POST", requestId, log);
    return { status: r.status, body: r.html, headers: pageHeaders(r.html) };
  },
});
app.http(pagePost.name, pagePost.options);

// --- the work queue and the sweep -----------------------------------------------------------------------------------

app.storageQueue("subject-request-step", {
  queueName: QUEUES.subjectRequests.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.subjectRequests.name, subjectRequestStepMessage, async (msg, { services, log, dequeueCount }) => {
    const outcome = await runStep(services, msg, log);
    log.info("dsr.step", { tenantId: msg.tenantId, requestId: msg.requestId, step: msg.step, seq: msg.seq, outcome, dequeueCount });
    // Failed, not yet for the last time: the queue tries again (the attempt is counted on the request).
    if (outcome === "failed") throw new Error(`step ${msg.step} failed; it will be tried again`);
  }),
});

app.timer("subject-request-sweep", {
  schedule: DSR_SWEEP_SCHEDULE,
  handler: async (timer: Timer, context) => {
    await runSubjectRequestSweep(services(), { pastDue: timer.isPastDue, log: invocationLog(context) });
  },
});
