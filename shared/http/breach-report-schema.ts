/**
 * The JSON shape of the authority report (`GET /api/v1/breaches/{id}/report`, GDPR Art. 33(3)), for the OpenAPI
 * document: the items of Datatilsynet's form, each field described. It mirrors AuthorityReport
 * (shared/usecases/breach-report.ts). Times are ISO 8601 strings (UTC); counts are persons.
 */
import { z } from "zod";
import { PERSONS_CONFLICTS } from "../domain/breach-report";
import { LANGUAGES } from "../domain/language";
import { dataCategories } from "../domain/uploads";

const at = z.string();

export const authorityReportSchema = z.object({
  breachId: z.string(),
  version: z.number().int().describe("Your part's newest version, which the report is of"),
  generatedAt: at,
  language: z.enum(LANGUAGES),
  contactPoint: z
    .object({
      controller: z.string(),
      email: z.string().nullable(),
      supervisoryAuthority: z.object({ country: z.string(), name: z.string() }),
      processorEmail: z.string().nullable(),
    })
    .describe("(1) Whom to contact (Art. 33(3)(b)): your contact point, and the processor's"),
  description: z
    .object({
      nature: z.array(z.object({ kind: z.string(), level: z.string() })),
      malicious: z.boolean(),
      summary: z.string(),
      cause: z.string(),
      occurredFrom: at.nullable(),
      occurredTo: at.nullable(),
      processorAwareAt: at,
      controllerAwareAt: at.nullable(),
      controllerAwareVia: z.string().nullable(),
    })
    .describe("(2) The description of the breach"),
  persons: z
    .object({
      categories: z.array(z.string()),
      approximateNumber: z.number().int().nullable().describe("The register's estimate"),
      resolved: z
        .object({ version: z.number().int(), persons: z.number().int(), unreachable: z.number().int(), finishedAt: at.nullable() })
        .nullable()
        .describe("Once the scope resolution completed: the persons found by keyed hash and the unreachable (at most), for that part version"),
    })
    .describe("(3) The categories and approximate number of persons concerned"),
  records: z.object({ categories: z.array(z.enum(dataCategories)), approximateNumber: z.number().int().nullable() }).describe("(4) Records concerned"),
  consequences: z.string().nullable().describe("(5)"),
  likelyConsequences: z.string().nullable().describe("(6)"),
  measures: z
    .object({ taken: z.string().nullable(), proposed: z.string().nullable(), inPlaceBefore: z.string(), inPlaceBeforeByProcessor: z.string().nullable(), limitingEffects: z.string().nullable() })
    .describe("(7)-(9) The measures"),
  severity: z.object({ band: z.string(), score: z.number(), formula: z.string(), method: z.string() }).nullable(),
  personsInformed: z
    .object({
      decided: z.boolean().describe("Whether you recorded a decision; false does not mean nobody was told: see notices and publicCommunications"),
      notifyPersons: z.boolean().nullable().describe("Your newest decision: the persons are told (true) or not (false)"),
      exemption: z.string().nullable().describe("The Art. 34(3) exemption your newest decision relies on, e.g. \"Art. 34(3)(c)\""),
      reasons: z.string().nullable(),
      decision: z.object({ at, version: z.number().int().describe("The part version the decision was made on") }).nullable(),
      notices: z
        .object({
          version: z.number().int().describe("The part version the notices tell of"),
          requestedAt: at.describe("When you instructed them (POST .../notify-persons)"),
          sent: z.number().int(),
          pending: z.number().int(),
          failed: z.number().int(),
          unreachable: z.number().int().describe("Persons found without an address (their records deleted after the resolution)"),
          completedAt: at.nullable().describe("When nothing was pending any more"),
          stoppedAt: at.nullable().describe("When the notices stopped (you were taken out of the scope, or you cancelled them)"),
          stoppedReason: z
            .enum(["withdrawn", "cancelled"])
            .nullable()
            .describe("Why they stopped: withdrawn (you were taken out of the scope), cancelled (you cancelled them: DELETE .../notify-persons); null: not stopped"),
          notTold: z.number().int().describe("Persons still pending when the notices stopped: they are not told (0 unless stopped)"),
        })
        .nullable()
        .describe("What was done: the notices to the persons by e-mail you instructed, with their progress; null if none was instructed"),
      earlierNotices: z
        .array(
          z.object({
            version: z.number().int().describe("The part version they told of"),
            requestedAt: at,
            sent: z.number().int(),
            failed: z.number().int(),
            unreachable: z.number().int(),
            notTold: z.number().int().describe("Still pending when they ended: not told of that version"),
            endedAt: at,
            reason: z
              .enum(["replaced", "withdrawn", "cancelled"])
              .describe("replaced: notices of a later version were instructed; withdrawn: you were taken out of the scope; cancelled: you cancelled them"),
          }),
        )
        .describe("What was done before: notices by e-mail of earlier versions, oldest first: why and when each ended, and its counts as its version's counters hold them now (a step still sending when it ended is counted once it finishes)"),
      publicCommunications: z
        .array(z.object({ publishedAt: at, where: z.string(), text: z.string(), version: z.number().int() }))
        .describe("What was done: every public communication recorded (Art. 34(3)(c)), oldest first"),
      conflicts: z
        .array(z.object({ code: z.enum(PERSONS_CONFLICTS), message: z.string().describe("The contradiction, in the report's language") }))
        .describe(
          "Where the stored facts contradict your newest decision: decided-told-not-instructed (told, but no notice of that version instructed), " +
            "decided-not-told-but-instructed (not told, but notices instructed after it), decided-told-but-cancelled (told, but you cancelled the notices of that version, " +
            "before or after the decision: those not told are never told of that version), exemption-c-without-public-communication (Art. 34(3)(c), but no public communication recorded)",
        ),
    })
    .describe("(10) Whether and how the persons were told, or why not: your decision beside what was done"),
  notification: z
    .object({
      clock: z.object({ deadlineAt: at.nullable(), productTargetAt: at, notifiedAt: at.nullable(), status: z.string() }),
      notifications: z.array(
        z.object({
          notifiedAt: at,
          method: z.string(),
          reference: z.string().nullable(),
          delayReason: z.string().nullable(),
          late: z.boolean(),
          recordedAt: at.describe("When you recorded it"),
          recordedAfterDeadline: z.boolean().describe("It claims a time within the 72 hours but was recorded after they passed (Art. 33(5))"),
        }),
      ),
      notNotifiedReason: z.string().nullable().describe("Your reason not to notify the authority, if recorded"),
      notNotifiedAt: at.nullable(),
      notNotifiedSuperseded: z.boolean().describe("A notification was recorded after the decision not to notify: that decision no longer stands"),
    })
    .describe("(11) The notification to the authority and its deadline"),
  followUp: z.object({ missing: z.string(), expectedBy: at.nullable() }).nullable().describe("(12) What will follow, and when"),
});
