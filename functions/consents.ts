/**
 * Consent records (GDPR Art. 7): purposes and their notice versions, consent events, the current state and history of
 * a subject, proof documents, and withdrawal links with their public pages. Subjects are named by e-mail in request
 * bodies only, never in URLs (which end up in request logs and telemetry).
 */
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { app, type HttpRequest } from "@azure/functions";
import { parse as parseContentType } from "content-type";
import Negotiator from "negotiator";
import { z } from "zod";
import {
  ALL_PURPOSES,
  CONSENT_EVENT_ID_PATTERN,
  DECISIONS,
  DIGEST_SCHEME,
  DIGEST_SCHEME_V2,
  LANGUAGE_TAG,
  LEGAL_BASES,
  METHODS,
  parseIp,
  PROPERTY_ID,
  purposeKeySchema,
  REQUEST_ORIGINS,
  TENANT_METHODS,
  TENANT_ORIGINS,
} from "../shared/domain/consent";
import { declaredEvidenceType, EVIDENCE_TYPES, type EvidenceType } from "../shared/domain/consent-evidence";
import { COUNTRY_CODE, COUNTRY_SOURCES, gppHeaderSchema, MAX_SIGNAL_STRING, tcfHeaderSchema } from "../shared/domain/consent-signals";
import { AppError } from "../shared/errors";
import { acceptCheck } from "../shared/http/accept";
import { csvCell } from "../shared/http/csv";
import { httpEndpoint, problems, type EndpointResult, type ResponseHeaderSpec } from "../shared/http/endpoint";
import { factDateTime, isoDateTime, pageOf, pagingQuery, singleLine } from "../shared/http/schemas";
import { pacedBody } from "../shared/http/streamed-response";
import { openEvidence, putEvidence, type EvidenceView, type IncomingEvidence } from "../shared/usecases/consent-evidence";
import { EXPORT_CSV_COLUMNS, exportConsentPage, exportConsentRows } from "../shared/usecases/consent-export";
import { consentProof, consentProofHtml, PROOF_VERSION, proofWithoutEvidence, type ConsentProof } from "../shared/usecases/consent-proof";
import { auditEntrySchema } from "../shared/domain/audit-chain";
import { issueWithdrawalLink, rotateLinkSecret, withdrawalPage } from "../shared/usecases/consent-links";
import {
  addNotice,
  consentSummary,
  createPurpose,
  getConsentEvent,
  getConsentSettings,
  getPurpose,
  listPurposes,
  recordConsent,
  searchConsents,
  setConsentSettings,
  withdrawConsent,
  type ConsentEventView,
  type PurposeView,
} from "../shared/usecases/consents";

const tags = ["Consent records"];

/** Pages shown to people carry no script and may be framed by nobody; the form posts back to the page itself. */
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/** A printed proof has no form either. */
const PROOF_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";
const htmlHeaders = (csp: string) => ({
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": csp,
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
});
const declaredHtmlHeaders: Record<string, ResponseHeaderSpec> = {
  "Content-Security-Policy": { description: `${PAGE_CSP} (no script may run)`, required: true },
  "Referrer-Policy": { description: "no-referrer: the link's token is never sent on to another site", required: true },
};
const htmlPage = z.string().describe("An HTML page (escaped, no scripts)");

const email = z.email().max(254).describe("The data subject's e-mail address (never stored in clear: a keyed hash finds it, an encrypted field keeps it)");
const purposeOrAll = z
  .string()
  .refine((v) => v === ALL_PURPOSES || purposeKeySchema.safeParse(v).success, "must be a purpose key or 'all'")
  .describe("A purpose key, or 'all' for every purpose of the tenant");

const ipAddress = z
  .string()
  .max(45)
  .refine((v) => parseIp(v) !== undefined, "must be an IPv4 address in dotted decimal (like 203.0.113.7) or an IPv6 address (no zone)")
  .describe("The person's IP address as your server saw it (not your server's): stored truncated to /24 or /48; in full, encrypted, only when the tenant opted in");
const oneLine = (max: number) =>
  z
    .string()
    .max(max)
    .refine((v) => ![...v].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f), "must be one line without control characters");

/** What every consent recording may carry about how it was given, all as the person's browser sent it. */
const evidenceFields = {
  givenAt: factDateTime.optional().describe("When the person decided (default: now); at most 5 minutes ahead of the service clock"),
  propertyId: z.string().regex(PROPERTY_ID, "must be 1-100 letters, digits, '.', '_', ':' or '-'").optional().describe("Your site or app, e.g. www.example.com"),
  pageUrl: oneLine(2048).optional().describe("The page or screen where the person decided (stored encrypted)"),
  language: z.string().regex(LANGUAGE_TAG, "must be a language tag like en, da or de-AT").optional().describe("The language the person saw"),
  ipAddress: ipAddress.optional(),
  userAgent: oneLine(1024).optional().describe("The person's browser's User-Agent (stored encrypted)"),
  gpc: z.boolean().optional().describe("Whether the person's browser sent Sec-GPC: 1 (Global Privacy Control); with method gpc it is the signal itself (default true)"),
  country: z
    .string()
    .regex(COUNTRY_CODE, "must be an ISO 3166-1 alpha-2 code: two capital letters, like DK")
    .optional()
    .describe("Where the person was, as you know it (ISO 3166-1 alpha-2, checked against the assigned codes); without it the country is derived from ipAddress offline"),
  tcfString: z.string().min(1).max(MAX_SIGNAL_STRING).optional().describe("The IAB TCF v2 TC string the person's CMP made (stored encrypted; its header decoded)"),
  gppString: z.string().min(1).max(MAX_SIGNAL_STRING).optional().describe("The IAB GPP string (stored encrypted; its header decoded)"),
};

const locationView = z
  .object({ country: z.string(), source: z.enum(COUNTRY_SOURCES), database: z.string().nullable().describe("For derived: the offline database and its version") })
  .nullable()
  .describe("The country of the IP address: given by you, or derived offline when recorded");

const noticeView = z.object({
  version: z.number().int(),
  language: z.string(),
  text: z.string().nullable(),
  url: z.string().nullable(),
  sha256: z.string(),
  createdAt: z.string(),
});

const purposeView = z.object({
  key: z.string(),
  description: z.string(),
  legalBasis: z.enum(LEGAL_BASES),
  createdAt: z.string(),
  notices: z.array(noticeView),
}) satisfies z.ZodType<PurposeView>;

const eventView = z.object({
  id: z.string(),
  subjectId: z.string().describe("The subject's opaque id (the same in every event of the subject)"),
  purpose: z.string(),
  noticeVersion: z.number().int().nullable(),
  decision: z.enum(DECISIONS),
  method: z.enum(METHODS),
  requestOrigin: z.enum(REQUEST_ORIGINS),
  propertyId: z.string().nullable(),
  language: z.string().nullable(),
  givenAt: z.string(),
  recordedAt: z.string(),
  ipAddress: z.string().nullable().describe("Truncated: /24 (IPv4) or /48 (IPv6)"),
  country: locationView,
  gpc: z.boolean().nullable(),
  conflictsWithGpc: z.boolean().describe("A grant with a GPC objection signal on it or on an earlier recorded event of the same subject and purpose"),
  tcf: tcfHeaderSchema.nullable().describe("What the TC string's core segment says (the string itself is kept encrypted)"),
  gpp: gppHeaderSchema.nullable().describe("What the GPP string's header and TCF sections say (the string itself is kept encrypted)"),
  recordedBy: z.string().describe("key:<id>, or subject (the person, through a withdrawal link)"),
  linkId: z.string().nullable(),
  digest: z.string().describe("HMAC-SHA256 of the event's canonical content under its own key (see the proof)"),
  digestScheme: z.string().describe(`${DIGEST_SCHEME} or ${DIGEST_SCHEME_V2}`),
  audit: z.object({ seq: z.number().int(), hash: z.string() }),
}) satisfies z.ZodType<ConsentEventView>;

const stateView = z.object({
  purpose: z.string(),
  decision: z.enum(DECISIONS),
  since: z.string(),
  eventId: z.string(),
  noticeVersion: z.number().int().nullable(),
  events: z.number().int(),
  conflictsWithGpc: z.boolean().describe("The latest decision is a grant, and a GPC signal was seen in the purpose's history"),
});

const digestContentV1 = z.object({
  scheme: z.literal(DIGEST_SCHEME),
  tenantId: z.string(),
  eventId: z.string(),
  subjectId: z.string(),
  subjectHash: z.string(),
  purposeKey: z.string(),
  noticeVersion: z.number().int().nullable(),
  noticeSha256: z.string().nullable(),
  decision: z.enum(DECISIONS),
  method: z.enum(METHODS),
  requestOrigin: z.enum(REQUEST_ORIGINS),
  propertyId: z.string().nullable(),
  language: z.string().nullable(),
  givenAt: z.string(),
  recordedAt: z.string(),
  ipTruncated: z.string().nullable(),
  gpc: z.boolean().nullable(),
});
const digestContent = z.union([
  digestContentV1,
  digestContentV1.extend({
    scheme: z.literal(DIGEST_SCHEME_V2),
    location: locationView,
    tcf: z.object({ sha256: z.string(), header: tcfHeaderSchema }).nullable(),
    gpp: z.object({ sha256: z.string(), header: gppHeaderSchema }).nullable(),
  }),
]);

const proofView = z.object({
  proofVersion: z.literal(PROOF_VERSION),
  generatedAt: z.string(),
  controller: z.object({ tenantId: z.string(), name: z.string() }),
  subject: z.object({ subjectId: z.string(), subjectHash: z.string(), subjectHashAlgorithm: z.string() }),
  purpose: z.object({ key: z.string(), description: z.string(), legalBasis: z.enum(LEGAL_BASES) }),
  currentState: z.object({ decision: z.enum(DECISIONS), since: z.string(), eventId: z.string(), noticeVersion: z.number().int().nullable(), conflictsWithGpc: z.boolean() }),
  events: z.array(
    z.object({
      eventId: z.string(),
      givenAt: z.string(),
      recordedAt: z.string(),
      decision: z.enum(DECISIONS),
      method: z.string(),
      requestOrigin: z.string(),
      propertyId: z.string().nullable(),
      language: z.string().nullable(),
      ipAddress: z.string().nullable().describe("Truncated: /24 (IPv4) or /48 (IPv6)"),
      country: locationView,
      gpc: z.boolean().nullable(),
      conflictsWithGpc: z.boolean(),
      recordedBy: z.string(),
      linkId: z.string().nullable(),
      signals: z
        .object({
          tcf: z.object({ string: z.string().nullable(), header: tcfHeaderSchema }).nullable(),
          gpp: z.object({ string: z.string().nullable(), header: gppHeaderSchema }).nullable(),
        })
        .describe("The IAB strings as sent (decrypted; null in an Idempotency-Key replay) and their decoded headers"),
      evidenceFile: z
        .object({
          contentType: z.string(),
          bytes: z.number().int(),
          sha256: z.string(),
          storedAt: z.string(),
          url: z.string(),
          audit: z.object({ seq: z.number().int(), hash: z.string(), entry: auditEntrySchema }),
        })
        .nullable()
        .describe("The evidence file of the event (what the person was shown), if sent: its SHA-256 and the audit entry that recorded it"),
      notice: z.object({ version: z.number().int(), language: z.string(), text: z.string().nullable(), url: z.string().nullable(), sha256: z.string() }).nullable(),
      evidence: z
        .object({ pageUrl: z.string().nullable(), userAgent: z.string().nullable(), fullIpAddress: z.string().nullable() })
        .describe("Kept encrypted; not covered by the digest; null in an Idempotency-Key replay"),
      digest: z.object({
        scheme: z.enum([DIGEST_SCHEME, DIGEST_SCHEME_V2]),
        algorithm: z.literal("HMAC-SHA256"),
        key: z.string().describe("This event's own HMAC key, hex (it opens no other event's digest)"),
        content: digestContent,
        canonical: z.string().describe("The canonical JSON of content: what the HMAC is computed over (UTF-8)"),
        value: z.string(),
      }),
      audit: z.object({ seq: z.number().int(), hash: z.string(), entry: auditEntrySchema }),
    }),
  ),
  verification: z.object({ steps: z.array(z.string()), auditVerify: z.array(z.string()) }),
}) satisfies z.ZodType<ConsentProof>;

const keyParams = z.object({ key: purposeKeySchema });

// --- purposes --------------------------------------------------------------------------------------------------------

const purposesCreate = httpEndpoint({
  name: "consent-purposes-create",
  method: "POST",
  route: "v1/purposes",
  auth: "tenant",
  tags,
  summary: "Create a purpose consent is asked for (never changed afterwards)",
  body: z.strictObject({
    key: purposeKeySchema.describe("Lower-case letters, digits and '-'; not 'all'"),
    description: singleLine(500).describe("What the person consents to, as your notice says it"),
    legalBasis: z
      .enum(LEGAL_BASES, { error: "this register records consent: legalBasis must be consent (Art. 6(1)(a)) or explicit-consent (Art. 9(2)(a))" })
      .describe("consent (Art. 6(1)(a)) or explicit-consent (Art. 9(2)(a)); other bases are not consent and are refused"),
  }),
  idempotency: {},
  responses: {
    201: { description: "Created", schema: purposeView },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, body }) => {
    const created = await createPurpose(services, principal, body);
    return { status: 201, json: created, headers: { location: `/api/v1/purposes/${created.key}` } };
  },
});
app.http(purposesCreate.name, purposesCreate.options);

const purposesList = httpEndpoint({
  name: "consent-purposes-list",
  method: "GET",
  route: "v1/purposes",
  auth: "tenant",
  tags,
  summary: "The tenant's purposes, by key",
  responses: {
    200: {
      description: "The purposes",
      schema: z.object({ items: z.array(purposeView.omit({ notices: true }).extend({ lastNoticeVersion: z.number().int() })) }),
    },
  },
  handler: async ({ services, principal }) => ({ status: 200, json: await listPurposes(services, principal) }),
});
app.http(purposesList.name, purposesList.options);

const purposesGet = httpEndpoint({
  name: "consent-purposes-get",
  method: "GET",
  route: "v1/purposes/{key}",
  auth: "tenant",
  tags,
  summary: "One purpose with every notice version",
  params: keyParams,
  responses: { 200: { description: "The purpose", schema: purposeView }, 404: problems(["not-found"]) },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getPurpose(services, principal, params.key) }),
});
app.http(purposesGet.name, purposesGet.options);

const noticesCreate = httpEndpoint({
  name: "consent-notices-create",
  method: "POST",
  route: "v1/purposes/{key}/notices",
  auth: "tenant",
  tags,
  summary: "Add a notice version (the text shown, or its URL and the SHA-256 of the rendered text); versions are numbered for you and never edited",
  params: keyParams,
  body: z
    .strictObject({
      language: z.string().regex(LANGUAGE_TAG, "must be a language tag like en, da or de-AT").describe("The language of the notice"),
      text: z.string().min(1).max(100_000).optional().describe("The notice text as shown (stored, with its SHA-256)"),
      url: z.url({ protocol: /^https?$/ }).max(2048).optional().describe("Where the notice is published (instead of text)"),
      sha256: z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/, "must be 64 hexadecimal digits")
        .optional()
        .describe("With url: the SHA-256 of the rendered text (hex)"),
    })
    .superRefine((v, ctx) => {
      const byText = v.text !== undefined;
      const byUrl = v.url !== undefined || v.sha256 !== undefined;
      if (byText === byUrl) ctx.addIssue({ code: "custom", path: ["text"], message: "give either text, or url and sha256" });
      else if (byUrl && (v.url === undefined || v.sha256 === undefined)) ctx.addIssue({ code: "custom", path: [v.url === undefined ? "url" : "sha256"], message: "url and sha256 go together" });
    }),
  idempotency: {},
  responses: {
    201: { description: "The new version", schema: noticeView },
    404: problems(["not-found"]),
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, params, body }) => {
    const input = body.text !== undefined ? { language: body.language, text: body.text } : { language: body.language, url: body.url!, sha256: body.sha256! };
    return { status: 201, json: await addNotice(services, principal, params.key, input) };
  },
});
app.http(noticesCreate.name, noticesCreate.options);

const summary = httpEndpoint({
  name: "consent-summary",
  method: "GET",
  route: "v1/purposes/{key}/consents/summary",
  auth: "tenant",
  tags,
  summary: "Counts per notice version and decision: recorded events, and subjects' current decisions",
  params: keyParams,
  responses: {
    200: {
      description: "The counts",
      schema: z.object({
        purpose: z.string(),
        events: z.array(z.object({ noticeVersion: z.number().int().nullable(), granted: z.number().int(), denied: z.number().int(), withdrawn: z.number().int() })),
        current: z.array(z.object({ noticeVersion: z.number().int().nullable(), granted: z.number().int(), denied: z.number().int(), withdrawn: z.number().int() })),
      }),
    },
    404: problems(["not-found"]),
  },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await consentSummary(services, principal, params.key) }),
});
app.http(summary.name, summary.options);

// --- events ----------------------------------------------------------------------------------------------------------

const record = httpEndpoint({
  name: "consents-record",
  method: "POST",
  route: "v1/consents",
  auth: "tenant",
  tags,
  summary: "Record a consent decision (granted, denied or withdrawn); events are never changed",
  description:
    "Send what the person's browser sent (IP address, user agent, GPC): your server's own request is not the person's. " +
    "noticeVersion is required for granted and denied; a withdrawal without one refers to the purpose's newest notice.",
  body: z.strictObject({
    email,
    purpose: purposeKeySchema.describe("The purpose's key"),
    noticeVersion: z.number().int().positive().max(1_000_000).optional().describe("The notice version the person was shown"),
    decision: z.enum(DECISIONS),
    method: z.enum(TENANT_METHODS).describe("How the person decided (gpc: the Global Privacy Control signal, which cannot grant)"),
    requestOrigin: z.enum(TENANT_ORIGINS).describe("Where in your property the decision was made"),
    ...evidenceFields,
  }),
  idempotency: {},
  responses: {
    201: { description: "Recorded", schema: eventView },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, body }) => {
    const event = await recordConsent(services, principal, body);
    return { status: 201, json: event, headers: { location: `/api/v1/consents/${event.id}` } };
  },
});
app.http(record.name, record.options);

const withdraw = httpEndpoint({
  name: "consents-withdraw",
  method: "POST",
  route: "v1/consents/withdraw",
  auth: "tenant",
  tags,
  summary: "Withdraw a subject's consent for one purpose or all, in one call, without ids",
  description: "A withdrawal of a purpose never consented to is recorded too: the person's wish is the record.",
  body: z.strictObject({
    email,
    purpose: purposeOrAll,
    method: z.enum(TENANT_METHODS).optional().describe("Default api"),
    requestOrigin: z.enum(TENANT_ORIGINS).optional().describe("Default api"),
    ...evidenceFields,
  }),
  idempotency: {},
  responses: {
    201: { description: "Recorded, one event per purpose", schema: z.object({ subjectId: z.string(), eventIds: z.array(z.string()) }) },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, body }) => ({ status: 201, json: await withdrawConsent(services, principal, body) }),
});
app.http(withdraw.name, withdraw.options);

const search = httpEndpoint({
  name: "consents-search",
  method: "POST",
  route: "v1/consents/search",
  auth: "tenant",
  tags,
  summary: "A subject's current decision per purpose and full history, oldest first (a POST so the address is not in the URL)",
  body: z.strictObject({ email }),
  idempotency: {},
  responses: {
    200: {
      description: "The state and history (empty, with subjectId null, when nothing is recorded for the address)",
      schema: z.object({ subjectId: z.string().nullable(), states: z.array(stateView), history: z.array(eventView) }),
    },
  },
  handler: async ({ services, principal, body }) => ({ status: 200, json: await searchConsents(services, principal, body.email) }),
});
app.http(search.name, search.options);

const getEvent = httpEndpoint({
  name: "consents-get",
  method: "GET",
  route: "v1/consents/{id}",
  auth: "tenant",
  tags,
  summary: "One consent event",
  params: z.object({ id: z.string().regex(CONSENT_EVENT_ID_PATTERN) }),
  responses: { 200: { description: "The event", schema: eventView }, 404: problems(["not-found"]) },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getConsentEvent(services, principal, params.id) }),
});
app.http(getEvent.name, getEvent.options);

const proof = httpEndpoint({
  name: "consents-proof",
  method: "POST",
  route: "v1/consents/proof",
  auth: "tenant",
  tags,
  summary: "The proof of a subject's consent for a purpose: every event with its notice, evidence, keyed digest and audit entry, and how to verify them",
  description:
    "format json (default) is the source of truth; html is a printable rendering of it (escaped, no scripts, strict Content-Security-Policy). " +
    "Issuing a proof shows the encrypted evidence fields decrypted and is recorded in the audit log (consent.proof-issued). " +
    "A replay of an Idempotency-Key gets the proof without the evidence fields.",
  body: z.strictObject({
    email,
    purpose: purposeKeySchema.describe("The purpose's key"),
    format: z.enum(["json", "html"]).optional().describe("Default json"),
  }),
  idempotency: { redact: (json) => proofWithoutEvidence(json as ConsentProof) },
  responses: {
    200: {
      description: "The proof: JSON (format json), or its HTML rendering (format html, text/html, with a Content-Security-Policy)",
      schema: proofView,
      // Chosen by the body's format (not by Accept): the proof's JSON is the document, the HTML prints it.
      alternatives: { "text/html": htmlPage },
      headers: { "Content-Security-Policy": { description: `With format html: ${PROOF_CSP}` } },
    },
    404: problems(["not-found"]),
    500: problems(["integrity-error"]),
  },
  handler: async ({ services, principal, body }) => {
    const doc = await consentProof(services, principal, body);
    if (body.format !== "html") return { status: 200, json: doc };
    return { status: 200, body: await consentProofHtml(services, principal, doc), headers: htmlHeaders(PROOF_CSP) };
  },
});
app.http(proof.name, proof.options);

// --- settings --------------------------------------------------------------------------------------------------------

const settingsView = z.object({ storeFullIp: z.boolean(), updatedAt: z.string().nullable() });

const settingsGet = httpEndpoint({
  name: "consent-settings-get",
  method: "GET",
  route: "v1/consents/settings",
  auth: "tenant",
  tags,
  summary: "The tenant's consent settings",
  responses: { 200: { description: "The settings", schema: settingsView } },
  handler: async ({ services, principal }) => ({ status: 200, json: await getConsentSettings(services, principal) }),
});
app.http(settingsGet.name, settingsGet.options);

const settingsPut = httpEndpoint({
  name: "consent-settings-put",
  method: "PUT",
  route: "v1/consents/settings",
  auth: "tenant",
  tags,
  summary: "Opt in or out of keeping the full IP address (encrypted) beside the truncated one, for events recorded from now on",
  body: z.strictObject({ storeFullIp: z.boolean() }),
  responses: { 200: { description: "The settings", schema: settingsView }, 409: problems(["conflict"]) },
  handler: async ({ services, principal, body }) => ({ status: 200, json: await setConsentSettings(services, principal, body) }),
});
app.http(settingsPut.name, settingsPut.options);

// --- withdrawal links ------------------------------------------------------------------------------------------------

const linksCreate = httpEndpoint({
  name: "consent-links-create",
  method: "POST",
  route: "v1/consents/withdrawal-links",
  auth: "tenant",
  tags,
  summary: "A signed link for one subject (one purpose or all) to put in your e-mails and pages: the person withdraws with one click, no login",
  description: "The link holds no address, works until expiresAt (CONSENT_LINK_DAYS after now) and withdraws once.",
  body: z.strictObject({ email, purpose: purposeOrAll }),
  idempotency: {},
  responses: {
    201: {
      description: "The link",
      schema: z.object({
        linkId: z.string(),
        subjectId: z.string(),
        purpose: z.string(),
        path: z.string(),
        url: z.string().describe("The path on the host this request reached"),
        token: z.string(),
        expiresAt: z.string(),
      }),
    },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, body, request }) => ({
    status: 201,
    json: await issueWithdrawalLink(services, principal, body, new URL(request.url).origin),
  }),
});
app.http(linksCreate.name, linksCreate.options);

const linksRotate = httpEndpoint({
  name: "consent-links-rotate-secret",
  method: "POST",
  route: "v1/consents/withdrawal-links/rotate-secret",
  auth: "tenant",
  tags,
  summary: "A new signing secret for withdrawal links; links signed before keep working until they expire",
  idempotency: {},
  responses: {
    200: {
      description: "Rotated",
      schema: z.object({ secretVersion: z.number().int(), previousVersion: z.number().int().nullable(), previousRetiresAt: z.string().nullable() }),
    },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal }) => ({ status: 200, json: await rotateLinkSecret(services, principal) }),
});
app.http(linksRotate.name, linksRotate.options);

const tokenParams = z.object({ token: z.string().min(1).max(1024) });
const pageResponses = {
  200: { description: "The page (HTML)", contentType: "text/html", schema: htmlPage, headers: declaredHtmlHeaders },
  403: { description: "This link does not work (forged, changed, or naming nothing): a page that says so (HTML)", contentType: "text/html", schema: htmlPage, headers: declaredHtmlHeaders },
  410: { description: "This link has expired, or there is nothing left for it to withdraw: a page that says so (HTML)", contentType: "text/html", schema: htmlPage, headers: declaredHtmlHeaders },
  429: problems(["too-many-requests"], { "Retry-After": { description: "Seconds until the link may be used again", required: true } }),
};

const pageGet = httpEndpoint({
  name: "consent-withdrawal-page",
  method: "GET",
  route: "public/consent-withdrawal/{token}",
  auth: "none",
  tags,
  summary: "The page a withdrawal link opens: what withdrawing means and one button (nothing is withdrawn by opening it)",
  params: tokenParams,
  responses: pageResponses,
  handler: async ({ services, params, requestId, log }) => {
    const r = await withdrawalPage(services, params.token, "GET", requestId, log);
    return { status: r.status, body: r.html, headers: htmlHeaders(PAGE_CSP) };
  },
});
app.http(pageGet.name, pageGet.options);

const pagePost = httpEndpoint({
  name: "consent-withdrawal-confirm",
  method: "POST",
  route: "public/consent-withdrawal/{token}",
  auth: "none",
  tags,
  summary: "Withdraw, as the page's button does: exactly once per link, however often it is sent",
  params: tokenParams,
  idempotency: {},
  responses: { ...pageResponses, 409: problems(["conflict"]) },
  handler: async ({ services, params, requestId, log }) => {
    const r = await withdrawalPage(services, params.token, "POST", requestId, log);
    return { status: r.status, body: r.html, headers: htmlHeaders(PAGE_CSP) };
  },
});
app.http(pagePost.name, pagePost.options);

// --- evidence files --------------------------------------------------------------------------------------------------

const eventParams = z.object({ id: z.string().regex(CONSENT_EVENT_ID_PATTERN) });

const evidenceView = z.object({
  eventId: z.string(),
  contentType: z.enum(EVIDENCE_TYPES),
  bytes: z.number().int(),
  sha256: z.string().describe("SHA-256 of the file as sent (hex); recorded in the audit log (consent.evidence-stored) and shown in the proof"),
  storedAt: z.string(),
  audit: z.object({ seq: z.number().int(), hash: z.string() }),
}) satisfies z.ZodType<EvidenceView>;

/** The evidence a PUT sends: its declared type (parsed as RFC 9110 §8.3.1 writes it), its length and its body. */
function incomingEvidence(request: HttpRequest): IncomingEvidence {
  const header = request.headers.get("content-type");
  let declared: ReturnType<typeof declaredEvidenceType>;
  try {
    if (header === null) throw new TypeError("no Content-Type");
    const parsed = parseContentType(header);
    declared = declaredEvidenceType(parsed.type, parsed.parameters);
  } catch {
    declared = { problem: `send the file with its Content-Type: one of ${EVIDENCE_TYPES.join(", ")}` };
  }
  if ("problem" in declared) throw new AppError("unsupported-media-type", declared.problem);
  const length = request.headers.get("content-length");
  if (length !== null && !/^\d{1,16}$/.test(length)) throw new AppError("malformed-request", "Content-Length is not a number");
  return {
    type: declared.type,
    contentLength: length === null ? null : Number(length),
    body: request.body ? drainingBody(request.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]),
  };
}

/**
 * The request body as a Node stream that, when it is given up early (a refusal at the first bytes), reads the rest
 * of the body and drops it instead of cancelling the web stream: cancelling while the Functions library's body
 * stream waits for the next chunk makes that stream close twice, which throws outside any request (undici's body
 * from an async iterable). What is drained is at most the declared length, already checked against the maximum; a
 * client that stops sending is cut off by the host's idle limit, which ends the drain.
 */
function drainingBody(web: WebReadableStream<Uint8Array>): Readable {
  const reader = web.getReader();
  const drain = async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // The client went away: nothing left to drain.
    }
  };
  return new Readable({
    read() {
      reader.read().then(
        ({ value, done }) => void (done ? this.push(null) : this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength))),
        (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    },
    destroy(err, cb) {
      void drain();
      cb(err);
    },
  });
}

const evidencePut = httpEndpoint({
  name: "consents-evidence-put",
  method: "PUT",
  route: "v1/consents/{id}/evidence",
  auth: "tenant",
  tags,
  summary: "Send the evidence of a consent event (once): a screenshot of what the person was shown (PNG, JPEG, WebP), a PDF, or the rendered notice (HTML)",
  description:
    "Streamed and encrypted with the subject's data key into storage, bound to the event; at most CONSENT_EVIDENCE_MAX_BYTES (default 10 MiB), " +
    "with Content-Length. The Content-Type must be the file's own: its first bytes are checked (signatures; HTML by its opening markup). " +
    "Its SHA-256 is recorded in the audit log and joins the event's proof. If the body is refused or cut short, nothing is kept and it can be sent again.",
  params: eventParams,
  rawBody: { contentTypes: [...EVIDENCE_TYPES], description: "The file, as its Content-Type says" },
  responses: {
    201: { description: "Stored", schema: evidenceView },
    400: problems(["malformed-request"]),
    404: problems(["not-found"]),
    408: problems(["request-timeout"]),
    409: problems(["conflict"]),
    413: problems(["payload-too-large"]),
    415: problems(["unsupported-media-type"]),
    500: problems(["integrity-error"]),
  },
  handler: async ({ services, principal, params, request, log }) => {
    const stored = await putEvidence(services, principal, params.id, incomingEvidence(request), log);
    return { status: 201, json: stored, headers: { location: `/api/v1/consents/${params.id}/evidence` } };
  },
});
app.http(evidencePut.name, evidencePut.options);

const EXTENSIONS: Record<EvidenceType, string> = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "application/pdf": "pdf", "text/html": "html" };

const evidenceGet = httpEndpoint({
  name: "consents-evidence-get",
  method: "GET",
  route: "v1/consents/{id}/evidence",
  auth: "tenant",
  tags,
  summary: "The evidence file of a consent event, decrypted as it streams; each read is audited",
  description:
    "Always an attachment, with X-Content-Type-Options: nosniff and Content-Security-Policy: sandbox, so an HTML notice never runs as a page of this service. " +
    "An Accept header that does not allow the file's type is answered 406, and nothing is read.",
  params: eventParams,
  responses: {
    200: {
      description: "The file, with the type it was stored with",
      contentType: "application/octet-stream",
      alternatives: Object.fromEntries(EVIDENCE_TYPES.map((t) => [t, z.string().meta({ format: "binary" })])),
      schema: z.string().meta({ format: "binary" }),
      headers: {
        "Content-Disposition": { description: "attachment; filename=\"<event id>.<extension>\"", required: true },
        "Content-Security-Policy": { description: "sandbox: no script, form or same-origin access, whatever the file is", required: true },
        "Repr-Digest": { description: "sha-256=:<base64>: of the file (RFC 9530)", required: true },
      },
    },
    404: problems(["not-found"]),
    406: problems(["not-acceptable"]),
    500: problems(["integrity-error"]),
  },
  handler: async ({ services, principal, params, request, isHead, context }) => {
    const opened = await openEvidence(services, principal, params.id, isHead ? "HEAD" : "GET", acceptCheck(request.headers.get("accept"), "the evidence file"));
    const headers: Record<string, string> = {
      "content-type": opened.contentType === "text/html" ? "text/html; charset=utf-8" : opened.contentType,
      "content-length": String(opened.size),
      "content-disposition": `attachment; filename="${params.id}.${EXTENSIONS[opened.contentType]}"`,
      "content-security-policy": "sandbox",
      "repr-digest": `sha-256=:${Buffer.from(opened.sha256, "hex").toString("base64")}:`,
    };
    return opened.body ? { status: 200, headers, body: pacedBody(opened.body, context.invocationId) } : { status: 200, headers };
  },
});
app.http(evidenceGet.name, evidenceGet.options);

// --- exports ---------------------------------------------------------------------------------------------------------

/** The export's media types, the first the default (RFC 9110 §12.5.1: Accept chooses, by q-value). */
const EXPORT_TYPES = ["application/json", "text/csv"];

const exportedEvent = eventView.extend({ subjectHash: z.string().describe("HMAC-SHA256 of the normalised address under your lookup secret (never the address)") });

const exportList = httpEndpoint({
  name: "consents-export",
  method: "GET",
  route: "v1/consents/export",
  auth: "tenant",
  tags,
  summary: "Every consent event recorded in a period, oldest first, subjects as keyed hashes: paged JSON, or with Accept: text/csv the whole period as CSV for an audit",
  description:
    "from is inclusive, to exclusive (recordedAt). JSON pages with limit and cursor; CSV (RFC 4180, a header record, every event of the period after the cursor " +
    "if one is given, streamed) neutralises every cell that begins with =, +, -, @, a tab or a carriage return with a leading single quote. Each export is audited (consent.exported).",
  query: pagingQuery.extend({
    from: isoDateTime.describe("Events recorded at or after this time"),
    to: isoDateTime.describe("Events recorded before this time"),
  }),
  responses: {
    200: {
      description: "A page of events: application/json unless Accept prefers text/csv (the whole period, streamed)",
      schema: pageOf(exportedEvent),
      alternatives: { "text/csv": z.string().describe(`RFC 4180 CSV with a header record: ${EXPORT_CSV_COLUMNS.join(", ")}`) },
    },
    406: problems(["not-acceptable"]),
  },
  handler: async ({ services, principal, query, request, context }): Promise<EndpointResult> => {
    const accept = request.headers.get("accept");
    const type = new Negotiator({ headers: accept === null ? {} : { accept } }).mediaType(EXPORT_TYPES);
    if (!type) throw new AppError("not-acceptable", "the export is available as application/json or text/csv; send an Accept header that allows one");
    if (type === "text/csv") {
      const rows = await exportConsentRows(services, principal, { from: query.from, to: query.to, cursor: query.cursor });
      const csv = Readable.from(
        (async function* () {
          yield Buffer.from(EXPORT_CSV_COLUMNS.map(csvCell).join(",") + "\r\n", "utf8");
          for await (const row of rows) yield Buffer.from(row.map(csvCell).join(",") + "\r\n", "utf8");
        })(),
      );
      return {
        status: 200,
        body: pacedBody(csv, context.invocationId),
        headers: { "content-type": "text/csv; charset=utf-8; header=present", "content-disposition": 'attachment; filename="consent-events.csv"', vary: "Accept" },
      };
    }
    return { status: 200, json: await exportConsentPage(services, principal, { from: query.from, to: query.to, limit: query.limit, cursor: query.cursor }), headers: { vary: "Accept" } };
  },
});
app.http(exportList.name, exportList.options);
