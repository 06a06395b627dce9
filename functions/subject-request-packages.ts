/**
 * Access and portability packages (GDPR Art. 15, 20): the tenant's view and download of a request's package, its
 * Art. 15(4) decision on content naming other people too, the person's expiring download link, and the JSON Schema of
 * the package's data.json (published beside the OpenAPI document). See shared/usecases/subject-request-access.ts.
 */
import { createHash } from "node:crypto";
import { app } from "@azure/functions";
import { z } from "zod";
import { requestIdSchema } from "../shared/domain/subject-requests";
import { hasControlOrFormat } from "../shared/domain/uploads";
import { acceptCheck } from "../shared/http/accept";
import { contentDisposition } from "../shared/http/content-headers";
import { httpEndpoint, problems, type ResponseHeaderSpec } from "../shared/http/endpoint";
import { pacedBody } from "../shared/http/streamed-response";
import { downloadPackage, getPackage, includeContent, publicDownload, subjectPackageSchema, type OpenedPackage, type PackageView } from "../shared/usecases/subject-request-access";

const tags = ["Data-subject requests"];
const idParams = z.object({ id: requestIdSchema });

const packageSchema = z.object({
  requestId: z.string(),
  scope: z.enum(["access", "portability"]),
  state: z.enum(["open", "building", "ready", "purged"]).describe("open: not built yet; building; ready to download; purged at the end of its download window"),
  awaitingDecision: z.array(z.string()).describe("Uploads whose content names other data subjects too, awaiting POST …/include-content (GDPR Art. 15(4))"),
  contentDecision: z
    .object({ at: z.string(), included: z.array(z.string()) })
    .nullable()
    .describe("Your Art. 15(4) decision: the uploads included; every other upload naming others too is listed without its content"),
  builtAt: z.string().nullable(),
  expiresAt: z.string().nullable().describe("DSR_EXPORT_DAYS after it was built; then it is purged with a receipt"),
  size: z.number().int().nullable().describe("The zip's size in bytes"),
  sha256: z.string().nullable().describe("SHA-256 of the zip"),
  counts: z.record(z.string(), z.number().int()).describe("Items per section, files and their bytes, content withheld"),
  downloads: z.object({ tenant: z.number().int(), subject: z.number().int() }),
  contentUrl: z.string().nullable(),
  purgedReason: z
    .enum(["expired", "subject-request", "upload-deleted", "rectification"])
    .nullable()
    .describe("Why it was purged: its download window ended; the person's erasure; or the content of an upload it held a copy of was destroyed (erased, deleted by you, or expired); or it held the person's address before a rectification: a new request makes a new package"),
}) satisfies z.ZodType<PackageView>;

const get = httpEndpoint({
  name: "subject-request-package-get",
  method: "GET",
  route: "v1/subject-requests/{id}/package",
  auth: "tenant",
  tags,
  summary: "The package of an access or portability request: its state, what went in, when it expires, its downloads",
  params: idParams,
  responses: { 200: { description: "The package", schema: packageSchema } },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getPackage(services, principal, params.id) }),
});
app.http(get.name, get.options);

const reasonText = z
  .string()
  .refine((v) => !hasControlOrFormat(v.replace(/\r\n|\n/g, "")), "must not contain control or format characters other than line breaks")
  .trim()
  .min(1)
  .max(2000);

const include = httpEndpoint({
  name: "subject-request-include-content",
  method: "POST",
  route: "v1/subject-requests/{id}/include-content",
  auth: "tenant",
  tags,
  summary: "Decide which uploads naming other people too go into the package with their content (GDPR Art. 15(4)), with a reason",
  description:
    "Only uploads that name the person together with other data subjects; those listed go in with their content, every other such upload is " +
    "listed with its metadata only. Until this is decided the package waits. A later call replaces the decision until the package is built (then 409).",
  params: idParams,
  body: z.strictObject({
    uploadIds: z.array(z.string().min(1).max(64)).max(200).describe("Uploads whose content to include (may be empty: include none)"),
    reason: reasonText.describe("Why (recorded; a keyed digest of it goes to the audit log)"),
  }),
  idempotency: {},
  responses: { 200: { description: "Decided; the package as it now is", schema: packageSchema }, 409: problems(["conflict"]), 500: problems(["integrity-error"]) },
  handler: async ({ services, principal, params, body }) => ({ status: 200, json: await includeContent(services, principal, params.id, body) }),
});
app.http(include.name, include.options);

const zipHeaders: Record<string, ResponseHeaderSpec> = {
  "Content-Disposition": { description: "attachment; filename=<request id>.zip", required: true },
  "Content-Length": { description: "The zip's size in bytes", required: true },
  "Repr-Digest": { description: "sha-256 of the zip (RFC 9530)", required: true },
};
const zipBody = z.string().meta({ format: "binary" });

function zipResponse(opened: OpenedPackage, invocationId: string, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = {
    "content-type": "application/zip",
    "content-length": String(opened.size),
    "content-disposition": contentDisposition(opened.fileName),
    "repr-digest": `sha-256=:${Buffer.from(opened.sha256, "hex").toString("base64")}:`,
    "cache-control": "no-store",
    ...extra,
  };
  return opened.body ? { status: 200, headers, body: pacedBody(opened.body, invocationId) } : { status: 200, headers };
}

const content = httpEndpoint({
  name: "subject-request-package-content",
  method: "GET",
  route: "v1/subject-requests/{id}/package/content",
  auth: "tenant",
  tags,
  summary: "Download the package (a zip: data.json, index.html, files/), decrypted as it streams; each download is counted and audited",
  params: idParams,
  responses: {
    200: { description: "The zip", contentType: "application/zip", schema: zipBody, headers: zipHeaders },
    406: problems(["not-acceptable"]),
    409: problems(["conflict"]),
    500: problems(["integrity-error"]),
  },
  handler: async ({ services, principal, params, request, isHead, context }) => {
    // The route sends nothing but a zip: an Accept that excludes it is answered before anything is read or counted.
    acceptCheck(request.headers.get("accept"), "the package")("application/zip");
    return zipResponse(await downloadPackage(services, principal, params.id, isHead), context.invocationId);
  },
});
app.http(content.name, content.options);

// --- the person's link ----------------------------------------------------------------------------------------------

/** A page's policy: nothing loads or runs; its one style block is allowed by its hash; nobody may frame it. */
function pageHeaders(html: string): Record<string, string> {
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`);
  return {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": `default-src 'none'; style-src ${styles.length > 0 ? styles.join(" ") : "'none'"}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
  };
}

const pageHeaderSpecs: Record<string, ResponseHeaderSpec> = {
  "Content-Security-Policy": { description: "default-src 'none'; the page's style by its hash; no script may run", required: true },
  "Referrer-Policy": { description: "no-referrer: the link's token is never sent on to another site", required: true },
};
const htmlPage = z.string().describe("An HTML page (escaped, no scripts)");

const publicContent = httpEndpoint({
  name: "subject-request-package-download",
  method: "GET",
  route: "public/subject-request-packages/{token}",
  auth: "none",
  tags,
  summary: "The person's download link: the package, until it expires (DSR_EXPORT_DAYS); each download is counted and audited",
  params: z.object({ token: z.string().min(1).max(1024) }),
  responses: {
    200: { description: "The zip", contentType: "application/zip", schema: zipBody, headers: { ...zipHeaders, "Referrer-Policy": pageHeaderSpecs["Referrer-Policy"]! } },
    403: { description: "This link does not work (forged, changed, or naming nothing): a page that says so (HTML)", contentType: "text/html", schema: htmlPage, headers: pageHeaderSpecs },
    410: { description: "The package expired and was deleted: a page that says so (HTML)", contentType: "text/html", schema: htmlPage, headers: pageHeaderSpecs },
    500: problems(["integrity-error"]),
  },
  handler: async ({ services, params, requestId, isHead, context }) => {
    const r = await publicDownload(services, params.token, requestId, isHead);
    if (r.kind === "page") return { status: r.status, body: r.html, headers: pageHeaders(r.html) };
    return zipResponse(r.opened, context.invocationId, { "referrer-policy": "no-referrer" });
  },
});
app.http(publicContent.name, publicContent.options);

// --- the schema of data.json ----------------------------------------------------------------------------------------

let cached: object | undefined;

const schema = httpEndpoint({
  name: "subject-package-schema",
  method: "GET",
  route: "v1/subject-package.schema.json",
  auth: "none",
  tags: ["Operations"],
  summary: "The JSON Schema (draft 2020-12) of data.json in access and portability packages",
  responses: { 200: { description: "JSON Schema", schema: z.record(z.string(), z.unknown()) } },
  handler: async () => {
    cached ??= subjectPackageSchema();
    return { status: 200, json: cached };
  },
});
app.http(schema.name, schema.options);
