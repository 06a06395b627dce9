/**
 * Everything no other route matched: 404 problem+json, or 405 with Allow when the path exists for other methods.
 * Registered as a catch-all route; the host prefers every more specific route over it.
 */
import { app } from "@azure/functions";
import { endpoints, httpEndpoint } from "../shared/http/endpoint";
import { AppError } from "../shared/errors";
import { HttpError } from "../shared/http/problem";

/** The order methods are listed in Allow; HEAD wherever GET is (RFC 9110 §9.1: a server that has GET supports HEAD). */
const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

function templateMatches(template: string, path: string): boolean {
  const t = template.split("/");
  const p = path.replace(/^\/+|\/+$/g, "").split("/");
  return t.length === p.length && t.every((seg, i) => (/^\{.+\}$/.test(seg) ? p[i] !== "" : seg.toLowerCase() === p[i]?.toLowerCase()));
}

const notFound = httpEndpoint({
  name: "not-found",
  method: "GET",
  route: "{*path}",
  auth: "none",
  tags: ["Operations"],
  summary: "Any unknown route: a problem+json 404 (or 405 when the path exists for other methods)",
  responses: {},
  handler: async ({ request }) => {
    const path = request.params.path ?? "";
    const allowed = endpoints()
      .filter((e) => e.name !== "not-found" && templateMatches(e.route, path))
      .flatMap((e) => (e.method === "GET" ? ["GET", "HEAD"] : [e.method]));
    if (allowed.length > 0) {
      const allow = [...new Set(allowed)].sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b)).join(", ");
      throw new HttpError("method-not-allowed", `${request.method} is not supported here; use ${allow}`, { allow });
    }
    throw new AppError("not-found", "no such route; the API is described at /api/v1/openapi.json");
  },
});
app.http(notFound.name, { ...notFound.options, methods: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] });
