/**
 * Consent records: pure rules. GDPR Art. 7(1) makes the controller able to prove consent was given; Art. 7(3) lets
 * the person withdraw it at any time, as easily as it was given; EDPB Guidelines 05/2020 paras. 104-111 say what
 * the proof holds (how and when consent was obtained, and a copy of the information shown) and that it is kept no
 * longer than needed for legal obligations or claims.
 *
 * What is here:
 * - the vocabulary: purpose keys, legal bases (only consent: Art. 6(1)(a), and explicit consent: Art. 9(2)(a)),
 *   decisions, methods, request origins, language tags;
 * - the current state per subject and purpose as a projection of the append-only events (never a stored field);
 * - how long the evidence is kept: while the consent is in force, then `consentEvidenceYears` after it ended;
 * - IP addresses: parsed strictly (ipaddr.js), truncated to /24 (IPv4) or /48 (IPv6; /40 for 6to4, whose bits 16-47
 *   are an IPv4 address) for storage in clear;
 * - `givenAt` at most five minutes ahead of the service clock;
 * - each event's keyed digest: HMAC-SHA256 over the canonical JSON of its content under a key derived for that
 *   event alone (HKDF, RFC 5869), so the audit log proves an event's content without holding it, and one event's key
 *   opens no other;
 * - withdrawal-link tokens: signed claims (HMAC-SHA256), base64url, no address inside.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import ipaddr from "ipaddr.js";
import { z } from "zod";
import { canonicalJson } from "./audit-chain";
import type { EventLocation, GppHeader, TcfHeader } from "./consent-signals";
import { base32 } from "./tenant";
import { beforeEarliestFactTime, EARLIEST_FACT_TIME_MESSAGE } from "./time";

const DAY_MS = 86_400_000;

/** A purpose key: lower-case letters, digits and `-` (not first or last), at most 64 characters; never `all`. */
export const PURPOSE_KEY_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
/** The word that means "every purpose" where a purpose is named (withdrawals, links); no purpose may be called so. */
export const ALL_PURPOSES = "all";

export const purposeKeySchema = z
  .string()
  .regex(PURPOSE_KEY_PATTERN, "must be 1-64 lower-case letters, digits and '-' (not first or last)")
  .refine((k) => k !== ALL_PURPOSES, `'${ALL_PURPOSES}' is reserved: it names every purpose`);

/** Consent (Art. 6(1)(a)) and explicit consent for special categories (Art. 9(2)(a)): the only bases this register records. */
export const LEGAL_BASES = ["consent", "explicit-consent"] as const;
export type LegalBasis = (typeof LEGAL_BASES)[number];

export const DECISIONS = ["granted", "denied", "withdrawn"] as const;

/**
 * The most events one history (a subject and a purpose) keeps: its clock document lists them all, and must stay
 * under Cosmos DB's 2 MB per document (about 12,000 listed events). A grant beyond MAX_HISTORY_GRANTS events is
 * refused; a denial or withdrawal is recorded up to MAX_HISTORY_EVENTS, so a withdrawal stays possible (Art. 7(3)).
 */
export const MAX_HISTORY_GRANTS = 5000;
export const MAX_HISTORY_EVENTS = 9000;

/** Whether one more event with `decision` may join a history that lists `listed` events (see MAX_HISTORY_GRANTS). */
export function historyHasRoom(listed: number, decision: (typeof DECISIONS)[number]): boolean {
  return listed < (decision === "granted" ? MAX_HISTORY_GRANTS : MAX_HISTORY_EVENTS);
}
export type Decision = (typeof DECISIONS)[number];

/** How the person expressed the decision. `withdrawal-link` is the service's own signed link; tenants cannot send it. */
export const METHODS = ["click", "form", "checkbox", "api", "import", "gpc", "email", "paper", "phone", "withdrawal-link"] as const;
export type Method = (typeof METHODS)[number];
export const TENANT_METHODS = METHODS.filter((m) => m !== "withdrawal-link") as Exclude<Method, "withdrawal-link">[];

/** Where in the tenant's property the request came from. `withdrawal-link`: the service's withdrawal page. */
export const REQUEST_ORIGINS = ["banner", "modal", "form", "api", "import", "email", "withdrawal-link"] as const;
export type RequestOrigin = (typeof REQUEST_ORIGINS)[number];
export const TENANT_ORIGINS = REQUEST_ORIGINS.filter((o) => o !== "withdrawal-link") as Exclude<RequestOrigin, "withdrawal-link">[];

/** A language tag as BCP 47 writes the common ones: `en`, `da`, `de-AT`, `zh-Hant-TW` (not validated against IANA's registry). */
export const LANGUAGE_TAG = /^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$/;

/** A site's or app's id as the tenant names it: letters, digits and `.`, `_`, `:`, `-` (a domain name fits). */
export const PROPERTY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** How far ahead of the service clock `givenAt` may be (clocks of the tenant's servers drift). */
export const MAX_GIVEN_AT_SKEW_MS = 5 * 60_000;

/**
 * Why `givenAt` cannot be recorded, or undefined when it can: at most MAX_GIVEN_AT_SKEW_MS after `now`, and not
 * before EARLIEST_FACT_TIME (shared/domain/time.ts: no consent this register proves can be older).
 */
export function givenAtProblem(givenAt: Date, now: Date): string | undefined {
  if (Number.isNaN(givenAt.getTime())) return "must be a date and time";
  if (beforeEarliestFactTime(givenAt)) return EARLIEST_FACT_TIME_MESSAGE;
  if (givenAt.getTime() > now.getTime() + MAX_GIVEN_AT_SKEW_MS) return "must not be more than 5 minutes ahead of the service clock";
  return undefined;
}

export const CONSENT_EVENT_ID_PATTERN = /^ce-[a-z2-7]{16}$/;
export const consentEventIdSchema = z.string().regex(CONSENT_EVENT_ID_PATTERN);
export const CONSENT_SUBJECT_ID_PATTERN = /^cs-[a-z2-7]{16}$/;

export function newConsentEventId(random: (n: number) => Buffer = randomBytes): string {
  return "ce-" + base32(random(10));
}

/** An event id derived from `seed` (a link's token hash and a purpose): the same seed always names the same event. */
export function derivedConsentEventId(seed: string): string {
  return "ce-" + base32(createHmac("sha256", "safedata/consent-event-id/v1").update(seed).digest().subarray(0, 10));
}

export function newConsentSubjectId(random: (n: number) => Buffer = randomBytes): string {
  return "cs-" + base32(random(10));
}

// ---------------------------------------------------------------------------------------------------------------
// IP addresses

export interface ParsedIp {
  kind: "ipv4" | "ipv6";
  /** The address in its normal written form (IPv4 dotted decimal; IPv6 compressed, RFC 5952 lower case). */
  full: string;
  /** The network it belongs to, as stored and shown in clear: `203.0.113.0/24` or `2001:db8:abcd::/48`. */
  truncated: string;
}

/**
 * Parses an IP address as a person's browser would have connected from: IPv4 in four-part dotted decimal only
 * (`10.0.0`, `0x7f.1` and `010.1.1.1`, which other parsers read as something else, are refused), or IPv6 without a
 * zone index. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address. Returns undefined for anything else.
 */
export function parseIp(text: string): ParsedIp | undefined {
  if (text.length > 45 || text.includes("%")) return undefined;
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) addr = ipaddr.IPv4.parse(text);
  else if (ipaddr.IPv6.isValid(text)) {
    const v6 = ipaddr.IPv6.parse(text);
    addr = v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
  } else return undefined;
  if (addr.kind() === "ipv4") {
    const o = (addr as ipaddr.IPv4).octets;
    return { kind: "ipv4", full: addr.toString(), truncated: `${o[0]}.${o[1]}.${o[2]}.0/24` };
  }
  const parts = (addr as ipaddr.IPv6).parts;
  // 6to4 (RFC 3056, 2002::/16) carries the site's whole public IPv4 address in bits 16-47, which a /48 would keep:
  // truncate the embedded address as an IPv4 one is (/24), i.e. to a /40. Teredo (RFC 4380, 2001:0::/32) holds the
  // server's IPv4 in bits 32-63 (a /48 keeps its first half only: a public relay, not the person) and the client's
  // obfuscated IPv4 in the last 32 bits, NAT64 (RFC 6052, 64:ff9b::/96 and 64:ff9b:1::/48), ISATAP and
  // IPv4-compatible/translated addresses in the last 32 bits: a /48 drops all of those.
  if (parts[0] === 0x2002) {
    const network = new ipaddr.IPv6([0x2002, parts[1]!, parts[2]! & 0xff00, 0, 0, 0, 0, 0]);
    return { kind: "ipv6", full: addr.toString(), truncated: `${network.toString()}/40` };
  }
  const network = new ipaddr.IPv6([parts[0]!, parts[1]!, parts[2]!, 0, 0, 0, 0, 0]);
  return { kind: "ipv6", full: addr.toString(), truncated: `${network.toString()}/48` };
}

/**
 * The IPv4 address an IPv6 address carries, for the country look-up: the registry data places the IPv4 address, not
 * the translation or tunnelling prefix. Forms (IANA IPv6 Special-Purpose Address Registry):
 * - 6to4 (RFC 3056 §2, 2002::/16): the site's IPv4 address in bits 16-47;
 * - NAT64 well-known prefix (RFC 6052 §2.1-2.2, 64:ff9b::/96): the IPv4 address in the last 32 bits;
 * - Teredo (RFC 4380 §4, 2001:0::/32): the client's public IPv4 address in the last 32 bits, each bit inverted (the
 *   server's address in bits 32-63 is a public relay's, not the person's);
 * - IPv4-compatible (RFC 4291 §2.5.5.1, ::/96, deprecated but still written): the last 32 bits, except :: and ::1.
 * (IPv4-mapped ::ffff:0:0/96 is the IPv4 address already: parseIp returns it as one.) Not derived: the local-use
 * NAT64 prefix 64:ff9b:1::/48 (RFC 8215), where the operator chooses where the address sits, and ISATAP, whose
 * embedded address is usually a private one behind a native IPv6 prefix the data already places.
 * Returns the IPv4 address in dotted decimal, or undefined when the address carries none of these.
 */
export function embeddedIpv4(ip: ParsedIp): string | undefined {
  if (ip.kind !== "ipv6") return undefined;
  const p = ipaddr.IPv6.parse(ip.full).parts;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  if (p[0] === 0x2002) return v4(p[1]!, p[2]!);
  const zeros = (from: number, to: number) => p.slice(from, to).every((x) => x === 0);
  if (p[0] === 0x64 && p[1] === 0xff9b && zeros(2, 6)) return v4(p[6]!, p[7]!);
  if (p[0] === 0x2001 && p[1] === 0) return v4(p[6]! ^ 0xffff, p[7]! ^ 0xffff);
  if (zeros(0, 6) && (p[6] !== 0 || p[7]! > 1)) return v4(p[6]!, p[7]!);
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The projection

/** What the projection needs of an event. */
export interface DecisionFact {
  id: string;
  purposeKey: string;
  decision: Decision;
  /** When the person decided (as the tenant says). */
  givenAt: string;
  /** When the service recorded it. */
  recordedAt: string;
  noticeVersion: number | null;
  /** The sequence number of the audit entry that recorded it, when written: the order of recording. */
  seq?: number | null;
}

/**
 * When a decision takes effect: the earlier of when the person decided (`givenAt`, as the tenant says) and when the
 * service recorded it. A decision cannot take effect before it was made, nor before anyone could act on it: a
 * `givenAt` ahead of the service clock (allowed by MAX_GIVEN_AT_SKEW_MS for drifting tenant clocks) therefore counts
 * from its recording, so it never outranks a withdrawal recorded after it. Art. 7(3) GDPR: the person may withdraw
 * at any time and withdrawing is as easy as consenting; a grant dated minutes ahead must not make a later withdrawal
 * ineffective.
 */
export function effectiveAt(e: Pick<DecisionFact, "givenAt" | "recordedAt">): string {
  const given = Date.parse(e.givenAt);
  const recorded = Date.parse(e.recordedAt);
  if (Number.isNaN(given) || Number.isNaN(recorded)) return e.givenAt <= e.recordedAt ? e.givenAt : e.recordedAt;
  return given <= recorded ? e.givenAt : e.recordedAt;
}

/**
 * The order decisions take effect in: by effectiveAt (the earlier of `givenAt` and the recording time), then by when
 * they were recorded, then by the order the audit log recorded them in, then by id, so the same events always give
 * the same state. An import of an old consent recorded after a later withdrawal does not undo the withdrawal (its
 * `givenAt` is the earlier); a grant dated ahead of the clock does not outrank a withdrawal recorded after it
 * (Art. 7(3) GDPR).
 */
export function decisionOrder(a: DecisionFact, b: DecisionFact): number {
  const ea = Date.parse(effectiveAt(a));
  const eb = Date.parse(effectiveAt(b));
  const byEffective = Number.isNaN(ea) || Number.isNaN(eb) ? effectiveAt(a).localeCompare(effectiveAt(b)) : ea - eb;
  return byEffective || a.recordedAt.localeCompare(b.recordedAt) || (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.id.localeCompare(b.id);
}

export interface PurposeState {
  purposeKey: string;
  /** The latest decision. */
  decision: Decision;
  /** When it was made (givenAt) and which event made it. */
  since: string;
  eventId: string;
  /** The notice version of the latest decision. */
  noticeVersion: number | null;
  /** How many events the subject has for this purpose. */
  events: number;
}

/** The current state per purpose: the latest decision of each purpose's events (decisionOrder). Purposes sorted. */
export function projectStates(events: readonly DecisionFact[]): PurposeState[] {
  const byPurpose = new Map<string, DecisionFact[]>();
  for (const e of events) {
    const list = byPurpose.get(e.purposeKey);
    if (list) list.push(e);
    else byPurpose.set(e.purposeKey, [e]);
  }
  return [...byPurpose.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([purposeKey, list]) => {
      const latest = [...list].sort(decisionOrder).at(-1)!;
      return { purposeKey, decision: latest.decision, since: latest.givenAt, eventId: latest.id, noticeVersion: latest.noticeVersion, events: list.length };
    });
}

/** What a check of one purpose finds for one subject: its latest decision, or `no-record`. */
export type ConsentCheck = Decision | "no-record";

/** The latest decision of `purposeKey` in `events`, or `no-record`. Only `granted` permits processing on consent. */
export function checkConsent(events: readonly DecisionFact[], purposeKey: string): ConsentCheck {
  return projectStates(events.filter((e) => e.purposeKey === purposeKey))[0]?.decision ?? "no-record";
}

// ---------------------------------------------------------------------------------------------------------------
// Evidence retention

export interface EvidenceClock {
  /** The consent is in force now (its latest decision is `granted`). */
  inForce: boolean;
  /**
   * When the consent last ended (or, never granted, when it was refused): the latest time the service recorded an
   * event of the history, or the latest `givenAt`, whichever is later. Null while in force or with no events.
   */
  endedAt: string | null;
  /** When the history falls due for erasure: `endedAt` plus the evidence period; null while in force. */
  evidenceUntil: string | null;
}

/** When evidence of a consent that ended at `endedAt` falls due: `years` later (the retention class consent-evidence). */
export function evidenceUntil(endedAt: string, years: number): Date {
  const d = new Date(endedAt);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

/**
 * The evidence clock of one subject's history for one purpose (EDPB 05/2020 para. 107: proof is kept only as long as
 * needed for legal obligations or claims; the Danish general limitation period is 3 years). The history is kept whole
 * while the consent is in force, since it is the proof of the current state; once the latest decision is `denied`
 * or `withdrawn`, it is kept `years` after the last thing that happened to it, then erased. A later grant stops the
 * clock again.
 */
export function evidenceClock(history: readonly DecisionFact[], years: number): EvidenceClock {
  if (history.length === 0) return { inForce: false, endedAt: null, evidenceUntil: null };
  const latest = [...history].sort(decisionOrder).at(-1)!;
  if (latest.decision === "granted") return { inForce: true, endedAt: null, evidenceUntil: null };
  let endedAt = latest.givenAt;
  for (const e of history) {
    if (e.recordedAt > endedAt) endedAt = e.recordedAt;
    if (e.givenAt > endedAt) endedAt = e.givenAt;
  }
  return { inForce: false, endedAt, evidenceUntil: evidenceUntil(endedAt, years).toISOString() };
}

// ---------------------------------------------------------------------------------------------------------------
// Keyed digests

/** Names the digest scheme in every audit entry and proof, so a verifier knows what to recompute. */
export const DIGEST_SCHEME = "safedata.consent-digest.v1";
/**
 * The scheme of events recorded since countries and IAB strings are kept: v1's content, plus the event's location
 * (country, how it was found, the database), and for each IAB string its SHA-256 (of the string as sent, UTF-8) and
 * decoded header. The strings themselves are encrypted; a proof shows them decrypted, so their hashes can be checked.
 */
export const DIGEST_SCHEME_V2 = "safedata.consent-digest.v2";
export type DigestScheme = typeof DIGEST_SCHEME | typeof DIGEST_SCHEME_V2;

/** An IAB string as a v2 digest covers it. */
export interface DigestSignal<H> {
  sha256: string;
  header: H;
}

/** The content an event's digest covers: ids, purpose, notice, decision, method, times, truncated IP, keyed subject hash. */
export type DigestContent = DigestContentV1 | DigestContentV2;

export interface DigestContentV2 extends Omit<DigestContentV1, "scheme"> {
  scheme: typeof DIGEST_SCHEME_V2;
  location: EventLocation | null;
  tcf: DigestSignal<TcfHeader> | null;
  gpp: DigestSignal<GppHeader> | null;
}

export interface DigestContentV1 {
  scheme: typeof DIGEST_SCHEME;
  tenantId: string;
  eventId: string;
  subjectId: string;
  /** HMAC-SHA256 of the normalised e-mail under the tenant's lookup secret (never the address). */
  subjectHash: string;
  purposeKey: string;
  noticeVersion: number | null;
  /** SHA-256 of the notice text shown (or as given for a notice by URL). */
  noticeSha256: string | null;
  decision: Decision;
  method: Method;
  requestOrigin: RequestOrigin;
  propertyId: string | null;
  language: string | null;
  givenAt: string;
  recordedAt: string;
  ipTruncated: string | null;
  gpc: boolean | null;
}

const DIGEST_SALT = Buffer.from("safedata/consent-digest/v1", "utf8");

/**
 * The key of one event's digest: HKDF-SHA256 (RFC 5869) of the tenant's lookup secret, with a fixed salt and the
 * tenant and event ids as info, 32 bytes. It is shown in that event's proof so anyone can recompute the digest; it
 * opens no other event's digest, and nothing about the secret (HKDF's output does not reveal its input).
 */
export function eventDigestKey(lookupSecret: Buffer, tenantId: string, eventId: string): Buffer {
  return Buffer.from(hkdfSync("sha256", lookupSecret, DIGEST_SALT, Buffer.from(`consent-event\0${tenantId}\0${eventId}`, "utf8"), 32));
}

/** The canonical JSON a digest is computed over (keys sorted at every level: shared/domain/audit-chain.ts). */
export function digestInput(content: DigestContent): string {
  return canonicalJson(content);
}

/** HMAC-SHA256(key, UTF-8 of the canonical JSON of `content`), lower-case hex. */
export function consentDigest(key: Buffer, content: DigestContent): string {
  return createHmac("sha256", key).update(digestInput(content), "utf8").digest("hex");
}

// ---------------------------------------------------------------------------------------------------------------
// Withdrawal links

/** What a withdrawal link says. No address: the subject is its opaque id. */
export interface LinkClaims {
  tenantId: string;
  /** The signing secret's version (a tenant rotates; older versions keep verifying for the links' lifetime). */
  secretVersion: number;
  subjectId: string;
  /** A purpose key, or `all`. */
  purpose: string;
  /** The link's own id (random), named in the audit log. */
  linkId: string;
  /** Whole seconds since the epoch. */
  expiresAt: number;
}

const TOKEN_VERSION = 0x01;
const TAG_BYTES = 32;
const TOKEN_LABEL = "safedata-consent-link-v1";

/** Length-prefixed fields (uint16 BE length, then UTF-8), so no two field lists encode alike. */
function encodeFields(fields: readonly string[]): Buffer {
  const parts = fields.map((f) => Buffer.from(f, "utf8"));
  const out = Buffer.alloc(parts.reduce((n, p) => n + 2 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    at = out.writeUInt16BE(p.length, at);
    at += p.copy(out, at);
  }
  return out;
}

function decodeFields(bytes: Buffer): string[] | undefined {
  const out: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 2 > bytes.length) return undefined;
    const n = bytes.readUInt16BE(at);
    at += 2;
    if (at + n > bytes.length) return undefined;
    try {
      out.push(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(at, at + n)));
    } catch {
      return undefined;
    }
    at += n;
  }
  return out;
}

function claimFields(c: LinkClaims): string[] {
  return [c.tenantId, String(c.secretVersion), c.subjectId, c.purpose, c.linkId, String(c.expiresAt)];
}

function linkTag(secret: Buffer, payload: Buffer): Buffer {
  return createHmac("sha256", secret).update(TOKEN_LABEL).update(Buffer.of(0)).update(payload).digest();
}

/**
 * A signed token: base64url (unpadded) of 0x01 ‖ payload length (uint16 BE) ‖ payload ‖ HMAC-SHA256(secret,
 * label ‖ 0x00 ‖ payload), where the payload is the claims as length-prefixed UTF-8 fields.
 */
export function signLinkToken(secret: Buffer, claims: LinkClaims): string {
  const payload = encodeFields(claimFields(claims));
  const head = Buffer.alloc(3);
  head[0] = TOKEN_VERSION;
  head.writeUInt16BE(payload.length, 1);
  return Buffer.concat([head, payload, linkTag(secret, payload)]).toString("base64url");
}

export interface ParsedLinkToken {
  claims: LinkClaims;
  payload: Buffer;
  tag: Buffer;
}

const CLAIMS_SCHEMA = z.object({
  tenantId: z.string().regex(/^tn-[a-z2-7]{16}$/),
  secretVersion: z.number().int().positive().max(1_000_000),
  subjectId: z.string().regex(CONSENT_SUBJECT_ID_PATTERN),
  purpose: z.union([purposeKeySchema, z.literal(ALL_PURPOSES)]),
  linkId: z.string().regex(/^cl-[a-z2-7]{16}$/),
  expiresAt: z.number().int().positive(),
});

/**
 * The claims of a token, unverified (the tenant id says whose secret checks it), or undefined for anything that is
 * not exactly a token this code writes: bad base64url (only the canonical spelling of its bytes), wrong version or
 * lengths, fields of the wrong shape.
 */
export function parseLinkToken(token: string): ParsedLinkToken | undefined {
  if (token.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  const bytes = Buffer.from(token, "base64url");
  if (bytes.toString("base64url") !== token || bytes.length < 3 + TAG_BYTES || bytes[0] !== TOKEN_VERSION) return undefined;
  const n = bytes.readUInt16BE(1);
  if (bytes.length !== 3 + n + TAG_BYTES) return undefined;
  const payload = bytes.subarray(3, 3 + n);
  const fields = decodeFields(payload);
  if (!fields || fields.length !== 6) return undefined;
  const [tenantId, version, subjectId, purpose, linkId, expiresAt] = fields as [string, string, string, string, string, string];
  if (!/^[1-9][0-9]{0,9}$/.test(version) || !/^[1-9][0-9]{0,12}$/.test(expiresAt)) return undefined;
  const claims = CLAIMS_SCHEMA.safeParse({ tenantId, secretVersion: Number(version), subjectId, purpose, linkId, expiresAt: Number(expiresAt) });
  if (!claims.success) return undefined;
  return { claims: claims.data, payload, tag: bytes.subarray(3 + n) };
}

/** Whether `secret` signed the token, compared in constant time. */
export function linkTokenSignedBy(secret: Buffer, token: ParsedLinkToken): boolean {
  return timingSafeEqual(linkTag(secret, token.payload), token.tag);
}

export function newLinkId(random: (n: number) => Buffer = randomBytes): string {
  return "cl-" + base32(random(10));
}

/** When a link issued at `now` stops working: `linkDays` later, to the second. */
export function linkExpiry(now: Date, linkDays: number): number {
  return Math.floor((now.getTime() + linkDays * DAY_MS) / 1000);
}

/**
 * A rotated signing secret keeps verifying for as long as a link signed just before the rotation lives, so a
 * rotation never makes withdrawing harder (Art. 7(3)).
 */
export function secretRetiresAt(rotatedAt: Date, linkDays: number): Date {
  return new Date(rotatedAt.getTime() + linkDays * DAY_MS + 60_000);
}

/** How many requests one link may make per window (GET and POST together), and the window. */
export const LINK_RATE_LIMIT = 20;
export const LINK_RATE_WINDOW_MS = 3_600_000;

/**
 * A fixed-window counter: the window a request at `now` counts in, and whether it is over the limit. Returns the
 * counter to store and, when refused, the seconds until the window ends.
 */
export function countLinkRequest(
  counter: { windowStart: string; count: number } | undefined,
  now: Date,
): { windowStart: string; count: number; allowed: boolean; retryAfterSeconds: number } {
  const start = counter && now.getTime() - Date.parse(counter.windowStart) < LINK_RATE_WINDOW_MS && now.getTime() >= Date.parse(counter.windowStart) ? counter.windowStart : now.toISOString();
  const count = (start === counter?.windowStart ? counter.count : 0) + 1;
  const retryAfterSeconds = Math.max(1, Math.ceil((Date.parse(start) + LINK_RATE_WINDOW_MS - now.getTime()) / 1000));
  return { windowStart: start, count, allowed: count <= LINK_RATE_LIMIT, retryAfterSeconds };
}
