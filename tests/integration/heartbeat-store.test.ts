/** Sweep heartbeats in Cosmos: racing runs of one sweep record without overwriting each other with stale fields. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ timers: false, queues: false });
});
afterAll(async () => {
  await t?.stop();
});

describe("heartbeat store", () => {
  it("keeps a consistent record when starts and finishes of one sweep race", async () => {
    const hb = t.services.heartbeats;
    const at = (s: number) => new Date(Date.UTC(2026, 0, 5, 9, 0, s));
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        i % 2 === 0 ? hb.started("race-test", at(i), i === 4) : hb.finished("race-test", at(i), "succeeded", { run: i }, null),
      ),
    );
    const final = await hb.get("race-test");
    expect(final).toBeDefined();
    expect(["running", "succeeded"]).toContain(final!.lastOutcome);

    // A finish after the race sees the last start: it keeps its time and past-due flag.
    await hb.started("race-test", at(30), true);
    await hb.finished("race-test", at(31), "failed", { run: 31 }, null);
    expect(await hb.get("race-test")).toMatchObject({
      lastStartedAt: at(30).toISOString(),
      lastPastDue: true,
      lastOutcome: "failed",
      counts: { run: 31 },
    });
  });
});
