/**
 * Where tenants' key material lives. In Azure: Key Vault secrets (versioned), read with the app's managed
 * identity. Locally: derived in memory from LOCAL_MASTER_KEY. The rest of the code sees only this interface.
 *
 * Per tenant there are two secrets:
 * - the key-encryption key (KEK): 32 random bytes, versioned; wraps every data key and encrypted field.
 * - the lookup secret: 32 random bytes; HMAC key for finding data subjects by their normalised e-mail.
 */
export interface KekVersion {
  /** Opaque version id (Key Vault's secret version; a counter locally). Recorded beside every wrapped key. */
  readonly version: string;
  /** 32 bytes. Never logged, never stored outside the provider. */
  readonly key: Buffer;
}

export interface KeyProvider {
  /** Creates the tenant's KEK and lookup secret when they do not exist yet. Idempotent. */
  ensureTenantKeys(tenantId: string): Promise<void>;
  /** The KEK version new data keys are wrapped with. */
  currentKek(tenantId: string): Promise<KekVersion>;
  /** A specific KEK version, for unwrapping. Throws KeyNotFoundError when it does not exist. */
  kek(tenantId: string, version: string): Promise<Buffer>;
  /** Adds a new KEK version and makes it current. Older versions stay readable. */
  rotateKek(tenantId: string): Promise<KekVersion>;
  /** The tenant's lookup (HMAC) secret. */
  lookupSecret(tenantId: string): Promise<Buffer>;
  /** Removes all of a tenant's secrets (tenant offboarding). Idempotent. */
  deleteTenantKeys(tenantId: string): Promise<void>;
}

export class KeyNotFoundError extends Error {
  constructor(
    readonly tenantId: string,
    readonly what: string,
  ) {
    super(`key material not found: ${what} of tenant ${tenantId}`);
    this.name = "KeyNotFoundError";
  }
}

/** Tenant ids that may own key material: also valid inside Key Vault secret names (`tenant-<id>-kek`). */
export const KEY_TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,60}$/;

export const KEY_BYTES = 32;

export type SecretPurpose = "kek" | "lookup";

export class InvalidTenantIdError extends Error {
  constructor() {
    super(`invalid tenant id: must match ${KEY_TENANT_ID_PATTERN.source}`);
    this.name = "InvalidTenantIdError";
  }
}

/** The tenant's keys were deleted (offboarding); the id cannot own keys again. */
export class TenantKeysDeletedError extends Error {
  constructor(readonly tenantId: string) {
    super(`key material of tenant ${tenantId} was deleted; a deleted tenant id cannot be given new keys`);
    this.name = "TenantKeysDeletedError";
  }
}

/** A stored secret is not what this code writes (not 32 bytes of base64). Names the secret, never the value. */
export class KeyMaterialError extends Error {
  constructor(
    readonly secretName: string,
    readonly version: string | undefined,
    problem: string,
  ) {
    super(`secret ${secretName}${version ? ` (version ${version})` : ""} is not usable key material: ${problem}`);
    this.name = "KeyMaterialError";
  }
}

export function assertKeyTenantId(tenantId: string): void {
  if (typeof tenantId !== "string" || !KEY_TENANT_ID_PATTERN.test(tenantId)) throw new InvalidTenantIdError();
}

export function secretName(tenantId: string, purpose: SecretPurpose): string {
  assertKeyTenantId(tenantId);
  return `tenant-${tenantId}-${purpose}`;
}
