/** Operator API: tenants (data controllers) and their API keys. Authenticated with the admin key. */
import { app } from "@azure/functions";
import { z } from "zod";
import { LANGUAGES } from "../shared/domain/language";
import { authorityCountries, DEFAULT_TIME_ZONE, tenantIdSchema } from "../shared/domain/tenant";
import { isTimeZone } from "../shared/domain/time";
import { httpEndpoint, problems } from "../shared/http/endpoint";
import { pageOf, pagingQuery, singleLine } from "../shared/http/schemas";
import {
  changeTenantStatus,
  createTenant,
  getTenant,
  listTenants,
  rotateApiKey,
  updateTenant,
  type CreateTenantInput,
  type TenantChanges,
  type TenantView,
} from "../shared/usecases/tenants";

const language = z.enum(LANGUAGES).describe("The language of the tenant's notices and pages: en or da");
const timeZone = z
  .string()
  .max(64)
  .refine(isTimeZone, "must be an IANA time zone like Europe/Copenhagen")
  .describe("IANA time zone: deadlines that are dates end at the end of that day there, and dates are shown in it");

const createTenantInput = z.strictObject({
  name: singleLine(200).describe("The controller's name, as it should appear in notices"),
  contactEmail: z.email().max(254).describe("Where breach and data-subject request notices for this controller go (their DPO)"),
  supervisoryAuthority: z.strictObject({
    country: z.enum(authorityCountries).describe("EU/EEA member state of the lead supervisory authority"),
    name: singleLine(200).optional().describe("Override the authority's name, e.g. a German state authority"),
  }),
  // Checked by the one webhook URL rule in the use case (checkWebhookUrl), the same as PUT /v1/webhook's.
  webhookUrl: z
    .string()
    .max(2048)
    .optional()
    .describe(
      "The tenant's first webhook endpoint (HTTPS, a public host name, no credentials); its signing secret is in the answer, once. " +
        "The tenant manages it afterwards at /api/v1/webhook",
    ),
  language: language.optional().describe("Default en"),
  timeZone: timeZone.optional().describe(`Default ${DEFAULT_TIME_ZONE}`),
}) satisfies z.ZodType<CreateTenantInput>;

const tenantView = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(["active", "suspended"]),
  offboardedAt: z.string().nullable().describe("When a suspended tenant's data was deleted after its notice period"),
  supervisoryAuthority: z.object({ country: z.enum(authorityCountries), name: z.string() }),
  language: z.enum(LANGUAGES),
  timeZone: z.string(),
  webhookUrl: z.string().nullable().describe("The tenant's webhook endpoint, if it has one"),
  contactEmail: z.string().optional().describe("Only in single-tenant responses"),
  apiKeyId: z.string().describe("Identifies the current API key in audit entries; not the key"),
  createdAt: z.string(),
  updatedAt: z.string(),
  suspendedAt: z.string().nullable(),
}) satisfies z.ZodType<TenantView>;

const tags = ["Admin: tenants"];
const tenantParams = z.object({ tenantId: tenantIdSchema });
const apiKeyNote =
  "The API key (and the webhook signing secret, when a webhookUrl was given) is shown only in this response; it is stored as a hash (encrypted). " +
  "A replay of this request with the same Idempotency-Key returns apiKey: null and webhookSecret: null.";
const redactKey = (json: unknown) => ({ ...(json as object), apiKey: null, ...((json as { webhookSecret?: unknown }).webhookSecret !== undefined ? { webhookSecret: null } : {}) });

const create = httpEndpoint({
  name: "admin-tenants-create",
  method: "POST",
  route: "v1/admin/tenants",
  auth: "admin",
  tags,
  summary: "Create a tenant and its first API key",
  description: apiKeyNote,
  body: createTenantInput,
  idempotency: { redact: redactKey },
  responses: {
    201: { description: "Created", schema: z.object({ tenant: tenantView, apiKey: z.string().nullable(), webhookSecret: z.string().nullable() }) },
    409: problems(["conflict"]),
  },
  handler: async ({ services, body, principal }) => {
    const result = await createTenant(services, body, principal);
    return { status: 201, json: result, headers: { location: `/api/v1/admin/tenants/${result.tenant.id}` } };
  },
});
app.http(create.name, create.options);

const list = httpEndpoint({
  name: "admin-tenants-list",
  method: "GET",
  route: "v1/admin/tenants",
  auth: "admin",
  tags,
  summary: "List tenants",
  query: pagingQuery,
  responses: { 200: { description: "A page of tenants", schema: pageOf(tenantView) } },
  handler: async ({ services, query }) => ({ status: 200, json: await listTenants(services, query.limit, query.cursor) }),
});
app.http(list.name, list.options);

const get = httpEndpoint({
  name: "admin-tenants-get",
  method: "GET",
  route: "v1/admin/tenants/{tenantId}",
  auth: "admin",
  tags,
  summary: "Get a tenant, including its contact address",
  description: "Reading the decrypted contact address is recorded in the tenant's audit log (tenant.read), as access to master data.",
  params: tenantParams,
  // integrity-error: the stored contact address fails its check when decrypted.
  responses: { 200: { description: "The tenant", schema: tenantView }, 500: problems(["integrity-error"]) },
  handler: async ({ services, params, principal }) => ({ status: 200, json: await getTenant(services, params.tenantId, principal) }),
});
app.http(get.name, get.options);

const patch = httpEndpoint({
  name: "admin-tenants-update",
  method: "PATCH",
  route: "v1/admin/tenants/{tenantId}",
  auth: "admin",
  tags,
  summary: "Change a tenant's name, language or time zone (audited)",
  params: tenantParams,
  body: z
    .strictObject({ name: singleLine(200).optional(), language: language.optional(), timeZone: timeZone.optional() })
    .refine((b) => Object.values(b).some((v) => v !== undefined), "give at least one of name, language and timeZone") satisfies z.ZodType<TenantChanges>,
  responses: { 200: { description: "The tenant", schema: tenantView }, 409: problems(["conflict"]) },
  handler: async ({ services, params, body, principal }) => ({ status: 200, json: await updateTenant(services, params.tenantId, body, principal) }),
});
app.http(patch.name, patch.options);

const rotate = httpEndpoint({
  name: "admin-tenants-rotate-key",
  method: "POST",
  route: "v1/admin/tenants/{tenantId}/api-key",
  auth: "admin",
  tags,
  summary: "Rotate the tenant's API key (the old key stops working at once)",
  description: apiKeyNote,
  params: tenantParams,
  idempotency: { redact: redactKey },
  responses: { 200: { description: "The new key", schema: z.object({ apiKey: z.string().nullable(), apiKeyId: z.string() }) }, 409: problems(["conflict"]) },
  handler: async ({ services, params, principal }) => ({
    status: 200,
    json: await rotateApiKey(services, params.tenantId, principal),
  }),
});
app.http(rotate.name, rotate.options);

for (const action of ["suspend", "reactivate"] as const) {
  const ep = httpEndpoint({
    name: `admin-tenants-${action}`,
    method: "POST",
    route: `v1/admin/tenants/{tenantId}/${action}`,
    auth: "admin",
    tags,
    summary: action === "suspend" ? "Suspend a tenant: its API key stops working; its data stays until retention removes it" : "Reactivate a suspended tenant",
    params: tenantParams,
    idempotency: {},
    responses: { 200: { description: "The tenant", schema: tenantView }, 409: problems(["conflict"]) },
    handler: async ({ services, params, principal }) => ({
      status: 200,
      json: await changeTenantStatus(services, params.tenantId, action, principal),
    }),
  });
  app.http(ep.name, ep.options);
}
