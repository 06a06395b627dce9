/**
 * Retention policy: how long each kind of record may be kept and what happens when its time is up. Pure rules;
 * the retention sweep (shared/usecases/retention.ts) applies every class that has records in this service.
 * A new kind of record joins by adding its class here and a handler there, never a new sweep.
 */
import { evidenceUntil } from "./consent";
import { isLive, type UploadStatus } from "./uploads";

const DAY_MS = 86_400_000;

/** How long a stored Idempotency-Key result is kept (and honoured). */
export const IDEMPOTENCY_RECORD_LIFE_MS = DAY_MS;

export interface RetentionSettings {
  evidenceRetentionYears: number;
  suspendedTenantNoticeDays: number;
  /** CONSENT_EVIDENCE_YEARS; 3 (the Danish general limitation period) when not given. */
  consentEvidenceYears?: number;
}

export type RetentionAction =
  /** Destroy the data key, delete the payload, keep a tombstone without personal data. */
  | "crypto-shred-and-delete"
  /** Erase the personal fields; the anonymous record stays as evidence. */
  | "erase-personal-fields"
  /** Delete the record outright (it holds no evidence worth keeping). */
  | "delete-record"
  /** Delete everything the tenant stored, then its keys and contact details. */
  | "offboard-tenant";

export interface RetentionClass {
  readonly name: string;
  readonly description: string;
  readonly keptFor: string;
  readonly action: RetentionAction;
  /** When a record of this class is due, from its own dates. */
  dueAt(record: Record<string, string | null | undefined>, settings: RetentionSettings): Date | null;
}

function addYears(iso: string, years: number): Date {
  const d = new Date(iso);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

const date = (iso: string | null | undefined) => (iso ? new Date(iso) : null);

export const RETENTION_CLASSES = {
  safedata: {
    name: "safedata",
    description: "SafeData uploads: the payload, its data key and the personal fields of its record",
    keptFor: "32 days from upload, or the shorter life asked for (expiresAt)",
    action: "crypto-shred-and-delete",
    dueAt: (r) => date(r.expiresAt),
  },
  "suspended-tenant": {
    name: "suspended-tenant",
    description: "All data of a suspended tenant (uploads, contact details, keys)",
    keptFor: "the contract's notice period after suspension (SUSPENDED_TENANT_NOTICE_DAYS)",
    action: "offboard-tenant",
    dueAt: (r, s) => (r.suspendedAt ? new Date(Date.parse(r.suspendedAt) + s.suspendedTenantNoticeDays * DAY_MS) : null),
  },
  "idempotency-record": {
    name: "idempotency-record",
    description: "Stored results of requests sent with an Idempotency-Key",
    keptFor: "24 hours",
    action: "delete-record",
    dueAt: (r) => (r.createdAt ? new Date(Date.parse(r.createdAt) + IDEMPOTENCY_RECORD_LIFE_MS) : null),
  },
  "consent-evidence": {
    name: "consent-evidence",
    description:
      "Consent records: a data subject's events for a purpose (the proof of consent), and with the last of them the subject's data key and encrypted address",
    keptFor: "while the consent is in force, then CONSENT_EVIDENCE_YEARS (default 3) after it ended (EDPB Guidelines 05/2020 para. 107)",
    action: "delete-record",
    dueAt: (r, s) => (r.endedAt ? evidenceUntil(r.endedAt, s.consentEvidenceYears ?? 3) : null),
  },
  "dsr-export": {
    name: "dsr-export",
    description: "Exports prepared for a data subject's access or portability request",
    keptFor: "their download window (expiresAt)",
    action: "crypto-shred-and-delete",
    dueAt: (r) => date(r.expiresAt),
  },
  "closed-request": {
    name: "closed-request",
    description: "Closed data-subject requests, kept as evidence that they were answered",
    keptFor: "EVIDENCE_RETENTION_YEARS after closing, then personal fields are erased and the anonymous record stays",
    action: "erase-personal-fields",
    dueAt: (r, s) => (r.closedAt ? addYears(r.closedAt, s.evidenceRetentionYears) : null),
  },
  "breach-record": {
    name: "breach-record",
    description: "Personal-data breach records, kept as evidence (GDPR Art. 33(5))",
    keptFor: "EVIDENCE_RETENTION_YEARS after closing, then personal fields are erased and the anonymous record stays",
    action: "erase-personal-fields",
    dueAt: (r, s) => (r.closedAt ? addYears(r.closedAt, s.evidenceRetentionYears) : null),
  },
} as const satisfies Record<string, RetentionClass>;

export type RetentionClassName = keyof typeof RETENTION_CLASSES;

export function isDue(cls: RetentionClass, record: Record<string, string | null | undefined>, settings: RetentionSettings, now: Date): boolean {
  const due = cls.dueAt(record, settings);
  return due !== null && due.getTime() <= now.getTime();
}

/**
 * The 32-day rule as the purge applies it: an upload is due when it is live and its retention class says its time
 * is up, or when a deletion was started and left unfinished (its worker's lease has run out). The upload store's
 * catch-up query selects candidates with the same conditions; this decides.
 */
export function uploadPurgeDue(
  u: { status: UploadStatus; expiresAt: string; deletion: { leaseUntil: string | null } | null },
  settings: RetentionSettings,
  now: Date,
): boolean {
  if (u.status === "deleting") return u.deletion?.leaseUntil == null || Date.parse(u.deletion.leaseUntil) <= now.getTime();
  return isLive(u.status) && isDue(RETENTION_CLASSES.safedata, { expiresAt: u.expiresAt }, settings, now);
}

/** The purge sweep's health rule: nothing may be overdue by more than the grace period. */
export function overdueBeyondGrace(oldestOverdueAt: Date | null, now: Date, graceMinutes: number): boolean {
  return oldestOverdueAt !== null && now.getTime() - oldestOverdueAt.getTime() > graceMinutes * 60_000;
}

/** Counts of items falling due per UTC day, for the next `days` days (day 0 = today), plus those already overdue. */
export function dueCalendar(dueDates: Date[], now: Date, days: number): { overdue: number; days: Array<{ date: string; count: number }> } {
  const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const out = Array.from({ length: days }, (_, i) => ({ date: new Date(start + i * DAY_MS).toISOString().slice(0, 10), count: 0 }));
  let overdue = 0;
  for (const d of dueDates) {
    if (d.getTime() <= now.getTime()) {
      overdue++;
      continue;
    }
    const i = Math.floor((d.getTime() - start) / DAY_MS);
    if (i >= 0 && i < days) out[i]!.count++;
  }
  return { overdue, days: out };
}

/** What a deletion receipt says about a set of purged ids: how many, and a hash a controller can recompute. */
export function receiptDigest(ids: string[], hash: (s: string) => string): { count: number; idsHash: string } {
  const sorted = [...new Set(ids)].sort();
  return { count: sorted.length, idsHash: hash(sorted.join("\n")) };
}
