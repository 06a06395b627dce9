/**
 * Associated data binds a ciphertext to the record it belongs to, so a ciphertext (or a wrapped key, or an
 * encrypted field) copied onto another record fails to decrypt.
 *
 * Encoding: a purpose label followed by the fields, each written as its UTF-8 byte length (uint16 BE) and then
 * its UTF-8 bytes. Every part is length-prefixed, so ("ab", "c") and ("a", "bc") encode differently, and the
 * purpose label keeps the encodings of different uses apart.
 */

const MAX_PART_BYTES = 0xffff;

/** Matches a UTF-16 surrogate that is not part of a valid pair (such strings have no exact UTF-8 form). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when the string has an exact UTF-8 encoding (no lone surrogates). */
export function isWellFormedString(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** Length-prefixed encoding of a purpose label and fields (see the module comment). */
export function encodeAssociatedData(purpose: string, ...fields: readonly string[]): Buffer {
  const parts = [purpose, ...fields].map((part) => {
    if (!isWellFormedString(part)) throw new TypeError("associated data parts must be well-formed Unicode strings");
    const bytes = Buffer.from(part, "utf8");
    if (bytes.length > MAX_PART_BYTES) throw new RangeError(`associated data part longer than ${MAX_PART_BYTES} bytes`);
    return bytes;
  });
  const out = Buffer.alloc(parts.reduce((n, p) => n + 2 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    at = out.writeUInt16BE(p.length, at);
    at += p.copy(out, at);
  }
  return out;
}

function requireId(name: string, value: string): void {
  if (value.length === 0) throw new RangeError(`${name} must not be empty`);
}

/** Associated data of an upload's encrypted payload stream: ("upload", tenantId, uploadId). */
export function uploadAssociatedData(tenantId: string, uploadId: string): Buffer {
  requireId("tenantId", tenantId);
  requireId("uploadId", uploadId);
  return encodeAssociatedData("upload", tenantId, uploadId);
}

/**
 * Associated data of an upload's wrapped data key: ("upload-key", tenantId, uploadId, kekVersion). Binding the
 * KEK version means a wrapped key relabelled with another version fails instead of being tried with the wrong KEK.
 */
export function wrappedKeyAssociatedData(tenantId: string, uploadId: string, kekVersion: string): Buffer {
  requireId("tenantId", tenantId);
  requireId("uploadId", uploadId);
  requireId("kekVersion", kekVersion);
  return encodeAssociatedData("upload-key", tenantId, uploadId, kekVersion);
}

/**
 * Associated data of an encrypted field: ("field", tenantId, recordId, fieldName), so a value copied to another
 * record, another tenant or another field of the same record fails to decrypt.
 */
export function fieldAssociatedData(tenantId: string, recordId: string, fieldName: string): Buffer {
  requireId("tenantId", tenantId);
  requireId("recordId", recordId);
  requireId("fieldName", fieldName);
  return encodeAssociatedData("field", tenantId, recordId, fieldName);
}

/**
 * Associated data of a consent event's evidence file (a screenshot, PDF or rendered notice), a payload stream in
 * the same format as uploads: ("consent-evidence", tenantId, eventId). The stream is encrypted with the consent
 * subject's data key, so destroying that key erases the file with the subject's other consent data.
 */
export function consentEvidenceAssociatedData(tenantId: string, eventId: string): Buffer {
  requireId("tenantId", tenantId);
  requireId("eventId", eventId);
  return encodeAssociatedData("consent-evidence", tenantId, eventId);
}
