/**
 * Anchoring the audit chain outside the database: the hourly timer through the runtime, the anchor blobs in
 * Azurite, and verification that catches what the chain alone cannot (newest entries removed with the head
 * document rewound; a chain rewritten with recomputed hashes).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { BLOB_CONTAINERS } from "../../shared/config/resources";
import { anchorBlobName } from "../../shared/domain/audit-anchor";
import { GENESIS_HASH, sealEntry, type AuditEntry } from "../../shared/domain/audit-chain";
import { entryId } from "../../shared/stores/audit-store";
import { runAnchorSweep } from "../../shared/usecases/audit-anchoring";
import { startTestApp, type TestApp } from "../helpers/app";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

type Verify = {
  valid: boolean;
  complete: boolean;
  lastSeq: number;
  firstBroken?: { seq: number; reason: string; detail: string };
  anchor: { status: string; checked: number; latest?: { seq: number } };
};

async function verify(key: string, query = ""): Promise<Verify> {
  const res = await t.call("GET", `v1/audit/verify${query}`, { key });
  expect(res.status).toBe(200);
  return (await res.json()) as Verify;
}

async function append(tenantId: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await t.services.audit.append({ tenantId, actor: "system:test", action: "upload.downloaded", target: { type: "upload", id: `u-${i}` }, details: { bytes: i } });
  }
}

async function anchorLines(tenantId: string): Promise<Array<{ seq: number; hash: string }>> {
  const blob = t.raw.blobs.getContainerClient(BLOB_CONTAINERS.auditAnchors.name).getBlobClient(anchorBlobName(tenantId, t.clock.now()));
  if (!(await blob.exists())) return [];
  const text = (await blob.downloadToBuffer()).toString("utf8");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { seq: number; hash: string });
}

async function entries(tenantId: string): Promise<Array<AuditEntry & { id: string }>> {
  const { resources } = await t.raw.containers.audit.items
    .query<AuditEntry & { id: string }>({
      query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'audit-entry' ORDER BY c.seq ASC",
      parameters: [{ name: "@t", value: tenantId }],
    })
    .fetchAll();
  return resources;
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** What someone with database write access does to hide the newest entries: delete them and rewind the head. */
async function truncateAndRewindHead(tenantId: string, keep: number): Promise<void> {
  const all = await entries(tenantId);
  for (const e of all.filter((x) => x.seq > keep)) await t.raw.containers.audit.item(e.id, tenantId).delete();
  const last = all.find((x) => x.seq === keep)!;
  await t.raw.containers.audit.items.upsert({ id: "head", tenantId, type: "audit-head", seq: keep, hash: last.hash });
}

describe("anchoring the audit chain", () => {
  it("anchors each tenant's head through the hourly timer, once per change", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 3);
    expect((await verify(apiKey)).anchor).toEqual({ status: "none", checked: 0 });

    await t.host.invoke("audit-anchor");
    const first = await anchorLines(tenantId);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ seq: 4, hash: (await t.services.audit.head(tenantId))!.hash });
    expect(await verify(apiKey)).toMatchObject({ valid: true, anchor: { status: "matches", checked: 1, latest: { seq: 4 } } });

    await t.host.invoke("audit-anchor");
    expect(await anchorLines(tenantId)).toHaveLength(1);

    await append(tenantId, 2);
    await t.host.invoke("audit-anchor");
    expect((await anchorLines(tenantId)).map((a) => a.seq)).toEqual([4, 6]);
    const hb = await t.services.heartbeats.get("audit-anchor");
    expect(hb).toMatchObject({ lastOutcome: "succeeded" });
    expect(hb?.counts.alarms).toBe(0);
  });

  it("writes one line when runs race, and raises no false alarm while the chain grows under them", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 2);
    await Promise.all([runAnchorSweep(t.services), runAnchorSweep(t.services), runAnchorSweep(t.services)]);
    expect(await anchorLines(tenantId)).toHaveLength(1);

    const runs = await Promise.all([runAnchorSweep(t.services), append(tenantId, 6), runAnchorSweep(t.services), runAnchorSweep(t.services)]);
    for (const counts of [runs[0], runs[2], runs[3]]) expect(counts).toMatchObject({ alarms: 0, failed: 0 });
    await runAnchorSweep(t.services);
    const seqs = (await anchorLines(tenantId)).map((a) => a.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs.at(-1)).toBe(9);
    expect(await verify(apiKey)).toMatchObject({ valid: true, anchor: { status: "matches" } });
  });

  it("checks each part of a verification in parts against the anchors in its range", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 5);
    await runAnchorSweep(t.services);
    const part1 = (await verify(apiKey, "?maxEntries=3")) as Verify & { next: { fromSeq: number; prevHash: string } };
    expect(part1).toMatchObject({ valid: true, complete: false, anchor: { status: "matches", checked: 0 } });
    const part2 = await verify(apiKey, `?fromSeq=${part1.next.fromSeq}&prevHash=${part1.next.prevHash}`);
    expect(part2).toMatchObject({ valid: true, complete: true, anchor: { status: "matches", checked: 1, latest: { seq: 6 } } });
    // A part that starts past the end checks nothing, and says so.
    const beyond = await verify(apiKey, `?fromSeq=50&prevHash=${"0".repeat(64)}`);
    expect(beyond).toMatchObject({ entriesChecked: 0, anchor: { status: "not-checked" } });
  });
});

describe("reading anchors", () => {
  it("reads only what was appended since the last read, and a blob that got shorter in full", async () => {
    const { tenantId } = await t.createTenant();
    await append(tenantId, 1);
    await runAnchorSweep(t.services);
    expect((await t.services.anchors.all(tenantId)).map((a) => a.seq)).toEqual([2]);
    await append(tenantId, 2);
    await runAnchorSweep(t.services);
    expect((await t.services.anchors.all(tenantId)).map((a) => a.seq)).toEqual([2, 4]);

    // Only possible where no retention policy protects the blob (locally): replaced by a shorter one.
    const container = t.raw.blobs.getContainerClient(BLOB_CONTAINERS.auditAnchors.name);
    const name = anchorBlobName(tenantId, t.clock.now());
    const first = (await container.getBlobClient(name).downloadToBuffer()).toString("utf8").split("\n")[0]! + "\n";
    const replaced = container.getAppendBlobClient(name);
    await replaced.create();
    await replaced.appendBlock(first, Buffer.byteLength(first));
    expect((await t.services.anchors.all(tenantId)).map((a) => a.seq)).toEqual([2]);
  });
});

describe("what the anchor catches that the chain alone does not", () => {
  it("newest entries deleted and the head document rewound", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 5);
    await runAnchorSweep(t.services);
    await truncateAndRewindHead(tenantId, 4);

    const v = await verify(apiKey);
    expect(v.lastSeq).toBe(4); // the chain itself is consistent...
    expect(v).toMatchObject({ valid: false, firstBroken: { seq: 5, reason: "truncated" }, anchor: { status: "broken", latest: { seq: 6 } } });

    // ...and the next anchoring run refuses to anchor over it and raises the alarm.
    const counts = await runAnchorSweep(t.services, { log: quiet });
    expect(counts.alarms).toBeGreaterThanOrEqual(1);
    expect((await anchorLines(tenantId)).map((a) => a.seq)).toEqual([6]);
    const health = (await (await t.admin("GET", "health")).json()) as { sweeps: Array<{ name: string; healthy: boolean; reason: string }> };
    expect(health.sweeps.find((s) => s.name === "audit-anchor")).toMatchObject({ healthy: false });
  });

  it("the whole chain rewritten with recomputed hashes", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 4);
    await runAnchorSweep(t.services);
    // Forge entry 2 and re-seal it and every later entry, then move the head: every link is consistent again.
    const all = await entries(tenantId);
    let prev = GENESIS_HASH;
    for (const e of all) {
      const { id: _id, hash: _hash, ...content } = e as AuditEntry & { id: string; type?: string; _rid?: string };
      const clean = {
        tenantId: content.tenantId,
        seq: content.seq,
        at: content.at,
        actor: content.seq === 2 ? "admin" : content.actor,
        action: content.action,
        target: content.target,
        requestId: content.requestId,
        details: content.details,
        prevHash: prev,
      };
      const sealed = sealEntry(clean);
      prev = sealed.hash;
      await t.raw.containers.audit.items.upsert({ ...sealed, id: entryId(sealed.seq), type: "audit-entry" });
    }
    await t.raw.containers.audit.items.upsert({ id: "head", tenantId, type: "audit-head", seq: all.length, hash: prev });

    const v = await verify(apiKey);
    expect(v).toMatchObject({ valid: false, firstBroken: { seq: 5, reason: "anchor-mismatch" }, anchor: { status: "broken", latest: { seq: 5 } } });

    // The chain keeps growing; the next anchoring run must not anchor the rewritten chain (it would then pass).
    await append(tenantId, 2);
    expect((await runAnchorSweep(t.services, { log: quiet })).alarms).toBeGreaterThanOrEqual(1);
    expect((await anchorLines(tenantId)).map((a) => a.seq)).toEqual([5]);
    expect((await verify(apiKey)).firstBroken).toMatchObject({ seq: 5, reason: "anchor-mismatch" });
  });

  it("newest entries cut and the chain regrown past the anchor before the next run", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 5);
    await runAnchorSweep(t.services);
    await truncateAndRewindHead(tenantId, 3);
    await append(tenantId, 5); // normal traffic refills positions 4..8 with other entries
    expect((await runAnchorSweep(t.services, { log: quiet })).alarms).toBeGreaterThanOrEqual(1);
    expect((await anchorLines(tenantId)).map((a) => a.seq)).toEqual([6]);
    expect(await verify(apiKey)).toMatchObject({ valid: false, firstBroken: { seq: 6, reason: "anchor-mismatch" } });
  });

  it("a forged anchor appended to match a rewritten chain does not hide the rewrite from older anchors", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 3);
    await runAnchorSweep(t.services); // anchor at 4
    await append(tenantId, 2);
    await truncateAndRewindHead(tenantId, 2);
    await append(tenantId, 1); // the chain now ends at 3 with a different entry 3
    const forged = { v: 1 as const, tenantId, seq: 3, hash: (await t.services.audit.head(tenantId))!.hash, anchoredAt: t.clock.now().toISOString() };
    expect(await t.services.anchors.append(forged, await t.services.anchors.read(tenantId))).toBe(true);
    const v = await verify(apiKey);
    expect(v.valid).toBe(false);
    expect(v.firstBroken).toMatchObject({ seq: 3, reason: "anchor-mismatch" });
    expect(v.firstBroken?.detail).toContain("went backwards");
  });

  it("a tenant's whole audit partition deleted", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await append(tenantId, 2);
    await runAnchorSweep(t.services);
    for (const e of await entries(tenantId)) await t.raw.containers.audit.item(e.id, tenantId).delete();
    await t.raw.containers.audit.item("head", tenantId).delete();

    expect(await verify(apiKey)).toMatchObject({ valid: false, firstBroken: { seq: 1, reason: "truncated" }, anchor: { status: "broken", latest: { seq: 3 } } });
    const lines: string[] = [];
    const log = { info: () => undefined, warn: () => undefined, error: (m: string, f?: Record<string, unknown>) => lines.push(m + JSON.stringify(f)) };
    await runAnchorSweep(t.services, { log });
    expect(lines.some((l) => l.includes("audit.anchor-alarm") && l.includes(tenantId) && l.includes("chain-behind-anchor"))).toBe(true);
  });
});
