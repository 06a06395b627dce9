/**
 * The movable local clock (LOCAL_CLOCK_CONTROL=true, local trials only): read it, or move it forward to try
 * deadlines (a four-week request, a 72-hour breach) without waiting. Everything that decides by time reads the
 * service clock; what stays on wall time is listed in the README (timeouts, queue visibility, blob and SAS times,
 * key-cache lifetimes, webhook timestamps).
 */
import { ClockError, isMovable } from "../domain/clock";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";

/** At most this far in one move (ten years), so a typo cannot push every deadline past the end of time. */
const MAX_ADVANCE_SECONDS = 10 * 366 * 86_400;

export function readClock(s: Services): { now: string } {
  if (!isMovable(s.clock)) throw new AppError("not-found", "no such route; the API is described at /api/v1/openapi.json");
  return { now: s.clock.now().toISOString() };
}

/**
 * Moves the clock forward by `advanceSeconds` (≥ 0) or to `set`. Errors: malformed-request (both or neither given,
 * or more than ten years at once), conflict (`set` is earlier than now: time never runs backwards), not-found (the
 * clock is not movable here).
 */
export function moveClock(s: Services, input: { advanceSeconds?: number; set?: string }, log?: Log): { now: string } {
  const clock = s.clock;
  if (!isMovable(clock)) throw new AppError("not-found", "no such route; the API is described at /api/v1/openapi.json");
  if ((input.advanceSeconds === undefined) === (input.set === undefined)) {
    throw new AppError("malformed-request", "give exactly one of advanceSeconds (seconds to move forward) and set (an ISO 8601 time)");
  }
  const before = clock.now();
  const target = input.set !== undefined ? new Date(input.set) : new Date(before.getTime() + input.advanceSeconds! * 1000);
  if ((target.getTime() - before.getTime()) / 1000 > MAX_ADVANCE_SECONDS) {
    throw new AppError("malformed-request", `the clock moves at most ${MAX_ADVANCE_SECONDS} seconds (ten years) at once`);
  }
  try {
    const now = input.set !== undefined ? clock.moveTo(target) : clock.advanceBy(input.advanceSeconds! * 1000);
    log?.warn("clock.moved", { from: before.toISOString(), to: now.toISOString() });
    return { now: now.toISOString() };
  } catch (err) {
    if (err instanceof ClockError) throw new AppError("conflict", err.message);
    throw err;
  }
}
