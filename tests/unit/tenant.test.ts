import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import { base32, hashApiKey, matchesHash, newApiKey, newTenantId, parseApiKey, secretsEqual, TENANT_ID_PATTERN, transitionTenant } from "../../shared/domain/tenant";

describe("tenant ids and keys", () => {
  it("generates ids and keys in their documented formats", () => {
    const id = newTenantId();
    expect(id).toMatch(TENANT_ID_PATTERN);
    const key = newApiKey(id);
    expect(parseApiKey(key)).toEqual({ tenantId: id });
    expect(matchesHash(key, hashApiKey(key))).toBe(true);
    expect(matchesHash(key + "x", hashApiKey(key))).toBe(false);
  });

  it("never parses a string that is not a key", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(parseApiKey(s) === undefined || /^sdk_tn-/.test(s)).toBe(true);
      }),
    );
    expect(parseApiKey("sdk_tn-aaaaaaaaaaaaaaaa_short")).toBeUndefined();
  });

  it("base32 matches RFC 4648 (lower case, no padding)", () => {
    expect(base32(Buffer.from("foobar"))).toBe("mzxw6ytboi");
  });

  it("compares secrets of any length", () => {
    expect(secretsEqual("a", "a")).toBe(true);
    expect(secretsEqual("a", "ab")).toBe(false);
  });

  it("allows only meaningful status changes", () => {
    expect(transitionTenant("active", "suspend")).toEqual({ ok: true, status: "suspended" });
    expect(transitionTenant("suspended", "suspend").ok).toBe(false);
    expect(transitionTenant("suspended", "reactivate")).toEqual({ ok: true, status: "active" });
    expect(transitionTenant("active", "reactivate").ok).toBe(false);
  });
});
