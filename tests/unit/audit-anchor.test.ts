import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anchorBlobName, anchorLine, checkAnchor, decideAnchor, lastAnchor, type Anchor } from "../../shared/domain/audit-anchor";

const T = "tn-aaaaaaaaaaaaaaaa";
const H = (c: string) => c.repeat(64);
const anchor = (seq: number, hash = H("a"), tenantId = T): Anchor => ({ v: 1, tenantId, seq, hash, anchoredAt: "2026-03-01T10:05:00.000Z" });

describe("anchor blobs and lines", () => {
  it("names one blob per tenant and UTC month", () => {
    expect(anchorBlobName(T, new Date("2026-03-31T23:59:59.999Z"))).toBe(`${T}/2026-03.jsonl`);
    expect(anchorBlobName(T, new Date("2026-04-01T00:00:00.000Z"))).toBe(`${T}/2026-04.jsonl`);
  });

  it("writes one JSON line per anchor and refuses a malformed one", () => {
    expect(anchorLine(anchor(7))).toBe(`{"v":1,"tenantId":"${T}","seq":7,"hash":"${H("a")}","anchoredAt":"2026-03-01T10:05:00.000Z"}\n`);
    expect(() => anchorLine({ ...anchor(7), hash: "not-a-hash" })).toThrow();
    expect(() => anchorLine({ ...anchor(7), seq: 0 })).toThrow();
  });

  it("reads the last anchor from a tail that may start mid-line, skipping junk and other tenants' lines", () => {
    const text = anchorLine(anchor(3)) + anchorLine(anchor(4, H("b")));
    expect(lastAnchor(text, T)).toEqual(anchor(4, H("b")));
    expect(lastAnchor(text.slice(20), T)).toEqual(anchor(4, H("b")));
    expect(lastAnchor(anchorLine(anchor(5)).slice(10), T)).toBeUndefined();
    expect(lastAnchor(text + "{broken\n", T)).toEqual(anchor(4, H("b")));
    expect(lastAnchor(text + anchorLine(anchor(9, H("c"), "tn-bbbbbbbbbbbbbbbb")), T)).toEqual(anchor(4, H("b")));
    expect(lastAnchor(text + JSON.stringify({ ...anchor(9), v: 2 }) + "\n", T)).toEqual(anchor(4, H("b")));
    expect(lastAnchor("", T)).toBeUndefined();
  });

  it("finds the last line in any tail cut of a well-formed blob (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1e9 }), { minLength: 1, maxLength: 30 }), fc.nat(), (seqs, cut) => {
        const text = seqs.map((s) => anchorLine(anchor(s))).join("");
        const lastLine = anchorLine(anchor(seqs.at(-1)!));
        const from = cut % (text.length - lastLine.length + 1);
        expect(lastAnchor(text.slice(from), T)?.seq).toBe(seqs.at(-1));
      }),
    );
  });
});

describe("deciding whether to anchor", () => {
  it.each([
    ["no chain, no anchor", undefined, undefined, { action: "skip", reason: "no-chain" }],
    ["a first anchor", { seq: 1 }, undefined, { action: "append" }],
    ["the chain moved", { seq: 9 }, anchor(4), { action: "append" }],
    ["nothing new", { seq: 4 }, anchor(4), { action: "skip", reason: "already-anchored" }],
    ["the chain is behind its anchor", { seq: 3 }, anchor(4), { action: "alarm", reason: "chain-behind-anchor" }],
    ["the chain is gone but was anchored", undefined, anchor(4), { action: "alarm", reason: "chain-behind-anchor" }],
  ] as const)("%s", (_name, head, latest, expected) => {
    expect(decideAnchor(head, latest)).toEqual(expected);
  });
});

describe("checking a chain against its anchor", () => {
  it("passes when the anchored entry is there with its hash and the chain reaches it", () => {
    expect(checkAnchor(anchor(4), H("a"), 4)).toBeUndefined();
    expect(checkAnchor(anchor(4), H("a"), 10)).toBeUndefined();
  });

  it("reports removed newest entries as truncation at the first missing entry", () => {
    expect(checkAnchor(anchor(6), undefined, 4)).toMatchObject({ reason: "truncated", seq: 5 });
    expect(checkAnchor(anchor(6), undefined, 0)).toMatchObject({ reason: "truncated", seq: 1 });
  });

  it("reports a rewritten chain at the anchored entry", () => {
    expect(checkAnchor(anchor(4), H("b"), 4)).toMatchObject({ reason: "anchor-mismatch", seq: 4 });
    expect(checkAnchor(anchor(4), undefined, 9)).toMatchObject({ reason: "anchor-mismatch", seq: 4 });
  });
});
