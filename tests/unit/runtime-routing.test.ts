import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import { bestMatch, compileRoute, matchRoute } from "../../dev/runtime/routing";
import { parseSchedule } from "../../dev/runtime/schedule";
import { decodeMessage } from "../../dev/runtime/queues";
import { parseHostJson, resolveBindingExpression, timeSpanMs } from "../../dev/runtime/host-config";

describe("route templates", () => {
  it("matches literals case-insensitively and captures parameters", () => {
    expect(matchRoute(compileRoute("v1/uploads/{id}"), "V1/Uploads/abc")?.params).toEqual({ id: "abc" });
    expect(matchRoute(compileRoute("v1/uploads/{id}"), "v1/uploads")).toBeUndefined();
    expect(matchRoute(compileRoute("v1/uploads/{id}"), "v1/uploads/a/b")).toBeUndefined();
  });

  it("supports optional parameters, constraints and catch-alls", () => {
    expect(matchRoute(compileRoute("items/{id?}"), "items")?.params).toEqual({});
    expect(matchRoute(compileRoute("items/{n:int}"), "items/12")?.params).toEqual({ n: "12" });
    expect(matchRoute(compileRoute("items/{n:int}"), "items/x")).toBeUndefined();
    expect(matchRoute(compileRoute("files/{*rest}"), "files/a/b/c")?.params).toEqual({ rest: "a/b/c" });
    expect(() => compileRoute("a/{*rest}/b")).toThrow(/catch-all/);
    expect(() => compileRoute("a/{x:nope}")).toThrow(/constraint/);
  });

  it("picks the most specific route, whatever the registration order", () => {
    const routes = ["{*path}", "items/{id}", "items/special", "items/{id}/parts"].map((r) => ({ route: compileRoute(r), name: r }));
    fc.assert(
      fc.property(fc.shuffledSubarray(routes, { minLength: routes.length }), (order) => {
        expect(bestMatch(order, "items/special")?.entry.name).toBe("items/special");
        expect(bestMatch(order, "items/7")?.entry.name).toBe("items/{id}");
        expect(bestMatch(order, "items/7/parts")?.entry.name).toBe("items/{id}/parts");
        expect(bestMatch(order, "other/x")?.entry.name).toBe("{*path}");
      }),
    );
  });
});

describe("timer schedules", () => {
  it("reads six-field NCRONTAB in UTC", () => {
    const s = parseSchedule("0 */15 * * * *");
    expect(s.next(new Date("2026-03-01T10:07:30Z")).toISOString()).toBe("2026-03-01T10:15:00.000Z");
    expect(parseSchedule("30 0 2 * * 1").next(new Date("2026-03-01T00:00:00Z")).toISOString()).toBe("2026-03-02T02:00:30.000Z");
  });

  it("reads TimeSpan intervals", () => {
    expect(parseSchedule("00:05:00").next(new Date("2026-03-01T00:00:00Z")).toISOString()).toBe("2026-03-01T00:05:00.000Z");
  });

  it("rejects five-field cron and nonsense", () => {
    expect(() => parseSchedule("*/5 * * * *")).toThrow(/six fields/);
    expect(() => parseSchedule("0 99 * * * *")).toThrow();
    expect(() => parseSchedule("00:00:00")).toThrow(/positive/);
  });
});

describe("host.json and settings", () => {
  it("reads queue options and defaults like the host", () => {
    const c = parseHostJson({ version: "2.0", extensions: { queues: { maxDequeueCount: 3, visibilityTimeout: "00:00:30" } } });
    expect(c.queues).toMatchObject({ maxDequeueCount: 3, visibilityTimeoutMs: 30_000, batchSize: 16, newBatchThreshold: 8, messageEncoding: "base64" });
    expect(c.routePrefix).toBe("api");
    expect(timeSpanMs("1.02:03:04")).toBe(((24 + 2) * 3600 + 3 * 60 + 4) * 1000);
  });

  it("resolves %SETTING% binding expressions and refuses unknown ones", () => {
    expect(resolveBindingExpression("%Q%-x", { Q: "jobs" })).toBe("jobs-x");
    expect(() => resolveBindingExpression("%MISSING%", {})).toThrow(/MISSING/);
  });

  it("decodes base64 queue messages and refuses plain text", () => {
    expect(decodeMessage(Buffer.from('{"a":1}').toString("base64"), "base64")).toBe('{"a":1}');
    expect(() => decodeMessage("plain text!", "base64")).toThrow(/base64/);
    expect(decodeMessage("plain", "none")).toBe("plain");
  });
});
