/**
 * Timer schedules as the Functions host reads them: six-field NCRONTAB (`{second} {minute} {hour} {day}
 * {month} {day-of-week}`, evaluated in UTC) or a TimeSpan `hh:mm:ss` interval. Parsing is done by cron-parser.
 */
import { CronExpressionParser } from "cron-parser";

export interface Schedule {
  readonly expression: string;
  /** The first occurrence strictly after `after`. */
  next(after: Date): Date;
}

const TIMESPAN = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$/;

export function parseSchedule(expression: string): Schedule {
  const ts = TIMESPAN.exec(expression.trim());
  if (ts) {
    const [, days, h, m, s] = ts;
    const ms = (((Number(days ?? 0) * 24 + Number(h)) * 60 + Number(m)) * 60 + Number(s)) * 1000;
    if (ms <= 0) throw new Error(`schedule '${expression}': the interval must be positive`);
    return { expression, next: (after) => new Date(after.getTime() + ms) };
  }
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 6) {
    throw new Error(`schedule '${expression}': NCRONTAB needs six fields ({second} {minute} {hour} {day} {month} {day-of-week}), found ${fields.length}`);
  }
  // Validate once up front so a bad schedule stops start-up instead of failing at the first tick.
  CronExpressionParser.parse(expression, { tz: "UTC", strict: false });
  return {
    expression,
    next: (after) => CronExpressionParser.parse(expression, { currentDate: after, tz: "UTC" }).next().toDate(),
  };
}
