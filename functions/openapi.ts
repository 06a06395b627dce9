/** GET /api/v1/openapi.json: the API description, generated from the endpoint specs. */
import { app } from "@azure/functions";
import { httpEndpoint } from "../shared/http/endpoint";
import { openApiDocument } from "../shared/http/openapi";
import { serviceVersion } from "../shared/version";

let cached: object | undefined;

const openapi = httpEndpoint({
  name: "openapi",
  method: "GET",
  route: "v1/openapi.json",
  auth: "none",
  tags: ["Operations"],
  summary: "This API's OpenAPI 3.1 document",
  responses: { 200: { description: "OpenAPI document" } },
  handler: async () => {
    cached ??= openApiDocument({ version: serviceVersion() });
    return { status: 200, json: cached };
  },
});
app.http(openapi.name, openapi.options);
