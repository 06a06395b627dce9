import { describe, expect, it } from "@jest/globals";
import { dueCalendar, isDue, overdueBeyondGrace, receiptDigest, RETENTION_CLASSES, type RetentionClass } from "../../shared/domain/retention";
import { sweepHealth, type SweepDefinition } from "../../shared/sweeps";
import type { Heartbeat } from "../../shared/stores/heartbeat-store";
import type { Settings } from "../../shared/config/settings";

const settings = { evidenceRetentionYears: 5, suspendedTenantNoticeDays: 30 };
const DAY = 86_400_000;

describe("retention policy", () => {
  it("SafeData is due at its expiry", () => {
    const cls = RETENTION_CLASSES.safedata;
    expect(isDue(cls, { expiresAt: "2026-02-01T00:00:00.000Z" }, settings, new Date("2026-01-31T23:59:59Z"))).toBe(false);
    expect(isDue(cls, { expiresAt: "2026-02-01T00:00:00.000Z" }, settings, new Date("2026-02-01T00:00:00Z"))).toBe(true);
  });

  it("a suspended tenant is due after its notice period; an active one never", () => {
    const cls = RETENTION_CLASSES["suspended-tenant"];
    expect(cls.dueAt({ suspendedAt: "2026-01-01T00:00:00.000Z" }, settings)?.toISOString()).toBe("2026-01-31T00:00:00.000Z");
    expect(cls.dueAt({ suspendedAt: null }, settings)).toBeNull();
  });

  it("evidence is kept for the configured years, counted in calendar years", () => {
    const cls = RETENTION_CLASSES["closed-request"];
    expect(cls.dueAt({ closedAt: "2024-02-29T10:00:00.000Z" }, settings)?.toISOString()).toBe("2029-03-01T10:00:00.000Z");
    expect(RETENTION_CLASSES["breach-record"].action).toBe("erase-personal-fields");
    expect(cls.dueAt({ closedAt: null }, settings)).toBeNull();
  });

  it("idempotency records live 24 hours", () => {
    const cls: RetentionClass = RETENTION_CLASSES["idempotency-record"];
    expect(cls.dueAt({ createdAt: "2026-01-01T00:00:00.000Z" }, settings)?.toISOString()).toBe("2026-01-02T00:00:00.000Z");
  });

  it("counts what falls due per day and what is overdue", () => {
    const now = new Date("2026-01-10T12:00:00Z");
    const cal = dueCalendar([new Date("2026-01-10T11:00:00Z"), new Date("2026-01-10T13:00:00Z"), new Date("2026-01-12T00:00:00Z"), new Date("2026-03-01T00:00:00Z")], now, 5);
    expect(cal.overdue).toBe(1);
    expect(cal.days.map((d) => d.count)).toEqual([1, 0, 1, 0, 0]);
    expect(cal.days[0]!.date).toBe("2026-01-10");
  });

  it("digests receipt ids independently of order and duplicates", () => {
    const h = (s: string) => `h(${s})`;
    expect(receiptDigest(["b", "a", "b"], h)).toEqual({ count: 2, idsHash: "h(a\nb)" });
  });

  it("flags an item overdue beyond the grace period", () => {
    const now = new Date("2026-01-01T02:00:00Z");
    expect(overdueBeyondGrace(new Date("2026-01-01T01:00:01Z"), now, 60)).toBe(false);
    expect(overdueBeyondGrace(new Date("2026-01-01T00:59:59Z"), now, 60)).toBe(true);
    expect(overdueBeyondGrace(null, now, 60)).toBe(false);
  });
});

describe("sweep health", () => {
  const def: SweepDefinition = { name: "x", intervalMinutes: 15 };
  const hb = (finished: string | null): Heartbeat => ({
    id: "heartbeat:x",
    tenantId: "_system",
    type: "heartbeat",
    sweep: "x",
    lastStartedAt: finished,
    lastFinishedAt: finished,
    lastOutcome: "succeeded",
    lastPastDue: false,
    counts: {},
    oldestOverdueAt: null,
  });
  const s = {} as Settings;
  const start = new Date("2026-01-01T00:00:00Z");

  it("is healthy while runs finish within two intervals", () => {
    expect(sweepHealth(def, hb("2026-01-01T00:00:00.000Z"), new Date("2026-01-01T00:29:59Z"), s, start).healthy).toBe(true);
    expect(sweepHealth(def, hb("2026-01-01T00:00:00.000Z"), new Date("2026-01-01T00:30:01Z"), s, start).healthy).toBe(false);
  });

  it("gives a new instance two intervals for its first run", () => {
    expect(sweepHealth(def, undefined, new Date(start.getTime() + 29 * 60_000), s, start).healthy).toBe(true);
    expect(sweepHealth(def, undefined, new Date(start.getTime() + 31 * 60_000), s, start).healthy).toBe(false);
    expect(sweepHealth(def, hb(null), new Date(start.getTime() + DAY), s, start).healthy).toBe(false);
  });
});
