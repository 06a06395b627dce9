/**
 * Consent records (GDPR Art. 7): purposes and their notice versions, consent events, the current state and history of
 * a subject, proof documents, and withdrawal links with their public pages. Subjects are named by e-mail in request
 * bodies only, never in URLs (which end up in request logs and telemetry).
 */
import { app } from "@azure/functions";
import { z } from "zod";
import {
  ALL_PURPOSES,
  CONSENT_EVENT_ID_PATTERN,
  DECISIONS,
  DIGEST_SCHEME,
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
import { httpEndpoint, problems, type ResponseHeaderSpec } from "../shared/http/endpoint";
import { isoDateTime, singleLine } from "../shared/http/schemas";
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
  givenAt: isoDateTime.optional().describe("When the person decided (default: now); at most 5 minutes ahead of the service clock"),
  propertyId: z.string().regex(PROPERTY_ID, "must be 1-100 letters, digits, '.', '_', ':' or '-'").optional().describe("Your site or app, e.g. www.example.com"),
  pageUrl: oneLine(2048).optional().describe("The page or screen where the person decided (stored encrypted)"),
  language: z.string().regex(LANGUAGE_TAG, "must be a language tag like en, da or de-AT").optional().describe("The language the person saw"),
  ipAddress: ipAddress.optional(),
  userAgent: oneLine(1024).optional().describe("The person's browser's User-Agent (stored encrypted)"),
  gpc: z.boolean().optional().describe("Whether the person's browser sent Sec-GPC: 1 (Global Privacy Control)"),
};

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
  gpc: z.boolean().nullable(),
  recordedBy: z.string().describe("key:<id>, or subject (the person, through a withdrawal link)"),
  linkId: z.string().nullable(),
  digest: z.string().describe("HMAC-SHA256 of the event's canonical content under its own key (see the proof)"),
  audit: z.object({ seq: z.number().int(), hash: z.string() }),
}) satisfies z.ZodType<ConsentEventView>;

const stateView = z.object({
  purpose: z.string(),
  decision: z.enum(DECISIONS),
  since: z.string(),
  eventId: z.string(),
  noticeVersion: z.number().int().nullable(),
  events: z.number().int(),
});

const digestContent = z.object({
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

const proofView = z.object({
  proofVersion: z.literal(PROOF_VERSION),
  generatedAt: z.string(),
  controller: z.object({ tenantId: z.string(), name: z.string() }),
  subject: z.object({ subjectId: z.string(), subjectHash: z.string(), subjectHashAlgorithm: z.string() }),
  purpose: z.object({ key: z.string(), description: z.string(), legalBasis: z.enum(LEGAL_BASES) }),
  currentState: z.object({ decision: z.enum(DECISIONS), since: z.string(), eventId: z.string(), noticeVersion: z.number().int().nullable() }),
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
      gpc: z.boolean().nullable(),
      recordedBy: z.string(),
      linkId: z.string().nullable(),
      notice: z.object({ version: z.number().int(), language: z.string(), text: z.string().nullable(), url: z.string().nullable(), sha256: z.string() }).nullable(),
      evidence: z
        .object({ pageUrl: z.string().nullable(), userAgent: z.string().nullable(), fullIpAddress: z.string().nullable() })
        .describe("Kept encrypted; not covered by the digest; null in an Idempotency-Key replay"),
      digest: z.object({
        scheme: z.literal(DIGEST_SCHEME),
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
