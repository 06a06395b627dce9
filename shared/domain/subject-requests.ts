/**
 * Data-subject requests (GDPR Chapter III), the rules: the request types, the explicit state machine, the two
 * deadlines and the lawful extension, the identity-verification limits and the shape of codes, tokens and ids.
 * Pure: no I/O. The application core (shared/usecases/subject-requests*.ts) applies them.
 *
 * Deadlines. The product promises an answer "as soon as possible – however, always within 4 weeks":
 * - `dueAt` is the end of the day, in the tenant's time zone, 28 days after the day of receipt (four weeks, which is
 *   never later than the GDPR's one month);
 * - `legalDueAt` is one month as Regulation (EEC, Euratom) No 1182/71 Art. 3 counts it (Art. 12(3) GDPR: "within one
 *   month of receipt"): the day of receipt is not counted (Art. 3(1)); the period ends at the end of the day of the
 *   following month with the same date, or of that month's last day when it has no such date (Art. 3(2)(c)); a period
 *   ending on a Saturday or Sunday ends at the end of the next working day (Art. 3(4)). Public holidays, which Art. 3(4)
 *   also rolls over, differ per member state and are NOT applied: the date shown can be a holiday. It is shown for
 *   information; the service works to `dueAt`, which is earlier.
 * - One extension (Art. 12(3): "by two further months where necessary, taking into account the complexity and number
 *   of the requests"), declared with a reason before `dueAt` (not after: Art. 12(3) requires the person to be told
 *   "within one month of receipt"), to at most two months after `legalDueAt` (the same date two months on, or that
 *   month's last day), ending at the end of that day in the tenant's zone.
 */
import { randomBytes, randomInt } from "node:crypto";
import { z } from "zod";
import type { Language } from "./language";
import { base32 } from "./tenant";
import { endOfLocalDay, localDate } from "./time";

/** The rights a request exercises: Art. 15, 20, 16, 17, 18, 21 and 7(3). */
export const DSR_TYPES = ["access", "portability", "rectification", "erasure", "restriction", "objection", "withdraw-consent"] as const;
export type DsrType = (typeof DSR_TYPES)[number];

/**
 * A request's life:
 *
 *     awaiting-verification ─► verified ─► in-progress ─► completed
 *            │      │              │            │
 *            │      └► verification-failed ─► verified (vouched, or the person's link)
 *            └► closed-unverified (DSR_VERIFY_DAYS passed)
 *     any open state ─► rejected | cancelled
 *     a step that failed after its retries ─► needs-attention ─► (retry) the state it left
 *
 * `extended` is a flag on the deadline, not a state.
 */
export const DSR_STATUSES = [
  "awaiting-verification",
  "verification-failed",
  "verified",
  "in-progress",
  "needs-attention",
  "completed",
  "rejected",
  "closed-unverified",
  "cancelled",
] as const;
export type DsrStatus = (typeof DSR_STATUSES)[number];

/** States a request ends in: its deadline stops and its evidence period (closed-request retention) starts. */
export const FINAL_DSR_STATUSES = ["completed", "rejected", "closed-unverified", "cancelled"] as const satisfies readonly DsrStatus[];
/** States in which the request still needs an answer (its deadline runs). */
export const OPEN_DSR_STATUSES = ["awaiting-verification", "verification-failed", "verified", "in-progress", "needs-attention"] as const satisfies readonly DsrStatus[];
/** States that wait for the person's proof of identity; they close as closed-unverified after DSR_VERIFY_DAYS. */
export const UNVERIFIED_DSR_STATUSES = ["awaiting-verification", "verification-failed"] as const satisfies readonly DsrStatus[];

export const isFinalStatus = (s: DsrStatus): boolean => (FINAL_DSR_STATUSES as readonly DsrStatus[]).includes(s);
export const isOpenStatus = (s: DsrStatus): boolean => !isFinalStatus(s);

/**
 * Allowed transitions. needs-attention can be entered from the states a step runs in (a final state too: the notice
 * that tells the person was not sent, so the person has not been answered yet) and is left by a retry to the state it
 * came from (`resumeTo`), or by a rejection or cancellation.
 */
const TRANSITIONS: Readonly<Record<DsrStatus, readonly DsrStatus[]>> = {
  "awaiting-verification": ["verified", "verification-failed", "closed-unverified", "rejected", "cancelled", "needs-attention"],
  "verification-failed": ["verified", "closed-unverified", "rejected", "cancelled", "needs-attention"],
  verified: ["in-progress", "completed", "rejected", "cancelled", "needs-attention"],
  "in-progress": ["completed", "rejected", "cancelled", "needs-attention"],
  "needs-attention": ["awaiting-verification", "verification-failed", "verified", "in-progress", "completed", "rejected", "closed-unverified", "cancelled"],
  completed: ["needs-attention"],
  rejected: ["needs-attention"],
  "closed-unverified": ["needs-attention"],
  cancelled: [],
};

export function canTransition(from: DsrStatus, to: DsrStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export class DsrTransitionError extends Error {
  constructor(
    readonly from: DsrStatus,
    readonly to: DsrStatus,
  ) {
    super(`a data-subject request cannot go from ${from} to ${to}`);
    this.name = "DsrTransitionError";
  }
}

/** Throws DsrTransitionError unless `from` → `to` is allowed. The same status is not a transition. */
export function assertDsrTransition(from: DsrStatus, to: DsrStatus): void {
  if (from !== to && !canTransition(from, to)) throw new DsrTransitionError(from, to);
}

/** Whether a tenant may still act on a request in this state (reject, cancel, extend): only while it is open. */
export const tenantMayDecide = (s: DsrStatus): boolean => isOpenStatus(s);

/** Why a request was refused (Art. 12(5): manifestly unfounded or excessive; or the person's identity was not shown). */
export const REJECTION_GROUNDS = ["manifestly-unfounded", "excessive", "identity-not-verified"] as const;
export type RejectionGround = (typeof REJECTION_GROUNDS)[number];

/**
 * Why `ground` cannot be used for a request in this state, or undefined when it can. `identity-not-verified`
 * (Art. 12(6): the controller may ask for more information when it has reasonable doubts about the identity) only
 * for a request whose person was not verified: once verified (by code, link or the tenant's vouching), telling the
 * person that their identity could not be verified would be false (Art. 12(4): the reasons given must be the real ones).
 */
export function rejectionGroundProblem(ground: RejectionGround, verifiedAt: string | null): string | undefined {
  if (ground === "identity-not-verified" && verifiedAt !== null) return `cannot be identity-not-verified: the person's identity was verified (${verifiedAt})`;
  return undefined;
}

/** How a completed request was answered. Parts 2 and 3 (the work of each type) add their own. */
export const DSR_OUTCOMES = ["no-personal-data", "fulfilled"] as const;
export type DsrOutcome = (typeof DSR_OUTCOMES)[number];

/**
 * Types answered "no personal data held" when the service holds nothing about the person for the tenant: there is
 * nothing to show (Art. 15 asks to confirm whether data is processed), move, correct or erase. Restriction, objection
 * and consent withdrawal are not among them: they bind what is done with the person's data from now on, so they are
 * recorded whether or not anything is held today.
 */
export const NO_DATA_ANSWERS: readonly DsrType[] = ["access", "portability", "rectification", "erasure"];

// --- ids, codes, tokens ---------------------------------------------------------------------------------------------

export const REQUEST_ID_PATTERN = /^dsr-[a-z2-7]{26}$/;
export const requestIdSchema = z.string().regex(REQUEST_ID_PATTERN);

export function newRequestId(random: (n: number) => Buffer = randomBytes): string {
  return "dsr-" + base32(random(16));
}

/** A one-time code has this many decimal digits (at least 6, as asked). */
export const CODE_DIGITS = 6;
/** Wrong codes a request accepts before it turns verification-failed. */
export const MAX_WRONG_TRIES = 5;
/** How often the tenant may ask for a new verification e-mail. */
export const MAX_RESENDS = 3;
export const codeSchema = z.string().regex(new RegExp(`^[0-9]{${CODE_DIGITS}}$`), `must be the ${CODE_DIGITS}-digit code from the e-mail`);

/** A fresh code: CODE_DIGITS decimal digits, uniformly from a CSPRNG (crypto.randomInt), leading zeros kept. */
export function newCode(draw: (max: number) => number = (max) => randomInt(0, max)): string {
  return String(draw(10 ** CODE_DIGITS)).padStart(CODE_DIGITS, "0");
}

/**
 * A verification link's token: `<tenantId>.<requestId>.<secret>`, the secret 32 random bytes in base64url. Only the
 * SHA-256 of the secret is stored; the ids let the service find the record without a cross-tenant query.
 */
const TOKEN = /^(tn-[a-z2-7]{16})\.(dsr-[a-z2-7]{26})\.([A-Za-z0-9_-]{43})$/;

export function newTokenSecret(random: (n: number) => Buffer = randomBytes): string {
  return random(32).toString("base64url");
}

export function formatVerificationToken(tenantId: string, requestId: string, secret: string): string {
  return `${tenantId}.${requestId}.${secret}`;
}

/** The parts of a token, or undefined for anything that is not one (a forged or mangled link). */
export function parseVerificationToken(token: string): { tenantId: string; requestId: string; secret: string } | undefined {
  const m = TOKEN.exec(token);
  return m ? { tenantId: m[1]!, requestId: m[2]!, secret: m[3]! } : undefined;
}

// --- details --------------------------------------------------------------------------------------------------------

/** What a request names beyond its type: rectification's field and value; the purposes of the last three types. */
export interface DsrDetails {
  field?: string;
  value?: string;
  purposes?: string[];
  /** Erasure: whether consent proof is kept for its evidence period (Art. 17(3)(e), the default) or erased too. */
  consentProof?: "keep" | "erase";
}

const PURPOSE_TYPES: readonly DsrType[] = ["restriction", "objection", "withdraw-consent"];

/** What is wrong with `details` for a request of `type` (path and message), or undefined. */
export function detailsProblem(type: DsrType, details: DsrDetails | undefined): { path: string; message: string } | undefined {
  const d = details ?? {};
  if (type === "rectification") {
    if (d.field === undefined) return { path: "details.field", message: "a rectification names the field to correct" };
    if (d.value === undefined) return { path: "details.value", message: "a rectification gives the correct value" };
  } else if (d.field !== undefined || d.value !== undefined) {
    return { path: d.field !== undefined ? "details.field" : "details.value", message: "field and value belong to rectification requests only" };
  }
  if (d.consentProof !== undefined && type !== "erasure") {
    return { path: "details.consentProof", message: "consentProof belongs to erasure requests only" };
  }
  if (d.purposes !== undefined && !PURPOSE_TYPES.includes(type)) {
    return { path: "details.purposes", message: "purposes belong to restriction, objection and withdraw-consent requests only" };
  }
  return undefined;
}

// --- calendar dates -------------------------------------------------------------------------------------------------

/** A calendar date, YYYY-MM-DD. */
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
export const calendarDateSchema = z
  .string()
  .regex(DATE, "must be a date YYYY-MM-DD")
  .refine((v) => isCalendarDate(v), "must be a date that exists");

function parts(date: string): [number, number, number] {
  const m = DATE.exec(date);
  if (!m) throw new RangeError(`not a date: ${date}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

const fmt = (d: Date) => d.toISOString().slice(0, 10);

export function isCalendarDate(date: string): boolean {
  if (!DATE.test(date)) return false;
  const [y, m, d] = parts(date);
  return fmt(new Date(Date.UTC(y, m - 1, d))) === date && y >= 1970;
}

export function addDays(date: string, days: number): string {
  const [y, m, d] = parts(date);
  return fmt(new Date(Date.UTC(y, m - 1, d + days)));
}

/** The same date `months` later, or that month's last day when it has no such date (Reg. 1182/71 Art. 3(2)(c)). */
export function addMonthsClamped(date: string, months: number): string {
  const [y, m, d] = parts(date);
  const lastDay = new Date(Date.UTC(y, m - 1 + months + 1, 0)).getUTCDate();
  return fmt(new Date(Date.UTC(y, m - 1 + months, Math.min(d, lastDay))));
}

/** Whole days from `a` to `b` (negative when b is earlier). */
export function daysBetween(a: string, b: string): number {
  const [ya, ma, da] = parts(a);
  const [yb, mb, db] = parts(b);
  return Math.round((Date.UTC(yb, mb - 1, db) - Date.UTC(ya, ma - 1, da)) / 86_400_000);
}

/** 0 = Sunday … 6 = Saturday. */
export function weekday(date: string): number {
  const [y, m, d] = parts(date);
  return new Date(Date.UTC(y, m - 1, d)).getUTCDay();
}

/** The date itself, or the next Monday when it falls on a Saturday or Sunday (Reg. 1182/71 Art. 3(4), holidays not applied). */
export function nextWorkingDay(date: string): string {
  let out = date;
  while (weekday(out) === 0 || weekday(out) === 6) out = addDays(out, 1);
  return out;
}

/** The last millisecond of calendar date `date` in `timeZone`. */
export function endOfLocalDate(date: string, timeZone: string): Date {
  const [y, m, d] = parts(date);
  // UTC noon lies between 00:00 (UTC-12) and 02:00 the next day (UTC+14) locally: one step of 12 hours at most.
  let probe = Date.UTC(y, m - 1, d, 12);
  for (let i = 0; i < 3; i++) {
    const local = localDate(new Date(probe), timeZone);
    if (local === date) return endOfLocalDay(new Date(probe), timeZone);
    probe += local < date ? 12 * 3_600_000 : -12 * 3_600_000;
  }
  throw new RangeError(`cannot find ${date} in ${timeZone}`);
}

// --- the deadlines --------------------------------------------------------------------------------------------------

/** Four weeks. */
export const DUE_DAYS = 28;
/** The extension reaches at most this many months past legalDueAt (Art. 12(3): three months in all). */
export const EXTENSION_MONTHS = 2;

/** The end of the day (tenant's zone) 28 days after the day of receipt. */
export function dueAtFor(receivedAt: Date, timeZone: string): Date {
  return endOfLocalDate(addDays(localDate(receivedAt, timeZone), DUE_DAYS), timeZone);
}

/** One month from receipt as Regulation 1182/71 Art. 3 counts it (see the module comment; public holidays not applied). */
export function legalDueAtFor(receivedAt: Date, timeZone: string): Date {
  return endOfLocalDate(nextWorkingDay(addMonthsClamped(localDate(receivedAt, timeZone), 1)), timeZone);
}

/** The latest date an extension may reach: two months after legalDueAt's date, clamped to that month's last day. */
export function extensionLimitFor(legalDueAt: Date, timeZone: string): Date {
  return endOfLocalDate(addMonthsClamped(localDate(legalDueAt, timeZone), EXTENSION_MONTHS), timeZone);
}

/**
 * Whether an extension to `untilDate` (a local date; undefined = as far as allowed) may be declared now, and to when.
 * Errors as values: `conflict` (extended already, the due date has passed, the request is closed) or `invalid`
 * (the date is not later than the current due date, or beyond the limit).
 */
export function planExtension(
  req: { status: DsrStatus; dueAt: Date; legalDueAt: Date; extended: boolean },
  now: Date,
  timeZone: string,
  untilDate: string | undefined,
): { ok: true; dueAt: Date } | { ok: false; kind: "conflict" | "invalid"; detail: string } {
  if (!tenantMayDecide(req.status)) return { ok: false, kind: "conflict", detail: `the request is ${req.status}; only an open request can be extended` };
  if (req.extended) return { ok: false, kind: "conflict", detail: "the request was extended already; GDPR Art. 12(3) allows one extension" };
  if (now.getTime() > req.dueAt.getTime()) {
    return { ok: false, kind: "conflict", detail: "the due date has passed; an extension must be declared before it (GDPR Art. 12(3))" };
  }
  const limit = extensionLimitFor(req.legalDueAt, timeZone);
  const dueAt = untilDate === undefined ? limit : endOfLocalDate(untilDate, timeZone);
  if (dueAt.getTime() <= req.dueAt.getTime()) {
    return { ok: false, kind: "invalid", detail: `until must be later than the current due date ${localDate(req.dueAt, timeZone)}` };
  }
  if (dueAt.getTime() > limit.getTime()) {
    return { ok: false, kind: "invalid", detail: `until may be at most ${localDate(limit, timeZone)}: two months after the legal due date (GDPR Art. 12(3))` };
  }
  return { ok: true, dueAt };
}

/** Calendar days from today to the due date in the tenant's zone (0 on the day itself, negative once overdue). */
export function daysLeft(dueAt: Date, now: Date, timeZone: string): number {
  return daysBetween(localDate(now, timeZone), localDate(dueAt, timeZone));
}

/** Open and past its due date. */
export function isOverdue(req: { status: DsrStatus; dueAt: Date }, now: Date): boolean {
  return isOpenStatus(req.status) && now.getTime() > req.dueAt.getTime();
}

/** When the deadline watch tells the tenant: 7 and 2 days before dueAt, and when it passes. */
export const REMINDER_DAYS = [7, 2] as const;

export function deadlineMilestones(dueAt: Date): Array<{ stage: "reminder" | "escalation" | "overdue"; dueAt: Date }> {
  const day = 86_400_000;
  return [
    { stage: "reminder", dueAt: new Date(dueAt.getTime() - REMINDER_DAYS[0] * day) },
    { stage: "escalation", dueAt: new Date(dueAt.getTime() - REMINDER_DAYS[1] * day) },
    { stage: "overdue", dueAt: new Date(dueAt.getTime() + 1) },
  ];
}

// --- words for people -----------------------------------------------------------------------------------------------

/** How a request type is named to a person, in each language (e-mails and pages). */
export const DSR_TYPE_LABELS: Readonly<Record<Language, Readonly<Record<DsrType, string>>>> = {
  en: {
    access: "access to your personal data",
    portability: "a copy of your data to move to another service (data portability)",
    rectification: "correction of your personal data",
    erasure: "erasure of your personal data",
    restriction: "restriction of the processing of your personal data",
    objection: "objection to the processing of your personal data",
    "withdraw-consent": "withdrawal of your consent",
  },
  da: {
    access: "indsigt i dine personoplysninger",
    portability: "en kopi af dine oplysninger, som du kan flytte til en anden tjeneste (dataportabilitet)",
    rectification: "berigtigelse af dine personoplysninger",
    erasure: "sletning af dine personoplysninger",
    restriction: "begrænsning af behandlingen af dine personoplysninger",
    objection: "indsigelse mod behandlingen af dine personoplysninger",
    "withdraw-consent": "tilbagetrækning af dit samtykke",
  },
};

/** How a rejection's ground is named to the person. */
export const REJECTION_GROUND_LABELS: Readonly<Record<Language, Readonly<Record<RejectionGround, string>>>> = {
  en: {
    "manifestly-unfounded": "the request is manifestly unfounded (GDPR Article 12(5))",
    excessive: "the request is excessive, in particular because it is repetitive (GDPR Article 12(5))",
    "identity-not-verified": "your identity could not be verified (GDPR Article 12(6))",
  },
  da: {
    "manifestly-unfounded": "anmodningen er åbenbart grundløs (databeskyttelsesforordningens artikel 12, stk. 5)",
    excessive: "anmodningen er overdreven, navnlig fordi den gentages (databeskyttelsesforordningens artikel 12, stk. 5)",
    "identity-not-verified": "din identitet kunne ikke bekræftes (databeskyttelsesforordningens artikel 12, stk. 6)",
  },
};
