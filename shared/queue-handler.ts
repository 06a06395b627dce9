/**
 * Queue-triggered functions share this wrapper: the message is validated with its zod schema, the handler gets
 * services and a structured log, and failures are logged without the message content.
 *
 * A message that fails its schema (forged, damaged, not JSON) can never succeed, so it is not retried: on its first
 * delivery it is copied to `<queue>-poison` as it arrived (shared/stores/storage.ts QueueSender.sendToPoison, base64
 * like the host's own poison copies), logged once as `queue.invalid-message` (queue, message id, dequeueCount and the
 * paths and codes of the failed fields, never a value), and the invocation completes, so the host deletes it from its
 * queue. If the copy cannot be written the invocation throws and the host retries it as before (after
 * maxDequeueCount deliveries the host moves it itself): nothing is lost. A host that dies between the copy and the
 * delete leaves a second copy on the next delivery, never none.
 *
 * "As it arrived": the Node programming model hands the function the message JSON-parsed when it parses, else as
 * the string; a parsed one is serialised again (same fields and order, not the same whitespace), a string is copied
 * as it is. (A message that is a JSON string literal arrives unquoted and is copied unquoted.)
 *
 * Other failures are thrown so the host retries them. An integrity failure (tampered ciphertext) is logged as
 * `integrity.failure` with the record's ids, like the HTTP endpoint logs it. Messages whose ids name records that do
 * not exist pass the schema and are the use cases' to skip quietly (each re-reads the stored state first).
 */
import type { InvocationContext } from "@azure/functions";
import type { z } from "zod";
import { IntegrityError } from "./crypto";
import { errorFields, invocationLog, type Log } from "./observability";
import { services as getServices, type Services } from "./services";
import { integrityLogFields } from "./usecases/integrity";

export class InvalidQueueMessageError extends Error {
  constructor(queue: string, issues: string) {
    super(`message on ${queue} does not match its schema: ${issues}`);
    this.name = "InvalidQueueMessageError";
  }
}

/** A path segment that is an identifier (a schema's field name) or an index; anything else could be content. */
const SAFE_SEGMENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * The failed fields as `path: code; ...` (zod issue codes, e.g. `tenantId: invalid_format`), without any value. The
 * message schemas are objects with fixed fields, so paths are their field names and array indexes; a segment of any
 * other shape (which only a key taken from the message could produce) is written `?`.
 */
export function issueSummary(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map((p) => (typeof p === "number" || (typeof p === "string" && SAFE_SEGMENT.test(p)) ? String(p) : "?")).join(".");
      return `${path || "(root)"}: ${i.code}`;
    })
    .join("; ");
}

/**
 * The message's text as the function received it: a string as it is, anything the programming model parsed from
 * JSON serialised again, bytes read as UTF-8.
 */
export function receivedText(message: unknown): string {
  if (typeof message === "string") return message;
  if (Buffer.isBuffer(message)) return message.toString("utf8");
  return JSON.stringify(message) ?? String(message);
}

function metadataString(context: InvocationContext, key: string): string | undefined {
  const v = context.triggerMetadata?.[key];
  return typeof v === "string" || typeof v === "number" ? String(v) : undefined;
}

export function queueHandler<T>(
  queue: string,
  schema: z.ZodType<T>,
  handle: (message: T, ctx: { services: Services; log: Log; dequeueCount: number; context: InvocationContext }) => Promise<void>,
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const log = invocationLog(context);
    const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1);
    const parsed = schema.safeParse(message);
    if (!parsed.success) {
      await toPoison(queue, message, issueSummary(parsed.error), { log, dequeueCount, messageId: metadataString(context, "id") });
      return;
    }
    try {
      await handle(parsed.data, { services: getServices(), log, dequeueCount, context });
    } catch (err) {
      if (err instanceof IntegrityError) {
        // Tampered or damaged ciphertext: logged as the HTTP endpoint logs it, with the record's ids (never content).
        log.error("integrity.failure", { queue, dequeueCount, ...integrityLogFields(err) });
      } else {
        log.error("queue.handler-failed", { queue, dequeueCount, ...errorFields(err) });
      }
      throw err;
    }
  };
}

/**
 * Copies a message that failed its schema to `<queue>-poison` and logs it once; throws (so the host keeps the message
 * and retries) when the copy cannot be written.
 */
async function toPoison(queue: string, message: unknown, issues: string, at: { log: Log; dequeueCount: number; messageId: string | undefined }): Promise<void> {
  const fields = { queue, messageId: at.messageId, dequeueCount: at.dequeueCount, issues };
  let moved: { poisonQueue: string; messageId: string };
  try {
    moved = await getServices().queues.sendToPoison(queue, receivedText(message));
  } catch (err) {
    // Not completed: the host makes the message visible again and retries it, so it is never lost.
    at.log.error("queue.invalid-message", { ...fields, moveFailed: true, ...errorFields(err) });
    throw new InvalidQueueMessageError(queue, issues);
  }
  at.log.error("queue.invalid-message", { ...fields, movedTo: moved.poisonQueue, poisonMessageId: moved.messageId });
}
