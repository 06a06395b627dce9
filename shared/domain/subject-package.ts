/**
 * The package an access (GDPR Art. 15) or portability (Art. 20) request is answered with: a zip holding `data.json`
 * (everything about the person, versioned by `schemaVersion`, described by the JSON Schema built here and published
 * beside the OpenAPI document), `index.html` (the same, readable, in the tenant's language) and `files/` (copies of
 * uploaded content, Art. 15(3)). Pure rules: what a package's scope is, what a privacy-information document holds
 * (Art. 15(1)(a)–(h), (2)), the shape of the person's download link, safe names inside the zip, the JSON Schema.
 */
import { z } from "zod";
import { LANGUAGES, type Language } from "./language";
import type { DsrType } from "./subject-requests";

/** data.json's version: a reader checks it before anything else. A change that breaks a reader raises it. */
export const PACKAGE_SCHEMA_VERSION = 2;
/** data.json's `format`, and the `$id` path of its schema. */
export const PACKAGE_FORMAT = "safedata.subject-package";
/** Where the JSON Schema of data.json is published (beside /api/v1/openapi.json). */
export const PACKAGE_SCHEMA_PATH = "/api/v1/subject-package.schema.json";

/** What a package holds: `access` everything held about the person; `portability` what the person provided (Art. 20(1)). */
export const PACKAGE_SCOPES = ["access", "portability"] as const;
export type PackageScope = (typeof PACKAGE_SCOPES)[number];

/** The scope of a request type's package, or undefined for types not answered with one. */
export function packageScopeOf(type: DsrType): PackageScope | undefined {
  return type === "access" || type === "portability" ? type : undefined;
}

// --- privacy information (Art. 15(1)(a)–(h), 15(2)) ------------------------------------------------------------------

/**
 * One language's privacy information: what Art. 15(1) says the person is owed besides the copy of the data.
 * (a) purposes, (b) categories, (c) recipients, (d) retention, (e) the rights to rectification, erasure, restriction
 * and objection, (f) the right to lodge a complaint with a supervisory authority, (g) the source, (h) automated
 * decision-making; and Art. 15(2) safeguards of transfers to third countries.
 */
export const PRIVACY_FIELDS = ["purposes", "categories", "recipients", "retention", "rights", "complaint", "source", "automatedDecisions", "transfers"] as const;
export type PrivacyField = (typeof PRIVACY_FIELDS)[number];

/** The Art. 15 point each field answers (shown beside it in index.html and in the OpenAPI description). */
export const PRIVACY_FIELD_BASIS: Record<PrivacyField, string> = {
  purposes: "Art. 15(1)(a)",
  categories: "Art. 15(1)(b)",
  recipients: "Art. 15(1)(c)",
  retention: "Art. 15(1)(d)",
  rights: "Art. 15(1)(e)",
  complaint: "Art. 15(1)(f)",
  source: "Art. 15(1)(g)",
  automatedDecisions: "Art. 15(1)(h)",
  transfers: "Art. 15(2)",
};

export const PRIVACY_FIELD_LABELS: Record<Language, Record<PrivacyField, string>> = {
  en: {
    purposes: "Why your data is processed",
    categories: "Which kinds of data are processed",
    recipients: "Who receives it",
    retention: "How long it is kept",
    rights: "Your rights to rectification, erasure, restriction and objection",
    complaint: "Your right to complain to a supervisory authority",
    source: "Where the data comes from",
    automatedDecisions: "Automated decisions and profiling",
    transfers: "Transfers outside the EU/EEA and their safeguards",
  },
  da: {
    purposes: "Hvorfor dine oplysninger behandles",
    categories: "Hvilke slags oplysninger der behandles",
    recipients: "Hvem der modtager dem",
    retention: "Hvor længe de opbevares",
    rights: "Dine rettigheder til berigtigelse, sletning, begrænsning og indsigelse",
    complaint: "Din ret til at klage til en tilsynsmyndighed",
    source: "Hvor oplysningerne kommer fra",
    automatedDecisions: "Automatiske afgørelser og profilering",
    transfers: "Overførsler uden for EU/EØS og garantierne for dem",
  },
};

/** Text of one field: trimmed, 1–4000 characters; line breaks allowed, no other control characters. */
const privacyText = z
  .string()
  // eslint-disable-next-line no-control-regex
  .refine((v) => !/[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f]/.test(v), "must not contain control characters other than line breaks")
  .trim()
  .min(1)
  .max(4000);

/** One language's document; `transfers` may be left out when nothing leaves the EU/EEA. */
export const privacyTextsSchema = z.strictObject({
  purposes: privacyText,
  categories: privacyText,
  recipients: privacyText,
  retention: privacyText,
  rights: privacyText,
  complaint: privacyText,
  source: privacyText,
  automatedDecisions: privacyText,
  transfers: privacyText.optional(),
});
export type PrivacyTexts = z.infer<typeof privacyTextsSchema>;

/** The document a tenant keeps (PUT /api/v1/privacy-information): every language the service writes in. */
export const privacyDocumentSchema = z.strictObject(Object.fromEntries(LANGUAGES.map((l) => [l, privacyTextsSchema])) as Record<Language, typeof privacyTextsSchema>);
export type PrivacyDocument = z.infer<typeof privacyDocumentSchema>;

// --- the person's download link ---------------------------------------------------------------------------------------

/** A download link's token: `<tenantId>.<requestId>.<secret>` (43 base64url characters, 256 bits); only its SHA-256 is stored. */
const LINK_TOKEN = /^(tn-[a-z2-7]{16})\.(dsr-[a-z2-7]{26})\.([A-Za-z0-9_-]{43})$/;

export function formatPackageToken(tenantId: string, requestId: string, secret: string): string {
  return `${tenantId}.${requestId}.${secret}`;
}

/** The parts of a download token, or undefined for anything that is not one. */
export function parsePackageToken(token: string): { tenantId: string; requestId: string; secret: string } | undefined {
  const m = LINK_TOKEN.exec(token);
  return m ? { tenantId: m[1]!, requestId: m[2]!, secret: m[3]! } : undefined;
}

/** When a package built at `builtAt` stops being downloadable: DSR_EXPORT_DAYS later. */
export function packageExpiresAt(builtAt: Date, exportDays: number): Date {
  return new Date(builtAt.getTime() + exportDays * 86_400_000);
}

// --- names inside the zip ---------------------------------------------------------------------------------------------

/**
 * A file name safe as the last part of a zip entry: no directory parts, no control or format characters, no
 * characters Windows refuses, not empty, not `.` or `..`, at most 100 characters (its extension kept).
 */
export function safeFileName(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? "";
  // eslint-disable-next-line no-control-regex
  let clean = base.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff<>:"|?*]/g, "_").trim();
  clean = clean.replace(/^\.+/, "_");
  if (clean === "" || clean === "_") clean = "file";
  if (clean.length > 100) {
    const dot = clean.lastIndexOf(".");
    const ext = dot > 0 && clean.length - dot <= 12 ? clean.slice(dot) : "";
    clean = clean.slice(0, 100 - ext.length) + ext;
  }
  return clean;
}

/**
 * Extensions of files that run when opened from an unzipped folder: web pages and images with script (a browser
 * opens them from file:// and runs their script), scripts, and programs and shortcuts on Windows, macOS and Linux
 * desktops. Lower case, without the dot.
 */
export const ACTIVE_EXTENSIONS: ReadonlySet<string> = new Set([
  "htm", "html", "xhtml", "xht", "shtml", "mht", "mhtml", "svg", "svgz", "xml", "xsl", "xslt", "hta",
  "js", "mjs", "cjs", "jse", "vbs", "vbe", "wsf", "wsh", "ps1", "psm1", "bat", "cmd", "com", "exe", "msi", "scr", "pif", "cpl", "lnk", "url", "reg", "jar",
  "sh", "command", "desktop", "app", "applescript", "scpt", "py", "pl", "rb", "php",
]);

/**
 * A name under which the file does not run when opened: one whose last extension is active (ACTIVE_EXTENSIONS, any
 * case) gets `.txt` added, so it opens as text (`page.html` -> `page.html.txt`); others are unchanged. Pure.
 */
export function inertFileName(name: string): string {
  const dot = name.lastIndexOf(".");
  const ext = dot >= 0 ? name.slice(dot + 1).trim().toLowerCase() : "";
  return ACTIVE_EXTENSIONS.has(ext) ? `${name}.txt` : name;
}

/**
 * The zip entry of an upload's content: `files/<uploadId>/<file name>` (the id keeps names unique), the name made
 * inert (inertFileName) so nothing in the package runs when opened.
 */
export function contentEntryPath(uploadId: string, fileName: string | undefined): string {
  return `files/${uploadId}/${inertFileName(safeFileName(fileName ?? "content"))}`;
}

// --- the JSON Schema of data.json -------------------------------------------------------------------------------------

export type JsonSchema = { [key: string]: unknown };

/** A section of data.json as the schema describes it: its name and the schema of one item. */
export interface SectionSchema {
  name: string;
  description: string;
  item: JsonSchema;
}

const str = { type: "string" } as const;
const dateTime = { type: "string", format: "date-time" } as const;

/**
 * The JSON Schema (draft 2020-12) of data.json with the given sections. Every object is closed
 * (`additionalProperties: false`), so a reader learns of anything new from a new schema, not by surprise.
 */
export function packageJsonSchema(sections: readonly SectionSchema[], baseUrl = ""): JsonSchema {
  const privacyTexts: JsonSchema = {
    type: "object",
    additionalProperties: false,
    required: PRIVACY_FIELDS.filter((f) => f !== "transfers"),
    properties: Object.fromEntries(PRIVACY_FIELDS.map((f) => [f, { ...str, description: PRIVACY_FIELD_BASIS[f] }])),
  };
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: `${baseUrl}${PACKAGE_SCHEMA_PATH}`,
    title: "data.json of a safedata access or portability package",
    description:
      "Everything the service holds about one person for one controller (access, GDPR Art. 15), or what the person provided (portability, Art. 20), " +
      "in a structured, commonly used and machine-readable format. Check schemaVersion first.",
    type: "object",
    additionalProperties: false,
    required: ["format", "schemaVersion", "generatedAt", "scope", "controller", "request", "subject", "privacyInformation", "sections"],
    properties: {
      format: { const: PACKAGE_FORMAT },
      schemaVersion: { const: PACKAGE_SCHEMA_VERSION },
      generatedAt: dateTime,
      scope: { enum: [...PACKAGE_SCOPES], description: "access: everything held (Art. 15); portability: what the person provided (Art. 20(1))" },
      language: { enum: [...LANGUAGES] },
      controller: {
        type: "object",
        additionalProperties: false,
        required: ["name", "tenantId"],
        properties: { name: str, tenantId: str },
      },
      request: {
        type: "object",
        additionalProperties: false,
        required: ["id", "type", "receivedAt", "verifiedAt"],
        properties: { id: str, type: { enum: [...PACKAGE_SCOPES] }, receivedAt: dateTime, verifiedAt: { anyOf: [dateTime, { type: "null" }] } },
      },
      subject: { type: "object", additionalProperties: false, required: ["email"], properties: { email: str } },
      privacyInformation: {
        description: "The controller's information under Art. 15(1)(a)–(h) and 15(2), in the package's language (null in a portability package)",
        anyOf: [privacyTexts, { type: "null" }],
      },
      sections: {
        type: "object",
        additionalProperties: false,
        required: sections.map((s) => s.name),
        properties: Object.fromEntries(sections.map((s) => [s.name, { description: s.description, type: "array", items: s.item }])),
      },
    },
  };
}
