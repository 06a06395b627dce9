import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { hashEntry } from "../../shared/domain/audit-chain";
import { entryId } from "../../shared/stores/audit-store";
import { startTestApp, type TestApp } from "../helpers/app";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

type Verify = { valid: boolean; entriesChecked: number; firstBroken?: { seq: number; entryId: string; reason: string } };

async function verify(key: string): Promise<Verify> {
  const res = await t.call("GET", "v1/audit/verify", { key });
  expect(res.status).toBe(200);
  return (await res.json()) as Verify;
}

async function appendMany(tenantId: string, n: number, concurrent: boolean) {
  const one = (i: number) =>
    t.services.audit.append({ tenantId, actor: "system:test", action: "upload.downloaded", target: { type: "upload", id: `u-${i}` }, details: { bytes: i } });
  if (concurrent) await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  else for (let i = 0; i < n; i++) await one(i);
}

describe("audit log", () => {
  it("verifies an intact chain", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await appendMany(tenantId, 5, false);
    const v = await verify(apiKey);
    expect(v).toMatchObject({ valid: true, entriesChecked: 6 });
  });

  it("does not fork under concurrent appends", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await appendMany(tenantId, 25, true);
    const v = await verify(apiKey);
    expect(v).toMatchObject({ valid: true, entriesChecked: 26 });
    const res = await t.call("GET", "v1/audit?limit=200", { key: apiKey });
    const items = ((await res.json()) as { items: Array<{ seq: number }> }).items;
    expect(items.map((i) => i.seq)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
  });

  it("reports the first broken entry when an entry is edited directly in Cosmos", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await appendMany(tenantId, 6, false);
    const item = t.raw.containers.audit.item(entryId(4), tenantId);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, details: { bytes: 9999 } });
    const v = await verify(apiKey);
    expect(v.valid).toBe(false);
    expect(v.firstBroken).toMatchObject({ seq: 4, entryId: entryId(4), reason: "hash-mismatch" });
  });

  it("verifies a long chain in parts, each checked against the hash the caller kept", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await appendMany(tenantId, 9, false);
    const part1 = (await (await t.call("GET", "v1/audit/verify?maxEntries=4", { key: apiKey })).json()) as Verify & { complete: boolean; next: { fromSeq: number; prevHash: string } };
    expect(part1).toMatchObject({ valid: true, complete: false, entriesChecked: 4, next: { fromSeq: 5 } });
    const part2 = (await (await t.call("GET", `v1/audit/verify?fromSeq=${part1.next.fromSeq}&prevHash=${part1.next.prevHash}`, { key: apiKey })).json()) as Verify & { complete: boolean };
    expect(part2).toMatchObject({ valid: true, complete: true, entriesChecked: 6 });
    const wrongAnchor = (await (await t.call("GET", `v1/audit/verify?fromSeq=5&prevHash=${"0".repeat(64)}`, { key: apiKey })).json()) as Verify;
    expect(wrongAnchor).toMatchObject({ valid: false, firstBroken: { seq: 5, reason: "broken-link" } });
    expect((await t.call("GET", "v1/audit/verify?fromSeq=5", { key: apiKey })).status).toBe(400);
    // Asking for more than one call checks is not an error: it checks what one call may.
    const big = await t.call("GET", "v1/audit/verify?maxEntries=50000", { key: apiKey });
    expect(big.status).toBe(200);
    expect(await big.json()).toMatchObject({ valid: true, complete: true, entriesChecked: 10 });
  });

  it("detects a deleted entry in the middle and at the end", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await appendMany(tenantId, 4, false);
    await t.raw.containers.audit.item(entryId(3), tenantId).delete();
    expect((await verify(apiKey)).firstBroken).toMatchObject({ seq: 3, reason: "missing-entries" });

    const other = await t.createTenant();
    await appendMany(other.tenantId, 3, false);
    await t.raw.containers.audit.item(entryId(4), other.tenantId).delete();
    expect((await verify(other.apiKey)).firstBroken).toMatchObject({ seq: 4, reason: "truncated" });
  });

  it("detects a rewritten entry even when its hash is recomputed (the next link breaks)", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await appendMany(tenantId, 3, false);
    const item = t.raw.containers.audit.item(entryId(2), tenantId);
    const { resource } = await item.read<Record<string, unknown>>();
    const forged = { ...resource!, actor: "admin" } as Record<string, unknown>;
    forged.hash = hashEntry(forged as never);
    await item.replace(forged);
    expect((await verify(apiKey)).firstBroken).toMatchObject({ seq: 3, reason: "broken-link" });
  });

  it("filters by time range and pages with a cursor", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now();
    await appendMany(tenantId, 3, false);
    t.clock.advance({ hours: 2 });
    const mid = t.clock.now();
    await appendMany(tenantId, 3, false);
    t.clock.advance({ hours: 2 });
    const inRange = await t.call("GET", `v1/audit?from=${mid.toISOString()}`, { key: apiKey });
    expect(((await inRange.json()) as { items: unknown[] }).items).toHaveLength(3);
    const early = await t.call("GET", `v1/audit?from=${start.toISOString()}&to=${mid.toISOString()}`, { key: apiKey });
    expect(((await early.json()) as { items: unknown[] }).items).toHaveLength(4);

    const p1 = (await (await t.call("GET", "v1/audit?limit=4", { key: apiKey })).json()) as { items: Array<{ seq: number }>; nextCursor: string };
    const p2 = (await (await t.call("GET", `v1/audit?limit=4&cursor=${p1.nextCursor}`, { key: apiKey })).json()) as { items: Array<{ seq: number }> };
    expect([...p1.items, ...p2.items].map((i) => i.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);

    const bad = await t.call("GET", "v1/audit?from=yesterday", { key: apiKey });
    expect(bad.status).toBe(400);
    const reversed = await t.call("GET", `v1/audit?from=${mid.toISOString()}&to=${start.toISOString()}`, { key: apiKey });
    expect(reversed.status).toBe(400);
    const forgedCursor = await t.call("GET", "v1/audit?cursor=bm90LWEtY3Vyc29y", { key: apiKey });
    expect(forgedCursor.status).toBe(400);
  });

  it("appends a once-entry exactly once, however many writers race for it", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const event = { tenantId, actor: "system:test", action: "retention.receipt" as const, target: { type: "sweep", id: "sw-race" } };
    const results = await Promise.all(Array.from({ length: 8 }, () => t.services.audit.appendOnce(event, "receipt:sw-race")));
    const seqs = new Set(results.filter((r) => r !== undefined));
    expect(seqs.size).toBe(1);
    expect(await t.services.audit.appendOnce(event, "receipt:sw-race")).toBe([...seqs][0]);
    const { items } = (await (await t.call("GET", "v1/audit", { key: apiKey })).json()) as { items: Array<{ action: string }> };
    expect(items.filter((e) => e.action === "retention.receipt")).toHaveLength(1);
    expect(((await (await t.call("GET", "v1/audit/verify", { key: apiKey })).json()) as { valid: boolean }).valid).toBe(true);
  });

  it("keeps personal data out of entries", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", { name: "Private Co", contactEmail: "secret.person@private.example", supervisoryAuthority: { country: "NL" } });
    const { tenant } = (await res.json()) as { tenant: { id: string } };
    const { resources } = await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenant.id }] })
      .fetchAll();
    expect(JSON.stringify(resources)).not.toContain("secret.person");
  });
});
