/**
 * Queue-triggered functions share this wrapper: the message is validated with its zod schema, the handler gets
 * services and a structured log, and failures are logged without the message content. A message that fails its
 * schema can never succeed: it is thrown so the host retries it and then moves it to the poison queue, where it
 * stays for inspection instead of vanishing. An integrity failure (tampered ciphertext) is logged as
 * `integrity.failure` with the record's ids, like the HTTP endpoint logs it.
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
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.code}`).join("; ");
      log.error("queue.invalid-message", { queue, issues, dequeueCount });
      throw new InvalidQueueMessageError(queue, issues);
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
