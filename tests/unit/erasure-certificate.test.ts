/** The records part 3 leaves a tenant: the erasure certificate's hashes, places and kept items; objection duties. */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { canonicalJson } from "../../shared/domain/audit-chain";
import {
  ERASURE_PLACES,
  erasureCertificate,
  isDirectMarketing,
  keptItem,
  objectionDuty,
  purposeList,
  recordSha256,
  sortedIdsSha256,
} from "../../shared/domain/erasure-certificate";

const sha = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const ids = fc.array(fc.stringMatching(/^up-[a-z2-7]{4,10}$/), { maxLength: 30 });

describe("the hash of the sorted ids", () => {
  it("is SHA-256 of the distinct ids sorted and joined by newlines, whatever their order or repetition", () => {
    fc.assert(
      fc.property(ids, fc.nat(), (list, seed) => {
        const shuffled = [...list, ...list.slice(0, seed % (list.length + 1))].sort(() => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 3) - 1);
        expect(sortedIdsSha256(shuffled)).toBe(sortedIdsSha256(list));
        expect(sortedIdsSha256(list)).toBe(sha([...new Set(list)].sort().join("\n")));
      }),
    );
    expect(sortedIdsSha256([])).toBe(sha(""));
    expect(sortedIdsSha256(["b", "a"])).toBe(sha("a\nb"));
  });
});

describe("the erasure certificate", () => {
  const base = { tenantId: "tn-aaaaaaaaaaaaaaaa", requestId: "dsr-aaaaaaaaaaaaaaaaaaaaaaaaaa", receivedAt: "2027-01-01T00:00:00.000Z", erasedAt: "2027-01-02T00:00:00.000Z", recipientCount: 2 };

  it("reports every place in a fixed order, missing ones as none, and kept items sorted, each with its legal ground", () => {
    const cert = erasureCertificate({
      ...base,
      erased: { uploads: ["up-b", "up-a", "up-a"] },
      kept: [keptItem("request", "dsr-x", "accountability-request-record", null, 1), keptItem("consent-history", "cs-1:news", "legal-claims-consent-proof", "2030-01-01T00:00:00.000Z", 3)],
    });
    expect(cert.erased.map((p) => p.place)).toEqual([...ERASURE_PLACES]);
    expect(cert.erased[0]).toEqual({ place: "uploads", count: 2, idsSha256: sha("up-a\nup-b") });
    expect(cert.erased.slice(1).every((p) => p.count === 0 && p.idsSha256 === sha(""))).toBe(true);
    expect(cert.kept.map((k) => k.kind)).toEqual(["consent-history", "request"]);
    expect(cert.kept[0]!.groundText).toContain("Art. 17(3)(e)");
  });

  it("holds nothing personal and is hashed over its canonical JSON, so any change shows", () => {
    fc.assert(
      fc.property(ids, fc.integer({ min: 0, max: 50 }), (uploads, recipients) => {
        const cert = erasureCertificate({ ...base, recipientCount: recipients, erased: { uploads }, kept: [] });
        expect(JSON.stringify(cert)).not.toContain("@");
        expect(recordSha256(cert)).toBe(sha(canonicalJson(cert)));
        expect(recordSha256({ ...cert, recipientCount: recipients + 1 })).not.toBe(recordSha256(cert));
      }),
    );
  });
});

describe("objections", () => {
  it("treat direct marketing as absolute (Art. 21(3)) and other purposes as open to compelling grounds (Art. 21(1))", () => {
    for (const p of ["marketing", "Direct Marketing", "direct_marketing-email", "email-marketing", "newsletter"]) {
      expect(isDirectMarketing(p), p).toBe(true);
      expect(objectionDuty(p), p).toContain("absolute");
    }
    for (const p of ["profiling", "fraud-prevention", "analytics"]) {
      expect(isDirectMarketing(p), p).toBe(false);
      expect(objectionDuty(p), p).toContain("compelling legitimate grounds");
    }
  });

  it("name each purpose once, trimmed and sorted", () => {
    expect(purposeList([" b", "a", "b ", ""])).toEqual(["a", "b"]);
    expect(purposeList(undefined)).toEqual([]);
  });
});
