/**
 * Who is calling. Tenant calls carry `Authorization: Bearer <api key>`: the key names its tenant, the stored
 * hash is compared in constant time, and nothing in the request can point at another tenant. Operator calls
 * carry the admin key from settings.
 */
import type { HttpRequest } from "@azure/functions";
import { matchesHash, parseApiKey, secretsEqual } from "../domain/tenant";
import type { Services } from "../services";
import { AppError } from "../errors";
import { HttpError } from "./problem";

export interface TenantPrincipal {
  readonly kind: "tenant";
  readonly tenantId: string;
  readonly keyId: string;
  /** The tenant's current KEK version, as of this request. */
  readonly kekVersion: string;
  /** How the audit log names this caller. */
  readonly actor: string;
  /** The request being served (every audit entry it causes names it). */
  readonly requestId: string;
}

export interface AdminPrincipal {
  readonly kind: "admin";
  readonly actor: "admin";
  readonly requestId: string;
}

export type AuthMode = "tenant" | "admin" | "none";
export type PrincipalFor<A extends AuthMode> = A extends "tenant" ? TenantPrincipal : A extends "admin" ? AdminPrincipal : undefined;

/**
 * `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]` (RFC 9110 §11.4): the scheme is case-insensitive
 * (§11.1) and RFC 6750 §2.1 separates it from the token by one or more spaces (not tabs). The key itself is visible
 * ASCII; which keys exist is decided by comparing hashes, not by this pattern.
 */
const BEARER = /^Bearer +([\x21-\x7e]{1,512})$/i;

function bearer(request: HttpRequest): string {
  const header = request.headers.get("authorization");
  if (header === null || header.trim() === "") {
    throw new HttpError("unauthenticated", "send an API key as 'Authorization: Bearer <key>'", { "www-authenticate": 'Bearer realm="safedata"' });
  }
  const m = BEARER.exec(header.trim());
  if (!m) {
    throw new HttpError("unauthenticated", "the Authorization header must be 'Bearer <key>'", { "www-authenticate": 'Bearer realm="safedata", error="invalid_request"' });
  }
  return m[1]!;
}

const invalidKey = () =>
  new HttpError("unauthenticated", "the API key is not valid", { "www-authenticate": 'Bearer realm="safedata", error="invalid_token"' });

export async function authenticateTenant(request: HttpRequest, services: Services, requestId: string): Promise<TenantPrincipal> {
  const key = bearer(request);
  const parsed = parseApiKey(key);
  if (!parsed) throw invalidKey();
  const tenant = await services.tenants.get(parsed.tenantId);
  // Compare even when the tenant does not exist, so timing does not reveal which tenant ids exist.
  const storedHash = tenant?.apiKey.hash ?? "0".repeat(64);
  const ok = matchesHash(key, storedHash);
  if (!tenant || !ok) throw invalidKey();
  if (tenant.status !== "active") {
    throw new AppError("tenant-suspended", "this tenant is suspended; contact the service operator");
  }
  return { kind: "tenant", tenantId: tenant.tenantId, keyId: tenant.apiKey.id, kekVersion: tenant.kekVersion, actor: `key:${tenant.apiKey.id}`, requestId };
}

export function authenticateAdmin(request: HttpRequest, services: Services, requestId: string): AdminPrincipal {
  const key = bearer(request);
  if (!secretsEqual(key, services.settings.adminApiKey)) {
    throw new HttpError("unauthenticated", "the admin key is not valid", { "www-authenticate": 'Bearer realm="safedata-admin", error="invalid_token"' });
  }
  return { kind: "admin", actor: "admin", requestId };
}
