/** Response header values built from stored data (RFC 9110, RFC 6266). */

/** `attachment` with an RFC 6266 / 8187 filename: ASCII fallback plus the exact UTF-8 name. */
export function contentDisposition(fileName: string): string {
  const fallback = fileName.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** A value that can be sent as an HTTP header value as it is: printable ASCII, inner spaces and tabs only. */
export function isHeaderSafe(value: string): boolean {
  return /^[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?$/.test(value);
}
