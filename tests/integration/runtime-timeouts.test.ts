/**
 * The local host's own limits, like Azure's front end: a function that has not begun its answer within the request
 * timeout (230 s in Azure; 1 s here) gets a 504 for its caller, a client that stops sending its body or stops reading
 * the response is disconnected after the idle limit (runtime-stalled-requests.test.ts: none of them holds the
 * connection pool to the worker).
 * Proven with the small fixture app (tests/fixtures/runtime-app.ts), whose functions have no limits of their own.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { DEFAULT_REQUEST_TIMEOUT_MS, type LocalFunctionsHost } from "../../dev/runtime/host";
import { startFixtureHost, type FixtureHost } from "../helpers/fixture-host";
import { rawRequest, statusOf, within } from "../helpers/raw-http";
import { eventually } from "../helpers/eventually";

let fixture: FixtureHost;
const logs: string[] = [];
let host: LocalFunctionsHost;
const IDLE_MS = 1000;
const REQUEST_TIMEOUT_MS = 1500;

beforeAll(async () => {
  fixture = await startFixtureHost({ idleTimeoutMs: IDLE_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, log: (l) => logs.push(l.message) });
  host = fixture.host;
});

afterAll(async () => {
  await fixture?.stop();
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
    const from = logs.length;
    const reader = rawRequest(host.url, "GET", "/api/zeros/64", {});
    reader.pause();
    await reader.sent;
    // The host's own line says when it gave up on this client: waited for, not assumed after a fixed pause (on a busy
    // machine the pause could end before the host's watch had looked, and the client read on to the end).
    await eventually(() => expect(logs.slice(from).some((l) => l.includes("read nothing of the response"))).toBe(true), 30_000, 50);
    reader.resume();
    expect(await within(reader.closed, 20_000)).toBe(true);
    expect(statusOf(reader.received())).toBe(200);
    expect(reader.received().length).toBeLessThan(64 * 1024 * 1024);
  });
});
