/**
 * The tenant's privacy-information document (GDPR Art. 15(1)(a)–(h), 15(2)) in every language the service writes in:
 * what an access package tells the person besides the copy of the data. See shared/usecases/privacy-information.ts.
 */
import { app } from "@azure/functions";
import { z } from "zod";
import { PRIVACY_FIELD_BASIS, PRIVACY_FIELDS, privacyDocumentSchema } from "../shared/domain/subject-package";
import { httpEndpoint, problems } from "../shared/http/endpoint";
import { getPrivacyInformation, putPrivacyInformation, type PrivacyInformationView } from "../shared/usecases/privacy-information";

const tags = ["Data-subject requests"];
const fieldsDoc = PRIVACY_FIELDS.map((f) => `${f} (${PRIVACY_FIELD_BASIS[f]})`).join(", ");

const viewSchema = z.object({
  document: privacyDocumentSchema,
  version: z.number().int().describe("Counts the saves, from 1"),
  updatedAt: z.string(),
}) satisfies z.ZodType<PrivacyInformationView>;

const put = httpEndpoint({
  name: "privacy-information-put",
  method: "PUT",
  route: "v1/privacy-information",
  auth: "tenant",
  tags,
  summary: "Save the privacy information an access package gives the person (GDPR Art. 15(1)(a)-(h), 15(2)), in English and Danish",
  description:
    `One object per language (en, da), each with ${fieldsDoc}; transfers may be left out when no data leaves the EU/EEA. ` +
    "An access request cannot complete without it: it needs attention until this is saved and the request is retried.",
  body: privacyDocumentSchema,
  responses: { 201: { description: "Saved for the first time", schema: viewSchema }, 200: { description: "Saved (replaced)", schema: viewSchema }, 409: problems(["conflict"]) },
  handler: async ({ services, principal, body }) => {
    const r = await putPrivacyInformation(services, principal, body);
    return { status: r.created ? 201 : 200, json: r.view };
  },
});
app.http(put.name, put.options);

const get = httpEndpoint({
  name: "privacy-information-get",
  method: "GET",
  route: "v1/privacy-information",
  auth: "tenant",
  tags,
  summary: "The saved privacy information",
  responses: { 200: { description: "The document", schema: viewSchema }, 404: problems(["not-found"]) },
  handler: async ({ services, principal }) => ({ status: 200, json: await getPrivacyInformation(services, principal) }),
});
app.http(get.name, get.options);
