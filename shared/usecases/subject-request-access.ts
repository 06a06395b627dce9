/**
 * Access (GDPR Art. 15) and portability (Art. 20) requests, answered with a package: a zip holding `data.json`
 * (everything held about the person for the tenant, versioned, described by a published JSON Schema), `index.html`
 * (the same, readable, in the tenant's language, escaped, no scripts) and `files/` (copies of uploaded content,
 * Art. 15(3)). What goes in comes from the export sections (export-sections.ts): uploads, consent records and earlier
 * requests are registered here; other capabilities add theirs. A portability package holds only what the person
 * provided (Art. 20(1)): consent events, and uploads the tenant marked `providedBySubject`.
 *
 * The work of both types is a module of the request work queue (subject-request-steps.ts), three idempotent steps:
 *
 * - `check`: an access package needs the tenant's privacy information (Art. 15(1)(a)–(h)): without it the request
 *   needs attention with that reason until it is saved and the request retried. Content that names other data
 *   subjects too touches their rights (Art. 15(4), 20(4)): the step waits until the tenant decided on each such upload
 *   (`POST …/include-content`, which queues `check` again); the metadata is listed either way.
 * - `build`: produces the zip as a stream (yazl; content opened one file at a time) straight into the encryptor and
 *   Blob Storage (package-blobs.ts), under a fresh data key of the package's own wrapped by the tenant's KEK; nothing
 *   is held whole in memory. One blob per attempt; the record names the one that finished first, and a later attempt
 *   that lost discards its blob. Audited once (`subject-request.package-built`, sections and counts).
 * - `notify`: e-mails the person a download link (its secret derived from the tenant's lookup secret and the package,
 *   so a repeated step sends the same link under the same message id) valid for DSR_EXPORT_DAYS, and the tenant; then
 *   the request completes as `fulfilled`.
 *
 * Downloads (the tenant's through the API, the person's through the link) are counted on the record and audited
 * (`subject-request.package-downloaded`) before the first byte. After DSR_EXPORT_DAYS the retention sweep's
 * `dsr-export` class purges the package (key destroyed, blobs deleted) with a receipt.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { Readable } from "node:stream";
import { ZipFile } from "yazl";
import { encodeAssociatedData, encryptField, fieldAssociatedData, generateDataKey, IntegrityError, unwrapDataKey, wrapDataKey } from "../crypto";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { RETENTION_CLASSES } from "../domain/retention";
import {
  contentEntryPath,
  formatPackageToken,
  inertFileName,
  packageExpiresAt,
  packageJsonSchema,
  packageScopeOf,
  parsePackageToken,
  PACKAGE_FORMAT,
  PACKAGE_SCHEMA_VERSION,
  PRIVACY_FIELD_BASIS,
  PRIVACY_FIELD_LABELS,
  PRIVACY_FIELDS,
  type JsonSchema,
  type PackageScope,
  type PrivacyTexts,
} from "../domain/subject-package";
import { DSR_TYPE_LABELS, isOpenStatus, type DsrType } from "../domain/subject-requests";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatDate, formatInstant } from "../domain/time";
import { isLive, maskEmail } from "../domain/uploads";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { packageIdOf, type ContentDecision, type PackageDoc, type StoredPackage } from "../stores/package-store";
import { PayloadMissingError } from "../stores/payload-store";
import type { RequestDoc, StoredRequest } from "../stores/subject-request-store";
import type { UploadDoc } from "../stores/upload-store";
import { recordAudit, recordAuditOnce, type Actor, type TenantCaller } from "./audit-trail";
import { openConsentField, unwrapSubjectKey } from "./consent-keys";
import { openSignals, recorded } from "./consents";
import { eventConflictsWithGpc, eventLocationSchema, firstGpcSeqs, gppHeaderSchema, tcfHeaderSchema } from "../domain/consent-signals";
import { z } from "zod";
import { exportSections, registerExportSection, sectionSchemas, type ExportContext, type ExportItem, type ExportSection, type JsonValue } from "./export-sections";
import { privacyTextsFor } from "./privacy-information";
import { openRequestField, statementDigest, tokenHash, unwrapRequestKey } from "./subject-request-keys";
import { changeRequest, registerRequestWork, SYSTEM, withStep, type WorkOutcome } from "./subject-request-steps";
import { tenantContactEmail } from "./tenants";
import { openField, unwrapUploadKey } from "./upload-keys";
import { purgePackageNow } from "./package-purge";

/** Uploads read from storage at a time while a section is written. */
const PAGE = 100;
/** A build under way is taken for dead after this long, and another attempt may start. */
const BUILD_LEASE_MS = 30 * 60_000;

// --- labels of index.html ------------------------------------------------------------------------------------------

type Labels = Readonly<Record<Language, Readonly<Record<string, string>>>>;
const LABELS: Labels = {
  en: {
    id: "Reference",
    role: "You are named as",
    roleSubject: "a person the content is about",
    roleRecipient: "a recipient",
    createdAt: "Sent",
    expiresAt: "Kept until",
    status: "Status",
    categories: "Kinds of data",
    fileName: "File name",
    senderReference: "Sender's reference",
    contentType: "Type",
    size: "Size (bytes)",
    recipients: "Recipients",
    otherDataSubjects: "Other people the content is about",
    content: "Copy of the content",
    contentIncluded: "in this package",
    withheldOthers: "not included: it is also about other people, and the controller did not include it (GDPR Art. 15(4))",
    withheldRecipient: "not included: you are a recipient of this file, not a person it is about",
    withheldNone: "no content is stored",
    withheldRestricted: "not included: a person the content is about has restricted its processing (GDPR Art. 18); it is kept, not used",
    providedBySubject: "Provided by you",
    yes: "yes",
    no: "no",
    purpose: "Purpose",
    noticeVersion: "Notice version",
    decision: "Decision",
    method: "How it was given",
    givenAt: "Given",
    recordedAt: "Recorded",
    ipAddress: "IP address",
    userAgent: "Browser",
    pageUrl: "Page",
    proof: "Proof (digest; audit entry)",
    country: "Country of the IP address",
    countryGiven: "given by the controller",
    countryDerived: "derived from the address",
    gpc: "Global Privacy Control sent",
    conflictsWithGpc: "Given despite Global Privacy Control",
    tcfString: "IAB TCF consent string",
    gppString: "IAB GPP string",
    evidence: "Evidence kept (copy in this package)",
    type: "Type of request",
    receivedAt: "Received",
    completedAt: "Answered",
    outcome: "Outcome",
  },
  da: {
    id: "Reference",
    role: "Du er nævnt som",
    roleSubject: "en person, indholdet handler om",
    roleRecipient: "modtager",
    createdAt: "Sendt",
    expiresAt: "Opbevares til",
    status: "Status",
    categories: "Slags oplysninger",
    fileName: "Filnavn",
    senderReference: "Afsenderens reference",
    contentType: "Type",
    size: "Størrelse (bytes)",
    recipients: "Modtagere",
    otherDataSubjects: "Andre personer, indholdet handler om",
    content: "Kopi af indholdet",
    contentIncluded: "i denne pakke",
    withheldOthers: "ikke med: det handler også om andre personer, og den dataansvarlige har ikke taget det med (GDPR art. 15, stk. 4)",
    withheldRecipient: "ikke med: du er modtager af filen, ikke en person, den handler om",
    withheldNone: "der er ikke gemt noget indhold",
    withheldRestricted: "ikke med: en person, indholdet handler om, har fået behandlingen begrænset (GDPR art. 18); det opbevares, men bruges ikke",
    providedBySubject: "Givet af dig",
    yes: "ja",
    no: "nej",
    purpose: "Formål",
    noticeVersion: "Tekstversion",
    decision: "Beslutning",
    method: "Hvordan det blev givet",
    givenAt: "Givet",
    recordedAt: "Registreret",
    ipAddress: "IP-adresse",
    userAgent: "Browser",
    pageUrl: "Side",
    proof: "Bevis (digest; revisionslogpost)",
    country: "IP-adressens land",
    countryGiven: "oplyst af den dataansvarlige",
    countryDerived: "udledt af adressen",
    gpc: "Global Privacy Control sendt",
    conflictsWithGpc: "Givet trods Global Privacy Control",
    tcfString: "IAB TCF-samtykkestreng",
    gppString: "IAB GPP-streng",
    evidence: "Gemt dokumentation (kopi i denne pakke)",
    type: "Slags anmodning",
    receivedAt: "Modtaget",
    completedAt: "Besvaret",
    outcome: "Resultat",
  },
};

const lbl = (ctx: ExportContext, key: string) => LABELS[ctx.language][key] ?? key;
const when = (ctx: ExportContext, iso: string | null) => (iso ? formatInstant(new Date(iso), ctx.language, ctx.timeZone) : "");

// --- the sections the service itself keeps ----------------------------------------------------------------------------

const S = { type: "string" } as const;
const SN = { type: ["string", "null"] } as const;
const DT = { type: "string", format: "date-time" } as const;
const closed = (required: string[], properties: Record<string, unknown>): JsonSchema => ({ type: "object", additionalProperties: false, required, properties });

const uploadItemSchema = closed(
  ["id", "role", "createdAt", "expiresAt", "status", "categories", "contentType", "size", "fileName", "senderReference", "providedBySubject", "content"],
  {
    id: S,
    role: closed(["dataSubject", "recipient"], { dataSubject: { type: "boolean" }, recipient: { type: "boolean" } }),
    createdAt: DT,
    expiresAt: DT,
    status: S,
    categories: { type: "array", items: S },
    contentType: S,
    size: { type: "integer", minimum: 0 },
    fileName: SN,
    senderReference: SN,
    providedBySubject: { type: "boolean" },
    recipients: closed(["count", "masked"], { count: { type: "integer" }, masked: { type: "array", items: S } }),
    otherDataSubjects: { type: "integer", minimum: 0 },
    content: closed(["included", "path", "withheld"], {
      included: { type: "boolean" },
      path: { ...SN, description: "The copy's path in this zip (files/...)" },
      withheld: {
        enum: [null, "other-data-subjects", "recipient-only", "no-content", "processing-restricted"],
        description: "Why no copy is included; processing-restricted: a data subject of the upload restricted its processing (GDPR Art. 18(2): kept, not otherwise processed)",
      },
    }),
  },
);

/**
 * One upload naming the person, for the package (null: not in this scope). Decrypts its fields with its own key.
 * `restricted`: a data subject of it (the person or another) restricted processing (Art. 18(2): "with the exception
 * of storage, only be processed" with consent or for legal claims): its metadata is listed, its content is not copied.
 */
async function uploadItem(s: Services, ctx: ExportContext, u: UploadDoc, restricted = false): Promise<ExportItem | null> {
  const dataSubject = u.lookups.subjects.includes(ctx.subjectHash);
  const recipient = u.lookups.recipients.includes(ctx.subjectHash);
  const provided = u.providedBySubject === true;
  if (ctx.scope === "portability" && !(dataSubject && provided)) return null;
  const key = u.dataKey && u.personal ? await unwrapUploadKey(s, u) : undefined;
  const open = (field: "fileName" | "senderReference" | "recipients" | "contentType", sealed: string | undefined) =>
    key && sealed ? openField(key, u.tenantId, u.id, field, sealed) : null;
  const fileName = open("fileName", u.personal?.fileName);
  const senderReference = open("senderReference", u.personal?.senderReference);
  const contentType = open("contentType", u.personal?.contentType) ?? u.contentType;
  const others = Math.max(0, u.subjectCount - (dataSubject ? 1 : 0));
  const stored = u.content !== null && key !== undefined && isLive(u.status);
  const withheld = !stored
    ? "no-content"
    : !dataSubject
      ? "recipient-only"
      : restricted
        ? "processing-restricted"
        : others > 0 && !ctx.includedContent.has(u.id)
          ? "other-data-subjects"
          : null;
  const path = withheld === null ? contentEntryPath(u.id, fileName ?? undefined) : null;
  const data: { [k: string]: JsonValue } = {
    id: u.id,
    role: { dataSubject, recipient },
    createdAt: u.createdAt,
    expiresAt: u.expiresAt,
    status: u.status,
    categories: [...u.categories],
    contentType,
    size: u.declaredSize,
    fileName,
    senderReference,
    providedBySubject: provided,
    content: { included: path !== null, path, withheld },
  };
  // The recipients of the person's data (Art. 15(1)(c)), masked as the tenant sees them; other people the content is about, counted.
  if (dataSubject) {
    const list = JSON.parse(open("recipients", u.personal?.recipients) ?? "[]") as string[];
    data.recipients = { count: u.recipientCount, masked: list.map(maskEmail) };
    data.otherDataSubjects = others;
  }
  const roles = [dataSubject ? lbl(ctx, "roleSubject") : null, recipient ? lbl(ctx, "roleRecipient") : null].filter((r) => r !== null).join("; ");
  const contentLabel =
    withheld === null
      ? `${lbl(ctx, "contentIncluded")}: ${path}`
      : withheld === "other-data-subjects"
        ? lbl(ctx, "withheldOthers")
        : withheld === "recipient-only"
          ? lbl(ctx, "withheldRecipient")
          : withheld === "processing-restricted"
            ? lbl(ctx, "withheldRestricted")
            : lbl(ctx, "withheldNone");
  const rows = [
    { label: lbl(ctx, "id"), value: u.id },
    { label: lbl(ctx, "role"), value: roles },
    { label: lbl(ctx, "fileName"), value: fileName ?? "" },
    { label: lbl(ctx, "senderReference"), value: senderReference ?? "" },
    { label: lbl(ctx, "createdAt"), value: when(ctx, u.createdAt) },
    { label: lbl(ctx, "expiresAt"), value: when(ctx, u.expiresAt) },
    { label: lbl(ctx, "categories"), value: u.categories.join(", ") },
    { label: lbl(ctx, "contentType"), value: contentType },
    { label: lbl(ctx, "size"), value: String(u.declaredSize) },
    ...(dataSubject
      ? [
          { label: lbl(ctx, "recipients"), value: (data.recipients as { masked: string[] }).masked.join(", ") },
          { label: lbl(ctx, "otherDataSubjects"), value: String(others) },
        ]
      : []),
    { label: lbl(ctx, "providedBySubject"), value: lbl(ctx, provided ? "yes" : "no") },
    { label: lbl(ctx, "content"), value: contentLabel },
  ];
  const content = u.content;
  const file =
    path !== null && content && key
      ? {
          path,
          size: u.declaredSize,
          open: () => s.payloads.open({ tenantId: u.tenantId, uploadId: u.id, blobName: content.blobName, header: content.header, size: u.declaredSize }, key),
        }
      : undefined;
  return { data, rows, ...(file ? { file } : {}) };
}

/** Every upload of the tenant naming the person, a page at a time, in id order. */
async function* uploadsNaming(s: Services, tenantId: string, subjectHash: string): AsyncGenerator<UploadDoc> {
  for (let after: string | null = null; ; ) {
    const page = await s.uploads.pageNamingPerson(tenantId, subjectHash, after, PAGE);
    yield* page;
    if (page.length < PAGE) return;
    after = page.at(-1)!.id;
  }
}

registerExportSection({
  name: "uploads",
  description: "SafeData uploads that name the person as a data subject (metadata and, Art. 15(3), a copy of the content) or only as a recipient (metadata)",
  title: { en: "Files sent through safedata", da: "Filer sendt gennem safedata" },
  scopes: ["access", "portability"],
  itemSchema: uploadItemSchema,
  async *items(s, ctx) {
    // A page at a time, with one look-up of the restrictions of every data subject of the page's uploads.
    for (let after: string | null = null; ; ) {
      const page: UploadDoc[] = await s.uploads.pageNamingPerson(ctx.tenantId, ctx.subjectHash, after, PAGE);
      const restricted = new Set((await s.subjectRequests.outcomes.restrictionsOf(ctx.tenantId, [...new Set(page.flatMap((u) => u.lookups.subjects))])).map((r) => r.subjectHash));
      for (const u of page) {
        const item = await uploadItem(s, ctx, u, u.lookups.subjects.some((h) => restricted.has(h)));
        if (item) yield item;
      }
      if (page.length < PAGE) return;
      after = page.at(-1)!.id;
    }
  },
});

/** A zod schema as a JSON Schema fragment for data.json (closed objects), nullable when asked. */
const fromZod = (schema: z.ZodType, nullable: boolean, description: string): JsonSchema => {
  const { $schema: _drop, ...body } = z.toJSONSchema(schema) as JsonSchema;
  return nullable ? { description, anyOf: [body, { type: "null" }] } : { description, ...body };
};

const consentItemSchema = closed(
  [
    "id", "purpose", "noticeVersion", "noticeSha256", "decision", "method", "requestOrigin", "propertyId", "language", "givenAt", "recordedAt",
    "ipAddress", "userAgent", "pageUrl", "country", "gpc", "conflictsWithGpc", "signals", "recordedBy", "proof",
  ],
  {
    id: S,
    purpose: S,
    noticeVersion: { type: ["integer", "null"] },
    noticeSha256: SN,
    decision: S,
    method: S,
    requestOrigin: S,
    propertyId: SN,
    language: SN,
    givenAt: DT,
    recordedAt: DT,
    ipAddress: { ...SN, description: "As kept: the full address when the controller keeps it, else truncated" },
    userAgent: SN,
    pageUrl: SN,
    country: fromZod(eventLocationSchema, true, "The country of the IP address when the event was recorded: given by the controller or derived offline (source), with the database that derived it; null: neither"),
    gpc: { type: ["boolean", "null"] },
    conflictsWithGpc: { type: "boolean", description: "A grant made while your browser sent Global Privacy Control, or after it had (the same rule as the controller's proof)" },
    signals: closed(["tcf", "gpp"], {
      tcf: {
        description: "The IAB TCF consent string as sent (it can identify you: CJEU C-604/22) and what its header says; null: none sent",
        anyOf: [closed(["string", "header"], { string: S, header: fromZod(tcfHeaderSchema, false, "The TC string's header, decoded when recorded") }), { type: "null" }],
      },
      gpp: {
        description: "The IAB GPP string as sent and what its header says; null: none sent",
        anyOf: [closed(["string", "header"], { string: S, header: fromZod(gppHeaderSchema, false, "The GPP string's header, decoded when recorded") }), { type: "null" }],
      },
    }),
    recordedBy: S,
    proof: closed(["digest", "auditSeq", "auditHash"], { digest: S, auditSeq: { type: "integer" }, auditHash: S }),
    evidence: {
      description: "The evidence file the controller kept for the event (a screenshot, PDF or notice) and its copy in this zip; access packages only",
      anyOf: [
        closed(["path", "contentType", "size", "sha256", "storedAt", "audit"], {
          path: S,
          contentType: S,
          size: { type: "integer" },
          sha256: S,
          storedAt: DT,
          audit: { description: "The audit entry that recorded the file (consent.evidence-stored)", anyOf: [closed(["seq", "hash"], { seq: { type: "integer" }, hash: S }), { type: "null" }] },
        }),
        { type: "null" },
      ],
    },
  },
);

/**
 * The file name extension of an evidence file in the zip, by type. An HTML notice is placed as `.html.txt`, so
 * opening it from the unzipped folder shows its text and runs none of its script (index.html says so).
 */
const EVIDENCE_EXTENSIONS: Readonly<Record<string, string>> = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "application/pdf": "pdf", "text/html": "html.txt" };

registerExportSection({
  name: "consentRecords",
  description: "The person's consent events (granted, denied, withdrawn), each with its proof: its keyed digest, the audit entry that recorded it, and the evidence file kept",
  title: { en: "Your consent decisions", da: "Dine samtykkebeslutninger" },
  scopes: ["access", "portability"],
  async *items(s, ctx) {
    const subject = await s.consents.getSubjectByLookup(ctx.tenantId, ctx.subjectHash);
    if (!subject) return;
    const events = recorded(await s.consents.eventsOfSubject(ctx.tenantId, subject.subjectId)).sort((a, b) => a.recordedAt.localeCompare(b.recordedAt) || a.id.localeCompare(b.id));
    if (events.length === 0) return;
    const key = await unwrapSubjectKey(s, subject);
    const firstGpc = firstGpcSeqs(events);
    for (const e of events) {
      const open = (field: "ipAddress" | "userAgent" | "pageUrl", sealed: string | null) => (sealed ? openConsentField(key, ctx.tenantId, e.id, field, sealed) : null);
      const ipAddress = open("ipAddress", e.personal.ipAddress) ?? e.ipTruncated;
      const userAgent = open("userAgent", e.personal.userAgent);
      const pageUrl = open("pageUrl", e.personal.pageUrl);
      const strings = openSignals(key, e);
      const conflictsWithGpc = eventConflictsWithGpc(e, firstGpc);
      // The evidence file, copied into an access package (it is the controller's record, not something the person provided).
      const ev = ctx.scope === "access" ? await s.consents.getEvidence(ctx.tenantId, e.id) : undefined;
      const stored = ev?.content ? { ...ev.content, size: ev.size, contentType: ev.contentType, audit: ev.audit } : undefined;
      const evidencePath = stored && ctx.scope === "access" ? inertFileName(`files/consent-evidence/${e.id}.${EVIDENCE_EXTENSIONS[stored.contentType] ?? "bin"}`) : null;
      const data: { [k: string]: JsonValue } = {
        id: e.id,
        purpose: e.purposeKey,
        noticeVersion: e.noticeVersion,
        noticeSha256: e.noticeSha256,
        decision: e.decision,
        method: e.method,
        requestOrigin: e.requestOrigin,
        propertyId: e.propertyId,
        language: e.language,
        givenAt: e.givenAt,
        recordedAt: e.recordedAt,
        ipAddress,
        userAgent,
        pageUrl,
        country: e.location ? { country: e.location.country, source: e.location.source, database: e.location.database } : null,
        gpc: e.gpc,
        conflictsWithGpc,
        signals: {
          tcf: e.signals.tcf && strings.tcf !== null ? { string: strings.tcf, header: e.signals.tcf.header as unknown as JsonValue } : null,
          gpp: e.signals.gpp && strings.gpp !== null ? { string: strings.gpp, header: e.signals.gpp.header as unknown as JsonValue } : null,
        },
        recordedBy: e.actor,
        proof: { digest: e.digest, auditSeq: e.audit.seq, auditHash: e.audit.hash },
        evidence:
          stored && evidencePath
            ? { path: evidencePath, contentType: stored.contentType, size: stored.size, sha256: stored.sha256, storedAt: stored.storedAt, audit: stored.audit ? { seq: stored.audit.seq, hash: stored.audit.hash } : null }
            : null,
      };
      const file =
        stored && evidencePath
          ? { path: evidencePath, size: stored.size, open: () => s.consentEvidence.open({ tenantId: ctx.tenantId, eventId: e.id, blobName: stored.blobName, header: stored.header, size: stored.size }, key) }
          : undefined;
      yield {
        ...(file ? { file } : {}),
        data,
        rows: [
          { label: lbl(ctx, "purpose"), value: e.purposeKey },
          { label: lbl(ctx, "decision"), value: e.decision },
          { label: lbl(ctx, "givenAt"), value: when(ctx, e.givenAt) },
          { label: lbl(ctx, "recordedAt"), value: when(ctx, e.recordedAt) },
          { label: lbl(ctx, "noticeVersion"), value: e.noticeVersion === null ? "" : String(e.noticeVersion) },
          { label: lbl(ctx, "method"), value: e.method },
          { label: lbl(ctx, "ipAddress"), value: ipAddress ?? "" },
          { label: lbl(ctx, "userAgent"), value: userAgent ?? "" },
          { label: lbl(ctx, "pageUrl"), value: pageUrl ?? "" },
          { label: lbl(ctx, "country"), value: e.location ? `${e.location.country} (${lbl(ctx, e.location.source === "given" ? "countryGiven" : "countryDerived")}${e.location.database ? `: ${e.location.database}` : ""})` : "" },
          { label: lbl(ctx, "gpc"), value: e.gpc === null ? "" : lbl(ctx, e.gpc ? "yes" : "no") },
          { label: lbl(ctx, "conflictsWithGpc"), value: lbl(ctx, conflictsWithGpc ? "yes" : "no") },
          ...(strings.tcf !== null ? [{ label: lbl(ctx, "tcfString"), value: strings.tcf }] : []),
          ...(strings.gpp !== null ? [{ label: lbl(ctx, "gppString"), value: strings.gpp }] : []),
          { label: lbl(ctx, "proof"), value: `${e.digest}; #${e.audit.seq} ${e.audit.hash}` },
          ...(evidencePath ? [{ label: lbl(ctx, "evidence"), value: evidencePath }] : []),
        ],
      };
    }
  },
  itemSchema: consentItemSchema,
});

const requestItemSchema = closed(["id", "type", "status", "receivedAt", "dueAt", "extended", "completedAt", "outcome", "closedAt"], {
  id: S,
  type: S,
  status: S,
  receivedAt: DT,
  dueAt: DT,
  extended: { type: "boolean" },
  completedAt: { anyOf: [DT, { type: "null" }] },
  outcome: SN,
  closedAt: { anyOf: [DT, { type: "null" }] },
});

registerExportSection({
  name: "earlierRequests",
  description: "The person's other data-subject requests to this controller through the service",
  title: { en: "Your other requests", da: "Dine andre anmodninger" },
  scopes: ["access"],
  itemSchema: requestItemSchema,
  async *items(s, ctx) {
    for (let after: string | null = null; ; ) {
      const page: RequestDoc[] = await s.subjectRequests.pageOfSubject(ctx.tenantId, ctx.subjectHash, ctx.requestId, after, PAGE);
      for (const r of page) {
        yield {
          data: {
            id: r.id,
            type: r.requestType,
            status: r.status,
            receivedAt: r.receivedAt,
            dueAt: r.dueAt,
            extended: r.extendedAt !== null,
            completedAt: r.completedAt,
            outcome: r.outcome,
            closedAt: r.closedAt,
          },
          rows: [
            { label: lbl(ctx, "id"), value: r.id },
            { label: lbl(ctx, "type"), value: DSR_TYPE_LABELS[ctx.language][r.requestType] },
            { label: lbl(ctx, "receivedAt"), value: when(ctx, r.receivedAt) },
            { label: lbl(ctx, "status"), value: r.status },
            { label: lbl(ctx, "completedAt"), value: when(ctx, r.completedAt) },
            { label: lbl(ctx, "outcome"), value: r.outcome ?? "" },
          ],
        };
      }
      if (page.length < PAGE) return;
      after = page.at(-1)!.id;
    }
  },
});

/** The JSON Schema of data.json with every registered section (published beside the OpenAPI document). */
export function subjectPackageSchema(baseUrl = ""): JsonSchema {
  return packageJsonSchema(sectionSchemas(), baseUrl);
}

// --- the package record -------------------------------------------------------------------------------------------------

function newPackageDoc(req: Pick<RequestDoc, "tenantId" | "id" | "requestType">, now: Date): PackageDoc {
  const scope = packageScopeOf(req.requestType);
  if (!scope) throw new Error(`a ${req.requestType} request has no package`);
  return {
    id: packageIdOf(req.id),
    tenantId: req.tenantId,
    type: "dsr-package",
    requestId: req.id,
    scope,
    state: "open",
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    contentDecision: null,
    building: null,
    dataKey: null,
    content: null,
    counts: {},
    builtAt: null,
    expiresAt: null,
    linkHash: null,
    notified: { subjectAt: null, tenantAt: null },
    downloads: { tenant: 0, subject: 0 },
    purge: null,
  };
}

/** The request's package record, created (open) when there is none. */
async function packageOf(s: Services, req: Pick<RequestDoc, "tenantId" | "id" | "requestType">): Promise<StoredPackage> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const found = await s.packages.get(req.tenantId, req.id);
    if (found) return found;
    await s.packages.create(newPackageDoc(req, s.clock.now()));
  }
  throw new AppError("conflict", "the package record could not be read; retry");
}

/** Reads the record and writes `change(doc)` if unchanged meanwhile, retrying on a fresh read. */
async function changePackage(s: Services, tenantId: string, requestId: string, change: (doc: StoredPackage) => PackageDoc | undefined): Promise<StoredPackage | undefined> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const doc = await s.packages.get(tenantId, requestId);
    if (!doc) return undefined;
    const next = change(doc);
    if (!next) return undefined;
    const saved = await s.packages.replace({ ...next, updatedAt: s.clock.now().toISOString() }, doc._etag);
    if (saved) return saved;
  }
  throw new AppError("conflict", "the package is being changed by other requests; retry");
}

const keyAad = (tenantId: string, requestId: string, kekVersion: string) => encodeAssociatedData("dsr-package-key", tenantId, requestId, kekVersion);

async function unwrapPackageKey(s: Services, pkg: PackageDoc): Promise<Buffer> {
  if (!pkg.dataKey) throw new AppError("conflict", "the package was purged");
  const kek = await s.keys.kek(pkg.tenantId, pkg.dataKey.kekVersion);
  return unwrapDataKey(kek, pkg.dataKey.wrapped, keyAad(pkg.tenantId, pkg.requestId, pkg.dataKey.kekVersion));
}

// --- Art. 15(4): content that names other people too -----------------------------------------------------------------------

/**
 * The uploads whose content would go in but names other data subjects too, while the tenant has not decided (none
 * once it has: what it did not include stays out, also uploads made after its decision).
 */
async function undecidedSharedContent(s: Services, req: Pick<RequestDoc, "tenantId" | "subjectHash">, decision: ContentDecision | null, scope: PackageScope): Promise<string[]> {
  if (decision) return [];
  const out: string[] = [];
  for await (const u of uploadsNaming(s, req.tenantId, req.subjectHash!)) {
    if (!u.lookups.subjects.includes(req.subjectHash!) || u.subjectCount <= 1 || u.content === null || !isLive(u.status)) continue;
    if (scope === "portability" && u.providedBySubject !== true) continue;
    out.push(u.id);
  }
  return out;
}

/**
 * POST /subject-requests/{id}/include-content (Art. 15(4)): the tenant's decision on content that names other data
 * subjects too: the uploads listed go into the package with their content, every other upload of that kind is left
 * out (its metadata is listed either way); a later call, before the package is built, replaces the decision. Recorded
 * with its reason (encrypted on the request's key; a keyed digest of it in the audit log) and audited. A request
 * waiting for this decision goes on.
 * Errors: not-found; conflict (not an access or portability request, closed, or its package is already built);
 * validation-failed (an id that is not an upload naming the person together with others).
 */
export async function includeContent(s: Services, caller: TenantCaller, id: string, input: { uploadIds: string[]; reason: string }): Promise<PackageView> {
  const req = await s.subjectRequests.get(caller.tenantId, id);
  if (!req) throw new AppError("not-found", "no subject request with this id");
  const scope = packageScopeOf(req.requestType);
  if (!scope) throw new AppError("conflict", `a ${req.requestType} request has no package`);
  if (!isOpenStatus(req.status) || !req.subjectHash) throw new AppError("conflict", `the request is ${req.status}; content can be decided on only while it is open`);
  const pkg = await packageOf(s, req);
  if (pkg.state !== "open") throw new AppError("conflict", "the package is already built; decisions are taken before it is");
  const shared = new Set<string>();
  for await (const u of uploadsNaming(s, req.tenantId, req.subjectHash)) {
    if (u.lookups.subjects.includes(req.subjectHash) && u.subjectCount > 1) shared.add(u.id);
  }
  const wanted = [...new Set(input.uploadIds)];
  const bad = wanted.findIndex((u) => !shared.has(u));
  if (bad >= 0) {
    throw new AppError("validation-failed", "uploadIds: each must be an upload of yours that names this person together with other data subjects", {
      errors: [{ path: `uploadIds.${input.uploadIds.indexOf(wanted[bad]!)}`, message: "is not an upload naming this person together with other data subjects" }],
    });
  }
  const key = await unwrapRequestKey(s, req);
  if (!key) throw new AppError("conflict", "the request's personal fields were erased");
  const now = s.clock.now().toISOString();
  // Under the request's data key, bound to the request and this field (erased with the request's other fields).
  const reason = encryptField(key, input.reason, fieldAssociatedData(req.tenantId, req.id, "dsr.contentReason"));
  // The call decides on every such upload: those listed go in, the others stay out (a later call may change that).
  const contentDecision: ContentDecision = { at: now, by: caller.actor, reason, included: [...wanted].sort() };
  const saved = await changePackage(s, req.tenantId, req.id, (doc) => {
    if (doc.state !== "open") throw new AppError("conflict", "the package is already built; decisions are taken before it is");
    return { ...withoutMeta(doc), contentDecision };
  });
  await recordAudit(s, caller.tenantId, caller, "subject-request.content-decided", { type: "subject-request", id }, {
    included: contentDecision.included,
    withheld: shared.size - wanted.length,
    reasonDigest: await statementDigest(s, caller.tenantId, id, input.reason),
  });
  // A request waiting for this decision goes on.
  const nowDate = s.clock.now();
  await changeRequest(s, req.tenantId, req.id, (fresh) =>
    fresh.status === "in-progress" && fresh.workState.waitingFor === "content-decision" && !fresh.steps.some((st) => st.name === "work:check")
      ? withStep({ ...withoutMeta(fresh), workState: { ...fresh.workState, waitingFor: null } }, "work:check", nowDate)
      : undefined,
  );
  const current = saved ?? (await packageOf(s, req));
  return viewOf(current, await undecidedSharedContent(s, req, current.contentDecision, scope));
}

// --- the work steps -------------------------------------------------------------------------------------------------------

/** The reason an access request needs the tenant's attention without its privacy information. */
export const PRIVACY_MISSING = "privacy-information-missing: PUT /api/v1/privacy-information (Art. 15(1)(a)-(h)), then POST .../retry";

/** `check`: the privacy information (access) and the Art. 15(4) decisions; then `build`. */
async function check(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const scope = packageScopeOf(req.requestType)!;
  const tenant = await s.tenants.get(req.tenantId);
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  if (scope === "access" && !(await privacyTextsFor(s, req.tenantId, language))) {
    return { attention: PRIVACY_MISSING };
  }
  const pkg = await packageOf(s, req);
  if (pkg.state !== "open") return { next: pkg.state === "building" ? "build" : "notify" };
  const pending = await undecidedSharedContent(s, req, pkg.contentDecision, scope);
  if (pending.length > 0) {
    await changeRequest(s, req.tenantId, req.id, (fresh) =>
      fresh.status === "in-progress" ? { ...withoutMeta(fresh), workState: { ...fresh.workState, waitingFor: "content-decision", undecidedUploads: pending.length } } : undefined,
    );
    return { wait: true };
  }
  return { next: "build" };
}

/**
 * `build`: the zip, streamed into storage; the record names the first attempt that finished. Then `notify`. An
 * attempt that fails after claiming the build (a storage call that timed out, a key not reachable) gives its claim
 * back, so the step's retry builds at once instead of waiting BUILD_LEASE_MS for a claim nobody works on.
 */
async function build(s: Services, req: StoredRequest, log?: Log): Promise<WorkOutcome> {
  const attempt: { id?: string } = {};
  try {
    return await buildOnce(s, req, attempt, log);
  } catch (err) {
    const id = attempt.id;
    if (id) {
      await changePackage(s, req.tenantId, req.id, (doc) =>
        doc.state === "building" && doc.building?.attemptId === id ? { ...withoutMeta(doc), state: "open", building: null } : undefined,
      ).catch(() => undefined);
    }
    throw err;
  }
}

async function buildOnce(s: Services, req: StoredRequest, attempt: { id?: string }, log?: Log): Promise<WorkOutcome> {
  const pkg = await packageOf(s, req);
  if (pkg.state === "ready") return { next: "notify" };
  if (pkg.state === "purged") return { complete: "fulfilled" };
  const now = s.clock.now();
  if (pkg.building && Date.parse(pkg.building.since) + BUILD_LEASE_MS > now.getTime()) {
    // Another worker builds it: this step ends and runs again when the lease is over (or finds it ready).
    throw new AppError("conflict", "the package is being built by another worker");
  }
  const attemptId = `a-${randomBytes(8).toString("hex")}`;
  const tenant = await s.tenants.get(req.tenantId);
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const privacy = pkg.scope === "access" ? await privacyTextsFor(s, req.tenantId, language) : undefined;
  if (pkg.scope === "access" && !privacy) return { attention: PRIVACY_MISSING };
  const claimed = await changePackage(s, req.tenantId, req.id, (doc) =>
    doc.state === "ready" || doc.state === "purged" ? undefined : { ...withoutMeta(doc), state: "building", building: { attemptId, since: now.toISOString() } },
  );
  if (!claimed) return { next: "notify" };
  attempt.id = attemptId;
  const requestKey = await unwrapRequestKey(s, req);
  if (!requestKey || !req.personal || !req.subjectHash) throw new AppError("conflict", "the request's personal fields were erased");
  const email = openRequestField(requestKey, req.tenantId, req.id, "email", req.personal.email);
  const kekVersion = tenant?.kekVersion;
  if (!kekVersion) throw new AppError("conflict", "the tenant has no key");
  const kek = await s.keys.kek(req.tenantId, kekVersion);
  const dataKey = generateDataKey();
  const wrapped = { wrapped: wrapDataKey(kek, dataKey, keyAad(req.tenantId, req.id, kekVersion)), kekVersion };
  const ctx: ExportContext = {
    tenantId: req.tenantId,
    requestId: req.id,
    subjectHash: req.subjectHash,
    scope: claimed.scope,
    language,
    timeZone: tenant?.timeZone ?? DEFAULT_TIME_ZONE,
    includedContent: new Set(claimed.contentDecision?.included ?? []),
  };
  const target = { tenantId: req.tenantId, requestId: req.id, attemptId };
  const zip = packageStream(s, ctx, {
    generatedAt: now,
    controllerName: tenant?.name ?? "",
    request: { id: req.id, type: claimed.scope, receivedAt: req.receivedAt, verifiedAt: req.verification.verifiedAt },
    email,
    privacy: privacy?.texts ?? null,
  });
  let stored;
  try {
    stored = await s.packageBlobs.write(target, dataKey, zip.stream);
  } catch (err) {
    zip.stop();
    await s.packageBlobs.discard(target).catch(() => undefined);
    if (err instanceof PayloadMissingError || err instanceof IntegrityError) {
      log?.error("dsr.package-content-unreadable", { tenantId: req.tenantId, requestId: req.id, failure: err.name });
    }
    throw err;
  }
  const counts = zip.counts();
  const contentOf = zip.contentOf();
  const builtAt = s.clock.now();
  const ready = await changePackage(s, req.tenantId, req.id, (doc) =>
    doc.state !== "building" || doc.building?.attemptId !== attemptId
      ? undefined
      : {
          ...withoutMeta(doc),
          state: "ready",
          building: null,
          dataKey: wrapped,
          content: { ...stored, storedAt: builtAt.toISOString() },
          contentOf,
          counts,
          builtAt: builtAt.toISOString(),
          expiresAt: packageExpiresAt(builtAt, s.settings.dsrExportDays).toISOString(),
        },
  );
  if (!ready) {
    // Another attempt finished first (or the request's package was purged): this one's blob goes.
    await s.packageBlobs.discard(target);
    return { next: "notify" };
  }
  // An upload whose content went in and that was destroyed while this built (its deletion looked for packages holding
  // it before this one was stored): the package goes, and the next attempt builds it without that upload.
  if (await someNotLive(s, req.tenantId, contentOf)) {
    await purgePackageNow(s, req.tenantId, req.id, { reason: "upload-deleted", actor: SYSTEM });
    await changePackage(s, req.tenantId, req.id, (doc) =>
      doc.state !== "purged" || doc.builtAt !== ready.builtAt ? undefined : { ...newPackageDoc(req, new Date(doc.createdAt)), contentDecision: doc.contentDecision },
    );
    throw new AppError("conflict", "an upload in the package was deleted while it was built; it is built again");
  }
  await recordAuditOnce(s, req.tenantId, SYSTEM, "subject-request.package-built", { type: "subject-request", id: req.id }, {
    scope: claimed.scope,
    ...counts,
    size: stored.size,
    sha256: stored.sha256,
    expiresAt: ready.expiresAt,
  }, `dsr-package-built:${req.id}`);
  return { next: "notify" };
}

/** Whether any of these uploads is no longer live (its content destroyed or being destroyed). */
async function someNotLive(s: Services, tenantId: string, uploadIds: readonly string[]): Promise<boolean> {
  for (const id of uploadIds) {
    const u = await s.uploads.get(tenantId, id);
    if (!u || !isLive(u.status) || !u.dataKey) return true;
  }
  return false;
}

/** The person's link secret: an HMAC under a key derived from the tenant's lookup secret, over the request and its blob. */
async function linkSecret(s: Services, pkg: PackageDoc): Promise<string> {
  const root = await s.keys.lookupSecret(pkg.tenantId);
  const key = Buffer.from(hkdfSync("sha256", root, Buffer.from("safedata/dsr-package/v1"), Buffer.from(`safedata/dsr-package-link/${pkg.tenantId}`), 32));
  return createHmac("sha256", key).update(`${pkg.requestId}|${pkg.content?.blobName ?? ""}`).digest("base64url");
}

/** `notify`: the person's link and the tenant's notice, each once; then the request is answered. */
async function notify(s: Services, req: StoredRequest): Promise<WorkOutcome> {
  const pkg = await packageOf(s, req);
  if (pkg.state !== "ready" || !pkg.content || !pkg.expiresAt) return pkg.state === "purged" ? { complete: "fulfilled" } : { next: "build" };
  const tenant = await s.tenants.get(req.tenantId);
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const timeZone = tenant?.timeZone ?? DEFAULT_TIME_ZONE;
  const secret = await linkSecret(s, pkg);
  if (pkg.linkHash === null) await changePackage(s, req.tenantId, req.id, (doc) => (doc.linkHash ? undefined : { ...withoutMeta(doc), linkHash: tokenHash(secret) }));
  const view = {
    controllerName: tenant?.name ?? "safedata",
    requestId: req.id,
    requestType: DSR_TYPE_LABELS[language][req.requestType],
    receivedDate: formatDate(new Date(req.receivedAt), language, timeZone),
    expiresDate: formatInstant(new Date(pkg.expiresAt), language, timeZone),
    exportDays: s.settings.dsrExportDays,
    size: String(pkg.content.size),
  };
  if (!pkg.notified.subjectAt) {
    const key = await unwrapRequestKey(s, req);
    if (key && req.personal) {
      const to = openRequestField(key, req.tenantId, req.id, "email", req.personal.email);
      const link = `${req.verification.linkOrigin}/api/public/subject-request-packages/${formatPackageToken(req.tenantId, req.id, secret)}`;
      const message = s.templates.render("dsr-package-ready", language, { ...view, link });
      await s.email.send({ messageId: `dsr-package-ready-${req.id}`, to: [to], ...message });
      await recordAuditOnce(s, req.tenantId, SYSTEM, "subject-request.notified", { type: "subject-request", id: req.id }, { to: "subject", notice: "package-ready" }, `dsr-notice:${req.id}:package-ready`);
    }
    const at = s.clock.now().toISOString();
    await changePackage(s, req.tenantId, req.id, (doc) => (doc.notified.subjectAt ? undefined : { ...withoutMeta(doc), notified: { ...doc.notified, subjectAt: at } }));
  }
  if (!pkg.notified.tenantAt) {
    const to = tenant && !tenant.offboardedAt ? await tenantContactEmail(s, tenant) : undefined;
    if (to) {
      const message = s.templates.render("dsr-package-ready-tenant", language, { ...view, apiPath: `/api/v1/subject-requests/${req.id}/package/content` });
      await s.email.send({ messageId: `dsr-package-ready-tenant-${req.id}`, to: [to], ...message });
      await recordAuditOnce(s, req.tenantId, SYSTEM, "subject-request.notified", { type: "subject-request", id: req.id }, { to: "tenant", notice: "package-ready" }, `dsr-notice:${req.id}:package-ready-tenant`);
    }
    const at = s.clock.now().toISOString();
    await changePackage(s, req.tenantId, req.id, (doc) => (doc.notified.tenantAt ? undefined : { ...withoutMeta(doc), notified: { ...doc.notified, tenantAt: at } }));
  }
  return { complete: "fulfilled" };
}

for (const type of ["access", "portability"] as const satisfies readonly DsrType[]) {
  registerRequestWork({ type, first: "check", steps: { check, build, notify } });
}

// --- the zip as a stream ---------------------------------------------------------------------------------------------------

interface PackageHead {
  generatedAt: Date;
  controllerName: string;
  request: { id: string; type: PackageScope; receivedAt: string; verifiedAt: string | null };
  email: string;
  privacy: PrivacyTexts | null;
}

/**
 * The package as a zip stream: `data.json`, then `index.html`, then `files/...`. data.json is written as the sections
 * yield their items, and each item's file is added to the zip as it is met (opened only when its turn comes), so at
 * any moment one item and one file's current chunk are in memory. index.html is made by asking the sections again.
 * `counts()` (after the stream ended) says what went in; `stop()` ends it early (the write failed).
 */
export function packageStream(s: Services, ctx: ExportContext, head: PackageHead): { stream: Readable; counts(): Record<string, number>; contentOf(): string[]; stop(): void } {
  const zip = new ZipFile();
  const contentOf = new Set<string>();
  const out = zip.outputStream as Readable;
  const counts: Record<string, number> = { files: 0, fileBytes: 0, withheldContent: 0 };
  const mtime = head.generatedAt;
  const open = new Set<Readable>();
  let stopped = false;
  /** Ends the package stream: with an error for its reader, or quietly (`undefined`) when its reader gave up. */
  const fail = (err: unknown) => {
    if (stopped) return;
    stopped = true;
    for (const r of open) r.destroy();
    // A reader that gave up listens no more: an error then would be an uncaught 'error' event, fatal to the worker.
    out.destroy(err === undefined ? undefined : err instanceof Error ? err : new Error(String(err)));
  };
  zip.on("error", fail);
  /** A stream handed to yazl, whose errors end the package (yazl does not listen for them). */
  const watched = (r: Readable): Readable => {
    open.add(r);
    r.once("error", fail);
    r.once("close", () => open.delete(r));
    return r;
  };
  const all = exportSections();
  const inScope = exportSections(ctx.scope);

  async function* dataJson(): AsyncGenerator<string> {
    const top = {
      format: PACKAGE_FORMAT,
      schemaVersion: PACKAGE_SCHEMA_VERSION,
      generatedAt: head.generatedAt.toISOString(),
      scope: ctx.scope,
      language: ctx.language,
      controller: { name: head.controllerName, tenantId: ctx.tenantId },
      request: head.request,
      subject: { email: head.email },
      privacyInformation: head.privacy,
    };
    const start = JSON.stringify(top);
    yield `${start.slice(0, -1)},"sections":{`;
    for (const [i, section] of all.entries()) {
      yield `${i > 0 ? "," : ""}${JSON.stringify(section.name)}:[`;
      let n = 0;
      if (inScope.includes(section)) {
        for await (const item of section.items(s, ctx)) {
          yield `${n > 0 ? "," : ""}\n${JSON.stringify(item.data)}`;
          n++;
          const content = item.data.content as { withheld?: unknown } | undefined;
          if (content?.withheld === "other-data-subjects") counts.withheldContent!++;
          if (content?.withheld === "processing-restricted") counts.withheldRestricted = (counts.withheldRestricted ?? 0) + 1;
          const file = item.file;
          if (file) {
            if (section.name === "uploads" && typeof item.data.id === "string") contentOf.add(item.data.id);
            counts.files!++;
            counts.fileBytes! += file.size;
            zip.addReadStreamLazy(file.path, { mtime, compress: false, size: file.size }, (cb) => {
              file.open().then(
                (r) => cb(null, watched(r)),
                (err: unknown) => cb(err, undefined as unknown as Readable),
              );
            });
          }
        }
      }
      counts[section.name] = n;
      yield "]";
    }
    yield "}}\n";
    // Every file was added while data.json was written; index.html was added before them.
    zip.end();
  }

  async function* indexHtml(): AsyncGenerator<string> {
    const lang = ctx.language;
    const privacy = head.privacy;
    yield s.pages.render("dsr-package-head", lang, {
      controllerName: head.controllerName,
      requestId: head.request.id,
      requestType: DSR_TYPE_LABELS[lang][head.request.type],
      receivedAt: formatInstant(new Date(head.request.receivedAt), lang, ctx.timeZone),
      generatedAt: formatInstant(head.generatedAt, lang, ctx.timeZone),
      email: head.email,
      portability: ctx.scope === "portability",
      hasPrivacy: privacy !== null,
      privacy: privacy
        ? PRIVACY_FIELDS.filter((f) => privacy[f] !== undefined).map((f) => ({ label: PRIVACY_FIELD_LABELS[lang][f], basis: PRIVACY_FIELD_BASIS[f], text: privacy[f] ?? "" }))
        : false,
    });
    for (const section of inScope) {
      yield s.pages.render("dsr-package-section", lang, { title: section.title[lang] });
      let n = 0;
      for await (const item of section.items(s, ctx)) {
        yield s.pages.render("dsr-package-item", lang, { rows: item.rows.map((r) => ({ label: r.label, value: r.value })) });
        n++;
      }
      if (n === 0) yield s.pages.render("dsr-package-empty", lang, {});
    }
    yield s.pages.render("dsr-package-foot", lang, { controllerName: head.controllerName });
  }

  const entry = (gen: () => AsyncGenerator<string>) => (cb: (err: unknown, r: Readable) => void) => cb(null, watched(Readable.from(gen(), { objectMode: false })));
  zip.addReadStreamLazy("data.json", { mtime, compress: true }, entry(dataJson));
  zip.addReadStreamLazy("index.html", { mtime, compress: true }, entry(indexHtml));
  return {
    stream: out,
    counts: () => ({ ...counts }),
    contentOf: () => [...contentOf].sort(),
    stop: () => fail(undefined),
  };
}

// --- the views and the downloads -----------------------------------------------------------------------------------------

export interface PackageView {
  requestId: string;
  scope: PackageScope;
  state: "open" | "building" | "ready" | "purged";
  /** Uploads whose content names other people too and awaits the tenant's decision (Art. 15(4)). */
  awaitingDecision: string[];
  /** The tenant's decision (Art. 15(4)): when, and the uploads included; null until made. */
  contentDecision: { at: string; included: string[] } | null;
  builtAt: string | null;
  expiresAt: string | null;
  size: number | null;
  sha256: string | null;
  counts: Record<string, number>;
  downloads: { tenant: number; subject: number };
  contentUrl: string | null;
  /**
   * Why the package was purged, once it is: `expired` (its download window ended), `subject-request` (the person's
   * erasure), `upload-deleted` (the content of an upload it held a copy of was destroyed: erased, deleted by its
   * sender or expired; a new request makes a new package), `rectification` (it held the person's old address); null
   * while it is not.
   */
  purgedReason: "expired" | "subject-request" | "upload-deleted" | "rectification" | null;
}

function viewOf(pkg: PackageDoc, awaiting: string[] | undefined): PackageView {
  return {
    requestId: pkg.requestId,
    scope: pkg.scope,
    state: pkg.state,
    awaitingDecision: awaiting ?? [],
    contentDecision: pkg.contentDecision ? { at: pkg.contentDecision.at, included: pkg.contentDecision.included } : null,
    builtAt: pkg.builtAt,
    expiresAt: pkg.expiresAt,
    size: pkg.content?.size ?? null,
    sha256: pkg.content?.sha256 ?? null,
    counts: pkg.counts,
    downloads: pkg.downloads,
    contentUrl: pkg.state === "ready" ? `/api/v1/subject-requests/${pkg.requestId}/package/content` : null,
    purgedReason: pkg.state === "purged" ? (pkg.purge?.reason ?? "expired") : null,
  };
}

/** GET /subject-requests/{id}/package. Errors: not-found (no such request, or not an access or portability request). */
export async function getPackage(s: Services, caller: TenantCaller, id: string): Promise<PackageView> {
  const req = await s.subjectRequests.get(caller.tenantId, id);
  if (!req || !packageScopeOf(req.requestType)) throw new AppError("not-found", "no access or portability request with this id");
  const pkg = (await s.packages.get(caller.tenantId, id)) ?? { ...newPackageDoc(req, new Date(req.createdAt)), _etag: "" };
  const awaiting = pkg.state === "open" && req.subjectHash && isOpenStatus(req.status) ? await undecidedSharedContent(s, req, pkg.contentDecision, pkg.scope) : [];
  return viewOf(pkg, awaiting);
}

export interface OpenedPackage {
  fileName: string;
  size: number;
  sha256: string;
  /** The zip, decrypted as it streams; absent for HEAD (nothing opened, counted or logged). */
  body?: Readable;
}

/**
 * A download of the package: the first authenticated bytes are made ready, the download is counted on the record
 * (`by`), and `subject-request.package-downloaded` is written, all before the first byte. Errors: conflict (not
 * built yet), gone via `expired` (past its window or purged).
 */
async function openPackage(s: Services, pkg: StoredPackage, by: "tenant" | "subject", actor: Actor, head: boolean): Promise<OpenedPackage | "expired" | "not-ready"> {
  if (pkg.state === "purged" || (pkg.expiresAt && Date.parse(pkg.expiresAt) <= s.clock.now().getTime())) return "expired";
  if (pkg.state !== "ready" || !pkg.content) return "not-ready";
  if (head) return { fileName: `${pkg.requestId}.zip`, size: pkg.content.size, sha256: pkg.content.sha256 };
  const key = await unwrapPackageKey(s, pkg);
  const body = await s.packageBlobs.open({ tenantId: pkg.tenantId, requestId: pkg.requestId, blobName: pkg.content.blobName, header: pkg.content.header, size: pkg.content.size }, key);
  let n = 0;
  try {
    const counted = await changePackage(s, pkg.tenantId, pkg.requestId, (doc) => {
      if (doc.state !== "ready") return undefined;
      n = doc.downloads[by] + 1;
      return { ...withoutMeta(doc), downloads: { ...doc.downloads, [by]: n } };
    });
    if (!counted) {
      body.destroy();
      return "expired";
    }
    await recordAudit(s, pkg.tenantId, actor, "subject-request.package-downloaded", { type: "subject-request", id: pkg.requestId }, { by, download: n, size: pkg.content.size });
  } catch (err) {
    body.destroy();
    throw err;
  }
  return { fileName: `${pkg.requestId}.zip`, size: pkg.content.size, sha256: pkg.content.sha256, body };
}

/** GET /subject-requests/{id}/package/content: the tenant's download. Errors: not-found, conflict (not built, or expired and purged). */
export async function downloadPackage(s: Services, caller: TenantCaller, id: string, head = false): Promise<OpenedPackage> {
  const pkg = await s.packages.get(caller.tenantId, id);
  if (!pkg) {
    const req = await s.subjectRequests.get(caller.tenantId, id);
    if (!req || !packageScopeOf(req.requestType)) throw new AppError("not-found", "no access or portability request with this id");
    throw new AppError("conflict", "the package is not built yet");
  }
  const r = await openPackage(s, pkg, "tenant", caller, head);
  if (r === "not-ready") throw new AppError("conflict", "the package is not built yet");
  if (r === "expired") {
    throw new AppError(
      "conflict",
      pkg.state !== "purged"
        ? "the package's download window is over: it can no longer be downloaded and is purged by the next retention sweep (a new access request makes a new one)"
        : pkg.purge?.reason === "upload-deleted"
          ? "the package was purged: the content of an upload it held a copy of was destroyed (a new access request makes a new one)"
          : pkg.purge?.reason === "subject-request"
            ? "the package was purged by the person's erasure"
            : pkg.purge?.reason === "rectification"
              ? "the package was purged: it held the person's address before it was rectified (a new access request makes a new one)"
            : "the package's download window is over: it was purged (a new access request makes a new one)",
    );
  }
  return r;
}

export type PublicDownload = { kind: "package"; opened: OpenedPackage } | { kind: "page"; status: 403 | 410; html: string };

/**
 * GET /api/public/subject-request-packages/{token}: the person's download. A link that is malformed, forged or names
 * nothing gets 403, one whose package expired or was purged 410, each a page saying so (in the tenant's language when
 * the link names one) and nothing about the request or the person. The token's secret is compared by its SHA-256.
 */
export async function publicDownload(s: Services, token: string, apiRequestId: string, head = false): Promise<PublicDownload> {
  const parsed = parsePackageToken(token);
  const tenant = parsed ? await s.tenants.get(parsed.tenantId) : undefined;
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const page = (status: 403 | 410): PublicDownload => ({ kind: "page", status, html: s.pages.render("dsr-package-link", language, { invalid: status === 403, expired: status === 410 }) });
  if (!parsed || !tenant) return page(403);
  const pkg = await s.packages.get(parsed.tenantId, parsed.requestId);
  if (!pkg || !pkg.linkHash) return page(403);
  const a = Buffer.from(tokenHash(parsed.secret), "hex");
  const b = Buffer.from(pkg.linkHash, "hex");
  if (a.length !== b.length || !timingSafeEqual(a, b)) return page(403);
  const r = await openPackage(s, pkg, "subject", { actor: "subject", requestId: apiRequestId }, head);
  if (r === "expired") return page(410);
  if (r === "not-ready") return page(403);
  return { kind: "package", opened: r };
}

// --- retention: the dsr-export class ---------------------------------------------------------------------------------------

/** For the retention sweep: packages whose download window is over, oldest first. */
export async function findExpiredPackages(s: Services, now: Date, limit: number): Promise<Array<{ tenantId: string; id: string; dueAt: string }>> {
  const rows = await s.packages.findExpiredAcrossTenants(now, limit);
  return rows
    .map((r) => ({ tenantId: r.tenantId, id: r.requestId, due: RETENTION_CLASSES["dsr-export"].dueAt({ expiresAt: r.expiresAt }) }))
    .filter((r): r is { tenantId: string; id: string; due: Date } => r.due !== null && r.due.getTime() <= now.getTime())
    .map((r) => ({ tenantId: r.tenantId, id: r.id, dueAt: r.due.toISOString() }));
}

/**
 * Purges a package at the end of its download window, if its stored record says it is due: (1) its data key leaves
 * the record (crypto-shred: every copy of the zip is unreadable from then on), under a lease; (2) its blobs are
 * deleted; (3) `subject-request.package-purged` is written once; (4) it is marked purged with the sweep (for the
 * receipt). A crash between steps is finished by the next sweep. Returns "purged", "skipped" or "busy".
 */
export async function purgePackage(s: Services, item: { tenantId: string; id: string }, sweepId: string): Promise<"purged" | "skipped" | "busy"> {
  const pkg = await s.packages.get(item.tenantId, item.id);
  if (!pkg || pkg.state === "purged") return "skipped";
  const due = RETENTION_CLASSES["dsr-export"].dueAt({ expiresAt: pkg.expiresAt });
  if (!due || due.getTime() > s.clock.now().getTime()) return "skipped";
  return purgePackageNow(s, item.tenantId, item.id, {
    reason: "expired",
    actor: { actor: "system:retention" },
    sweepId,
    details: { sweepId, expiresAt: pkg.expiresAt, downloads: pkg.downloads.tenant + pkg.downloads.subject },
  });
}

/** For the retention receipt: the packages (request ids) a sweep purged, by tenant. */
export async function packagesPurgedBySweep(s: Services, sweepId: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const r of await s.packages.findPurgedBySweepAcrossTenants(sweepId)) {
    const list = out.get(r.tenantId);
    if (list) list.push(r.requestId);
    else out.set(r.tenantId, [r.requestId]);
  }
  return out;
}


export type { ExportSection };
