/**
 * What an Idempotency-Key leaves behind: every stored fingerprint is keyed per tenant (an HMAC, never a bare hash that
 * is equal across tenants for equal requests and can be checked against a guessed body), and the stored answer that a
 * replay returns is encrypted, since it can hold what the caller sent (a tenant's contact address).
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { baseUpload } from "../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

interface StoredRecord {
  id: string;
  tenantId: string;
  requestHash: string;
  response: unknown;
}

async function recordsOf(scope: string): Promise<StoredRecord[]> {
  const { resources } = await t.raw.containers.idempotency.items
    .query<StoredRecord>({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: scope }] })
    .fetchAll();
  return resources;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

describe("stored fingerprints", () => {
  it("differ between tenants for the same key and the same body, and are no bare hash of either", async () => {
    const a = await t.createTenant();
    const b = await t.createTenant();
    const body = { ...baseUpload, size: 10 };
    const text = JSON.stringify(body);
    for (const tenant of [a, b]) {
      const res = await t.call("POST", "v1/uploads", { key: tenant.apiKey, json: body, headers: { "idempotency-key": "same-key-1" } });
      expect(res.status).toBe(201);
      const replay = await t.call("POST", "v1/uploads", { key: tenant.apiKey, json: body, headers: { "idempotency-key": "same-key-1" } });
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
    }
    const [ra] = await recordsOf(a.tenantId);
    const [rb] = await recordsOf(b.tenantId);
    expect(ra && rb).toBeTruthy();
    expect(ra!.requestHash).not.toBe(rb!.requestHash);
    // Neither the body's hash nor the key's can be recomputed from what a reader of the database knows.
    for (const r of [ra!, rb!]) {
      const stored = JSON.stringify(r);
      expect(stored).not.toContain(sha256(text));
      expect(stored).not.toContain(sha256(`POST\nv1/uploads{}\n${text}`));
      expect(r.id).not.toBe(sha256(`${r.tenantId}\nsame-key-1`));
      expect(stored).not.toContain("same-key-1");
    }
  });

  it("are keyed for the operators' scope too, and the stored answer does not show the contact address", async () => {
    const input = { name: "Fingerprint ApS", contactEmail: "dpo@fingerprint.example", supervisoryAuthority: { country: "DK" } };
    const first = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "admin-key-1" });
    expect(first.status).toBe(201);
    const replay = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "admin-key-1" });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const replayed = (await replay.json()) as { tenant: { contactEmail?: string }; apiKey: string | null };
    expect(replayed.apiKey).toBeNull();
    const records = await recordsOf("_admin");
    expect(records.length).toBeGreaterThan(0);
    const stored = JSON.stringify(records);
    expect(stored).not.toContain("dpo@fingerprint.example");
    expect(stored).not.toContain("Fingerprint ApS");
    expect(stored).not.toContain(sha256(JSON.stringify(input)));
  });

  it("still tells a reused key with another body from a retry", async () => {
    const { apiKey } = await t.createTenant();
    const first = await t.call("POST", "v1/uploads", { key: apiKey, json: { ...baseUpload, size: 1 }, headers: { "idempotency-key": "reuse-2" } });
    expect(first.status).toBe(201);
    const other = await t.call("POST", "v1/uploads", { key: apiKey, json: { ...baseUpload, size: 2 }, headers: { "idempotency-key": "reuse-2" } });
    expect(other.status).toBe(422);
  });

  it("answers a stored answer that fails its integrity check as integrity-error, never as a replay of something else", async () => {
    const { apiKey, tenantId } = await t.createTenant();
    const body = { ...baseUpload, size: 3 };
    expect((await t.call("POST", "v1/uploads", { key: apiKey, json: body, headers: { "idempotency-key": "tamper-1" } })).status).toBe(201);
    const [record] = await recordsOf(tenantId);
    const damaged = { ...record!, response: typeof record!.response === "string" ? record!.response.slice(0, -4) + "AAAA" : record!.response };
    await t.raw.containers.idempotency.items.upsert(damaged);
    const replay = await t.call("POST", "v1/uploads", { key: apiKey, json: body, headers: { "idempotency-key": "tamper-1" } });
    expect(replay.status).toBe(500);
    expect(((await replay.json()) as { type: string }).type).toBe("urn:safedata:problem:integrity-error");
  });
});
