/**
 * The audit log is a hash chain per tenant: entry n holds the hash of entry n-1, and its own hash covers
 * everything in it. Editing, removing or reordering an entry breaks every link after it. Entries hold ids,
 * hashes and counts, never personal data, so the log survives erasure.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export const GENESIS_HASH = "0".repeat(64);

export const AUDIT_ACTIONS = [
  "tenant.created",
  "tenant.api-key-rotated",
  "tenant.suspended",
  "tenant.reactivated",
  "tenant.updated",
  "tenant.offboarded",
  /** The tenant's decrypted master data (its contact address) was shown to an operator. */
  "tenant.read",
  "upload.created",
  "upload.content-stored",
  /** A stored content attempt was thrown away before the upload recorded it (the upload changed meanwhile). */
  "upload.content-discarded",
  /** Written before the first byte of a download; `upload.download-ended` follows with the bytes sent. */
  "upload.download-started",
  "upload.download-ended",
  /** Written by earlier versions: one entry per download, before its first byte, with the bytes asked for. */
  "upload.downloaded",
  /** An upload's decrypted personal fields were shown (metadata, a PUT's answer, a HEAD on content). */
  "upload.read",
  "upload.deleted",
  "upload.purged",
  "upload.first-download-notified",
  "key.rotated",
  "key.rewrapped",
  "retention.receipt",
  "webhook.endpoint-set",
  "webhook.secret-rotated",
  "webhook.endpoint-deleted",
  "webhook.delivery-failed",
  /** Consent records: a purpose and its notice versions (never edited), each consent event (with its keyed digest). */
  "consent.purpose-created",
  "consent.notice-added",
  "consent.recorded",
  /** A subject's consent history was looked up, or its proof issued (with the decrypted evidence fields it showed). */
  "consent.searched",
  "consent.proof-issued",
  "consent.link-issued",
  "consent.link-secret-rotated",
  "consent.settings-updated",
  /** A subject's consent history for a purpose was erased at the end of its evidence period. */
  "consent.evidence-erased",
  /**
   * An event's evidence file (type, bytes, SHA-256) was stored, read back (before its first byte), or thrown away
   * because its event was erased while it was stored; a page or CSV of the tenant's consent events was exported.
   */
  "consent.evidence-stored",
  "consent.evidence-read",
  "consent.evidence-discarded",
  "consent.exported",
  /**
   * Data-subject requests: each change of state (and the extension) as recorded in the request's history, with the
   * actor who made it (a vouch names the tenant's key and carries a keyed digest of its statement); a wrong code; a
   * verification e-mail or notice sent; a read that decrypted the request's personal fields; the overdue mark; the
   * erasure of its personal fields at the end of its evidence period.
   */
  "subject-request.created",
  "subject-request.verified",
  "subject-request.verification-failed",
  "subject-request.in-progress",
  "subject-request.completed",
  "subject-request.rejected",
  "subject-request.cancelled",
  "subject-request.closed-unverified",
  "subject-request.needs-attention",
  "subject-request.resumed",
  "subject-request.extended",
  "subject-request.code-rejected",
  "subject-request.resend-requested",
  "subject-request.verification-sent",
  "subject-request.notified",
  "subject-request.read",
  "subject-request.overdue",
  "subject-request.erased",
  /**
   * Part 2, access and portability packages: the tenant's Art. 15(4) decision on content naming other people too
   * (with a keyed digest of its reason); a package built (the sections and counts that went in; its reads decrypted
   * the person's data); each download (the tenant's or the person's, counted); a package purged at the end of its
   * download window. And the tenant's privacy-information document (Art. 15(1)(a)–(h)) saved.
   */
  "subject-request.content-decided",
  "subject-request.package-built",
  "subject-request.package-downloaded",
  "subject-request.package-purged",
  "privacy-information.updated",
  /** Part 3: a request's record for the tenant (erasure certificate, rectification, restriction, objection, withdrawal). */
  "subject-request.erasure-certified",
  "subject-request.rectified",
  "subject-request.restricted",
  "subject-request.restriction-lift-requested",
  "subject-request.restriction-lifted",
  "subject-request.objection-recorded",
  "subject-request.consent-withdrawn",
  /** The tenant said it told the recipients of erased or rectified data (Art. 19). */
  "subject-request.recipients-notified",
  /** A request's record was read with its recipients decrypted. */
  "subject-request.certificate-read",
  /** The uploads' recipients of an erasure or rectification were read (decrypted) to list them for Art. 19. */
  "subject-request.recipients-collected",
  /**
   * Personal-data breaches, in each affected tenant's own chain (never naming other tenants): its part registered,
   * a new version of it (phased information, Art. 33(4)), withdrawn from it; the controller notice sent and first
   * delivered; the tenant's acknowledgement, decision and authority notification (or its reason not to notify); a
   * deadline notice; a read of the authority report (it shows the decrypted contact address).
   */
  "breach.registered",
  "breach.updated",
  "breach.withdrawn",
  "breach.notice-sent",
  "breach.controller-notified",
  "breach.acknowledged",
  "breach.decision-recorded",
  "breach.authority-notified",
  "breach.authority-not-notified",
  "breach.deadline-notice",
  "breach.report-read",
  /**
   * Breaches, part 2 (the persons, Art. 34): a version's persons resolved (counts only), the tenant's instruction to
   * tell them, each batch's addresses decrypted from their records to send the notices (before any is sent; counts
   * only), the alert that the notices cannot all go within BREACH_NOTICE_MAX_HOURS, and a public communication.
   */
  "breach.persons-resolved",
  "breach.persons-notify-requested",
  /** The tenant cancelled its instruction to tell the persons of a version (counts only). */
  "breach.persons-notify-cancelled",
  "breach.person-addresses-read",
  "breach.persons-delay-alert",
  "breach.public-communication",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Detail values are ids, hashes, counts and flags. Strings are bounded so free text cannot creep in unnoticed. */
const detailValue = z.union([z.string().max(200), z.number().finite(), z.boolean(), z.null(), z.array(z.string().max(100)).max(1000)]);

export const auditContentSchema = z.object({
  tenantId: z.string(),
  seq: z.number().int().positive(),
  at: z.iso.datetime(),
  actor: z.string().min(1).max(100),
  action: z.enum(AUDIT_ACTIONS),
  target: z.object({ type: z.string().min(1).max(40), id: z.string().min(1).max(100) }).nullable(),
  requestId: z.string().max(128).nullable(),
  details: z.record(z.string().max(60), detailValue),
  prevHash: z.string().regex(/^[0-9a-f]{64}$/),
});
export type AuditContent = z.infer<typeof auditContentSchema>;

export const auditEntrySchema = auditContentSchema.extend({ hash: z.string().regex(/^[0-9a-f]{64}$/) });
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** JSON with object keys sorted at every level: the same content always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new TypeError("canonicalJson: non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return "{" + entries.map(([k, v]) => JSON.stringify(k) + ":" + canonicalJson(v)).join(",") + "}";
}

export function hashEntry(content: AuditContent): string {
  const fields: AuditContent = {
    tenantId: content.tenantId,
    seq: content.seq,
    at: content.at,
    actor: content.actor,
    action: content.action,
    target: content.target,
    requestId: content.requestId,
    details: content.details,
    prevHash: content.prevHash,
  };
  return createHash("sha256").update("safedata.audit.v1\n").update(canonicalJson(fields)).digest("hex");
}

export function sealEntry(content: AuditContent): AuditEntry {
  return { ...content, hash: hashEntry(content) };
}

export type ChainBreak =
  | { reason: "hash-mismatch"; seq: number; detail: string }
  | { reason: "broken-link"; seq: number; detail: string }
  | { reason: "missing-entries"; seq: number; detail: string }
  | { reason: "wrong-tenant"; seq: number; detail: string }
  | { reason: "malformed-entry"; seq: number; detail: string }
  | { reason: "truncated"; seq: number; detail: string }
  /** The chain disagrees with the head hash anchored outside the database (see audit-anchor.ts). */
  | { reason: "anchor-mismatch"; seq: number; detail: string };

/**
 * Checks a chain entry by entry, in sequence order, without holding it in memory. Feed entries with push();
 * the first break is reported and kept.
 */
export class ChainVerifier {
  private expectedSeq: number;
  private prevHash: string;
  private broken: ChainBreak | undefined;
  private checked = 0;

  /** Starts at the genesis, or at `start` (a sequence number and the hash of the entry before it) to verify a range. */
  constructor(
    private readonly tenantId: string,
    start: { seq: number; prevHash: string } = { seq: 1, prevHash: GENESIS_HASH },
  ) {
    this.expectedSeq = start.seq;
    this.prevHash = start.prevHash;
  }

  push(raw: unknown): ChainBreak | undefined {
    if (this.broken) return this.broken;
    const parsed = auditEntrySchema.safeParse(raw);
    if (!parsed.success) {
      const seq = typeof raw === "object" && raw !== null && typeof (raw as { seq?: unknown }).seq === "number" ? (raw as { seq: number }).seq : this.expectedSeq;
      return (this.broken = { reason: "malformed-entry", seq, detail: "the entry does not have the audit entry shape" });
    }
    const e = parsed.data;
    if (e.tenantId !== this.tenantId) {
      return (this.broken = { reason: "wrong-tenant", seq: e.seq, detail: "the entry belongs to another tenant's chain" });
    }
    if (e.seq !== this.expectedSeq) {
      return (this.broken = {
        reason: "missing-entries",
        seq: this.expectedSeq,
        detail: `expected entry ${this.expectedSeq} but found ${e.seq}: entries are missing or out of order`,
      });
    }
    if (e.prevHash !== this.prevHash) {
      return (this.broken = { reason: "broken-link", seq: e.seq, detail: "prevHash does not match the previous entry's hash" });
    }
    if (hashEntry(e) !== e.hash) {
      return (this.broken = { reason: "hash-mismatch", seq: e.seq, detail: "the entry's content does not match its hash: it was changed after it was written" });
    }
    this.prevHash = e.hash;
    this.expectedSeq += 1;
    this.checked += 1;
    return undefined;
  }

  /** Call after the last entry with the sequence number the chain's head claims, to detect removal of the newest entries. */
  finish(headSeq: number | undefined): ChainBreak | undefined {
    if (this.broken) return this.broken;
    const last = this.expectedSeq - 1;
    if (headSeq !== undefined && headSeq > last) {
      this.broken = { reason: "truncated", seq: last + 1, detail: `the chain head records ${headSeq} entries but only ${last} are present` };
    }
    return this.broken;
  }

  get result(): { entriesChecked: number; lastSeq: number; lastHash: string } {
    return { entriesChecked: this.checked, lastSeq: this.expectedSeq - 1, lastHash: this.prevHash };
  }
}
