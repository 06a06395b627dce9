/**
 * The keys of data-subject requests:
 *
 * - each request has its own data key (32 random bytes), stored only wrapped by the tenant's KEK (associated data:
 *   "dsr-key", tenant, request id, KEK version). The person's address and every free text of the request (details,
 *   reasons, the external id, a vouching statement) are encrypted with it (field encryption bound to the request and
 *   the field), so destroying it erases them everywhere at once (closed-request retention);
 * - keyed hashes, under keys derived from the tenant's lookup secret with HKDF-SHA256 (RFC 5869; info
 *   `safedata/dsr/<purpose>/<tenantId>`): one-time codes (HMAC over the request id, the e-mail's generation and the
 *   code), markers (external ids; a subject's open request), digests of vouching statements for the audit log. The
 *   lookup secret never rotates, so these stay comparable; it is deleted at offboarding, which leaves them unlinkable;
 * - link tokens hold 256 random bits; only their SHA-256 is stored.
 * The re-wrap job (key-rotation.ts) moves data keys to a new KEK version without changing them.
 *
 * A key or field that fails authentication throws IntegrityError naming the tenant, the request and the field.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { decryptField, encodeAssociatedData, encryptField, fieldAssociatedData, generateDataKey, unwrapDataKey, wrapDataKey } from "../crypto";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { RequestDoc } from "../stores/subject-request-store";
import { withIntegrityContext } from "./integrity";

/** The encrypted fields of a request, by the name their encryption is bound to. */
export type RequestField = keyof NonNullable<RequestDoc["personal"]>;

const keyAad = (tenantId: string, requestId: string, kekVersion: string) => encodeAssociatedData("dsr-key", tenantId, requestId, kekVersion);
const target = (requestId: string) => `subject-request:${requestId}`;

/** A fresh request data key, wrapped with the given KEK version (the caller's current one). */
export async function newRequestKey(s: Services, tenantId: string, requestId: string, kekVersion: string): Promise<{ dataKey: Buffer; wrapped: NonNullable<RequestDoc["dataKey"]> }> {
  const kek = await s.keys.kek(tenantId, kekVersion);
  const dataKey = generateDataKey();
  return { dataKey, wrapped: { wrapped: wrapDataKey(kek, dataKey, keyAad(tenantId, requestId, kekVersion)), kekVersion } };
}

/** The request's data key, or undefined once it was destroyed. Errors: IntegrityError (with the request's ids). */
export async function unwrapRequestKey(s: Services, doc: Pick<RequestDoc, "tenantId" | "id" | "dataKey">): Promise<Buffer | undefined> {
  if (!doc.dataKey) return undefined;
  const { wrapped, kekVersion } = doc.dataKey;
  const kek = await s.keys.kek(doc.tenantId, kekVersion);
  return withIntegrityContext({ tenantId: doc.tenantId, target: target(doc.id), field: "dataKey" }, () => unwrapDataKey(kek, wrapped, keyAad(doc.tenantId, doc.id, kekVersion)));
}

export function sealRequestField(dataKey: Buffer, tenantId: string, requestId: string, field: RequestField, value: string): string {
  return encryptField(dataKey, value, fieldAssociatedData(tenantId, requestId, `dsr.${field}`));
}

/** A personal field, decrypted. Errors: IntegrityError (with the request's ids and the field). */
export function openRequestField(dataKey: Buffer, tenantId: string, requestId: string, field: RequestField, sealed: string): string {
  return withIntegrityContext({ tenantId, target: target(requestId), field }, () => decryptField(dataKey, sealed, fieldAssociatedData(tenantId, requestId, `dsr.${field}`)));
}

// --- keyed hashes ---------------------------------------------------------------------------------------------------

type HashPurpose = "code" | "marker" | "statement";
const SALT = Buffer.from("safedata/dsr-keys/v1", "utf8");

async function derivedKey(s: Services, tenantId: string, purpose: HashPurpose): Promise<Buffer> {
  const root = await s.keys.lookupSecret(tenantId);
  return Buffer.from(hkdfSync("sha256", root, SALT, Buffer.from(`safedata/dsr/${purpose}/${tenantId}`, "utf8"), 32));
}

const hmacHex = (key: Buffer, ...parts: string[]) => createHmac("sha256", key).update(parts.map((p) => `${p.length}:${p}`).join("|"), "utf8").digest("hex");

/** The per-tenant keyed hasher of one-time codes: `hash(requestId, generation, code)`. */
export async function codeHasher(s: Services, tenantId: string): Promise<(requestId: string, gen: number, code: string) => string> {
  const key = await derivedKey(s, tenantId, "code");
  return (requestId, gen, code) => hmacHex(key, requestId, String(gen), code);
}

/** A marker's id part: the keyed hash of what it makes unique (an external id; a subject's open request of a kind). */
export async function markerHasher(s: Services, tenantId: string): Promise<(...parts: string[]) => string> {
  const key = await derivedKey(s, tenantId, "marker");
  return (...parts) => hmacHex(key, ...parts);
}

/** The keyed digest of a vouching statement, for the audit log (which never holds the text). */
export async function statementDigest(s: Services, tenantId: string, requestId: string, statement: string): Promise<string> {
  return hmacHex(await derivedKey(s, tenantId, "statement"), requestId, statement);
}

/** SHA-256 of a link token's secret part, as stored. */
export function tokenHash(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/**
 * Which of `stored` (hex digests) equals `candidate`, comparing every one in constant time (no early exit), so how
 * long a check takes says nothing about which, or whether any, matched.
 */
export function matchingIndexes(candidate: string, stored: readonly string[]): number[] {
  const c = Buffer.from(candidate, "hex");
  const out: number[] = [];
  stored.forEach((h, i) => {
    const b = Buffer.from(h, "hex");
    if (b.length === c.length && timingSafeEqual(b, c)) out.push(i);
  });
  return out;
}

// --- the key re-wrap job's share ------------------------------------------------------------------------------------

export interface RequestRewrapResult {
  rewrapped: number;
  /** Changed meanwhile and left for the next batch. */
  contended: number;
  /** Wrapped keys that failed authentication (each reported through `onDamaged`). */
  damaged: number;
  /** The batch was full: there may be more. */
  full: boolean;
}

/**
 * Re-wraps up to `batchSize` request data keys that `isOlder` says are on an older KEK version onto `target`; the key
 * inside does not change, so no encrypted field is touched. A key that fails authentication is reported to
 * `onDamaged` and left where it is; a request changed meanwhile is left for the next batch.
 */
export async function rewrapRequestKeys(
  s: Services,
  tenantId: string,
  targetKek: { version: string; key: Buffer },
  isOlder: (version: string) => boolean | Promise<boolean>,
  onDamaged: (err: unknown) => void,
  batchSize = 100,
): Promise<RequestRewrapResult> {
  const docs = await s.subjectRequests.withOtherKekVersion(tenantId, targetKek.version, batchSize);
  const out: RequestRewrapResult = { rewrapped: 0, contended: 0, damaged: 0, full: docs.length >= batchSize };
  for (const doc of docs) {
    if (!doc.dataKey || !(await isOlder(doc.dataKey.kekVersion))) continue;
    let dataKey: Buffer | undefined;
    try {
      dataKey = await unwrapRequestKey(s, doc);
    } catch (err) {
      onDamaged(err);
      out.damaged++;
      continue;
    }
    if (!dataKey) continue;
    const wrapped = { wrapped: wrapDataKey(targetKek.key, dataKey, keyAad(tenantId, doc.id, targetKek.version)), kekVersion: targetKek.version };
    if (await s.subjectRequests.replace({ ...withoutMeta(doc), dataKey: wrapped }, doc._etag)) out.rewrapped++;
    else out.contended++;
  }
  return out;
}
