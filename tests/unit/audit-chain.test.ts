import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import { canonicalJson, ChainVerifier, GENESIS_HASH, sealEntry, type AuditEntry } from "../../shared/domain/audit-chain";

function chain(n: number, tenantId = "tn-aaaaaaaaaaaaaaaa"): AuditEntry[] {
  const out: AuditEntry[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const e = sealEntry({
      tenantId,
      seq: i,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      actor: "key:key-abc",
      action: "upload.downloaded",
      target: { type: "upload", id: `up-${i}` },
      requestId: `r-${i}`,
      details: { bytes: i * 10 },
      prevHash: prev,
    });
    out.push(e);
    prev = e.hash;
  }
  return out;
}

function verify(entries: unknown[], headSeq?: number) {
  const v = new ChainVerifier("tn-aaaaaaaaaaaaaaaa");
  for (const e of entries) if (v.push(e)) break;
  return v.finish(headSeq ?? entries.length);
}

describe("audit hash chain", () => {
  it("canonical JSON sorts keys at every level", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  });

  it("accepts an intact chain", () => {
    expect(verify(chain(10))).toBeUndefined();
  });

  it("finds any single edited field at its entry", () => {
    const entries = chain(8);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7 }), fc.constantFrom("actor", "at", "requestId", "details", "target"), (i, field) => {
        const copy = entries.map((e) => ({ ...e })) as Array<Record<string, unknown>>;
        copy[i]![field] = field === "details" ? { bytes: -1 } : field === "target" ? { type: "upload", id: "other" } : field === "at" ? "2030-01-01T00:00:00.000Z" : "changed";
        expect(verify(copy)).toMatchObject({ seq: i + 1, reason: "hash-mismatch" });
      }),
    );
  });

  it("finds removal, reordering and truncation", () => {
    const entries = chain(6);
    expect(verify([...entries.slice(0, 2), ...entries.slice(3)])).toMatchObject({ seq: 3, reason: "missing-entries" });
    expect(verify([entries[0], entries[2], entries[1]])).toMatchObject({ seq: 2, reason: "missing-entries" });
    expect(verify(entries.slice(0, 4), 6)).toMatchObject({ seq: 5, reason: "truncated" });
  });

  it("finds an entry from another tenant's chain", () => {
    const other = chain(2, "tn-bbbbbbbbbbbbbbbb");
    expect(verify([other[0]])).toMatchObject({ reason: "wrong-tenant" });
  });
});
