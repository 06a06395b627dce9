/**
 * An upload's data key: generated at creation, stored only wrapped by the tenant's current KEK (with the KEK
 * version recorded), unwrapped when the payload or a personal field is needed. Personal fields of the record are
 * encrypted with the data key, so shredding the key erases them too.
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

export type PersonalField = "senderReference" | "fileName" | "recipients" | "subjects" | "notifyEmail";

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

export async function unwrapUploadKey(s: Services, doc: Pick<UploadDoc, "tenantId" | "id" | "dataKey">): Promise<Buffer> {
  if (!doc.dataKey) throw new KeyShreddedError();
  const kek = await s.keys.kek(doc.tenantId, doc.dataKey.kekVersion);
  return unwrapDataKey(kek, doc.dataKey.wrapped, wrappedKeyAssociatedData(doc.tenantId, doc.id, doc.dataKey.kekVersion));
}

/** Re-wraps a data key under another KEK version; the payload is not touched. */
export async function rewrapUploadKey(s: Services, doc: Pick<UploadDoc, "tenantId" | "id" | "dataKey">, target: { version: string; key: Buffer }): Promise<UploadDoc["dataKey"]> {
  const dataKey = await unwrapUploadKey(s, doc);
  return { wrapped: wrapDataKey(target.key, dataKey, wrappedKeyAssociatedData(doc.tenantId, doc.id, target.version)), kekVersion: target.version };
}

export function sealField(dataKey: Buffer, tenantId: string, uploadId: string, field: PersonalField, value: string): string {
  return encryptField(dataKey, value, fieldAssociatedData(tenantId, uploadId, field));
}

export function openField(dataKey: Buffer, tenantId: string, uploadId: string, field: PersonalField, sealed: string): string {
  return decryptField(dataKey, sealed, fieldAssociatedData(tenantId, uploadId, field));
}
