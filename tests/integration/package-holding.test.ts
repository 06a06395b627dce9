/**
 * The packages holding a copy of any of many uploads' content, found by one query (an erasure's or rectification's
 * plan), are exactly those the per-upload query finds for each upload, united: property-tested over random packages
 * (listing content, listing none, built before `contentOf` was kept with or without files, purged) on the local Cosmos
 * server.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import fc from "fast-check";
import type { PackageDoc } from "../../shared/stores/package-store";
import { packageRecord } from "../helpers/subject-requests";
import { startTestApp, type TestApp } from "../helpers/app";
import { expect } from "../helpers/expect";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ queues: false });
});
afterAll(async () => {
  await t?.stop();
});

const UPLOADS = ["up-a", "up-b", "up-c", "up-d", "up-e"];
const B32 = "abcdefghijklmnopqrstuvwxyz234567";

function pkg(tenantId: string, n: number, spec: { contentOf: string[] | undefined; files: number; purged: boolean }): PackageDoc {
  const requestId = `dsr-${n.toString(32).split("").map((d) => B32[parseInt(d, 32)]).join("").padStart(26, "a")}`;
  return packageRecord(tenantId, requestId, "2026-11-30T00:00:00.000Z", {
    state: spec.purged ? "purged" : "ready",
    ...(spec.contentOf ? { contentOf: spec.contentOf } : {}),
    counts: { files: spec.files },
  });
}

describe("holdingContentOfAny", () => {
  it("finds the union of what holdingUploadContent finds for each upload (property)", async () => {
    let run = 0;
    const spec = fc.record({
      contentOf: fc.option(fc.subarray(UPLOADS), { nil: undefined }),
      files: fc.nat(3),
      purged: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(spec, { maxLength: 6 }), fc.subarray(UPLOADS), async (specs, asked) => {
        const tenantId = `tn-holding${++run}`;
        for (const [i, s] of specs.entries()) expect(await t.services.packages.create(pkg(tenantId, run * 100 + i, s))).toBe(true);
        const each = new Set<string>();
        for (const id of asked) for (const r of await t.services.packages.holdingUploadContent(tenantId, id)) each.add(r);
        expect((await t.services.packages.holdingContentOfAny(tenantId, asked)).sort()).toEqual([...each].sort());
      }),
      { numRuns: 40 },
    );
  }, 120_000);
});
