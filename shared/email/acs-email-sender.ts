/**
 * E-mail in Azure: Azure Communication Services Email, called with the app's managed identity.
 *
 * Idempotent per messageId: the send carries an `Operation-Id` header (the REST API's client-chosen id for the
 * long-running send operation, a UUID) derived from the messageId as a name-based UUID (RFC 9562 version 5). A retry
 * after a crash therefore names the same operation instead of starting a new one. If the service answers a repeated
 * id with 409, the sender follows the existing operation and reports its outcome.
 *
 * Errors are EmailSendError: the service's error code, the HTTP status and whether a retry may help. Service
 * messages can quote recipient addresses, so they are never copied into the error.
 * User engagement tracking (open/click tracking) is switched off for every message.
 */
import { createHash } from "node:crypto";
import type { TokenCredential } from "@azure/core-auth";
import { EmailClient, type EmailClientOptions, type EmailSendResult as AcsSendResult } from "@azure/communication-email";
import type { Settings } from "../config/settings";
import { statusOf } from "../stores/sdk-errors";
import { azureCredential } from "../identity";
import type { EmailMessage, EmailSendResult, EmailSender } from "./email-sender";
import { isEmailAddress, validateEmailMessage } from "./email-sender";

export { InvalidEmailMessageError } from "./email-sender";

/** Fixed namespace for operation ids derived from message ids (a random UUID chosen once for this product). */
export const OPERATION_ID_NAMESPACE = "4f1b8f2e-6a0c-4d3e-9b57-2c8e1a7d5f60";
const SEND_PATH = /\/emails:send$/;
const OPERATION_PATH = /\/emails\/operations\/([^/]+)$/;

type PipelinePolicy = NonNullable<EmailClientOptions["additionalPolicies"]>[number]["policy"];

export class EmailSendError extends Error {
  constructor(
    readonly messageId: string,
    /** The service's error code (e.g. "EmailDropped"), or the operation status, "Timeout", "NetworkError". */
    readonly code: string,
    /** True when sending the same message again may succeed (throttling, outages, timeouts). */
    readonly retryable: boolean,
    readonly statusCode?: number,
    readonly operationId?: string,
    /**
     * The service's `Retry-After` (RFC 9110 §10.2.3) on a throttled (429) or unavailable (503) answer: a number of
     * seconds, or the HTTP date after which to retry. The caller resolves it against its own clock.
     */
    readonly retryAfter?: RetryAfter,
  ) {
    super(`e-mail ${messageId} was not sent: ${code}${statusCode ? ` (HTTP ${statusCode})` : ""}`);
    this.name = "EmailSendError";
  }
}

export interface AcsEmailSenderOptions {
  /**
   * Passed to the EmailClient: retry options, or `tlsOptions: { ca }` to trust a local test endpoint's certificate
   * (the client sends bearer tokens over https only, even with `allowInsecureConnection`).
   */
  readonly clientOptions?: EmailClientOptions;
  /** Delay between status polls when the service gives no Retry-After. Default 2000 ms. */
  readonly pollIntervalMs?: number;
  /** Give up waiting for the operation after this long (a retry resumes the same operation). Default 120 000 ms. */
  readonly timeoutMs?: number;
}

type AcsSettings = Extract<Settings["email"], { provider: "acs" }>;

/** RFC 9562 version 5 (SHA-1, name-based) UUID of `name` in `namespace`. */
export function nameBasedUuid(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  if (ns.length !== 16) throw new RangeError("namespace must be a UUID");
  const bytes = createHash("sha1").update(ns).update(name, "utf8").digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function operationIdFor(messageId: string): string {
  return nameBasedUuid(OPERATION_ID_NAMESPACE, messageId);
}


/** When the service asked to be called again: after a number of seconds, or at an instant (RFC 9110 §10.2.3). */
export type RetryAfter = { readonly seconds: number } | { readonly at: Date };

/**
 * Reads a Retry-After value: delta-seconds (a non-negative integer) or an HTTP-date (IMF-fixdate and the obsolete
 * forms Date.parse reads). Also the millisecond variants Azure services send (`retry-after-ms`,
 * `x-ms-retry-after-ms`), which win when present. Undefined when absent or unreadable.
 */
export function parseRetryAfter(headers: { get(name: string): string | undefined | null }): RetryAfter | undefined {
  for (const name of ["retry-after-ms", "x-ms-retry-after-ms"]) {
    const ms = headers.get(name)?.trim();
    if (ms && /^\d{1,10}$/.test(ms)) return { seconds: Number(ms) / 1000 };
  }
  const raw = headers.get("retry-after")?.trim();
  if (!raw) return undefined;
  if (/^\d{1,10}$/.test(raw)) return { seconds: Number(raw) };
  const at = Date.parse(raw);
  return Number.isNaN(at) || !/[A-Za-z]/.test(raw) ? undefined : { at: new Date(at) };
}

/** Service codes are identifiers; anything else is not passed on. */
function safeCode(code: unknown, fallback: string): string {
  return typeof code === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : fallback;
}

function isRetryableStatus(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
}

function isAbort(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === "AbortError";
}

export class AcsEmailSender implements EmailSender {
  /** Builds the sender from settings with the app's user-assigned managed identity. */
  static fromSettings(settings: AcsSettings, options: AcsEmailSenderOptions = {}): AcsEmailSender {
    const credential = azureCredential(settings.clientId);
    return new AcsEmailSender(settings.endpoint, credential, settings.sender, options);
  }

  private readonly client: EmailClient;
  private readonly pollIntervalMs: number;
  private readonly timeoutMs: number;
  /** operation id → error code of its last status poll; the SDK's poller only offers a prose message. */
  private readonly errorCodes = new Map<string, string>();

  constructor(
    endpoint: string,
    credential: TokenCredential,
    private readonly senderAddress: string,
    options: AcsEmailSenderOptions = {},
  ) {
    if (!isEmailAddress(senderAddress)) throw new RangeError("AcsEmailSender: the sender must be an e-mail address");
    const clientOptions = options.clientOptions ?? {};
    this.client = new EmailClient(endpoint, credential, {
      ...clientOptions,
      additionalPolicies: [...(clientOptions.additionalPolicies ?? []), { policy: this.operationPolicy(), position: "perRetry" }],
    });
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.timeoutMs = options.timeoutMs ?? 120_000;
  }

  async send(message: EmailMessage): Promise<EmailSendResult> {
    validateEmailMessage(message);
    const { messageId } = message;
    const operationId = operationIdFor(messageId);
    const abortSignal = AbortSignal.timeout(this.timeoutMs);
    let poller: Awaited<ReturnType<EmailClient["beginSend"]>> | undefined;
    let result: AcsSendResult;
    try {
      poller = await this.client.beginSend(
        {
          senderAddress: this.senderAddress,
          content: { subject: message.subject, plainText: message.text, ...(message.html !== undefined ? { html: message.html } : {}) },
          recipients: { to: message.to.map((address) => ({ address })) },
          disableUserEngagementTracking: true,
        },
        { operationId, updateIntervalInMs: this.pollIntervalMs, abortSignal },
      );
      result = await poller.pollUntilDone({ abortSignal });
    } catch (err) {
      const state = poller?.getOperationState().status;
      const ended = state === "failed" || state === "canceled";
      throw this.toSendError(messageId, operationId, err, ended ? state : undefined);
    } finally {
      this.errorCodes.delete(operationId);
    }
    if (result.status !== "Succeeded") {
      throw new EmailSendError(messageId, safeCode(result.error?.code, safeCode(result.status, "Failed")), false, undefined, operationId);
    }
    return { providerMessageId: result.id || operationId };
  }

  /** Maps whatever the SDK threw to an EmailSendError. The original error is dropped: it can quote addresses. */
  private toSendError(messageId: string, operationId: string, err: unknown, ended: "failed" | "canceled" | undefined): EmailSendError {
    if (err instanceof EmailSendError) return err;
    if (ended) {
      // The operation itself ended unsuccessfully; a retry with the same id would find the same operation.
      const code = this.errorCodes.get(operationId) ?? (ended === "canceled" ? "Canceled" : "Failed");
      return new EmailSendError(messageId, code, false, undefined, operationId);
    }
    if (isAbort(err)) return new EmailSendError(messageId, "Timeout", true, undefined, operationId);
    const status = statusOf(err);
    const code = safeCode((err as { code?: unknown } | null)?.code, status === undefined ? "NetworkError" : "RequestFailed");
    const headers = (err as { response?: { headers?: { get(name: string): string | undefined } } } | null)?.response?.headers;
    const retryAfter = headers && typeof headers.get === "function" ? parseRetryAfter(headers) : undefined;
    return new EmailSendError(messageId, code, isRetryableStatus(status), status, operationId, retryAfter);
  }

  /**
   * Sits next to the transport (after retries and auth), so it sees raw responses:
   * - a 409 to a send that named its Operation-Id means the service already has that operation (an earlier attempt
   *   of the same message): the response is turned into "accepted, poll here", so the SDK follows the existing
   *   operation instead of failing, and nothing is sent twice;
   * - status polls are read for the error code of a failed operation.
   */
  private operationPolicy(): PipelinePolicy {
    return {
      name: "safedataEmailOperationPolicy",
      sendRequest: async (request, next) => {
        const response = await next(request);
        const url = new URL(request.url);
        const operationId = request.headers.get("operation-id");
        if (request.method === "POST" && SEND_PATH.test(url.pathname) && response.status === 409 && operationId) {
          url.pathname = url.pathname.replace(SEND_PATH, `/emails/operations/${encodeURIComponent(operationId)}`);
          response.status = 202;
          response.headers.set("operation-location", url.toString());
          response.bodyAsText = JSON.stringify({ id: operationId, status: "Running" });
          return response;
        }
        const polled = OPERATION_PATH.exec(url.pathname);
        if (request.method === "GET" && polled && response.status === 200 && response.bodyAsText) {
          try {
            const body = JSON.parse(response.bodyAsText) as { error?: { code?: unknown } } | null;
            const code = body?.error?.code;
            if (code !== undefined) this.errorCodes.set(decodeURIComponent(polled[1]!).toLowerCase(), safeCode(code, "Failed"));
          } catch {
            // not JSON: the SDK reports it
          }
        }
        return response;
      },
    };
  }
}
