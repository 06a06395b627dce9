/**
 * Consent evidence files: a copy of what the person was shown (EDPB Guidelines 05/2020 para. 108) — a screenshot of
 * the page (PNG, JPEG or WebP), a PDF, or the rendered notice as HTML — one per consent event, sent once.
 *
 * The type a tenant declares must be one of these and must match what the first bytes are (their signatures, or for
 * HTML a conservative check of the opening markup): a file that says it is a PNG but is HTML is refused, and so is a
 * PNG, JPEG, WebP or PDF that carries HTML or script markup in its first 8 KiB (a polyglot), so nothing is kept under
 * a type it is not, and nothing served back can be taken by a browser for something else.
 */

/** The media types evidence may have, by what the file is. */
export const EVIDENCE_TYPES = ["image/png", "image/jpeg", "image/webp", "application/pdf", "text/html"] as const;
export type EvidenceType = (typeof EVIDENCE_TYPES)[number];

/**
 * How many first bytes are checked: every signature, the start of an HTML document, and for the binary types the
 * markup a polyglot hides behind a valid signature (see markupProblem). 8 KiB: more than browsers and old content
 * sniffers looked at for markup (Internet Explorer's FindMimeFromData read 256 bytes; the WHATWG MIME Sniffing
 * standard's resource header is at most 1,445 bytes), held in memory once per request.
 */
export const SNIFF_BYTES = 8 * 1024;

/**
 * Markup that makes a file a page when something takes it for HTML or SVG: an opening doctype or `<html`, `<head`,
 * `<body`, `<script`, `<svg`, `<iframe`, `<object`, `<embed` tag, in any case, followed by white space, `/` or `>`
 * (`<!doctype` by white space). None of these is in a real screenshot's or PDF's first kilobytes: image metadata
 * (XMP) is RDF/XML under `<x:xmpmeta>` and `<rdf:…>`, which these do not match.
 */
const MARKUP = /<(?:!doctype\s|(?:html|head|body|script|svg|iframe|object|embed)[\s/>])/i;

/**
 * Why a file that is a PNG, JPEG, WebP or PDF by its signature is refused for carrying HTML or script markup in its
 * first SNIFF_BYTES (a polyglot: a valid image to one reader, a page to another), or undefined. It is served back as
 * an attachment with nosniff and a sandboxing CSP in any case; refusing it means nothing is kept that is a page too.
 */
function markupProblem(head: Buffer): string | undefined {
  const found = MARKUP.exec(head.toString("latin1"));
  return found ? `the file carries HTML or script markup (${JSON.stringify(found[0].trim())} at byte ${found.index}); evidence must be one thing, not an image or PDF that is also a page` : undefined;
}

export const EVIDENCE_ID_PATTERN = /^ce-[a-z2-7]{16}$/;

const startsWith = (head: Buffer, bytes: readonly number[], at = 0): boolean => head.length >= at + bytes.length && bytes.every((b, i) => head[at + i] === b);
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

/**
 * Whether the first bytes open an HTML document: after an optional UTF-8 byte-order mark and white space, a doctype
 * (`<!DOCTYPE html`), or an `<html`, `<head`, `<body` or comment tag, in any case, followed by white space or `>`
 * (the WHATWG MIME Sniffing standard's HTML patterns, §7.1, narrowed to what opens a page). No NUL byte in what was
 * seen (HTML is text). Conservative: a fragment such as `<div>` is not taken for a page.
 */
function looksLikeHtml(head: Buffer): boolean {
  if (head.includes(0)) return false;
  let at = startsWith(head, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  while (at < head.length && (head[at] === 0x20 || head[at] === 0x09 || head[at] === 0x0a || head[at] === 0x0c || head[at] === 0x0d)) at++;
  const rest = head.subarray(at, at + 16).toString("latin1").toLowerCase();
  const tagEnd = (n: number) => rest.length > n && /[\s>]/.test(rest[n]!);
  if (rest.startsWith("<!doctype html") && tagEnd(14)) return true;
  if (rest.startsWith("<!--")) return true;
  return ["<html", "<head", "<body"].some((tag) => rest.startsWith(tag) && tagEnd(tag.length));
}

/**
 * What the first bytes of a file are, by signature: PNG (`89 50 4E 47 0D 0A 1A 0A`, RFC 2083 §3.1), JPEG (`FF D8 FF`,
 * the SOI marker and the next marker's prefix), WebP (`RIFF` size `WEBP`, RFC 9649 §2.5), PDF (`%PDF-`, ISO 32000-1
 * §7.5.2), HTML (see looksLikeHtml); undefined when none. `head` holds up to SNIFF_BYTES first bytes (the whole file
 * when it is shorter).
 */
export function sniffEvidenceType(head: Buffer): EvidenceType | undefined {
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (startsWith(head, ascii("RIFF")) && startsWith(head, ascii("WEBP"), 8)) return "image/webp";
  if (startsWith(head, ascii("%PDF-"))) return "application/pdf";
  if (looksLikeHtml(head)) return "text/html";
  return undefined;
}

/**
 * The evidence type a `Content-Type` names, from its parsed type and parameters: one of EVIDENCE_TYPES, and for HTML
 * no charset but UTF-8 (what is stored is served back as UTF-8 HTML); no other parameter. Returns the type, or why not.
 */
export function declaredEvidenceType(type: string, parameters: Readonly<Record<string, string>>): { type: EvidenceType } | { problem: string } {
  const essence = type.toLowerCase();
  if (!(EVIDENCE_TYPES as readonly string[]).includes(essence)) {
    return { problem: `evidence must be one of ${EVIDENCE_TYPES.join(", ")}` };
  }
  const names = Object.keys(parameters);
  if (essence === "text/html") {
    if (names.some((n) => n !== "charset") || (parameters.charset !== undefined && parameters.charset.toLowerCase() !== "utf-8")) {
      return { problem: "HTML evidence must be text/html, with charset=utf-8 or no charset" };
    }
  } else if (names.length > 0) {
    return { problem: `${essence} evidence takes no media type parameters` };
  }
  return { type: essence as EvidenceType };
}

/**
 * Why the first bytes (up to SNIFF_BYTES) do not fit the declared type, or undefined when they do: an empty file is
 * no evidence; the signature must be the declared type's; a PNG, JPEG, WebP or PDF must carry no HTML or script
 * markup there (markupProblem).
 */
export function evidenceContentProblem(declared: EvidenceType, head: Buffer): string | undefined {
  if (head.length === 0) return "the file is empty";
  const found = sniffEvidenceType(head);
  if (found === declared) return found === "text/html" ? undefined : markupProblem(head);
  return found === undefined
    ? `the file does not begin as a ${declared} file does; send one of ${EVIDENCE_TYPES.join(", ")} with its own type`
    : `the file is ${found}, not ${declared} as declared; send it with its own type`;
}
