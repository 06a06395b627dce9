/**
 * The pure rules of data-subject requests: the deadlines at their edges (end of month, late evening UTC, DST, a
 * legal due date on a weekend, extension limits from the 30th and 31st), the state machine, codes, tokens, details.
 */
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import {
  addMonthsClamped,
  assertDsrTransition,
  canTransition,
  daysLeft,
  deadlineMilestones,
  detailsProblem,
  DSR_STATUSES,
  DSR_TYPE_LABELS,
  DSR_TYPES,
  dueAtFor,
  endOfLocalDate,
  extensionLimitFor,
  FINAL_DSR_STATUSES,
  formatVerificationToken,
  isCalendarDate,
  isOverdue,
  legalDueAtFor,
  newCode,
  newRequestId,
  newTokenSecret,
  parseVerificationToken,
  planExtension,
  REJECTION_GROUND_LABELS,
  REQUEST_ID_PATTERN,
  weekday,
  type DsrStatus,
} from "../../shared/domain/subject-requests";
import { localDate } from "../../shared/domain/time";
import { LANGUAGES } from "../../shared/domain/language";

const CPH = "Europe/Copenhagen";
const iso = (d: Date) => d.toISOString();

describe("dueAt: the end of the day, in the tenant's zone, 28 days after the day of receipt", () => {
  it("received 31 January: due 28 February (and the legal date, a Sunday, moves to Monday 1 March)", () => {
    const received = new Date("2027-01-31T10:00:00Z");
    expect(iso(dueAtFor(received, CPH))).toBe("2027-02-28T22:59:59.999Z");
    expect(weekday("2027-02-28")).toBe(0);
    expect(iso(legalDueAtFor(received, CPH))).toBe("2027-03-01T22:59:59.999Z");
    // In a leap year the month has a 29th: four weeks is still the 28th, the month ends on the 29th (a Tuesday).
    expect(iso(dueAtFor(new Date("2028-01-31T10:00:00Z"), CPH))).toBe("2028-02-28T22:59:59.999Z");
    expect(iso(legalDueAtFor(new Date("2028-01-31T10:00:00Z"), CPH))).toBe("2028-02-29T22:59:59.999Z");
  });

  it("received at 23:59 UTC, already the next day in Copenhagen: the next day is the day of receipt there", () => {
    const received = new Date("2027-01-10T23:59:00Z");
    expect(localDate(received, CPH)).toBe("2027-01-11");
    expect(iso(dueAtFor(received, CPH))).toBe("2027-02-08T22:59:59.999Z");
    // A tenant in UTC counts from 10 January.
    expect(iso(dueAtFor(received, "UTC"))).toBe("2027-02-07T23:59:59.999Z");
    expect(iso(legalDueAtFor(received, CPH))).toBe("2027-02-11T22:59:59.999Z");
  });

  it("across a DST change the due day ends at local midnight, summer time", () => {
    // Clocks go forward on 28 March 2027; received in winter time, due in summer time.
    const received = new Date("2027-03-10T12:00:00Z");
    expect(iso(dueAtFor(received, CPH))).toBe("2027-04-07T21:59:59.999Z");
    // And back on 31 October 2027: due on the 25-hour day itself.
    expect(iso(dueAtFor(new Date("2027-10-03T08:00:00Z"), CPH))).toBe("2027-10-31T22:59:59.999Z");
  });

  it("a legal due date on a Saturday moves to the Monday after (public holidays are not applied)", () => {
    const received = new Date("2027-01-13T09:00:00Z");
    expect(weekday("2027-02-13")).toBe(6);
    expect(iso(legalDueAtFor(received, CPH))).toBe("2027-02-15T22:59:59.999Z");
    // 1 January 2027 is a public holiday in Denmark and a Friday: it stays the legal due date (holidays not applied).
    expect(iso(legalDueAtFor(new Date("2026-12-01T09:00:00Z"), CPH))).toBe("2027-01-01T22:59:59.999Z");
  });

  it("for any instant and zone: due 28 local days after receipt at the day's last millisecond, never after the legal date, which is a weekday", () => {
    const zones = [CPH, "UTC", "America/Santiago", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"];
    fc.assert(
      fc.property(fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2060-01-01T00:00:00Z"), noInvalidDate: true }), fc.constantFrom(...zones), (received, zone) => {
        const due = dueAtFor(received, zone);
        const legal = legalDueAtFor(received, zone);
        const receiptDay = localDate(received, zone);
        expect(localDate(due, zone)).toBe(localDate(new Date(Date.parse(receiptDay + "T12:00:00Z") + 28 * 86_400_000), "UTC"));
        // The next millisecond is the next local day.
        expect(localDate(new Date(due.getTime() + 1), zone) > localDate(due, zone)).toBe(true);
        expect(due.getTime()).toBeLessThanOrEqual(legal.getTime());
        expect([0, 6]).not.toContain(weekday(localDate(legal, zone)));
        expect(legal.getTime()).toBeGreaterThan(received.getTime());
      }),
      { numRuns: 300 },
    );
  });
});

describe("extension: once, before dueAt, to at most two months after legalDueAt (clamped)", () => {
  const open = (received: string) => {
    const r = new Date(received);
    return { status: "verified" as DsrStatus, dueAt: dueAtFor(r, CPH), legalDueAt: legalDueAtFor(r, CPH), extended: false };
  };

  it("from a legal due date on the 31st and the 30th: clamped to the last day of a shorter month", () => {
    // Legal due 31 December 2026 (no receipt date gives it by counting: November has no 31st) → 28 February 2027.
    expect(iso(extensionLimitFor(endOfLocalDate("2026-12-31", CPH), CPH))).toBe("2027-02-28T22:59:59.999Z");
    // Received 1 December local time (23:30 UTC on 30 November): legal due 1 January, limit 1 March.
    expect(iso(extensionLimitFor(legalDueAtFor(new Date("2026-11-30T23:30:00Z"), CPH), CPH))).toBe("2027-03-01T22:59:59.999Z");
    // Legal due 30 December 2026 → 30 February does not exist → 28 February 2027.
    const dec30 = legalDueAtFor(new Date("2026-11-30T10:00:00Z"), CPH);
    expect(localDate(dec30, CPH)).toBe("2026-12-30");
    expect(iso(extensionLimitFor(dec30, CPH))).toBe("2027-02-28T22:59:59.999Z");
    // Received 31 December 2027: legal due Monday 31 January 2028 → 31 March 2028 (summer time).
    const jan31 = legalDueAtFor(new Date("2027-12-31T12:00:00Z"), CPH);
    expect(localDate(jan31, CPH)).toBe("2028-01-31");
    expect(iso(extensionLimitFor(jan31, CPH))).toBe("2028-03-31T21:59:59.999Z");
    // Received 31 March 2027: April has no 31st, legal due Friday 30 April → 30 June.
    const apr30 = legalDueAtFor(new Date("2027-03-31T12:00:00Z"), CPH);
    expect(localDate(apr30, CPH)).toBe("2027-04-30");
    expect(iso(extensionLimitFor(apr30, CPH))).toBe("2027-06-30T21:59:59.999Z");
    // Legal due 31 August 2027 → 31 October, the day winter time begins (a Sunday: the limit does not move forward).
    const aug31 = legalDueAtFor(new Date("2027-07-31T12:00:00Z"), CPH);
    expect(iso(extensionLimitFor(aug31, CPH))).toBe("2027-10-31T22:59:59.999Z");
    expect(addMonthsClamped("2028-12-31", 2)).toBe("2029-02-28");
    expect(addMonthsClamped("2027-12-31", 2)).toBe("2028-02-29");
  });

  it("defaults to the limit and accepts any later date up to it", () => {
    const req = open("2026-11-30T10:00:00Z");
    const now = new Date("2026-12-10T10:00:00Z");
    const max = planExtension(req, now, CPH, undefined);
    expect(max.ok && iso(max.dueAt)).toBe("2027-02-28T22:59:59.999Z");
    const mid = planExtension(req, now, CPH, "2027-01-20");
    expect(mid.ok && iso(mid.dueAt)).toBe("2027-01-20T22:59:59.999Z");
  });

  it("refuses a second extension, one after the due date, a closed request, a date beyond the limit or not later than now due", () => {
    const req = open("2026-11-30T10:00:00Z");
    const before = new Date("2026-12-10T10:00:00Z");
    expect(planExtension({ ...req, extended: true }, before, CPH, undefined)).toMatchObject({ ok: false, kind: "conflict" });
    // The last millisecond of the due day is still in time; the next one is not.
    expect(planExtension(req, req.dueAt, CPH, undefined).ok).toBe(true);
    expect(planExtension(req, new Date(req.dueAt.getTime() + 1), CPH, undefined)).toMatchObject({ ok: false, kind: "conflict" });
    expect(planExtension({ ...req, status: "completed" }, before, CPH, undefined)).toMatchObject({ ok: false, kind: "conflict" });
    expect(planExtension(req, before, CPH, "2027-03-01")).toMatchObject({ ok: false, kind: "invalid" });
    expect(planExtension(req, before, CPH, localDate(req.dueAt, CPH))).toMatchObject({ ok: false, kind: "invalid" });
    expect(planExtension(req, before, CPH, "2026-12-01")).toMatchObject({ ok: false, kind: "invalid" });
  });
});

describe("the state machine", () => {
  it("allows exactly the documented transitions", () => {
    const allowed = new Set(
      [
        "awaiting-verification>verified",
        "awaiting-verification>verification-failed",
        "awaiting-verification>closed-unverified",
        "awaiting-verification>rejected",
        "awaiting-verification>cancelled",
        "awaiting-verification>needs-attention",
        "verification-failed>verified",
        "verification-failed>closed-unverified",
        "verification-failed>rejected",
        "verification-failed>cancelled",
        "verification-failed>needs-attention",
        "verified>in-progress",
        "verified>completed",
        "verified>rejected",
        "verified>cancelled",
        "verified>needs-attention",
        "in-progress>completed",
        "in-progress>rejected",
        "in-progress>cancelled",
        "in-progress>needs-attention",
        "completed>needs-attention",
        "rejected>needs-attention",
        "closed-unverified>needs-attention",
      ].concat(DSR_STATUSES.filter((s) => s !== "needs-attention").map((s) => `needs-attention>${s}`)),
    );
    for (const from of DSR_STATUSES) {
      for (const to of DSR_STATUSES) {
        if (from === to) continue;
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(allowed.has(`${from}>${to}`));
      }
    }
  });

  it("never leaves cancelled, never reopens a final request except to show a failed notice, and never skips verification", () => {
    for (const to of DSR_STATUSES) if (to !== "cancelled") expect(() => assertDsrTransition("cancelled", to)).toThrow(/cannot go from cancelled/);
    for (const from of FINAL_DSR_STATUSES) for (const to of DSR_STATUSES) if (to !== from && to !== "needs-attention") expect(canTransition(from, to), `${from}>${to}`).toBe(false);
    expect(canTransition("awaiting-verification", "in-progress")).toBe(false);
    expect(canTransition("awaiting-verification", "completed")).toBe(false);
  });

  it("is overdue only while open and past the due date", () => {
    const dueAt = new Date("2027-02-28T22:59:59.999Z");
    expect(isOverdue({ status: "verified", dueAt }, dueAt)).toBe(false);
    expect(isOverdue({ status: "verified", dueAt }, new Date(dueAt.getTime() + 1))).toBe(true);
    expect(isOverdue({ status: "needs-attention", dueAt }, new Date(dueAt.getTime() + 1))).toBe(true);
    expect(isOverdue({ status: "completed", dueAt }, new Date(dueAt.getTime() + 1))).toBe(false);
    expect(daysLeft(dueAt, new Date("2027-02-21T10:00:00Z"), CPH)).toBe(7);
    expect(daysLeft(dueAt, new Date("2027-03-02T10:00:00Z"), CPH)).toBe(-2);
  });

  it("reminds 7 and 2 days before the due date and marks it overdue the millisecond after", () => {
    const dueAt = new Date("2027-02-28T22:59:59.999Z");
    expect(deadlineMilestones(dueAt).map((m) => [m.stage, iso(m.dueAt)])).toEqual([
      ["reminder", "2027-02-21T22:59:59.999Z"],
      ["escalation", "2027-02-26T22:59:59.999Z"],
      ["overdue", "2027-02-28T23:00:00.000Z"],
    ]);
  });
});

describe("codes, tokens, ids and details", () => {
  it("codes are six digits from the whole range, leading zeros kept", () => {
    expect(newCode(() => 7)).toBe("000007");
    expect(newCode((max) => max - 1)).toBe("999999");
    for (let i = 0; i < 200; i++) expect(newCode()).toMatch(/^[0-9]{6}$/);
  });

  it("tokens carry the ids and 256 random bits, and nothing else parses as one", () => {
    const id = newRequestId();
    expect(id).toMatch(REQUEST_ID_PATTERN);
    const secret = newTokenSecret();
    const token = formatVerificationToken("tn-abcdefghijklmnop", id, secret);
    expect(parseVerificationToken(token)).toEqual({ tenantId: "tn-abcdefghijklmnop", requestId: id, secret });
    for (const bad of ["", token + "x", token.slice(0, -1), token.replace("tn-", "tx-"), `tn-abcdefghijklmnop.${id}`, `${token}.x`, token.toUpperCase()]) {
      expect(parseVerificationToken(bad), bad).toBeUndefined();
    }
  });

  it("details fit their type", () => {
    expect(detailsProblem("rectification", undefined)?.path).toBe("details.field");
    expect(detailsProblem("rectification", { field: "email" })?.path).toBe("details.value");
    expect(detailsProblem("rectification", { field: "email", value: "new@example.com" })).toBeUndefined();
    expect(detailsProblem("access", { field: "email", value: "x" })?.path).toBe("details.field");
    expect(detailsProblem("erasure", { purposes: ["marketing"] })?.path).toBe("details.purposes");
    expect(detailsProblem("objection", { purposes: ["marketing"] })).toBeUndefined();
    expect(detailsProblem("withdraw-consent", undefined)).toBeUndefined();
  });

  it("calendar dates exist; every type and ground has words in every language", () => {
    expect(isCalendarDate("2027-02-28")).toBe(true);
    expect(isCalendarDate("2027-02-29")).toBe(false);
    expect(isCalendarDate("2027-13-01")).toBe(false);
    expect(iso(endOfLocalDate("2027-06-30", "Pacific/Kiritimati"))).toBe("2027-06-30T09:59:59.999Z");
    for (const lang of LANGUAGES) {
      for (const t of DSR_TYPES) expect(DSR_TYPE_LABELS[lang][t].length, `${lang} ${t}`).toBeGreaterThan(5);
      for (const g of Object.keys(REJECTION_GROUND_LABELS.en)) expect(REJECTION_GROUND_LABELS[lang][g as keyof (typeof REJECTION_GROUND_LABELS)["en"]]).toBeTruthy();
    }
  });
});
