/**
 * Keys the HTTP layer derives for one caller's scope, so that what it stores or hands out about a request (idempotency
 * fingerprints, page cursors) is keyed per tenant and means nothing to anyone without the service's secrets.
 *
 * No new secret is needed: a tenant's keys derive from the tenant's lookup secret (the per-tenant HMAC secret the key
 * provider already keeps, in Key Vault in Azure; it never rotates and is deleted when the tenant is offboarded, which
 * leaves everything keyed with it unlinkable), the operators' scope from the `ADMIN_API_KEY` setting (so rotating the
 * admin key invalidates the operators' cursors and in-flight idempotency records, nothing else).
 *
 * Derivation: HKDF-SHA256 (RFC 5869) with a fixed salt and info `safedata/http/<purpose>/<scope>`, 32 bytes. The
 * purpose and scope in the info keep every derived key apart from the others and from the secret's own use.
 */
import { hkdfSync } from "node:crypto";
import type { Services } from "../services";

export type KeyPurpose = "idempotency" | "cursor";

/** Whose request it is: a tenant's, or the operators' (admin key and anonymous routes). */
export type KeyScope = { readonly kind: "tenant"; readonly tenantId: string } | { readonly kind: "operators" };

const SALT = Buffer.from("safedata/http-scope-keys/v1", "utf8");
export const SCOPE_KEY_BYTES = 32;

/** The scope's label as it appears in stored records (`_admin` is the operators' idempotency partition). */
export function scopeLabel(scope: KeyScope): string {
  return scope.kind === "tenant" ? scope.tenantId : "_admin";
}

/**
 * A 32-byte key for `purpose` in `scope`. Tenant scopes read the lookup secret through the key provider (cached there);
 * throws what the provider throws when the tenant has no keys.
 */
export async function scopeKey(services: Services, scope: KeyScope, purpose: KeyPurpose): Promise<Buffer> {
  const root = scope.kind === "tenant" ? await services.keys.lookupSecret(scope.tenantId) : Buffer.from(services.settings.adminApiKey, "utf8");
  const info = Buffer.from(`safedata/http/${purpose}/${scopeLabel(scope)}`, "utf8");
  return Buffer.from(hkdfSync("sha256", root, SALT, info, SCOPE_KEY_BYTES));
}
