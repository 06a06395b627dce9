/**
 * SafeData uploads: pure rules. Ids, the data-category vocabulary, the 32-day life, the state machine an upload
 * moves through, download admission, and reading a download's Range and conditional headers against the content.
 */
import { createHash, randomBytes } from "node:crypto";
import { parse as parseContentType } from "content-type";
import fresh from "fresh";
import parseRangeHeader from "range-parser";
import { z } from "zod";
import { base32 } from "./tenant";

export const UPLOAD_ID_PATTERN = /^up-[a-z2-7]{26}$/;
export const uploadIdSchema = z.string().regex(UPLOAD_ID_PATTERN);

export function newUploadId(random: (n: number) => Buffer = randomBytes): string {
  return "up-" + base32(random(16));
}

/** The product promise: SafeData lives at most 32 days. A shorter life may be asked for, never a longer one. */
export const MAX_LIFE_DAYS = 32;
const DAY_MS = 86_400_000;

export function expiresAt(createdAt: Date, expiresInDays: number = MAX_LIFE_DAYS): Date {
  if (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > MAX_LIFE_DAYS) {
    throw new RangeError(`expiresInDays must be a whole number from 1 to ${MAX_LIFE_DAYS}`);
  }
  return new Date(createdAt.getTime() + expiresInDays * DAY_MS);
}

/**
 * What kind of personal data an upload holds. Used to scope breaches and score their severity. The special
 * categories of GDPR Art. 9 and criminal data (Art. 10) are marked.
 */
export const DATA_CATEGORIES = {
  contact: { special: false, description: "names, addresses, e-mail, phone" },
  identity: { special: false, description: "identity documents, date of birth" },
  "national-id": { special: false, description: "national identification numbers (e.g. CPR)" },
  financial: { special: false, description: "salaries, bank accounts, payment data" },
  employment: { special: false, description: "employment and HR records" },
  education: { special: false, description: "education records" },
  location: { special: false, description: "location data" },
  communications: { special: false, description: "contents of communications" },
  credentials: { special: false, description: "passwords, access tokens" },
  children: { special: false, description: "data about children" },
  health: { special: true, description: "health data (Art. 9)" },
  genetic: { special: true, description: "genetic data (Art. 9)" },
  biometric: { special: true, description: "biometric data for identification (Art. 9)" },
  "racial-ethnic": { special: true, description: "racial or ethnic origin (Art. 9)" },
  political: { special: true, description: "political opinions (Art. 9)" },
  religious: { special: true, description: "religious or philosophical beliefs (Art. 9)" },
  "trade-union": { special: true, description: "trade union membership (Art. 9)" },
  "sex-life": { special: true, description: "sex life or sexual orientation (Art. 9)" },
  criminal: { special: true, description: "criminal convictions and offences (Art. 10)" },
} as const;
export type DataCategory = keyof typeof DATA_CATEGORIES;
export const dataCategories = Object.keys(DATA_CATEGORIES) as [DataCategory, ...DataCategory[]];

/**
 * The life of an upload:
 *   awaiting-content -> receiving -> available -> deleting -> deleted | expired
 *   receiving -> awaiting-content (the upload of the content failed; it may be retried)
 *   awaiting-content | receiving | available -> deleting (deleted on request, or past its expiry)
 */
export const UPLOAD_STATUSES = ["awaiting-content", "receiving", "available", "deleting", "deleted", "expired"] as const;
export type UploadStatus = (typeof UPLOAD_STATUSES)[number];

const TRANSITIONS: Record<UploadStatus, readonly UploadStatus[]> = {
  "awaiting-content": ["receiving", "deleting"],
  receiving: ["awaiting-content", "available", "receiving", "deleting"],
  available: ["deleting"],
  deleting: ["deleted", "expired"],
  deleted: [],
  expired: [],
};

export function canTransition(from: UploadStatus, to: UploadStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Every status change the code writes goes through here: a change the state machine does not allow is a bug. */
export function assertTransition(from: UploadStatus, to: UploadStatus): void {
  if (from !== to && !canTransition(from, to)) throw new Error(`an upload cannot go from ${from} to ${to}`);
}

/** An upload whose life is running: its key exists and its content may be stored or sent. */
export const LIVE_UPLOAD_STATUSES = ["awaiting-content", "receiving", "available"] as const satisfies readonly UploadStatus[];
/** An upload whose deletion is complete: only its tombstone remains. */
export const FINAL_UPLOAD_STATUSES = ["deleted", "expired"] as const satisfies readonly UploadStatus[];

export const isLive = (s: UploadStatus) => (LIVE_UPLOAD_STATUSES as readonly UploadStatus[]).includes(s);
export const isFinal = (s: UploadStatus) => (FINAL_UPLOAD_STATUSES as readonly UploadStatus[]).includes(s);
export const isGone = (s: UploadStatus) => !isLive(s);

/**
 * How long a content upload whose instance died (no answer, no release) blocks a retry before another attempt may
 * take over: the function timeout (host.json functionTimeout, 30 minutes), by which the host has ended the
 * attempt, plus a margin. An attempt that ends normally, fails or stalls releases its claim at once.
 */
export const RECEIVING_LEASE_MS = 35 * 60_000;

export type ContentAdmission =
  | { ok: true }
  | { ok: false; problem: "not-found" | "conflict" | "upload-expired" | "upload-deleted" | "download-limit-reached"; detail: string };

/** May the content be downloaded now? Expiry is checked against the clock, not left to the purge sweep. */
export function admitDownload(u: { status: UploadStatus; expiresAt: string; downloads: number; maxDownloads: number | null; deletionReason?: string | null }, now: Date): ContentAdmission {
  if (u.status === "expired" || (u.status === "deleting" && u.deletionReason === "expired")) {
    return { ok: false, problem: "upload-expired", detail: "the upload reached the end of its life and was deleted" };
  }
  if (isGone(u.status)) return { ok: false, problem: "upload-deleted", detail: "the upload was deleted" };
  if (now.getTime() >= Date.parse(u.expiresAt)) {
    return { ok: false, problem: "upload-expired", detail: "the upload reached the end of its life and is being deleted" };
  }
  if (u.status !== "available") return { ok: false, problem: "conflict", detail: "the upload has no content yet" };
  if (u.maxDownloads !== null && u.downloads >= u.maxDownloads) {
    return { ok: false, problem: "download-limit-reached", detail: `the upload may be downloaded ${u.maxDownloads} time(s), and was` };
  }
  return { ok: true };
}

export type RangeRequest = { kind: "none" } | { kind: "range"; start: number; end: number } | { kind: "unsatisfiable" } | { kind: "malformed" };

/** RFC 9110 §5.6.2 token: what a range unit is made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** §14.1.2: int-range (`first-pos "-" [ last-pos ]`) or suffix-range (`"-" suffix-length`), positions in DIGITs. */
const BYTE_RANGE_SPEC = /^(?:\d+-\d*|-\d+)$/;

/**
 * Reads a Range header (RFC 9110 §14.2) against a payload of `size` bytes:
 * - no header, a range unit other than `bytes` (§14.2: a server MUST ignore a unit it does not understand), or
 *   several ranges (§14.2 lets a server ignore the header; one range per request keeps every download one stream of
 *   verified segments): `none`, the whole content;
 * - `bytes=a-b`, `bytes=a-`, `bytes=-n`, the unit in any case (§14.1: case-insensitive), empty list elements and the
 *   spaces around them allowed (§5.6.1): `range`, or `unsatisfiable` when no byte of it exists (§15.5.17);
 * - anything else with the `bytes` unit, or no unit at all: `malformed` (§14.2 lets a server reject an invalid one).
 * Each range-spec is checked against §14.1.2's grammar first (jshttp's range-parser, which does the arithmetic,
 * reads "1x" as 1), and a suffix longer than the content is shortened to it first (§14.1.3: it selects the whole
 * content; range-parser 1.2 would call it unsatisfiable).
 */
export function parseRange(header: string | null, size: number): RangeRequest {
  if (header === null) return { kind: "none" };
  const value = header.trim();
  const eq = value.indexOf("=");
  if (eq === -1 || !TOKEN.test(value.slice(0, eq))) return { kind: "malformed" };
  if (value.slice(0, eq).toLowerCase() !== "bytes") return { kind: "none" };
  const specs = value
    .slice(eq + 1)
    .split(",")
    .map((spec) => spec.trim())
    .filter((spec) => spec !== "");
  if (specs.length > 1) return { kind: "none" };
  const spec = specs[0];
  if (spec === undefined || !BYTE_RANGE_SPEC.test(spec)) return { kind: "malformed" };
  const [first, last] = spec.split("-") as [string, string];
  // §14.1.2: a last-pos below the first-pos makes the range-spec invalid (not merely unsatisfiable).
  if (first !== "" && last !== "" && Number(last) < Number(first)) return { kind: "malformed" };
  // §14.1.3: a suffix longer than the content selects all of it (range-parser 1.2 calls that unsatisfiable).
  const suffix = first === "" ? Number(last) : undefined;
  const ranges = parseRangeHeader(size, suffix !== undefined && suffix > size && size > 0 ? `bytes=-${size}` : `bytes=${spec}`);
  if (ranges === -2) return { kind: "malformed" };
  if (ranges === -1 || ranges.length !== 1) return { kind: "unsatisfiable" };
  return { kind: "range", start: ranges[0]!.start, end: ranges[0]!.end };
}

/**
 * The strong entity tag of stored content (RFC 9110 §8.8.3). Stored content never changes (it is sent once, then
 * only deleted), so a tag derived from the stored attempt, its blob name and its stream header (random salt and
 * nonce prefix), identifies these exact bytes. A hash, so it shows no id and nothing personal.
 */
export function contentEtag(content: { blobName: string; header: string }): string {
  return `"${createHash("sha256").update(`sds1\n${content.blobName}\n${content.header}`).digest("base64url").slice(0, 32)}"`;
}

/**
 * If-Range (RFC 9110 §13.1.5): may the Range be honoured? Without the header, yes. With an entity tag, only when it
 * matches `etag` by strong comparison (§8.8.3.2: a weak tag never does). With a date: no, since the content is served
 * without Last-Modified and a date can then match nothing; the Range is ignored and the whole content sent.
 */
export function ifRangeAllows(ifRange: string | null, etag: string): boolean {
  if (ifRange === null) return true;
  return ifRange.trim() === etag;
}

/**
 * If-None-Match (RFC 9110 §13.1.2) on a GET or HEAD: true when the condition is false, i.e. the answer is 304 Not
 * Modified. `*` or a listed tag matching `etag` by weak comparison. Evaluated with jshttp's fresh, given only this
 * header (so its Cache-Control handling and If-Modified-Since, which §13.1.3 ignores beside If-None-Match, play no
 * part).
 */
export function notModified(ifNoneMatch: string | null, etag: string): boolean {
  if (ifNoneMatch === null || ifNoneMatch.trim() === "") return false;
  return fresh({ "if-none-match": ifNoneMatch.trim() }, { etag });
}

/** a***@example.com: enough to recognise an address, not to read it. */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf("@");
  if (at <= 0) return "***";
  return `${address[0]}***@${address.slice(at + 1)}`;
}

/**
 * A MIME type as declared for an upload: type/subtype with optional parameters. A quoted parameter value may hold
 * only what an HTTP header may (RFC 9110 qdtext and quoted pairs: printable ASCII and tabs), since the type is sent
 * back as the download's Content-Type.
 */
export const MIME_TYPE =
  /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}([ \t]*;[ \t]*[a-z0-9!#$&^_.+-]+=("(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"|[a-z0-9!#$&^_.+-]+))*$/i;

/** The essence of a content type (type/subtype, lower case), for comparing a PUT with what was declared. */
export function mediaTypeEssence(value: string): string {
  return value.split(";")[0]!.trim().toLowerCase();
}

/**
 * Character encodings a declared type's `charset` may name and still be kept in plain text: the IANA names (RFC 2978
 * registry) in common use. Anything else a client writes there may be free text, so it is kept only encrypted.
 */
export const PLAIN_CHARSETS: ReadonlySet<string> = new Set([
  "utf-8", "utf-16", "utf-16be", "utf-16le", "utf-32", "us-ascii",
  "iso-8859-1", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5", "iso-8859-6", "iso-8859-7", "iso-8859-8",
  "iso-8859-9", "iso-8859-10", "iso-8859-13", "iso-8859-14", "iso-8859-15", "iso-8859-16",
  "windows-1250", "windows-1251", "windows-1252", "windows-1253", "windows-1254", "windows-1255", "windows-1256",
  "windows-1257", "windows-1258", "koi8-r", "koi8-u", "shift_jis", "euc-jp", "iso-2022-jp", "euc-kr", "gb2312", "gbk",
  "gb18030", "big5", "binary",
]);

/**
 * What of a declared Content-Type may be kept in plain text (the record, listings, the tombstone): the essence and,
 * when it names an encoding on PLAIN_CHARSETS, the `charset` (both lower case). Every other parameter (`name=` can
 * hold a person's name) is dropped here; the whole declared type is kept only as an encrypted field. Parameters are
 * read with jshttp's content-type (RFC 9110 §8.3.1 syntax, quoted strings included).
 */
export function plainContentType(declared: string): string {
  const essence = mediaTypeEssence(declared);
  let charset: string | undefined;
  try {
    charset = parseContentType(declared).parameters.charset?.toLowerCase();
  } catch {
    charset = undefined;
  }
  return charset !== undefined && PLAIN_CHARSETS.has(charset) ? `${essence}; charset=${charset}` : essence;
}

/**
 * Unicode control (Cc: C0, DEL, C1) and format (Cf: bidirectional overrides and isolates such as U+202E, zero-width
 * characters, the byte-order mark, ...) characters: they do not show as text and can make a name read as something it
 * is not ("report\u202Etxt.exe" shows as "reportexe.txt"). Free text an upload stores may hold none.
 */
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}]/u;

export function hasControlOrFormat(text: string): boolean {
  return CONTROL_OR_FORMAT.test(text);
}
