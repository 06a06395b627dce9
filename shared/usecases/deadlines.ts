/**
 * The deadline watch. A capability with deadlines (data-subject requests: four weeks; breaches: 72 hours) declares a
 * clock once, with `declareDeadlineClock`, and schedules each item's milestones (`scheduleDeadlines`: reminder,
 * escalation, overdue, each at a time) and cancels them when the item closes. A timer sweep then finds every
 * milestone that has fallen due and queues its notice once, however many sweeps run at once or crash: a milestone
 * is claimed with a conditional write before its message is sent, and one whose message was lost is queued again.
 * The queue worker re-reads the milestone, holds it while the clock's `notify` runs (which re-reads the item and
 * says nothing when there is nothing to say any more), and marks it done.
 */
import { QUEUES } from "../config/resources";
import { milestoneToQueue, type DeadlineStage } from "../domain/deadlines";
import { errorFields, type Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import { milestoneId, type MilestoneDoc } from "../stores/deadline-store";
import { declareSweep } from "../sweeps";
import { deadlineNoticeMessage, type DeadlineNoticeMessage } from "./messages";

export interface DueMilestone {
  tenantId: string;
  itemId: string;
  stage: DeadlineStage;
  dueAt: Date;
}

/** What a capability gives the deadline watch. */
export interface DeadlineClock {
  /** Unique and stable (it is part of every milestone's id), e.g. "dsr" or "breach". */
  readonly name: string;
  /**
   * Sends the notice of one milestone whose time has come (e-mail from a template, webhook event). It re-reads the
   * item and returns "skipped" when nothing is to be said any more. After a crash it can run again for the same
   * milestone, so what it sends must be keyed by the milestone (stable e-mail message ids, webhook event keys).
   */
  notify(s: Services, milestone: DueMilestone, log?: Log): Promise<"sent" | "skipped">;
}

const clocks = new Map<string, DeadlineClock>();

/** Registers a clock (once per name; a second declaration of the same name is the same clock). */
export function declareDeadlineClock(clock: DeadlineClock): DeadlineClock {
  clocks.set(clock.name, clock);
  return clock;
}

/**
 * Sets an item's milestones: each given stage at its time. A milestone already queued or done stays as it is (its
 * notice went, or is going, out); one of a stage no longer given is cancelled unless done.
 */
export async function scheduleDeadlines(s: Services, clock: string, tenantId: string, itemId: string, milestones: Array<{ stage: DeadlineStage; dueAt: Date }>): Promise<void> {
  const existing = new Map((await s.deadlines.ofItem(tenantId, clock, itemId)).map((m) => [m.stage, m]));
  for (const { stage, dueAt } of milestones) {
    const current = existing.get(stage);
    existing.delete(stage);
    if (!current) {
      const doc: MilestoneDoc = {
        id: milestoneId(clock, itemId, stage),
        tenantId,
        type: "deadline",
        clock,
        itemId,
        stage,
        dueAt: dueAt.toISOString(),
        status: "scheduled",
        queuedAt: null,
        sendingUntil: null,
        doneAt: null,
        outcome: null,
      };
      if (await s.deadlines.create(doc)) continue;
      // Created meanwhile by another writer with the same input: nothing more to do.
      continue;
    }
    if (current.status === "queued" || current.status === "done") continue;
    if (current.status === "scheduled" && current.dueAt === dueAt.toISOString()) continue;
    await s.deadlines.replace({ ...withoutMeta(current), dueAt: dueAt.toISOString(), status: "scheduled" }, current._etag);
  }
  for (const left of existing.values()) {
    if (left.status === "scheduled") await s.deadlines.replace({ ...withoutMeta(left), status: "cancelled" }, left._etag);
  }
}

/** Cancels every milestone of the item that has not been sent (the item closed). */
export async function cancelDeadlines(s: Services, clock: string, tenantId: string, itemId: string): Promise<void> {
  await scheduleDeadlines(s, clock, tenantId, itemId, []);
}

export const DEADLINE_SWEEP = "deadline-watch";
export const DEADLINE_SWEEP_INTERVAL_MINUTES = 5;
/** Six-field NCRONTAB (UTC): every five minutes. */
export const DEADLINE_SWEEP_SCHEDULE = "30 */5 * * * *";

declareSweep({ name: DEADLINE_SWEEP, intervalMinutes: DEADLINE_SWEEP_INTERVAL_MINUTES });

export interface DeadlineWatchFaults {
  /** Test hook: throw after a milestone is claimed and before its message is sent (a crashed sweep). */
  afterClaim?: (milestoneId: string) => void;
}

/** One timer run: queue every milestone whose notice is due (catch-up), record the heartbeat. */
export async function runDeadlineWatch(s: Services, opts: { pastDue?: boolean; log?: Log; limit?: number; faults?: DeadlineWatchFaults } = {}): Promise<{ queued: number; due: number }> {
  const started = s.clock.now();
  await s.heartbeats.started(DEADLINE_SWEEP, started, opts.pastDue ?? false);
  try {
    const due = (await s.deadlines.findToQueueAcrossTenants(started, opts.limit ?? 1000)).filter((m) => milestoneToQueue(m, started));
    let queued = 0;
    for (const m of due) {
      // The claim decides which of several racing sweeps queues the notice.
      if (!(await s.deadlines.replace({ ...withoutMeta(m), status: "queued", queuedAt: started.toISOString() }, m._etag))) continue;
      opts.faults?.afterClaim?.(m.id);
      await s.queues.send(QUEUES.deadlines.name, deadlineNoticeMessage, { tenantId: m.tenantId, milestoneId: m.id });
      queued++;
    }
    const oldest = due[0]?.dueAt ?? null;
    await s.heartbeats.finished(DEADLINE_SWEEP, s.clock.now(), "succeeded", { due: due.length, queued }, oldest ? new Date(oldest) : null);
    if (queued > 0) opts.log?.info("deadline.watch", { due: due.length, queued });
    return { queued, due: due.length };
  } catch (err) {
    await s.heartbeats.finished(DEADLINE_SWEEP, s.clock.now(), "failed", {}, null).catch(() => undefined);
    throw err;
  }
}

/** How long a worker holds a milestone while its clock sends the notice. */
const SENDING_LEASE_MS = 5 * 60_000;

/**
 * One queue message's work: the notice of one milestone, if the stored milestone is queued and no other worker holds
 * it; then marked done. A message for a milestone cancelled, done or unknown does nothing.
 */
export async function handleDeadlineNotice(s: Services, msg: DeadlineNoticeMessage, log?: Log): Promise<"sent" | "skipped"> {
  const now = s.clock.now();
  const m = await s.deadlines.get(msg.tenantId, msg.milestoneId);
  if (!m || m.status !== "queued") return "skipped";
  if (m.sendingUntil && Date.parse(m.sendingUntil) > now.getTime()) return "skipped";
  const clock = clocks.get(m.clock);
  if (!clock) throw new Error(`no deadline clock named ${m.clock} is declared`);
  const held = { ...withoutMeta(m), sendingUntil: new Date(now.getTime() + SENDING_LEASE_MS).toISOString() };
  if (!(await s.deadlines.replace(held, m._etag))) return "skipped";
  let outcome: "sent" | "skipped";
  try {
    outcome = await clock.notify(s, { tenantId: m.tenantId, itemId: m.itemId, stage: m.stage, dueAt: new Date(m.dueAt) }, log);
  } catch (err) {
    log?.warn("deadline.notice-failed", { tenantId: m.tenantId, clock: m.clock, itemId: m.itemId, stage: m.stage, ...errorFields(err) });
    // Let another attempt take it at once.
    const fresh = await s.deadlines.get(m.tenantId, m.id);
    if (fresh?.status === "queued") await s.deadlines.replace({ ...withoutMeta(fresh), sendingUntil: null }, fresh._etag);
    throw err;
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const fresh = await s.deadlines.get(m.tenantId, m.id);
    if (!fresh || fresh.status === "done") break;
    if (await s.deadlines.replace({ ...withoutMeta(fresh), status: "done", doneAt: s.clock.now().toISOString(), sendingUntil: null, outcome }, fresh._etag)) break;
  }
  return outcome;
}
