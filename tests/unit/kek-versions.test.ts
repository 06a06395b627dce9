/** The order of a tenant's KEK versions (shared/domain/kek-versions.ts): pure rules, no I/O. */
import { describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import { compareKek, kekHistory, rotationUnderWay } from "../../shared/domain/kek-versions";

describe("kekHistory", () => {
  it("ends with the current version, once, and starts at it for tenants recorded before the history was kept", () => {
    expect(kekHistory({ kekVersion: "a" })).toEqual(["a"]);
    expect(kekHistory({ kekVersion: "c", kekVersions: ["a", "b", "c"] })).toEqual(["a", "b", "c"]);
    // A current version written without the history (an older writer): appended, never duplicated.
    expect(kekHistory({ kekVersion: "b", kekVersions: ["a"] })).toEqual(["a", "b"]);
  });
});

describe("compareKek", () => {
  it("orders by the history; unknown versions are older unless a fresher history knows them", () => {
    const h = ["v1", "v2", "v3"];
    expect(compareKek(h, "v1", "v3")).toBe("older");
    expect(compareKek(h, "v3", "v3")).toBe("same");
    expect(compareKek(h, "v3", "v2")).toBe("newer");
    expect(compareKek(h, "legacy", "v3")).toBe("older");
    expect(compareKek(h, "v4", "v3", true)).toBe("newer");
  });

  it("never calls a later version older (property)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.stringMatching(/^[0-9a-f]{1,8}$/), { minLength: 2, maxLength: 20 }), fc.nat(), fc.nat(), (h, i, j) => {
        const a = i % h.length;
        const b = j % h.length;
        const r = compareKek(h, h[a]!, h[b]!);
        return a === b ? r === "same" : a < b ? r === "older" : r === "newer";
      }),
    );
  });
});

describe("rotationUnderWay", () => {
  it("holds until the lease's time, then frees", () => {
    const lease = { id: "x", until: "2026-01-01T00:02:00.000Z" };
    expect(rotationUnderWay(lease, new Date("2026-01-01T00:01:59Z"))).toBe(true);
    expect(rotationUnderWay(lease, new Date("2026-01-01T00:02:00Z"))).toBe(false);
    expect(rotationUnderWay(null, new Date())).toBe(false);
  });
});
