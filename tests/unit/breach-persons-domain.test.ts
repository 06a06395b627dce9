/**
 * The pure rules of the notices to persons (shared/domain/breach-persons.ts): the shared send budget per minute and
 * per hour with a Retry-After block, the estimate of when the last notice goes, the bound "without undue delay", and
 * the adapter's reading of Retry-After (RFC 9110 §10.2.3).
 */
import { describe, it } from "@jest/globals";
import fc from "fast-check";
import { parseRetryAfter } from "../../shared/email/acs-email-sender";
import {
  waitingBehindShare,
  alertMinutes,
  blockSends,
  breaksDeadline,
  estimateCompletion,
  mergeBatchCounts,
  personNoticeMessageId,
  PROGRESS_SHARDS,
  progressOfCounts,
  progressShardOf,
  type BatchCounts,
  retryAfterInstant,
  takeSends,
  type RateState,
} from "../../shared/domain/breach-persons";
import { MESSAGE_ID_PATTERN } from "../../shared/email/email-sender";
import { expect } from "../helpers/expect";

const at = (iso: string) => new Date(iso);
const limits = { perMinute: 10, perHour: 25 };

describe("the send budget", () => {
  it("grants the smaller of the minute's and the hour's room, and says when more can go", () => {
    const g1 = takeSends(undefined, at("2026-03-02T09:00:10Z"), 60, limits);
    expect(g1).toMatchObject({ granted: 10, retryAt: at("2026-03-02T09:01:00Z") });
    const g2 = takeSends(g1.state, at("2026-03-02T09:01:00Z"), 50, limits);
    expect(g2).toMatchObject({ granted: 10, retryAt: at("2026-03-02T09:02:00Z") });
    // The hour has 5 left: the next room is at the next hour, not the next minute.
    const g3 = takeSends(g2.state, at("2026-03-02T09:02:30Z"), 40, limits);
    expect(g3).toMatchObject({ granted: 5, retryAt: at("2026-03-02T10:00:00Z") });
    expect(takeSends(g3.state, at("2026-03-02T09:59:59Z"), 1, limits).granted).toBe(0);
    expect(takeSends(g3.state, at("2026-03-02T10:00:00Z"), 1, limits)).toMatchObject({ granted: 1, retryAt: null });
  });

  it("grants nothing while a Retry-After block lasts, and keeps the later of two blocks", () => {
    const blocked = blockSends(undefined, at("2026-03-02T09:00:00Z"), at("2026-03-02T09:05:00Z"));
    expect(takeSends(blocked, at("2026-03-02T09:04:59Z"), 3, limits)).toMatchObject({ granted: 0, retryAt: at("2026-03-02T09:05:00Z") });
    expect(blockSends(blocked, at("2026-03-02T09:01:00Z"), at("2026-03-02T09:02:00Z")).blockedUntil).toBe("2026-03-02T09:05:00.000Z");
    expect(takeSends(blocked, at("2026-03-02T09:05:00Z"), 3, limits).granted).toBe(3);
  });

  it("property: whatever the sequence of requests, no minute and no hour gets more than its budget", () => {
    fc.assert(
      fc.property(
        fc.record({ perMinute: fc.integer({ min: 1, max: 20 }), perHour: fc.integer({ min: 1, max: 200 }) }),
        fc.array(fc.record({ afterMs: fc.integer({ min: 0, max: 400_000 }), want: fc.integer({ min: 0, max: 30 }) }), { maxLength: 60 }),
        (lim, steps) => {
          let state: RateState | undefined;
          let now = Date.parse("2026-03-02T08:59:30Z");
          const perMinute = new Map<number, number>();
          const perHour = new Map<number, number>();
          for (const step of steps) {
            now += step.afterMs;
            const g = takeSends(state, new Date(now), step.want, lim);
            expect(g.granted).toBeLessThanOrEqual(step.want);
            state = g.state;
            const m = Math.floor(now / 60_000);
            const h = Math.floor(now / 3_600_000);
            perMinute.set(m, (perMinute.get(m) ?? 0) + g.granted);
            perHour.set(h, (perHour.get(h) ?? 0) + g.granted);
            if (g.granted < step.want) expect(g.retryAt!.getTime()).toBeGreaterThan(now);
          }
          for (const n of perMinute.values()) expect(n).toBeLessThanOrEqual(lim.perMinute);
          for (const n of perHour.values()) expect(n).toBeLessThanOrEqual(lim.perHour);
        },
      ),
    );
  });
});

describe("the estimate", () => {
  it("uses what is left of the minute and the hour, then the slower pace", () => {
    const used = takeSends(undefined, at("2026-03-02T09:00:00Z"), 10, limits).state;
    // 15 more this hour (09:01, 09:02), 25 in the next, the last 10 at 11:00.
    expect(estimateCompletion(50, used, at("2026-03-02T09:00:00Z"), limits)).toEqual(at("2026-03-02T11:00:00Z"));
    expect(estimateCompletion(0, used, at("2026-03-02T09:00:00Z"), limits)).toEqual(at("2026-03-02T09:00:00Z"));
    expect(estimateCompletion(5, undefined, at("2026-03-02T09:00:00Z"), limits)).toEqual(at("2026-03-02T09:00:00Z"));
    // Here the minute is the tighter: 100,000 at 30 a minute (1,800 an hour) take 55 hours and 34 minutes.
    expect(estimateCompletion(100_000, undefined, at("2026-03-02T09:00:00Z"), { perMinute: 30, perHour: 10_000 })).toEqual(at("2026-03-04T16:33:00Z"));
    // A Retry-After block moves the start.
    expect(estimateCompletion(1, blockSends(undefined, at("2026-03-02T09:00:00Z"), at("2026-03-02T09:05:00Z")), at("2026-03-02T09:00:00Z"), limits)).toEqual(at("2026-03-02T09:05:00Z"));
  });

  it("property: the estimate is never before now and never earlier for more persons", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 500 }), (a, b, perMinute, perHour) => {
        const now = at("2026-03-02T09:17:23Z");
        const lim = { perMinute, perHour };
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(estimateCompletion(lo, undefined, now, lim).getTime()).toBeGreaterThanOrEqual(now.getTime());
        expect(estimateCompletion(hi, undefined, now, lim).getTime()).toBeGreaterThanOrEqual(estimateCompletion(lo, undefined, now, lim).getTime());
      }),
    );
  });

  it("breaks the bound only when later than BREACH_NOTICE_MAX_HOURS after the instruction", () => {
    const requested = at("2026-03-02T09:00:00Z");
    expect(breaksDeadline(at("2026-03-05T09:00:00Z"), requested, 72)).toBe(false);
    expect(breaksDeadline(at("2026-03-05T09:00:01Z"), requested, 72)).toBe(true);
  });
});

describe("Retry-After and message ids", () => {
  const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n] });
  it("reads delta-seconds, an HTTP date and the millisecond variants; ignores what it cannot read", () => {
    expect(parseRetryAfter(headers({ "retry-after": "120" }))).toEqual({ seconds: 120 });
    expect(parseRetryAfter(headers({ "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT" }))).toEqual({ at: new Date("2026-10-21T07:28:00Z") });
    expect(parseRetryAfter(headers({ "retry-after": "120", "retry-after-ms": "1500" }))).toEqual({ seconds: 1.5 });
    expect(parseRetryAfter(headers({ "retry-after": "soon" }))).toBeUndefined();
    expect(parseRetryAfter(headers({ "retry-after": "-5" }))).toBeUndefined();
    expect(parseRetryAfter(headers({}))).toBeUndefined();
    const now = at("2026-03-02T09:00:00Z");
    expect(retryAfterInstant(now, { seconds: 300 })).toEqual(at("2026-03-02T09:05:00Z"));
    expect(retryAfterInstant(now, { at: at("2026-03-02T08:00:00Z") })).toEqual(now);
    expect(retryAfterInstant(now, undefined)).toEqual(at("2026-03-02T09:01:00Z"));
  });

  it("gives each person of each version its own message id, one the e-mail senders accept", () => {
    const h = "ab".repeat(32);
    const id = personNoticeMessageId("br-0123456789abcdef0123", 3, h);
    expect(id).toMatch(MESSAGE_ID_PATTERN);
    expect(id).not.toBe(personNoticeMessageId("br-0123456789abcdef0123", 4, h));
    expect(id).not.toBe(personNoticeMessageId("br-0123456789abcdef0123", 3, "cd".repeat(32)));
  });
});

describe("the progress counters", () => {
  const counts = fc.tuple(fc.nat(100), fc.nat(100), fc.nat(100));

  it("property: whatever order and repeats the writes of a batch's counts come in, the counter holds their largest", () => {
    fc.assert(
      fc.property(fc.array(counts, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 24 }), (writes, order) => {
        // The same observations, some repeated, in another order (a worker dying and its batch worked again).
        const shuffled = [...writes, ...order.map((i) => writes[i % writes.length]!)];
        let held: BatchCounts | undefined;
        for (const w of shuffled) held = mergeBatchCounts(held, w) ?? held;
        const largest = [0, 1, 2].map((k) => Math.max(...writes.map((w) => w[k]!)));
        expect(held).toEqual(largest);
        // A write that adds nothing changes nothing (no write is made).
        for (const w of writes) expect(mergeBatchCounts(held, w)).toBeUndefined();
      }),
    );
  });

  it("sums the batches and leaves the rest of the resolved persons pending", () => {
    expect(progressOfCounts(250, [[100, 0, 0], [40, 2, 3]])).toEqual({ sent: 140, failed: 2, unreachable: 3, pending: 105 });
    expect(progressOfCounts(5, [[4, 1, 1]]).pending).toBe(0);
  });

  it("spreads batch keys over every counter document, the same key always to the same", () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `${Math.floor(i / 3)}.${i % 3}`);
    const used = new Map<number, number>();
    for (const k of keys) {
      const shard = progressShardOf(k);
      expect(shard).toBe(progressShardOf(k));
      expect(Number.isInteger(shard) && shard >= 0 && shard < PROGRESS_SHARDS).toBe(true);
      used.set(shard, (used.get(shard) ?? 0) + 1);
    }
    expect(used.size).toBe(PROGRESS_SHARDS);
    expect(Math.max(...used.values()), "no counter document takes more than twice its share").toBeLessThan((2 * keys.length) / PROGRESS_SHARDS);
  });
});

describe("the delay alert's times", () => {
  it("property: an estimate later than the bound is shown as a later minute, in any time zone", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_700_000_000_000, max: 1_900_000_000_000 }), fc.integer({ min: 1, max: 10 * 3_600_000 }), fc.constantFrom("UTC", "Europe/Copenhagen", "Asia/Kolkata"), (deadlineMs, laterMs, timeZone) => {
        const shown = alertMinutes(new Date(deadlineMs + laterMs), new Date(deadlineMs));
        const minute = (d: Date) => new Intl.DateTimeFormat("en-GB", { timeZone, dateStyle: "short", timeStyle: "short" }).format(d);
        expect(shown.estimate.getTime()).toBeGreaterThan(shown.deadline.getTime());
        expect(minute(shown.estimate)).not.toBe(minute(shown.deadline));
      }),
    );
  });
});

describe("the estimate's share of a shared budget", () => {
  it("waits behind its share of all pending notices: never less than its own, never more than all", () => {
    expect(waitingBehindShare(5000, 10_000, 100)).toBe(10_000);
    expect(waitingBehindShare(100, 6_103, 61)).toBe(6_100);
    expect(waitingBehindShare(1, 801, 9)).toBe(9);
    expect(waitingBehindShare(30, 20, 1)).toBe(30);
    fc.assert(
      fc.property(fc.nat(10_000), fc.nat(100_000), fc.integer({ min: 0, max: 50 }), (own, others, runs) => {
        const w = waitingBehindShare(own, own + others, runs);
        expect(w).toBeGreaterThanOrEqual(own);
        expect(w).toBeLessThanOrEqual(Math.max(own, own + others));
      }),
    );
  });
});
