/**
 * Deadline milestones: the moments a clock (a data-subject request's four weeks, a breach's 72 hours) asks for a
 * notice. A capability schedules its milestones; the deadline watch (shared/usecases/deadlines.ts) queues each notice
 * once when it falls due. Pure rules.
 */

/**
 * reminder: the deadline is near; escalation: it is nearer, tell more people; overdue: it has passed (a reason for
 * the delay becomes mandatory where the law asks for one, e.g. GDPR Art. 33(1)). Clocks measured in hours (a breach's
 * 72) mark fixed distances instead: reminder-24h, reminder-12h and reminder-2h before the deadline, then overdue.
 */
export const DEADLINE_STAGES = ["reminder", "escalation", "overdue", "reminder-24h", "reminder-12h", "reminder-2h"] as const;
export type DeadlineStage = (typeof DEADLINE_STAGES)[number];

/** A milestone's life: scheduled -> queued -> done, or cancelled while not yet done. */
export const MILESTONE_STATUSES = ["scheduled", "queued", "done", "cancelled"] as const;
export type MilestoneStatus = (typeof MILESTONE_STATUSES)[number];

/** A notice queued this long ago and not done is queued again (its message was lost, or its worker died). */
export const NOTICE_REQUEUE_AFTER_MS = 10 * 60_000;

/**
 * Is the milestone's notice to be queued now? A scheduled one when its time has come; a queued one whose message
 * has not been worked within NOTICE_REQUEUE_AFTER_MS (a crash between queuing and sending loses nothing).
 */
export function milestoneToQueue(m: { status: MilestoneStatus; dueAt: string; queuedAt: string | null }, now: Date): boolean {
  if (m.status === "scheduled") return Date.parse(m.dueAt) <= now.getTime();
  if (m.status === "queued") return m.queuedAt === null || Date.parse(m.queuedAt) + NOTICE_REQUEUE_AFTER_MS <= now.getTime();
  return false;
}
