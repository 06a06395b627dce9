/**
 * One rule per input, whichever route it comes in by:
 * - a webhook URL is checked by one validator (shared/domain/webhooks.ts webhookUrlProblem) when an operator gives
 *   a tenant's first endpoint (POST /v1/admin/tenants webhookUrl) and when the tenant sets it (PUT /v1/webhook),
 *   with the same local setting (ALLOW_LOOPBACK_WEBHOOKS) and the same refusals (a local name such as
 *   localhost.localdomain, a fragment even when empty);
 * - a time zone is stored in its canonical IANA spelling, at creation and by PATCH (Europe/Copenhagen, whatever the
 *   letter case sent), so every comparison and display of it agrees;
 * - a webhook URL is stored in its canonical (WHATWG URL) spelling.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { webhookUrlProblem } from "../../shared/domain/webhooks";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ settings: { ALLOW_LOOPBACK_WEBHOOKS: "true" } });
});
afterAll(async () => {
  await t?.stop();
});

const base = { name: "Rules Ltd", contactEmail: "dpo@rules.example", supervisoryAuthority: { country: "DK" } };

/** The status each route gives `url`: tenant creation with webhookUrl, and the tenant's own PUT /v1/webhook. */
async function bothRoutes(url: string): Promise<{ create: number; put: number; createBody: unknown; putBody: unknown }> {
  const created = await t.admin("POST", "v1/admin/tenants", { ...base, webhookUrl: url });
  const { apiKey } = await t.createTenant();
  const put = await t.call("PUT", "v1/webhook", { key: apiKey, json: { url } });
  return { create: created.status, put: put.status, createBody: await created.json(), putBody: await put.json() };
}

describe("webhook URLs: one validator for both routes", () => {
  it.each([
    ["a loopback receiver over http (ALLOW_LOOPBACK_WEBHOOKS=true)", "http://127.0.0.1:7191/hook", true],
    ["a public https host", "https://hooks.rules.example/x", true],
    ["localhost.localdomain", "https://localhost.localdomain/x", false],
    ["another .localdomain name", "https://printer.localdomain/x", false],
    ["an empty fragment", "https://hooks.rules.example/x#", false],
    ["a fragment", "https://hooks.rules.example/x#top", false],
    ["plain http on a public host", "http://hooks.rules.example/x", false],
  ])("%s: the same answer from tenant creation and from PUT /v1/webhook", async (_what, url, accepted) => {
    const r = await bothRoutes(url);
    expect({ create: r.create, put: r.put }, JSON.stringify(r)).toEqual(accepted ? { create: 201, put: 201 } : { create: 422, put: 422 });
  });

  it("the domain rule refuses a local name and an empty fragment", () => {
    expect(webhookUrlProblem("https://localhost.localdomain/", { allowLoopback: false })).toBeDefined();
    expect(webhookUrlProblem("https://example.com/#", { allowLoopback: false })).toBeDefined();
    expect(webhookUrlProblem("https://example.com/", { allowLoopback: false })).toBeUndefined();
  });

  it("stores the URL's canonical spelling", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", { ...base, webhookUrl: "HTTPS://Hooks.Rules.EXAMPLE/Path" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { tenant: { id: string; webhookUrl: string } };
    expect(body.tenant.webhookUrl).toBe("https://hooks.rules.example/Path");
    const got = (await (await t.admin("GET", `v1/admin/tenants/${body.tenant.id}`)).json()) as { webhookUrl: string };
    expect(got.webhookUrl).toBe("https://hooks.rules.example/Path");
  });
});

describe("time zones: stored in their canonical IANA spelling", () => {
  it("PATCH with europe/copenhagen stores Europe/Copenhagen", async () => {
    const { tenantId } = await t.createTenant();
    const res = await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { timeZone: "europe/copenhagen" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { timeZone: string }).timeZone).toBe("Europe/Copenhagen");
    const got = (await (await t.admin("GET", `v1/admin/tenants/${tenantId}`)).json()) as { timeZone: string };
    expect(got.timeZone).toBe("Europe/Copenhagen");
  });

  it("creation with AMERICA/NEW_YORK stores America/New_York", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", { ...base, timeZone: "AMERICA/NEW_YORK" });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { tenant: { timeZone: string } }).tenant.timeZone).toBe("America/New_York");
  });

  it("a PATCH that only changes the letter case of the stored zone changes nothing", async () => {
    const { tenantId } = await t.createTenant();
    const before = (await (await t.admin("GET", `v1/admin/tenants/${tenantId}`)).json()) as { updatedAt: string; timeZone: string };
    const res = await t.admin("PATCH", `v1/admin/tenants/${tenantId}`, { timeZone: before.timeZone.toUpperCase() });
    expect(res.status).toBe(200);
    expect((await res.json()) as { updatedAt: string }).toMatchObject({ updatedAt: before.updatedAt, timeZone: before.timeZone });
  });
});
