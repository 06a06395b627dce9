/**
 * The breach rules, table-driven: ENISA's SE = DPC × EI + CB with a case per band, the exact band boundaries and a
 * case that tells DPC × EI + CB from DPC × (EI + CB); the DPC of each upload data category; every factor's
 * justification and overrides; Art. 34(3)(a) only when every exposed field was unintelligible; the proposal; the
 * clocks of Art. 33 and the deadline watch's marks.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import {
  assessSeverity,
  authorityClock,
  bandOf,
  breachDeadlines,
  breachFieldsSchema,
  CATEGORY_DPC,
  categoryDpc,
  controllerNoticeClock,
  controllerNoticeDelayRequired,
  dataProcessingContext,
  deadlineMarks,
  decisionSchema,
  DEFAULT_PROPOSAL_POLICY,
  enisaSeverity,
  isLateAuthorityNotification,
  personalIdentifierProblem,
  proposeNotices,
  unintelligible,
  type Exposure,
  type Nature,
  type SeverityBand,
} from "../../shared/domain/breaches";
import { DATA_CATEGORIES, dataCategories } from "../../shared/domain/uploads";

describe("ENISA severity: SE = DPC × EI + CB", () => {
  // [DPC, EI, CB, score, band, why]
  const table: Array<[number, number, number, number, SeverityBand, string]> = [
    [1, 0.5, 0, 0.5, "low", "simple data, limited identification, nothing else"],
    [2, 1, 0.25, 2.25, "medium", "behavioural data, fully identifying, known recipients"],
    [3, 1, 0.5, 3.5, "high", "financial data, fully identifying, unknown recipients"],
    [4, 1, 1, 5, "very-high", "sensitive data, fully identifying, unknown recipients and malice"],
    // The boundaries: each band's lower bound belongs to it, the quarter below to the band before.
    [1, 0.75, 1.25, 2, "medium", "exactly 2 is medium"],
    [1, 0.75, 1, 1.75, "low", "1.75 is low"],
    [3, 1, 0, 3, "high", "exactly 3 is high"],
    [2, 1, 0.75, 2.75, "medium", "2.75 is medium"],
    [4, 1, 0, 4, "very-high", "exactly 4 is very high"],
    [3, 1, 0.75, 3.75, "high", "3.75 is high"],
    [4, 0.75, 1, 4, "very-high", "4 reached with EI 0.75"],
    // DPC × EI + CB, not DPC × (EI + CB) (which would be 4 × 0.75 = 3, high), nor (DPC + CB) × EI (1.125).
    [4, 0.25, 0.5, 1.5, "low", "sensitive data that identifies nobody, with unknown recipients"],
    [4, 1, 2, 6, "very-high", "the largest score"],
    [1, 0.25, 0, 0.25, "low", "the smallest score"],
  ];
  it.each(table)("DPC %p × EI %p + CB %p = %p (%s): %s", (dpc, ei, cb, score, band) => {
    expect(enisaSeverity(dpc, ei, cb)).toEqual({ score, band });
    expect(bandOf(score)).toBe(band);
  });

  it("tells DPC × EI + CB from DPC × (EI + CB)", () => {
    const { score } = enisaSeverity(4, 0.25, 0.5);
    expect(score).toBe(4 * 0.25 + 0.5);
    expect(score).not.toBe(4 * (0.25 + 0.5));
  });

  it("refuses factors outside ENISA's ranges", () => {
    for (const [dpc, ei, cb] of [
      [0.5, 1, 0],
      [4.25, 1, 0],
      [2, 0, 0],
      [2, 0.3, 0],
      [2, 1.25, 0],
      [2, 1, -0.25],
      [2, 1, 2.25],
      [Number.NaN, 1, 0],
    ]) {
      expect(() => enisaSeverity(dpc!, ei!, cb!), `${dpc} ${ei} ${cb}`).toThrow(RangeError);
    }
  });
});

describe("DPC from the upload data categories", () => {
  it("maps every category within 1..4, the special categories (Art. 9, 10) to sensitive data (4)", () => {
    expect(Object.keys(CATEGORY_DPC).sort()).toEqual([...dataCategories].sort());
    for (const c of dataCategories) {
      const v = categoryDpc(c);
      expect(v, c).toBeGreaterThanOrEqual(1);
      expect(v, c).toBeLessThanOrEqual(4);
      expect(CATEGORY_DPC[c].justification.length, c).toBeGreaterThan(10);
      if (DATA_CATEGORIES[c].special) expect(v, c).toBe(4);
    }
  });

  const cases: Array<[string[], number]> = [
    [["contact"], 1],
    [["location"], 2],
    [["financial"], 3],
    [["health"], 4],
    [["identity"], 2],
    [["children", "contact"], 2],
    [["contact", "financial", "education"], 3],
    [["criminal", "contact"], 4],
    [[], 1],
  ];
  it.each(cases)("%p scores %p: the highest category", (categories, dpc) => {
    const r = dataProcessingContext(categories as never);
    expect(r.value).toBe(dpc);
    for (const c of categories) expect(r.justification).toContain(c);
  });
});

const nature = (over: Partial<Nature> = {}): Nature => ({ confidentiality: "unknown-recipients", integrity: "not-affected", availability: "not-affected", ...over });
const cipherOnly: Exposure = {
  fields: [
    { field: "payload", form: "ciphertext" },
    { field: "file-name", form: "ciphertext" },
    { field: "data-subjects", form: "ciphertext" },
    { field: "lookup-hashes", form: "keyed-hash" },
  ],
  keysCompromised: false,
};

describe("the assessment explains every factor", () => {
  it("computes each factor with its justification and the formula", () => {
    const a = assessSeverity({ categories: ["health", "contact"], nature: nature(), malicious: true, exposure: null, overrides: {}, dpcOverride: null });
    expect(a.score).toBe(5);
    expect(a.band).toBe("very-high");
    expect(a.formula).toBe("SE = DPC × EI + CB = 4 × 1 + 1 = 5");
    expect(a.factors.dataProcessingContext).toMatchObject({ value: 4, override: null });
    expect(a.factors.easeOfIdentification.justification).toMatch(/contact/);
    expect(a.factors.confidentiality).toMatchObject({ value: 0.5, justification: expect.stringMatching(/unknown number of recipients/) });
    expect(a.factors.malicious).toMatchObject({ value: 0.5 });
    expect(a.circumstances).toBe(1);
  });

  it("keeps an override beside what was computed, with the reason", () => {
    const a = assessSeverity({
      categories: ["health", "contact"],
      nature: nature(),
      malicious: true,
      exposure: null,
      overrides: { easeOfIdentification: { value: 0.25, reason: "only aggregated figures were exposed" }, malicious: { value: 0, reason: "a misdirected e-mail, not an attack" } },
      dpcOverride: { value: 3, reason: "a few lines of a health note without diagnosis" },
    });
    expect(a.factors.easeOfIdentification).toEqual({
      value: 0.25,
      justification: "set by the operator: only aggregated figures were exposed",
      override: { computedValue: 1, computedJustification: expect.any(String), reason: "only aggregated figures were exposed" },
    });
    expect(a.factors.dataProcessingContext.override?.computedValue).toBe(4);
    expect(a.score).toBe(3 * 0.25 + 0.5);
    expect(a.band).toBe("low");
  });

  it("reads the circumstances from the nature: integrity and availability add their points", () => {
    const a = assessSeverity({
      categories: ["location"],
      nature: nature({ confidentiality: "not-affected", integrity: "altered-recoverable", availability: "permanent" }),
      malicious: false,
      exposure: null,
      overrides: {},
      dpcOverride: null,
    });
    expect([a.factors.confidentiality.value, a.factors.integrity.value, a.factors.availability.value, a.factors.malicious.value]).toEqual([0, 0.25, 0.5, 0]);
    expect(a.score).toBe(2 * 0.75 + 0.75);
  });
});

describe("Art. 34(3)(a): only when every exposed field was unintelligible", () => {
  const cases: Array<[string, Exposure | null, Nature, boolean]> = [
    ["only ciphertext and keyed hashes", cipherOnly, nature(), true],
    ["the payload encrypted but a file name readable", { ...cipherOnly, fields: [...cipherOnly.fields, { field: "file-name", form: "plaintext" }] }, nature(), false],
    ["the metadata readable, the payload not exposed", { fields: [{ field: "recipients", form: "plaintext" }], keysCompromised: false }, nature(), false],
    ["only ciphertext, but a key compromised", { ...cipherOnly, keysCompromised: true }, nature(), false],
    ["only ciphertext, but availability lost", cipherOnly, nature({ availability: "temporary" }), false],
    ["exposure not recorded", null, nature(), false],
  ];
  it.each(cases)("%s: %p", (_name, exposure, n, holds) => {
    expect(unintelligible(exposure, n).holds).toBe(holds);
    const proposal = proposeNotices({
      assessment: assessSeverity({ categories: ["health", "contact"], nature: n, malicious: true, exposure, overrides: {}, dpcOverride: null }),
      policy: DEFAULT_PROPOSAL_POLICY,
      nature: n,
      exposure,
      measuresRemovedHighRisk: null,
      disproportionateEffort: null,
      approximatePersons: 10,
      emailSendsPerHour: 100,
      noticeMaxHours: 72,
    });
    expect(proposal.exemptions.some((e) => e.exemption === "a")).toBe(holds);
    expect(proposal.notifyPersons.highRisk).toBe(true);
    expect(proposal.notifyPersons.proposed).toBe(!holds);
    expect(proposal.notifyAuthority.proposed).toBe(!holds);
  });
});

describe("the proposal", () => {
  const base = {
    policy: DEFAULT_PROPOSAL_POLICY,
    nature: nature(),
    exposure: null,
    measuresRemovedHighRisk: null,
    disproportionateEffort: null,
    approximatePersons: null,
    emailSendsPerHour: 100,
    noticeMaxHours: 72,
  };
  const assessed = (categories: string[], malicious: boolean, n: Nature = nature()) =>
    assessSeverity({ categories: categories as never, nature: n, malicious, exposure: null, overrides: {}, dpcOverride: null });

  it("follows the band: low nothing, medium the authority, high also the persons", () => {
    const low = proposeNotices({ ...base, assessment: assessed(["contact"], false, nature({ confidentiality: "exposed-no-evidence-of-misuse" })) });
    expect(low.notifyAuthority.proposed).toBe(false);
    expect(low.notifyPersons.proposed).toBe(false);
    const medium = proposeNotices({ ...base, assessment: assessed(["location", "contact"], false, nature({ confidentiality: "known-recipients" })) });
    expect(medium.notifyAuthority.proposed).toBe(true);
    expect(medium.notifyPersons.proposed).toBe(false);
    const high = proposeNotices({ ...base, assessment: assessed(["health"], true) });
    expect(high.notifyAuthority.proposed).toBe(true);
    expect(high.notifyPersons.proposed).toBe(true);
    expect(high.exemptions).toEqual([]);
  });

  it("follows a configured policy", () => {
    const strict = { ...DEFAULT_PROPOSAL_POLICY, low: { authority: true, persons: false } };
    const p = proposeNotices({ ...base, policy: strict, assessment: assessed(["contact"], false, nature({ confidentiality: "exposed-no-evidence-of-misuse" })) });
    expect(p.notifyAuthority.proposed).toBe(true);
  });

  it("names (b) and (c) when their grounds are given, and (c) when e-mailing everyone would take too long", () => {
    const b = proposeNotices({ ...base, assessment: assessed(["health"], true), measuresRemovedHighRisk: "the recipient's copy was deleted under supervision" });
    expect(b.exemptions.map((e) => e.exemption)).toEqual(["b"]);
    const c = proposeNotices({ ...base, assessment: assessed(["health"], true), approximatePersons: 100 * 72 + 1 });
    expect(c.exemptions.map((e) => e.exemption)).toEqual(["c"]);
    expect(c.exemptions[0]!.reason).toMatch(/73 hours/);
    const notC = proposeNotices({ ...base, assessment: assessed(["health"], true), approximatePersons: 100 * 72 });
    expect(notC.exemptions).toEqual([]);
  });
});

describe("the clocks", () => {
  const aware = new Date("2026-03-02T10:00:00.000Z");
  const h = (n: number) => new Date(aware.getTime() + n * 3_600_000);

  it("processor to controller: target awareAt + the setting, limit awareAt + 72 h", () => {
    expect(controllerNoticeClock(aware, 24, null, h(1))).toMatchObject({ targetAt: h(24).toISOString(), limitAt: h(72).toISOString(), status: "pending" });
    expect(controllerNoticeClock(aware, 24, null, h(25)).status).toBe("past-target");
    expect(controllerNoticeClock(aware, 24, null, h(73)).status).toBe("past-limit");
    expect(controllerNoticeClock(aware, 24, h(24), h(30)).status).toBe("on-target");
    expect(controllerNoticeClock(aware, 24, h(30), h(30)).status).toBe("within-limit");
    expect(controllerNoticeClock(aware, 24, h(72.5), h(80)).status).toBe("late");
    expect(controllerNoticeClock(aware, 6, null, h(7)).targetAt).toBe(h(6).toISOString());
  });

  it("controller to authority: controllerNotifiedAt + 72 h, with awareAt + 72 h as the product's target", () => {
    const told = h(5);
    expect(authorityClock(aware, null, { notifiedAt: null, notNotified: false }, h(80))).toMatchObject({ deadlineAt: null, productTargetAt: h(72).toISOString(), status: "waiting-for-controller-notice" });
    expect(authorityClock(aware, told, { notifiedAt: null, notNotified: false }, h(76))).toMatchObject({ deadlineAt: h(77).toISOString(), status: "open" });
    expect(authorityClock(aware, told, { notifiedAt: null, notNotified: false }, h(77.01)).status).toBe("overdue");
    expect(authorityClock(aware, told, { notifiedAt: h(77), notNotified: false }, h(90)).status).toBe("notified");
    expect(authorityClock(aware, told, { notifiedAt: h(78), notNotified: false }, h(90)).status).toBe("notified-late");
    expect(authorityClock(aware, told, { notifiedAt: null, notNotified: true }, h(90)).status).toBe("not-notified");
    expect(isLateAuthorityNotification(h(77), told)).toBe(false);
    expect(isLateAuthorityNotification(new Date(h(77).getTime() + 1), told)).toBe(true);
    expect(isLateAuthorityNotification(h(500), null)).toBe(false);
  });

  it("asks for a reason when the controller notice cannot be on target", () => {
    expect(controllerNoticeDelayRequired(aware, 24, h(24))).toBe(false);
    expect(controllerNoticeDelayRequired(aware, 24, new Date(h(24).getTime() + 1))).toBe(true);
  });

  it("marks 24 h, 12 h and 2 h before each deadline and when it passes, leaving out reminders already past", () => {
    const d = breachDeadlines(aware, 24, h(3));
    expect(d.authority?.toISOString()).toBe(h(75).toISOString());
    expect(deadlineMarks(h(72), h(1)).map((m) => [m.stage, m.dueAt.toISOString()])).toEqual([
      ["reminder-24h", h(48).toISOString()],
      ["reminder-12h", h(60).toISOString()],
      ["reminder-2h", h(70).toISOString()],
      ["overdue", h(72).toISOString()],
    ]);
    expect(deadlineMarks(h(24), h(13)).map((m) => m.stage)).toEqual(["reminder-2h", "overdue"]);
    expect(deadlineMarks(h(24), h(30)).map((m) => m.stage)).toEqual(["overdue"]);
  });
});

describe("what breach texts may hold", () => {
  it("refuses e-mail addresses and CPR numbers, accepts ordinary text", () => {
    expect(personalIdentifierProblem("write to anna.hansen@example.dk")).toMatch(/e-mail/);
    expect(personalIdentifierProblem("the person 010190-1234 was")).toMatch(/CPR/);
    expect(personalIdentifierProblem("0101901234")).toMatch(/CPR/);
    expect(personalIdentifierProblem("A misconfigured storage account exposed 1,200 uploads for 3 hours on 2026-03-01.")).toBeUndefined();
    expect(personalIdentifierProblem("contact the DPO at the usual address")).toBeUndefined();
  });

  it("checks every text of a breach and the decision's rules", () => {
    const fields = {
      awareAt: "2026-03-02T10:00:00Z",
      nature: nature(),
      malicious: false,
      description: "see anna@example.dk",
      cause: "a bug",
      scope: [],
    };
    const r = breachFieldsSchema.safeParse(fields);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(["description"]);
    expect(breachFieldsSchema.safeParse({ ...fields, description: "ok", nature: { confidentiality: "not-affected", integrity: "not-affected", availability: "not-affected" } }).success).toBe(false);
    expect(breachFieldsSchema.safeParse({ ...fields, description: "ok" }).data?.awareAt).toBe("2026-03-02T10:00:00.000Z");
    expect(decisionSchema.safeParse({ notifyAuthority: true, notifyPersons: true, exemption: "a", reasons: "x" }).success).toBe(false);
    expect(decisionSchema.safeParse({ notifyAuthority: true, notifyPersons: false, exemption: "a", reasons: "x" }).success).toBe(true);
  });
});
