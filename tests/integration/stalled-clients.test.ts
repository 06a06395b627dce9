/**
 * Clients that stop halfway hold nothing for long: a JSON body that stops arriving for UPLOAD_IDLE_SECONDS is answered
 * 408, and a response the client stops reading is cut off after as long. Socket timers cannot be driven by a ManualClock, so the idle
 * limit is a real 2 s here (tests/integration/stalled-availability.test.ts has the hundreds of connections).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { rawRequest, bodyOf, statusOf, within } from "../helpers/raw-http";
import { uploadWith } from "../helpers/uploads";
import { eventually } from "../helpers/eventually";

const IDLE_S = 2;
let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };
beforeAll(async () => {
  // The local host's own idle limit is set far beyond the app's, so what is seen here is the app's doing (as in Azure,
  // where the app runs behind the real host); tests/integration/runtime-timeouts.test.ts covers the local host's.
  t = await startTestApp({ settings: { UPLOAD_IDLE_SECONDS: String(IDLE_S) }, hostIdleTimeoutMs: 120_000 });
  a = await t.createTenant();
  b = await t.createTenant();
});
afterAll(async () => {
  await t?.stop();
});

const uploadBody = Buffer.from(
  JSON.stringify({
    senderReference: "stall",
    recipients: ["r@stall.example"],
    dataSubjects: ["s@stall.example"],
    categories: ["financial"],
    fileName: "a.pdf",
    contentType: "application/pdf",
    size: 1,
  }),
);

/** A POST of an upload whose JSON body stops after its first bytes. */
function stalledPost(key: string) {
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": String(uploadBody.length) };
  return rawRequest(t.host.url, "POST", "/api/v1/uploads", headers, uploadBody.subarray(0, 10));
}

const uploadsOf = async (key: string) => ((await (await t.call("GET", "v1/uploads", { key })).json()) as { items: unknown[] }).items;

describe("a JSON body that stops arriving", () => {
  it("is answered 408 request-timeout after UPLOAD_IDLE_SECONDS, and nothing is created", async () => {
    const started = Date.now();
    const stalled = stalledPost(a.apiKey);
    expect(await within(stalled.answered, (IDLE_S + 15) * 1000), "answered").toBe(true);
    expect(statusOf(stalled.received())).toBe(408);
    expect((JSON.parse(bodyOf(stalled.received())) as { type: string }).type).toBe("urn:safedata:problem:request-timeout");
    expect(Date.now() - started).toBeGreaterThanOrEqual(IDLE_S * 1000 - 200);
    expect(await uploadsOf(a.apiKey)).toHaveLength(0);
    stalled.destroy();
  });

  it("is not cut off while it keeps arriving, however slowly", async () => {
    const headers = { authorization: `Bearer ${b.apiKey}`, "content-type": "application/json", "content-length": String(uploadBody.length) };
    const slow = rawRequest(t.host.url, "POST", "/api/v1/uploads", headers, uploadBody.subarray(0, 1));
    await slow.sent;
    // The whole body takes longer than the idle limit (6 gaps of a quarter of it); no gap comes near it, so a timer
    // that fires late on a busy machine still leaves each gap well inside the limit.
    const pieces = 6;
    const step = Math.ceil((uploadBody.length - 1) / pieces);
    for (let i = 0; i < pieces; i++) {
      await new Promise((r) => setTimeout(r, (IDLE_S * 1000) / 4));
      await slow.write(uploadBody.subarray(1 + i * step, 1 + (i + 1) * step));
    }
    // The answer is waited for, not assumed after a fixed pause (creating the upload takes its own time).
    expect(await within(slow.answered, 30_000), "answered").toBe(true);
    expect(statusOf(slow.received())).toBe(201);
    slow.destroy();
  });
});

describe("a response the client stops reading", () => {
  it("is cut off by the app after UPLOAD_IDLE_SECONDS without progress, and the service keeps serving", async () => {
    const size = 24 * 1024 * 1024;
    const { id } = await uploadWith(t, b.apiKey, size);
    const from = t.logs.length;
    const reader = rawRequest(t.host.url, "GET", `/api/v1/uploads/${id}/content`, { authorization: `Bearer ${b.apiKey}` });
    reader.pause();
    await reader.sent;
    // Not a byte read for longer than the idle limit: the service gives up on this client (waited for by its log
    // line, not assumed after a fixed pause).
    const waitStarted = Date.now();
    await eventually(() => expect(t.logs.slice(from).some((l) => l.message.includes("response.stalled"))).toBe(true), 20_000, 100);
    expect(Date.now() - waitStarted, "not before the idle limit").toBeGreaterThanOrEqual(IDLE_S * 1000 - 200);
    expect((await t.call("GET", "health")).status).toBe(200);
    reader.resume();
    expect(await within(reader.closed, 20_000), "closed once read").toBe(true);
    expect(statusOf(reader.received())).toBe(200);
    expect(reader.received().length).toBeLessThan(size);
  }, 60_000);
});
