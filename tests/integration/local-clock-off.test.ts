/** Without LOCAL_CLOCK_CONTROL the movable clock's routes do not exist, and the service runs on real time. */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { startTestApp, type TestApp } from "../helpers/app";
import { expect } from "../helpers/expect";

describe("without LOCAL_CLOCK_CONTROL", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("has no clock route: 404 like any unknown route", async () => {
    for (const method of ["GET", "POST"]) {
      const res = await t.admin(method, "v1/admin/clock", method === "POST" ? { advanceSeconds: 1 } : undefined);
      expect(res.status, method).toBe(404);
      expect(((await res.json()) as { type: string }).type).toBe("urn:safedata:problem:not-found");
    }
  });
});
