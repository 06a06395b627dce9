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
 */
import { hkdfSync } from "node:crypto";
import {
  KEY_BYTES,
  KeyNotFoundError,
  TenantKeysDeletedError,
  assertKeyTenantId,
  type KekVersion,
  type KeyProvider,
  type SecretPurpose,
} from "./key-provider";

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
