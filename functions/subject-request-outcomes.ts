/**
 * What data-subject requests of part 3 leave the tenant: the record of a completed erasure (the erasure certificate),
 * rectification, restriction, objection or consent withdrawal, as JSON or a printable page; the tenant's note that it
 * told the recipients of erased or rectified data (Art. 19); and the lifting of a restriction (Art. 18(3): the person
 * is told first). The work itself runs on the request's queue (shared/usecases/subject-request-erasure.ts and the
 * other type modules, loaded here so their work is registered).
 */
import { app } from "@azure/functions";
import Negotiator from "negotiator";
import { z } from "zod";
import { requestIdSchema } from "../shared/domain/subject-requests";
import { AppError } from "../shared/errors";
import { httpEndpoint, problems, type EndpointResult } from "../shared/http/endpoint";
import { factDateTime } from "../shared/http/schemas";
import "../shared/usecases/subject-request-erasure";
import "../shared/usecases/subject-request-rectification";
import { getOutcome, outcomeHtml, recordRecipientsNotified, type OutcomeView, type RecipientsNotified } from "../shared/usecases/subject-request-outcomes";
import "../shared/usecases/subject-request-objection";
import { liftRestriction, type RestrictionState } from "../shared/usecases/subject-request-restriction";

const tags = ["Data-subject requests"];
const idParams = z.object({ id: requestIdSchema });

const outcomeSchema = z.object({
  requestId: z.string(),
  kind: z.enum(["erasure", "rectification", "restriction", "objection", "withdraw-consent"]),
  record: z
    .record(z.string(), z.unknown())
    .describe(
      "The record, exactly as recordSha256 covers it (canonical JSON: keys sorted, no whitespace). Erasure: erased (per place: count and SHA-256 of the " +
        "sorted ids), kept (each with its legal ground and end), erasedAt, recipientCount, method. Rectification: places, corrected. Restriction: purposes, " +
        "effect. Objection and withdraw-consent: each purpose with what must stop.",
    ),
  recordSha256: z.string().describe("SHA-256 (hex) of the record's canonical JSON; the audit entry at signedBy names it"),
  signedBy: z.object({ auditSeq: z.number().int(), auditHash: z.string() }).describe("The audit chain entry that records it (GET /api/v1/audit)"),
  recipients: z.array(z.string()).nullable().describe("Art. 19: the recipients of the erased or rectified uploads, as stored; null once the request's fields were erased"),
  recipientsNotified: z.object({ at: z.string(), by: z.string() }).nullable(),
}) satisfies z.ZodType<OutcomeView>;

const OUTCOME_TYPES = ["application/json", "text/html"];

const certificate = httpEndpoint({
  name: "subject-requests-certificate",
  method: "GET",
  route: "v1/subject-requests/{id}/certificate",
  auth: "tenant",
  tags,
  summary: "The record of a completed erasure (the erasure certificate), rectification, restriction, objection or consent withdrawal",
  description:
    "JSON (the default) or, with Accept: text/html, a printable page in your language (escaped, no scripts, a strict Content-Security-Policy). It is " +
    "signed by the audit chain position that records it. A read that shows the recipients (decrypted) is audited (subject-request.certificate-read).",
  params: idParams,
  responses: {
    200: {
      description: "The record: application/json unless Accept prefers text/html",
      schema: outcomeSchema,
      alternatives: { "text/html": z.string().describe("The same record as an HTML page in your language") },
    },
    404: problems(["not-found"]),
    406: problems(["not-acceptable"]),
    409: problems(["conflict"]),
    500: problems(["integrity-error"]),
  },
  handler: async ({ services, principal, params, request }): Promise<EndpointResult> => {
    const accept = request.headers.get("accept");
    const type = new Negotiator({ headers: accept === null ? {} : { accept } }).mediaType(OUTCOME_TYPES);
    if (!type) throw new AppError("not-acceptable", "the record is available as application/json or text/html; send an Accept header that allows one");
    const view = await getOutcome(services, principal, params.id);
    if (type !== "text/html") return { status: 200, json: view, headers: { vary: "Accept" } };
    const { html, contentSecurityPolicy } = await outcomeHtml(services, principal.tenantId, view);
    return {
      status: 200,
      body: html,
      headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": contentSecurityPolicy, "referrer-policy": "no-referrer", vary: "Accept" },
    };
  },
});
app.http(certificate.name, certificate.options);

const notified = httpEndpoint({
  name: "subject-requests-recipients-notified",
  method: "POST",
  route: "v1/subject-requests/{id}/recipients-notified",
  auth: "tenant",
  tags,
  summary: "Record that you told the recipients of the erased or rectified data (GDPR Art. 19)",
  description: "Once per request: a second call answers the first record. `at` defaults to now and may not be in the future.",
  params: idParams,
  body: z.strictObject({ at: factDateTime.optional().describe("When you told them (default: now)") }),
  idempotency: {},
  responses: {
    200: {
      description: "Recorded",
      schema: z.object({ requestId: z.string(), recipientCount: z.number().int(), recipientsNotified: z.object({ at: z.string(), by: z.string() }) }) satisfies z.ZodType<RecipientsNotified>,
    },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await recordRecipientsNotified(services, principal, params.id, body) }),
});
app.http(notified.name, notified.options);

const lift = httpEndpoint({
  name: "subject-requests-lift-restriction",
  method: "POST",
  route: "v1/subject-requests/{id}/lift-restriction",
  auth: "tenant",
  tags,
  summary: "Lift the restriction this request made (GDPR Art. 18(3): the person is told first, then it is lifted)",
  description:
    "Answers 202: the person is e-mailed, and the restriction ends once they were (moments later); `restricted` and `personToldAt` say how far it got. " +
    "Asking again while it is being lifted answers the same; once lifted, or taken over by a later restriction request, 409.",
  params: idParams,
  idempotency: {},
  responses: {
    202: {
      description: "Being lifted",
      schema: z.object({ requestId: z.string(), restricted: z.boolean(), liftRequestedAt: z.string().nullable(), personToldAt: z.string().nullable() }) satisfies z.ZodType<RestrictionState>,
    },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, params }) => ({ status: 202, json: await liftRestriction(services, principal, params.id) }),
});
app.http(lift.name, lift.options);
