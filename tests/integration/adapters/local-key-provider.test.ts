import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import { KeyNotFoundError } from "../../../shared/keys/key-provider";
import { InvalidTenantIdError, TenantKeysDeletedError } from "../../../shared/keys/key-provider";
import { LocalKeyProvider } from "../../../shared/keys/local-key-provider";

const master = Buffer.alloc(32, 1);
const otherMaster = Buffer.alloc(32, 2);

describe("LocalKeyProvider", () => {
  it("is deterministic for a master key, and separates tenants, purposes and master keys", async () => {
    const a = new LocalKeyProvider(master);
    const b = new LocalKeyProvider(Buffer.from(master));
    const c = new LocalKeyProvider(otherMaster);
    for (const p of [a, b, c]) {
      await p.ensureTenantKeys("tn-one");
      await p.ensureTenantKeys("tn-two");
    }
    const ka = await a.currentKek("tn-one");
    expect(ka.version).toBe("1");
    expect(ka.key).toHaveLength(32);
    expect((await b.currentKek("tn-one")).key.equals(ka.key)).toBe(true);
    expect((await b.lookupSecret("tn-one")).equals(await a.lookupSecret("tn-one"))).toBe(true);
    expect((await c.currentKek("tn-one")).key.equals(ka.key)).toBe(false);
    expect((await a.currentKek("tn-two")).key.equals(ka.key)).toBe(false);
    expect((await a.lookupSecret("tn-one")).equals(ka.key)).toBe(false);
  });

  it("derives distinct 32-byte keys for any two valid tenants (property)", async () => {
    const tenantId = fc.stringMatching(/^[a-z0-9][a-z0-9-]{1,60}$/);
    await fc.assert(
      fc.asyncProperty(tenantId, tenantId, async (t1, t2) => {
        fc.pre(t1 !== t2);
        const p = new LocalKeyProvider(master);
        await p.ensureTenantKeys(t1);
        await p.ensureTenantKeys(t2);
        const k1 = (await p.currentKek(t1)).key;
        const k2 = (await p.currentKek(t2)).key;
        return k1.length === 32 && !k1.equals(k2) && !k1.equals(await p.lookupSecret(t1));
      }),
      { numRuns: 50 },
    );
  });

  it("ensureTenantKeys is idempotent", async () => {
    const p = new LocalKeyProvider(master);
    await p.ensureTenantKeys("tn-one");
    await p.rotateKek("tn-one");
    await p.ensureTenantKeys("tn-one");
    expect((await p.currentKek("tn-one")).version).toBe("2");
  });

  it("rotation counts versions up; older versions stay readable and the lookup secret does not change", async () => {
    const p = new LocalKeyProvider(master);
    await p.ensureTenantKeys("tn-one");
    const v1 = await p.currentKek("tn-one");
    const lookup = await p.lookupSecret("tn-one");
    const v2 = await p.rotateKek("tn-one");
    expect(v2.version).toBe("2");
    expect(v2.key.equals(v1.key)).toBe(false);
    expect((await p.currentKek("tn-one")).version).toBe("2");
    expect((await p.kek("tn-one", "1")).equals(v1.key)).toBe(true);
    expect((await p.kek("tn-one", "2")).equals(v2.key)).toBe(true);
    expect((await p.lookupSecret("tn-one")).equals(lookup)).toBe(true);
    // Another instance that rotated the same number of times has the same keys.
    const q = new LocalKeyProvider(master);
    await q.ensureTenantKeys("tn-one");
    expect((await q.rotateKek("tn-one")).key.equals(v2.key)).toBe(true);
  });

  it("parallel rotations count up without gaps or repeats, and the newest is current", async () => {
    const p = new LocalKeyProvider(master);
    await p.ensureTenantKeys("tn-one");
    const rotated = await Promise.all(Array.from({ length: 8 }, () => p.rotateKek("tn-one")));
    expect(rotated.map((r) => Number(r.version)).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await p.currentKek("tn-one")).version).toBe("9");
  });

  it("unknown versions and tenants without keys are KeyNotFoundError", async () => {
    const p = new LocalKeyProvider(master);
    await expect(p.currentKek("tn-one")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.lookupSecret("tn-one")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.rotateKek("tn-one")).rejects.toBeInstanceOf(KeyNotFoundError);
    await p.ensureTenantKeys("tn-one");
    await p.rotateKek("tn-one");
    for (const v of ["3", "0", "01", "-1", "1.0", "abc", ""]) {
      await expect(p.kek("tn-one", v)).rejects.toBeInstanceOf(KeyNotFoundError);
    }
  });

  it("after deleteTenantKeys nothing of the tenant is readable, deletion is idempotent, and the id cannot get keys again", async () => {
    const p = new LocalKeyProvider(master);
    await p.ensureTenantKeys("tn-one");
    await p.ensureTenantKeys("tn-two");
    await p.rotateKek("tn-one");
    await p.deleteTenantKeys("tn-one");
    await expect(p.currentKek("tn-one")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.kek("tn-one", "1")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.kek("tn-one", "2")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.lookupSecret("tn-one")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.rotateKek("tn-one")).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(p.deleteTenantKeys("tn-one")).resolves.toBeUndefined();
    await expect(p.ensureTenantKeys("tn-one")).rejects.toBeInstanceOf(TenantKeysDeletedError);
    await expect(p.currentKek("tn-two")).resolves.toMatchObject({ version: "1" });
  });

  it("rejects invalid tenant ids and master keys of the wrong size", async () => {
    const p = new LocalKeyProvider(master);
    for (const id of ["", "a", "Upper", "_system", "a/b", "-ab", "a".repeat(62)]) {
      await expect(p.ensureTenantKeys(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.kek(id, "1")).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(p.deleteTenantKeys(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
    }
    expect(() => new LocalKeyProvider(Buffer.alloc(16))).toThrow(RangeError);
  });
});
