/**
 * The keys of consent records:
 *
 * - each consent subject has its own data key (32 random bytes), stored only wrapped by the tenant's KEK (associated
 *   data: "consent-subject-key", tenant, subject id, KEK version). The subject's address and the personal fields of
 *   all its events (full IP when kept, user agent, page URL, IAB TCF/GPP strings) are encrypted with it (field
 *   encryption, bound to the record and the field), and so are its events' evidence files (the streaming format,
 *   bound to the tenant and the event: shared/stores/evidence-blobs.ts), so destroying it erases one person's consent
 *   data everywhere at once (crypto-shredding:
 *   an erasure request, issue 19, or the last history's retention);
 * - the withdrawal links' signing secrets, 32 random bytes per version, encrypted under the tenant's KEK like webhook
 *   secrets;
 * - both are moved to a new KEK version by the key re-wrap job (key-rotation.ts), without changing the keys inside.
 *
 * A key or field that fails authentication throws IntegrityError naming the tenant, the record and the field.
 */
import { randomBytes } from "node:crypto";
import {
  decryptField,
  encodeAssociatedData,
  encryptField,
  fieldAssociatedData,
  generateDataKey,
  inIntegrityContext,
  unwrapDataKey,
  wrapDataKey,
} from "../crypto";
import type { Services } from "../services";
import type { LinkSecret, SubjectDoc } from "../stores/consent-store";
import { withoutMeta } from "../stores/cosmos";
import { withIntegrityContext } from "./integrity";

/** The personal fields of consent records, by the name their encryption is bound to. */
export type ConsentField = "email" | "ipAddress" | "userAgent" | "pageUrl" | "tcfString" | "gppString";

const subjectKeyAad = (tenantId: string, subjectId: string, kekVersion: string) => encodeAssociatedData("consent-subject-key", tenantId, subjectId, kekVersion);
const subjectTarget = (subjectId: string) => `consent-subject:${subjectId}`;

/** A fresh subject data key, wrapped with the given KEK version (the caller's current one). */
export async function newSubjectKey(s: Services, tenantId: string, subjectId: string, kekVersion: string): Promise<{ dataKey: Buffer; wrapped: SubjectDoc["dataKey"] }> {
  const kek = await s.keys.kek(tenantId, kekVersion);
  const dataKey = generateDataKey();
  return { dataKey, wrapped: { wrapped: wrapDataKey(kek, dataKey, subjectKeyAad(tenantId, subjectId, kekVersion)), kekVersion } };
}

/** The subject's data key. Errors: IntegrityError (with the subject's ids) when the wrapped key is damaged. */
export async function unwrapSubjectKey(s: Services, subject: Pick<SubjectDoc, "tenantId" | "subjectId" | "dataKey">): Promise<Buffer> {
  const { wrapped, kekVersion } = subject.dataKey;
  const kek = await s.keys.kek(subject.tenantId, kekVersion);
  return withIntegrityContext({ tenantId: subject.tenantId, target: subjectTarget(subject.subjectId), field: "dataKey" }, () =>
    unwrapDataKey(kek, wrapped, subjectKeyAad(subject.tenantId, subject.subjectId, kekVersion)),
  );
}

/** Encrypts a personal field of record `recordId` (the subject id for its address, the event id for an event's fields). */
export function sealConsentField(dataKey: Buffer, tenantId: string, recordId: string, field: ConsentField, value: string): string {
  return encryptField(dataKey, value, fieldAssociatedData(tenantId, recordId, `consent.${field}`));
}

/** A personal field, decrypted. Errors: IntegrityError (with the record's ids and the field). */
export function openConsentField(dataKey: Buffer, tenantId: string, recordId: string, field: ConsentField, sealed: string): string {
  const target = recordId.startsWith("cs-") ? subjectTarget(recordId) : `consent-event:${recordId}`;
  return withIntegrityContext({ tenantId, target, field }, () => decryptField(dataKey, sealed, fieldAssociatedData(tenantId, recordId, `consent.${field}`)));
}

// --- withdrawal-link signing secrets -------------------------------------------------------------------------------

const secretAad = (tenantId: string, version: number) => fieldAssociatedData(tenantId, `consent-link-secret:${version}`, "consentLinkSecret");

/** A new signing secret of `version`, sealed under the tenant's KEK version `kekVersion`. */
export async function newLinkSecret(s: Services, tenantId: string, kekVersion: string, version: number, now: Date): Promise<LinkSecret> {
  const kek = await s.keys.kek(tenantId, kekVersion);
  return {
    version,
    sealed: { kekVersion, value: encryptField(kek, randomBytes(32).toString("base64"), secretAad(tenantId, version)) },
    createdAt: now.toISOString(),
    retiresAt: null,
  };
}

/** The secret's bytes. Errors: IntegrityError naming the tenant and the secret's version. */
export async function openLinkSecret(s: Services, tenantId: string, secret: LinkSecret): Promise<Buffer> {
  return inIntegrityContext({ tenantId, target: `consent-link-secret:${secret.version}`, field: "consentLinkSecret" }, async () => {
    const kek = await s.keys.kek(tenantId, secret.sealed.kekVersion);
    return Buffer.from(decryptField(kek, secret.sealed.value, secretAad(tenantId, secret.version)), "base64");
  });
}

// --- the key re-wrap job's share ----------------------------------------------------------------------------------

/**
 * Re-seals the link secrets that `isOlder` says are sealed under an older KEK version with `target`. A secret that
 * fails authentication throws IntegrityError (nothing is written); a write that lost to a concurrent change is left
 * for the next batch. Returns how many were re-sealed.
 */
export async function resealConsentLinkSecrets(s: Services, tenantId: string, target: { version: string; key: Buffer }, isOlder: (version: string) => boolean): Promise<number> {
  const doc = await s.consents.getLinkSecrets(tenantId);
  const stale = doc?.secrets.filter((sec) => sec.sealed.kekVersion !== target.version && isOlder(sec.sealed.kekVersion)) ?? [];
  if (!doc || stale.length === 0) return 0;
  const secrets: LinkSecret[] = [];
  for (const sec of doc.secrets) {
    if (!stale.includes(sec)) {
      secrets.push(sec);
      continue;
    }
    const plain = (await openLinkSecret(s, tenantId, sec)).toString("base64");
    secrets.push({ ...sec, sealed: { kekVersion: target.version, value: encryptField(target.key, plain, secretAad(tenantId, sec.version)) } });
  }
  return (await s.consents.saveLinkSecrets({ ...withoutMeta(doc), secrets }, doc._etag)) ? stale.length : 0;
}

export interface SubjectRewrapResult {
  rewrapped: number;
  /** Changed meanwhile and left for the next batch. */
  contended: number;
  /** Wrapped keys that failed authentication (each reported through `onDamaged`). */
  damaged: number;
  /** The batch was full: there may be more. */
  full: boolean;
}

/**
 * Re-wraps up to `batchSize` subject data keys that `isOlder` says are on an older KEK version onto `target`; the key
 * inside does not change, so nothing encrypted with it is touched. A key that fails authentication is reported to
 * `onDamaged` and left where it is.
 */
export async function rewrapSubjectKeys(
  s: Services,
  tenantId: string,
  target: { version: string; key: Buffer },
  isOlder: (version: string) => Promise<boolean>,
  onDamaged: (err: unknown) => void,
  batchSize: number,
): Promise<SubjectRewrapResult> {
  const subjects = await s.consents.subjectsWithOtherKekVersion(tenantId, target.version, batchSize);
  const out: SubjectRewrapResult = { rewrapped: 0, contended: 0, damaged: 0, full: subjects.length >= batchSize };
  for (const subject of subjects) {
    const from = subject.dataKey.kekVersion;
    if (!(await isOlder(from))) continue;
    let dataKey: Buffer;
    try {
      dataKey = await unwrapSubjectKey(s, subject);
    } catch (err) {
      onDamaged(err);
      out.damaged++;
      continue;
    }
    const wrapped = { wrapped: wrapDataKey(target.key, dataKey, subjectKeyAad(tenantId, subject.subjectId, target.version)), kekVersion: target.version };
    if (await s.consents.replaceSubject({ ...withoutMeta(subject), dataKey: wrapped }, subject._etag)) out.rewrapped++;
    else out.contended++;
  }
  return out;
}
