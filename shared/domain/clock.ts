/** All time comes from a Clock. Production uses the system clock; tests move a ManualClock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to. For tests and for replaying sweeps deterministically. */
export class ManualClock implements Clock, MovableClock {
  private ms: number;
  constructor(start: Date | string | number = "2026-01-05T09:00:00.000Z") {
    this.ms = new Date(start).getTime();
    if (Number.isNaN(this.ms)) throw new RangeError("ManualClock: invalid start time");
  }
  now(): Date {
    return new Date(this.ms);
  }
  set(to: Date | string | number): void {
    const ms = new Date(to).getTime();
    if (Number.isNaN(ms)) throw new RangeError("ManualClock: invalid time");
    this.ms = ms;
  }
  advanceBy(ms: number): Date {
    if (!Number.isFinite(ms) || ms < 0) throw new ClockError("the clock moves forward only");
    this.ms += ms;
    return this.now();
  }
  moveTo(to: Date): Date {
    if (!(to.getTime() >= this.ms)) throw new ClockError(`the clock is already at ${this.now().toISOString()}; it moves forward only`);
    this.ms = to.getTime();
    return this.now();
  }
  advance(by: { days?: number; hours?: number; minutes?: number; seconds?: number; ms?: number }): Date {
    this.ms +=
      (by.days ?? 0) * 86_400_000 + (by.hours ?? 0) * 3_600_000 + (by.minutes ?? 0) * 60_000 + (by.seconds ?? 0) * 1000 + (by.ms ?? 0);
    return this.now();
  }
}

/** A clock that can be moved forward, never back: the local runtime's movable clock and tests' ManualClock. */
export interface MovableClock extends Clock {
  /** Moves the clock forward by `ms` (≥ 0). */
  advanceBy(ms: number): Date;
  /** Moves the clock to `to`; throws ClockError when `to` is earlier than now (time never runs backwards). */
  moveTo(to: Date): Date;
}

export class ClockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClockError";
  }
}

export const isMovable = (c: Clock): c is MovableClock =>
  typeof (c as Partial<MovableClock>).advanceBy === "function" && typeof (c as Partial<MovableClock>).moveTo === "function";

/**
 * Real time plus an offset that only grows: it keeps ticking, and can be moved ahead to try deadlines locally
 * (LOCAL_CLOCK_CONTROL). Never used in Azure.
 */
export class OffsetClock implements MovableClock {
  private offsetMs = 0;
  constructor(private readonly wall: () => number = Date.now) {}
  now(): Date {
    return new Date(this.wall() + this.offsetMs);
  }
  advanceBy(ms: number): Date {
    if (!Number.isFinite(ms) || ms < 0) throw new ClockError("the clock moves forward only");
    this.offsetMs += ms;
    return this.now();
  }
  /** Moves to exactly `to` (the wall clock is read once, so the answer is `to` even while it ticks). */
  moveTo(to: Date): Date {
    const wall = this.wall();
    const current = wall + this.offsetMs;
    const delta = to.getTime() - current;
    if (!Number.isFinite(delta) || delta < 0) {
      throw new ClockError(`the clock is already at ${new Date(current).toISOString()}; it moves forward only`);
    }
    this.offsetMs += delta;
    return new Date(wall + this.offsetMs);
  }
}
