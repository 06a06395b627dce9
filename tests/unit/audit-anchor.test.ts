import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import { anchorBlobName, anchorLine, checkAnchors, decideAnchor, lastAnchor, parseAnchors, type Anchor } from "../../shared/domain/audit-anchor";

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
    ["no chain, no anchor", undefined, undefined, undefined, { action: "skip", reason: "no-chain" }],
    ["a first anchor", { seq: 1 }, undefined, undefined, { action: "append" }],
    ["the chain moved", { seq: 9 }, anchor(4), H("a"), { action: "append" }],
    ["nothing new", { seq: 4 }, anchor(4), H("a"), { action: "skip", reason: "already-anchored" }],
    ["the chain is behind its anchor", { seq: 3 }, anchor(4), undefined, { action: "alarm", reason: "chain-behind-anchor" }],
    ["the chain is gone but was anchored", undefined, anchor(4), undefined, { action: "alarm", reason: "chain-behind-anchor" }],
    ["the chain was cut and regrew past its anchor", { seq: 9 }, anchor(4), H("b"), { action: "alarm", reason: "anchored-entry-changed" }],
    ["the anchored entry is missing", { seq: 9 }, anchor(4), undefined, { action: "alarm", reason: "anchored-entry-changed" }],
    ["the chain was rewritten up to its head", { seq: 4 }, anchor(4), H("b"), { action: "alarm", reason: "anchored-entry-changed" }],
  ] as const)("%s", (_name, head, latest, entryHash, expected) => {
    expect(decideAnchor(head, latest, entryHash)).toEqual(expected);
  });
});

describe("checking a chain against its anchors", () => {
  const hashes = (m: Record<number, string>) => (seq: number) => m[seq];
  const walk = (lastSeq: number, m: Record<number, string>, fromSeq = 1, reachedEnd = true) => ({ fromSeq, lastSeq, reachedEnd, hashAt: hashes(m) });

  it("passes when every anchored entry in the range has its hash and the chain reaches the newest anchor", () => {
    const r = checkAnchors([anchor(2, H("a")), anchor(4, H("b"))], walk(6, { 2: H("a"), 4: H("b") }));
    expect(r).toEqual({ broken: undefined, checked: 2 });
  });

  it("reports removed newest entries as truncation at the first missing entry", () => {
    expect(checkAnchors([anchor(6)], walk(4, {})).broken).toMatchObject({ reason: "truncated", seq: 5 });
    expect(checkAnchors([anchor(6)], walk(0, {})).broken).toMatchObject({ reason: "truncated", seq: 1 });
  });

  it("does not call a part that stops early truncated", () => {
    expect(checkAnchors([anchor(6)], walk(4, {}, 1, false)).broken).toBeUndefined();
  });

  it("catches a rewrite before an older anchor even when the newest anchor was forged to match", () => {
    const r = checkAnchors([anchor(2, H("a")), anchor(5, H("f"))], walk(5, { 2: H("x"), 5: H("f") }));
    expect(r.broken).toMatchObject({ reason: "anchor-mismatch", seq: 2 });
  });

  it("reports an anchor log that goes backwards", () => {
    const r = checkAnchors([anchor(5, H("a")), anchor(3, H("b"))], walk(5, { 3: H("b"), 5: H("a") }));
    expect(r.broken).toMatchObject({ reason: "anchor-mismatch", seq: 3 });
    expect(r.broken?.detail).toContain("went backwards");
  });

  it("checks only anchors in the range of a part, and reports the lowest break first", () => {
    const anchors = [anchor(2, H("a")), anchor(7, H("b")), anchor(9, H("c"))];
    expect(checkAnchors(anchors, walk(8, { 7: H("b") }, 5, false))).toMatchObject({ broken: undefined, checked: 1 });
    expect(checkAnchors(anchors, walk(8, { 7: H("z") }, 5, true)).broken).toMatchObject({ reason: "anchor-mismatch", seq: 7 });
  });

  it("parses every line of a blob in order, skipping what is not an anchor of the tenant", () => {
    const text = anchorLine(anchor(1)) + "junk\n" + anchorLine(anchor(2, H("a"), "tn-bbbbbbbbbbbbbbbb")) + anchorLine(anchor(3));
    expect(parseAnchors(text, T).map((a) => a.seq)).toEqual([1, 3]);
  });
});
