/** Response header values built from stored data (RFC 9110, RFC 6266). */
import contentDispositionHeader from "content-disposition";

/**
 * `attachment` with the file name (RFC 6266 §4.3), written by jshttp's content-disposition: a quoted `filename` that
 * every client reads, and, when the name is not plain ASCII, `filename*` with the exact name in UTF-8 (RFC 8187).
 * The quoted fallback is the name in printable ASCII with every other character, quotes and backslashes as `_`,
 * since clients differ in how they read non-ASCII and escapes in a quoted string. A name with a path keeps its last
 * segment (the library's rule; a download is a file, not a place in a tree).
 */
export function contentDisposition(fileName: string): string {
  const fallback = fileName.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return contentDispositionHeader(fileName, { type: "attachment", fallback });
}

/** A value that can be sent as an HTTP header value as it is: printable ASCII, inner spaces and tabs only. */
export function isHeaderSafe(value: string): boolean {
  return /^[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?$/.test(value);
}
