/** Sweep heartbeats in Cosmos: racing runs of one sweep record without overwriting each other with stale fields. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestApp, type TestApp } from "../helpers/app";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ timers: false, queues: false });
});
afterAll(async () => {
  await t?.stop();
});

const at = (s: number) => new Date(Date.UTC(2026, 0, 5, 9, 0, s));

describe("heartbeat store", () => {
  it("a finish racing a start never brings back the start before it", async () => {
    const hb = t.services.heartbeats;
    await hb.started("race-test", at(0), false);
    for (let i = 1; i <= 25; i++) {
      // Both read the record at about the same time; without the etag check the finish's stale copy of
      // lastStartedAt/lastPastDue overwrote the start that landed in between.
      await Promise.all([hb.started("race-test", at(2 * i), i % 2 === 0), hb.finished("race-test", at(2 * i + 1), "succeeded", { run: i }, null)]);
      expect(await hb.get("race-test")).toMatchObject({ lastStartedAt: at(2 * i).toISOString(), lastPastDue: i % 2 === 0 });
    }
  });

  it("many writers at once all land", async () => {
    const hb = t.services.heartbeats;
    await Promise.all(Array.from({ length: 16 }, (_, i) => hb.started("crowd-test", at(i), false)));
    expect((await hb.get("crowd-test"))?.lastOutcome).toBe("running");
  });
});
