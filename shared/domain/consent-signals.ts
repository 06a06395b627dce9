/**
 * What a consent event may carry besides the decision: where the person's IP address is (a country), the browser's
 * objection signal (Global Privacy Control) and the ad industry's consent strings (IAB TCF and GPP). Pure rules:
 *
 * - **Country**: ISO 3166-1 alpha-2, checked against the real list of assigned codes (`i18n-iso-countries`, which
 *   carries the ISO 3166-1 table): `DK` is one, `XX` and `1A` are not. A country the tenant gives is recorded as
 *   `given`; one looked up from the IP address in an offline database at the moment of recording as `derived`, with
 *   the database's version (the look-up itself is an adapter: shared/stores/ip-country.ts).
 * - **GPC**: `Sec-GPC: 1` (Global Privacy Control, https://privacycg.github.io/gpc-spec/) is a person's objection to
 *   the sale or sharing of their data, and a standing one: a later click does not undo it. A `granted` event is
 *   flagged `conflictsWithGpc` when it carries the signal or when an event of the same subject and purpose recorded
 *   before it (earlier in the audit log) did; the current state is flagged when its latest decision is a grant and
 *   the signal is anywhere in the purpose's history. The consent is recorded (the person may opt in anyway), but
 *   whoever relies on it sees the conflict. An event's flag is fixed once it is recorded (what came before it in the
 *   log never changes), so the 201 answer, the event, the search, the proof and the export all say the same.
 * - **IAB TCF v2 and GPP strings**: decoded with the IAB Tech Lab's own libraries (`@iabtechlabtcf/core`,
 *   `@iabgpp/cmpapi`), never by hand; what their headers say is kept in clear (created, last updated, CMP id and
 *   version, vendor list version, policy version), the strings themselves verbatim but encrypted (the CJEU held a TC
 *   string to be personal data where it can be combined with an identifier such as an IP address: C-604/22, IAB
 *   Europe, 7 March 2024). A string the libraries cannot decode, or that decodes to something else than it claims to
 *   be, is refused with what is wrong, never stored.
 */
/*
 * The IAB libraries and the country list hold about 28 MB once loaded: each is loaded on first use, so a process
 * that never decodes a signal or checks a country (an upload, a purge) does not carry them.
 */
type IabTcf = typeof import("@iabtechlabtcf/core");
type IabGpp = typeof import("@iabgpp/cmpapi");
type Countries = typeof import("i18n-iso-countries");
let tcfLib: IabTcf | undefined;
let gppLib: IabGpp | undefined;
let countryLib: Countries | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tcf = (): IabTcf => (tcfLib ??= require("@iabtechlabtcf/core") as IabTcf);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const gpp = (): IabGpp => (gppLib ??= require("@iabgpp/cmpapi") as IabGpp);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const countries = (): Countries => (countryLib ??= require("i18n-iso-countries") as Countries);
import { z } from "zod";

// ---------------------------------------------------------------------------------------------------------------
// Countries

/** Two capital letters; whether they are an assigned code is countryCodeProblem's question. */
export const COUNTRY_CODE = /^[A-Z]{2}$/;

/**
 * Why `code` is not an ISO 3166-1 alpha-2 code in use, or undefined when it is. Lower case is refused rather than
 * upper-cased: a tenant that sends `dk` has a bug worth seeing.
 */
export function countryCodeProblem(code: string): string | undefined {
  if (!COUNTRY_CODE.test(code)) return "must be an ISO 3166-1 alpha-2 code: two capital letters, like DK";
  if (!countries().isValid(code)) return "is not an assigned ISO 3166-1 alpha-2 country code";
  return undefined;
}

/** How the country of an event was found: as the tenant said, or looked up from the IP address when recorded. */
export const COUNTRY_SOURCES = ["given", "derived"] as const;
export type CountrySource = (typeof COUNTRY_SOURCES)[number];

export interface EventLocation {
  /** ISO 3166-1 alpha-2. */
  country: string;
  source: CountrySource;
  /** For `derived`: the database and its version (e.g. `geoip-country 5.0.202609260156 (MaxMind GeoLite2 Country)`). */
  database: string | null;
}

export const eventLocationSchema = z.object({
  country: z.string().regex(COUNTRY_CODE),
  source: z.enum(COUNTRY_SOURCES),
  database: z.string().nullable(),
});

// ---------------------------------------------------------------------------------------------------------------
// Global Privacy Control

/** What the GPC rule needs of an event: whose, which purpose, the signal, and its place in the audit log. */
export interface GpcFact {
  subjectId: string;
  purposeKey: string;
  gpc: boolean | null;
  /** The audit entry's sequence number; null while the event is not yet recorded (it then precedes nothing). */
  audit: { seq: number } | null;
}

/** The key of one subject's history for one purpose in a FirstGpcSeqs map. */
export const gpcHistoryKey = (subjectId: string, purposeKey: string): string => `${subjectId}\n${purposeKey}`;

/** Per subject and purpose (gpcHistoryKey), the audit sequence number of the first recorded event with a GPC signal. */
export type FirstGpcSeqs = ReadonlyMap<string, number>;

/** The first GPC signal per subject and purpose among `events` (any subjects and purposes, any order). */
export function firstGpcSeqs(events: ReadonlyArray<GpcFact>): Map<string, number> {
  const first = new Map<string, number>();
  for (const e of events) {
    if (e.gpc !== true || e.audit === null) continue;
    const key = gpcHistoryKey(e.subjectId, e.purposeKey);
    const seen = first.get(key);
    if (seen === undefined || e.audit.seq < seen) first.set(key, e.audit.seq);
  }
  return first;
}

/**
 * Whether one event's decision conflicts with GPC: a grant that carries the signal, or one recorded after an event
 * of the same subject and purpose that carried it (its first, from `first`: firstGpcSeqs over at least the events
 * of that subject and purpose recorded before this one). "After" is the audit log's order, which is also the order
 * of recording, so the flag an event gets when it is recorded is the one every later reading computes.
 */
export function eventConflictsWithGpc(e: GpcFact & { decision: string }, first: FirstGpcSeqs): boolean {
  if (e.decision !== "granted") return false;
  if (e.gpc === true) return true;
  const seq = first.get(gpcHistoryKey(e.subjectId, e.purposeKey));
  return seq !== undefined && e.audit !== null && seq < e.audit.seq;
}

/**
 * Whether a purpose's current state conflicts with GPC: its latest decision is `granted` and a GPC signal was seen
 * in its history (on the granting event or on any other, a GPC-only `denied` event included). The signal is a
 * standing objection of the browser, so an earlier one is not undone by a later click.
 */
export function stateConflictsWithGpc(latestDecision: string, history: ReadonlyArray<{ gpc: boolean | null }>): boolean {
  return latestDecision === "granted" && history.some((e) => e.gpc === true);
}

// ---------------------------------------------------------------------------------------------------------------
// IAB TCF v2

/** What the core segment of a TC string says about itself (IAB TCF v2.2, "TC String" core segment). */
export interface TcfHeader {
  /** The TC string format version (2). */
  version: number;
  created: string;
  lastUpdated: string;
  cmpId: number;
  cmpVersion: number;
  consentScreen: number;
  consentLanguage: string;
  vendorListVersion: number;
  /** The TCF policy version the string was made under. */
  policyVersion: number;
  isServiceSpecific: boolean;
  publisherCountryCode: string;
}

export const tcfHeaderSchema = z.object({
  version: z.number().int(),
  created: z.string(),
  lastUpdated: z.string(),
  cmpId: z.number().int(),
  cmpVersion: z.number().int(),
  consentScreen: z.number().int(),
  consentLanguage: z.string(),
  vendorListVersion: z.number().int(),
  policyVersion: z.number().int(),
  isServiceSpecific: z.boolean(),
  publisherCountryCode: z.string(),
}) satisfies z.ZodType<TcfHeader>;

/** The longest TC or GPP string accepted (real ones with every vendor are a few kilobytes). */
export const MAX_SIGNAL_STRING = 20_000;
/** base64url segments separated by `.` (TCF) or `~` (GPP): anything else is not one of these strings. */
const TCF_CHARS = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const GPP_CHARS = /^[A-Za-z0-9_-]+(?:[~.][A-Za-z0-9_-]+)*$/;

export type Decoded<T> = { ok: true; value: T } | { ok: false; problem: string };

const isoOf = (d: unknown): string | undefined => (d instanceof Date && !Number.isNaN(d.getTime()) ? d.toISOString() : undefined);

/**
 * Decodes a TC string (TCF v2) with the IAB's library and returns its core segment's header fields. Refused: anything
 * the library cannot decode; a string whose first segment is not a core segment of version 2 (the library reads a
 * string starting with another segment's type without complaint and fills the header with defaults); a core segment
 * without CMP id or dates.
 */
export function decodeTcString(text: string): Decoded<TcfHeader> {
  if (text.length === 0 || text.length > MAX_SIGNAL_STRING || !TCF_CHARS.test(text)) {
    return { ok: false, problem: "is not a TC string: base64url segments separated by '.'" };
  }
  // The core segment comes first and begins with its 6-bit version, 2: base64url 'C'. Other segments begin with
  // their 3-bit segment type (1-3), and version 1 strings ('B...') are not TCF v2.
  if (!text.startsWith("C")) return { ok: false, problem: "does not begin with a TCF v2 core segment" };
  let tc;
  try {
    tc = tcf().TCString.decode(text);
  } catch {
    return { ok: false, problem: "could not be decoded as a TCF v2 TC string" };
  }
  const created = isoOf(tc.created);
  const lastUpdated = isoOf(tc.lastUpdated);
  const cmpId = Number(tc.cmpId);
  if (tc.version !== 2 || created === undefined || lastUpdated === undefined || !Number.isInteger(cmpId) || cmpId < 1) {
    return { ok: false, problem: "decodes to a core segment without the version, CMP id or dates a TCF v2 string has" };
  }
  return {
    ok: true,
    value: {
      version: tc.version,
      created,
      lastUpdated,
      cmpId,
      cmpVersion: Number(tc.cmpVersion),
      consentScreen: Number(tc.consentScreen),
      consentLanguage: String(tc.consentLanguage),
      vendorListVersion: Number(tc.vendorListVersion),
      policyVersion: Number(tc.policyVersion),
      isServiceSpecific: Boolean(tc.isServiceSpecific),
      publisherCountryCode: String(tc.publisherCountryCode),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// IAB GPP

/** What a TCF section inside a GPP string says about itself (the EU's tcfeuv2 or Canada's tcfcav1). */
export interface GppTcfSection {
  section: string;
  created: string | null;
  lastUpdated: string | null;
  cmpId: number;
  cmpVersion: number;
  vendorListVersion: number;
  policyVersion: number;
}

/** The header of a GPP string (IAB GPP v1: its header section), with the TCF sections' own header fields. */
export interface GppHeader {
  /** The header's version (1). */
  version: number;
  /** The section ids, in the string's order, and their names (2 tcfeuv2, 5 tcfcav1, 7 usnat, ...). */
  sectionIds: number[];
  sections: string[];
  tcf: GppTcfSection[];
}

export const gppHeaderSchema = z.object({
  version: z.number().int(),
  sectionIds: z.array(z.number().int()),
  sections: z.array(z.string()),
  tcf: z.array(
    z.object({
      section: z.string(),
      created: z.string().nullable(),
      lastUpdated: z.string().nullable(),
      cmpId: z.number().int(),
      cmpVersion: z.number().int(),
      vendorListVersion: z.number().int(),
      policyVersion: z.number().int(),
    }),
  ),
}) satisfies z.ZodType<GppHeader>;

const TCF_SECTIONS: Record<string, string> = { tcfeuv2: "PolicyVersion", tcfcav1: "TcfPolicyVersion" };

/**
 * Decodes a GPP string with the IAB's library (every section, so a damaged one is found now, not when read) and
 * returns its header: the version, the sections it holds and, for the TCF sections, their header fields. Refused:
 * anything the library cannot decode, a string that does not begin with a GPP header (type 3), one with no section,
 * and one whose header lists other sections than follow it (IAB GPP v1, "Consent String Specification": header,
 * then one `~`-separated part per section id).
 */
export function decodeGppString(text: string): Decoded<GppHeader> {
  if (text.length === 0 || text.length > MAX_SIGNAL_STRING || !GPP_CHARS.test(text)) {
    return { ok: false, problem: "is not a GPP string: a header and sections, base64url, separated by '~'" };
  }
  // The header comes first and begins with its 6-bit type, 3 (base64url 'D'); each section follows it after a '~'.
  // The library reads a string without a GPP header (a bare TC string) as if one were there, so these are checked
  // before it is asked: the header's type, and one part per section the header lists (below).
  if (!text.startsWith("D")) return { ok: false, problem: "does not begin with a GPP header" };
  const parts = text.split("~").length;
  try {
    const model = new (gpp().GppModel)(text);
    const header = model.getHeader() as { Version?: unknown; SectionIds?: unknown };
    // Sections decode lazily: reading them all makes a damaged one fail here.
    const sections = Object.keys(model.toObject() as Record<string, unknown>);
    const ids = Array.isArray(header.SectionIds) ? header.SectionIds.map(Number) : [];
    if (ids.length === 0 || sections.length !== ids.length || !Number.isInteger(header.Version)) {
      return { ok: false, problem: "decodes to a GPP header without sections" };
    }
    if (parts !== ids.length + 1) return { ok: false, problem: `its header lists ${ids.length} sections, but ${parts - 1} follow it` };
    const tcf: GppTcfSection[] = sections
      .filter((name) => name in TCF_SECTIONS)
      .map((name) => ({
        section: name,
        created: isoOf(model.getFieldValue(name, "Created")) ?? null,
        lastUpdated: isoOf(model.getFieldValue(name, "LastUpdated")) ?? null,
        cmpId: Number(model.getFieldValue(name, "CmpId")),
        cmpVersion: Number(model.getFieldValue(name, "CmpVersion")),
        vendorListVersion: Number(model.getFieldValue(name, "VendorListVersion")),
        policyVersion: Number(model.getFieldValue(name, TCF_SECTIONS[name]!)),
      }));
    return { ok: true, value: { version: Number(header.Version), sectionIds: ids, sections, tcf } };
  } catch {
    return { ok: false, problem: "could not be decoded as a GPP string" };
  }
}
