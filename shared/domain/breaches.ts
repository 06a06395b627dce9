/**
 * Personal-data breaches: the pure rules. What a breach record says (its content, as the operator writes it and
 * as each affected tenant sees its own part of it), how severe it is (the ENISA 2013 methodology, every factor with
 * its justification), what the service proposes to each tenant (GDPR Art. 33 and 34), and the clocks that run from
 * the processor's awareness (Art. 33(1), (2); the data-processing agreement, clause 10.2).
 *
 * Sources:
 * - GDPR Art. 33(1): the controller notifies the supervisory authority within 72 hours of becoming aware, with
 *   reasons for any delay; Art. 33(2): the processor notifies the controller without undue delay; Art. 33(3): the
 *   content; Art. 33(4): information in phases; Art. 33(5): every breach documented.
 * - Art. 34(1): persons told when the breach is likely to result in a high risk; Art. 34(3)(a)-(c): the exemptions.
 * - EDPB Guidelines 9/2022 (from WP250): the controller becomes aware when its processor tells it; encrypted data
 *   whose key is safe, with availability kept, is unlikely to result in a risk.
 * - ENISA, "Recommendations for a methodology of the assessment of severity of personal data breaches" (2013):
 *   SE = DPC × EI + CB.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { dataCategories, type DataCategory } from "./uploads";
import { tenantIdSchema } from "./tenant";
import { beforeEarliestFactTime, EARLIEST_FACT_TIME_MESSAGE } from "./time";

// ---------------------------------------------------------------------------------------------------------------
// Ids

export const BREACH_ID_PATTERN = /^br-[0-9a-f]{20}$/;
export const breachIdSchema = z.string().regex(BREACH_ID_PATTERN, "must be a breach id like br-0123456789abcdef0123");

export function newBreachId(random: (n: number) => Buffer = randomBytes): string {
  return "br-" + random(10).toString("hex");
}

// ---------------------------------------------------------------------------------------------------------------
// Free text

/** Free text fields (descriptions, measures, reasons) are at most this long. */
export const MAX_TEXT = 4000;

/**
 * An e-mail address: a local part, `@`, and a domain of one or more labels (an address need not have a dot: intranet
 * and `user@localhost` addresses exist), matched after normalisation (identifierView).
 */
const EMAIL_SHAPE = /[^\s@<>()[\]"',;:]+@[A-Za-z0-9\u00a0-\uffff](?:[A-Za-z0-9\u00a0-\uffff-]*[A-Za-z0-9\u00a0-\uffff])?/u;
/**
 * A Danish CPR number (ddmmyy-nnnn), the national identifier the product meets most: with or without a separator
 * (a dash, a space, a dot or a slash) between the date and the serial number.
 */
const CPR_SHAPE = /(?<!\d)(0[1-9]|[12]\d|3[01])(0[1-9]|1[0-2])\d{2}[\s\-\u2010-\u2015./]?\d{4}(?!\d)/u;

/**
 * The text as an identifier would be read in it: Unicode NFKC (full-width `＠`, `﹫` and full-width digits become
 * their ASCII forms), percent-escapes decoded (`mailto:john%40example.com`), HTML character references for `@`
 * (`&#64;`, `&commat;`) read as `@`.
 */
function identifierView(text: string): string {
  let out = text.normalize("NFKC");
  out = out.replace(/&#0*64;|&#x0*40;|&commat;/gi, "@");
  out = out.replace(/(?:%[0-9A-Fa-f]{2})+/g, (seq) => {
    try {
      return decodeURIComponent(seq);
    } catch {
      return seq;
    }
  });
  return out.normalize("NFKC");
}

/**
 * What in `text` looks like an identifier of a person, or undefined. Breach texts go to every affected tenant, into
 * e-mails and into the report for the supervisory authority, which must hold no personal data about the persons
 * concerned (Datatilsynet's form): e-mail addresses and CPR-shaped numbers are refused, however they are written
 * (full-width, percent-encoded, without a top-level domain, a CPR number with a space). Names cannot be told from
 * other words; the README asks operators and tenants never to write them.
 */
export function personalIdentifierProblem(raw: string): string | undefined {
  const text = identifierView(raw);
  if (EMAIL_SHAPE.test(text)) return "must not contain an e-mail address: breach texts are shown to every affected controller and go into the authority report, which holds no identifier of any person";
  if (CPR_SHAPE.test(text)) return "must not contain a national identification (CPR) number: breach texts go into the authority report, which holds no identifier of any person";
  return undefined;
}

/** A control character (C0 or DEL); with `lineBreaks`, tab, LF and CR are allowed. */
function isControl(ch: string, lineBreaks: boolean): boolean {
  const c = ch.charCodeAt(0);
  if (lineBreaks && (c === 0x09 || c === 0x0a || c === 0x0d)) return false;
  return c < 0x20 || c === 0x7f;
}

/** A free-text field: trimmed, 1..MAX_TEXT characters, no control characters but line breaks, no person identifiers. */
export const breachText = z
  .string()
  .trim()
  .min(1, "must not be empty")
  .max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`)
  .refine((s) => ![...s].some((ch) => isControl(ch, true)), "must not contain control characters")
  .superRefine((s, ctx) => {
    const problem = personalIdentifierProblem(s);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

/** A reason: the same rules as any breach text. */
export const reasonText = breachText;

const iso = z.iso.datetime({ offset: true }).transform((s) => new Date(s).toISOString());

// ---------------------------------------------------------------------------------------------------------------
// The nature of a breach and the ENISA circumstances (CB)

/**
 * Each kind of breach (WP250: confidentiality, integrity, availability) with ENISA's levels. Every level says what
 * happened, so the circumstance points follow from the facts the operator states.
 */
export const CIRCUMSTANCE_LEVELS = {
  confidentiality: {
    "not-affected": { points: 0, justification: "confidentiality was not affected" },
    "exposed-no-evidence-of-misuse": { points: 0, justification: "data exposed to confidentiality risks without evidence of illegal processing (ENISA 2013: +0)" },
    "known-recipients": { points: 0.25, justification: "data exposed to a significant number of known recipients (ENISA 2013: +0.25)" },
    "unknown-recipients": { points: 0.5, justification: "data exposed to an unknown number of recipients (ENISA 2013: +0.5)" },
  },
  integrity: {
    "not-affected": { points: 0, justification: "integrity was not affected" },
    "altered-no-evidence-of-misuse": { points: 0, justification: "data altered without evidence of incorrect or illegal use (ENISA 2013: +0)" },
    "altered-recoverable": { points: 0.25, justification: "data altered and possibly used in an incorrect or illegal way, with the possibility to recover it (ENISA 2013: +0.25)" },
    "altered-unrecoverable": { points: 0.5, justification: "data altered and possibly used in an incorrect or illegal way, without the possibility to recover it (ENISA 2013: +0.5)" },
  },
  availability: {
    "not-affected": { points: 0, justification: "availability was not affected" },
    recoverable: { points: 0, justification: "data unavailable but recoverable without any difficulty (ENISA 2013: +0)" },
    temporary: { points: 0.25, justification: "data temporarily unavailable (ENISA 2013: +0.25)" },
    permanent: { points: 0.5, justification: "data completely unavailable: it cannot be recovered (ENISA 2013: +0.5)" },
  },
} as const;

export type ConfidentialityLevel = keyof (typeof CIRCUMSTANCE_LEVELS)["confidentiality"];
export type IntegrityLevel = keyof (typeof CIRCUMSTANCE_LEVELS)["integrity"];
export type AvailabilityLevel = keyof (typeof CIRCUMSTANCE_LEVELS)["availability"];
export const BREACH_KINDS = ["confidentiality", "integrity", "availability"] as const;
export type BreachKind = (typeof BREACH_KINDS)[number];

const levelsOf = <K extends BreachKind>(kind: K) => Object.keys(CIRCUMSTANCE_LEVELS[kind]) as [keyof (typeof CIRCUMSTANCE_LEVELS)[K] & string, ...Array<keyof (typeof CIRCUMSTANCE_LEVELS)[K] & string>];

export const natureSchema = z
  .strictObject({
    confidentiality: z.enum(levelsOf("confidentiality")),
    integrity: z.enum(levelsOf("integrity")),
    availability: z.enum(levelsOf("availability")),
  })
  .refine((n) => breachKinds(n as Nature).length > 0, "at least one of confidentiality, integrity and availability must be affected: otherwise it is not a breach");
export interface Nature {
  confidentiality: ConfidentialityLevel;
  integrity: IntegrityLevel;
  availability: AvailabilityLevel;
}

/** The kinds of breach (WP250) a nature describes: those not "not-affected". */
export function breachKinds(nature: Nature): BreachKind[] {
  return BREACH_KINDS.filter((k) => nature[k] !== "not-affected");
}

/** ENISA: malicious intent adds this to CB. */
export const MALICIOUS_POINTS = 0.5;

// ---------------------------------------------------------------------------------------------------------------
// Data processing context (DPC) from the upload data categories

export const DPC_CLASSES = {
  simple: { score: 1, label: "simple data" },
  behavioural: { score: 2, label: "behavioural data" },
  financial: { score: 3, label: "financial data" },
  sensitive: { score: 4, label: "sensitive data" },
} as const;
export type DpcClass = keyof typeof DPC_CLASSES;

/**
 * How each upload data category (shared/domain/uploads.ts DATA_CATEGORIES) scores as DPC: its ENISA class, an
 * adjustment for context where ENISA's annex raises a score (identity fraud, vulnerable persons), and why.
 */
export const CATEGORY_DPC: Record<DataCategory, { class: DpcClass; adjustment: number; justification: string }> = {
  contact: { class: "simple", adjustment: 0, justification: "names, addresses, e-mail and phone numbers are simple data" },
  identity: { class: "simple", adjustment: 1, justification: "identity documents and dates of birth are simple data, raised by 1 because they enable identity fraud" },
  "national-id": { class: "simple", adjustment: 1, justification: "national identification numbers are simple data, raised by 1 because they link other records and enable identity fraud" },
  financial: { class: "financial", adjustment: 0, justification: "salaries, bank accounts and payment data are financial data" },
  employment: { class: "simple", adjustment: 0, justification: "employment and HR records are simple data (professional experience)" },
  education: { class: "simple", adjustment: 0, justification: "education records are simple data" },
  location: { class: "behavioural", adjustment: 0, justification: "location data is behavioural data" },
  communications: { class: "behavioural", adjustment: 0, justification: "contents of communications show habits, relations and preferences: behavioural data" },
  credentials: { class: "financial", adjustment: 0, justification: "passwords and access tokens open accounts and further data: scored as financial data" },
  children: { class: "simple", adjustment: 1, justification: "data about children is raised by 1 because children are vulnerable persons" },
  health: { class: "sensitive", adjustment: 0, justification: "health data is a special category (Art. 9): sensitive data" },
  genetic: { class: "sensitive", adjustment: 0, justification: "genetic data is a special category (Art. 9): sensitive data" },
  biometric: { class: "sensitive", adjustment: 0, justification: "biometric data for identification is a special category (Art. 9): sensitive data" },
  "racial-ethnic": { class: "sensitive", adjustment: 0, justification: "racial or ethnic origin is a special category (Art. 9): sensitive data" },
  political: { class: "sensitive", adjustment: 0, justification: "political opinions are a special category (Art. 9): sensitive data" },
  religious: { class: "sensitive", adjustment: 0, justification: "religious or philosophical beliefs are a special category (Art. 9): sensitive data" },
  "trade-union": { class: "sensitive", adjustment: 0, justification: "trade union membership is a special category (Art. 9): sensitive data" },
  "sex-life": { class: "sensitive", adjustment: 0, justification: "sex life or sexual orientation is a special category (Art. 9): sensitive data" },
  criminal: { class: "sensitive", adjustment: 0, justification: "criminal convictions and offences (Art. 10) are sensitive data" },
};

export const DPC_MIN = 1;
export const DPC_MAX = 4;
const clampDpc = (v: number) => Math.min(DPC_MAX, Math.max(DPC_MIN, v));

/** The DPC of one category: its class's score plus its adjustment, kept within 1..4. */
export function categoryDpc(category: DataCategory): number {
  const c = CATEGORY_DPC[category];
  return clampDpc(DPC_CLASSES[c.class].score + c.adjustment);
}

// ---------------------------------------------------------------------------------------------------------------
// Ease of identification (EI)

export const EI_LEVELS = {
  negligible: 0.25,
  limited: 0.5,
  significant: 0.75,
  maximum: 1,
} as const;
export type EiLevel = keyof typeof EI_LEVELS;

/** Categories that name or directly identify the person. */
const IDENTIFYING: readonly DataCategory[] = ["contact", "identity", "national-id"];

// ---------------------------------------------------------------------------------------------------------------
// Exposure (for Art. 34(3)(a))

/** The parts of the product's records that can be exposed. */
export const EXPOSED_FIELDS = [
  "payload",
  "file-name",
  "sender-reference",
  "recipients",
  "data-subjects",
  "notify-email",
  "content-type",
  "lookup-hashes",
  "data-keys",
  "other",
] as const;
/**
 * How a field was exposed: as the product stores it encrypted (AES-256-GCM under a data key or the tenant's KEK),
 * as keyed hashes (HMAC-SHA256 under the tenant's lookup secret), or readable.
 */
export const EXPOSURE_FORMS = ["ciphertext", "keyed-hash", "plaintext"] as const;

export const exposureSchema = z.strictObject({
  fields: z
    .array(z.strictObject({ field: z.enum(EXPOSED_FIELDS), form: z.enum(EXPOSURE_FORMS) }))
    .min(1)
    .max(EXPOSED_FIELDS.length * EXPOSURE_FORMS.length),
  /** Whether any key that opens them (KEK, data keys, lookup secrets) was or may have been obtained. */
  keysCompromised: z.boolean(),
});
export type Exposure = z.infer<typeof exposureSchema>;

/**
 * Art. 34(3)(a) "unintelligible to any person who is not authorised": holds only when every exposed field (payload
 * and metadata alike) was ciphertext or a keyed hash, no key that opens them was compromised, and neither integrity
 * nor availability was lost. Encryption addresses confidentiality only: it does not make up for data that is gone
 * (EDPB Guidelines 9/2022 on encrypted data, and 01/2021 cases 01-04: a loss of availability may still be notifiable) nor for
 * data that was changed (EDPB Guidelines 01/2021, ransomware cases: encrypted data can still be altered or
 * destroyed). Returns whether it holds and why.
 */
export function unintelligible(exposure: Exposure | null, nature: Nature): { holds: boolean; reason: string } {
  if (!exposure) return { holds: false, reason: "what was exposed is not recorded, so it cannot be shown that the data was unintelligible" };
  const readable = exposure.fields.filter((f) => f.form === "plaintext").map((f) => f.field);
  if (readable.length > 0) return { holds: false, reason: `readable data was exposed (${[...new Set(readable)].join(", ")})` };
  if (exposure.keysCompromised) return { holds: false, reason: "a key that opens the exposed data was or may have been compromised" };
  if (nature.availability !== "not-affected") return { holds: false, reason: "availability was lost: encryption does not make up for data that is gone" };
  if (nature.integrity !== "not-affected") return { holds: false, reason: "integrity was lost: encryption keeps data secret, it does not keep it unaltered" };
  return {
    holds: true,
    reason: `every exposed field (${[...new Set(exposure.fields.map((f) => f.field))].join(", ")}) was ciphertext or a keyed hash, no key was compromised and neither integrity nor availability was lost`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Severity

/** A factor's value, why it has that value, and, when the operator overrode it, what it was computed as and why. */
export interface Factor {
  value: number;
  justification: string;
  override: { computedValue: number; computedJustification: string; reason: string } | null;
}

export const SEVERITY_BANDS = ["low", "medium", "high", "very-high"] as const;
export type SeverityBand = (typeof SEVERITY_BANDS)[number];

/** What each band means for the persons (ENISA 2013). */
export const BAND_MEANING: Record<SeverityBand, string> = {
  low: "individuals either will not be affected or may encounter a few inconveniences, which they will overcome without any problem",
  medium: "individuals may encounter significant inconveniences, which they will be able to overcome despite a few difficulties",
  high: "individuals may encounter significant consequences, which they should be able to overcome albeit with serious difficulties",
  "very-high": "individuals may encounter significant, or even irreversible, consequences, which they may not overcome",
};

const quarters = (v: number, what: string): number => {
  const q = v * 4;
  if (!Number.isFinite(q) || Math.abs(q - Math.round(q)) > 1e-9) throw new RangeError(`${what} must be a multiple of 0.25`);
  return Math.round(q);
};

/**
 * ENISA's formula, SE = DPC × EI + CB, computed in quarters so that the band boundaries are exact. DPC 1..4, EI one of
 * 0.25 / 0.5 / 0.75 / 1, CB 0..2 (each a multiple of 0.25). Bands: < 2 low, < 3 medium, < 4 high, ≥ 4 very high.
 * Throws RangeError for a factor out of range.
 */
export function enisaSeverity(dpc: number, ei: number, cb: number): { score: number; band: SeverityBand } {
  const d = quarters(dpc, "DPC");
  const e = quarters(ei, "EI");
  const c = quarters(cb, "CB");
  if (d < 4 || d > 16) throw new RangeError("DPC must be from 1 to 4");
  if (e < 1 || e > 4) throw new RangeError("EI must be 0.25, 0.5, 0.75 or 1");
  if (c < 0 || c > 8) throw new RangeError("CB must be from 0 to 2");
  // In sixteenths: (d/4)·(e/4) = d·e/16 and c/4 = 4c/16.
  const sixteenths = d * e + 4 * c;
  return { score: sixteenths / 16, band: bandOf(sixteenths / 16) };
}

/** The band of a severity score (ENISA 2013). */
export function bandOf(score: number): SeverityBand {
  if (score < 2) return "low";
  if (score < 3) return "medium";
  if (score < 4) return "high";
  return "very-high";
}

const overrideSchema = <T extends z.ZodType<number>>(value: T) => z.strictObject({ value, reason: reasonText });
const quarterIn = (min: number, max: number) =>
  z
    .number()
    .min(min)
    .max(max)
    .refine((v) => Number.isInteger(v * 4), "must be a multiple of 0.25");

export const dpcOverrideSchema = overrideSchema(quarterIn(DPC_MIN, DPC_MAX));
export const severityOverridesSchema = z.strictObject({
  easeOfIdentification: overrideSchema(z.union([z.literal(0.25), z.literal(0.5), z.literal(0.75), z.literal(1)])).optional(),
  confidentiality: overrideSchema(z.union([z.literal(0), z.literal(0.25), z.literal(0.5)])).optional(),
  integrity: overrideSchema(z.union([z.literal(0), z.literal(0.25), z.literal(0.5)])).optional(),
  availability: overrideSchema(z.union([z.literal(0), z.literal(0.25), z.literal(0.5)])).optional(),
  malicious: overrideSchema(z.union([z.literal(0), z.literal(0.5)])).optional(),
});
export type SeverityOverrides = z.infer<typeof severityOverridesSchema>;
export type FactorName = "dataProcessingContext" | keyof SeverityOverrides;

export interface SeverityAssessment {
  /** SE = DPC × EI + CB, with the numbers. */
  formula: string;
  score: number;
  band: SeverityBand;
  meaning: string;
  factors: {
    dataProcessingContext: Factor;
    easeOfIdentification: Factor;
    confidentiality: Factor;
    integrity: Factor;
    availability: Factor;
    malicious: Factor;
  };
  /** CB: the four circumstance factors added. */
  circumstances: number;
}

export interface SeverityInput {
  categories: readonly DataCategory[];
  nature: Nature;
  malicious: boolean;
  exposure: Exposure | null;
  overrides: SeverityOverrides;
  dpcOverride: { value: number; reason: string } | null;
}

function withOverride(computed: { value: number; justification: string }, override: { value: number; reason: string } | undefined | null): Factor {
  if (!override) return { ...computed, override: null };
  return {
    value: override.value,
    justification: `set by the operator: ${override.reason}`,
    override: { computedValue: computed.value, computedJustification: computed.justification, reason: override.reason },
  };
}

/** DPC from the categories: the highest category score (each with its class and context adjustment), within 1..4. */
export function dataProcessingContext(categories: readonly DataCategory[]): { value: number; justification: string } {
  const unique = [...new Set(categories)];
  if (unique.length === 0) return { value: 1, justification: "no data category is recorded: scored as simple data (1); override it if the data is more sensitive" };
  const scored = unique.map((c) => ({ c, v: categoryDpc(c) })).sort((a, b) => b.v - a.v || a.c.localeCompare(b.c));
  const top = scored[0]!;
  const parts = scored.map(({ c, v }) => `${c} ${v} (${CATEGORY_DPC[c].justification})`);
  return { value: top.v, justification: `the highest of the categories' scores (ENISA 2013 DPC): ${parts.join("; ")}` };
}

/**
 * EI from what the records hold: maximum when directly identifying data is involved, or when the records' address
 * fields (each data subject and recipient by e-mail address) were exposed readable; otherwise significant.
 */
export function easeOfIdentification(categories: readonly DataCategory[], exposure: Exposure | null): { value: number; justification: string } {
  const identifying = categories.filter((c) => IDENTIFYING.includes(c));
  if (identifying.length > 0) return { value: EI_LEVELS.maximum, justification: `maximum (1): the data includes directly identifying categories (${[...new Set(identifying)].join(", ")})` };
  const addresses = exposure?.fields.filter((f) => f.form === "plaintext" && ["recipients", "data-subjects", "notify-email"].includes(f.field)).map((f) => f.field) ?? [];
  if (addresses.length > 0) return { value: EI_LEVELS.maximum, justification: `maximum (1): readable records name the persons by e-mail address (${[...new Set(addresses)].join(", ")})` };
  return { value: EI_LEVELS.significant, justification: "significant (0.75): the data is about identified persons whose identity can be found from the surrounding records" };
}

/** The ENISA assessment with every factor and its justification. Pure; throws RangeError only for impossible input. */
export function assessSeverity(input: SeverityInput): SeverityAssessment {
  const dpc = withOverride(dataProcessingContext(input.categories), input.dpcOverride);
  const ei = withOverride(easeOfIdentification(input.categories, input.exposure), input.overrides.easeOfIdentification);
  const kind = (k: BreachKind) => {
    const level = (CIRCUMSTANCE_LEVELS[k] as Record<string, { points: number; justification: string }>)[input.nature[k]]!;
    return withOverride({ value: level.points, justification: level.justification }, input.overrides[k]);
  };
  const confidentiality = kind("confidentiality");
  const integrity = kind("integrity");
  const availability = kind("availability");
  const malicious = withOverride(
    input.malicious ? { value: MALICIOUS_POINTS, justification: "the breach was due to malicious intent (ENISA 2013: +0.5)" } : { value: 0, justification: "no malicious intent is known" },
    input.overrides.malicious,
  );
  const cb = confidentiality.value + integrity.value + availability.value + malicious.value;
  const { score, band } = enisaSeverity(dpc.value, ei.value, cb);
  return {
    formula: `SE = DPC × EI + CB = ${dpc.value} × ${ei.value} + ${cb} = ${score}`,
    score,
    band,
    meaning: BAND_MEANING[band],
    factors: { dataProcessingContext: dpc, easeOfIdentification: ei, confidentiality, integrity, availability, malicious },
    circumstances: cb,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The proposal to each tenant (the tenant decides)

export const proposalPolicySchema = z.strictObject(
  Object.fromEntries(SEVERITY_BANDS.map((b) => [b, z.strictObject({ authority: z.boolean(), persons: z.boolean() })])) as Record<
    SeverityBand,
    z.ZodObject<{ authority: z.ZodBoolean; persons: z.ZodBoolean }>
  >,
);
export type ProposalPolicy = Record<SeverityBand, { authority: boolean; persons: boolean }>;

/**
 * The default mapping from band to proposal: a low band means the breach is unlikely to result in a risk to the
 * persons (no authority notice, Art. 33(1)); medium and up, a risk (notify the authority); high and up, a high risk
 * (tell the persons, Art. 34(1)).
 */
export const DEFAULT_PROPOSAL_POLICY: ProposalPolicy = {
  low: { authority: false, persons: false },
  medium: { authority: true, persons: false },
  high: { authority: true, persons: true },
  "very-high": { authority: true, persons: true },
};

export const EXEMPTIONS = ["a", "b", "c"] as const;
export type Exemption = (typeof EXEMPTIONS)[number];

export interface Proposal {
  notifyAuthority: { proposed: boolean; reason: string };
  notifyPersons: { proposed: boolean; highRisk: boolean; reason: string };
  /** The Art. 34(3) exemptions that may apply, each with why. */
  exemptions: Array<{ exemption: Exemption; article: string; reason: string }>;
}

export interface ProposalInput {
  assessment: SeverityAssessment;
  policy: ProposalPolicy;
  nature: Nature;
  exposure: Exposure | null;
  /** Art. 34(3)(b): the operator's account of later measures that removed the high risk. */
  measuresRemovedHighRisk: string | null;
  /** Art. 34(3)(c): the operator's account of why telling each person would take disproportionate effort. */
  disproportionateEffort: string | null;
  approximatePersons: number | null;
  /** The e-mail service's pace and the product's bound on a fan-out (EMAIL_SENDS_PER_HOUR, BREACH_NOTICE_MAX_HOURS). */
  emailSendsPerHour: number;
  noticeMaxHours: number;
}

/** The service's proposal for one tenant: from the band (through the policy), the exposure and the exemptions. */
export function proposeNotices(input: ProposalInput): Proposal {
  const { band } = input.assessment;
  const rule = input.policy[band];
  const hidden = unintelligible(input.exposure, input.nature);
  const notifyAuthority = hidden.holds
    ? { proposed: false, reason: `unlikely to result in a risk: ${hidden.reason} (EDPB Guidelines 9/2022 on encrypted data)` }
    : rule.authority
      ? { proposed: true, reason: `severity ${band}: the breach is likely to result in a risk to the persons (Art. 33(1))` }
      : { proposed: false, reason: `severity ${band}: the breach is unlikely to result in a risk to the persons (Art. 33(1)); document it (Art. 33(5))` };
  const exemptions: Proposal["exemptions"] = [];
  if (rule.persons) {
    if (hidden.holds) exemptions.push({ exemption: "a", article: "Art. 34(3)(a)", reason: hidden.reason });
    if (input.measuresRemovedHighRisk) exemptions.push({ exemption: "b", article: "Art. 34(3)(b)", reason: `later measures removed the high risk: ${input.measuresRemovedHighRisk}` });
    const sendHours = input.approximatePersons !== null ? input.approximatePersons / input.emailSendsPerHour : null;
    if (input.disproportionateEffort) {
      exemptions.push({ exemption: "c", article: "Art. 34(3)(c)", reason: `telling each person would take disproportionate effort: ${input.disproportionateEffort}; a public communication instead` });
    } else if (sendHours !== null && sendHours > input.noticeMaxHours) {
      exemptions.push({
        exemption: "c",
        article: "Art. 34(3)(c)",
        reason: `about ${input.approximatePersons} persons at ${input.emailSendsPerHour} e-mails an hour would take ${Math.ceil(sendHours)} hours, beyond ${input.noticeMaxHours}: a public communication instead`,
      });
    }
  }
  const notifyPersons = !rule.persons
    ? { proposed: false, highRisk: false, reason: `severity ${band}: not likely to result in a high risk to the persons (Art. 34(1))` }
    : exemptions.length > 0
      ? { proposed: false, highRisk: true, reason: `severity ${band}: a high risk (Art. 34(1)), but ${exemptions.map((e) => e.article).join(" and ")} may apply` }
      : { proposed: true, highRisk: true, reason: `severity ${band}: likely to result in a high risk to the persons (Art. 34(1)); tell them without undue delay` };
  return { notifyAuthority, notifyPersons, exemptions };
}

// ---------------------------------------------------------------------------------------------------------------
// The content of a breach record

export const PERSON_CATEGORIES = ["data-subjects", "recipients", "senders"] as const;
export const DEFAULT_PERSON_CATEGORIES = ["data-subjects", "recipients"] as const;

/** At most this many upload ids per tenant in a scope (larger breaches are scoped by a time window). */
export const MAX_SCOPE_UPLOADS = 1000;
export const MAX_SCOPE_TENANTS = 1000;

export const scopeEntrySchema = z
  .strictObject({
    tenantId: tenantIdSchema,
    /** The uploads affected (ids); or */
    uploads: z.array(z.string().regex(/^up-[a-z2-7]{26}$/, "must be an upload id")).min(1).max(MAX_SCOPE_UPLOADS).optional(),
    /** a time window of uploads created within it, with */
    window: z.strictObject({ from: iso, to: iso }).refine((w) => w.from < w.to, "from must be before to").optional(),
    /** the data categories affected (with uploads, added to those the uploads declare). */
    categories: z.array(z.enum(dataCategories)).max(dataCategories.length).default([]),
    personCategories: z.array(z.enum(PERSON_CATEGORIES)).min(1).max(PERSON_CATEGORIES.length).optional(),
    approximatePersons: z.number().int().min(0).max(1e12).nullable().optional(),
    approximateRecords: z.number().int().min(0).max(1e12).nullable().optional(),
    /** The ENISA DPC for this tenant set by hand, with the reason (kept and audited). */
    dpcOverride: dpcOverrideSchema.nullable().optional(),
    /** Shown to this tenant only. */
    note: breachText.nullable().optional(),
  })
  .refine((e) => (e.uploads === undefined) !== (e.window === undefined), "give either uploads (ids) or a window (from, to)");
export type ScopeEntryInput = z.input<typeof scopeEntrySchema>;
export type ScopeEntry = z.output<typeof scopeEntrySchema>;

/** The fields of a breach as the operator writes them (no defaults: a patch names only what it changes). */
const fieldShapes = {
  /** When the processor became aware (the clocks start here). */
  awareAt: iso,
  occurredFrom: iso.nullable(),
  occurredTo: iso.nullable(),
  nature: natureSchema,
  malicious: z.boolean(),
  description: breachText,
  cause: breachText,
  consequences: breachText.nullable(),
  likelyConsequences: breachText.nullable(),
  measuresTaken: breachText.nullable(),
  measuresProposed: breachText.nullable(),
  measuresBefore: breachText.nullable(),
  measuresLimiting: breachText.nullable(),
  followUp: z.strictObject({ missing: breachText, expectedBy: iso.nullable().default(null) }).nullable(),
  exposure: exposureSchema.nullable(),
  measuresRemovedHighRisk: breachText.nullable(),
  disproportionateEffort: breachText.nullable(),
  severityOverrides: severityOverridesSchema,
  proposalPolicy: proposalPolicySchema.nullable(),
  /** Required when the controller notice cannot be on target any more (Art. 33(2) "without undue delay"). */
  controllerNoticeDelayReason: reasonText.nullable(),
};

const scopeSchema = z
  .array(scopeEntrySchema)
  .max(MAX_SCOPE_TENANTS)
  .refine((s) => new Set(s.map((e) => e.tenantId)).size === s.length, "each tenant at most once");

/** The fields of a breach; every version holds all of them. What is not given is null (not known yet). */
export const breachFieldsSchema = z.strictObject({
  awareAt: fieldShapes.awareAt,
  occurredFrom: fieldShapes.occurredFrom.default(null),
  occurredTo: fieldShapes.occurredTo.default(null),
  nature: fieldShapes.nature,
  malicious: fieldShapes.malicious,
  description: fieldShapes.description,
  cause: fieldShapes.cause,
  consequences: fieldShapes.consequences.default(null),
  likelyConsequences: fieldShapes.likelyConsequences.default(null),
  measuresTaken: fieldShapes.measuresTaken.default(null),
  measuresProposed: fieldShapes.measuresProposed.default(null),
  measuresBefore: fieldShapes.measuresBefore.default(null),
  measuresLimiting: fieldShapes.measuresLimiting.default(null),
  followUp: fieldShapes.followUp.default(null),
  exposure: fieldShapes.exposure.default(null),
  measuresRemovedHighRisk: fieldShapes.measuresRemovedHighRisk.default(null),
  disproportionateEffort: fieldShapes.disproportionateEffort.default(null),
  severityOverrides: fieldShapes.severityOverrides.default({}),
  proposalPolicy: fieldShapes.proposalPolicy.default(null),
  controllerNoticeDelayReason: fieldShapes.controllerNoticeDelayReason.default(null),
  scope: scopeSchema,
});

/**
 * A change to a breach (PATCH): the fields given replace the current version's (null clears an optional one);
 * `scope` entries replace or add the named tenants' entries, `removeFromScope` takes tenants out (each is told).
 */
export const breachPatchSchema = z
  .strictObject({
    ...Object.fromEntries(Object.entries(fieldShapes).map(([k, v]) => [k, v.optional()])),
    scope: scopeSchema.optional(),
    removeFromScope: z.array(tenantIdSchema).max(MAX_SCOPE_TENANTS).optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), "name at least one field to change") as unknown as z.ZodType<BreachPatch>;
export type BreachPatch = Partial<Omit<z.output<typeof breachFieldsSchema>, "scope">> & { scope?: ScopeEntry[]; removeFromScope?: string[] };

export type BreachFieldsInput = z.input<typeof breachFieldsSchema>;
export type BreachFields = z.output<typeof breachFieldsSchema>;

/** The fields every tenant of a breach sees (all but the scope, the policy and the delay reason's tenant list). */
export const SHARED_FIELDS = [
  "awareAt",
  "occurredFrom",
  "occurredTo",
  "nature",
  "malicious",
  "description",
  "cause",
  "consequences",
  "likelyConsequences",
  "measuresTaken",
  "measuresProposed",
  "measuresBefore",
  "measuresLimiting",
  "followUp",
  "exposure",
  "measuresRemovedHighRisk",
  "disproportionateEffort",
  "severityOverrides",
  "controllerNoticeDelayReason",
] as const satisfies ReadonlyArray<keyof BreachFields>;

/** The names of the top-level fields that differ between two versions (for the version list and the audit). */
export function changedFields<T extends Record<string, unknown>>(before: T, after: T): string[] {
  return Object.keys(after)
    .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .sort();
}

/** Checks across fields (each field's own rules are in the schema). Returns [path, problem] pairs. */
export function breachFieldProblems(f: BreachFields, now: Date): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (Date.parse(f.awareAt) > now.getTime()) out.push(["awareAt", "must not be in the future: the clocks start when the processor became aware"]);
  if (beforeEarliestFactTime(f.awareAt)) out.push(["awareAt", EARLIEST_FACT_TIME_MESSAGE]);
  if (f.occurredFrom && beforeEarliestFactTime(f.occurredFrom)) out.push(["occurredFrom", EARLIEST_FACT_TIME_MESSAGE]);
  if (f.occurredTo && beforeEarliestFactTime(f.occurredTo)) out.push(["occurredTo", EARLIEST_FACT_TIME_MESSAGE]);
  if (f.followUp?.expectedBy && beforeEarliestFactTime(f.followUp.expectedBy)) out.push(["followUp.expectedBy", EARLIEST_FACT_TIME_MESSAGE]);
  if (f.occurredFrom && Date.parse(f.occurredFrom) > now.getTime()) out.push(["occurredFrom", "must not be in the future"]);
  if (f.occurredTo && Date.parse(f.occurredTo) > now.getTime()) out.push(["occurredTo", "must not be in the future"]);
  if (f.occurredFrom && f.occurredTo && f.occurredFrom > f.occurredTo) out.push(["occurredTo", "must not be before occurredFrom"]);
  if (f.occurredFrom && f.occurredFrom > f.awareAt) out.push(["occurredFrom", "must not be after awareAt: a breach is not known before it began"]);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The clocks

const HOUR = 3_600_000;
/** The data-processing agreement's outer limit for the processor's notice to the controller (clause 10.2). */
export const PROCESSOR_LIMIT_HOURS = 72;
/** Art. 33(1): the controller's 72 hours to the supervisory authority. */
export const AUTHORITY_HOURS = 72;

export interface ControllerNoticeClock {
  /** awareAt + BREACH_CONTROLLER_NOTICE_HOURS: the product's own target ("without undue delay", Art. 33(2)). */
  targetAt: string;
  /** awareAt + 72 h: the agreement's limit (clause 10.2). */
  limitAt: string;
  notifiedAt: string | null;
  /** pending (not yet, not late), overdue (past its target, or its limit), met (by the target), late (after it). */
  status: "pending" | "past-target" | "past-limit" | "on-target" | "within-limit" | "late";
}

export interface AuthorityClock {
  /** controllerNotifiedAt + 72 h (Art. 33(1), EDPB 9/2022: the controller is aware when its processor told it). */
  deadlineAt: string | null;
  /** awareAt + 72 h: the stricter target the product shows. */
  productTargetAt: string;
  notifiedAt: string | null;
  status: "waiting-for-controller-notice" | "open" | "overdue" | "notified" | "notified-late" | "not-notified";
}

export function controllerNoticeClock(awareAt: Date, targetHours: number, notifiedAt: Date | null, now: Date): ControllerNoticeClock {
  const target = awareAt.getTime() + targetHours * HOUR;
  const limit = awareAt.getTime() + PROCESSOR_LIMIT_HOURS * HOUR;
  let status: ControllerNoticeClock["status"];
  if (notifiedAt) status = notifiedAt.getTime() <= target ? "on-target" : notifiedAt.getTime() <= limit ? "within-limit" : "late";
  else status = now.getTime() > limit ? "past-limit" : now.getTime() > target ? "past-target" : "pending";
  return { targetAt: new Date(target).toISOString(), limitAt: new Date(limit).toISOString(), notifiedAt: notifiedAt?.toISOString() ?? null, status };
}

/** The controller's deadline to the authority, or null while it has not been told. */
export function authorityDeadline(controllerNotifiedAt: Date | null): Date | null {
  return controllerNotifiedAt ? new Date(controllerNotifiedAt.getTime() + AUTHORITY_HOURS * HOUR) : null;
}

export function authorityClock(awareAt: Date, controllerNotifiedAt: Date | null, authority: { notifiedAt: Date | null; notNotified: boolean }, now: Date): AuthorityClock {
  const deadline = authorityDeadline(controllerNotifiedAt);
  const productTargetAt = new Date(awareAt.getTime() + AUTHORITY_HOURS * HOUR).toISOString();
  let status: AuthorityClock["status"];
  if (authority.notifiedAt) status = isLateAuthorityNotification(authority.notifiedAt, controllerNotifiedAt) ? "notified-late" : "notified";
  else if (authority.notNotified) status = "not-notified";
  else if (!deadline) status = "waiting-for-controller-notice";
  else status = now.getTime() > deadline.getTime() ? "overdue" : "open";
  return { deadlineAt: deadline?.toISOString() ?? null, productTargetAt, notifiedAt: authority.notifiedAt?.toISOString() ?? null, status };
}

/**
 * Is a notification to the authority made at `notifiedAt` late (Art. 33(1): then it must give reasons for the
 * delay)? Only once the controller was told is there a deadline to be late for.
 */
export function isLateAuthorityNotification(notifiedAt: Date, controllerNotifiedAt: Date | null): boolean {
  const deadline = authorityDeadline(controllerNotifiedAt);
  return deadline !== null && notifiedAt.getTime() > deadline.getTime();
}

/**
 * Does registering (or confirming) a breach at `now` need a reason for the delay of the controller notice? When the
 * notice can no longer be sent by its target (awareAt + BREACH_CONTROLLER_NOTICE_HOURS).
 */
export function controllerNoticeDelayRequired(awareAt: Date, targetHours: number, now: Date): boolean {
  return now.getTime() > awareAt.getTime() + targetHours * HOUR;
}

// ---------------------------------------------------------------------------------------------------------------
// The deadline watch's marks

/** The watched deadlines of one tenant's part. */
export const BREACH_DEADLINES = ["controller-target", "controller-limit", "authority-target", "authority"] as const;
export type BreachDeadline = (typeof BREACH_DEADLINES)[number];

/** The marks before each deadline (hours) and their stage names (shared/domain/deadlines.ts). */
export const DEADLINE_MARKS = [
  { stage: "reminder-24h", hoursBefore: 24 },
  { stage: "reminder-12h", hoursBefore: 12 },
  { stage: "reminder-2h", hoursBefore: 2 },
  { stage: "overdue", hoursBefore: 0 },
] as const;
export type BreachDeadlineStage = (typeof DEADLINE_MARKS)[number]["stage"];

/**
 * The marks of a deadline as scheduled at `scheduledAt`: 24 h, 12 h and 2 h before and when it passes. A reminder
 * whose time was already over when the deadline became known is left out (it would tell nothing new); the mark of
 * the deadline itself is kept even when it has passed, so a deadline missed before it was known is reported once.
 */
export function deadlineMarks(deadlineAt: Date, scheduledAt: Date): Array<{ stage: BreachDeadlineStage; dueAt: Date }> {
  return DEADLINE_MARKS.map((m) => ({ stage: m.stage, dueAt: new Date(deadlineAt.getTime() - m.hoursBefore * HOUR) })).filter(
    (m) => m.stage === "overdue" || m.dueAt.getTime() > scheduledAt.getTime(),
  );
}

/** When each watched deadline of a part falls: null when it does not (yet) apply. */
export function breachDeadlines(awareAt: Date, targetHours: number, controllerNotifiedAt: Date | null): Record<BreachDeadline, Date | null> {
  return {
    "controller-target": new Date(awareAt.getTime() + targetHours * HOUR),
    "controller-limit": new Date(awareAt.getTime() + PROCESSOR_LIMIT_HOURS * HOUR),
    "authority-target": new Date(awareAt.getTime() + AUTHORITY_HOURS * HOUR),
    authority: authorityDeadline(controllerNotifiedAt),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The controller's decision and notification

export const AUTHORITY_METHODS = ["online-form", "e-mail", "letter", "phone", "other"] as const;

export const decisionSchema = z
  .strictObject({
    notifyAuthority: z.boolean(),
    notifyPersons: z.boolean(),
    /** The Art. 34(3) exemption relied on when the persons are not told although the risk is high. */
    exemption: z.enum(EXEMPTIONS).nullable().default(null),
    reasons: reasonText,
  })
  .refine((d) => !(d.notifyPersons && d.exemption !== null), { message: "an exemption applies only when the persons are not told", path: ["exemption"] });
export type DecisionInput = z.output<typeof decisionSchema>;

export const authorityNotificationSchema = z.strictObject({
  notifiedAt: iso,
  method: z.enum(AUTHORITY_METHODS),
  /** The authority's reference (case number); no personal data. */
  reference: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .refine((s) => personalIdentifierProblem(s) === undefined && ![...s].some((ch) => isControl(ch, false)), "must be the authority's case reference: no control characters, no e-mail address or CPR number")
    .nullable()
    .default(null),
  /** Art. 33(1): mandatory when the notification is later than 72 hours after the controller was told. */
  delayReason: reasonText.nullable().default(null),
});
export type AuthorityNotificationInput = z.output<typeof authorityNotificationSchema>;

export const noAuthorityNotificationSchema = z.strictObject({ reason: reasonText });

// ---------------------------------------------------------------------------------------------------------------
// Stored and shown shapes of an assessment

export const factorSchema = z.object({
  value: z.number(),
  justification: z.string(),
  override: z.object({ computedValue: z.number(), computedJustification: z.string(), reason: z.string() }).nullable(),
});

export const severityAssessmentSchema = z.object({
  formula: z.string(),
  score: z.number(),
  band: z.enum(SEVERITY_BANDS),
  meaning: z.string(),
  factors: z.object({
    dataProcessingContext: factorSchema,
    easeOfIdentification: factorSchema,
    confidentiality: factorSchema,
    integrity: factorSchema,
    availability: factorSchema,
    malicious: factorSchema,
  }),
  circumstances: z.number(),
});

export const proposalSchema = z.object({
  notifyAuthority: z.object({ proposed: z.boolean(), reason: z.string() }),
  notifyPersons: z.object({ proposed: z.boolean(), highRisk: z.boolean(), reason: z.string() }),
  exemptions: z.array(z.object({ exemption: z.enum(EXEMPTIONS), article: z.string(), reason: z.string() })),
});

/** What the scope of one tenant came to when the version was written (the uploads read, the numbers known). */
export const resolvedScopeSchema = z.object({
  categories: z.array(z.enum(dataCategories)),
  personCategories: z.array(z.enum(PERSON_CATEGORIES)),
  approximatePersons: z.number().int().nonnegative().nullable(),
  approximateRecords: z.number().int().nonnegative().nullable(),
  /** With an upload scope: how many of the ids name an upload of the tenant (live or deleted). */
  uploadsFound: z.number().int().nonnegative().nullable(),
});
export type ResolvedScope = z.infer<typeof resolvedScopeSchema>;

/**
 * What one tenant sees of a version: the fields every affected tenant shares and its own scope entry with what it
 * came to (never another tenant's, never the register's proposal policy).
 */
export const tenantContentSchema = breachFieldsSchema.omit({ scope: true, proposalPolicy: true }).extend({
  scope: scopeEntrySchema,
  resolved: resolvedScopeSchema,
});
export type TenantContent = z.infer<typeof tenantContentSchema>;

