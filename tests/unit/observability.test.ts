import { describe, expect, it } from "@jest/globals";
import { createTelemetry, errorFields, invocationLog, noTelemetry, scrub } from "../../shared/observability";

describe("observability", () => {
  it("is a no-op without an Application Insights connection string, and never loads the SDK", () => {
    expect(createTelemetry(undefined)).toBe(noTelemetry);
    expect(Object.keys(require.cache).some((k) => k.includes("/applicationinsights/"))).toBe(false);
  });

  it("scrubs anything shaped like an e-mail address from log fields and error messages", () => {
    expect(scrub("sent to jane.doe+x@example.co.uk and bo@b.dk")).toBe("sent to [redacted] and [redacted]");
    const lines: string[] = [];
    const log = invocationLog({ info: (m: string) => lines.push(m), warn: () => undefined, error: () => undefined } as never);
    log.info("event", { to: "anna@example.com", count: 3 });
    expect(JSON.parse(lines[0]!)).toEqual({ event: "event", to: "[redacted]", count: 3 });
    expect(errorFields(new Error("bad address carl@example.org"))).toMatchObject({ errorName: "Error", errorMessage: "bad address [redacted]" });
  });
});
