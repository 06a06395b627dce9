/**
 * Each tenant's privacy-information document: what GDPR Art. 15(1)(a)–(h) and 15(2) say a person who asks for access
 * is owed besides the copy of the data (purposes, categories, recipients, retention, the rights, the right to
 * complain, the source, automated decisions, transfers), in every language the service writes in. An access package
 * carries it; an access request cannot complete without it (it needs the tenant's attention until it is saved).
 *
 * `PUT /api/v1/privacy-information` replaces it (a version number counts the changes; `If-Match` may name the version
 * read, see the trigger), `GET` shows it. Saving is audited (`privacy-information.updated`, the version only).
 */
import type { Language } from "../domain/language";
import type { PrivacyDocument, PrivacyTexts } from "../domain/subject-package";
import { AppError } from "../errors";
import type { Services } from "../services";
import { recordAudit, type TenantCaller } from "./audit-trail";

export interface PrivacyInformationView {
  document: PrivacyDocument;
  version: number;
  updatedAt: string;
}

/** GET /api/v1/privacy-information. Errors: not-found (none saved yet). */
export async function getPrivacyInformation(s: Services, caller: Pick<TenantCaller, "tenantId">): Promise<PrivacyInformationView> {
  const doc = await s.packages.getPrivacyInformation(caller.tenantId);
  if (!doc) throw new AppError("not-found", "no privacy information saved yet; PUT /api/v1/privacy-information with both languages");
  return { document: doc.document, version: doc.version, updatedAt: doc.updatedAt };
}

/**
 * PUT /api/v1/privacy-information: saves the document (created at version 1, then each save one more). With
 * `ifVersion`, only when the stored version is that one (precondition-failed otherwise). Errors: conflict (changed by
 * another request meanwhile, or the version named is not the stored one).
 */
export async function putPrivacyInformation(
  s: Services,
  caller: TenantCaller,
  document: PrivacyDocument,
  ifVersion?: number,
): Promise<{ created: boolean; view: PrivacyInformationView }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await s.packages.getPrivacyInformation(caller.tenantId);
    if (ifVersion !== undefined && (current?.version ?? 0) !== ifVersion) {
      throw new AppError("conflict", `the stored privacy information is at version ${current?.version ?? 0}, not ${ifVersion}; read it again`);
    }
    const now = s.clock.now().toISOString();
    const version = (current?.version ?? 0) + 1;
    const saved = await s.packages.savePrivacyInformation(
      { id: "privacy-information", tenantId: caller.tenantId, type: "privacy-information", document, version, updatedAt: now, updatedBy: caller.actor },
      current?._etag,
    );
    if (!saved) continue;
    await recordAudit(s, caller.tenantId, caller, "privacy-information.updated", { type: "tenant", id: caller.tenantId }, { version });
    return { created: current === undefined, view: { document, version, updatedAt: now } };
  }
  throw new AppError("conflict", "the privacy information is being changed by other requests; retry");
}

/** The document in one language, for a package; undefined when the tenant has none. */
export async function privacyTextsFor(s: Services, tenantId: string, language: Language): Promise<{ texts: PrivacyTexts; version: number } | undefined> {
  const doc = await s.packages.getPrivacyInformation(tenantId);
  return doc ? { texts: doc.document[language], version: doc.version } : undefined;
}
