/**
 * A tenant's language and time zone (set at creation, changed with PATCH, audited), the webhook endpoint an operator
 * sets at creation (the tenant's first endpoint, its secret shown once), and the notices that follow the language.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { LOCAL_ONLY_BLOB_CONTAINERS } from "../../shared/config/resources";
import { startTestApp, type TestApp } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { expect } from "../helpers/expect";
import { download, uploadWith } from "../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const base = { name: "Dansk ApS", contactEmail: "dpo@dansk.example", supervisoryAuthority: { country: "DK" } };

async function auditActions(apiKey: string): Promise<Array<{ action: string; details: Record<string, unknown> }>> {
  return ((await (await t.call("GET", "v1/audit?limit=200", { key: apiKey })).json()) as { items: Array<{ action: string; details: Record<string, unknown> }> }).items;
}

describe("tenant language and time zone", () => {
  it("default to English and Copenhagen, and are set at creation", async () => {
    const plain = (await (await t.admin("POST", "v1/admin/tenants", base)).json()) as { tenant: Record<string, unknown> };
    expect(plain.tenant).toMatchObject({ language: "en", timeZone: "Europe/Copenhagen" });
    const res = await t.admin("POST", "v1/admin/tenants", { ...base, language: "da", timeZone: "Europe/Amsterdam" });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { tenant: Record<string, unknown> }).tenant).toMatchObject({ language: "da", timeZone: "Europe/Amsterdam" });
  });

  it.each([
    [{ language: "de" }, "language"],
    [{ timeZone: "Europe/Atlantis" }, "timeZone"],
    [{ timeZone: "" }, "timeZone"],
  ])("refuses %j at creation with 422 naming the field", async (change, path) => {
    const res = await t.admin("POST", "v1/admin/tenants", { ...base, ...change });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { errors: Array<{ path: string }> }).errors.map((e) => e.path)).toContain(path);
  });

  it("change with PATCH, audited with the fields' names and not their values", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const res = await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { language: "da", timeZone: "America/New_York" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: tenantId, language: "da", timeZone: "America/New_York" });
    expect((await t.services.tenants.get(tenantId))).toMatchObject({ language: "da", timeZone: "America/New_York" });
    const updated = (await auditActions(apiKey)).filter((e) => e.action === "tenant.updated");
    expect(updated).toHaveLength(1);
    expect(updated[0]!.details).toEqual({ fields: ["language", "timeZone"] });
    // The same values again change nothing and log nothing.
    await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { language: "da" });
    expect((await auditActions(apiKey)).filter((e) => e.action === "tenant.updated")).toHaveLength(1);
  });

  it("PATCH refuses an empty change, unknown fields, a bad zone, an unknown tenant, and a tenant key", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    expect((await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, {})).status).toBe(422);
    expect((await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { contactEmail: "x@y.example" })).status).toBe(422);
    expect((await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { timeZone: "Mars/Olympus" })).status).toBe(422);
    expect((await t.admin("PATCH", "v1/admin/tenants/tn-aaaaaaaaaaaaaaaa", { language: "da" })).status).toBe(404);
    expect((await t.call("PATCH", `v1/admin/tenants/${tenantId}`, { key: apiKey, json: { language: "da" } })).status).toBe(401);
  });

  it("decide the language and time zone of the first-download notice", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { language: "da", timeZone: "Europe/Copenhagen" });
    const { id } = await uploadWith(t, apiKey, 10, { notifyOnFirstDownload: "sender@dansk.example" });
    await download(t, apiKey, id);
    t.host.pokeQueues();
    const outbox = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
    let mail: { subject: string; text: string; html: string } | undefined;
    await eventually(async () => {
      for await (const b of outbox.listBlobsFlat()) {
        if (b.name.endsWith(`first-download-${id}.json`)) mail = JSON.parse((await outbox.getBlobClient(b.name).downloadToBuffer()).toString());
      }
      expect(mail).toBeDefined();
    });
    expect(mail!.subject).toBe(`Din upload ${id} er blevet hentet`);
    expect(mail!.html).toContain('lang="da"');
    // The service clock's date, in Danish, in Copenhagen time.
    expect(mail!.text).toMatch(/\d{1,2}\. (januar|februar|marts|april|maj|juni|juli|august|september|oktober|november|december) \d{4}/);
  });
});

describe("the webhook endpoint an operator sets at creation", () => {
  it("becomes the tenant's endpoint; its signing secret is in the answer once, and not in a replay", async () => {
    const input = { ...base, webhookUrl: "https://hooks.dansk.example/safedata" };
    const first = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "create-with-hook" });
    expect(first.status).toBe(201);
    const body = (await first.json()) as { tenant: { id: string; webhookUrl: string }; apiKey: string; webhookSecret: string };
    expect(body.webhookSecret).toMatch(/^whsec_/);
    expect(body.tenant.webhookUrl).toBe(input.webhookUrl);
    const endpoint = await t.services.webhooks.getEndpoint(body.tenant.id);
    expect(endpoint?.url).toBe(input.webhookUrl);
    const mine = (await (await t.call("GET", "v1/webhook", { key: body.apiKey })).json()) as { url: string };
    expect(mine.url).toBe(input.webhookUrl);
    const replay = await t.admin("POST", "v1/admin/tenants", input, { "idempotency-key": "create-with-hook" });
    expect(await replay.json()).toMatchObject({ apiKey: null, webhookSecret: null });
    const got = (await (await t.admin("GET", `v1/admin/tenants/${body.tenant.id}`)).json()) as { webhookUrl: string };
    expect(got.webhookUrl).toBe(input.webhookUrl);
  });
});
