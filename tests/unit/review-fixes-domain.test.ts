/**
 * Review B's findings, the pure rules: the order consent decisions take effect in (#1), the lower bound of reported
 * times (#6, #8), IPv6 truncation of addresses that embed an IPv4 one (#7), Art. 34(3)(a) and integrity (#3), the
 * rejection ground of a verified request (#4), the personal-data filter of breach texts (#9), queue message ids (#16)
 * and singular/plural in the e-mail templates (#15).
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { checkConsent, decisionOrder, givenAtProblem, parseIp, projectStates, type DecisionFact } from "../../shared/domain/consent";
import { assessSeverity, breachFieldProblems, DEFAULT_PROPOSAL_POLICY, personalIdentifierProblem, proposeNotices, unintelligible, type Exposure, type Nature } from "../../shared/domain/breaches";
import { publicCommunicationSchema } from "../../shared/domain/breach-persons";
import { rejectionGroundProblem } from "../../shared/domain/subject-requests";
import { factDateTime } from "../../shared/http/schemas";
import { breachJobMessage, deadlineNoticeMessage, notificationMessage, purgeBatchMessage, rewrapMessage, subjectRequestStepMessage, webhookAttemptMessage } from "../../shared/usecases/messages";
import { bundledTemplatesDir, EmailTemplates } from "../../shared/email/templates";

const fact = (id: string, decision: DecisionFact["decision"], givenAt: string, recordedAt: string, seq: number | null = null): DecisionFact => ({
  id,
  purposeKey: "newsletter",
  decision,
  givenAt,
  recordedAt,
  noticeVersion: 1,
  seq,
});

describe("#1 consent: a decision takes effect at the earlier of givenAt and its recording", () => {
  const t0 = "2026-11-30T12:00:00.000Z";
  const plus = (s: number) => new Date(Date.parse(t0) + s * 1000).toISOString();

  it("a grant dated 290 s ahead does not outrank a withdrawal recorded 10 s after it (the person's own, by link)", () => {
    const grant = fact("ce-a", "granted", plus(290), t0, 1);
    const withdrawal = fact("ce-b", "withdrawn", plus(10), plus(10), 2);
    expect(checkConsent([grant, withdrawal], "newsletter")).toBe("withdrawn");
    expect(projectStates([withdrawal, grant])[0]!.decision).toBe("withdrawn");
    expect(decisionOrder(grant, withdrawal)).toBeLessThan(0);
  });

  it("a future-dated grant still counts when nothing came after it", () => {
    expect(checkConsent([fact("ce-a", "granted", plus(290), t0, 1)], "newsletter")).toBe("granted");
  });

  it("a future-dated denial recorded before a grant does not outrank the grant either", () => {
    const denial = fact("ce-a", "denied", plus(200), t0, 1);
    const grant = fact("ce-b", "granted", plus(30), plus(30), 2);
    expect(checkConsent([denial, grant], "newsletter")).toBe("granted");
  });

  it("keeps: a backdated import of an old grant, recorded after a withdrawal, does not undo it", () => {
    const withdrawal = fact("ce-a", "withdrawn", "2026-02-01T10:00:00.000Z", "2026-02-01T10:00:00.000Z", 1);
    const imported = fact("ce-b", "granted", "2026-01-01T10:00:00.000Z", "2026-03-01T10:00:00.000Z", 2);
    expect(checkConsent([withdrawal, imported], "newsletter")).toBe("withdrawn");
  });
});

describe("#6/#8 reported times have a lower bound (2000-01-01)", () => {
  const now = new Date("2026-11-30T12:00:00Z");
  it("givenAt 0001-01-01 and 1999-12-31 are refused, 2000-01-01 is not", () => {
    expect(givenAtProblem(new Date("0001-01-01T00:00:00Z"), now)).toMatch(/2000-01-01/);
    expect(givenAtProblem(new Date("1999-12-31T23:59:59Z"), now)).toMatch(/2000-01-01/);
    expect(givenAtProblem(new Date("2000-01-01T00:00:00Z"), now)).toBeUndefined();
  });
  it("the API's schema for reported times refuses them: receivedAt, givenAt, awareAt, at", () => {
    for (const v of ["0001-01-01T00:00:00Z", "1582-10-10T00:00:00Z", "0099-12-31T00:00:00Z", "1999-12-31T23:59:59Z"]) expect(factDateTime.safeParse(v).success, v).toBe(false);
    expect(factDateTime.safeParse("2026-01-01T00:00:00+01:00").success).toBe(true);
  });
  it("breach fields: awareAt, occurredFrom, occurredTo, followUp.expectedBy", () => {
    const f = { awareAt: "0001-01-01T00:00:00.000Z", occurredFrom: "0001-01-01T00:00:00.000Z", occurredTo: "1990-01-01T00:00:00.000Z", followUp: { missing: "x", expectedBy: "1999-01-01T00:00:00.000Z" } };
    const paths = breachFieldProblems(f as never, now).map(([p]) => p);
    expect(paths).toEqual(expect.arrayContaining(["awareAt", "occurredFrom", "occurredTo", "followUp.expectedBy"]));
  });
  it("a public communication's publishedAt", () => {
    expect(publicCommunicationSchema.safeParse({ text: "We were breached; here is what to do about it.", where: "https://example.com/notice", publishedAt: "0001-01-01T00:00:00Z" }).success).toBe(false);
  });
});

describe("#7 IP addresses that embed an IPv4 address keep no more of it than /24", () => {
  it("6to4 (2002::/16) is truncated to /40: the embedded IPv4's /24", () => {
    expect(parseIp("2002:cb00:714d::1")).toMatchObject({ kind: "ipv6", truncated: "2002:cb00:7100::/40" });
    expect(parseIp("2002:cb00:71ff:1234::1")!.truncated).toBe("2002:cb00:7100::/40");
  });
  it("IPv4-mapped is the IPv4 address (/24); Teredo and NAT64 keep nothing of the client's IPv4 in the /48", () => {
    expect(parseIp("::ffff:203.0.113.77")!.truncated).toBe("203.0.113.0/24");
    // Teredo: 2001:0:<server v4>:<flags>:<port>:<client v4 xor>; the /48 keeps the first half of the server's address.
    expect(parseIp("2001:0:4136:e378:8000:63bf:3fff:fdd2")!.truncated).toBe("2001:0:4136::/48");
    expect(parseIp("64:ff9b::203.0.113.77")!.truncated).toBe("64:ff9b::/48");
    expect(parseIp("64:ff9b:1::cb00:714d")!.truncated).toBe("64:ff9b:1::/48");
  });
  it("an ordinary IPv6 address is still /48", () => {
    expect(parseIp("2001:db8:abcd:12::1")!.truncated).toBe("2001:db8:abcd::/48");
  });
});

const nature = (over: Partial<Nature> = {}): Nature => ({ confidentiality: "unknown-recipients", integrity: "not-affected", availability: "not-affected", ...over });
const cipherOnly: Exposure = { fields: [{ field: "payload", form: "ciphertext" }], keysCompromised: false };

describe("#3 Art. 34(3)(a): encryption does not answer a loss of integrity", () => {
  it.each([["altered-unrecoverable"], ["altered-recoverable"], ["altered-no-evidence-of-misuse"]] as const)("integrity %s: not unintelligible, no exemption (a), the authority notice proposed", (integrity) => {
    const n = nature({ integrity });
    expect(unintelligible(cipherOnly, n).holds).toBe(false);
    const proposal = proposeNotices({
      assessment: assessSeverity({ categories: ["health"], nature: n, malicious: true, exposure: cipherOnly, overrides: {}, dpcOverride: null }),
      policy: DEFAULT_PROPOSAL_POLICY,
      nature: n,
      exposure: cipherOnly,
      measuresRemovedHighRisk: null,
      disproportionateEffort: null,
      approximatePersons: 10,
      emailSendsPerHour: 100,
      noticeMaxHours: 72,
    });
    expect(proposal.exemptions.map((e) => e.exemption)).not.toContain("a");
    expect(proposal.notifyAuthority.proposed).toBe(true);
  });
  it("confidentiality only, all ciphertext: (a) still holds", () => {
    expect(unintelligible(cipherOnly, nature()).holds).toBe(true);
  });
});

describe("#4 the ground identity-not-verified only for a request not verified", () => {
  it("is refused for a verified request, allowed for an unverified one; other grounds always", () => {
    expect(rejectionGroundProblem("identity-not-verified", "2026-11-30T10:00:00.000Z")).toMatch(/verified/);
    expect(rejectionGroundProblem("identity-not-verified", null)).toBeUndefined();
    expect(rejectionGroundProblem("excessive", "2026-11-30T10:00:00.000Z")).toBeUndefined();
    expect(rejectionGroundProblem("manifestly-unfounded", null)).toBeUndefined();
  });
});

describe("#9 breach texts: e-mail addresses and CPR numbers however written", () => {
  it.each([
    ["full-width @", "contact john.doe＠example.com"],
    ["small @ (U+FE6B)", "john.doe﹫example.com"],
    ["no top-level domain", "john.doe@example"],
    ["percent-encoded", "mailto:john.doe%40example.com"],
    ["HTML reference", "john.doe&#64;example.com"],
    ["CPR with a space", "010203 1234"],
    ["CPR with a dot", "010203.1234"],
    ["CPR in full-width digits", "０１０２０３-１２３４"],
    ["CPR with a dash (was refused already)", "010203-1234"],
    ["CPR without separator (was refused already)", "0102031234"],
  ])("refuses %s", (_name, text) => {
    expect(personalIdentifierProblem(text)).toBeDefined();
  });
  it.each([["plain prose", "The backup was restored at 14:00 on 2026-11-30; 3 @ 5 minutes each."], ["a version and a time", "Version 2.0 rolled out at 10:00"], ["a case number", "J.nr. 2026-1234-5678"]])("keeps %s", (_n, text) => {
    expect(personalIdentifierProblem(text)).toBeUndefined();
  });
});

describe("#16 queue messages: ids must have the service's id shapes", () => {
  const tenantId = "tn-abcdefghijklmnop";
  it.each([
    ["subject-request step", subjectRequestStepMessage, { tenantId, requestId: "../../x", step: "start", seq: 1 }],
    ["subject-request step, tenant", subjectRequestStepMessage, { tenantId: "tn-x/../y", requestId: "dsr-" + "a".repeat(26), step: "start", seq: 1 }],
    ["breach job", breachJobMessage, { kind: "sync-tenant", breachId: "../../x", tenantId }],
    ["breach job, tenant", breachJobMessage, { kind: "sync-tenant", breachId: "br-" + "0".repeat(20), tenantId: "x?y" }],
    ["notification", notificationMessage, { kind: "first-download", tenantId, uploadId: "up-#" }],
    ["webhook attempt", webhookAttemptMessage, { tenantId, deliveryId: "a/b", attempt: 1 }],
    ["deadline notice", deadlineNoticeMessage, { tenantId, milestoneId: "dl-../x" }],
    ["rewrap", rewrapMessage, { tenantId: "tn-\\x" }],
    ["purge batch", purgeBatchMessage, { sweepId: "sw/../x", batch: 0, class: "safedata" }],
  ] as const)("%s: a forged id is refused", (_n, schema, msg) => {
    expect((schema as { safeParse: (v: unknown) => { success: boolean } }).safeParse(msg).success).toBe(false);
  });
  it("the ids the service makes pass", () => {
    expect(subjectRequestStepMessage.safeParse({ tenantId, requestId: "dsr-" + "a".repeat(26), step: "verification-email", seq: 2 }).success).toBe(true);
    expect(breachJobMessage.safeParse({ kind: "person-batch", breachId: "br-" + "0".repeat(20), tenantId, version: 1, batch: "1.2" }).success).toBe(true);
    expect(webhookAttemptMessage.safeParse({ tenantId, deliveryId: "msg_" + "A".repeat(26), attempt: 1 }).success).toBe(true);
    expect(deadlineNoticeMessage.safeParse({ tenantId: "_system", milestoneId: "dl-" + "0".repeat(40) }).success).toBe(true);
    expect(purgeBatchMessage.safeParse({ sweepId: "sw-20261130T162500-abcdef", batch: 0, class: "safedata" }).success).toBe(true);
  });
});

describe("#15 templates: the singular for 1, in English and Danish", () => {
  const templates = new EmailTemplates(bundledTemplatesDir());
  const reminder = { requestId: "dsr-x", requestKind: "access", receivedDate: "1 Nov", dueDate: "3 Dec", status: "verified", extended: false, controllerName: "Shop" };
  it("the DSR reminder two days out on a weekend says 1 day, never '1 days' / '1 dage'", () => {
    const en = templates.render("dsr-tenant-reminder", "en", { ...reminder, daysLeft: 1 });
    expect(en.text).toContain("1 day from now");
    expect(en.text).not.toMatch(/\b1 days\b/);
    const da = templates.render("dsr-tenant-reminder", "da", { ...reminder, daysLeft: 1 });
    expect(da.text).toContain("om 1 dag.");
    expect(da.html).not.toMatch(/\b1 dage\b/);
    expect(templates.render("dsr-tenant-reminder", "en", { ...reminder, daysLeft: 2 }).text).toContain("2 days from now");
  });
  it("other counts: code minutes, package days, verification days, hours left", () => {
    const v = templates.render("dsr-closed-unverified", "en", { controllerName: "Shop", requestId: "dsr-x", receivedDate: "1 Nov", requestType: "access", verifyDays: 1 });
    expect(v.text).toContain("within 1 day,");
    const d = templates.render("breach-deadline", "da", { breachId: "br-1", deadline: "frist", deadlineAt: "x", hoursLeft: 1, passed: false, isControllerNotice: false, isAuthority: false, controllerName: "Shop" });
    expect(d.subject).toContain("1 time tilbage");
    expect(d.text).not.toMatch(/\b1 timer\b/);
  });
});
