/**
 * The rules of what a consent event carries besides the decision (shared/domain/consent-signals.ts): country codes
 * against the ISO 3166-1 list, GPC conflicts, and TCF / GPP strings decoded by the IAB's libraries; a property test
 * that no string, however damaged, makes the decoders throw or accept something without the header a real one has.
 */
import { describe, it } from "@jest/globals";
import { GppModel } from "@iabgpp/cmpapi";
import { GVL, TCModel, TCString } from "@iabtechlabtcf/core";
import fc from "fast-check";
import { expect } from "../helpers/expect";
import { embeddedIpv4, parseIp } from "../../shared/domain/consent";
import { countryCodeProblem, decodeGppString, decodeTcString, eventConflictsWithGpc, firstGpcSeqs, stateConflictsWithGpc } from "../../shared/domain/consent-signals";
import { GeoIpCountryLookup } from "../../shared/stores/ip-country";

function tcString(cmpId: number): string {
  const gvl = new GVL({ gvlSpecificationVersion: 3, vendorListVersion: 77, tcfPolicyVersion: 5, lastUpdated: "2026-05-01T00:00:00Z", purposes: {}, specialPurposes: {}, features: {}, specialFeatures: {}, vendors: {}, stacks: {}, dataCategories: {} } as never);
  const m = new TCModel(gvl);
  m.cmpId = cmpId;
  m.cmpVersion = 2;
  m.created = new Date("2026-05-30T10:00:00Z");
  m.lastUpdated = new Date("2026-05-30T10:00:00Z");
  return TCString.encode(m);
}

describe("countries", () => {
  it("takes assigned ISO 3166-1 alpha-2 codes and refuses the rest, naming why", () => {
    for (const code of ["DK", "DE", "GL", "FO", "US", "SE"]) expect(countryCodeProblem(code), code).toBeUndefined();
    for (const code of ["XX", "ZZ", "AA", "QM", "EU", "UK"]) expect(countryCodeProblem(code), code).toMatch(/not an assigned/);
    for (const code of ["1A", "dk", "D", "DNK", "", " DK", "D\u00c6"]) expect(countryCodeProblem(code), code).toMatch(/two capital letters/);
  });

  it("looks up offline: the shipped data answers synchronously and names its version", () => {
    const geo = new GeoIpCountryLookup();
    expect(geo.database).toMatch(/^geoip-country \d+\.\d+\.\d+ \(MaxMind GeoLite2 Country\)$/);
    expect(geo.lookup("80.62.117.1")).toEqual({ country: "DK", database: geo.database });
    expect(geo.lookup("10.0.0.1")).toBeUndefined();
  });
});

describe("Global Privacy Control", () => {
  it("an event conflicts with a GPC signal on it or on an earlier event of its subject and purpose; the state with one anywhere in the history", () => {
    const ev = (seq: number, decision: string, gpc: boolean | null, purposeKey = "ads", subjectId = "cs-a") => ({ subjectId, purposeKey, decision, gpc, audit: { seq } });
    const none = firstGpcSeqs([]);
    expect(eventConflictsWithGpc(ev(1, "granted", true), none)).toBe(true);
    expect(eventConflictsWithGpc(ev(1, "granted", false), none)).toBe(false);
    expect(eventConflictsWithGpc(ev(1, "granted", null), none)).toBe(false);
    expect(eventConflictsWithGpc(ev(1, "denied", true), none)).toBe(false);
    // An earlier GPC signal of the same subject and purpose stands; a later one, or another purpose's or subject's, does not.
    const history = [ev(5, "denied", true), ev(9, "denied", true, "news"), ev(12, "denied", true, "ads", "cs-b"), ev(20, "denied", true)];
    const first = firstGpcSeqs(history);
    expect(eventConflictsWithGpc(ev(6, "granted", false), first)).toBe(true);
    expect(eventConflictsWithGpc(ev(4, "granted", null), first)).toBe(false);
    expect(eventConflictsWithGpc(ev(10, "granted", null, "other"), first)).toBe(false);
    expect(eventConflictsWithGpc(ev(3, "granted", null, "ads", "cs-b"), first)).toBe(false);
    expect(eventConflictsWithGpc(ev(13, "granted", null, "ads", "cs-b"), first)).toBe(true);
    expect(eventConflictsWithGpc(ev(30, "withdrawn", null), first)).toBe(false);
    expect(stateConflictsWithGpc("granted", [{ gpc: true }, { gpc: null }])).toBe(true);
    expect(stateConflictsWithGpc("granted", [{ gpc: false }, { gpc: null }])).toBe(false);
    expect(stateConflictsWithGpc("withdrawn", [{ gpc: true }])).toBe(false);
  });
});

describe("IAB strings", () => {
  it("decodes a TC string's core segment header", () => {
    const r = decodeTcString(tcString(301));
    expect(r).toMatchObject({ ok: true, value: { version: 2, cmpId: 301, cmpVersion: 2, vendorListVersion: 77, policyVersion: 5, created: "2026-05-30T10:00:00.000Z" } });
  });

  it("decodes a GPP header and its TCF section", () => {
    const g = new GppModel();
    g.setFieldValue("tcfeuv2", "CmpId", 9);
    g.setFieldValue("tcfeuv2", "VendorListVersion", 40);
    g.setFieldValue("usnat", "SharingNotice", 1);
    const r = decodeGppString(g.encode());
    expect(r).toMatchObject({ ok: true, value: { version: 1, sections: ["tcfeuv2", "usnat"], tcf: [{ section: "tcfeuv2", cmpId: 9, vendorListVersion: 40 }] } });
  });

  it("refuses strings that are not what they claim, each with a reason", () => {
    const tc = tcString(5);
    for (const s of ["", "x".repeat(20_001), "C A", "CAAA==", tc.slice(0, 8), "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "IAAA", tc.replace(/^C/, "D")]) {
      const r = decodeTcString(s);
      expect(r.ok, s.slice(0, 40)).toBe(false);
    }
    for (const s of ["", "DBAA", "DBABMA~", "DBABMA", tc, "DBABMA~" + tc + "~" + tc, "DBABMA~!!", "~DBABMA"]) {
      const r = decodeGppString(s);
      expect(r.ok, s.slice(0, 40)).toBe(false);
    }
  });

  it("property: any base64url text, or a real string with a character changed, is decoded with a complete header or refused; never a throw", () => {
    const tc = tcString(12);
    const b64 = fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~".split("")), maxLength: 80 });
    const mutated = fc.tuple(fc.nat({ max: tc.length - 1 }), fc.constantFrom(..."AQgw_-.~9".split(""))).map(([i, c]) => tc.slice(0, i) + c + tc.slice(i + 1));
    fc.assert(
      fc.property(fc.oneof(b64, mutated, b64.map((s) => "C" + s), b64.map((s) => "DBABMA~" + s)), (s) => {
        const t = decodeTcString(s);
        if (t.ok) {
          expect(t.value.version).toBe(2);
          expect(t.value.cmpId).toBeGreaterThan(0);
          expect(Number.isNaN(Date.parse(t.value.created))).toBe(false);
        } else expect(t.problem.length).toBeGreaterThan(0);
        const g = decodeGppString(s);
        if (g.ok) {
          expect(g.value.sectionIds.length).toBeGreaterThan(0);
          expect(s.split("~").length).toBe(g.value.sectionIds.length + 1);
        } else expect(g.problem.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("the IPv4 address an IPv6 address carries (review C, finding 9)", () => {
  const embedded = (text: string) => {
    const ip = parseIp(text);
    if (!ip) throw new Error(`${text} does not parse`);
    return embeddedIpv4(ip);
  };
  it("reads 6to4, NAT64 (well-known prefix), Teredo and IPv4-compatible addresses; nothing else", () => {
    expect(embedded("2002:cb00:7107::1")).toBe("203.0.113.7");
    expect(embedded("64:ff9b::cb00:7107")).toBe("203.0.113.7");
    expect(embedded("64:ff9b::203.0.113.7")).toBe("203.0.113.7");
    // Teredo: the client's address is the last 32 bits inverted (RFC 4380 §4).
    expect(embedded("2001:0:4136:e378:8000:63bf:34ff:8ef8")).toBe("203.0.113.7");
    expect(embedded("::cb00:7107")).toBe("203.0.113.7");
    // Written with a dotted tail, ipaddr.js reads it as IPv4-mapped, so parseIp gives the IPv4 address itself.
    expect(parseIp("::203.0.113.7")).toMatchObject({ kind: "ipv4", full: "203.0.113.7" });
    for (const none of ["::", "::1", "64:ff9b:1::cb00:7107", "2001:db8::cb00:7107", "2a00:1450:4001:800::200e", "fe80::5efe:cb00:7107"]) expect(embedded(none), none).toBeUndefined();
    // IPv4-mapped is the IPv4 address itself already.
    expect(parseIp("::ffff:203.0.113.7")).toMatchObject({ kind: "ipv4", full: "203.0.113.7" });
    expect(embedded("203.0.113.7")).toBeUndefined();
  });
});
