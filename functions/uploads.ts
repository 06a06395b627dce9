/** SafeData transfers: encrypted uploads with a 32-day life, streamed in and out. */
import { app } from "@azure/functions";
import { z } from "zod";
import { UPLOAD_STATUSES, uploadIdSchema } from "../shared/domain/uploads";
import { httpEndpoint } from "../shared/http/endpoint";
import { pageOf, pagingQuery } from "../shared/http/schemas";
import { deleteUpload } from "../shared/usecases/upload-deletion";
import { createUpload, createUploadInput, getUpload, listUploads, openContent, putContent, uploadSummary, uploadView } from "../shared/usecases/uploads";
import { AppError } from "../shared/http/problem";

const tags = ["Uploads"];
const idParams = z.object({ id: uploadIdSchema });

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
  handler: async ({ services, principal, body, requestId }) => {
    const created = await createUpload(services, principal, body, requestId);
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
    200: { description: "Stored", schema: uploadView },
    409: { description: "Content was already sent, or is being sent" },
    410: { description: "Expired or deleted" },
  },
  handler: async ({ services, principal, params, request, requestId, log }) => ({
    status: 200,
    json: await putContent(services, principal, params.id, request, requestId, log),
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
  responses: { 200: { description: "The upload", schema: uploadView } },
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
  responses: {
    200: { description: "The content", contentType: "application/octet-stream", schema: z.string().meta({ format: "binary" }) },
    206: { description: "The requested range", contentType: "application/octet-stream", schema: z.string().meta({ format: "binary" }) },
    410: { description: "Expired, deleted, or download limit reached" },
    416: { description: "Malformed or unsatisfiable Range" },
  },
  handler: async ({ services, principal, params, request, requestId, log }) => {
    const content = await openContent(services, principal, params.id, request.headers.get("range"), requestId, log);
    return { status: content.status, headers: content.headers, body: content.body };
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
  responses: { 200: { description: "A page of uploads", schema: pageOf(uploadSummary) } },
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
    204: { description: "Deleted: its key is destroyed (also when it already was; the rest of the deletion may finish moments later)" },
    409: { description: "The upload kept changing under the request; nothing was deleted yet" },
  },
  handler: async ({ services, principal, params, requestId }) => {
    const outcome = await deleteUpload(services, principal.tenantId, params.id, "sender-request", { actor: principal.actor, requestId });
    if (outcome === "not-found") throw new AppError("not-found", "no upload with this id");
    if (outcome === "busy") throw new AppError("conflict", "the upload is being changed by other requests; nothing was deleted yet, retry");
    return { status: 204 };
  },
});
app.http(remove.name, remove.options);
