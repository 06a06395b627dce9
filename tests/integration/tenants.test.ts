import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { RETENTION_CLASSES } from "../../shared/domain/retention";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

describe("tenants (admin API)", () => {
  it("creates a tenant, shows the key once, stores only its hash", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", {
      name: "Acme ApS",
      contactEmail: "dpo@acme.example",
      supervisoryAuthority: { country: "DK" },
      webhookUrl: "https://hooks.acme.example/safedata",
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const body = (await res.json()) as { tenant: { id: string; supervisoryAuthority: { name: string }; status: string }; apiKey: string };
    expect(body.tenant.supervisoryAuthority.name).toBe("Datatilsynet");
    expect(body.tenant.status).toBe("active");
    expect(body.apiKey).toMatch(/^sdk_tn-[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);

    const stored = await t.services.tenants.get(body.tenant.id);
    expect(JSON.stringify(stored)).not.toContain(body.apiKey);
    expect(JSON.stringify(stored)).not.toContain("dpo@acme.example");

    const got = await t.admin("GET", `v1/admin/tenants/${body.tenant.id}`);
    expect(((await got.json()) as { contactEmail: string }).contactEmail).toBe("dpo@acme.example");

    const audit = await t.call("GET", "v1/audit", { key: body.apiKey });
    expect(audit.status).toBe(200);
    const entries = ((await audit.json()) as { items: Array<{ action: string }> }).items;
    expect(entries.map((e) => e.action)).toEqual(["tenant.created", "webhook.endpoint-set", "tenant.read"]);
  });

  it("audits every read of the decrypted contact address (the DPA's Appendix C.h: access to master data is logged)", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    type Entry = { action: string; actor: string; requestId: string | null; target: { type: string; id: string } | null; details: Record<string, unknown> };
    const log = async () => ((await (await t.call("GET", "v1/audit?limit=200", { key: apiKey })).json()) as { items: Entry[] }).items;

    const requestId = randomUUID();
    const got = await t.admin("GET", `v1/admin/tenants/${tenantId}`, undefined, { "x-request-id": requestId });
    expect(got.status).toBe(200);
    const reads = (await log()).filter((e) => e.action === "tenant.read");
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({ actor: "admin", requestId, target: { type: "tenant", id: tenantId }, details: { fields: ["contactEmail"] } });
    expect(JSON.stringify(reads[0])).not.toContain("@");

    // A HEAD runs the same read (and decrypts), so it is audited too; list pages carry no contact address and are not.
    expect((await t.admin("HEAD", `v1/admin/tenants/${tenantId}`)).status).toBe(200);
    expect((await t.admin("GET", "v1/admin/tenants?limit=200")).status).toBe(200);
    expect((await log()).filter((e) => e.action === "tenant.read")).toHaveLength(2);
    // Writes answer without the contact address, so they decrypt nothing and add no read entry.
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`)).status).toBe(200);
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/reactivate`)).status).toBe(200);
    expect((await log()).filter((e) => e.action === "tenant.read")).toHaveLength(2);
  });

  it("lists tenants in pages without contact addresses", async () => {
    for (let i = 0; i < 3; i++) await t.createTenant();
    const first = await t.admin("GET", "v1/admin/tenants?limit=2");
    const page1 = (await first.json()) as { items: Array<{ id: string; contactEmail?: string }>; nextCursor?: string };
    expect(page1.items).toHaveLength(2);
    expect(page1.items.every((i) => i.contactEmail === undefined)).toBe(true);
    expect(page1.nextCursor).toBeTruthy();
    const second = await t.admin("GET", `v1/admin/tenants?limit=2&cursor=${page1.nextCursor}`);
    const page2 = (await second.json()) as { items: Array<{ id: string }> };
    expect(page2.items.length).toBeGreaterThan(0);
    expect(page2.items.map((i) => i.id)).not.toContain(page1.items[0]!.id);
    const forged = await t.admin("GET", "v1/admin/tenants?cursor=bm90LWEtY3Vyc29y");
    expect(forged.status).toBe(400);
  });

  it("rotates a key: the old key stops working, the new one works", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    expect((await t.call("GET", "v1/audit", { key: apiKey })).status).toBe(200);
    const res = await t.admin("POST", `v1/admin/tenants/${tenantId}/api-key`);
    expect(res.status).toBe(200);
    const { apiKey: newKey } = (await res.json()) as { apiKey: string };
    expect(newKey).not.toBe(apiKey);
    expect((await t.call("GET", "v1/audit", { key: apiKey })).status).toBe(401);
    const audit = await t.call("GET", "v1/audit", { key: newKey });
    expect(((await audit.json()) as { items: Array<{ action: string }> }).items.map((e) => e.action)).toEqual([
      "tenant.created",
      "tenant.api-key-rotated",
    ]);
  });

  it("suspends a tenant (403 for its key) and reactivates it", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`)).status).toBe(200);
    const blocked = await t.call("GET", "v1/audit", { key: apiKey });
    expect(blocked.status).toBe(403);
    expect(((await blocked.json()) as { type: string }).type).toBe("urn:safedata:problem:tenant-suspended");
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`)).status).toBe(409);
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/reactivate`)).status).toBe(200);
    expect((await t.call("GET", "v1/audit", { key: apiKey })).status).toBe(200);
  });

  it("refuses admin routes without the admin key, and tenant keys on admin routes", async () => {
    const { apiKey } = await t.createTenant();
    expect((await t.call("GET", "v1/admin/tenants")).status).toBe(401);
    expect((await t.call("GET", "v1/admin/tenants", { key: apiKey })).status).toBe(401);
    expect((await t.call("GET", "v1/admin/tenants", { key: "x".repeat(60) })).status).toBe(401);
  });

  it("answers 404 for unknown and malformed tenant ids", async () => {
    expect((await t.admin("GET", "v1/admin/tenants/tn-aaaaaaaaaaaaaaaa")).status).toBe(404);
    expect((await t.admin("GET", "v1/admin/tenants/not-a-tenant")).status).toBe(404);
    expect((await t.admin("POST", "v1/admin/tenants/tn-aaaaaaaaaaaaaaaa/api-key")).status).toBe(404);
  });

  it("validates creation input and says what is wrong", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", { name: "", contactEmail: "nope", supervisoryAuthority: { country: "US" }, extra: 1 });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const body = (await res.json()) as { errors: Array<{ path: string }> };
    const paths = body.errors.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["name", "contactEmail", "supervisoryAuthority.country"]));
    expect(JSON.stringify(body)).not.toContain("nope");
  });

  it.each([
    ["credentials in the URL", "https://user:secret@hooks.acme.example/x", "user name or password"],
    ["an IPv4 literal", "https://10.0.0.5/x", "IP address"],
    ["an IPv6 literal", "https://[::1]/x", "IP address"],
    ["localhost", "https://localhost/x", "public host"],
    ["a single-label name", "https://intranet/x", "public host"],
    ["a local name", "https://printer.local/x", "public host"],
    ["plain http", "http://hooks.acme.example/x", ""],
    ["a decimal IPv4 spelling", "https://2130706433/x", "IP address"],
    ["an IPv4-mapped IPv6 literal", "https://[::ffff:7f00:1]/x", "IP address"],
    ["an empty label", "https://hooks.acme.example../x", "well-formed"],
  ])("refuses a webhook URL with %s", async (_name, webhookUrl, says) => {
    const res = await t.admin("POST", "v1/admin/tenants", { name: "Hooked", contactEmail: "dpo@hooked.example", supervisoryAuthority: { country: "DK" }, webhookUrl });
    expect(res.status).toBe(422);
    const body = (await res.json()) as { errors: Array<{ path: string; message: string }> };
    const err = body.errors.find((e) => e.path === "webhookUrl");
    expect(err).toBeDefined();
    if (says) expect(err!.message).toContain(says);
    expect(JSON.stringify(body)).not.toContain("secret");
  });

  it("accepts public webhook hosts, including ports, international names and names that start like hex", async () => {
    for (const webhookUrl of ["https://0x.example/hook", "https://hooks.acme.example:8443/x", "https://bücher.example/x", "https://hooks.acme.example./x"]) {
      const res = await t.admin("POST", "v1/admin/tenants", { name: "Hooked", contactEmail: "dpo@hooked.example", supervisoryAuthority: { country: "DK" }, webhookUrl });
      expect(res.status, webhookUrl).toBe(201);
    }
  });
});

describe("idempotency", () => {
  it("returns the first result for a retried POST, and redacts the key in the replay", async () => {
    const input = { name: "Retry Ltd", contactEmail: "dpo@retry.example", supervisoryAuthority: { country: "IE" } };
    const first = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "create-retry-1" });
    expect(first.status).toBe(201);
    const a = (await first.json()) as { tenant: { id: string }; apiKey: string };
    const again = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "create-retry-1" });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const b = (await again.json()) as { tenant: { id: string }; apiKey: string | null };
    expect(b.tenant.id).toBe(a.tenant.id);
    expect(b.apiKey).toBeNull();
    const list = (await (await t.admin("GET", "v1/admin/tenants?limit=200")).json()) as { items: Array<{ name: string }> };
    expect(list.items.filter((i) => i.name === "Retry Ltd")).toHaveLength(1);
  });

  it("rejects the same key with a different body (422) and malformed keys (400)", async () => {
    const input = { name: "Key Reuse", contactEmail: "dpo@reuse.example", supervisoryAuthority: { country: "SE" } };
    expect((await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "reuse-1" })).status).toBe(201);
    const different = await t.admin("POST", "v1/admin/tenants", { ...input, name: "Other" }, { "idempotency-key": "reuse-1" });
    expect(different.status).toBe(422);
    expect(((await different.json()) as { type: string }).type).toBe("urn:safedata:problem:idempotency-key-reused");
    const bad = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "has space" });
    expect(bad.status).toBe(400);
  });

  it("creates one tenant when the same request races itself", async () => {
    const input = { name: "Race Ltd", contactEmail: "dpo@race.example", supervisoryAuthority: { country: "FI" } };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "race-1" })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    const list = (await (await t.admin("GET", "v1/admin/tenants?limit=200")).json()) as { items: Array<{ name: string }> };
    expect(list.items.filter((i) => i.name === "Race Ltd")).toHaveLength(1);
  });
});

describe("a reactivation is decided at one instant", () => {
  it("is refused, or recorded before the notice period ended, however long the making of it takes", async () => {
    // Every read of the service clock moves it ten minutes on (a request made slowly, in steps). Starting just after a
    // suspended tenant's notice period ended and at each of two dozen points before, the end falls between some two
    // reads of the clock while the reactivation is decided: it must then be refused, never recorded after the end.
    const STEP = 10 * 60_000;
    const resume = t.clock.now();
    const read = t.clock.now.bind(t.clock);
    const seen: Array<{ from: number; status: number; updatedAt?: string; offboardingFrom: string }> = [];
    try {
      for (let k = 0; k <= 24; k++) {
        t.clock.set(resume);
        const { tenantId } = await t.createTenant(`Reactivated ${k}`);
        const suspended = await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`);
        expect(suspended.status).toBe(200);
        const { suspendedAt } = (await suspended.json()) as { suspendedAt: string };
        const offboardingFrom = RETENTION_CLASSES["suspended-tenant"].dueAt({ suspendedAt }, t.services.settings)!;
        t.clock.set(offboardingFrom.getTime() - k * STEP + STEP / 2);
        t.clock.now = () => {
          const at = read();
          t.clock.set(at.getTime() + STEP);
          return at;
        };
        try {
          const res = await t.admin("POST", `v1/admin/tenants/${tenantId}/reactivate`);
          const body = (await res.json()) as { updatedAt?: string };
          seen.push({ from: k, status: res.status, updatedAt: body.updatedAt, offboardingFrom: offboardingFrom.toISOString() });
        } finally {
          t.clock.now = read;
        }
      }
    } finally {
      t.clock.set(resume);
    }
    const late = seen.filter((r) => r.status === 200 && Date.parse(r.updatedAt!) >= Date.parse(r.offboardingFrom));
    expect(late).toEqual([]);
    // Both outcomes were reached, so the end did fall inside some decision.
    expect(new Set(seen.map((r) => r.status))).toEqual(new Set([200, 409]));
  });
});
