/**
 * The audit log in Cosmos. One partition per tenant; entry ids are the zero-padded sequence number, so
 * "create entry n+1" is a compare-and-set: two writers racing for the same position get one 201 and one 409,
 * and the loser moves on to the next free position. The chain cannot fork. A head document caches the tip
 * (updated with etag checks) so appends do not scan; if it lags after a crash, appends walk forward from it.
 */
import { createHash } from "node:crypto";
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
import { isConflict, isPreconditionFailed, queryAll, queryPage, readItem, type Page } from "./cosmos";

const HEAD_ID = "head";

const headSchema = z.object({
  id: z.literal(HEAD_ID),
  tenantId: z.string(),
  type: z.literal("audit-head"),
  seq: z.number().int().nonnegative(),
  hash: z.string(),
});

const storedEntrySchema = auditEntrySchema.extend({ id: z.string(), type: z.literal("audit-entry") });

/**
 * Marks that the entry for a once-key is written (seq, and its hash on markers written since it was kept) or being
 * written (seq null, claimed at a time).
 */
const onceSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  type: z.literal("audit-once"),
  seq: z.number().int().nullable(),
  hash: z.string().optional(),
  claimedAt: z.iso.datetime(),
});

type StoredHead = z.infer<typeof headSchema> & { _etag: string };

/** How long a claim to write a once-entry is honoured before another writer may take it over (a crashed writer). */
const ONCE_CLAIM_MS = 2 * 60_000;

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
  /** No broken link in the entries checked (and, when complete, none missing at the end). */
  valid: boolean;
  /** The check reached the end of the chain. Otherwise continue with `next`. */
  complete: boolean;
  fromSeq: number;
  entriesChecked: number;
  lastSeq: number;
  lastHash: string;
  firstBroken?: ChainBreak & { entryId: string };
  next?: { fromSeq: number; prevHash: string };
}

/** One call reads at most this many entries (bounds what one request costs the shared database; longer chains are verified in parts). */
export const MAX_VERIFY_ENTRIES = 10_000;

export interface VerifyOptions {
  /** Start at this entry, with the hash of the one before it (default: the genesis). */
  from?: { seq: number; prevHash: string };
  maxEntries?: number;
  pageSize?: number;
  /** Called with each entry's sequence number and hash once it is verified (its link and its own hash). */
  onVerified?: (seq: number, hash: string) => void;
}

export class AuditStore {
  constructor(
    private readonly container: Container,
    private readonly clock: Clock,
    private readonly maxAttempts = 50,
  ) {}

  /** Per tenant, the last append of this instance queued or under way (see append). */
  private readonly appending = new Map<string, Promise<unknown>>();
  /**
   * Per tenant, the newest entry this instance wrote while appends were queued behind each other: where the next
   * queued append starts (a guess a conflict corrects). Forgotten once the queue is empty, so an append that waited
   * for nothing starts from the head document, as it always did.
   */
  private readonly tips = new Map<string, { seq: number; hash: string }>();
  /** Per tenant, the entry the head document is being moved to, and the loop moving it (see advanceHeadTo). */
  private readonly headMoves = new Map<string, { target: AuditEntry; running: Promise<void> }>();

  /**
   * Appends `event` at the next position of its tenant's chain. A chain takes one entry per position, so concurrent
   * writers race for each; within this instance a tenant's appends are therefore written one at a time, in call order
   * (50 requests of one tenant at once would otherwise each lose up to 49 races, and the unluckiest would give up),
   * each queued one starting after the entry this instance wrote last, so the serial part is one write. Only other instances
   * race for a position: the loser, after a short random pause that grows with its losses (so instances that keep
   * colliding spread out), tries the position after the chain's newest entry. The head document is then moved
   * forward, by one loop per tenant that takes the newest entry written meanwhile (many appends, few head writes);
   * the returned promise settles once the head has reached this entry.
   */
  append(event: AuditEvent): Promise<AuditEntry> {
    const queued = this.appending.get(event.tenantId);
    const before = queued ?? Promise.resolve();
    const written = before.then(
      () => this.writeEntry(event, queued !== undefined),
      () => this.writeEntry(event, queued !== undefined),
    );
    const settled = written.catch(() => undefined);
    this.appending.set(event.tenantId, settled);
    void settled.then(() => {
      if (this.appending.get(event.tenantId) !== settled) return;
      this.appending.delete(event.tenantId);
      this.tips.delete(event.tenantId);
    });
    return written.then(async ({ entry, head }) => {
      await this.advanceHeadTo(event.tenantId, entry, head);
      return entry;
    });
  }

  /**
   * Writes the entry at the next free position; `queued`: it waited for another append of this instance. Returns it,
   * with the head document when it was read for this append (moving the head then starts from it, unread again).
   */
  private async writeEntry(event: AuditEvent, queued: boolean): Promise<{ entry: AuditEntry; head?: StoredHead }> {
    let tip = queued ? this.tips.get(event.tenantId) : undefined;
    let head: StoredHead | undefined;
    if (!tip) {
      head = await readItem(this.container, headSchema, HEAD_ID, event.tenantId);
      tip = head ? { seq: head.seq, hash: head.hash } : { seq: 0, hash: GENESIS_HASH };
    }
    let seq = tip.seq;
    let prevHash = tip.hash;
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
        if (!isConflict(err)) {
          this.tips.delete(event.tenantId);
          throw err;
        }
        // A create sent again after its answer was lost finds its own entry there: the same hash is this entry.
        const there = await readItem(this.container, z.object({ hash: z.string() }).passthrough(), entryId(entry.seq), event.tenantId);
        if (there?.hash === entry.hash) {
          this.tips.set(event.tenantId, { seq: entry.seq, hash: entry.hash });
          return { entry, head };
        }
        // Another instance took this position: after a short pause, try the position after the chain's newest entry
        // (not merely the next one: the other instance may have written several meanwhile).
        await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 * (attempt + 1))));
        const newest = await this.newestEntry(event.tenantId);
        if (newest && newest.seq > seq) {
          seq = newest.seq;
          prevHash = newest.hash;
        }
        continue;
      }
      this.tips.set(event.tenantId, { seq: entry.seq, hash: entry.hash });
      return { entry, head };
    }
    this.tips.delete(event.tenantId);
    throw new Error(`audit append for tenant ${event.tenantId} lost the race ${this.maxAttempts} times`);
  }

  /**
   * Moves the tenant's head document to at least `entry`: joins the loop already moving it (which then goes on to
   * the newest entry it was given) or starts one. Settles once the head is at `entry` or beyond, or once moving it
   * failed: the entry is written, and a head that lags is what the next append and the anchors already expect (as
   * after a crash), so a failure here never fails the appends that joined the loop.
   */
  private advanceHeadTo(tenantId: string, entry: AuditEntry, known?: StoredHead): Promise<void> {
    const move = this.headMoves.get(tenantId);
    if (move) {
      if (move.target.seq < entry.seq) move.target = entry;
      return move.running;
    }
    const state = { target: entry, running: Promise.resolve() };
    state.running = (async () => {
      try {
        // The head as read before this entry was written, if it was: a stale one costs a failed replace, then a read.
        let head = known;
        for (;;) {
          const target = state.target;
          await this.advanceHead(tenantId, target, head);
          head = undefined;
          if (state.target === target) return;
        }
      } catch {
        // Best effort (see above).
      } finally {
        this.headMoves.delete(tenantId);
      }
    })();
    this.headMoves.set(tenantId, state);
    return state.running;
  }

  /** The entry with the highest sequence number in the tenant's chain (the head document can lag it). */
  private async newestEntry(tenantId: string): Promise<{ seq: number; hash: string } | undefined> {
    const rows = await queryAll(
      this.container,
      z.object({ seq: z.number().int().positive(), hash: z.string() }),
      {
        query: "SELECT TOP 1 c.seq, c.hash FROM c WHERE c.tenantId = @tenantId AND c.type = 'audit-entry' ORDER BY c.seq DESC",
        parameters: [{ name: "@tenantId", value: tenantId }],
      },
      tenantId,
    );
    return rows[0];
  }

  /**
   * Moves the head forward to `entry` unless someone already moved it further. Best effort: appends never depend on
   * it. `known` is the head as read before an uncontended append, which saves reading it again.
   */
  private async advanceHead(tenantId: string, entry: AuditEntry, known?: StoredHead): Promise<void> {
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

  /** The chain's tip as the head document records it (it can lag the newest entry after a crash, never lead it). */
  async head(tenantId: string): Promise<{ seq: number; hash: string } | undefined> {
    const head = await readItem(this.container, headSchema, HEAD_ID, tenantId);
    return head ? { seq: head.seq, hash: head.hash } : undefined;
  }

  /** The stored hash of entry `seq`, or undefined if there is no such entry. */
  async entryHash(tenantId: string, seq: number): Promise<string | undefined> {
    return (await readItem(this.container, z.object({ hash: z.string() }), entryId(seq), tenantId))?.hash;
  }

  /** Entry `seq` as stored (checked against the entry schema), or undefined if there is no such entry. */
  async entry(tenantId: string, seq: number): Promise<AuditEntry | undefined> {
    const doc = await readItem(this.container, storedEntrySchema, entryId(seq), tenantId);
    if (!doc) return undefined;
    const { _etag: _ignored, ...stored } = doc;
    return stripStored(stored);
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

  /**
   * Appends `event` exactly once per `onceKey`, however many workers or retries try: a marker document claimed with
   * a conditional create decides who writes it. Returns the entry's sequence number, or undefined when another
   * writer holds a live claim (try again later). A writer that takes over a stale claim first looks for the entry
   * the crashed writer may have appended.
   */
  async appendOnce(event: AuditEvent & { target: { type: string; id: string } }, onceKey: string): Promise<number | undefined> {
    return (await this.appendOnceAt(event, onceKey))?.seq;
  }

  /**
   * As appendOnce, with the entry's hash when known without reading the entry: when this call appended it, or when
   * the marker records it (markers written before the hash was kept, and an entry found after a takeover, have none).
   */
  async appendOnceAt(event: AuditEvent & { target: { type: string; id: string } }, onceKey: string): Promise<{ seq: number; hash: string | undefined } | undefined> {
    const id = "once-" + createHash("sha256").update(onceKey).digest("hex").slice(0, 48);
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = this.clock.now();
      const marker = await readItem(this.container, onceSchema, id, event.tenantId);
      if (marker?.seq !== undefined && marker.seq !== null) return { seq: marker.seq, hash: marker.hash };
      if (marker && now.getTime() - Date.parse(marker.claimedAt) < ONCE_CLAIM_MS) return undefined;
      const claim = { id, tenantId: event.tenantId, type: "audit-once" as const, seq: null, claimedAt: now.toISOString() };
      let etag: string | undefined;
      try {
        etag = marker
          ? (await this.container.item(id, event.tenantId).replace(claim, { accessCondition: { type: "IfMatch", condition: marker._etag } })).etag
          : (await this.container.items.create(claim)).etag;
      } catch (err) {
        if (isConflict(err) || isPreconditionFailed(err)) continue;
        throw err;
      }
      const found = marker ? await this.findByTarget(event.tenantId, event.action, event.target.id) : undefined;
      const written = found === undefined ? await this.append(event) : undefined;
      const seq = found ?? written!.seq;
      const hash = written?.hash;
      await this.container
        .item(id, event.tenantId)
        .replace({ ...claim, seq, ...(hash === undefined ? {} : { hash }) }, { accessCondition: { type: "IfMatch", condition: etag! } })
        .catch((err: unknown) => {
          if (!isPreconditionFailed(err)) throw err;
        });
      return { seq, hash };
    }
    return undefined;
  }

  /** The tenant's newest `limit` entries of one action, newest first (e.g. its deletion receipts). */
  async latestOfAction(tenantId: string, action: AuditAction, limit: number): Promise<AuditEntry[]> {
    const rows = await queryAll(this.container, storedEntrySchema, {
      query: `SELECT TOP ${Math.floor(limit)} * FROM c WHERE c.tenantId = @tenantId AND c.type = 'audit-entry' AND c.action = @action ORDER BY c.seq DESC`,
      parameters: [
        { name: "@tenantId", value: tenantId },
        { name: "@action", value: action },
      ],
    }, tenantId);
    return rows.map(stripStored);
  }

  /** Reachability, for health: reads the container's definition. */
  async probe(): Promise<void> {
    await this.container.read();
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
      }, { partitionKey: tenantId })
      .fetchAll();
    return resources[0]?.seq;
  }

  /**
   * Walks the chain in order from `from` (default: the genesis) and reports the first broken link. At most
   * `maxEntries` are checked per call, so a long chain is verified in parts: each part's `next` (the following
   * sequence number and the last verified hash, which the caller keeps) is where the next call starts.
   */
  async verify(tenantId: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
    const start = opts.from ?? { seq: 1, prevHash: GENESIS_HASH };
    const maxEntries = Math.min(opts.maxEntries ?? MAX_VERIFY_ENTRIES, MAX_VERIFY_ENTRIES);
    const verifier = new ChainVerifier(tenantId, start);
    const head = await readItem(this.container, headSchema, HEAD_ID, tenantId);
    const iterator = this.container.items.query<Record<string, unknown>>(
      {
        query: "SELECT * FROM c WHERE c.tenantId = @tenantId AND c.type = 'audit-entry' AND c.seq >= @from ORDER BY c.seq ASC",
        parameters: [
          { name: "@tenantId", value: tenantId },
          { name: "@from", value: start.seq },
        ],
      },
      { partitionKey: tenantId, maxItemCount: Math.min(opts.pageSize ?? 500, maxEntries) },
    );
    let broken: ChainBreak | undefined;
    let brokenId: string | undefined;
    let seen = 0;
    let complete = true;
    outer: while (iterator.hasMoreResults()) {
      const { resources } = await iterator.fetchNext();
      for (const doc of resources) {
        if (seen === maxEntries) {
          complete = false;
          break outer;
        }
        seen++;
        broken = verifier.push(doc);
        if (broken) {
          brokenId = typeof doc.id === "string" ? doc.id : entryId(broken.seq);
          break outer;
        }
        opts.onVerified?.(verifier.result.lastSeq, verifier.result.lastHash);
      }
    }
    if (complete) broken ??= verifier.finish(head?.seq);
    const r = verifier.result;
    return {
      valid: broken === undefined,
      complete: complete || broken !== undefined,
      fromSeq: start.seq,
      entriesChecked: r.entriesChecked,
      lastSeq: r.lastSeq,
      lastHash: r.lastHash,
      ...(broken ? { firstBroken: { ...broken, entryId: brokenId ?? entryId(broken.seq) } } : {}),
      ...(!complete && !broken ? { next: { fromSeq: r.lastSeq + 1, prevHash: r.lastHash } } : {}),
    };
  }
}

function stripStored(doc: z.infer<typeof storedEntrySchema>): AuditEntry {
  const { id: _id, type: _type, ...entry } = doc;
  return entry;
}
