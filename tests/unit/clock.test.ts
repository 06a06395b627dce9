/** The movable clocks: forward only, and a move to a time lands exactly on it even while the wall clock ticks. */
import { describe, it } from "@jest/globals";
import fc from "fast-check";
import { ClockError, ManualClock, OffsetClock } from "../../shared/domain/clock";
import { expect } from "../helpers/expect";

/** A wall clock that moves `step` ms on every read, as a busy machine's does between two statements. */
const tickingWall = (start: number, step: number) => {
  let t = start;
  return () => (t += step);
};

describe("OffsetClock", () => {
  it("moveTo answers exactly the target, and keeps ticking from there", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 10 ** 12 }), (step, ahead) => {
        const clock = new OffsetClock(tickingWall(1_700_000_000_000, step));
        const target = new Date(clock.now().getTime() + step + ahead);
        expect(clock.moveTo(target).getTime()).toBe(target.getTime());
        expect(clock.now().getTime()).toBe(target.getTime() + step);
      }),
    );
  });

  it("refuses to move back, or to an invalid time, and stays where it was", () => {
    const clock = new OffsetClock(() => 1_000_000);
    clock.advanceBy(5_000);
    expect(() => clock.moveTo(new Date(1_000_000))).toThrow(ClockError);
    expect(() => clock.moveTo(new Date(Number.NaN))).toThrow(ClockError);
    expect(() => clock.advanceBy(-1)).toThrow(ClockError);
    expect(clock.now().getTime()).toBe(1_005_000);
  });
});

describe("ManualClock", () => {
  it("moves to exactly the target, forward only", () => {
    const clock = new ManualClock("2026-01-01T00:00:00Z");
    expect(clock.moveTo(new Date("2026-02-01T00:00:00Z")).toISOString()).toBe("2026-02-01T00:00:00.000Z");
    expect(() => clock.moveTo(new Date("2026-01-15T00:00:00Z"))).toThrow(ClockError);
    expect(() => clock.moveTo(new Date(Number.NaN))).toThrow(ClockError);
    expect(clock.now().toISOString()).toBe("2026-02-01T00:00:00.000Z");
  });
});
