/**
 * Idempotency-Key support for POSTs: the first request with a key stores its result; a retry with the same key
 * and the same request gets that result again instead of a second upload, tenant or breach. Records expire after
 * 24 hours (Cosmos TTL in Azure; the local Cosmos server ignores TTL, which only means they linger locally).
 *
 * Nothing in a record can be linked to what the caller sent without the scope's secret (see shared/http/scope-keys.ts):
 * - `id` = HMAC-SHA256(secret, "record-id" ‖ 0x00 ‖ key), hex: the caller's key is not stored;
 * - `requestHash` = HMAC-SHA256(secret, "request" ‖ 0x00 ‖ method ‖ LF ‖ route ‖ LF ‖ body), hex: equal requests of two
 *   tenants give different values, and a guessed body cannot be checked against it;
 * - `response` (what a replay returns, which can hold what the caller sent) is an encrypted field (field-crypto.ts)
 *   under HMAC-SHA256(secret, "response-key"), bound to the scope and the record id.
 */
import { createHmac } from "node:crypto";
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import { decryptField, encryptField, fieldAssociatedData } from "../crypto";
import type { Clock } from "../domain/clock";
import { IDEMPOTENCY_RECORD_LIFE_MS } from "../domain/retention";
import { AppError } from "../errors";
import { crossPartition, isConflict, isNotFound, isPreconditionFailed, parseStored, readItem } from "./cosmos";

/** Cosmos TTL, a backstop only: the retention sweep deletes the records (see RETENTION_CLASSES). */
export const IDEMPOTENCY_TTL_SECONDS = IDEMPOTENCY_RECORD_LIFE_MS / 1000;
/**
 * A pending record older than this belongs to a request that crashed; a retry may take it over. Longer than any
 * request can run in Azure (230 s to the first byte), so a slow first request is never run twice.
 */
const ABANDONED_AFTER_MS = 4 * 60_000;

export const storedResponseSchema = z.object({
  status: z.number().int(),
  headers: z.record(z.string(), z.string()),
  body: z.unknown(),
});
export type StoredResponse = z.infer<typeof storedResponseSchema>;

const HEX_SHA256 = /^[0-9a-f]{64}$/;

const recordSchema = z.object({
  id: z.string().regex(HEX_SHA256),
  tenantId: z.string(),
  type: z.literal("idempotency"),
  state: z.enum(["pending", "done"]),
  requestHash: z.string().regex(HEX_SHA256),
  createdAt: z.iso.datetime(),
  /** The stored answer, encrypted (see the module comment); null while the first request runs. */
  response: z.string().nullable(),
});
type IdempotencyRecord = z.infer<typeof recordSchema>;

export const idempotencyKeySchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, "must be 1-255 visible ASCII characters");

/** What identifies a request for idempotency: its method, its route with parameters, and its body as sent. */
export interface IdempotentRequest {
  readonly method: string;
  readonly route: string;
  readonly body: string;
}

/** 32 bytes: HMAC-SHA256 under the scope's secret of a label, a NUL and the parts joined by LF. */
function keyed(secret: Buffer, label: string, ...parts: string[]): Buffer {
  return createHmac("sha256", secret).update(`${label}\0`).update(parts.join("\n")).digest();
}

const RESPONSE_FIELD = "idempotency.response";

export type Reservation =
  | { kind: "new"; complete(response: StoredResponse): Promise<void>; abandon(): Promise<void> }
  | { kind: "replay"; response: StoredResponse };

export class IdempotencyStore {
  constructor(
    private readonly container: Container,
    private readonly clock: Clock,
  ) {}

  /**
   * `scope` is the tenant id, or "_admin" for operator calls, so keys never collide across callers; `secret` is the
   * scope's own 32-byte key (shared/http/scope-keys.ts). Throws IntegrityError when a stored answer fails to decrypt.
   */
  async reserve(scope: string, secret: Buffer, key: string, request: IdempotentRequest): Promise<Reservation> {
    const id = keyed(secret, "record-id", key).toString("hex");
    const requestHash = keyed(secret, "request", request.method, request.route, request.body).toString("hex");
    const sealing = new ResponseSealing(keyed(secret, "response-key"), scope, id);
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await readItem(this.container, recordSchema, id, scope);
      if (existing) {
        if (existing.requestHash !== requestHash) {
          throw new AppError(
            "idempotency-key-reused",
            "this Idempotency-Key was already used with a different request; use a new key for a new request",
          );
        }
        if (existing.state === "done" && existing.response) return { kind: "replay", response: sealing.open(existing.response) };
        const age = this.clock.now().getTime() - Date.parse(existing.createdAt);
        if (age < ABANDONED_AFTER_MS) {
          throw new AppError("idempotency-in-progress", "a request with this Idempotency-Key is still in progress; retry shortly", { retryAfterSeconds: 1 });
        }
        // Abandoned by a crashed request: take it over, unless another retry does so first.
        try {
          await this.container.item(id, scope).replace(this.pending(id, scope, requestHash), {
            accessCondition: { type: "IfMatch", condition: existing._etag },
          });
          return this.reservation(id, scope, requestHash, sealing);
        } catch (err) {
          if (isPreconditionFailed(err)) continue;
          throw err;
        }
      }
      try {
        await this.container.items.create(this.pending(id, scope, requestHash));
        return this.reservation(id, scope, requestHash, sealing);
      } catch (err) {
        if (isConflict(err)) continue;
        throw err;
      }
    }
    throw new AppError("idempotency-in-progress", "concurrent requests with this Idempotency-Key; retry shortly", { retryAfterSeconds: 1 });
  }

  /**
   * Across all tenants (and the operators' scope), for the retention sweep only: records created at or before
   * `cutoff`, oldest first, at most `limit`.
   */
  findCreatedBeforeAcrossTenants(cutoff: Date, limit: number): Promise<Array<{ tenantId: string; id: string; createdAt: string }>> {
    return crossPartition(this.container, z.object({ tenantId: z.string(), id: z.string(), createdAt: z.iso.datetime() }), {
      query: `SELECT TOP ${Math.floor(limit)} c.tenantId, c.id, c.createdAt FROM c WHERE c.type = 'idempotency' AND c.createdAt <= @cutoff ORDER BY c.createdAt ASC`,
      parameters: [{ name: "@cutoff", value: cutoff.toISOString() }],
    });
  }

  /**
   * For the retention sweep: deletes one record if it was created at or before `cutoff`, as read now (a record taken
   * over or written again since is younger and kept). False when it is gone, younger, or changed meanwhile.
   */
  async deleteIfCreatedBefore(scope: string, id: string, cutoff: Date): Promise<boolean> {
    const existing = await readItem(this.container, recordSchema, id, scope);
    if (!existing || Date.parse(existing.createdAt) > cutoff.getTime()) return false;
    try {
      await this.container.item(id, scope).delete({ accessCondition: { type: "IfMatch", condition: existing._etag } });
      return true;
    } catch (err) {
      if (isNotFound(err) || isPreconditionFailed(err)) return false;
      throw err;
    }
  }

  /** Deletes one record; false when it was already gone. */
  async delete(scope: string, id: string): Promise<boolean> {
    try {
      await this.container.item(id, scope).delete();
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private pending(id: string, scope: string, requestHash: string): IdempotencyRecord & { ttl: number } {
    return {
      id,
      tenantId: scope,
      type: "idempotency",
      state: "pending",
      requestHash,
      createdAt: this.clock.now().toISOString(),
      response: null,
      ttl: IDEMPOTENCY_TTL_SECONDS,
    };
  }

  private reservation(id: string, scope: string, requestHash: string, sealing: ResponseSealing): Reservation {
    return {
      kind: "new",
      complete: async (response) => {
        await this.container.items.upsert({ ...this.pending(id, scope, requestHash), state: "done", response: sealing.seal(response) });
      },
      abandon: async () => {
        try {
          await this.container.item(id, scope).delete();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      },
    };
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
  }
}

/** Encrypts and decrypts one record's stored answer, bound to its scope and record id. */
class ResponseSealing {
  constructor(
    private readonly key: Buffer,
    private readonly scope: string,
    private readonly id: string,
  ) {}

  private get associatedData(): Buffer {
    return fieldAssociatedData(this.scope, this.id, RESPONSE_FIELD);
  }

  seal(response: StoredResponse): string {
    return encryptField(this.key, JSON.stringify(storedResponseSchema.parse(response)), this.associatedData);
  }

  open(sealed: string): StoredResponse {
    const json = decryptField(this.key, sealed, this.associatedData);
    return parseStored(storedResponseSchema, "idempotency", JSON.parse(json));
  }
}
