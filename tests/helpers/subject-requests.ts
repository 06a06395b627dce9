/** Helpers for the data-subject request tests: intake, the e-mails the person gets, the stored document. */
import { LOCAL_ONLY_BLOB_CONTAINERS } from "../../shared/config/resources";
import { packageIdOf, type PackageDoc } from "../../shared/stores/package-store";
import type { RequestDoc } from "../../shared/stores/subject-request-store";
import type { TestApp } from "./app";
import { eventually } from "./eventually";
import { expect } from "./expect";

export interface Mail {
  messageId: string;
  to: string[];
  subject: string;
  text: string;
  html: string | null;
}

/** Every e-mail in the local outbox whose message id starts with `prefix`, oldest first. */
export async function mails(t: TestApp, prefix: string): Promise<Mail[]> {
  const outbox = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
  const out: Array<Mail & { sentAt: string }> = [];
  for await (const b of outbox.listBlobsFlat()) {
    if (!b.name.endsWith(".json")) continue;
    const name = b.name.slice(b.name.lastIndexOf("/") + 1, -".json".length);
    if (!name.startsWith(prefix)) continue;
    out.push(JSON.parse((await outbox.getBlobClient(b.name).downloadToBuffer()).toString()) as Mail & { sentAt: string });
  }
  return out.sort((a, b) => a.messageId.localeCompare(b.messageId));
}

/** Waits until `count` e-mails with the prefix are in the outbox; returns them. */
export async function waitForMails(t: TestApp, prefix: string, count = 1): Promise<Mail[]> {
  t.host.pokeQueues();
  let found: Mail[] = [];
  await eventually(async () => {
    found = await mails(t, prefix);
    expect(found.length, `e-mails ${prefix}*`).toBeGreaterThanOrEqual(count);
  }, 30_000, 50);
  await verificationSendsRecorded(t, found);
  return found;
}

/**
 * A verification e-mail lands in the outbox a moment before its worker records it as sent (and writes its audit
 * entry); only a code whose e-mail is recorded as sent is accepted. Waits until every verification e-mail among
 * `found` is recorded, so a test acts on what a person could act on.
 */
async function verificationSendsRecorded(t: TestApp, found: Mail[]): Promise<void> {
  for (const mail of found) {
    const m = /^dsr-verification-(dsr-[a-z2-7]+)-(\d+)$/.exec(mail.messageId);
    if (!m) continue;
    const [, id, gen] = m;
    await eventually(async () => {
      const { resources } = await t.raw.containers.subjectRequests.items
        .query<RequestDoc>({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: id! }] })
        .fetchAll();
      const issued = resources[0]?.verification.issued.find((i) => String(i.gen) === gen);
      expect(issued?.sentAt, `verification e-mail ${mail.messageId} recorded as sent`).toBeTruthy();
    }, 30_000, 25);
  }
}

/** The code and the link token of a verification e-mail. */
export function verificationOf(mail: Mail): { code: string; token: string; path: string } {
  const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
  const link = /(https?:\/\/\S+\/api\/public\/subject-request-verification\/(\S+))/.exec(mail.text);
  if (!code || !link) throw new Error("not a verification e-mail");
  return { code, token: link[2]!, path: new URL(link[1]!).pathname };
}

export async function createRequest(t: TestApp, key: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> & { id: string; status: string } }> {
  const res = await t.call("POST", "v1/subject-requests", { key, json: { type: "access", ...body }, headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { id: string; status: string } };
}

/** The stored request document, read with the test's own client (the service's store has named methods only). */
export async function rawRequest(t: TestApp, tenantId: string, id: string): Promise<RequestDoc & { _etag: string }> {
  const { resource } = await t.raw.containers.subjectRequests.item(id, tenantId).read<RequestDoc & { _etag: string }>();
  if (!resource) throw new Error(`no stored request ${id}`);
  return resource;
}

/** Waits until the stored request satisfies `check`. */
export async function waitForRequest(t: TestApp, tenantId: string, id: string, check: (doc: RequestDoc) => boolean, what = "the request"): Promise<RequestDoc & { _etag: string }> {
  t.host.pokeQueues();
  let doc: (RequestDoc & { _etag: string }) | undefined;
  await eventually(async () => {
    doc = await rawRequest(t, tenantId, id);
    expect(check(doc), `${what}: status ${doc.status}, steps ${JSON.stringify(doc.steps.map((s) => [s.name, s.attempts, s.parked]))}`).toBe(true);
  }, 30_000, 50);
  return doc!;
}

/**
 * The stored request once its background work has settled (no step pending, its history announced), read for a
 * test that damages it: a document read while a worker is still on it is stale a
 * moment later, and writing it back undoes the worker's progress (a step it had finished reappears, never to run).
 * Write it back with `replaceRequest`, which refuses if it changed meanwhile.
 */
export async function settledRequest(t: TestApp, tenantId: string, id: string): Promise<RequestDoc & { _etag: string }> {
  return waitForRequest(t, tenantId, id, (d) => d.steps.length === 0 && d.announced === d.history.length, "the request settled");
}

/** Writes `next` over the stored request only if it is still the version `read` (its etag); throws otherwise. */
export async function replaceRequest(t: TestApp, read: { _etag: string }, next: RequestDoc): Promise<void> {
  await t.raw.containers.subjectRequests.item(next.id, next.tenantId).replace(next, { accessCondition: { type: "IfMatch", condition: read._etag } });
}

export const json = async <T = Record<string, unknown>>(res: Response): Promise<T> => (await res.json()) as T;

/**
 * A package record as the build writes it, for tests that need one without building a zip: access scope, nothing
 * stored, `at` for every time it has; `over` sets the fields a test is about (state, counts, contentOf, building…).
 */
export function packageRecord(tenantId: string, requestId: string, at: string, over: Partial<PackageDoc> = {}): PackageDoc {
  return {
    id: packageIdOf(requestId),
    tenantId,
    type: "dsr-package",
    requestId,
    scope: "access",
    state: "ready",
    createdAt: at,
    updatedAt: at,
    contentDecision: null,
    building: null,
    dataKey: null,
    content: null,
    counts: {},
    builtAt: at,
    expiresAt: null,
    linkHash: null,
    notified: { subjectAt: null, tenantAt: null },
    downloads: { tenant: 0, subject: 0 },
    purge: null,
    ...over,
  };
}
