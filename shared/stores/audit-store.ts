/**
 * The audit log in Cosmos. One partition per tenant; entry ids are the zero-padded sequence number, so
 * "create entry n+1" is a compare-and-set: two writers racing for the same position get one 201 and one 409,
 * and the loser moves on to the next free position. The chain cannot fork. A head document caches the tip
 * (updated with etag checks) so appends do not scan; if it lags after a crash, appends walk forward from it.
 */
import type { Container } from "@azure/cosmos";
import { z } from "zod";
import {
  ChainVerifier,
  GENESIS_HASH,
  auditEntrySchema,
  sealEntry,
  type AuditAction,
  type AuditEntry,
  type ChainBreak,
} from "../domain/audit-chain";
import type { Clock } from "../domain/clock";
import { isConflict, isPreconditionFailed, queryPage, readItem, type Page } from "./cosmos";

const HEAD_ID = "head";

const headSchema = z.object({
  id: z.literal(HEAD_ID),
  tenantId: z.string(),
  type: z.literal("audit-head"),
  seq: z.number().int().nonnegative(),
  hash: z.string(),
});

const storedEntrySchema = auditEntrySchema.extend({ id: z.string(), type: z.literal("audit-entry") });

export function entryId(seq: number): string {
  return "e-" + String(seq).padStart(12, "0");
}

export interface AuditEvent {
  tenantId: string;
  actor: string;
  action: AuditAction;
  target?: { type: string; id: string };
  requestId?: string;
  details?: AuditEntry["details"];
}

export interface VerifyResult {
  valid: boolean;
  entriesChecked: number;
  lastSeq: number;
  lastHash: string;
  firstBroken?: ChainBreak & { entryId: string };
}

export class AuditStore {
  constructor(
    private readonly container: Container,
    private readonly clock: Clock,
    private readonly maxAttempts = 50,
  ) {}

  async append(event: AuditEvent): Promise<AuditEntry> {
    const head = await readItem(this.container, headSchema, HEAD_ID, event.tenantId);
    let seq = head?.seq ?? 0;
    let prevHash = head?.hash ?? GENESIS_HASH;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const entry = sealEntry({
        tenantId: event.tenantId,
        seq: seq + 1,
        at: this.clock.now().toISOString(),
        actor: event.actor,
        action: event.action,
        target: event.target ?? null,
        requestId: event.requestId ?? null,
        details: event.details ?? {},
        prevHash,
      });
      try {
        await this.container.items.create({ ...entry, id: entryId(entry.seq), type: "audit-entry" });
      } catch (err) {
        if (!isConflict(err)) throw err;
        // Someone else took this position: step onto their entry and try the next one.
        const taken = await readItem(this.container, storedEntrySchema, entryId(seq + 1), event.tenantId);
        if (taken) {
          seq = taken.seq;
          prevHash = taken.hash;
        }
        continue;
      }
      await this.advanceHead(event.tenantId, entry, attempt === 0 ? head : undefined);
      return entry;
    }
    throw new Error(`audit append for tenant ${event.tenantId} lost the race ${this.maxAttempts} times`);
  }

  /**
   * Moves the head forward to `entry` unless someone already moved it further. Best effort: appends never depend on
   * it. `known` is the head as read before an uncontended append, which saves reading it again.
   */
  private async advanceHead(tenantId: string, entry: AuditEntry, known?: z.infer<typeof headSchema> & { _etag: string }): Promise<void> {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const head = attempt === 0 && known ? known : await readItem(this.container, headSchema, HEAD_ID, tenantId);
      if (head && head.seq >= entry.seq) return;
      const doc = { id: HEAD_ID, tenantId, type: "audit-head" as const, seq: entry.seq, hash: entry.hash };
      try {
        if (head) {
          await this.container.item(HEAD_ID, tenantId).replace(doc, { accessCondition: { type: "IfMatch", condition: head._etag } });
        } else {
          await this.container.items.create(doc);
        }
        return;
      } catch (err) {
        if (isConflict(err) || isPreconditionFailed(err)) continue;
        throw err;
      }
    }
  }

  async list(tenantId: string, opts: { from?: Date; to?: Date; limit: number; cursor?: string }): Promise<Page<AuditEntry>> {
    const filters = ["c.tenantId = @tenantId", "c.type = 'audit-entry'"];
    const parameters: Array<{ name: string; value: string }> = [{ name: "@tenantId", value: tenantId }];
    if (opts.from) {
      filters.push("c.at >= @from");
      parameters.push({ name: "@from", value: opts.from.toISOString() });
    }
    if (opts.to) {
      filters.push("c.at < @to");
      parameters.push({ name: "@to", value: opts.to.toISOString() });
    }
    const page = await queryPage(
      this.container,
      storedEntrySchema,
      { query: `SELECT * FROM c WHERE ${filters.join(" AND ")} ORDER BY c.seq ASC`, parameters },
      tenantId,
      opts.limit,
      opts.cursor,
    );
    return { items: page.items.map(stripStored), cursor: page.cursor };
  }

  /** The sequence number of an existing entry for this action on this target, if any (makes retried steps append once). */
  async findByTarget(tenantId: string, action: AuditAction, targetId: string): Promise<number | undefined> {
    const { resources } = await this.container.items
      .query<{ seq: number }>({
        query:
          "SELECT TOP 1 c.seq FROM c WHERE c.tenantId = @tenantId AND c.type = 'audit-entry' AND c.action = @action AND c.target.id = @target",
        parameters: [
          { name: "@tenantId", value: tenantId },
          { name: "@action", value: action },
          { name: "@target", value: targetId },
        ],
      })
      .fetchAll();
    return resources[0]?.seq;
  }

  /** Walks the whole chain in order and reports the first broken link. */
  async verify(tenantId: string, pageSize = 500): Promise<VerifyResult> {
    const verifier = new ChainVerifier(tenantId);
    const head = await readItem(this.container, headSchema, HEAD_ID, tenantId);
    const iterator = this.container.items.query<Record<string, unknown>>(
      {
        query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'audit-entry' ORDER BY c.seq ASC",
        parameters: [{ name: "@tenantId", value: tenantId }],
      },
      { partitionKey: tenantId, maxItemCount: pageSize },
    );
    let broken: ChainBreak | undefined;
    let brokenId: string | undefined;
    outer: while (iterator.hasMoreResults()) {
      const { resources } = await iterator.fetchNext();
      for (const doc of resources) {
        broken = verifier.push(doc);
        if (broken) {
          brokenId = typeof doc.id === "string" ? doc.id : entryId(broken.seq);
          break outer;
        }
      }
    }
    broken ??= verifier.finish(head?.seq);
    const r = verifier.result;
    return {
      valid: broken === undefined,
      entriesChecked: r.entriesChecked,
      lastSeq: r.lastSeq,
      lastHash: r.lastHash,
      ...(broken ? { firstBroken: { ...broken, entryId: brokenId ?? entryId(broken.seq) } } : {}),
    };
  }
}

function stripStored(doc: z.infer<typeof storedEntrySchema>): AuditEntry {
  const { id: _id, type: _type, ...entry } = doc;
  return entry;
}
