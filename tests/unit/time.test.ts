import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { endOfLocalDay, formatDate, formatInstant, isTimeZone, localDate } from "../../shared/domain/time";

const ZONES = ["Europe/Copenhagen", "UTC", "America/Santiago", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"];

describe("time zones", () => {
  it("knows IANA names and refuses others", () => {
    for (const z of ["Europe/Copenhagen", "Europe/Amsterdam", "UTC", "America/New_York"]) expect(isTimeZone(z), z).toBe(true);
    for (const z of ["", "Europe/Atlantis", "CET+1", "x".repeat(65), "../etc/passwd"]) expect(isTimeZone(z), z).toBe(false);
  });

  it("ends a Copenhagen day at 23:59:59.999 local time, in winter and in summer", () => {
    expect(endOfLocalDay(new Date("2027-02-28T10:00:00Z"), "Europe/Copenhagen").toISOString()).toBe("2027-02-28T22:59:59.999Z");
    expect(endOfLocalDay(new Date("2026-07-01T10:00:00Z"), "Europe/Copenhagen").toISOString()).toBe("2026-07-01T21:59:59.999Z");
    // 23:30 UTC on 28 February is already 1 March in Copenhagen.
    expect(endOfLocalDay(new Date("2027-02-28T23:30:00Z"), "Europe/Copenhagen").toISOString()).toBe("2027-03-01T22:59:59.999Z");
  });

  it("follows the DST change days (23 and 25 hours long)", () => {
    // 29 March 2026: clocks go forward at 02:00; the day ends at 22:00 UTC (CEST).
    expect(endOfLocalDay(new Date("2026-03-29T00:30:00Z"), "Europe/Copenhagen").toISOString()).toBe("2026-03-29T21:59:59.999Z");
    // 25 October 2026: clocks go back at 03:00; the day ends at 23:00 UTC (CET).
    expect(endOfLocalDay(new Date("2026-10-25T12:00:00Z"), "Europe/Copenhagen").toISOString()).toBe("2026-10-25T22:59:59.999Z");
  });

  it("end of day is the last instant of the same local date, for any instant and zone", () => {
    fc.assert(
      fc.property(fc.date({ min: new Date("1990-01-01T00:00:00Z"), max: new Date("2060-01-01T00:00:00Z"), noInvalidDate: true }), fc.constantFrom(...ZONES), (d, zone) => {
        const end = endOfLocalDay(d, zone);
        expect(end.getTime()).toBeGreaterThanOrEqual(d.getTime());
        expect(localDate(end, zone)).toBe(localDate(d, zone));
        expect(localDate(new Date(end.getTime() + 1), zone) > localDate(d, zone)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("formats dates for people in English and Danish, in the tenant's zone", () => {
    const t = new Date("2026-11-30T13:05:00Z");
    expect(formatInstant(t, "en", "Europe/Copenhagen")).toMatch(/30 November 2026.*14:05/);
    expect(formatInstant(t, "da", "Europe/Copenhagen")).toMatch(/30\. november 2026.*14[.:]05/);
    expect(formatDate(new Date("2027-02-28T22:59:59.999Z"), "da", "Europe/Copenhagen")).toBe("28. februar 2027");
    expect(formatDate(new Date("2027-02-28T22:59:59.999Z"), "en", "Europe/Copenhagen")).toBe("28 February 2027");
  });
});
