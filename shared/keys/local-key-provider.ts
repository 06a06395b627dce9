/**
 * Key material for local runs: every key is derived from LOCAL_MASTER_KEY with HKDF-SHA256, so a given master
 * key always yields the same keys. The KEK version counter and tenant deletions live in memory only, like the
 * rest of the local data (the local Cosmos server is in memory too).
 *
 * It mirrors the Key Vault provider where behaviour matters to callers: nothing exists before
 * ensureTenantKeys, unknown versions are KeyNotFoundError, and a deleted tenant's keys cannot be created again
 * (in Azure the soft-deleted secret names stay taken; here a re-created tenant would derive the very same keys and
 * bring crypto-shredded data back to life).
 *
 * This module also holds the rules both providers share (tenant id format, secret names, errors), because it has
 * no dependencies of its own.
 */
import { hkdfSync } from "node:crypto";
import { KeyNotFoundError, type KekVersion, type KeyProvider } from "./key-provider";

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

const HKDF_SALT = Buffer.from("safedata/local-key-provider/v1", "utf8");
const VERSION_PATTERN = /^[1-9][0-9]{0,8}$/;

export class LocalKeyProvider implements KeyProvider {
  private readonly masterKey: Buffer;
  /** Current KEK version per tenant that has keys. */
  private readonly current = new Map<string, number>();
  private readonly deleted = new Set<string>();

  constructor(masterKey: Buffer) {
    if (!Buffer.isBuffer(masterKey) || masterKey.length !== KEY_BYTES) {
      throw new RangeError(`LocalKeyProvider: the master key must be ${KEY_BYTES} bytes`);
    }
    this.masterKey = Buffer.from(masterKey);
  }

  async ensureTenantKeys(tenantId: string): Promise<void> {
    assertKeyTenantId(tenantId);
    if (this.deleted.has(tenantId)) throw new TenantKeysDeletedError(tenantId);
    if (!this.current.has(tenantId)) this.current.set(tenantId, 1);
  }

  async currentKek(tenantId: string): Promise<KekVersion> {
    const version = this.currentVersion(tenantId, "current KEK");
    return { version: String(version), key: this.derive(tenantId, "kek", version) };
  }

  async kek(tenantId: string, version: string): Promise<Buffer> {
    const current = this.currentVersion(tenantId, `KEK version ${version}`);
    const n = VERSION_PATTERN.test(version) ? Number(version) : NaN;
    if (!(n >= 1 && n <= current)) throw new KeyNotFoundError(tenantId, `KEK version ${version}`);
    return this.derive(tenantId, "kek", n);
  }

  async rotateKek(tenantId: string): Promise<KekVersion> {
    const next = this.currentVersion(tenantId, "current KEK") + 1;
    this.current.set(tenantId, next);
    return { version: String(next), key: this.derive(tenantId, "kek", next) };
  }

  async lookupSecret(tenantId: string): Promise<Buffer> {
    this.currentVersion(tenantId, "lookup secret");
    return this.derive(tenantId, "lookup", 1);
  }

  async deleteTenantKeys(tenantId: string): Promise<void> {
    assertKeyTenantId(tenantId);
    this.current.delete(tenantId);
    this.deleted.add(tenantId);
  }

  private currentVersion(tenantId: string, what: string): number {
    assertKeyTenantId(tenantId);
    const version = this.deleted.has(tenantId) ? undefined : this.current.get(tenantId);
    if (version === undefined) throw new KeyNotFoundError(tenantId, what);
    return version;
  }

  private derive(tenantId: string, purpose: SecretPurpose, version: number): Buffer {
    // The info string binds tenant, purpose and version, so no two of them share a key.
    const info = Buffer.from(`safedata/${purpose}/tenant=${tenantId}/version=${version}`, "utf8");
    return Buffer.from(hkdfSync("sha256", this.masterKey, HKDF_SALT, info, KEY_BYTES));
  }
}
