/**
 * Key-encryption key versions only ever move forward: in the tenant document (whatever rotations run at once), with
 * either key provider (the local one, and Key Vault through the local REST fake), and in the re-wrap job (a batch
 * that read an older current version never moves a data key back down).
 * Queue workers are off: the tests run the re-wrap job themselves, so nothing runs that they did not start.
 */
import type { TokenCredential } from "@azure/core-auth";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { KeyVaultKeyProvider } from "../../../shared/keys/keyvault-key-provider";
import type { Services } from "../../../shared/services";
import { rewrapBatch, rotateTenantKek } from "../../../shared/usecases/key-rotation";
import { createTenant } from "../../../shared/usecases/tenants";
import { createUpload, getUpload } from "../../../shared/usecases/uploads";
import { startKeyVaultFake, type KeyVaultFake } from "../../fakes/keyvault-fake";
import { startTestApp, type TestApp } from "../../helpers/app";
import { uploadWith, download } from "../../helpers/uploads";

let t: TestApp;
let fake: KeyVaultFake;
beforeAll(async () => {
  t = await startTestApp({ queues: false });
  fake = await startKeyVaultFake();
});
afterAll(async () => {
  await t?.stop();
  await fake?.stop();
});

const credential: TokenCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }) };
const vaultProvider = () =>
  new KeyVaultKeyProvider(fake.url, credential, {
    clientOptions: { allowInsecureConnection: true, disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } },
  });
/** The app's services with Key Vault (the fake) as key provider: every store is the real one. */
const withVault = (keys = vaultProvider()): Services => ({ ...t.services, keys });
const operator = { actor: "admin", requestId: "00000000-0000-4000-8000-000000000000" };

async function historyOf(tenantId: string): Promise<{ current: string; versions: string[] | undefined }> {
  const doc = (await t.services.tenants.get(tenantId))! as { kekVersion: string; kekVersions?: string[] };
  return { current: doc.kekVersion, versions: doc.kekVersions };
}

describe("parallel rotations (local key provider, through the API)", () => {
  it("eight at once, three times over: every one takes effect in turn and the current version is the newest", async () => {
    const { tenantId } = await t.createTenant();
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(Array.from({ length: 8 }, () => t.admin("POST", `v1/admin/tenants/${tenantId}/kek/rotate`)));
      expect(results.map((r) => r.status)).toEqual(Array(8).fill(202));
      const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<{ previousVersion: string; version: string }>;
      // One after the other: each rotation's previous version is the one before it.
      const sorted = bodies.map((b) => [Number(b.previousVersion), Number(b.version)]).sort((a, b) => a[0]! - b[0]!);
      expect(sorted, `round ${round}`).toEqual(Array.from({ length: 8 }, (_, i) => [1 + round * 8 + i, 2 + round * 8 + i]));
      const newest = String(1 + (round + 1) * 8);
      expect(await historyOf(tenantId)).toEqual({ current: newest, versions: Array.from({ length: Number(newest) }, (_, i) => String(i + 1)) });
      expect((await t.services.keys.currentKek(tenantId)).version).toBe(newest);
      const status = (await (await t.admin("GET", `v1/admin/tenants/${tenantId}/kek`)).json()) as { currentVersion: string };
      expect(status.currentVersion).toBe(newest);
    }
  });

  it("uploads re-wrapped after parallel rotations end on the newest version and stay readable", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const uploads = [];
    for (let i = 0; i < 3; i++) uploads.push(await uploadWith(t, apiKey, 100 + i));
    await Promise.all(Array.from({ length: 8 }, () => t.admin("POST", `v1/admin/tenants/${tenantId}/kek/rotate`)));
    while ((await rewrapBatch(t.services, tenantId)).remaining);
    for (const u of uploads) {
      expect((await t.services.uploads.get(tenantId, u.id))!.dataKey!.kekVersion).toBe("9");
      expect((await download(t, apiKey, u.id)).body.equals(u.content)).toBe(true);
    }
  });
});

describe("a rotation that died holding the tenant's rotation lease", () => {
  it("holds up the next rotation only until its lease runs out", async () => {
    const { tenantId } = await t.createTenant();
    const { _etag, ...doc } = (await t.services.tenants.get(tenantId))!;
    const until = new Date(t.clock.now().getTime() + 2 * 60_000).toISOString();
    expect(await t.services.tenants.replace({ ...doc, kekRotation: { id: "died", until } }, _etag)).toBe(true);
    const start = t.clock.now().getTime();
    t.clock.set(start + 2 * 60_000 + 1);
    const res = await t.admin("POST", `v1/admin/tenants/${tenantId}/kek/rotate`);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ previousVersion: "1", version: "2" });
    expect((await t.services.tenants.get(tenantId))!.kekRotation).toBeNull();
    t.clock.set(start);
  });
});

describe("parallel rotations (Key Vault through the local REST fake)", () => {
  it("eight at once: the tenant's current version is the vault's newest, and its history is the vault's order", async () => {
    const s = withVault();
    const { tenant } = await createTenant(s, { name: "Vaulted", contactEmail: "dpo@vaulted.example", supervisoryAuthority: { country: "DK" } }, operator);
    const results = await Promise.all(Array.from({ length: 8 }, () => rotateTenantKek(s, tenant.id, operator)));
    const vault = fake.versions(`tenant-${tenant.id}-kek`).map((v) => v.version);
    expect(vault).toHaveLength(9);
    expect(await historyOf(tenant.id)).toEqual({ current: vault.at(-1), versions: vault });
    expect(new Set(results.map((r) => r.version)).size).toBe(8);
    for (const r of results) expect(vault.indexOf(r.previousVersion)).toBe(vault.indexOf(r.version) - 1);
    expect((await s.keys.currentKek(tenant.id)).version).toBe(vault.at(-1));
    // Another instance (a fresh provider) agrees.
    expect((await vaultProvider().currentKek(tenant.id)).version).toBe(vault.at(-1));
  });
});

describe("the re-wrap job", () => {
  it("never moves a data key down: a batch that read an older current version leaves a newer wrapping alone", async () => {
    const s = withVault();
    const { tenant } = await createTenant(s, { name: "Rewrapped", contactEmail: "dpo@rewrapped.example", supervisoryAuthority: { country: "DK" } }, operator);
    const tenantId = tenant.id;
    const v1 = (await t.services.tenants.get(tenantId))!.kekVersion;
    const caller = { tenantId, kekVersion: v1, actor: "key:test", requestId: operator.requestId };
    const { id } = await createUpload(s, caller, {
      senderReference: "ref",
      recipients: ["a@recipient.example"],
      dataSubjects: ["b@subject.example"],
      categories: ["contact"],
      fileName: "f.txt",
      contentType: "text/plain",
      size: 1,
    });
    const { version: v2 } = await rotateTenantKek(s, tenantId, operator);

    // A batch on another instance (its own provider, nothing cached) reads v2 as current, then waits on the vault
    // for the old key while the tenant moves on to v3 and another batch re-wraps the upload there.
    const release = fake.hold("GET", `/secrets/tenant-${tenantId}-kek/${v1}`, { requests: 1 });
    const slow = rewrapBatch(withVault(), tenantId);
    while (fake.count("GET", `/secrets/tenant-${tenantId}-kek/${v1}`) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const { version: v3 } = await rotateTenantKek(s, tenantId, operator);
    expect(await rewrapBatch(s, tenantId)).toMatchObject({ rewrapped: 1, version: v3 });
    expect((await t.services.uploads.get(tenantId, id))!.dataKey!.kekVersion).toBe(v3);
    release();
    expect(await slow).toMatchObject({ rewrapped: 0, version: v2 });

    expect((await t.services.uploads.get(tenantId, id))!.dataKey!.kekVersion, "the slow batch moved the key down").toBe(v3);
    expect((await getUpload(s, caller, id)).fileName).toBe("f.txt");
  });
});
