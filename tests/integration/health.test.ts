/**
 * GET /api/health: anonymous callers (load balancers, uptime probes) learn whether the service is healthy and the
 * time, nothing more; the details (stores, sweeps, their counts and alarm counts) need the admin key.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { ADMIN_KEY, startTestApp, type TestApp } from "../helpers/app";
import { sweep } from "../helpers/sweep";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

type Health = { status: string; time: string; checks?: unknown; stores?: unknown; sweeps?: Array<{ name: string; counts: Record<string, number> }> };

describe("health", () => {
  it("tells an anonymous caller the status and the time only, with 200 or 503", async () => {
    await sweep(t);
    const res = await t.call("GET", "health");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Health;
    expect(Object.keys(body).sort(), "fields an anonymous caller sees").toEqual(["status", "time"]);
    expect(body).toEqual({ status: "healthy", time: t.clock.now().toISOString() });

    // A sweep that stopped: still only the status, now 503.
    const start = t.clock.now().getTime();
    t.clock.set(start + 31 * 60_000);
    const stale = await t.call("GET", "health");
    expect(stale.status).toBe(503);
    expect(Object.keys((await stale.json()) as object).sort()).toEqual(["status", "time"]);
    const head = await t.call("HEAD", "health");
    expect(head.status).toBe(503);
    t.clock.set(start);
  });

  it("gives the details (stores, sweeps, counts) to the admin key only", async () => {
    await sweep(t);
    const res = await t.call("GET", "health", { key: ADMIN_KEY });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Health;
    expect(body).toMatchObject({ status: "healthy", checks: { cosmos: { status: "up" }, blob: { status: "up" }, queue: { status: "up" } } });
    expect(body.sweeps!.map((s) => s.name)).toEqual(expect.arrayContaining(["retention", "audit-anchor"]));
    expect(body.sweeps!.find((s) => s.name === "retention")!.counts).toHaveProperty("due");
  });

  it("refuses a key that is not the admin key instead of answering as for an anonymous caller", async () => {
    const { apiKey } = await t.createTenant();
    for (const key of [apiKey, "x".repeat(60)]) {
      const res = await t.call("GET", "health", { key });
      expect(res.status, "a wrong key").toBe(401);
      expect(JSON.stringify(await res.json())).not.toMatch(/sweeps|stores|alarms/);
    }
  });

  it("is described in the OpenAPI document with the details as admin-only", async () => {
    const doc = (await (await t.call("GET", "v1/openapi.json")).json()) as { paths: Record<string, { get: { description?: string } }> };
    expect(doc.paths["/api/health"]!.get.description).toMatch(/admin key/);
  });
});
