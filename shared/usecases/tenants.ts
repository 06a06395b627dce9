/**
 * Tenant administration: what an operator can do to a tenant, each step recorded in that tenant's audit log.
 * API keys are shown once, when created or rotated, and stored only as a hash. The controller's contact
 * address is an encrypted field under the tenant's key-encryption key.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { z } from "zod";
import { decryptField, encryptField, fieldAssociatedData } from "../crypto";
import {
  authorityCountries,
  authorityFor,
  hashApiKey,
  newApiKey,
  newKeyId,
  newTenantId,
  transitionTenant,
  type AuthorityCountry,
} from "../domain/tenant";
import { RETENTION_CLASSES } from "../domain/retention";
import { AppError } from "../http/problem";
import { singleLine } from "../http/schemas";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { TenantDoc } from "../stores/tenant-store";


/**
 * A webhook must name a public host: no user name or password in the URL (it would be stored and shown), no IP
 * literal and no local or single-label name (the service would be made to call into its own network).
 */
export function publicWebhookProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be a URL";
  }
  if (url.username !== "" || url.password !== "") return "must not contain a user name or password";
  // The URL parser has already turned every numeric spelling of an IPv4 address (decimal, octal, hex) into dotted form.
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (host.startsWith("[") || isIP(host) !== 0) return "must name a host, not an IP address";
  const labels = host.split(".");
  if (labels.some((l) => l === "")) return "must be a well-formed host name";
  if (labels.length < 2 || host === "localhost" || /\.(localhost|local|internal|lan|home\.arpa|intranet)$/.test(host)) {
    return "must name a public host (not localhost, a single-label or a local name)";
  }
  return undefined;
}

export const createTenantInput = z.strictObject({
  name: singleLine(200).describe("The controller's name, as it should appear in notices"),
  contactEmail: z.email().max(254).describe("Where breach and data-subject request notices for this controller go (their DPO)"),
  supervisoryAuthority: z.strictObject({
    country: z.enum(authorityCountries).describe("EU/EEA member state of the lead supervisory authority"),
    name: singleLine(200).optional().describe("Override the authority's name, e.g. a German state authority"),
  }),
  webhookUrl: z
    .url({ protocol: /^https$/ })
    .max(2048)
    .refine((u) => publicWebhookProblem(u) === undefined, { error: (i) => publicWebhookProblem(String(i.input)) ?? "invalid webhook URL" })
    .optional()
    .describe("HTTPS endpoint that receives event notifications: a public host name, no credentials in the URL"),
});
export type CreateTenantInput = z.infer<typeof createTenantInput>;

export const tenantView = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(["active", "suspended"]),
  offboardedAt: z.string().nullable().describe("When a suspended tenant's data was deleted after its notice period"),
  supervisoryAuthority: z.object({ country: z.enum(authorityCountries), name: z.string() }),
  webhookUrl: z.string().nullable(),
  contactEmail: z.string().optional().describe("Only in single-tenant responses"),
  apiKeyId: z.string().describe("Identifies the current API key in audit entries; not the key"),
  createdAt: z.string(),
  updatedAt: z.string(),
  suspendedAt: z.string().nullable(),
});
export type TenantView = z.infer<typeof tenantView>;

export interface Actor {
  actor: string;
  requestId: string;
}

export interface TenantKeyGenerator {
  tenantId(): string;
  keyId(): string;
  apiKey(tenantId: string): string;
}

export const randomKeys: TenantKeyGenerator = {
  tenantId: () => newTenantId(randomBytes),
  keyId: () => newKeyId(randomBytes),
  apiKey: (tenantId) => newApiKey(tenantId, randomBytes),
};

function view(doc: TenantDoc, contactEmail?: string): TenantView {
  return {
    id: doc.tenantId,
    name: doc.name,
    status: doc.status,
    supervisoryAuthority: doc.supervisoryAuthority,
    webhookUrl: doc.webhookUrl,
    ...(contactEmail !== undefined ? { contactEmail } : {}),
    apiKeyId: doc.apiKey.id,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    suspendedAt: doc.suspendedAt,
    offboardedAt: doc.offboardedAt,
  };
}

export async function createTenant(
  s: Services,
  input: CreateTenantInput,
  by: Actor,
  keys: TenantKeyGenerator = randomKeys,
): Promise<{ tenant: TenantView; apiKey: string }> {
  const tenantId = keys.tenantId();
  await s.keys.ensureTenantKeys(tenantId);
  const kek = await s.keys.currentKek(tenantId);
  const now = s.clock.now().toISOString();
  const apiKey = keys.apiKey(tenantId);
  const doc: TenantDoc = {
    id: tenantId,
    tenantId,
    type: "tenant",
    name: input.name,
    contactEmail: {
      kekVersion: kek.version,
      value: encryptField(kek.key, input.contactEmail, fieldAssociatedData(tenantId, tenantId, "contactEmail")),
    },
    supervisoryAuthority: authorityFor(input.supervisoryAuthority.country as AuthorityCountry, input.supervisoryAuthority.name),
    webhookUrl: input.webhookUrl ?? null,
    status: "active",
    kekVersion: kek.version,
    apiKey: { id: keys.keyId(), hash: hashApiKey(apiKey), createdAt: now },
    createdAt: now,
    updatedAt: now,
    suspendedAt: null,
    offboardedAt: null,
  };
  await s.tenants.create(doc);
  await s.audit.append({
    tenantId,
    actor: by.actor,
    action: "tenant.created",
    target: { type: "tenant", id: tenantId },
    requestId: by.requestId,
    details: { apiKeyId: doc.apiKey.id, kekVersion: kek.version },
  });
  return { tenant: view(doc), apiKey };
}

async function mustGet(s: Services, tenantId: string) {
  const doc = await s.tenants.get(tenantId);
  if (!doc) throw new AppError("not-found", "no tenant with this id");
  return doc;
}

/** The controller's contact address, decrypted (absent once the tenant was offboarded). For notices; never logged. */
export async function tenantContactEmail(s: Services, doc: TenantDoc): Promise<string | undefined> {
  if (!doc.contactEmail) return undefined;
  const kek = await s.keys.kek(doc.tenantId, doc.contactEmail.kekVersion);
  return decryptField(kek, doc.contactEmail.value, fieldAssociatedData(doc.tenantId, doc.tenantId, "contactEmail"));
}

export async function getTenant(s: Services, tenantId: string): Promise<TenantView> {
  const doc = await mustGet(s, tenantId);
  return view(doc, await tenantContactEmail(s, doc));
}

export async function listTenants(s: Services, limit: number, cursor?: string): Promise<{ items: TenantView[]; cursor?: string }> {
  const page = await s.tenants.list(limit, cursor);
  return { items: page.items.map((d) => view(d)), cursor: page.cursor };
}

/** Issues a new API key; the old one stops working at once. */
export async function rotateApiKey(s: Services, tenantId: string, by: Actor, keys: TenantKeyGenerator = randomKeys): Promise<{ apiKey: string; apiKeyId: string }> {
  const doc = await mustGet(s, tenantId);
  const apiKey = keys.apiKey(tenantId);
  const now = s.clock.now().toISOString();
  const next: TenantDoc = { ...withoutMeta(doc), apiKey: { id: keys.keyId(), hash: hashApiKey(apiKey), createdAt: now }, updatedAt: now };
  await s.tenants.replace(next, doc._etag);
  await s.audit.append({
    tenantId,
    actor: by.actor,
    action: "tenant.api-key-rotated",
    target: { type: "tenant", id: tenantId },
    requestId: by.requestId,
    details: { previousApiKeyId: doc.apiKey.id, apiKeyId: next.apiKey.id },
  });
  return { apiKey, apiKeyId: next.apiKey.id };
}

export async function changeTenantStatus(s: Services, tenantId: string, action: "suspend" | "reactivate", by: Actor): Promise<TenantView> {
  const doc = await mustGet(s, tenantId);
  if (doc.offboardedAt) throw new AppError("conflict", "the tenant was offboarded after its notice period; its data is gone");
  const offboardingFrom = doc.suspendedAt ? RETENTION_CLASSES["suspended-tenant"].dueAt({ suspendedAt: doc.suspendedAt }, s.settings) : null;
  if (action === "reactivate" && offboardingFrom && offboardingFrom.getTime() <= s.clock.now().getTime()) {
    throw new AppError("conflict", `the notice period ended at ${offboardingFrom.toISOString()}; the tenant's data is being deleted and it cannot be reactivated`);
  }
  const t = transitionTenant(doc.status, action);
  if (!t.ok) throw new AppError("conflict", t.reason);
  const now = s.clock.now().toISOString();
  const next: TenantDoc = { ...withoutMeta(doc), status: t.status, suspendedAt: t.status === "suspended" ? now : null, updatedAt: now };
  await s.tenants.replace(next, doc._etag);
  await s.audit.append({
    tenantId,
    actor: by.actor,
    action: action === "suspend" ? "tenant.suspended" : "tenant.reactivated",
    target: { type: "tenant", id: tenantId },
    requestId: by.requestId,
  });
  return view(next);
}
