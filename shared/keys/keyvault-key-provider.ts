/**
 * Tenants' key material in Azure Key Vault secrets, read and written with the app's managed identity.
 *
 * Per tenant, two secrets (see key-provider.ts): `tenant-<id>-kek` (versioned; rotating sets a new value, which
 * Key Vault keeps as a new version) and `tenant-<id>-lookup`. Values are 32 random bytes in base64; tags say what a
 * secret is for and whose it is (never personal data).
 *
 * Caching: the bytes of one secret version never change, but they are kept in memory only for a bounded time
 * (`keyMaterialTtlMs`, default 15 minutes), so that keys deleted by another instance (offboarding) stop working
 * everywhere within that time, not at the next restart. Which version is current is re-read after a shorter TTL, so
 * a rotation elsewhere is seen soon. Callers get copies, so zeroing a returned key does not damage the cache.
 *
 * The current version only moves forward here. Version ids are random and creation times have one-second
 * resolution, so answers cannot be ordered after the fact: instead, rotations of one tenant on this instance run
 * one at a time (each new version is then the newest this instance made), and a read of the current version that
 * was under way when a rotation finished is not remembered (it may describe the vault from before the rotation).
 * Across instances the tenant document orders rotations (shared/domain/kek-versions.ts).
 *
 * The identity needs get, list, set and delete on secrets (RBAC: "Key Vault Secrets Officer" on the vault).
 */
import { randomBytes } from "node:crypto";
import type { TokenCredential } from "@azure/core-auth";
import { SecretClient, type SecretClientOptions } from "@azure/keyvault-secrets";
import type { Settings } from "../config/settings";
import { statusOf } from "../stores/sdk-errors";
import { azureCredential } from "../identity";
import {
  KEY_BYTES,
  KeyMaterialError,
  KeyNotFoundError,
  TenantKeysDeletedError,
  assertKeyTenantId,
  secretName,
  type KekVersion,
  type KeyProvider,
  type SecretPurpose,
} from "./key-provider";

export const KEY_CONTENT_TYPE = "application/octet-stream; encoding=base64";

export interface KeyVaultKeyProviderOptions {
  /** How long the current KEK version is trusted before the vault is asked again. Default 60 000 ms. */
  readonly currentKekTtlMs?: number;
  /**
   * How long key bytes (a KEK version, the lookup secret) are kept in memory before the vault is asked again.
   * Bounds how long keys deleted elsewhere stay usable in this process. Default 900 000 ms (15 minutes).
   */
  readonly keyMaterialTtlMs?: number;
  /** Time source for the TTLs (tests move it). Default: the system clock. */
  readonly clock?: { now(): Date };
  /**
   * Passed to the SecretClient. Tests against a local fake set `allowInsecureConnection: true` and
   * `disableChallengeResourceVerification: true`; production leaves both unset.
   */
  readonly clientOptions?: SecretClientOptions;
}

type KeyVaultSettings = Extract<Settings["keys"], { provider: "keyvault" }>;

/** Key Vault secret versions are 32 hex characters; anything else cannot exist and is never sent to the vault. */
const VERSION_PATTERN = /^[0-9a-f]{32}$/i;
const BASE64_32_BYTES = /^[A-Za-z0-9+/]{43}=$/;


export class KeyVaultKeyProvider implements KeyProvider {
  /** Builds the provider from settings with the app's user-assigned managed identity. */
  static fromSettings(settings: KeyVaultSettings, options: KeyVaultKeyProviderOptions = {}): KeyVaultKeyProvider {
    const credential = azureCredential(settings.clientId);
    return new KeyVaultKeyProvider(settings.vaultUri, credential, options);
  }

  private readonly client: SecretClient;
  private readonly ttlMs: number;
  private readonly materialTtlMs: number;
  private readonly clock: { now(): Date };
  /** `<secret name>/<version>` → key bytes, until a time. Versions are immutable, but may be deleted elsewhere. */
  private readonly versionBytes = new ExpiringMap<Buffer>(() => this.now());
  /** tenant → current KEK version and when to ask again. */
  private readonly current = new Map<string, { version: string; until: number }>();
  private readonly lookups = new ExpiringMap<Buffer>(() => this.now());
  private readonly generations = new Map<string, number>();
  /** Bumped when a rotation here makes a version current: reads of the current version begun before are stale. */
  private readonly currentEpochs = new Map<string, number>();
  /** The rotation of each tenant running on this instance (the next one waits for it). */
  private readonly rotations = new Map<string, Promise<unknown>>();
  /** Loads in flight, so concurrent callers share one round trip. */
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(vaultUri: string, credential: TokenCredential, options: KeyVaultKeyProviderOptions = {}) {
    this.client = new SecretClient(vaultUri, credential, options.clientOptions ?? {});
    this.ttlMs = options.currentKekTtlMs ?? 60_000;
    this.materialTtlMs = options.keyMaterialTtlMs ?? 15 * 60_000;
    this.clock = options.clock ?? { now: () => new Date() };
  }

  async ensureTenantKeys(tenantId: string): Promise<void> {
    const kekName = secretName(tenantId, "kek");
    if (!(await this.exists(kekName))) {
      const created = await this.create(tenantId, "kek");
      this.rememberCurrent(tenantId, created.version);
    }
    const lookupName = secretName(tenantId, "lookup");
    if (!(await this.exists(lookupName))) await this.create(tenantId, "lookup");
  }

  async currentKek(tenantId: string): Promise<KekVersion> {
    const kekName = secretName(tenantId, "kek");
    const cached = this.current.get(tenantId);
    if (cached && cached.until > this.now()) {
      const bytes = this.versionBytes.get(`${kekName}/${cached.version}`);
      if (bytes) return { version: cached.version, key: Buffer.from(bytes) };
    }
    const version = await this.singleFlight(`current:${tenantId}:${this.generationOf(tenantId)}`, () => this.loadCurrentVersion(tenantId));
    return { version, key: await this.kek(tenantId, version) };
  }

  async kek(tenantId: string, version: string): Promise<Buffer> {
    const kekName = secretName(tenantId, "kek");
    if (typeof version !== "string" || !VERSION_PATTERN.test(version)) throw new KeyNotFoundError(tenantId, `KEK version ${version}`);
    const key = `${kekName}/${version}`;
    const cached = this.versionBytes.get(key);
    if (cached) return Buffer.from(cached);
    const bytes = await this.singleFlight(`version:${key}:${this.generationOf(tenantId)}`, async () => {
      const generation = this.generationOf(tenantId);
      const secret = await this.client.getSecret(kekName, { version }).catch((err: unknown) => {
        if (statusOf(err) === 404) throw new KeyNotFoundError(tenantId, `KEK version ${version}`);
        throw err;
      });
      const value = decodeKey(kekName, version, secret.value);
      if (this.generationOf(tenantId) === generation) this.versionBytes.set(key, value, this.materialTtlMs);
      return value;
    });
    return Buffer.from(bytes);
  }

  async rotateKek(tenantId: string): Promise<KekVersion> {
    assertKeyTenantId(tenantId);
    // One rotation of a tenant at a time on this instance: answers arriving out of order cannot then make an older
    // version current after a newer one.
    const before = this.rotations.get(tenantId) ?? Promise.resolve();
    const run = before
      .catch(() => undefined)
      .then(async () => {
        // Only a tenant that has keys can rotate; this also keeps rotation from creating the first version.
        await this.currentKek(tenantId);
        const created = await this.create(tenantId, "kek");
        this.currentEpochs.set(tenantId, this.currentEpochOf(tenantId) + 1);
        this.rememberCurrent(tenantId, created.version);
        return { version: created.version, key: Buffer.from(created.key) };
      });
    this.rotations.set(tenantId, run);
    try {
      return await run;
    } finally {
      if (this.rotations.get(tenantId) === run) this.rotations.delete(tenantId);
    }
  }

  async lookupSecret(tenantId: string): Promise<Buffer> {
    const name = secretName(tenantId, "lookup");
    const cached = this.lookups.get(tenantId);
    if (cached) return Buffer.from(cached);
    const bytes = await this.singleFlight(`lookup:${tenantId}:${this.generationOf(tenantId)}`, async () => {
      const generation = this.generationOf(tenantId);
      // The oldest enabled version wins. The lookup secret is never rotated, but two instances racing through
      // ensureTenantKeys could both create a version; picking the oldest makes every instance agree on one.
      const versions: { version: string; created: number }[] = [];
      for await (const p of this.client.listPropertiesOfSecretVersions(name)) {
        if (p.enabled !== false && p.version) versions.push({ version: p.version, created: p.createdOn?.getTime() ?? 0 });
      }
      versions.sort((a, b) => a.created - b.created || (a.version < b.version ? -1 : 1));
      const oldest = versions[0];
      if (!oldest) throw new KeyNotFoundError(tenantId, "lookup secret");
      const secret = await this.client.getSecret(name, { version: oldest.version }).catch((err: unknown) => {
        if (statusOf(err) === 404) throw new KeyNotFoundError(tenantId, "lookup secret");
        throw err;
      });
      const value = decodeKey(name, oldest.version, secret.value);
      if (this.generationOf(tenantId) === generation) this.lookups.set(tenantId, value, this.materialTtlMs);
      return value;
    });
    return Buffer.from(bytes);
  }

  async deleteTenantKeys(tenantId: string): Promise<void> {
    assertKeyTenantId(tenantId);
    for (const purpose of ["kek", "lookup"] as const) {
      const name = secretName(tenantId, purpose);
      try {
        // Soft delete only: the vault has purge protection, and the secret is unreadable from now on.
        await this.client.beginDeleteSecret(name);
      } catch (err) {
        // 404: already deleted or never created. 409: a deletion of it is already under way.
        const status = statusOf(err);
        if (status !== 404 && status !== 409) throw err;
      }
    }
    this.forget(tenantId);
  }

  private async loadCurrentVersion(tenantId: string): Promise<string> {
    const name = secretName(tenantId, "kek");
    const generation = this.generationOf(tenantId);
    const epoch = this.currentEpochOf(tenantId);
    let version: string | undefined;
    try {
      const secret = await this.client.getSecret(name);
      version = secret.properties.version;
      const bytes = version ? decodeKey(name, version, secret.value) : undefined;
      if (version && bytes && this.generationOf(tenantId) === generation) this.versionBytes.set(`${name}/${version}`, bytes, this.materialTtlMs);
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) throw new KeyNotFoundError(tenantId, "current KEK");
      // 403 on the latest version means it was disabled (or access is denied, which the listing will show):
      // fall back to the newest version that is still enabled.
      if (status !== 403) throw err;
      version = await this.newestEnabledVersion(tenantId, name);
    }
    if (!version) throw new KeyNotFoundError(tenantId, "current KEK");
    // A rotation here finished while this read was under way: what it read may be older; keep the rotation's.
    if (this.currentEpochOf(tenantId) !== epoch) return this.current.get(tenantId)?.version ?? version;
    if (this.generationOf(tenantId) === generation) this.rememberCurrent(tenantId, version);
    return version;
  }

  private async newestEnabledVersion(tenantId: string, name: string): Promise<string> {
    let newest: { version: string; created: number } | undefined;
    for await (const p of this.client.listPropertiesOfSecretVersions(name)) {
      if (p.enabled === false || !p.version) continue;
      const created = p.createdOn?.getTime() ?? 0;
      if (!newest || created > newest.created || (created === newest.created && p.version > newest.version)) {
        newest = { version: p.version, created };
      }
    }
    if (!newest) throw new KeyNotFoundError(tenantId, "current KEK (no enabled version)");
    return newest.version;
  }

  private async exists(name: string): Promise<boolean> {
    try {
      await this.client.getSecret(name);
      return true;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) return false;
      // 403: the latest version is disabled (the secret exists, and creating another would rotate it), or access
      // is denied. Listing the versions tells which: it fails too when access is denied.
      if (status === 403) {
        for await (const _version of this.client.listPropertiesOfSecretVersions(name)) return true;
      }
      throw err;
    }
  }

  private async create(tenantId: string, purpose: SecretPurpose): Promise<{ version: string; key: Buffer }> {
    const name = secretName(tenantId, purpose);
    const key = randomBytes(KEY_BYTES);
    try {
      const secret = await this.client.setSecret(name, key.toString("base64"), {
        contentType: KEY_CONTENT_TYPE,
        tags: { purpose, tenant: tenantId, "managed-by": "safedata" },
      });
      const version = secret.properties.version;
      if (!version) throw new Error(`Key Vault returned no version for secret ${name}`);
      this.versionBytes.set(`${name}/${version}`, Buffer.from(key), this.materialTtlMs);
      return { version, key };
    } catch (err) {
      // The name is held by a soft-deleted secret: this tenant was offboarded.
      if (statusOf(err) === 409) throw new TenantKeysDeletedError(tenantId);
      throw err;
    }
  }

  private rememberCurrent(tenantId: string, version: string): void {
    this.current.set(tenantId, { version, until: this.now() + this.ttlMs });
  }

  private currentEpochOf(tenantId: string): number {
    return this.currentEpochs.get(tenantId) ?? 0;
  }

  /** Bumped when a tenant's keys are deleted, so a load that was under way then does not cache what it read. */
  private generationOf(tenantId: string): number {
    return this.generations.get(tenantId) ?? 0;
  }

  private forget(tenantId: string): void {
    this.generations.set(tenantId, this.generationOf(tenantId) + 1);
    this.current.delete(tenantId);
    this.lookups.delete(tenantId);
    const prefix = `${secretName(tenantId, "kek")}/`;
    this.versionBytes.deleteWhere((k) => k.startsWith(prefix));
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private singleFlight<T>(key: string, load: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = load().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}

/** A map whose entries lapse after their time to live; lapsed entries are wiped and dropped when met. */
class ExpiringMap<V extends Buffer> {
  private readonly entries = new Map<string, { value: V; until: number }>();
  constructor(private readonly now: () => number) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until > this.now()) return e.value;
    e.value.fill(0);
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, ttlMs: number): void {
    this.entries.set(key, { value, until: this.now() + ttlMs });
  }

  delete(key: string): void {
    this.entries.get(key)?.value.fill(0);
    this.entries.delete(key);
  }

  deleteWhere(match: (key: string) => boolean): void {
    for (const k of [...this.entries.keys()]) if (match(k)) this.delete(k);
  }
}

function decodeKey(name: string, version: string | undefined, value: string | undefined): Buffer {
  if (typeof value !== "string" || !BASE64_32_BYTES.test(value)) {
    throw new KeyMaterialError(name, version, `expected ${KEY_BYTES} bytes, base64-encoded`);
  }
  return Buffer.from(value, "base64");
}
