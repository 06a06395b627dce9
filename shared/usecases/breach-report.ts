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
 *
 * Item (10) says what was done for the persons beside what was decided (Art. 33(3), 34): the notices the tenant
 * instructed (when, for which version, sent / pending / failed / unreachable, from the persons view of
 * breach-persons.ts) and every public communication recorded (Art. 34(3)(c)); where the stored facts contradict the
 * newest decision it names the contradiction (`personsInformed.conflicts`) rather than repeating the decision. Item
 * (11) says when a notification was recorded after the 72-hour deadline (Art. 33(5)) and that an earlier decision not
 * to notify was followed by a notification.
 */
import { createHash } from "node:crypto";
import { BAND_LABELS, CATEGORY_LABELS, KIND_LABELS, LEVEL_LABELS, METHOD_LABELS, PERSON_CATEGORY_LABELS, YES_NO } from "../domain/breach-labels";
import { authorityClock, breachKinds, type AuthorityClock } from "../domain/breaches";
import type { PersonsConflict } from "../domain/breach-report";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { DEFAULT_TIME_ZONE } from "../domain/tenant";
import { formatInstant } from "../domain/time";
import type { DataCategory } from "../domain/uploads";
import { AppError } from "../errors";
import type { Services } from "../services";
import { recordAudit, type TenantCaller } from "./audit-trail";
import { latestContent, latestVersion, occurredFlags } from "./breach-notices";
import type { EarlierNotices, StopReason } from "../stores/breach-store";
import { personsView } from "./breach-persons";
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
  /**
   * Whether and how the persons were told, or why not: the controller's newest decision (`decided`, `notifyPersons`,
   * `exemption`, `reasons`, and `decision`: when and on which part version it was made), what was done (`notices`:
   * the tenant's instruction of notices by e-mail and their counts, null if none was instructed;
   * `publicCommunications`: every public communication recorded, Art. 34(3)(c)), and `conflicts`: where the stored
   * facts contradict the decision, each with a code and a sentence in the report's language.
   */
  personsInformed: {
    decided: boolean;
    notifyPersons: boolean | null;
    exemption: string | null;
    reasons: string | null;
    decision: { at: string; version: number } | null;
    notices: ReportedNotices | null;
    /** Notices of earlier versions, as they stood when a later run replaced theirs or the part left the scope, oldest first. */
    earlierNotices: Array<Omit<EarlierNotices, "by">>;
    publicCommunications: Array<{ publishedAt: string; where: string; text: string; version: number }>;
    conflicts: Array<{ code: PersonsConflict; message: string }>;
  };
  /**
   * The notification to the authority: each one recorded (`recordedAt`; `recordedAfterDeadline`: it claims a time
   * within the 72 hours but was recorded after they passed, Art. 33(5)), and the reason not to notify, if recorded
   * (`notNotifiedSuperseded`: a notification was recorded after it, so it no longer stands).
   */
  notification: {
    clock: AuthorityClock;
    notifications: Array<{ notifiedAt: string; method: string; reference: string | null; delayReason: string | null; late: boolean; recordedAt: string; recordedAfterDeadline: boolean }>;
    notNotifiedReason: string | null;
    notNotifiedAt: string | null;
    notNotifiedSuperseded: boolean;
  };
  followUp: { missing: string; expectedBy: string | null } | null;
}

/**
 * The notices to the persons the tenant instructed, as the report gives them: the part version they tell of, when
 * they were instructed, the counts (persons found by the resolution: sent, pending, failed, unreachable), when the
 * last was done and, if they were stopped (the tenant taken out of the scope, or the tenant cancelled them), when, why
 * and how many were not told.
 */
export interface ReportedNotices {
  version: number;
  requestedAt: string;
  sent: number;
  pending: number;
  failed: number;
  unreachable: number;
  completedAt: string | null;
  stoppedAt: string | null;
  /** Why they stopped: "withdrawn" (taken out of the scope) or "cancelled" (by the tenant); null: not stopped. */
  stoppedReason: StopReason | null;
  /** Persons still pending when the notices stopped: they are not told (0 unless stopped). */
  notTold: number;
}

const CONFLICT_TEXT: Record<Language, Record<PersonsConflict, (d: { decidedVersion: number; notices: ReportedNotices | null }) => string>> = {
  en: {
    "decided-told-not-instructed": (d) => `The decision (version ${d.decidedVersion}) says the persons are told by e-mail, but no notice to them has been instructed for that version.`,
    "decided-not-told-but-instructed": (d) =>
      `The decision (version ${d.decidedVersion}) says the persons are not told, but notices to them were instructed afterwards for version ${d.notices?.version} (${d.notices?.sent} sent, ${d.notices?.pending} pending).`,
    "decided-told-but-cancelled": (d) =>
      `The decision (version ${d.decidedVersion}) says the persons are told by e-mail, but the notices of version ${d.notices?.version} were cancelled by the controller on ${d.notices?.stoppedAt} (${d.notices?.sent} sent, ${d.notices?.notTold} not told); that version cannot be instructed again.`,
    "exemption-c-without-public-communication": () => "The decision relies on Art. 34(3)(c) (a public communication instead of telling each person), but no public communication is recorded.",
  },
  da: {
    "decided-told-not-instructed": (d) => `Beslutningen (version ${d.decidedVersion}) siger, at personerne underrettes via e-mail, men der er ikke bestilt nogen underretning af dem for den version.`,
    "decided-not-told-but-instructed": (d) =>
      `Beslutningen (version ${d.decidedVersion}) siger, at personerne ikke underrettes, men underretninger af dem blev bestilt bagefter for version ${d.notices?.version} (${d.notices?.sent} sendt, ${d.notices?.pending} afventer).`,
    "decided-told-but-cancelled": (d) =>
      `Beslutningen (version ${d.decidedVersion}) siger, at personerne underrettes via e-mail, men underretningerne om version ${d.notices?.version} blev annulleret af den dataansvarlige ${d.notices?.stoppedAt} (${d.notices?.sent} sendt, ${d.notices?.notTold} ikke underrettet); den version kan ikke bestilles igen.`,
    "exemption-c-without-public-communication": () => "Beslutningen henviser til art. 34, stk. 3, litra c (en offentlig meddelelse i stedet for at underrette hver person), men der er ikke registreret nogen offentlig meddelelse.",
  },
};

/**
 * The contradictions between the newest decision and what was done (PERSONS_CONFLICTS, domain/breach-report.ts); empty without a
 * decision (then the report says what was done, and that nothing is decided).
 */
function personsConflicts(
  decision: { notifyPersons: boolean; exemption: string | null; version: number; at: string } | null,
  notices: ReportedNotices | null,
  publicCommunications: number,
  language: Language,
): Array<{ code: PersonsConflict; message: string }> {
  if (!decision) return [];
  const codes: PersonsConflict[] = [];
  // Notices the tenant cancelled before the decision do not stand against a decision not to tell (they were stopped
  // first; what they sent is in the report); cancelled after it, they were still instructed after it.
  const cancelledBefore = notices?.stoppedReason === "cancelled" && notices.stoppedAt !== null && Date.parse(notices.stoppedAt) <= Date.parse(decision.at);
  const instructed = notices !== null && notices.version >= decision.version && !(cancelledBefore && !decision.notifyPersons);
  if (decision.notifyPersons && !instructed) codes.push("decided-told-not-instructed");
  // Cancelled notices can never be instructed again for their version: a decision to tell (before or after the
  // cancellation) is contradicted by those not told.
  if (decision.notifyPersons && instructed && notices?.stoppedReason === "cancelled") codes.push("decided-told-but-cancelled");
  if (!decision.notifyPersons && instructed) codes.push("decided-not-told-but-instructed");
  if (!decision.notifyPersons && decision.exemption === "c" && publicCommunications === 0) codes.push("exemption-c-without-public-communication");
  return codes.map((code) => ({ code, message: CONFLICT_TEXT[language][code]({ decidedVersion: decision.version, notices }) }));
}

/**
 * An earlier version's notices in the shape of the current run's, for the conflicts: with no current instruction (a
 * newer version not instructed yet), the last notices instructed are what the decision is weighed against.
 */
function asReported(e: Omit<EarlierNotices, "by"> | undefined): ReportedNotices | null {
  if (!e) return null;
  const stopped = e.reason === "replaced" ? null : e.reason;
  return { version: e.version, requestedAt: e.requestedAt, sent: e.sent, pending: 0, failed: e.failed, unreachable: e.unreachable, completedAt: null, stoppedAt: stopped ? e.endedAt : null, stoppedReason: stopped, notTold: e.notTold };
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
  const view = await personsView(s, part);
  // One instant for the whole report: the deadline's state shown is the one at `generatedAt` (read twice, a deadline
  // passing between the reads made a report generated before it say it was overdue).
  const now = s.clock.now();
  const earlierNotices = (view?.earlier ?? part.persons?.earlier ?? []).map(({ by: _by, ...x }) => x);
  const notices: ReportedNotices | null =
    view?.notices
      ? {
          version: view.version,
          requestedAt: view.notices.requestedAt,
          sent: view.notices.sent,
          pending: view.notices.pending,
          failed: view.notices.failed,
          unreachable: view.notices.unreachable,
          completedAt: view.notices.completedAt,
          stoppedAt: view.notices.stoppedAt,
          stoppedReason: view.notices.stoppedReason,
          notTold: view.notices.notTold,
        }
      : null;
  return {
    breachId: id,
    version: latestVersion(part).n,
    generatedAt: now.toISOString(),
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
    personsInformed: {
      decided: decision !== null,
      notifyPersons: decision?.notifyPersons ?? null,
      exemption: decision?.exemption ? `Art. 34(3)(${decision.exemption})` : null,
      reasons: decision?.reasons ?? null,
      decision: decision ? { at: decision.at, version: decision.version } : null,
      notices,
      // Why each ended, not who (the report names no API key).
      earlierNotices,
      publicCommunications: part.publicCommunications.map(({ publishedAt, where, text, version }) => ({ publishedAt, where, text, version })),
      conflicts: personsConflicts(decision, notices ?? asReported(earlierNotices.at(-1)), part.publicCommunications.length, language),
    },
    notification: {
      clock: authorityClock(new Date(c.awareAt), part.controllerNotifiedAt ? new Date(part.controllerNotifiedAt) : null, { notifiedAt: firstAuthority ? new Date(firstAuthority.notifiedAt) : null, notNotified: part.noAuthorityNotification !== null }, now),
      notifications: part.authorityNotifications.map(({ notifiedAt, method, reference, delayReason, late, recordedAt, recordedAfterDeadline }) => ({
        notifiedAt,
        method,
        reference,
        delayReason,
        late,
        recordedAt,
        recordedAfterDeadline,
      })),
      notNotifiedReason: part.noAuthorityNotification?.reason ?? null,
      notNotifiedAt: part.noAuthorityNotification?.at ?? null,
      // A decision not to notify is refused once a notification is recorded, so a notification beside it came after it.
      notNotifiedSuperseded: part.noAuthorityNotification !== null && part.authorityNotifications.length > 0,
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
    decidedVersion: report.personsInformed.decision?.version ?? "",
    decidedAt: when(report.personsInformed.decision?.at ?? null),
    personsTold: report.personsInformed.notifyPersons === true,
    personsNotTold: report.personsInformed.notifyPersons === false,
    nothingDone: report.personsInformed.notices === null && report.personsInformed.earlierNotices.length === 0 && report.personsInformed.publicCommunications.length === 0,
    notices: report.personsInformed.notices
      ? {
          ...report.personsInformed.notices,
          requestedAt: when(report.personsInformed.notices.requestedAt),
          completedAt: report.personsInformed.notices.completedAt ? when(report.personsInformed.notices.completedAt) : null,
          stoppedAt: report.personsInformed.notices.stoppedAt ? when(report.personsInformed.notices.stoppedAt) : null,
          stoppedWithdrawn: report.personsInformed.notices.stoppedReason === "withdrawn",
          stoppedCancelled: report.personsInformed.notices.stoppedReason === "cancelled",
        }
      : null,
    noNotices: report.personsInformed.notices === null && report.personsInformed.earlierNotices.length === 0,
    earlierNotices: report.personsInformed.earlierNotices.map((x) => ({ ...x, requestedAt: when(x.requestedAt), endedAt: when(x.endedAt), replaced: x.reason === "replaced", withdrawn: x.reason === "withdrawn", cancelled: x.reason === "cancelled" })),
    publicCommunications: report.personsInformed.publicCommunications.map((x) => ({ publishedAt: when(x.publishedAt), where: x.where, text: x.text, version: x.version })),
    noPublicCommunications: report.personsInformed.publicCommunications.length === 0,
    conflicts: report.personsInformed.conflicts.map((x) => ({ message: x.message })),
    exemption: report.personsInformed.exemption ?? "",
    hasExemption: report.personsInformed.exemption !== null,
    personsReasons: report.personsInformed.reasons ?? "",
    deadlineAt: when(report.notification.clock.deadlineAt),
    productTargetAt: when(report.notification.clock.productTargetAt),
    notifications: report.notification.notifications.map((x) => ({ notifiedAt: when(x.notifiedAt), method: METHOD_LABELS[x.method]?.[lang] ?? x.method, reference: x.reference ?? "", hasReference: x.reference !== null, delayReason: x.delayReason ?? "", hasDelayReason: x.delayReason !== null, recordedAfterDeadline: x.recordedAfterDeadline, recordedAt: when(x.recordedAt) })),
    hasNotifications: report.notification.notifications.length > 0,
    notNotifiedReason: report.notification.notNotifiedReason ?? "",
    notNotifiedStands: report.notification.notNotifiedReason !== null && !report.notification.notNotifiedSuperseded,
    notNotifiedSuperseded: report.notification.notNotifiedSuperseded,
    notNotifiedAt: when(report.notification.notNotifiedAt),
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
