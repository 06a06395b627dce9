/**
 * How the breach vocabulary reads in each language the service writes in (e-mails and the authority report): the
 * kinds and levels of a breach, the severity bands, the data and person categories, the ways an authority is told
 * and the deadlines the watch keeps. Templates are logic-less, so the words for enum values come from here.
 * Danish follows the Danish text of the GDPR ("brud på persondatasikkerheden", "dataansvarlig", "databehandler").
 */
import type { Language } from "./language";
import type { DataCategory } from "./uploads";
import type { BreachDeadline, BreachKind, SeverityBand } from "./breaches";

type Table<K extends string> = Record<K, Record<Language, string>>;

export const KIND_LABELS: Table<BreachKind> = {
  confidentiality: { en: "confidentiality", da: "fortrolighed" },
  integrity: { en: "integrity", da: "integritet" },
  availability: { en: "availability", da: "tilgængelighed" },
};

export const LEVEL_LABELS: Table<string> = {
  "not-affected": { en: "not affected", da: "ikke berørt" },
  "exposed-no-evidence-of-misuse": { en: "data exposed, no evidence of misuse", da: "data blottet, intet tegn på misbrug" },
  "known-recipients": { en: "disclosed to a significant number of known recipients", da: "videregivet til et betydeligt antal kendte modtagere" },
  "unknown-recipients": { en: "disclosed to an unknown number of recipients", da: "videregivet til et ukendt antal modtagere" },
  "altered-no-evidence-of-misuse": { en: "data altered, no evidence of misuse", da: "data ændret, intet tegn på misbrug" },
  "altered-recoverable": { en: "data altered, can be restored", da: "data ændret, kan genskabes" },
  "altered-unrecoverable": { en: "data altered, cannot be restored", da: "data ændret, kan ikke genskabes" },
  recoverable: { en: "data unavailable, recovered without difficulty", da: "data utilgængelige, genskabt uden besvær" },
  temporary: { en: "data temporarily unavailable", da: "data midlertidigt utilgængelige" },
  permanent: { en: "data lost for good", da: "data endeligt tabt" },
};

export const BAND_LABELS: Table<SeverityBand> = {
  low: { en: "low", da: "lav" },
  medium: { en: "medium", da: "middel" },
  high: { en: "high", da: "høj" },
  "very-high": { en: "very high", da: "meget høj" },
};

export const CATEGORY_LABELS: Table<DataCategory> = {
  contact: { en: "contact details (names, addresses, e-mail, phone)", da: "kontaktoplysninger (navne, adresser, e-mail, telefon)" },
  identity: { en: "identity documents, dates of birth", da: "identitetsdokumenter, fødselsdatoer" },
  "national-id": { en: "national identification numbers (CPR)", da: "personnumre (CPR)" },
  financial: { en: "financial data (salaries, bank accounts, payments)", da: "økonomiske oplysninger (løn, bankkonti, betalinger)" },
  employment: { en: "employment and HR records", da: "ansættelses- og personaleoplysninger" },
  education: { en: "education records", da: "uddannelsesoplysninger" },
  location: { en: "location data", da: "lokaliseringsdata" },
  communications: { en: "contents of communications", da: "indhold af kommunikation" },
  credentials: { en: "passwords and access tokens", da: "adgangskoder og adgangsnøgler" },
  children: { en: "data about children", da: "oplysninger om børn" },
  health: { en: "health data (Art. 9)", da: "helbredsoplysninger (art. 9)" },
  genetic: { en: "genetic data (Art. 9)", da: "genetiske data (art. 9)" },
  biometric: { en: "biometric data (Art. 9)", da: "biometriske data (art. 9)" },
  "racial-ethnic": { en: "racial or ethnic origin (Art. 9)", da: "race eller etnisk oprindelse (art. 9)" },
  political: { en: "political opinions (Art. 9)", da: "politisk overbevisning (art. 9)" },
  religious: { en: "religious or philosophical beliefs (Art. 9)", da: "religiøs eller filosofisk overbevisning (art. 9)" },
  "trade-union": { en: "trade union membership (Art. 9)", da: "fagforeningsmæssigt tilhørsforhold (art. 9)" },
  "sex-life": { en: "sex life or sexual orientation (Art. 9)", da: "seksuelle forhold eller seksuel orientering (art. 9)" },
  criminal: { en: "criminal convictions and offences (Art. 10)", da: "strafbare forhold (art. 10)" },
};

export const PERSON_CATEGORY_LABELS: Table<string> = {
  "data-subjects": { en: "data subjects named in the transfers", da: "registrerede, der er nævnt i overførslerne" },
  recipients: { en: "recipients of the transfers", da: "modtagere af overførslerne" },
  senders: { en: "senders of the transfers", da: "afsendere af overførslerne" },
};

export const METHOD_LABELS: Table<string> = {
  "online-form": { en: "the authority's online form", da: "myndighedens onlineformular" },
  "e-mail": { en: "e-mail", da: "e-mail" },
  letter: { en: "letter", da: "brev" },
  phone: { en: "phone", da: "telefon" },
  other: { en: "other means", da: "på anden vis" },
};

export const DEADLINE_LABELS: Table<BreachDeadline> = {
  "controller-target": { en: "our target for telling you of the breach", da: "vores mål for at underrette jer om bruddet" },
  "controller-limit": { en: "the data-processing agreement's limit for telling you of the breach (72 hours)", da: "databehandleraftalens frist for at underrette jer om bruddet (72 timer)" },
  "authority-target": { en: "the target for your notification to the supervisory authority (72 hours from our awareness)", da: "målet for jeres anmeldelse til tilsynsmyndigheden (72 timer fra vi blev bekendt med bruddet)" },
  authority: { en: "your deadline for notifying the supervisory authority (72 hours from when we told you, GDPR Art. 33(1))", da: "jeres frist for at anmelde bruddet til tilsynsmyndigheden (72 timer fra vi underrettede jer, databeskyttelsesforordningens art. 33, stk. 1)" },
};

/** The same deadlines as the operator reads of them: the tenant's, not "your" (the operator's deadline e-mail). */
export const OPERATOR_DEADLINE_LABELS: Table<BreachDeadline> = {
  "controller-target": { en: "the target for telling the controller of the breach", da: "målet for at underrette den dataansvarlige om bruddet" },
  "controller-limit": { en: "the data-processing agreement's limit for telling the controller of the breach (72 hours)", da: "databehandleraftalens frist for at underrette den dataansvarlige om bruddet (72 timer)" },
  "authority-target": { en: "the target for the controller's notification to the supervisory authority (72 hours from our awareness)", da: "målet for den dataansvarliges anmeldelse til tilsynsmyndigheden (72 timer fra vi blev bekendt med bruddet)" },
  authority: { en: "the controller's deadline for notifying the supervisory authority (72 hours from when it was told, GDPR Art. 33(1))", da: "den dataansvarliges frist for at anmelde bruddet til tilsynsmyndigheden (72 timer fra den blev underrettet, databeskyttelsesforordningens art. 33, stk. 1)" },
};

export const YES_NO: Record<Language, { yes: string; no: string; unknown: string }> = {
  en: { yes: "yes", no: "no", unknown: "not yet known" },
  da: { yes: "ja", no: "nej", unknown: "endnu ikke kendt" },
};
