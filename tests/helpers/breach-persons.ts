/**
 * Helpers for the tests of the notices to persons: a test app whose host does not poll queues, so that the test runs
 * the breach-jobs queue itself (with the services it chooses, e.g. an e-mail sender that dies), and uploads naming
 * many persons.
 */
import { LOCAL_ONLY_BLOB_CONTAINERS, QUEUES } from "../../shared/config/resources";
import type { Services } from "../../shared/services";
import { syncTenantPart } from "../../shared/usecases/breach-notices";
import { runPersonJob } from "../../shared/usecases/breach-persons";
import { breachJobMessage, type BreachJobMessage } from "../../shared/usecases/messages";
import type { TestApp } from "./app";
import type { Json } from "./breaches";
import { createUpload } from "./uploads";

/** Runs one breach job as the queue worker does. */
export async function runBreachJob(s: Services, msg: BreachJobMessage): Promise<string> {
  if (msg.kind === "sync-tenant") return syncTenantPart(s, msg.breachId, msg.tenantId);
  return runPersonJob(s, msg);
}

/**
 * Works the visible messages of the breach-jobs queue (and those they queue) until none is left, a page of up to
 * 16 at a time in parallel, as several workers would. With `stop`, it gives up as soon as that promise settles (a
 * worker process killed): jobs still running are abandoned, their messages stay received and invisible.
 * Returns the outcomes by message kind.
 */
export async function drainBreachJobs(t: TestApp, s: Services = t.services, stop?: Promise<unknown>): Promise<Record<string, number>> {
  const queue = t.raw.queues.getQueueClient(QUEUES.breaches.name);
  const seen: Record<string, number> = {};
  let stopped = false;
  void stop?.then(() => (stopped = true));
  for (let round = 0; round < 10_000 && !stopped; round++) {
    const { receivedMessageItems: items } = await queue.receiveMessages({ numberOfMessages: 16, visibilityTimeout: 300 });
    if (items.length === 0) break;
    const work = Promise.all(
      items.map(async (m) => {
        const msg = breachJobMessage.parse(JSON.parse(Buffer.from(m.messageText, "base64").toString("utf8")));
        const outcome = await runBreachJob(s, msg);
        const key = `${msg.kind}:${outcome}`;
        seen[key] = (seen[key] ?? 0) + 1;
        await queue.deleteMessage(m.messageId, m.popReceipt);
      }),
    );
    if (stop) {
      // A killed worker's jobs are abandoned: whatever they would still do or fail at is no longer anyone's.
      work.catch(() => undefined);
      await Promise.race([work, stop]);
    } else await work;
  }
  return seen;
}

/** Creates an upload (no content) naming these subjects and recipients; returns its id. */
export async function uploadNaming(t: TestApp, apiKey: string, subjects: string[], recipients: string[], categories: string[] = ["contact", "financial"]): Promise<string> {
  return (await createUpload(t, apiKey, { dataSubjects: subjects, recipients, categories })).id;
}

/**
 * The addressees of the outbox's messages whose id starts with `prefix` (the blobs read in parallel; the outbox
 * keeps one record per message id, so a message sent twice with the same id is there once).
 */
export async function outboxRecipients(t: TestApp, prefix: string): Promise<Array<{ messageId: string; to: string; text: string; sentAt: string }>> {
  const container = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
  const names: string[] = [];
  for await (const b of container.listBlobsFlat()) {
    if (b.name.endsWith(".json") && !b.name.startsWith("by-message-id/") && (b.name.split("/")[1] ?? "").startsWith(prefix)) names.push(b.name);
  }
  const out: Array<{ messageId: string; to: string; text: string; sentAt: string }> = [];
  for (let i = 0; i < names.length; i += 64) {
    const docs = await Promise.all(names.slice(i, i + 64).map(async (n) => JSON.parse((await container.getBlobClient(n).downloadToBuffer()).toString()) as { messageId: string; to: string[]; text: string; sentAt: string }));
    out.push(...docs.map((d) => ({ messageId: d.messageId, to: d.to[0]!, text: d.text, sentAt: d.sentAt })));
  }
  return out.sort((a, b) => a.sentAt.localeCompare(b.sentAt) || a.messageId.localeCompare(b.messageId));
}

/** The ids of the outbox's messages starting with `prefix`, from its by-message-id records (names only: nothing read). */
export async function outboxMessageIds(t: TestApp, prefix: string): Promise<string[]> {
  const container = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
  const ids: string[] = [];
  for await (const b of container.listBlobsFlat({ prefix: `by-message-id/${prefix}` })) ids.push(b.name.slice("by-message-id/".length));
  return ids.sort();
}

/** The tenant's persons view of a breach (GET /v1/breaches/{id}/persons); expects 200. */
export async function personsOf(t: TestApp, apiKey: string, id: string): Promise<Json> {
  const res = await t.call("GET", `v1/breaches/${id}/persons`, { key: apiKey });
  if (res.status !== 200) throw new Error(`GET .../persons answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** The tenant's instruction to tell the persons of breach `id` (POST .../notify-persons). */
export function instructNotices(t: TestApp, apiKey: string, id: string): Promise<Response> {
  return t.call("POST", `v1/breaches/${id}/notify-persons`, { key: apiKey });
}

/** The tenant's cancellation of it (DELETE .../notify-persons). */
export function cancelNotices(t: TestApp, apiKey: string, id: string): Promise<Response> {
  return t.call("DELETE", `v1/breaches/${id}/notify-persons`, { key: apiKey });
}

/** How many notices to persons of breach `id` are in the outbox, of one version or all. */
export async function noticesInOutbox(t: TestApp, id: string, version?: number): Promise<number> {
  return (await outboxMessageIds(t, `bpn-${id.replace(/^br-/, "")}-${version === undefined ? "" : `v${version}-`}`)).length;
}

/** `n` distinct data-subject addresses tagged `tag`. */
export const subjectAddresses = (tag: string, n: number): string[] => Array.from({ length: n }, (_, j) => `${tag}${j}@subjects.example`);

/** A new version of breach `id` (the operator's PATCH of its measures), synced to its parts. */
export async function newBreachVersion(t: TestApp, reg: { id: string; etag: string }): Promise<void> {
  const res = await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { measuresTaken: "Keys rotated." }, { "if-match": reg.etag });
  if (res.status !== 200) throw new Error(`PATCH of breach ${reg.id}: ${res.status} ${await res.text()}`);
  await drainBreachJobs(t);
}
