/**
 * What a data-subject request that changed data leaves the tenant as its record (GDPR Art. 5(2) accountability; Art.
 * 12(3): the controller must be able to show what it did and when): the erasure certificate (Art. 17), the
 * rectification record (Art. 16), and the records of a restriction (Art. 18), an objection (Art. 21) and a consent
 * withdrawal (Art. 7(3)). Pure: no I/O.
 *
 * The erasure certificate says, for each place the service keeps data about people, how many items were erased and
 * the SHA-256 of their sorted ids (a tenant that kept the ids can check them; nobody learns them from the hash), what
 * was kept and on which legal ground (Art. 17(3)), when, and the audit chain position that records it (filled in
 * once written). Nothing personal is in it: ids, counts, hashes, purposes and dates. The recipients of erased
 * uploads (Art. 19) are personal data and are kept apart, encrypted (see shared/stores/subject-outcome-store.ts).
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "./audit-chain";

/** The places a certificate reports on, in the order shown. */
export const ERASURE_PLACES = ["uploads", "requests", "restrictions", "objections", "consent-records", "access-packages"] as const;
export type ErasurePlace = (typeof ERASURE_PLACES)[number];

/** Why something about the person is kept (Art. 17(3)), each with the text a certificate shows. */
export const KEPT_GROUNDS = {
  /** Art. 17(3)(e) with Art. 7(1): the controller must be able to demonstrate consent, for the evidence period. */
  "legal-claims-consent-proof": "Art. 17(3)(e) GDPR (establishment, exercise or defence of legal claims) with Art. 7(1) (the controller must be able to demonstrate consent): kept for its evidence period, then erased",
  /** The request itself: the record that the request was answered (Art. 5(2), 12), until its evidence period ends. */
  "accountability-request-record": "Art. 5(2) and Art. 12 GDPR (accountability: the record that the request was received and answered) with Art. 17(3)(e): kept for the evidence period of closed requests, then erased",
  /** Another request of the person still being answered. */
  "open-request": "Art. 12 GDPR: another request of the person is still being answered; its fields are erased with it when it closes and its evidence period ends",
  /** The audit chain: ids and keyed hashes only, never an address; it proves what was done. */
  "audit-chain": "Art. 5(2) GDPR (accountability): the audit chain holds ids, counts and keyed digests only, never an address, and cannot be edited without breaking it",
  /**
   * The person's objections, reduced to a suppression record (the keyed hash of the address and the purposes only):
   * without it, processing the person objected to would start again as soon as their data came back.
   */
  "objection-suppression":
    "Art. 21(3) and Art. 17(3)(b) GDPR (the objection must keep being honoured): kept as a suppression record holding only the keyed hash of the address and the purposes objected to, so that processing for them does not start again; erased by a later erasure request that says so or when the tenant leaves",
  /** Webhook deliveries: ids, types and times only, never an address; kept, nothing in them to erase. */
  "webhook-deliveries": "Not personal data: webhook deliveries hold ids, event types, statuses and times only, never an address; kept as the tenant's delivery log",
  /** Anonymous tombstones of erased uploads. */
  "tombstones": "Not personal data: the tombstones of erased uploads hold ids, sizes, times and the reason only",
} as const;
export type KeptGround = keyof typeof KEPT_GROUNDS;

export interface ErasedPlace {
  place: ErasurePlace;
  count: number;
  /** SHA-256 (hex) of the sorted ids joined by "\n" (UTF-8); the hash of the empty string when none. */
  idsSha256: string;
}

export interface KeptItem {
  /** What is kept: a kind and an id (a consent purpose, a request id, "audit-chain"). */
  kind: "consent-history" | "request" | "audit-chain" | "tombstones" | "objection-suppression" | "webhook-deliveries";
  id: string;
  ground: KeptGround;
  /** The legal ground in words. */
  groundText: string;
  /** Until when it is kept (ISO 8601), or null when it has no end of its own (the audit chain). */
  until: string | null;
  /** How many records the item holds (consent events of one purpose; tombstones). */
  count: number;
}

export interface ErasureCertificate {
  kind: "erasure";
  format: "safedata.erasure-certificate.v1";
  tenantId: string;
  requestId: string;
  /** When the request was received and when the erasure was done (ISO 8601). */
  receivedAt: string;
  erasedAt: string;
  erased: ErasedPlace[];
  kept: KeptItem[];
  /** How many distinct recipients the erased uploads had (Art. 19); who they are is shown with the certificate, not in it. */
  recipientCount: number;
  /**
   * The consent purposes whose consent was in force and that the erasure withdrew first (Art. 17(1)(b), 7(3)), each
   * a `withdrawn` event recorded through the consent register; their proof is then kept or erased as `kept` says.
   */
  consentsWithdrawn: string[];
  /** How uploads were erased. */
  method: string;
}

/** SHA-256 (hex) of the ids sorted by code unit and joined by "\n". Order and duplicates of the input do not matter. */
export function sortedIdsSha256(ids: readonly string[]): string {
  const sorted = [...new Set(ids)].sort();
  return createHash("sha256").update(sorted.join("\n"), "utf8").digest("hex");
}

export function erasedPlace(place: ErasurePlace, ids: readonly string[]): ErasedPlace {
  return { place, count: new Set(ids).size, idsSha256: sortedIdsSha256(ids) };
}

export function keptItem(kind: KeptItem["kind"], id: string, ground: KeptGround, until: string | null, count: number): KeptItem {
  return { kind, id, ground, groundText: KEPT_GROUNDS[ground], until, count };
}

/** The certificate's content, its places in the order of ERASURE_PLACES (missing ones as zero), kept items sorted. */
export function erasureCertificate(input: {
  tenantId: string;
  requestId: string;
  receivedAt: string;
  erasedAt: string;
  erased: Partial<Record<ErasurePlace, readonly string[]>>;
  kept: readonly KeptItem[];
  recipientCount: number;
  consentsWithdrawn?: readonly string[];
}): ErasureCertificate {
  return {
    kind: "erasure",
    format: "safedata.erasure-certificate.v1",
    tenantId: input.tenantId,
    requestId: input.requestId,
    receivedAt: input.receivedAt,
    erasedAt: input.erasedAt,
    erased: ERASURE_PLACES.map((p) => erasedPlace(p, input.erased[p] ?? [])),
    kept: [...input.kept].sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id)),
    recipientCount: input.recipientCount,
    consentsWithdrawn: [...new Set(input.consentsWithdrawn ?? [])].sort(),
    method:
      "Uploads: the data key destroyed (crypto-shredding: every copy of the content and of the encrypted fields becomes unreadable), then the content " +
      "deleted, leaving a tombstone of ids, sizes and times; every access or portability package holding a copy of that content purged the same way. " +
      "Consents in force: withdrawn first (Art. 17(1)(b)), each by a withdrawn event in the consent register. " +
      "Objections: reduced to a suppression record (keyed hash and purposes). Other records: the encrypted fields and keyed hashes removed, or the record deleted.",
  };
}

/** SHA-256 (hex) of a record's canonical JSON: what its audit entry names, so the record cannot change unnoticed. */
export function recordSha256(record: unknown): string {
  return createHash("sha256").update(canonicalJson(record), "utf8").digest("hex");
}

// --- the other types' records ----------------------------------------------------------------------------------------

export interface RectificationRecord {
  kind: "rectification";
  format: "safedata.rectification-record.v1";
  tenantId: string;
  requestId: string;
  receivedAt: string;
  rectifiedAt: string;
  /** The field corrected ("email"), and whether the service stores it at all. */
  field: string;
  corrected: boolean;
  /** Where the value was corrected: counts and hashes of sorted ids, as for an erasure. */
  places: ErasedPlace[];
  recipientCount: number;
  /** When nothing was corrected: why. */
  note: string | null;
}

export interface RestrictionRecord {
  kind: "restriction";
  format: "safedata.restriction-record.v1";
  tenantId: string;
  requestId: string;
  receivedAt: string;
  restrictedAt: string;
  purposes: string[];
  /** What the restriction does, in words (Art. 18(2)). */
  effect: string;
}

export interface ObjectionRecord {
  kind: "objection" | "withdraw-consent";
  /** Each kind its own format name (a withdrawal record is not an objection record). */
  format: "safedata.objection-record.v1" | "safedata.consent-withdrawal-record.v1";
  tenantId: string;
  requestId: string;
  receivedAt: string;
  recordedAt: string;
  /** Each purpose and what the tenant must stop (Art. 21(1), (3); Art. 7(3)). */
  purposes: Array<{ purpose: string; mustStop: string }>;
  /** withdraw-consent: purposes named that are not consent purposes of the tenant (nothing could be withdrawn for them). */
  unknownPurposes: string[];
}

export type OutcomeRecord = ErasureCertificate | RectificationRecord | RestrictionRecord | ObjectionRecord;

/** Purposes of direct marketing: an objection to them is absolute (Art. 21(2), (3)). Matched on the normalised key. */
export function isDirectMarketing(purpose: string): boolean {
  const p = purpose.trim().toLowerCase().replace(/[\s_]+/g, "-");
  return p === "marketing" || p === "direct-marketing" || p.startsWith("direct-marketing") || p.endsWith("-marketing") || p.includes("newsletter");
}

/** What the tenant must stop for an objection to `purpose` (Art. 21(1) and (3)). */
export function objectionDuty(purpose: string): string {
  return isDirectMarketing(purpose)
    ? "Stop processing the person's data for this purpose: an objection to direct marketing is absolute (Art. 21(3) GDPR)."
    : "Stop processing the person's data for this purpose unless you demonstrate compelling legitimate grounds that override the person's interests, rights and freedoms, or the processing is for legal claims (Art. 21(1) GDPR).";
}

/** What the tenant must stop after a consent withdrawal for `purpose` (Art. 7(3)). */
export function withdrawalDuty(): string {
  return "Stop processing that rests on this consent from now on; processing before the withdrawal stays lawful (Art. 7(3) GDPR).";
}

/** The normalised purpose names of a request's details, distinct and sorted. */
export function purposeList(purposes: readonly string[] | undefined): string[] {
  return [...new Set((purposes ?? []).map((p) => p.trim()).filter((p) => p.length > 0))].sort();
}
