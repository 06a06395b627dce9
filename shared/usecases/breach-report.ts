/**
 * The report a controller files with its supervisory authority (GDPR Art. 33(3)), from its own part of a breach,
 * structured as the Danish authority's (Datatilsynet's) form asks: the contact point; a description of the breach;
 * the categories and approximate number of persons; the categories and approximate number of records; the
 * consequences and the likely consequences; the measures taken or proposed, those in place before and those that
 * limit the effects; whether and how the persons were told, or why not; and when missing information will follow.
 *
 * It names the controller's contact point (Art. 33(3)(b)) and the processor's, and holds no identifier of any
 * affected person: it is built from the part's content alone (counts, categories and the breach texts, which refuse
 * e-mail addresses and CPR numbers), never from the uploads' encrypted fields. Reading it decrypts the controller's
 * contact address, so each read is audited (`breach.report-read`).
 */
import { createHash } from "node:crypto";
import { BAND_LABELS, CATEGORY_LABELS, KIND_LABELS, LEVEL_LABELS, METHOD_LABELS, PERSON_CATEGORY_LABELS, YES_NO } from "../domain/breach-labels";
import { authorityClock, breachKinds, type AuthorityClock } from "../domain/breaches";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatInstant } from "../domain/time";
import type { DataCategory } from "../domain/uploads";
import { AppError } from "../errors";
import type { Services } from "../services";
import { recordAudit, type TenantCaller } from "./audit-trail";
import { latestContent, latestVersion, occurredFlags } from "./breach-notices";
import { tenantContactEmail } from "./tenants";

/** The measures the product itself has in place before any breach (the form's "measures in place before"). */
const PRODUCT_MEASURES: Record<Language, string> = {
  en:
    "Transfers are encrypted at rest with AES-256-GCM, each with its own data key wrapped by the controller's key-encryption key in Azure Key Vault; " +
    "names, addresses and file names are encrypted fields; persons are found only by keyed hashes; transfers are deleted after at most 32 days; " +
    "every access to personal data is recorded in a hash-chained audit log anchored outside the database; the service runs in the EU only.",
  da:
    "Overførsler er krypteret med AES-256-GCM, hver med sin egen datanøgle, der er beskyttet af den dataansvarliges nøgle i Azure Key Vault; " +
    "navne, adresser og filnavne er krypterede felter; personer findes kun via nøglebaserede hashværdier; overførsler slettes senest efter 32 dage; " +
    "al adgang til personoplysninger registreres i en hashkædet revisionslog, der er forankret uden for databasen; tjenesten kører kun i EU.",
};

export interface AuthorityReport {
  breachId: string;
  version: number;
  generatedAt: string;
  language: Language;
  /** Whom to contact about the breach (Art. 33(3)(b)): the controller's contact point, and the processor's. */
  contactPoint: { controller: string; email: string | null; supervisoryAuthority: { country: string; name: string }; processorEmail: string | null };
  description: {
    nature: Array<{ kind: string; level: string }>;
    malicious: boolean;
    summary: string;
    cause: string;
    occurredFrom: string | null;
    occurredTo: string | null;
    processorAwareAt: string;
    controllerAwareAt: string | null;
    controllerAwareVia: string | null;
  };
  /**
   * `approximateNumber`: the register's estimate (the operator's, or counted from a scope of upload ids).
   * `resolved`: once the scope resolution of the part (GDPR Art. 34 notices) has completed, the number of distinct
   * persons it found by keyed hash and the unreachable ones (at most: named by records whose keyed hashes were cleared)
   * for that part version; null while it runs or before it.
   */
  persons: { categories: string[]; approximateNumber: number | null; resolved: null | { version: number; persons: number; unreachable: number; finishedAt: string | null } };
  records: { categories: DataCategory[]; approximateNumber: number | null };
  consequences: string | null;
  likelyConsequences: string | null;
  measures: { taken: string | null; proposed: string | null; inPlaceBefore: string; inPlaceBeforeByProcessor: string | null; limitingEffects: string | null };
  severity: { band: string; score: number; formula: string; method: string } | null;
  /** Whether and how the persons were told, or why not (from the controller's newest decision). */
  personsInformed: { decided: boolean; notifyPersons: boolean | null; exemption: string | null; reasons: string | null };
  notification: { clock: AuthorityClock; notifications: Array<{ notifiedAt: string; method: string; reference: string | null; delayReason: string | null; late: boolean }>; notNotifiedReason: string | null };
  followUp: { missing: string; expectedBy: string | null } | null;
}

/** The report of the caller's part of breach `id`, in its language. Audited. Errors: not-found. */
export async function authorityReport(s: Services, caller: TenantCaller, id: string, format: "json" | "html"): Promise<AuthorityReport> {
  const part = await s.breaches.getPart(caller.tenantId, id);
  if (!part) throw new AppError("not-found", "no breach with this id affects you");
  const tenant = await s.tenants.get(caller.tenantId);
  const email = tenant ? await tenantContactEmail(s, tenant) : undefined;
  await recordAudit(s, caller.tenantId, caller, "breach.report-read", { type: "breach", id }, { breachId: id, version: latestVersion(part).n, format, fields: email ? ["contactEmail"] : [] });
  const c = latestContent(part);
  const assessed = [...part.versions].reverse().find((v) => v.severity);
  const decision = part.decisions.at(-1) ?? null;
  const firstAuthority = part.authorityNotifications[0];
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  return {
    breachId: id,
    version: latestVersion(part).n,
    generatedAt: s.clock.now().toISOString(),
    language,
    contactPoint: {
      controller: tenant?.name ?? "",
      email: email ?? null,
      supervisoryAuthority: tenant?.supervisoryAuthority ?? { country: "DK", name: "Datatilsynet" },
      processorEmail: s.settings.operatorContactEmail ?? null,
    },
    description: {
      nature: breachKinds(c.nature).map((k) => ({ kind: k, level: c.nature[k] })),
      malicious: c.malicious,
      summary: c.description,
      cause: c.cause,
      occurredFrom: c.occurredFrom,
      occurredTo: c.occurredTo,
      processorAwareAt: c.awareAt,
      controllerAwareAt: part.controllerNotifiedAt,
      controllerAwareVia: part.controllerNotifiedVia,
    },
    persons: {
      categories: c.resolved.personCategories,
      approximateNumber: c.resolved.approximatePersons,
      resolved:
        part.persons?.resolution.status === "done"
          ? { version: part.persons.version, persons: part.persons.resolution.persons, unreachable: part.persons.resolution.unreachable, finishedAt: part.persons.resolution.finishedAt }
          : null,
    },
    records: { categories: c.resolved.categories, approximateNumber: c.resolved.approximateRecords },
    consequences: c.consequences,
    likelyConsequences: c.likelyConsequences,
    measures: { taken: c.measuresTaken, proposed: c.measuresProposed, inPlaceBefore: PRODUCT_MEASURES[language], inPlaceBeforeByProcessor: c.measuresBefore, limitingEffects: c.measuresLimiting },
    severity: assessed?.severity ? { band: assessed.severity.band, score: assessed.severity.score, formula: assessed.severity.formula, method: "ENISA 2013: SE = DPC × EI + CB" } : null,
    personsInformed: { decided: decision !== null, notifyPersons: decision?.notifyPersons ?? null, exemption: decision?.exemption ? `Art. 34(3)(${decision.exemption})` : null, reasons: decision?.reasons ?? null },
    notification: {
      clock: authorityClock(new Date(c.awareAt), part.controllerNotifiedAt ? new Date(part.controllerNotifiedAt) : null, { notifiedAt: firstAuthority ? new Date(firstAuthority.notifiedAt) : null, notNotified: part.noAuthorityNotification !== null }, s.clock.now()),
      notifications: part.authorityNotifications.map(({ notifiedAt, method, reference, delayReason, late }) => ({ notifiedAt, method, reference, delayReason, late })),
      notNotifiedReason: part.noAuthorityNotification?.reason ?? null,
    },
    followUp: c.followUp,
  };
}

/**
 * The report as an HTML page from the `breach-report` template in the report's language (Mustache: escaped, no
 * scripts), and the Content-Security-Policy that lets only its own style sheet apply.
 */
export function authorityReportHtml(s: Services, report: AuthorityReport, timeZone: string = DEFAULT_TIME_ZONE): { html: string; contentSecurityPolicy: string } {
  const lang = report.language;
  const words = YES_NO[lang];
  const when = (iso: string | null) => (iso ? formatInstant(new Date(iso), lang, timeZone) : words.unknown);
  const text = (v: string | null) => v ?? words.unknown;
  const n = (v: number | null) => (v === null ? words.unknown : String(v));
  const view = {
    breachId: report.breachId,
    version: report.version,
    generatedAt: when(report.generatedAt),
    controller: report.contactPoint.controller,
    controllerEmail: text(report.contactPoint.email),
    authority: report.contactPoint.supervisoryAuthority.name,
    processorEmail: text(report.contactPoint.processorEmail),
    nature: report.description.nature.map((x) => ({ kind: KIND_LABELS[x.kind as keyof typeof KIND_LABELS][lang], level: LEVEL_LABELS[x.level]?.[lang] ?? x.level })),
    malicious: report.description.malicious ? words.yes : words.no,
    summary: report.description.summary,
    cause: report.description.cause,
    occurredFrom: when(report.description.occurredFrom),
    occurredTo: when(report.description.occurredTo),
    ...occurredFlags(report.description.occurredFrom, report.description.occurredTo),
    processorAwareAt: when(report.description.processorAwareAt),
    controllerAwareAt: when(report.description.controllerAwareAt),
    personCategories: report.persons.categories.map((p) => ({ label: PERSON_CATEGORY_LABELS[p]?.[lang] ?? p })),
    approximatePersons: n(report.persons.approximateNumber),
    resolvedPersons: report.persons.resolved ? { persons: n(report.persons.resolved.persons), unreachable: n(report.persons.resolved.unreachable), version: report.persons.resolved.version } : null,
    recordCategories: report.records.categories.map((cat) => ({ label: CATEGORY_LABELS[cat][lang] })),
    noRecordCategories: report.records.categories.length === 0,
    approximateRecords: n(report.records.approximateNumber),
    consequences: text(report.consequences),
    likelyConsequences: text(report.likelyConsequences),
    measuresTaken: text(report.measures.taken),
    measuresProposed: text(report.measures.proposed),
    measuresBefore: report.measures.inPlaceBefore,
    measuresBeforeByProcessor: report.measures.inPlaceBeforeByProcessor ?? "",
    hasMeasuresBeforeByProcessor: report.measures.inPlaceBeforeByProcessor !== null,
    measuresLimiting: text(report.measures.limitingEffects),
    band: report.severity ? BAND_LABELS[report.severity.band as keyof typeof BAND_LABELS][lang] : words.unknown,
    formula: report.severity?.formula ?? "",
    personsDecided: report.personsInformed.decided,
    personsNotDecided: !report.personsInformed.decided,
    personsTold: report.personsInformed.notifyPersons === true,
    personsNotTold: report.personsInformed.notifyPersons === false,
    exemption: report.personsInformed.exemption ?? "",
    hasExemption: report.personsInformed.exemption !== null,
    personsReasons: report.personsInformed.reasons ?? "",
    deadlineAt: when(report.notification.clock.deadlineAt),
    productTargetAt: when(report.notification.clock.productTargetAt),
    notifications: report.notification.notifications.map((x) => ({ notifiedAt: when(x.notifiedAt), method: METHOD_LABELS[x.method]?.[lang] ?? x.method, reference: x.reference ?? "", hasReference: x.reference !== null, delayReason: x.delayReason ?? "", hasDelayReason: x.delayReason !== null })),
    hasNotifications: report.notification.notifications.length > 0,
    notNotifiedReason: report.notification.notNotifiedReason ?? "",
    hasNotNotifiedReason: report.notification.notNotifiedReason !== null,
    followUp: report.followUp ? report.followUp.missing : "",
    followUpBy: report.followUp ? when(report.followUp.expectedBy) : "",
    hasFollowUp: report.followUp !== null,
    noFollowUp: report.followUp === null,
  };
  const { html } = s.templates.render("breach-report", lang, view);
  // The page's one style sheet, allowed by its hash (CSP Level 3 §8.4); nothing else may load or run.
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`);
  const contentSecurityPolicy = ["default-src 'none'", `style-src ${styles.join(" ") || "'none'"}`, "img-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join("; ");
  return { html, contentSecurityPolicy };
}
