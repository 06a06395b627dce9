/**
 * Signed webhooks, the rules: which events exist, where a tenant's endpoint may point, how long a rotated secret
 * keeps verifying, and when a failed delivery is tried again. The wire format is Standard Webhooks
 * (https://www.standardwebhooks.com/, spec 1.0: `webhook-id`, `webhook-timestamp`, `webhook-signature` =
 * `v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, several space-separated while secrets overlap).
 */
import { publicWebhookProblem } from "./tenant";

/** Event types a tenant's endpoint can receive. Payloads carry ids and event types, never personal data. */
export const WEBHOOK_EVENT_TYPES = [
  "webhook.test",
  /** A breach affecting the tenant was registered: `data` names the breach id and the tenant's version; read it with GET /api/v1/breaches/{id}. */
  "breach.notified",
  /** A new version of the tenant's part of a breach (phased information, GDPR Art. 33(4)), or its withdrawal. */
  "breach.updated",
  /**
   * The estimated completion of the notices to the persons of the tenant's part breaks BREACH_NOTICE_MAX_HOURS
   * (GDPR Art. 34(1) "without undue delay"; consider a public communication, Art. 34(3)(c)): `data` names the breach
   * id, the part's version, the counts pending and the estimate and deadline (ISO 8601). Sent once per version.
   */
  "breach.persons-delayed",
  /** A person withdrew consent through a withdrawal link: `data` names the subject id, the purpose (or `all`), the link and the events. */
  "consent.withdrawn",
  /**
   * Data-subject requests: every change of state (`resumed`: out of needs-attention by a retry), the extension of the
   * deadline, and the overdue mark. `data` names the request id, its type, its status and when; never the person.
   */
  "subject-request.created",
  "subject-request.verified",
  "subject-request.verification-failed",
  "subject-request.in-progress",
  "subject-request.completed",
  "subject-request.rejected",
  "subject-request.cancelled",
  "subject-request.closed-unverified",
  "subject-request.needs-attention",
  "subject-request.resumed",
  "subject-request.extended",
  "subject-request.overdue",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** After a rotation the old secret still signs (beside the new one) for this long, so receivers can switch over. */
export const SECRET_OVERLAP_MS = 24 * 3_600_000;

/** A delivery is tried for this long after the event, then marked failed. */
export const DELIVERY_WINDOW_MS = 24 * 3_600_000;
/** The first retry waits this long; each next one twice as long, up to MAX_RETRY_DELAY_MS. */
export const FIRST_RETRY_DELAY_MS = 30_000;
export const MAX_RETRY_DELAY_MS = 4 * 3_600_000;
/** A receiver that has not answered within this long counts as a failed attempt. */
export const DELIVERY_TIMEOUT_MS = 10_000;

/**
 * When to try again after `attempts` failed attempts of an event created at `createdAt`: exponential back-off
 * (30 s, 1 min, 2 min, ... capped at 4 h), or null once the next attempt would fall outside the 24-hour window
 * (the delivery is then failed, and shown so).
 */
export function nextAttemptAt(createdAt: Date, attempts: number, lastAttemptAt: Date): Date | null {
  const delay = Math.min(FIRST_RETRY_DELAY_MS * 2 ** Math.max(0, attempts - 1), MAX_RETRY_DELAY_MS);
  const next = lastAttemptAt.getTime() + delay;
  return next > createdAt.getTime() + DELIVERY_WINDOW_MS ? null : new Date(next);
}

/** A 2xx answer delivers; anything else (another status, a timeout, a refused connection) is tried again. */
export function isDelivered(status: number | null): boolean {
  return status !== null && status >= 200 && status < 300;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * What is wrong with `value` as a tenant's webhook URL, or undefined: an https URL on a public host name (no IP
 * literal, no local name, no credentials: `publicWebhookProblem`), at most 2048 characters, without a fragment (not
 * even an empty one: a `#` is never sent to a server, RFC 3986 §3.5, so the URL would not say where deliveries go).
 * With `allowLoopback` (local trials only), http or https on 127.0.0.1, ::1 or localhost is accepted too.
 * The one rule for every route that sets an endpoint: an operator's `webhookUrl` at tenant creation and the tenant's
 * own PUT /v1/webhook.
 */
export function webhookUrlProblem(value: string, opts: { allowLoopback: boolean }): string | undefined {
  if (value.length > 2048) return "must be at most 2048 characters";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be a URL";
  }
  if (url.hash !== "" || value.includes("#")) return "must not have a fragment (#...)";
  if (opts.allowLoopback && LOOPBACK_HOSTS.has(url.hostname.toLowerCase()) && (url.protocol === "http:" || url.protocol === "https:")) {
    return url.username !== "" || url.password !== "" ? "must not contain a user name or password" : undefined;
  }
  if (url.protocol !== "https:") return "must be an https:// URL";
  return publicWebhookProblem(value);
}

/**
 * The spelling of an accepted webhook URL that is stored and shown: the WHATWG URL serialisation (scheme and host in
 * lower case, an international name in its ASCII form, the default port dropped), so equal URLs are stored equally.
 */
export function canonicalWebhookUrl(value: string): string {
  return new URL(value).href;
}

/** The secrets that sign a delivery at `now`: the current one, and a retired one while its overlap lasts. */
export function signingSecrets<T extends { retiresAt: string | null }>(secrets: readonly T[], now: Date): T[] {
  return secrets.filter((s) => s.retiresAt === null || Date.parse(s.retiresAt) > now.getTime());
}
