/**
 * Tenant administration: what an operator can do to a tenant (a data controller), each step recorded in that
 * tenant's audit log. API keys are shown once, when created or rotated, and stored only as a hash. The controller's
 * contact address is an encrypted field under the tenant's key-encryption key.
 */
import { randomBytes } from "node:crypto";
import { decryptField, encryptField, fieldAssociatedData } from "../crypto";
import type { Language } from "../domain/language";
import { RETENTION_CLASSES } from "../domain/retention";
import {
  authorityFor,
  hashApiKey,
  newApiKey,
  newKeyId,
  newTenantId,
  transitionTenant,
  DEFAULT_TIME_ZONE,
  type AuthorityCountry,
  type TenantStatus,
} from "../domain/tenant";
import { canonicalTimeZone } from "../domain/time";
import { AppError } from "../errors";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { StoredTenant, TenantDoc } from "../stores/tenant-store";
import { recordAudit, type Actor } from "./audit-trail";
import { tenantRecord, withIntegrityContext } from "./integrity";
import { storedStateChanged } from "./running-downloads";
import { checkWebhookUrl, createWebhookEndpoint } from "./webhooks";

export interface CreateTenantInput {
  name: string;
  contactEmail: string;
  supervisoryAuthority: { country: AuthorityCountry; name?: string };
  /** The tenant's first webhook endpoint (checked again with `webhookUrlProblem`, shared/domain/webhooks.ts). */
  webhookUrl?: string;
  /** Default "en". */
  language?: Language;
  /** An IANA time zone; default Europe/Copenhagen. */
  timeZone?: string;
}

/** What an operator may change on a tenant (PATCH). */
export interface TenantChanges {
  name?: string;
  language?: Language;
  timeZone?: string;
}

export interface TenantView {
  id: string;
  name: string;
  status: TenantStatus;
  offboardedAt: string | null;
  supervisoryAuthority: { country: AuthorityCountry; name: string };
  language: Language;
  timeZone: string;
  webhookUrl: string | null;
  /** Only in single-tenant responses. */
  contactEmail?: string;
  apiKeyId: string;
  createdAt: string;
  updatedAt: string;
  suspendedAt: string | null;
}

/** Operator actions are made by a request. */
export type OperatorActor = Actor & { requestId: string };

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

const onTenant = (tenantId: string) => ({ type: "tenant" as const, id: tenantId });

function view(doc: TenantDoc, webhookUrl: string | null, contactEmail?: string): TenantView {
  return {
    id: doc.tenantId,
    name: doc.name,
    status: doc.status,
    supervisoryAuthority: doc.supervisoryAuthority,
    language: doc.language,
    timeZone: doc.timeZone,
    webhookUrl,
    ...(contactEmail !== undefined ? { contactEmail } : {}),
    apiKeyId: doc.apiKey.id,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    suspendedAt: doc.suspendedAt,
    offboardedAt: doc.offboardedAt,
  };
}

const webhookUrlOf = async (s: Services, tenantId: string) => (await s.webhooks.getEndpoint(tenantId))?.url ?? null;

/**
 * The canonical IANA spelling of a given time zone (what is stored: "europe/copenhagen" is kept as
 * "Europe/Copenhagen"), undefined when none was given. Errors: validation-failed when it is not a time zone.
 */
function checkTimeZone(timeZone: string | undefined): string | undefined {
  if (timeZone === undefined) return undefined;
  const canonical = canonicalTimeZone(timeZone);
  if (canonical === undefined) {
    throw new AppError("validation-failed", "timeZone must be an IANA time zone like Europe/Copenhagen", { errors: [{ path: "timeZone", message: "must be an IANA time zone" }] });
  }
  return canonical;
}

/**
 * Creates the tenant, its keys in the key provider, its first API key and, when a webhook URL is given, its first
 * webhook endpoint; the API key and the endpoint's signing secret are returned this once. Errors: validation-failed.
 */
export async function createTenant(
  s: Services,
  input: CreateTenantInput,
  by: OperatorActor,
  keys: TenantKeyGenerator = randomKeys,
): Promise<{ tenant: TenantView; apiKey: string; webhookSecret: string | null }> {
  const timeZone = checkTimeZone(input.timeZone);
  if (input.webhookUrl !== undefined) checkWebhookUrl(s, input.webhookUrl, "webhookUrl");
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
    supervisoryAuthority: authorityFor(input.supervisoryAuthority.country, input.supervisoryAuthority.name),
    language: input.language ?? "en",
    timeZone: timeZone ?? DEFAULT_TIME_ZONE,
    status: "active",
    kekVersion: kek.version,
    kekVersions: [kek.version],
    kekRotation: null,
    apiKey: { id: keys.keyId(), hash: hashApiKey(apiKey), createdAt: now },
    createdAt: now,
    updatedAt: now,
    suspendedAt: null,
    offboardedAt: null,
  };
  await s.tenants.create(doc);
  await recordAudit(s, tenantId, by, "tenant.created", onTenant(tenantId), { apiKeyId: doc.apiKey.id, kekVersion: kek.version, language: doc.language });
  const webhook = input.webhookUrl !== undefined ? await createWebhookEndpoint(s, { tenantId, kekVersion: kek.version, ...by }, input.webhookUrl) : null;
  return { tenant: view(doc, webhook?.url ?? null), apiKey, webhookSecret: webhook?.secret ?? null };
}

async function mustGet(s: Services, tenantId: string): Promise<StoredTenant> {
  const doc = await s.tenants.get(tenantId);
  if (!doc) throw new AppError("not-found", "no tenant with this id");
  return doc;
}

/**
 * The controller's contact address, decrypted (absent once the tenant was offboarded). For notices; never logged.
 * Errors: IntegrityError naming the tenant and the field when the stored value was tampered with.
 */
export async function tenantContactEmail(s: Services, doc: TenantDoc): Promise<string | undefined> {
  if (!doc.contactEmail) return undefined;
  const { kekVersion, value } = doc.contactEmail;
  const kek = await s.keys.kek(doc.tenantId, kekVersion);
  return withIntegrityContext(tenantRecord(doc.tenantId, "contactEmail"), () => decryptField(kek, value, fieldAssociatedData(doc.tenantId, doc.tenantId, "contactEmail")));
}

/**
 * One tenant with its decrypted contact address. Reading master data is audited (the data-processing agreement,
 * Appendix C.h): when the address is decrypted, one `tenant.read` entry naming the tenant and the field is written
 * to its chain before the answer leaves. Errors: not-found; integrity-error when the stored field was tampered with.
 */
export async function getTenant(s: Services, tenantId: string, by: OperatorActor): Promise<TenantView> {
  const doc = await mustGet(s, tenantId);
  const contactEmail = await tenantContactEmail(s, doc);
  if (contactEmail !== undefined) await recordAudit(s, tenantId, by, "tenant.read", onTenant(tenantId), { fields: ["contactEmail"] });
  return view(doc, await webhookUrlOf(s, tenantId), contactEmail);
}

export async function listTenants(s: Services, limit: number, cursor?: string): Promise<{ items: TenantView[]; nextCursor?: string }> {
  const page = await s.tenants.list(limit, cursor);
  const items = await Promise.all(page.items.map(async (d) => view(d, await webhookUrlOf(s, d.tenantId))));
  return { items, nextCursor: page.cursor };
}

/**
 * Changes a tenant's name, language or time zone (PATCH), audited with the names of the fields changed (never their
 * values). Errors: not-found, validation-failed (time zone), conflict (changed meanwhile, or offboarded).
 */
export async function updateTenant(s: Services, tenantId: string, given: TenantChanges, by: OperatorActor): Promise<TenantView> {
  const changes: TenantChanges = { ...given, timeZone: checkTimeZone(given.timeZone) };
  const doc = await mustGet(s, tenantId);
  if (doc.offboardedAt) throw new AppError("conflict", "the tenant was offboarded after its notice period; its data is gone");
  const fields = (Object.keys(changes) as Array<keyof TenantChanges>).filter((k) => changes[k] !== undefined && changes[k] !== doc[k]);
  if (fields.length === 0) return view(doc, await webhookUrlOf(s, tenantId));
  const next: TenantDoc = { ...withoutMeta(doc), ...Object.fromEntries(fields.map((k) => [k, changes[k]])), updatedAt: s.clock.now().toISOString() };
  if (!(await s.tenants.replace(next, doc._etag))) throw changedMeanwhile();
  await recordAudit(s, tenantId, by, "tenant.updated", onTenant(tenantId), { fields: fields.sort() });
  return view(next, await webhookUrlOf(s, tenantId));
}

const changedMeanwhile = () => new AppError("conflict", "the tenant was changed by another request; retry");

/** Issues a new API key; the old one stops working at once. Errors: not-found, conflict (changed meanwhile). */
export async function rotateApiKey(s: Services, tenantId: string, by: OperatorActor, keys: TenantKeyGenerator = randomKeys): Promise<{ apiKey: string; apiKeyId: string }> {
  const doc = await mustGet(s, tenantId);
  const apiKey = keys.apiKey(tenantId);
  const now = s.clock.now().toISOString();
  const next: TenantDoc = { ...withoutMeta(doc), apiKey: { id: keys.keyId(), hash: hashApiKey(apiKey), createdAt: now }, updatedAt: now };
  if (!(await s.tenants.replace(next, doc._etag))) throw changedMeanwhile();
  await recordAudit(s, tenantId, by, "tenant.api-key-rotated", onTenant(tenantId), { previousApiKeyId: doc.apiKey.id, apiKeyId: next.apiKey.id });
  return { apiKey, apiKeyId: next.apiKey.id };
}

/**
 * Suspends or reactivates a tenant. A suspended tenant whose notice period has ended is being offboarded and cannot
 * come back. Errors: not-found, conflict.
 */
export async function changeTenantStatus(s: Services, tenantId: string, action: "suspend" | "reactivate", by: OperatorActor): Promise<TenantView> {
  const doc = await mustGet(s, tenantId);
  if (doc.offboardedAt) throw new AppError("conflict", "the tenant was offboarded after its notice period; its data is gone");
  // One instant decides and is recorded: read twice, a notice period ending between the reads let a reactivation
  // through that was recorded after the end.
  const at = s.clock.now();
  const offboardingFrom = doc.suspendedAt ? RETENTION_CLASSES["suspended-tenant"].dueAt({ suspendedAt: doc.suspendedAt }, s.settings) : null;
  if (action === "reactivate" && offboardingFrom && offboardingFrom.getTime() <= at.getTime()) {
    throw new AppError("conflict", `the notice period ended at ${offboardingFrom.toISOString()}; the tenant's data is being deleted and it cannot be reactivated`);
  }
  const t = transitionTenant(doc.status, action);
  if (!t.ok) throw new AppError("conflict", t.reason);
  const now = at.toISOString();
  const next: TenantDoc = { ...withoutMeta(doc), status: t.status, suspendedAt: t.status === "suspended" ? now : null, updatedAt: now };
  if (!(await s.tenants.replace(next, doc._etag))) throw changedMeanwhile();
  // The tenant's downloads running on this instance look again before their next chunk (a suspension stops them).
  storedStateChanged(tenantId);
  await recordAudit(s, tenantId, by, action === "suspend" ? "tenant.suspended" : "tenant.reactivated", onTenant(tenantId));
  return view(next, await webhookUrlOf(s, tenantId));
}
