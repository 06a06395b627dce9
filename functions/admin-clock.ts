/**
 * The movable local clock (operator API), registered only with LOCAL_CLOCK_CONTROL=true, which start-up refuses
 * unless keys and e-mail are local and which the Bicep never sets. Without it, these routes answer 404 like any
 * unknown route.
 */
import { app } from "@azure/functions";
import { z } from "zod";
import { httpEndpoint, problems } from "../shared/http/endpoint";
import { isoDateTime } from "../shared/http/schemas";
import { moveClock, readClock } from "../shared/usecases/clock";

const tags = ["Admin: local clock"];
const clockView = z.object({ now: z.string().describe("The service's time (ISO 8601, UTC)") });

export function registerClockControl(): void {
  const get = httpEndpoint({
    name: "admin-clock-get",
    method: "GET",
    route: "v1/admin/clock",
    auth: "admin",
    tags,
    summary: "The service's clock (local trials only)",
    responses: { 200: { description: "Now", schema: clockView }, 404: problems(["not-found"]) },
    handler: async ({ services }) => ({ status: 200, json: readClock(services) }),
  });
  app.http(get.name, get.options);

  const move = httpEndpoint({
    name: "admin-clock-move",
    method: "POST",
    route: "v1/admin/clock",
    auth: "admin",
    tags,
    summary: "Move the service's clock forward (local trials only); it keeps ticking from there",
    description:
      "Give advanceSeconds or set, not both. The clock never moves back (409). Timers keep their real schedule: run one at once " +
      "through the local host's admin endpoint; until sweeps run, health may report them behind.",
    body: z.strictObject({
      advanceSeconds: z.number().int().min(0).optional().describe("Seconds to move forward"),
      set: isoDateTime.optional().describe("A time to move to, not earlier than now"),
    }),
    responses: {
      200: { description: "Moved", schema: clockView },
      // The service's clock is not a movable one (as if the route did not exist).
      404: problems(["not-found"]),
      // Both or neither of advanceSeconds and set, or more than ten years at once; set earlier than now.
      400: problems(["malformed-request"]),
      409: problems(["conflict"]),
    },
    handler: async ({ services, body, log }) => ({ status: 200, json: moveClock(services, body, log) }),
  });
  app.http(move.name, move.options);
}
