/**
 * The local host's own limits, like Azure's front end: a function that has not begun its answer within the request
 * timeout (230 s in Azure; 1 s here) gets a 504 for its caller, a client that stops sending its body or stops reading
 * the response is disconnected after the idle limit, and none of them holds the connection pool to the worker.
 * Proven with the small fixture app (tests/fixtures/runtime-app.ts), whose functions have no limits of their own.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startEmbeddedStorage, type EmbeddedStorage } from "../../dev/embedded-storage";
import { parseHostJson } from "../../dev/runtime/host-config";
import { LocalFunctionsHost, DEFAULT_REQUEST_TIMEOUT_MS } from "../../dev/runtime/host";
import { rawRequest, statusOf, within } from "../helpers/raw-http";

let storage: EmbeddedStorage;
let host: LocalFunctionsHost;
const IDLE_MS = 1000;
const REQUEST_TIMEOUT_MS = 1500;

beforeAll(async () => {
  storage = await startEmbeddedStorage();
  host = await LocalFunctionsHost.start({
    load: () => import("../fixtures/runtime-app.js"),
    config: parseHostJson({ version: "2.0" }),
    env: { AzureWebJobsStorage: storage.storageConnectionString, TestStorage: storage.storageConnectionString },
    port: 0,
    enableTimers: false,
    enableQueues: false,
    idleTimeoutMs: IDLE_MS,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    log: () => undefined,
  });
});

afterAll(async () => {
  await host?.stop(1_000);
  await storage?.stop();
});

describe("local host limits", () => {
  it("default to Azure's 230 s request timeout", () => {
    expect(DEFAULT_REQUEST_TIMEOUT_MS).toBe(230_000);
  });

  it("answer 504 when a function has not begun its answer within the request timeout, and keep serving", async () => {
    const started = Date.now();
    const res = await fetch(`${host.apiUrl}/slow/5000`);
    expect(res.status).toBe(504);
    await res.text();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    // Long before the function's own answer (at 5 s, which would be a 200): the 504 came from the host's timeout. The
    // bound is that, not the timeout plus a little, which a busy machine's late timer can pass.
    expect(elapsed).toBeLessThan(5000);
    expect((await fetch(`${host.apiUrl}/items/1`)).status).toBe(200);
    // A function that answers in time is untouched.
    expect((await fetch(`${host.apiUrl}/slow/100`)).status).toBe(200);
  });

  it("disconnect a client that stops sending its body", async () => {
    const stalled = rawRequest(host.url, "POST", "/api/count", { "content-length": "1000" }, "abc");
    await stalled.sent;
    expect(await within(stalled.closed, 4 * IDLE_MS + 10_000)).toBe(true);
    expect((await fetch(`${host.apiUrl}/count`, { method: "POST", body: "abc" })).status).toBe(200);
  });

  it("disconnect a client that stops reading the response", async () => {
    const reader = rawRequest(host.url, "GET", "/api/zeros/64", {});
    reader.pause();
    await reader.sent;
    await new Promise((r) => setTimeout(r, IDLE_MS * 3));
    reader.resume();
    expect(await within(reader.closed, 20_000)).toBe(true);
    expect(statusOf(reader.received())).toBe(200);
    expect(reader.received().length).toBeLessThan(64 * 1024 * 1024);
  });

  it("keep answering while hundreds of requests are stalled (no fixed pool of connections to the worker)", async () => {
    const stalled = Array.from({ length: 300 }, () => rawRequest(host.url, "POST", "/api/count", { "content-length": "100000" }, "a"));
    // Each body keeps coming a byte at a time, far inside the host's cut-off (twice the idle limit), so every one of
    // them is certainly still open when the other request is answered, however slow the machine is meanwhile. (A byte
    // goes only once the request's head is on its way, one a tick: the body stays far from complete.)
    const headSent = new Set<number>();
    stalled.forEach((s, i) => void s.sent.then(() => headSent.add(i), () => undefined));
    const trickle = setInterval(() => {
      for (const i of headSent) void stalled[i]!.write("a").catch(() => undefined);
    }, IDLE_MS / 4);
    try {
      await Promise.all(stalled.map((s) => s.sent));
      await new Promise((r) => setTimeout(r, 200));
      const res = await fetch(`${host.apiUrl}/items/7`);
      expect(res.status).toBe(200);
      // Answered while every stalled request was still open and unanswered.
      expect(stalled.filter((s) => s.received().length > 0)).toHaveLength(0);
      expect((await Promise.all(stalled.map((s) => within(s.closed, 0)))).filter((c) => c)).toHaveLength(0);
    } finally {
      clearInterval(trickle);
      for (const s of stalled) s.destroy();
    }
  });
});
