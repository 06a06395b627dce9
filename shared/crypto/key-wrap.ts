/**
 * Wrapping of data keys with a tenant's key-encryption key (KEK).
 *
 * Wrapped form (61 bytes, stored as standard base64, 84 characters):
 *   version 0x01 ‖ IV (12 random bytes) ‖ AES-256-GCM ciphertext of the data key (32) ‖ tag (16)
 * GCM additional data = the version byte ‖ the caller's associated data (see wrappedKeyAssociatedData), so a
 * wrapped key copied onto another record, tenant or KEK version fails to unwrap.
 *
 * Random 96-bit IVs keep the usual GCM bound: at most 2^32 wraps per KEK version, far beyond one tenant's uploads
 * between rotations.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { IntegrityError } from "./errors";

export const WRAPPED_KEY_VERSION = 1;
export const KEK_SIZE = 32;
const WRAPPED_DATA_KEY_SIZE = 32;
const IV_SIZE = 12;
const TAG_SIZE = 16;
/** Bytes of a wrapped key: version ‖ IV ‖ ciphertext ‖ tag. */
export const WRAPPED_KEY_SIZE = 1 + IV_SIZE + WRAPPED_DATA_KEY_SIZE + TAG_SIZE;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function checkKey(name: string, key: Uint8Array, size: number): void {
  if (!(key instanceof Uint8Array) || key.length !== size) throw new RangeError(`${name} must be ${size} bytes`);
}

function additionalData(version: number, associatedData: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(version), associatedData]);
}

/** Wraps a 32-byte data key; returns the base64 wrapped form. */
export function wrapDataKey(kek: Uint8Array, dataKey: Uint8Array, associatedData: Uint8Array): string {
  checkKey("KEK", kek, KEK_SIZE);
  checkKey("data key", dataKey, WRAPPED_DATA_KEY_SIZE);
  const iv = randomBytes(IV_SIZE);
  const cipher = createCipheriv("aes-256-gcm", kek, iv, { authTagLength: TAG_SIZE });
  cipher.setAAD(additionalData(WRAPPED_KEY_VERSION, associatedData));
  const ciphertext = Buffer.concat([cipher.update(dataKey), cipher.final()]);
  return Buffer.concat([Buffer.of(WRAPPED_KEY_VERSION), iv, ciphertext, cipher.getAuthTag()]).toString("base64");
}

function decodeWrapped(wrapped: string | Uint8Array): Buffer {
  if (typeof wrapped !== "string") return Buffer.from(wrapped);
  const bytes = BASE64.test(wrapped) ? Buffer.from(wrapped, "base64") : null;
  // Canonical base64 only: the string must be exactly what wrapDataKey writes for these bytes.
  if (bytes === null || bytes.toString("base64") !== wrapped) {
    throw new IntegrityError("wrapped-key", null, "wrapped data key is not valid base64");
  }
  return bytes;
}

/**
 * Unwraps a key produced by wrapDataKey (base64 string or its raw bytes). Throws IntegrityError for a wrong KEK,
 * wrong associated data, or altered or malformed input.
 */
export function unwrapDataKey(kek: Uint8Array, wrapped: string | Uint8Array, associatedData: Uint8Array): Buffer {
  checkKey("KEK", kek, KEK_SIZE);
  const bytes = decodeWrapped(wrapped);
  if (bytes.length !== WRAPPED_KEY_SIZE) {
    throw new IntegrityError("wrapped-key", null, "wrapped data key has the wrong length");
  }
  if (bytes[0] !== WRAPPED_KEY_VERSION) {
    throw new IntegrityError("wrapped-key", null, "wrapped data key has an unsupported version");
  }
  const iv = bytes.subarray(1, 1 + IV_SIZE);
  const ciphertext = bytes.subarray(1 + IV_SIZE, 1 + IV_SIZE + WRAPPED_DATA_KEY_SIZE);
  const tag = bytes.subarray(1 + IV_SIZE + WRAPPED_DATA_KEY_SIZE);
  const decipher = createDecipheriv("aes-256-gcm", kek, iv, { authTagLength: TAG_SIZE });
  decipher.setAAD(additionalData(WRAPPED_KEY_VERSION, associatedData));
  decipher.setAuthTag(tag);
  const dataKey = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch {
    dataKey.fill(0);
    throw new IntegrityError("wrapped-key", null, "wrapped data key failed authentication");
  }
  return dataKey;
}
