/** host.json and local.settings.json, read the way the Functions host reads them (the parts the runtime honours). */
import { readFileSync } from "node:fs";
import { z } from "zod";

/** "hh:mm:ss" or "d.hh:mm:ss" to milliseconds. */
export function timeSpanMs(value: string): number {
  const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/.exec(value);
  if (!m) throw new Error(`'${value}' is not a TimeSpan (hh:mm:ss)`);
  const [, d, h, min, s, frac] = m;
  return (((Number(d ?? 0) * 24 + Number(h)) * 60 + Number(min)) * 60 + Number(s)) * 1000 + Number((frac ?? "0").padEnd(3, "0"));
}

const timeSpan = z.string().transform((v, ctx) => {
  try {
    return timeSpanMs(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

const hostJsonSchema = z.object({
  version: z.literal("2.0"),
  functionTimeout: timeSpan.optional(),
  extensions: z
    .object({
      http: z.object({ routePrefix: z.string().default("api") }).prefault({}),
      // The host's defaults where host.json says nothing.
      queues: z
        .object({
          maxPollingInterval: timeSpan.default(60_000),
          visibilityTimeout: timeSpan.default(0),
          batchSize: z.number().int().min(1).max(32).default(16),
          newBatchThreshold: z.number().int().min(0).optional(),
          maxDequeueCount: z.number().int().min(1).default(5),
          messageEncoding: z.enum(["base64", "none"]).default("base64"),
        })
        .prefault({}),
    })
    .prefault({}),
});

export interface HostConfig {
  routePrefix: string;
  functionTimeoutMs: number;
  queues: {
    maxPollingIntervalMs: number;
    visibilityTimeoutMs: number;
    batchSize: number;
    newBatchThreshold: number;
    maxDequeueCount: number;
    messageEncoding: "base64" | "none";
  };
}

export function parseHostJson(json: unknown): HostConfig {
  const h = hostJsonSchema.parse(json);
  const q = h.extensions.queues;
  return {
    routePrefix: h.extensions.http.routePrefix.replace(/^\/+|\/+$/g, ""),
    functionTimeoutMs: h.functionTimeout ?? 30 * 60_000,
    queues: {
      maxPollingIntervalMs: q.maxPollingInterval,
      visibilityTimeoutMs: q.visibilityTimeout,
      batchSize: q.batchSize,
      newBatchThreshold: q.newBatchThreshold ?? Math.floor(q.batchSize / 2),
      maxDequeueCount: q.maxDequeueCount,
      messageEncoding: q.messageEncoding,
    },
  };
}

export function readHostJson(path: string): HostConfig {
  return parseHostJson(JSON.parse(readFileSync(path, "utf8")));
}

const localSettingsSchema = z.object({
  IsEncrypted: z.boolean().optional(),
  Values: z.record(z.string(), z.string()).default({}),
  Host: z
    .object({
      LocalHttpPort: z.number().int().optional(),
      /** The local host's master key: the admin endpoints (`/admin/...`) require it in `x-functions-key`. */
      MasterKey: z.string().optional(),
    })
    .partial()
    .optional(),
});
export type LocalSettings = z.infer<typeof localSettingsSchema>;

export function parseLocalSettings(json: unknown): LocalSettings {
  const s = localSettingsSchema.parse(json);
  if (s.IsEncrypted) throw new Error("local.settings.json is encrypted; the local runtime reads plain settings only");
  return s;
}

/** Resolves `%NAME%` binding expressions from app settings, as the host does for queue names and schedules. */
export function resolveBindingExpression(value: string, env: Record<string, string | undefined>): string {
  return value.replace(/%([A-Za-z0-9_]+)%/g, (_, name: string) => {
    const v = env[name];
    if (v === undefined) throw new Error(`binding expression %${name}% refers to an app setting that is not set`);
    return v;
  });
}
