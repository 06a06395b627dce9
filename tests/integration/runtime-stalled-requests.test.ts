/**
 * The local host keeps answering while hundreds of requests sit with half a body sent: there is no fixed pool of
 * connections to the worker for them to hold. Proven with the small fixture app (tests/fixtures/runtime-app.ts).
 *
 * A file of its own, with a host whose limits are long (idle 10 s, so a stalled body is cut off only after 20 s, and
 * Azure's 230 s request timeout): every stalled request is then certainly still open, unanswered, while the other
 * request is answered, however busy the machine is. (With runtime-timeouts.test.ts's short limits, a 504 after
 * 1.5 s or the cut-off after 2 s came first on a loaded machine.)
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import type { LocalFunctionsHost } from "../../dev/runtime/host";
import { startFixtureHost, type FixtureHost } from "../helpers/fixture-host";
import { rawRequest, within } from "../helpers/raw-http";

let fixture: FixtureHost;
let host: LocalFunctionsHost;
const IDLE_MS = 10_000;

beforeAll(async () => {
  fixture = await startFixtureHost({ idleTimeoutMs: IDLE_MS, log: () => undefined });
  host = fixture.host;
});

afterAll(async () => {
  await fixture?.stop();
});

describe("the local host", () => {
  it("keeps answering while hundreds of requests are stalled (no fixed pool of connections to the worker)", async () => {
    const started = Date.now();
    const stalled = Array.from({ length: 300 }, () => rawRequest(host.url, "POST", "/api/count", { "content-length": "100" }, "a"));
    try {
      await Promise.all(stalled.map((s) => s.sent));
      await new Promise((r) => setTimeout(r, 200));
      const res = await fetch(`${host.apiUrl}/items/7`);
      expect(res.status).toBe(200);
      // Answered while every stalled request was still open and unanswered (the host cuts them off only after twice
      // the idle limit, which this took far less than).
      expect(Date.now() - started).toBeLessThan(2 * IDLE_MS);
      expect(stalled.filter((s) => s.received().length > 0)).toHaveLength(0);
      expect((await Promise.all(stalled.map((s) => within(s.closed, 0)))).filter((c) => c)).toHaveLength(0);
    } finally {
      for (const s of stalled) s.destroy();
    }
  }, 60_000);
});
