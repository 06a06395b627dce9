import type { TokenCredential } from "@azure/core-auth";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import { InvalidTenantIdError, KeyMaterialError, KeyNotFoundError, TenantKeysDeletedError } from "../../../shared/keys/key-provider";
import { KEY_CONTENT_TYPE, KeyVaultKeyProvider } from "../../../shared/keys/keyvault-key-provider";
import { startKeyVaultFake, type KeyVaultFake } from "../../fakes/keyvault-fake";

const credential: TokenCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }) };

/** Moves only when told to; shared by the provider's TTL and the fake's timestamps. */
const clock = {
  ms: Date.parse("2026-03-02T10:00:00Z"),
  now() {
    return new Date(this.ms);
  },
  advance(ms: number) {
    this.ms += ms;
  },
};

let fake: KeyVaultFake;
let tenantSeq = 0;
/** A fresh tenant id per test, so tests do not share vault state. */
let tenant: string;

function provider(ttlMs?: number): KeyVaultKeyProvider {
  return new KeyVaultKeyProvider(fake.url, credential, {
    clock,
    currentKekTtlMs: ttlMs,
    clientOptions: { allowInsecureConnection: true, disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } },
  });
}

beforeAll(async () => {
  // Small pages so listing versions has to follow nextLink.
  fake = await startKeyVaultFake({ pageSize: 2, clock: () => clock.now() });
});
afterAll(async () => {
  await fake?.stop();
});
beforeEach(() => {
  tenant = `tn-test-${++tenantSeq}`;
  clock.advance(1000);
});

describe("KeyVaultKeyProvider against the Key Vault fake", () => {
  it("answers the bearer challenge, then creates both secrets with content type and tags", async () => {
    const p = provider();
    await p.ensureTenantKeys(tenant);
    expect(fake.requests[0]).toMatchObject({ authorized: false, status: 401 });

    const [kek] = fake.versions(`tenant-${tenant}-kek`);
    const [lookup] = fake.versions(`tenant-${tenant}-lookup`);
    expect(Buffer.from(kek!.value, "base64")).toHaveLength(32);
    expect(Buffer.from(lookup!.value, "base64")).toHaveLength(32);
    expect(kek!.value).not.toBe(lookup!.value);
    expect(kek!.contentType).toBe(KEY_CONTENT_TYPE);
    expect(kek!.tags).toEqual({ purpose: "kek", tenant, "managed-by": "safedata" });
    expect(lookup!.tags).toEqual({ purpose: "lookup", tenant, "managed-by": "safedata" });
  });

  it("ensureTenantKeys is idempotent, also from another instance", async () => {
    await provider().ensureTenantKeys(tenant);
    await provider().ensureTenantKeys(tenant);
    const p = provider();
    await p.ensureTenantKeys(tenant);
    await p.ensureTenantKeys(tenant);
    expect(fake.versions(`tenant-${tenant}-kek`)).toHaveLength(1);
    expect(fake.versions(`tenant-${tenant}-lookup`)).toHaveLength(1);
    expect(fake.count("PUT", `/secrets/tenant-${tenant}-kek`)).toBe(1);
  });

  it("currentKek returns the stored KEK and its version", async () => {
    const p = provider();
    await p.ensureTenantKeys(tenant);
    const current = await provider().currentKek(tenant);
    const [stored] = fake.versions(`tenant-${tenant}-kek`);
    expect(current.version).toBe(stored!.version);
    expect(current.key.equals(Buffer.from(stored!.value, "base64"))).toBe(true);
  });

  it("rotation adds a version and makes it current; the old one stays readable", async () => {
    const p = provider();
    await p.ensureTenantKeys(tenant);
    const before = await p.currentKek(tenant);
    const rotated = await p.rotateKek(tenant);
    expect(rotated.version).not.toBe(before.version);
    expect(rotated.key.equals(before.key)).toBe(false);
    expect((await p.currentKek(tenant)).version).toBe(rotated.version);
    expect((await provider().currentKek(tenant)).version).toBe(rotated.version);
    expect((await provider().kek(tenant, before.version)).equals(before.key)).toBe(true);
    expect(fake.versions(`tenant-${tenant}-kek`)).toHaveLength(2);
  });

  it("another instance sees a rotation once its current-version TTL has passed", async () => {
    const a = provider(60_000);
    await a.ensureTenantKeys(tenant);
    const v1 = await a.currentKek(tenant);
    const v2 = await provider().rotateKek(tenant);
    clock.advance(30_000);
    expect((await a.currentKek(tenant)).version).toBe(v1.version);
    clock.advance(31_000);
    expect((await a.currentKek(tenant)).version).toBe(v2.version);
  });

  it("parallel rotations leave the newest version current, even when the vault answers them out of order", async () => {
    const p = provider(60_000);
    await p.ensureTenantKeys(tenant);
    const name = `tenant-${tenant}-kek`;
    // The first rotation's version is created first, but its answer arrives after the others'.
    const release = fake.hold("PUT", `/secrets/${name}`, { requests: 1 });
    const first = p.rotateKek(tenant);
    while (fake.count("PUT", `/secrets/${name}`) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const others = Array.from({ length: 7 }, () => p.rotateKek(tenant));
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    const rotated = await Promise.all([first, ...others]);

    const vault = fake.versions(name).map((v) => v.version);
    expect(vault).toHaveLength(9);
    expect(new Set(rotated.map((r) => r.version)).size).toBe(8);
    // Current is the vault's newest, on this instance (cached) and on a fresh one.
    expect((await p.currentKek(tenant)).version).toBe(vault.at(-1));
    expect((await provider().currentKek(tenant)).version).toBe(vault.at(-1));
    // Each rotation's answer is the newest version at the time it returned: in the vault's order.
    expect(rotated.map((r) => vault.indexOf(r.version)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("two instances rotating at once: after the current-version TTL both see the vault's newest", async () => {
    const a = provider(60_000);
    const b = provider(60_000);
    await a.ensureTenantKeys(tenant);
    await Promise.all([...Array.from({ length: 4 }, () => a.rotateKek(tenant)), ...Array.from({ length: 4 }, () => b.rotateKek(tenant))]);
    const newest = fake.versions(`tenant-${tenant}-kek`).at(-1)!.version;
    clock.advance(61_000);
    expect((await a.currentKek(tenant)).version).toBe(newest);
    expect((await b.currentKek(tenant)).version).toBe(newest);
  });

  it("rotating a tenant without keys is KeyNotFoundError and creates nothing", async () => {
    await expect(provider().rotateKek(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
    expect(fake.versions(`tenant-${tenant}-kek`)).toHaveLength(0);
  });

  it("unknown versions and tenants without keys are KeyNotFoundError", async () => {
    const p = provider();
    await expect(p.currentKek(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.lookupSecret(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
    await p.ensureTenantKeys(tenant);
    await expect(p.kek(tenant, "0".repeat(32))).rejects.toBeInstanceOf(KeyNotFoundError);
    fake.clearRequests();
    // Not a Key Vault version at all: refused without asking the vault.
    for (const bad of ["", "1", "../../deletedsecrets/x", "g".repeat(32)]) {
      await expect(p.kek(tenant, bad)).rejects.toBeInstanceOf(KeyNotFoundError);
    }
    expect(fake.requests).toHaveLength(0);
  });

  it("caches a version's bytes: repeated kek() asks the vault once", async () => {
    await provider().ensureTenantKeys(tenant);
    const [stored] = fake.versions(`tenant-${tenant}-kek`);
    const p = provider();
    const first = await p.kek(tenant, stored!.version);
    first.fill(0); // a caller wiping its copy must not damage the cache
    const again = await Promise.all([p.kek(tenant, stored!.version), p.kek(tenant, stored!.version)]);
    expect(again[0]!.equals(Buffer.from(stored!.value, "base64"))).toBe(true);
    expect(again[1]!.equals(again[0]!)).toBe(true);
    expect(fake.count("GET", `/secrets/tenant-${tenant}-kek/${stored!.version}`)).toBe(1);
  });

  it("caches the current version within the TTL", async () => {
    await provider().ensureTenantKeys(tenant);
    const p = provider(60_000);
    fake.clearRequests();
    await p.currentKek(tenant);
    await p.currentKek(tenant);
    await p.currentKek(tenant);
    expect(fake.count("GET", `/secrets/tenant-${tenant}-kek`)).toBe(1);
  });

  it("skips a disabled latest version: current is the newest enabled one (paging through versions)", async () => {
    const p = provider(0);
    await p.ensureTenantKeys(tenant);
    clock.advance(2000);
    const v2 = await p.rotateKek(tenant);
    clock.advance(2000);
    await p.rotateKek(tenant);
    clock.advance(2000);
    const v4 = await p.rotateKek(tenant);
    fake.setEnabled(`tenant-${tenant}-kek`, v4.version, false);
    const versions = fake.versions(`tenant-${tenant}-kek`);
    fake.setEnabled(`tenant-${tenant}-kek`, versions[2]!.version, false);
    fake.clearRequests();
    const current = await provider(0).currentKek(tenant);
    expect(current.version).toBe(v2.version);
    expect(current.key.equals(v2.key)).toBe(true);
    const listed = fake.requests.filter((r) => r.authorized && r.path === `/secrets/tenant-${tenant}-kek/versions`);
    expect(listed.map((r) => r.query.$skiptoken)).toEqual([undefined, "2"]);
    // A disabled latest version still means the secret exists: ensuring does not add a version.
    await provider().ensureTenantKeys(tenant);
    expect(fake.versions(`tenant-${tenant}-kek`)).toHaveLength(4);
  });

  it("the lookup secret is stable, and the oldest version wins if a second one appears", async () => {
    const p = provider();
    await p.ensureTenantKeys(tenant);
    const lookup = await p.lookupSecret(tenant);
    expect(lookup).toHaveLength(32);
    clock.advance(5000);
    fake.seedVersion(`tenant-${tenant}-lookup`, Buffer.alloc(32, 7).toString("base64"));
    expect((await provider().lookupSecret(tenant)).equals(lookup)).toBe(true);
    expect((await p.lookupSecret(tenant)).equals(lookup)).toBe(true);
  });

  it("rejects stored values that are not 32 bytes of base64, without quoting them", async () => {
    const name = `tenant-${tenant}-kek`;
    fake.seedVersion(name, "c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLXNob3J0");
    const err = await provider().currentKek(tenant).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyMaterialError);
    expect(String((err as Error).message)).toContain(name);
    expect(String((err as Error).message)).not.toContain("c2VjcmV0");
  });

  it("deleteTenantKeys soft-deletes both secrets, is idempotent, and nothing is readable afterwards", async () => {
    const p = provider();
    await p.ensureTenantKeys(tenant);
    const current = await p.currentKek(tenant);
    await p.lookupSecret(tenant);

    await p.deleteTenantKeys(tenant);
    expect(fake.secretNames()).not.toContain(`tenant-${tenant}-kek`);
    expect(fake.deletedSecret(`tenant-${tenant}-kek`)?.versions).toHaveLength(1);
    expect(fake.deletedSecret(`tenant-${tenant}-lookup`)).toBeDefined();

    await expect(p.kek(tenant, current.version)).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.currentKek(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.lookupSecret(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.deleteTenantKeys(tenant)).resolves.toBeUndefined();
    await expect(provider().deleteTenantKeys(`${tenant}-never-created`)).resolves.toBeUndefined();
    // The names stay taken while soft-deleted: the tenant id cannot get keys again.
    await expect(p.ensureTenantKeys(tenant)).rejects.toBeInstanceOf(TenantKeysDeletedError);
  });

  it("keys deleted by another instance stop working here once the key-material TTL has passed", async () => {
    const here = provider();
    await here.ensureTenantKeys(tenant);
    const current = await here.currentKek(tenant);
    await here.lookupSecret(tenant);
    await provider().deleteTenantKeys(tenant); // offboarding, run on another instance

    clock.advance(14 * 60_000); // within 15 minutes the cached copies still serve
    expect((await here.kek(tenant, current.version)).equals(current.key)).toBe(true);
    clock.advance(2 * 60_000);
    await expect(here.kek(tenant, current.version)).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(here.lookupSecret(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(here.currentKek(tenant)).rejects.toBeInstanceOf(KeyNotFoundError);
  });

  it("a key read that was under way when the keys were deleted is not cached", async () => {
    const setup = provider();
    await setup.ensureTenantKeys(tenant);
    const { version } = await setup.currentKek(tenant);
    const p = provider();
    const path = `/secrets/tenant-${tenant}-kek/${version}`;
    const release = fake.hold("GET", path);
    const reading = p.kek(tenant, version);
    // The vault has read the key (its answer is held back) before the keys are deleted.
    while (fake.count("GET", path) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await p.deleteTenantKeys(tenant);
    release();
    await reading; // the caller that asked before the deletion gets its answer...
    // ...but nothing read before the deletion is served after it.
    await expect(p.kek(tenant, version)).rejects.toBeInstanceOf(KeyNotFoundError);
  });

  it("rejects tenant ids that are not valid in secret names, without calling the vault", async () => {
    const p = provider();
    fake.clearRequests();
    const bad = ["", "a", "A-tenant", "_system", "tn_x", "a/b", "-ab", "ab c", "a".repeat(62), "tn-\u00e9"];
    for (const id of bad) {
      await expect(p.ensureTenantKeys(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.currentKek(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.kek(id, "0".repeat(32))).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.rotateKek(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.lookupSecret(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.deleteTenantKeys(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
    }
    expect(fake.requests).toHaveLength(0);
  });
});
