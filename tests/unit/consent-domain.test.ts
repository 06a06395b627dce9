/** The pure rules of consent records: the projection, evidence clocks, IP truncation, givenAt, digests and link tokens. */
import { createHmac, randomBytes } from "node:crypto";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import {
  checkConsent,
  consentDigest,
  countLinkRequest,
  DIGEST_SCHEME,
  digestInput,
  eventDigestKey,
  evidenceClock,
  givenAtProblem,
  LINK_RATE_LIMIT,
  linkTokenSignedBy,
  parseIp,
  parseLinkToken,
  projectStates,
  purposeKeySchema,
  signLinkToken,
  type DecisionFact,
  type DigestContent,
  type LinkClaims,
} from "../../shared/domain/consent";

let n = 0;
function fact(purposeKey: string, decision: DecisionFact["decision"], givenAt: string, recordedAt = givenAt): DecisionFact {
  n++;
  return { id: `ce-${String(n).padStart(16, "a")}`, purposeKey, decision, givenAt, recordedAt, noticeVersion: 1 };
}

describe("the current state is a projection of the events", () => {
  it("grant, withdraw, grant again: granted, from the last grant", () => {
    const events = [
      fact("newsletter", "granted", "2026-01-01T10:00:00.000Z"),
      fact("newsletter", "withdrawn", "2026-02-01T10:00:00.000Z"),
      fact("newsletter", "granted", "2026-03-01T10:00:00.000Z"),
    ];
    const [state] = projectStates(events);
    expect(state).toMatchObject({ purposeKey: "newsletter", decision: "granted", since: "2026-03-01T10:00:00.000Z", eventId: events[2]!.id, events: 3 });
    expect(checkConsent(events.slice(0, 2), "newsletter")).toBe("withdrawn");
  });

  it("denied then granted: granted; granted then denied: denied", () => {
    const a = [fact("profiling", "denied", "2026-01-01T00:00:00.000Z"), fact("profiling", "granted", "2026-01-02T00:00:00.000Z")];
    expect(checkConsent(a, "profiling")).toBe("granted");
    const b = [fact("profiling", "granted", "2026-01-01T00:00:00.000Z"), fact("profiling", "denied", "2026-01-02T00:00:00.000Z")];
    expect(checkConsent(b, "profiling")).toBe("denied");
  });

  it("orders by when the person decided, not by arrival: an old import recorded late does not undo a withdrawal", () => {
    const withdrawal = fact("ads", "withdrawn", "2026-05-01T00:00:00.000Z", "2026-05-01T00:00:01.000Z");
    const lateImport = fact("ads", "granted", "2025-01-01T00:00:00.000Z", "2026-06-01T00:00:00.000Z");
    expect(checkConsent([withdrawal, lateImport], "ads")).toBe("withdrawn");
  });

  it("keeps purposes apart, and says no-record for a purpose without events", () => {
    const events = [fact("a", "granted", "2026-01-01T00:00:00.000Z"), fact("b", "withdrawn", "2026-01-01T00:00:00.000Z")];
    expect(projectStates(events).map((s) => [s.purposeKey, s.decision])).toEqual([
      ["a", "granted"],
      ["b", "withdrawn"],
    ]);
    expect(checkConsent(events, "c")).toBe("no-record");
  });

  it("gives the same state whatever order the events are read in (property)", () => {
    const decision = fc.constantFrom("granted", "denied", "withdrawn") as fc.Arbitrary<DecisionFact["decision"]>;
    const ev = fc.record({ purpose: fc.constantFrom("a", "b"), decision, day: fc.integer({ min: 1, max: 28 }), rec: fc.integer({ min: 0, max: 59 }) });
    fc.assert(
      fc.property(fc.array(ev, { maxLength: 12 }), fc.integer(), (list, seed) => {
        const events = list.map((e) => fact(e.purpose, e.decision, `2026-01-${String(e.day).padStart(2, "0")}T00:00:00.000Z`, `2026-02-01T00:00:${String(e.rec).padStart(2, "0")}.000Z`));
        const shuffled = [...events].sort((x, y) => ((x.id.charCodeAt(19) * 31 + seed) % 7) - ((y.id.charCodeAt(19) * 31 + seed) % 7));
        expect(projectStates(shuffled)).toEqual(projectStates(events));
      }),
    );
  });
});

describe("evidence is kept while consent is in force, then for the evidence period", () => {
  it("has no end while granted", () => {
    expect(evidenceClock([fact("a", "granted", "2026-01-01T00:00:00.000Z")], 3)).toEqual({ inForce: true, endedAt: null, evidenceUntil: null });
  });
  it("ends with a withdrawal and runs three years from the last thing recorded", () => {
    const c = evidenceClock([fact("a", "granted", "2026-01-01T00:00:00.000Z"), fact("a", "withdrawn", "2026-03-01T00:00:00.000Z", "2026-03-01T00:00:05.000Z")], 3);
    expect(c).toEqual({ inForce: false, endedAt: "2026-03-01T00:00:05.000Z", evidenceUntil: "2029-03-01T00:00:05.000Z" });
  });
  it("a refusal never granted runs from the refusal; a later grant stops the clock", () => {
    const denied = fact("a", "denied", "2026-01-01T00:00:00.000Z");
    expect(evidenceClock([denied], 3).evidenceUntil).toBe("2029-01-01T00:00:00.000Z");
    expect(evidenceClock([denied, fact("a", "granted", "2026-02-01T00:00:00.000Z")], 3).inForce).toBe(true);
  });
});

describe("IP addresses", () => {
  it("are truncated to /24 and /48", () => {
    expect(parseIp("203.0.113.77")).toEqual({ kind: "ipv4", full: "203.0.113.77", truncated: "203.0.113.0/24" });
    expect(parseIp("2001:db8:abcd:12::1")).toEqual({ kind: "ipv6", full: "2001:db8:abcd:12::1", truncated: "2001:db8:abcd::/48" });
    expect(parseIp("2001:DB8:0:0:0:0:0:1")?.truncated).toBe("2001:db8::/48");
    expect(parseIp("::ffff:198.51.100.9")).toEqual({ kind: "ipv4", full: "198.51.100.9", truncated: "198.51.100.0/24" });
  });

  it("refuses what is not an address, or a spelling other parsers read differently", () => {
    for (const bad of ["999.1.1.1", "10.0.0", "2001:db8::g", "not-an-ip", "", " 1.2.3.4", "1.2.3.4 ", "010.1.1.1", "0x7f.0.0.1", "127.1", "fe80::1%eth0", "1.2.3.4/24", "::1::1"]) {
      expect(parseIp(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it("keeps no more than the network in the truncated form (property)", () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const p = parseIp(ip)!;
        expect(p.truncated).toBe(ip.split(".").slice(0, 3).join(".") + ".0/24");
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const p = parseIp(ip);
        if (!p || p.kind === "ipv4") return; // an IPv4-mapped or embedded form
        expect(p.truncated.endsWith("/48")).toBe(true);
        const net = ipaddr.IPv6.parse(p.truncated.slice(0, -3)).parts;
        // The network is the address's first three groups; the other five are zero.
        expect(net.slice(0, 3)).toEqual(ipaddr.IPv6.parse(p.full).parts.slice(0, 3));
        expect(net.slice(3)).toEqual([0, 0, 0, 0, 0]);
      }),
    );
  });
});

describe("givenAt", () => {
  const now = new Date("2026-06-01T12:00:00.000Z");
  it("may be up to five minutes ahead of the service clock, not more", () => {
    expect(givenAtProblem(new Date(now.getTime() + 5 * 60_000), now)).toBeUndefined();
    expect(givenAtProblem(new Date(now.getTime() + 5 * 60_000 + 1), now)).toMatch(/5 minutes/);
    expect(givenAtProblem(new Date("2020-01-01T00:00:00Z"), now)).toBeUndefined();
  });
});

describe("purpose keys", () => {
  it("are lower-case letters, digits and '-', never 'all'", () => {
    for (const ok of ["newsletter", "ads-2026", "a", "9"]) expect(purposeKeySchema.safeParse(ok).success, ok).toBe(true);
    for (const bad of ["all", "Newsletter", "news letter", "-x", "x-", "", "x".repeat(65), "æble"]) expect(purposeKeySchema.safeParse(bad).success, bad).toBe(false);
  });
});

describe("keyed digests", () => {
  const content: DigestContent = {
    scheme: DIGEST_SCHEME,
    tenantId: "tn-aaaaaaaaaaaaaaaa",
    eventId: "ce-bbbbbbbbbbbbbbbb",
    subjectId: "cs-cccccccccccccccc",
    subjectHash: "ab".repeat(32),
    purposeKey: "newsletter",
    noticeVersion: 2,
    noticeSha256: "cd".repeat(32),
    decision: "granted",
    method: "click",
    requestOrigin: "banner",
    propertyId: "www.example.com",
    language: "da",
    givenAt: "2026-01-01T00:00:00.000Z",
    recordedAt: "2026-01-01T00:00:01.000Z",
    ipTruncated: "203.0.113.0/24",
    gpc: false,
  };

  it("are an HMAC over the canonical JSON that anyone holding the event's key can recompute", () => {
    const secret = randomBytes(32);
    const key = eventDigestKey(secret, content.tenantId, content.eventId);
    const digest = consentDigest(key, content);
    expect(digest).toBe(createHmac("sha256", key).update(digestInput(content)).digest("hex"));
    // Canonical: key order does not matter.
    const reordered = Object.fromEntries(Object.entries(content).reverse()) as unknown as DigestContent;
    expect(consentDigest(key, reordered)).toBe(digest);
    expect(consentDigest(key, { ...content, decision: "withdrawn" })).not.toBe(digest);
  });

  it("use a key per event: another event's key, or another tenant's secret, gives another digest", () => {
    const secret = randomBytes(32);
    const k1 = eventDigestKey(secret, content.tenantId, content.eventId);
    const k2 = eventDigestKey(secret, content.tenantId, "ce-dddddddddddddddd");
    expect(k1.equals(k2)).toBe(false);
    expect(eventDigestKey(randomBytes(32), content.tenantId, content.eventId).equals(k1)).toBe(false);
    expect(consentDigest(k2, content)).not.toBe(consentDigest(k1, content));
  });
});

describe("withdrawal-link tokens", () => {
  const claims: LinkClaims = {
    tenantId: "tn-aaaaaaaaaaaaaaaa",
    secretVersion: 3,
    subjectId: "cs-cccccccccccccccc",
    purpose: "all",
    linkId: "cl-eeeeeeeeeeeeeeee",
    expiresAt: 1_900_000_000,
  };

  it("round-trip, are base64url, hold no address, and verify only with their secret", () => {
    const secret = randomBytes(32);
    const token = signLinkToken(secret, claims);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    const parsed = parseLinkToken(token)!;
    // The claims are all a token carries besides its length and its tag (random-looking bytes, which may be 0x40).
    expect(parsed.payload.toString("latin1")).not.toContain("@");
    expect(parsed.claims).toEqual(claims);
    expect(linkTokenSignedBy(secret, parsed)).toBe(true);
    expect(linkTokenSignedBy(randomBytes(32), parsed)).toBe(false);
  });

  it("any changed byte is either not a token or not signed (property)", () => {
    const secret = randomBytes(32);
    const bytes = Buffer.from(signLinkToken(secret, claims), "base64url");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const changed = Buffer.from(bytes);
        changed[i] = changed[i]! ^ x;
        const parsed = parseLinkToken(changed.toString("base64url"));
        expect(parsed === undefined || !linkTokenSignedBy(secret, parsed)).toBe(true);
      }),
    );
  });

  it("a token for one subject cannot be made into one for another without the secret", () => {
    const secret = randomBytes(32);
    const parsed = parseLinkToken(signLinkToken(secret, claims))!;
    const other = signLinkToken(randomBytes(32), { ...claims, subjectId: "cs-dddddddddddddddd" });
    const spliced = Buffer.concat([Buffer.from(other, "base64url").subarray(0, -32), parsed.tag]).toString("base64url");
    expect(linkTokenSignedBy(secret, parseLinkToken(spliced)!)).toBe(false);
  });

  it("refuses what is not a canonical token", () => {
    const token = signLinkToken(randomBytes(32), claims);
    for (const bad of ["", "x", token + "=", token + "A", token.slice(0, -1), "%%%", "a".repeat(2000)]) {
      expect(parseLinkToken(bad), bad.slice(0, 20)).toBeUndefined();
    }
  });
});

describe("the per-link rate counter", () => {
  it("allows 20 requests per hour, then says when to come back", () => {
    const t0 = new Date("2026-01-01T00:00:00.000Z");
    let c: { windowStart: string; count: number } | undefined;
    for (let i = 0; i < LINK_RATE_LIMIT; i++) {
      const r = countLinkRequest(c, new Date(t0.getTime() + i * 1000));
      expect(r.allowed).toBe(true);
      c = r;
    }
    const over = countLinkRequest(c, new Date(t0.getTime() + 30 * 60_000));
    expect(over).toMatchObject({ allowed: false, retryAfterSeconds: 1800 });
    expect(countLinkRequest(over, new Date(t0.getTime() + 3_600_000)).allowed).toBe(true);
  });
});
