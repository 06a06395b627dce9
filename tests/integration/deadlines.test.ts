/**
 * The deadline watch with a test clock: milestones scheduled by a capability are noticed once each when due, however
 * many sweeps run at once, after a sweep is killed between claiming and queuing, and after a notice's worker fails;
 * rescheduling and cancelling change what is noticed; health shows the sweep.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { cancelDeadlines, declareDeadlineClock, handleDeadlineNotice, runDeadlineWatch, scheduleDeadlines, type DueMilestone } from "../../shared/usecases/deadlines";
import { milestoneId } from "../../shared/stores/deadline-store";
import { startTestApp, ADMIN_KEY, type TestApp } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { expect } from "../helpers/expect";

let t: TestApp;
const notices: DueMilestone[] = [];
/** Items the test clock considers closed: their notices are skipped. */
const closed = new Set<string>();
let failNext = 0;

declareDeadlineClock({
  name: "test-clock",
  notify: async (_s, m) => {
    if (failNext > 0) {
      failNext--;
      throw new Error("the notice could not be sent");
    }
    if (closed.has(m.itemId)) return "skipped";
    notices.push(m);
    return "sent";
  },
});

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const DAY = 86_400_000;
const noticesOf = (itemId: string) => notices.filter((n) => n.itemId === itemId).map((n) => n.stage);

async function schedule(itemId: string, tenantId = "tn-testtesttesttest") {
  const now = t.clock.now().getTime();
  await scheduleDeadlines(t.services, "test-clock", tenantId, itemId, [
    { stage: "reminder", dueAt: new Date(now + 20 * DAY) },
    { stage: "escalation", dueAt: new Date(now + 25 * DAY) },
    { stage: "overdue", dueAt: new Date(now + 28 * DAY) },
  ]);
}

describe("deadline watch", () => {
  it("notices each milestone once, when due, however many sweeps run at once", async () => {
    await schedule("item-1");
    expect((await runDeadlineWatch(t.services)).queued).toBe(0);
    t.clock.advance({ days: 20 });
    const runs = await Promise.all([runDeadlineWatch(t.services), runDeadlineWatch(t.services), runDeadlineWatch(t.services)]);
    expect(runs.reduce((n, r) => n + r.queued, 0)).toBe(1);
    await eventually(() => expect(noticesOf("item-1")).toEqual(["reminder"]));
    t.clock.advance({ days: 10 });
    await runDeadlineWatch(t.services);
    await runDeadlineWatch(t.services);
    await eventually(() => expect(noticesOf("item-1").sort()).toEqual(["escalation", "overdue", "reminder"]));
    // Later sweeps find nothing more to say.
    t.clock.advance({ hours: 1 });
    expect((await runDeadlineWatch(t.services)).queued).toBe(0);
  });

  it("loses nothing and duplicates nothing when a sweep is killed between claiming and queuing", async () => {
    await schedule("item-2");
    t.clock.advance({ days: 20 });
    await expect(runDeadlineWatch(t.services, { faults: { afterClaim: () => { throw new Error("killed"); } } })).rejects.toThrow("killed");
    // The claim stands; the next run soon after does not queue it twice...
    expect((await runDeadlineWatch(t.services)).queued).toBe(0);
    // ...and once the claim is old enough to be a lost message, it is queued again, and noticed once.
    t.clock.advance({ minutes: 11 });
    expect((await runDeadlineWatch(t.services)).queued).toBe(1);
    await eventually(() => expect(noticesOf("item-2")).toEqual(["reminder"]));
    t.clock.advance({ minutes: 11 });
    expect((await runDeadlineWatch(t.services)).queued).toBe(0);
    expect(noticesOf("item-2")).toEqual(["reminder"]);
  });

  it("sends once when a notice's message is worked twice, and again after its worker failed", async () => {
    await schedule("item-3");
    t.clock.advance({ days: 20 });
    const id = milestoneId("test-clock", "item-3", "reminder");
    // Claim it as a sweep would, without its queue worker getting there first.
    const m = (await t.services.deadlines.get("tn-testtesttesttest", id))!;
    await t.services.deadlines.replace({ ...m, status: "queued", queuedAt: t.clock.now().toISOString() }, m._etag);
    failNext = 1;
    await expect(handleDeadlineNotice(t.services, { tenantId: "tn-testtesttesttest", milestoneId: id })).rejects.toThrow("could not be sent");
    const outcomes = await Promise.all([1, 2, 3].map(() => handleDeadlineNotice(t.services, { tenantId: "tn-testtesttesttest", milestoneId: id })));
    expect(outcomes.filter((o) => o === "sent")).toHaveLength(1);
    expect(noticesOf("item-3")).toEqual(["reminder"]);
    // A forged message for a milestone that is not queued does nothing.
    expect(await handleDeadlineNotice(t.services, { tenantId: "tn-testtesttesttest", milestoneId: milestoneId("test-clock", "item-3", "overdue") })).toBe("skipped");
    expect(await handleDeadlineNotice(t.services, { tenantId: "tn-testtesttesttest", milestoneId: "dl-unknown" })).toBe("skipped");
  });

  it("follows rescheduling and cancelling, and lets the clock skip items closed meanwhile", async () => {
    await schedule("item-4");
    const now = t.clock.now().getTime();
    // Extended: the overdue mark moves two months later; the escalation is no longer wanted.
    await scheduleDeadlines(t.services, "test-clock", "tn-testtesttesttest", "item-4", [
      { stage: "reminder", dueAt: new Date(now + 20 * DAY) },
      { stage: "overdue", dueAt: new Date(now + 88 * DAY) },
    ]);
    t.clock.advance({ days: 30 });
    await runDeadlineWatch(t.services);
    await eventually(() => expect(noticesOf("item-4")).toEqual(["reminder"]));
    await cancelDeadlines(t.services, "test-clock", "tn-testtesttesttest", "item-4");
    t.clock.advance({ days: 60 });
    expect((await runDeadlineWatch(t.services)).queued).toBe(0);
    expect(noticesOf("item-4")).toEqual(["reminder"]);

    await schedule("item-5");
    closed.add("item-5");
    t.clock.advance({ days: 20 });
    await runDeadlineWatch(t.services);
    await eventually(async () => expect((await t.services.deadlines.get("tn-testtesttesttest", milestoneId("test-clock", "item-5", "reminder")))?.outcome).toBe("skipped"));
    expect(noticesOf("item-5")).toEqual([]);
  });

  it("reports its heartbeat in health", async () => {
    await runDeadlineWatch(t.services);
    const res = await t.call("GET", "health", { key: ADMIN_KEY });
    const body = (await res.json()) as { sweeps?: Array<{ name: string; lastFinishedAt: string | null }> };
    expect(body.sweeps?.find((w) => w.name === "deadline-watch")?.lastFinishedAt).not.toBeNull();
  });
});
