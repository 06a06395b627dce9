/**
 * Telling the persons of a breach (GDPR Art. 34): the pure rules of the fan-out. How the persons found in a scope
 * are batched, how the e-mail service's budgets (sends per minute AND per hour, and a throttled answer's
 * Retry-After) are shared out, when the last notice is expected, and when that breaks "without undue delay"
 * (Art. 34(1); BREACH_NOTICE_MAX_HOURS) so that a public communication (Art. 34(3)(c)) should be considered.
 *
 * Azure Communication Services limits e-mail per minute and per hour per resource, and starts new resources low
 * (tens a minute, about a hundred an hour: "Service limits for Azure Communication Services", Email); the
 * settings EMAIL_SENDS_PER_MINUTE and EMAIL_SENDS_PER_HOUR say what this deployment's resource allows.
 */
import { z } from "zod";
import { beforeEarliestFactTime, EARLIEST_FACT_TIME_MESSAGE } from "./time";

/** Persons per batch: one queue message each, at most this many e-mails. */
export const PERSON_BATCH_SIZE = 100;
/** Uploads read per step of the scope resolution (one queue message each). */
export const RESOLVE_PAGE_UPLOADS = 20;
/** A person's notice is given up after this many failed attempts that may succeed on retry. */
export const MAX_SEND_ATTEMPTS = 5;

const MINUTE = 60_000;
const HOUR = 3_600_000;

// ---------------------------------------------------------------------------------------------------------------
// Ids

/** The keyed hash of a person (HMAC-SHA256 hex under the tenant's lookup secret). */
export const personHashSchema = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * The e-mail's message id for one person's notice of one version of a breach: the same on every attempt, so the
 * e-mail service (an ACS operation id derived from it; the outbox's by-message-id record) never delivers it twice,
 * also when a worker died between the send and recording it. Holds a keyed hash prefix, never the address.
 */
export function personNoticeMessageId(breachId: string, version: number, personHash: string): string {
  return `bpn-${breachId.replace(/^br-/, "")}-v${version}-${personHash.slice(0, 40)}`;
}

/** The batch a person at `index` (0-based, in the resolution step's order) of resolution step `page` belongs to. */
export function batchKeyOf(page: number, index: number): string {
  return `${page}.${Math.floor(index / PERSON_BATCH_SIZE)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The notices' progress: counters kept by the batch workers

/**
 * Counter documents per version of a tenant's part. Each batch's worker records its batch's counts in one of them
 * (chosen by the batch's key), so the progress is this many point reads however many persons there are, and
 * workers of different batches rarely contend for the same document.
 */
export const PROGRESS_SHARDS = 16;

/** A batch's counts of persons told (`sent`), given up (`failed`) and found without an address (`unreachable`). */
export const batchCountsSchema = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative(), z.number().int().nonnegative()]);
export type BatchCounts = z.infer<typeof batchCountsSchema>;

/** The counter document (0 .. PROGRESS_SHARDS-1) that holds batch `batch`'s counts: FNV-1a of its key. */
export function progressShardOf(batch: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < batch.length; i++) {
    h ^= batch.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % PROGRESS_SHARDS;
}

/**
 * A batch's counts recorded over what was recorded before: each count is the larger of the two. A person's sent,
 * failed and unreachable states are final, so every count only grows; a late or repeated write (a worker that died
 * after recording, a batch worked again) can neither lower a count nor add one twice. Undefined: nothing changes.
 */
export function mergeBatchCounts(before: BatchCounts | undefined, counts: BatchCounts): BatchCounts | undefined {
  const merged: BatchCounts = before ? [Math.max(before[0], counts[0]), Math.max(before[1], counts[1]), Math.max(before[2], counts[2])] : counts;
  return before && merged.every((n, i) => n === before[i]) ? undefined : merged;
}

/** The notices' progress of a run whose resolution found `persons`: the sums of every batch's counts, the rest pending. */
export function progressOfCounts(persons: number, batches: Iterable<BatchCounts>): { sent: number; failed: number; unreachable: number; pending: number } {
  let sent = 0;
  let failed = 0;
  let unreachable = 0;
  for (const [s, f, u] of batches) {
    sent += s;
    failed += f;
    unreachable += u;
  }
  return { sent, failed, unreachable, pending: Math.max(0, persons - sent - failed - unreachable) };
}

// ---------------------------------------------------------------------------------------------------------------
// The send budget

export interface SendLimits {
  perMinute: number;
  perHour: number;
}

/**
 * What the service has used of its budgets: fixed windows aligned on the UTC minute and hour (a window's count
 * starts again at its next boundary), and a block until a throttled answer's Retry-After has passed.
 */
export const rateStateSchema = z.object({
  minuteStart: z.iso.datetime(),
  minuteCount: z.number().int().nonnegative(),
  hourStart: z.iso.datetime(),
  hourCount: z.number().int().nonnegative(),
  blockedUntil: z.iso.datetime().nullable(),
});
export type RateState = z.infer<typeof rateStateSchema>;

const floorTo = (t: number, unit: number) => Math.floor(t / unit) * unit;

/** The state as it stands at `now`: windows that have ended start again at zero. */
export function currentWindows(state: RateState | undefined, now: Date): RateState {
  const minuteStart = floorTo(now.getTime(), MINUTE);
  const hourStart = floorTo(now.getTime(), HOUR);
  const sameMinute = state !== undefined && Date.parse(state.minuteStart) === minuteStart;
  const sameHour = state !== undefined && Date.parse(state.hourStart) === hourStart;
  const blocked = state?.blockedUntil && Date.parse(state.blockedUntil) > now.getTime() ? state.blockedUntil : null;
  return {
    minuteStart: new Date(minuteStart).toISOString(),
    minuteCount: sameMinute ? state.minuteCount : 0,
    hourStart: new Date(hourStart).toISOString(),
    hourCount: sameHour ? state.hourCount : 0,
    blockedUntil: blocked,
  };
}

export interface Grant {
  /** How many sends may go now (0..want). */
  granted: number;
  /** The state to store (the grant counted). */
  state: RateState;
  /** When more can go, if fewer than wanted were granted: the block's end or the next window with room. */
  retryAt: Date | null;
}

/**
 * Takes up to `want` sends from both budgets at `now`. The grant is the smallest of what is wanted and what is
 * left in the minute and in the hour; none while a Retry-After block lasts. Pure: the caller stores `state` under
 * optimistic concurrency, so that workers in parallel share one budget.
 */
export function takeSends(stored: RateState | undefined, now: Date, want: number, limits: SendLimits): Grant {
  const state = currentWindows(stored, now);
  if (state.blockedUntil) return { granted: 0, state, retryAt: new Date(state.blockedUntil) };
  const room = Math.max(0, Math.min(limits.perMinute - state.minuteCount, limits.perHour - state.hourCount));
  const granted = Math.min(Math.max(0, want), room);
  const next: RateState = { ...state, minuteCount: state.minuteCount + granted, hourCount: state.hourCount + granted };
  if (granted >= want) return { granted, state: next, retryAt: null };
  const hourFull = next.hourCount >= limits.perHour;
  const retryAt = new Date(hourFull ? Date.parse(next.hourStart) + HOUR : Date.parse(next.minuteStart) + MINUTE);
  return { granted, state: next, retryAt };
}

/** Batches still to send for `pending` persons (at least; a batch holds at most PERSON_BATCH_SIZE). */
export const batchesFor = (pending: number): number => Math.ceil(pending / PERSON_BATCH_SIZE);

/**
 * The notices one run's last notice waits behind when `batches` batches of all runs, with `backlog` notices in all,
 * share one send budget. The budget goes to batches, each taking what it may when it wakes, so a run with k of the
 * batches gets about k of every `batches` turns: its own pending times batches / k, never more than the whole backlog
 * nor less than its own. Two runs of 5,000 (50 batches each) wait behind 10,000; 100 persons (1 batch) beside 6,000
 * (60 batches) behind 6,100; one notice beside 800 (8 batches) behind 9.
 */
export function waitingBehindShare(ownPending: number, backlog: number, batches: number): number {
  const own = Math.max(1, batchesFor(ownPending));
  return Math.max(ownPending, Math.min(backlog, Math.ceil((ownPending * Math.max(own, batches)) / own)));
}

/**
 * The estimate and the bound as a delay alert shows them, to the minute: the estimate rounded up and the bound down,
 * so an estimate later than the bound (the only case an alert is sent) never reads as the same minute or earlier.
 */
export function alertMinutes(estimate: Date, deadline: Date): { estimate: Date; deadline: Date } {
  return { estimate: new Date(Math.ceil(estimate.getTime() / MINUTE) * MINUTE), deadline: new Date(Math.floor(deadline.getTime() / MINUTE) * MINUTE) };
}

/** Records a throttled answer: nothing is sent before `until` (the later of an existing block and this one). */
export function blockSends(stored: RateState | undefined, now: Date, until: Date): RateState {
  const state = currentWindows(stored, now);
  const later = state.blockedUntil && Date.parse(state.blockedUntil) > until.getTime() ? state.blockedUntil : until.toISOString();
  return { ...state, blockedUntil: later };
}

/** When a throttled answer asked to be retried: its Retry-After resolved against `now`, else a minute. */
export function retryAfterInstant(now: Date, retryAfter: { seconds: number } | { at: Date } | undefined): Date {
  if (!retryAfter) return new Date(now.getTime() + MINUTE);
  if ("seconds" in retryAfter) return new Date(now.getTime() + Math.max(0, retryAfter.seconds) * 1000);
  return retryAfter.at.getTime() > now.getTime() ? retryAfter.at : now;
}

// ---------------------------------------------------------------------------------------------------------------
// The estimate

/**
 * When the last of `pending` notices is expected to go: from now (or the end of a Retry-After block), using what is
 * left of the current minute and hour first, then whole windows at the lower of the two paces. An estimate: other
 * breaches' fan-outs share the same budgets.
 */
export function estimateCompletion(pending: number, stored: RateState | undefined, now: Date, limits: SendLimits): Date {
  if (pending <= 0) return now;
  const state = currentWindows(stored, now);
  let t = state.blockedUntil ? Date.parse(state.blockedUntil) : now.getTime();
  let minuteLeft = limits.perMinute - (floorTo(t, MINUTE) === Date.parse(state.minuteStart) ? state.minuteCount : 0);
  let hourLeft = limits.perHour - (floorTo(t, HOUR) === Date.parse(state.hourStart) ? state.hourCount : 0);
  let left = pending;
  const pace = Math.min(limits.perHour, limits.perMinute * 60);
  // Walk minute by minute; at each hour boundary, jump the whole hours the rest still needs (so at most ~120 steps).
  for (;;) {
    const room = Math.max(0, Math.min(minuteLeft, hourLeft));
    if (room >= left) return new Date(t);
    left -= room;
    t = hourLeft - room <= 0 ? floorTo(t, HOUR) + HOUR : floorTo(t, MINUTE) + MINUTE;
    minuteLeft = limits.perMinute;
    hourLeft = floorTo(t, HOUR) === t ? limits.perHour : hourLeft - room;
    if (floorTo(t, HOUR) === t) {
      const wholeHours = Math.floor((left - 1) / pace);
      t += wholeHours * HOUR;
      left -= wholeHours * pace;
    }
  }
}

/**
 * The bound "without undue delay" puts on telling the persons: BREACH_NOTICE_MAX_HOURS after the tenant's
 * instruction. An estimate past it means the persons cannot all be told in time by e-mail at the service's pace:
 * the operator and the tenant are alerted, and pointed to a public communication (Art. 34(3)(c)).
 */
export function noticeDeadline(requestedAt: Date, maxHours: number): Date {
  return new Date(requestedAt.getTime() + maxHours * HOUR);
}

export function breaksDeadline(estimate: Date, requestedAt: Date, maxHours: number): boolean {
  return estimate.getTime() > noticeDeadline(requestedAt, maxHours).getTime();
}

// ---------------------------------------------------------------------------------------------------------------
// The public communication (Art. 34(3)(c))

const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1, "must not be empty")
    .max(max, `must be at most ${max} characters`)
    .refine((s) => ![...s].some((ch) => ch.charCodeAt(0) < 0x20 && !"\t\n\r".includes(ch)), "must not contain control characters");

export const publicCommunicationSchema = z.strictObject({
  /** The text as published: it informs the persons "in an equally effective manner" (Art. 34(3)(c)). */
  text: text(20_000),
  /** Where it was published: a web address, the media, ... */
  where: text(2000),
  /** When it was published (not in the future). */
  publishedAt: z.iso
    .datetime({ offset: true })
    .refine((s) => !beforeEarliestFactTime(s), EARLIEST_FACT_TIME_MESSAGE)
    .transform((s) => new Date(s).toISOString()),
});
export type PublicCommunicationInput = z.output<typeof publicCommunicationSchema>;
