/**
 * The movable local clock: the admin API reads and moves it (forward only), and what decides by time follows it.
 * (Without LOCAL_CLOCK_CONTROL the route does not exist: local-clock-off.test.ts, a file of its own because the app's
 * routes are registered once per test file.)
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { OffsetClock } from "../../shared/domain/clock";
import { startTestApp, type TestApp } from "../helpers/app";
import { expect } from "../helpers/expect";

describe("with LOCAL_CLOCK_CONTROL=true", () => {
  let t: TestApp;
  const clock = new OffsetClock();
  beforeAll(async () => {
    t = await startTestApp({ settings: { LOCAL_CLOCK_CONTROL: "true" }, serviceClock: clock });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const now = async () => Date.parse(((await (await t.admin("GET", "v1/admin/clock")).json()) as { now: string }).now);

  it("reads the clock: real time while nobody moved it", async () => {
    const res = await t.admin("GET", "v1/admin/clock");
    expect(res.status).toBe(200);
    // Read between two wall-clock reads of the test's own (the same process's clock): no window to outrun.
    const before = Date.now();
    const read = await now();
    expect(read).toBeGreaterThanOrEqual(before);
    expect(read).toBeLessThanOrEqual(Date.now());
  });

  it("moves it forward by seconds or to a time, and it keeps ticking from there", async () => {
    const before = await now();
    const moved = await t.admin("POST", "v1/admin/clock", { advanceSeconds: 86_400 });
    expect(moved.status).toBe(200);
    const after = Date.parse(((await moved.json()) as { now: string }).now);
    expect(after - before).toBeGreaterThanOrEqual(86_400_000);
    expect(after - before).toBeLessThan(86_400_000 + 5_000);
    const target = new Date(after + 30 * 86_400_000).toISOString();
    const set = await t.admin("POST", "v1/admin/clock", { set: target });
    expect(((await set.json()) as { now: string }).now).toBe(target);
    await new Promise((r) => setTimeout(r, 20));
    expect(await now()).toBeGreaterThan(Date.parse(target));
  });

  it("answers 400 for both or neither, 409 for an earlier time, 422 for a negative step, 401 without the admin key", async () => {
    const problem = async (res: Response) => ({ status: res.status, type: ((await res.json()) as { type: string }).type });
    expect(await problem(await t.admin("POST", "v1/admin/clock", { advanceSeconds: 1, set: new Date().toISOString() }))).toEqual({ status: 400, type: "urn:safedata:problem:malformed-request" });
    expect(await problem(await t.admin("POST", "v1/admin/clock", {}))).toEqual({ status: 400, type: "urn:safedata:problem:malformed-request" });
    expect(await problem(await t.admin("POST", "v1/admin/clock", { set: "2020-01-01T00:00:00Z" }))).toEqual({ status: 409, type: "urn:safedata:problem:conflict" });
    expect((await t.admin("POST", "v1/admin/clock", { advanceSeconds: -5 })).status).toBe(422);
    const { apiKey } = await t.createTenant();
    expect((await t.call("GET", "v1/admin/clock", { key: apiKey })).status).toBe(401);
  });

  it("is the time use cases decide by: an upload created after a move expires 32 days after the moved time", async () => {
    const { apiKey } = await t.createTenant();
    await t.admin("POST", "v1/admin/clock", { advanceSeconds: 100 * 86_400 });
    // The service's clock read before and after the upload's creation bounds its expiry exactly, however long the
    // request takes on a busy machine.
    const before = await now();
    const res = await t.call("POST", "v1/uploads", {
      key: apiKey,
      json: { senderReference: "s", recipients: ["r@example.com"], dataSubjects: ["d@example.com"], categories: ["contact"], fileName: "a.txt", contentType: "text/plain", size: 1 },
    });
    expect(res.status).toBe(201);
    const after = await now();
    const { expiresAt } = (await res.json()) as { expiresAt: string };
    expect(after - before, "the clock was moved 100 days ahead, not back to wall time").toBeLessThan(86_400_000);
    expect(Date.parse(expiresAt)).toBeGreaterThanOrEqual(before + 32 * 86_400_000);
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual(after + 32 * 86_400_000);
  });
});
