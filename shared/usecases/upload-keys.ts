/**
 * An upload's data key: generated at creation, stored only wrapped by the tenant's current KEK (with the KEK
 * version recorded), unwrapped when the payload or a personal field is needed. Personal fields of the record are
 * encrypted with the data key, so shredding the key erases them too. A key or field that fails authentication
 * throws IntegrityError naming the tenant, the upload and the field (integrity.ts).
 */
import {
  decryptField,
  encryptField,
  fieldAssociatedData,
  generateDataKey,
  unwrapDataKey,
  wrapDataKey,
  wrappedKeyAssociatedData,
} from "../crypto";
import type { Services } from "../services";
import type { UploadDoc } from "../stores/upload-store";
import { uploadRecord, withIntegrityContext } from "./integrity";

export type PersonalField = "senderReference" | "fileName" | "recipients" | "subjects" | "notifyEmail" | "contentType";

/** A fresh data key, wrapped with the tenant's current KEK version (from the tenant document). */
export async function newWrappedDataKey(
  s: Services,
  tenantId: string,
  uploadId: string,
  kekVersion: string,
): Promise<{ dataKey: Buffer; wrapped: UploadDoc["dataKey"] & object }> {
  const kek = await s.keys.kek(tenantId, kekVersion);
  const dataKey = generateDataKey();
  const wrapped = wrapDataKey(kek, dataKey, wrappedKeyAssociatedData(tenantId, uploadId, kekVersion));
  return { dataKey, wrapped: { wrapped, kekVersion } };
}

export class KeyShreddedError extends Error {
  constructor() {
    super("the upload's data key was destroyed");
    this.name = "KeyShreddedError";
  }
}

/** The upload's data key. Errors: KeyShreddedError; IntegrityError (with the upload's ids) when the wrapped key is damaged. */
export async function unwrapUploadKey(s: Services, doc: Pick<UploadDoc, "tenantId" | "id" | "dataKey">): Promise<Buffer> {
  if (!doc.dataKey) throw new KeyShreddedError();
  const { wrapped, kekVersion } = doc.dataKey;
  const kek = await s.keys.kek(doc.tenantId, kekVersion);
  return withIntegrityContext(uploadRecord(doc.tenantId, doc.id), () => unwrapDataKey(kek, wrapped, wrappedKeyAssociatedData(doc.tenantId, doc.id, kekVersion)));
}

/** Re-wraps a data key under another KEK version; the payload is not touched. */
export async function rewrapUploadKey(s: Services, doc: Pick<UploadDoc, "tenantId" | "id" | "dataKey">, target: { version: string; key: Buffer }): Promise<UploadDoc["dataKey"]> {
  const dataKey = await unwrapUploadKey(s, doc);
  return { wrapped: wrapDataKey(target.key, dataKey, wrappedKeyAssociatedData(doc.tenantId, doc.id, target.version)), kekVersion: target.version };
}

export function sealField(dataKey: Buffer, tenantId: string, uploadId: string, field: PersonalField, value: string): string {
  return encryptField(dataKey, value, fieldAssociatedData(tenantId, uploadId, field));
}

/** A personal field, decrypted. Errors: IntegrityError (with the upload's ids and the field) when it was tampered with. */
export function openField(dataKey: Buffer, tenantId: string, uploadId: string, field: PersonalField, sealed: string): string {
  return withIntegrityContext(uploadRecord(tenantId, uploadId, field), () => decryptField(dataKey, sealed, fieldAssociatedData(tenantId, uploadId, field)));
}
