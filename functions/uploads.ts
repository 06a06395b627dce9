/** SafeData transfers: encrypted uploads with a 32-day life, streamed in and out. */
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { app, type HttpRequest } from "@azure/functions";
import { z } from "zod";
import { dataCategories, hasControlOrFormat, MAX_LIFE_DAYS, MIME_TYPE, UPLOAD_STATUSES, uploadIdSchema } from "../shared/domain/uploads";
import { purposeKeySchema } from "../shared/domain/consent";
import { AppError } from "../shared/errors";
import { acceptCheck } from "../shared/http/accept";
import { contentDisposition, isHeaderSafe } from "../shared/http/content-headers";
import { httpEndpoint, problems, type RequestHeaderSpec, type ResponseSpec } from "../shared/http/endpoint";
import { pacedBody } from "../shared/http/streamed-response";
import { pageOf, pagingQuery, singleLine } from "../shared/http/schemas";
import { deleteUploadOnRequest } from "../shared/usecases/upload-deletion";
import {
  createUpload,
  getUpload,
  listUploads,
  openContent,
  putContent,
  type CreateUploadInput,
  type IncomingContent,
  type OpenedContent,
  type UploadSummary,
  type UploadView,
} from "../shared/usecases/uploads";

const tags = ["Uploads"];
const idParams = z.object({ id: uploadIdSchema });
const email = z.email().max(254);

/**
 * Free text an upload stores: one line, trimmed, with no Unicode control (Cc) or format (Cf) character anywhere (the
 * check sees the text before trimming, which would drop a leading byte-order mark silently).
 */
const uploadText = (max: number) =>
  z
    .string()
    .refine((v) => !hasControlOrFormat(v), "must not contain control or format characters (Unicode categories Cc and Cf, e.g. U+202E)")
    .trim()
    .min(1)
    .max(max);

const createUploadInput = z.strictObject({
  senderReference: uploadText(200).describe("The tenant's own reference for the sender (e.g. a user id)"),
  recipients: z.array(email).min(1).max(50).describe("E-mail addresses of the people the content is for"),
  dataSubjects: z.array(email).min(1).max(1000).describe("E-mail addresses of the people the content is about"),
  categories: z
    .array(z.enum(dataCategories))
    .min(1)
    .max(dataCategories.length)
    .refine((a) => new Set(a).size === a.length, "must not repeat a category")
    .describe("Kinds of personal data in the content"),
  fileName: uploadText(255).describe("Shown to recipients as the download's file name; no control or format characters (Unicode Cc, Cf)"),
  contentType: z
    .string()
    .max(255)
    .regex(MIME_TYPE, "must be a media type like application/pdf")
    .describe("Sent back as the download's Content-Type. Kept in plain text: the essence and a well-known charset; the rest (e.g. name=) only encrypted"),
  size: z.number().int().nonnegative().describe("Exact size of the content in bytes"),
  maxDownloads: z.number().int().min(1).max(10_000).optional(),
  expiresInDays: z.number().int().min(1).max(MAX_LIFE_DAYS).optional().describe(`At most ${MAX_LIFE_DAYS} (the default)`),
  notifyOnFirstDownload: email.optional().describe("Address to tell when the content is first downloaded"),
  consentPurpose: purposeKeySchema
    .optional()
    .describe("A consent purpose this upload rests on: refused (403 consent-not-granted) unless every data subject's latest decision for it is granted"),
  purpose: singleLine(100)
    .optional()
    .describe("The purpose of the processing (e.g. direct-marketing): refused (403 processing-restricted) while a data subject objected to it (GDPR Art. 21)"),
  providedBySubject: z
    .boolean()
    .optional()
    .describe("The data subjects provided this content themselves (GDPR Art. 20(1)): it goes into their portability packages. Default false"),
}) satisfies z.ZodType<CreateUploadInput>;

const uploadView = z.object({
  id: z.string(),
  status: z.enum(UPLOAD_STATUSES),
  createdAt: z.string(),
  expiresAt: z.string(),
  categories: z.array(z.string()),
  contentType: z.string(),
  size: z.number(),
  maxDownloads: z.number().nullable(),
  downloads: z.number(),
  firstDownloadAt: z.string().nullable(),
  contentStoredAt: z.string().nullable(),
  recipients: z.object({ count: z.number(), masked: z.array(z.string()).optional() }),
  dataSubjects: z.object({ count: z.number() }),
  fileName: z.string().optional().describe("Absent once deleted"),
  senderReference: z.string().optional().describe("Absent once deleted"),
  contentUrl: z.string(),
  deletion: z.object({ reason: z.string(), at: z.string(), completed: z.boolean() }).optional(),
}) satisfies z.ZodType<UploadView>;

const uploadSummary = uploadView.omit({ fileName: true, senderReference: true, recipients: true }).extend({
  recipients: z.object({ count: z.number() }),
}) satisfies z.ZodType<UploadSummary>;

/** What every upload route can answer besides its own outcomes: a repeated query key, a bad or suspended key, a bug. */
const everyRoute = {
  400: problems(["invalid-parameter"]),
  401: problems(["unauthenticated"], { "WWW-Authenticate": { description: "Bearer, with the error when a key was sent", required: true } }),
  403: problems(["tenant-suspended"]),
  500: problems(["internal-error"]),
} satisfies Record<number, ResponseSpec>;

/** ...and those naming one upload: unknown ids, and stored data that fails its integrity check. */
const oneUpload = {
  ...everyRoute,
  404: problems(["not-found"]),
  500: problems(["internal-error", "integrity-error"]),
} satisfies Record<number, ResponseSpec>;

const contentHeaders = {
  ETag: { description: "Strong entity tag of the stored content (it never changes)", required: true },
  "Content-Disposition": { description: "attachment; filename (ASCII) and filename* (UTF-8), while the file name exists" },
  "Accept-Ranges": { description: "bytes", required: true },
};

/** The request headers a download reads (RFC 9110 §14.2 Range, §13.1.5 If-Range, §13.1.2 If-None-Match). */
const downloadRequestHeaders = {
  Range: {
    description: "One range of bytes (the unit in any case): bytes=a-b, bytes=a- or bytes=-n. Another unit, or several ranges, is ignored (200)",
    schema: z.string(),
    examples: ["bytes=0-1023", "bytes=1024-", "bytes=-512", "Bytes=0-0"],
  },
  "If-Range": {
    description: "The content's ETag: the Range applies only if it matches (strong comparison); anything else means the whole content",
    schema: z.string(),
    examples: ['"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"', 'W/"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"'],
  },
  "If-None-Match": { description: "ETags (or *): when one matches, 304 Not Modified, which is not a download", schema: z.string(), examples: ["*"] },
} satisfies Record<string, RequestHeaderSpec>;

/** The request's body and the headers that describe it. Content-Length must be decimal digits (RFC 9110 §8.6). */
function incomingContent(request: HttpRequest): IncomingContent {
  const length = request.headers.get("content-length");
  if (length !== null && !/^\d{1,16}$/.test(length)) throw new AppError("malformed-request", "Content-Length is not a number");
  return {
    contentType: request.headers.get("content-type"),
    contentLength: length === null ? null : Number(length),
    body: request.body ? Readable.fromWeb(request.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]),
  };
}

/**
 * Status and headers of a download or a HEAD on content (RFC 9110 §14.4 Content-Range, §8.8.3 ETag, RFC 6266
 * Content-Disposition); 304 Not Modified carries the ETag only (§15.4.5).
 */
function downloadResponse(content: OpenedContent, invocationId: string): { status: number; headers: Record<string, string>; body?: Readable } {
  if (content.kind === "not-modified") return { status: 304, headers: { etag: content.etag } };
  const bytes = content.range ? content.range.end - content.range.start + 1 : content.size;
  const headers: Record<string, string> = {
    // A stored type that is not a valid header value (from before types were checked for that) is sent as plain bytes.
    "content-type": isHeaderSafe(content.contentType) ? content.contentType : "application/octet-stream",
    "accept-ranges": "bytes",
    "content-length": String(bytes),
    etag: content.etag,
  };
  if (content.fileName !== undefined) headers["content-disposition"] = contentDisposition(content.fileName);
  if (content.range) headers["content-range"] = `bytes ${content.range.start}-${content.range.end}/${content.size}`;
  const status = content.partial ? 206 : 200;
  // Taken from the decryptor only as fast as the client takes it, and ended when the client goes away.
  return content.body ? { status, headers, body: pacedBody(content.body, invocationId) } : { status, headers };
}

const create = httpEndpoint({
  name: "uploads-create",
  method: "POST",
  route: "v1/uploads",
  auth: "tenant",
  tags,
  summary: "Create an upload: declare what it is, then PUT its content",
  description: "The upload expires 32 days after creation (or sooner with expiresInDays). Send the content to upload.url with the declared Content-Type.",
  body: createUploadInput,
  idempotency: {},
  responses: {
    ...everyRoute,
    400: problems(["invalid-json", "invalid-parameter"]),
    408: problems(["request-timeout"]),
    409: problems(["idempotency-in-progress", "conflict"]),
    // A consentPurpose whose consent is not in force for every data subject.
    403: problems(["tenant-suspended", "consent-not-granted", "processing-restricted"]),
    413: problems(["payload-too-large"]),
    415: problems(["unsupported-media-type"]),
    422: problems(["validation-failed", "idempotency-key-reused"]),
    201: {
      description: "Created",
      schema: z.object({
        id: z.string(),
        status: z.string(),
        expiresAt: z.string(),
        upload: z.object({ method: z.literal("PUT"), url: z.string(), contentType: z.string(), size: z.number() }),
      }),
    },
  },
  handler: async ({ services, principal, body }) => {
    const created = await createUpload(services, principal, body);
    return { status: 201, json: created, headers: { location: `/api/v1/uploads/${created.id}` } };
  },
});
app.http(create.name, create.options);

const putBody = httpEndpoint({
  name: "uploads-put-content",
  method: "PUT",
  route: "v1/uploads/{id}/content",
  auth: "tenant",
  tags,
  summary: "Send the content (once), streamed and encrypted into storage",
  description:
    "The body must be exactly the declared size, with the declared Content-Type. If the body is cut short, nothing is kept and the upload can be sent again.",
  params: idParams,
  rawBody: { contentTypes: ["application/octet-stream", "*/*"], description: "The content, as declared" },
  responses: {
    ...oneUpload,
    200: { description: "Stored", schema: uploadView },
    400: problems(["malformed-request", "invalid-parameter"]),
    408: problems(["request-timeout"]),
    409: problems(["conflict"]),
    410: problems(["upload-expired", "upload-deleted"]),
    413: problems(["payload-too-large"]),
    415: problems(["unsupported-media-type"]),
  },
  handler: async ({ services, principal, params, request, log }) => ({
    status: 200,
    json: await putContent(services, principal, params.id, incomingContent(request), log),
  }),
});
app.http(putBody.name, putBody.options);

const get = httpEndpoint({
  name: "uploads-get",
  method: "GET",
  route: "v1/uploads/{id}",
  auth: "tenant",
  tags,
  summary: "An upload's metadata (never its content; addresses masked)",
  params: idParams,
  responses: { ...oneUpload, 200: { description: "The upload", schema: uploadView } },
  handler: async ({ services, principal, params }) => ({ status: 200, json: await getUpload(services, principal, params.id) }),
});
app.http(get.name, get.options);

const download = httpEndpoint({
  name: "uploads-get-content",
  method: "GET",
  route: "v1/uploads/{id}/content",
  auth: "tenant",
  tags,
  summary: "Download the content, decrypted as it streams; single byte ranges supported",
  description:
    "Every request counts toward maxDownloads, including range requests, and is recorded in the audit log. If stored data fails its integrity check the response is aborted; no unverified byte is sent.",
  params: idParams,
  requestHeaders: downloadRequestHeaders,
  responses: {
    ...oneUpload,
    200: {
      description: "The content (also when the Range was ignored: another unit, several ranges, or If-Range not matching)",
      contentType: "application/octet-stream",
      schema: z.string().meta({ format: "binary" }),
      headers: contentHeaders,
    },
    206: {
      description: "The one byte range asked for",
      contentType: "application/octet-stream",
      schema: z.string().meta({ format: "binary" }),
      headers: { ...contentHeaders, "Content-Range": { description: "bytes <first>-<last>/<size>", required: true } },
    },
    304: { description: "Not Modified: If-None-Match matched the ETag. Not a download", headers: { ETag: contentHeaders.ETag } },
    // A data subject of the upload restricted its processing (GDPR Art. 18).
    403: problems(["tenant-suspended", "processing-restricted"]),
    406: problems(["not-acceptable"]),
    409: problems(["conflict"]),
    410: problems(["upload-expired", "upload-deleted", "download-limit-reached"]),
    416: problems(["range-not-satisfiable"], { "Content-Range": { description: "bytes */<size>", required: true } }),
  },
  handler: async ({ services, principal, params, request, isHead, context, log }) => {
    const opened = await openContent(
      services,
      principal,
      params.id,
      {
        method: isHead ? "HEAD" : "GET",
        range: request.headers.get("range"),
        ifRange: request.headers.get("if-range"),
        ifNoneMatch: request.headers.get("if-none-match"),
        // The type as downloadResponse sends it.
        acceptable: (type) => acceptCheck(request.headers.get("accept"), "the content")(isHeaderSafe(type) ? type : "application/octet-stream"),
      },
      log,
    );
    return downloadResponse(opened, context.invocationId);
  },
});
app.http(download.name, download.options);

const list = httpEndpoint({
  name: "uploads-list",
  method: "GET",
  route: "v1/uploads",
  auth: "tenant",
  tags,
  summary: "List the tenant's uploads, newest first",
  query: pagingQuery.extend({ status: z.enum(UPLOAD_STATUSES).optional() }),
  responses: { ...everyRoute, 200: { description: "A page of uploads", schema: pageOf(uploadSummary) } },
  handler: async ({ services, principal, query }) => ({
    status: 200,
    json: await listUploads(services, principal, { status: query.status, limit: query.limit, cursor: query.cursor }),
  }),
});
app.http(list.name, list.options);

const remove = httpEndpoint({
  name: "uploads-delete",
  method: "DELETE",
  route: "v1/uploads/{id}",
  auth: "tenant",
  tags,
  summary: "Delete an upload now: destroy its key, then its content; a tombstone remains",
  params: idParams,
  responses: {
    ...everyRoute,
    404: problems(["not-found"]),
    204: { description: "Deleted: its key is destroyed (also when it already was; the rest of the deletion may finish moments later)" },
    409: problems(["conflict"]),
  },
  handler: async ({ services, principal, params, log }) => {
    await deleteUploadOnRequest(services, principal, params.id, log);
    return { status: 204 };
  },
});
app.http(remove.name, remove.options);
