/**
 * Logs and telemetry. Both carry ids, hashes, counts and durations only. As a second line of defence every
 * string value is scrubbed of anything shaped like an e-mail address before it leaves the process.
 *
 * Application Insights is loaded only when APPLICATIONINSIGHTS_CONNECTION_STRING is set: without it the SDK
 * has no client, and with an unreachable one it delays process exit, so locally telemetry is a no-op.
 */
import type { InvocationContext } from "@azure/functions";
import type { Settings } from "./config/settings";

export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue>;

/**
 * Anything shaped like an address: a local part, @, and a dotted domain. The parts are bounded (as addresses are:
 * 64 characters before the @, labels of 63) so scanning a long line without separators stays linear.
 */
const EMAIL_LIKE = /[^\s@"'<>()[\],;:]{1,64}@[^\s@"'<>()[\],;:.]{1,63}(?:\.[^\s@"'<>()[\],;:.]{1,63}){1,10}/g;

export function scrub(text: string): string {
  return text.replace(EMAIL_LIKE, "[redacted]");
}

function render(event: string, fields: LogFields): string {
  const out: Record<string, LogValue> = { event };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out[k] = typeof v === "string" ? scrub(v) : v;
  }
  return JSON.stringify(out);
}

export interface Log {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** Structured logging through the invocation context, so the host attributes each line to its invocation. */
export function invocationLog(context: Pick<InvocationContext, "info" | "warn" | "error">): Log {
  return {
    info: (event, fields = {}) => context.info(render(event, fields)),
    warn: (event, fields = {}) => context.warn(render(event, fields)),
    error: (event, fields = {}) => context.error(render(event, fields)),
  };
}

/**
 * Structured logging outside an invocation (the local runtime's own helpers): each line is rendered and scrubbed as
 * `invocationLog` renders it, then handed to `write` (e.g. the process's standard error).
 */
export function lineLog(write: (line: string) => void): Log {
  return {
    info: (event, fields = {}) => write(render(event, fields)),
    warn: (event, fields = {}) => write(render(event, fields)),
    error: (event, fields = {}) => write(render(event, fields)),
  };
}

/** What may be logged about an error: its kind and code, and its message with addresses scrubbed. No stack in responses. */
export function errorFields(err: unknown): LogFields {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      errorName: err.name,
      errorCode: typeof code === "string" || typeof code === "number" ? code : undefined,
      errorMessage: scrub(err.message).slice(0, 500),
    };
  }
  return { errorName: typeof err };
}

export interface Telemetry {
  event(name: string, properties?: Record<string, string>, measurements?: Record<string, number>): void;
  metric(name: string, value: number, properties?: Record<string, string>): void;
  flush(): Promise<void>;
}

export const noTelemetry: Telemetry = {
  event: () => undefined,
  metric: () => undefined,
  flush: async () => undefined,
};

interface AppInsightsClient {
  trackEvent(t: { name: string; properties?: Record<string, string>; measurements?: Record<string, number> }): void;
  trackMetric(t: { name: string; value: number; properties?: Record<string, string> }): void;
  flush(): Promise<void> | void;
  config: { aadTokenCredential?: unknown };
}

export function createTelemetry(cfg: Settings["telemetry"]): Telemetry {
  if (!cfg) return noTelemetry;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ai = require("applicationinsights") as {
    setup(cs: string): { start(): unknown };
    defaultClient: AppInsightsClient | undefined;
  };
  ai.setup(cfg.connectionString).start();
  const client = ai.defaultClient;
  if (!client) return noTelemetry;
  if (cfg.authentication?.includes("Authorization=AAD")) {
    // Identity-based ingestion: local auth is disabled on the Application Insights resource.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ManagedIdentityCredential } = require("@azure/identity") as typeof import("@azure/identity");
    client.config.aadTokenCredential = cfg.clientId ? new ManagedIdentityCredential({ clientId: cfg.clientId }) : new ManagedIdentityCredential();
  }
  const clean = (p?: Record<string, string>) => (p ? Object.fromEntries(Object.entries(p).map(([k, v]) => [k, scrub(v)])) : undefined);
  return {
    event: (name, properties, measurements) => client.trackEvent({ name, properties: clean(properties), measurements }),
    metric: (name, value, properties) => client.trackMetric({ name, value, properties: clean(properties) }),
    flush: async () => {
      await client.flush();
    },
  };
}
