/**
 * Hundreds of stalled requests hold nothing anyone else needs: while 300 connections from one tenant sit with half a
 * JSON body sent, health and another tenant's requests are answered at once. The idle limit is long here, so every
 * stalled request is certainly still open while the others are answered (tests/integration/stalled-clients.test.ts
 * shows each is ended after the limit).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { rawRequest, within } from "../helpers/raw-http";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp({ settings: { UPLOAD_IDLE_SECONDS: "30" } });
  a = await t.createTenant();
  b = await t.createTenant();
});
afterAll(async () => {
  await t?.stop();
});

const body = Buffer.from(
  JSON.stringify({ senderReference: "stall", recipients: ["r@stall.example"], dataSubjects: ["s@stall.example"], categories: ["financial"], fileName: "a.pdf", contentType: "application/pdf", size: 1 }),
);

describe("hundreds of stalled connections", () => {
  it("keep neither health nor another tenant waiting", async () => {
    const headers = { authorization: `Bearer ${a.apiKey}`, "content-type": "application/json", "content-length": String(body.length) };
    const stalled = Array.from({ length: 300 }, () => rawRequest(t.host.url, "POST", "/api/v1/uploads", headers, body.subarray(0, 10)));
    try {
      await Promise.all(stalled.map((s) => s.sent));
      // Let the host take them all in: each becomes an invocation waiting for the rest of its body.
      await new Promise((r) => setTimeout(r, 500));
      const answered = Promise.all([t.call("GET", "health"), t.call("GET", "v1/uploads", { key: b.apiKey }), t.admin("GET", "v1/admin/tenants")]);
      // Well inside the idle limit (30 s), which is what a request stuck behind the stalled ones would wait for; not a
      // few seconds, which a busy machine can take to answer anything.
      expect(await within(answered, 20_000), "answered while 300 requests are stalled").toBe(true);
      for (const res of await answered) expect(res.status).toBe(200);
      // ...while every stalled request was still open and unanswered.
      expect(stalled.filter((s) => s.received().length > 0)).toHaveLength(0);
      expect((await Promise.all(stalled.map((s) => within(s.closed, 0)))).filter((closed) => closed)).toHaveLength(0);
    } finally {
      for (const s of stalled) s.destroy();
    }
    // The stalled tenant's own next request is answered too, and nothing half-sent was created.
    const own = await t.call("GET", "v1/uploads", { key: a.apiKey });
    expect(own.status).toBe(200);
    expect(((await own.json()) as { items: unknown[] }).items).toHaveLength(0);
  }, 60_000);
});
