/**
 * Time in a tenant's time zone (an IANA name such as Europe/Copenhagen), for the deadlines that are dates ("due on
 * 28 February" is the end of that day where the tenant is) and for dates shown to people in their language. Pure:
 * the time-zone rules come from the ICU data Node ships (Intl), no I/O.
 */
import type { Language } from "./language";

/** Names found to be time zones (building an Intl.DateTimeFormat costs about 0.3 ms; a tenant's zone is checked on every read). */
const knownTimeZones = new Set<string>();

/** True when `name` is a time zone Intl knows (IANA names, e.g. "Europe/Copenhagen"; also "UTC"). */
export function isTimeZone(name: string): boolean {
  if (knownTimeZones.has(name)) return true;
  if (name.length === 0 || name.length > 64) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    if (knownTimeZones.size < 1000) knownTimeZones.add(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * The canonical IANA spelling of time zone `name` as Intl resolves it ("europe/copenhagen" is "Europe/Copenhagen",
 * "utc" is "UTC"; a link name may resolve to its zone, "US/Pacific" to "America/Los_Angeles"), or undefined when it
 * is not a time zone. What is stored is this spelling, so comparisons and displays of a tenant's zone agree.
 */
export function canonicalTimeZone(name: string): string | undefined {
  if (!isTimeZone(name)) return undefined;
  return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const partsFormatters = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock reading of `instant` in `timeZone`. */
function localParts(instant: Date, timeZone: string): LocalParts {
  let f = partsFormatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    partsFormatters.set(timeZone, f);
  }
  const out: Record<string, number> = {};
  for (const p of f.formatToParts(instant)) if (p.type !== "literal") out[p.type] = Number(p.value);
  return { year: out.year!, month: out.month!, day: out.day!, hour: out.hour!, minute: out.minute!, second: out.second! };
}

/**
 * The first instant of the calendar day `y-m-d` in `timeZone`: normally its local midnight; where a DST change skips
 * midnight, the first wall-clock time that exists that day. Found by bisection on the instant (local dates only move
 * forward in time), so no assumption about the zone's rules is made.
 */
function startOfLocalDay(year: number, month: number, day: number, timeZone: string): Date {
  const target = `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
  const utcMidnight = Date.UTC(year, month - 1, day);
  // UTC offsets lie within -12 h and +14 h: 15 h either side brackets the local midnight.
  let lo = utcMidnight - 15 * 3_600_000; // still the day before, locally
  let hi = utcMidnight + 15 * 3_600_000; // already the day (or later), locally
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDate(new Date(mid), timeZone) >= target) hi = mid;
    else lo = mid;
  }
  return new Date(hi);
}

/** The calendar date (YYYY-MM-DD) `instant` falls on in `timeZone`. */
export function localDate(instant: Date, timeZone: string): string {
  const p = localParts(instant, timeZone);
  return `${String(p.year).padStart(4, "0")}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

/**
 * The last millisecond of the calendar day, in `timeZone`, that `instant` falls on: a deadline "on that date" ends
 * then. DST days are 23 or 25 hours long; this follows the zone's rules for that day.
 */
export function endOfLocalDay(instant: Date, timeZone: string): Date {
  const p = localParts(instant, timeZone);
  const next = new Date(Date.UTC(p.year, p.month - 1, p.day + 1));
  return new Date(startOfLocalDay(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timeZone).getTime() - 1);
}

const LOCALES: Record<Language, string> = { en: "en-GB", da: "da-DK" };
const displayFormatters = new Map<string, Intl.DateTimeFormat>();

/** `instant` as a person reads it in `language` and `timeZone`, e.g. "30 November 2026, 14:05 CET". */
export function formatInstant(instant: Date, language: Language, timeZone: string): string {
  const key = `${language}|${timeZone}`;
  let f = displayFormatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(LOCALES[language], {
      timeZone,
      day: "numeric",
      month: "long",
      year: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      timeZoneName: "short",
    });
    displayFormatters.set(key, f);
  }
  return f.format(instant);
}

/** A calendar date (the end of a day) as a person reads it, e.g. "28 February 2027" / "28. februar 2027". */
export function formatDate(instant: Date, language: Language, timeZone: string): string {
  return new Intl.DateTimeFormat(LOCALES[language], { timeZone, day: "numeric", month: "long", year: "numeric" }).format(instant);
}

/**
 * The earliest instant accepted for the time of a fact a caller reports (when a person decided on consent, when a
 * request was received, when a breach began or became known, when someone was told): 2000-01-01T00:00:00Z. Nothing
 * this service records can have happened earlier (the Danish Act on Processing of Personal Data implementing
 * Directive 95/46/EC took effect on 2000-07-01; the GDPR applies from 2018-05-25), so an earlier time is a typo, and
 * years below 100 would also be misread by Date.UTC (which maps 0-99 to 1900-1999) in the deadline arithmetic.
 */
export const EARLIEST_FACT_TIME = "2000-01-01T00:00:00.000Z";

/** Whether `time` (ISO 8601 or a Date) lies before EARLIEST_FACT_TIME; an unparseable time counts as before. */
export function beforeEarliestFactTime(time: string | Date): boolean {
  const ms = typeof time === "string" ? Date.parse(time) : time.getTime();
  return Number.isNaN(ms) || ms < Date.parse(EARLIEST_FACT_TIME);
}

/** The message given for a time before EARLIEST_FACT_TIME. */
export const EARLIEST_FACT_TIME_MESSAGE = `must not be before ${EARLIEST_FACT_TIME.slice(0, 10)}`;
