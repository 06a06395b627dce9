/**
 * Encryption of small personal-data fields stored in documents (e-mail addresses, file names, contact details),
 * and the keyed hash used to find a data subject by e-mail without storing the address in clear.
 *
 * Encrypted field: "v1." ‖ base64url(IV, 12 random bytes) ‖ "." ‖ base64url(AES-256-GCM ciphertext ‖ tag),
 * unpadded base64url. GCM additional data = ASCII "v1" ‖ the caller's associated data (see fieldAssociatedData),
 * so a value copied to another record or field fails to decrypt. The plaintext is the field's UTF-8 encoding.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { isWellFormedString } from "./associated-data";
import { IntegrityError } from "./errors";

export const FIELD_KEY_SIZE = 32;
export const LOOKUP_SECRET_SIZE = 32;
const VERSION = "v1";
const VERSION_BYTES = Buffer.from(VERSION, "ascii");
const IV_SIZE = 12;
const TAG_SIZE = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function checkKey(name: string, key: Uint8Array, size: number): void {
  if (!(key instanceof Uint8Array) || key.length !== size) throw new RangeError(`${name} must be ${size} bytes`);
}

function additionalData(associatedData: Uint8Array): Buffer {
  return Buffer.concat([VERSION_BYTES, associatedData]);
}

/** Encrypts a string field; the result is an ASCII string safe to store in JSON. */
export function encryptField(key: Uint8Array, plaintext: string, associatedData: Uint8Array): string {
  checkKey("field key", key, FIELD_KEY_SIZE);
  if (typeof plaintext !== "string" || !isWellFormedString(plaintext)) {
    throw new TypeError("field plaintext must be a well-formed Unicode string");
  }
  const iv = randomBytes(IV_SIZE);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_SIZE });
  cipher.setAAD(additionalData(associatedData));
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return `${VERSION}.${iv.toString("base64url")}.${sealed.toString("base64url")}`;
}

function decodePart(part: string): Buffer | null {
  if (!BASE64URL.test(part)) return null;
  const bytes = Buffer.from(part, "base64url");
  return bytes.toString("base64url") === part ? bytes : null;
}

/** Decrypts a value from encryptField. Throws IntegrityError for a wrong key or associated data, or altered input. */
export function decryptField(key: Uint8Array, encrypted: string, associatedData: Uint8Array): string {
  checkKey("field key", key, FIELD_KEY_SIZE);
  const parts = typeof encrypted === "string" ? encrypted.split(".") : [];
  const [version, ivPart, sealedPart] = parts;
  if (parts.length !== 3 || version !== VERSION || ivPart === undefined || sealedPart === undefined) {
    throw new IntegrityError("field", null, "encrypted field is malformed or of an unsupported version");
  }
  const iv = decodePart(ivPart);
  const sealed = decodePart(sealedPart);
  if (iv === null || iv.length !== IV_SIZE || sealed === null || sealed.length < TAG_SIZE) {
    throw new IntegrityError("field", null, "encrypted field is malformed");
  }
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_SIZE });
  decipher.setAAD(additionalData(associatedData));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    plaintext.fill(0);
    throw new IntegrityError("field", null, "encrypted field failed authentication");
  }
  const text = plaintext.toString("utf8");
  plaintext.fill(0);
  return text;
}

/**
 * The form of an e-mail address that lookup hashes are computed over: surrounding whitespace removed, the whole
 * address lower-cased (local part too: mailbox providers treat it case-insensitively in practice, and a missed
 * match would hide a data subject's data from their own request), then Unicode NFC. Nothing provider-specific
 * is removed (no dots, no "+tag"), and internationalised domains are not converted between Unicode and
 * "xn--" forms. Validating that the input is an address at all is the caller's job.
 */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase().normalize("NFC");
}

/**
 * HMAC-SHA256(secret, UTF-8 of the normalised e-mail) as lowercase hex: the key for finding a data subject's
 * records. Throws if the address is not already in normaliseEmail's form, so two spellings of one address
 * cannot silently hash differently.
 */
export function lookupHash(secret: Uint8Array, normalisedEmail: string): string {
  checkKey("lookup secret", secret, LOOKUP_SECRET_SIZE);
  if (normalisedEmail.length === 0) throw new RangeError("e-mail address must not be empty");
  if (!isWellFormedString(normalisedEmail) || normaliseEmail(normalisedEmail) !== normalisedEmail) {
    throw new RangeError("e-mail address must be normalised with normaliseEmail first");
  }
  return createHmac("sha256", secret).update(normalisedEmail, "utf8").digest("hex");
}
