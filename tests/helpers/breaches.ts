/** Helpers for the breach tests: a valid breach body, registering one, waiting for a tenant's part, reading the outbox. */
import { LOCAL_ONLY_BLOB_CONTAINERS } from "../../shared/config/resources";
import type { TestApp } from "./app";
import { eventually } from "./eventually";
import { expect } from "./expect";

export interface OutboxMail {
  messageId: string;
  to: string[];
  subject: string;
  text: string;
  html: string | null;
  sentAt: string;
}

/** Every e-mail the local outbox holds (the service's "sent" mail), optionally only those whose id starts with `prefix`. */
export async function outbox(t: TestApp, prefix = ""): Promise<OutboxMail[]> {
  const container = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
  const out: OutboxMail[] = [];
  for await (const b of container.listBlobsFlat()) {
    // Stored as <yyyy-mm-dd>/<messageId>.json: only the messages asked for are read.
    if (!b.name.endsWith(".json") || b.name.startsWith("by-message-id/") || !(b.name.split("/")[1] ?? "").startsWith(prefix)) continue;
    const mail = JSON.parse((await container.getBlobClient(b.name).downloadToBuffer()).toString()) as OutboxMail;
    if (mail.messageId.startsWith(prefix)) out.push(mail);
  }
  return out.sort((a, b) => a.sentAt.localeCompare(b.sentAt) || a.messageId.localeCompare(b.messageId));
}

/** A breach body with every required field; `scope` and the rest as given. */
export function breachBody(t: TestApp, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    awareAt: new Date(t.clock.now().getTime() - 2 * 3_600_000).toISOString(),
    occurredFrom: new Date(t.clock.now().getTime() - 30 * 3_600_000).toISOString(),
    occurredTo: new Date(t.clock.now().getTime() - 3 * 3_600_000).toISOString(),
    nature: { confidentiality: "unknown-recipients", integrity: "not-affected", availability: "not-affected" },
    malicious: true,
    description: "A storage access key was found in a public code repository; the transfer records it opens were read from an address abroad.",
    cause: "An access key committed by mistake to a public repository.",
    likelyConsequences: "Identity fraud and phishing aimed at the persons named in the transfers.",
    measuresTaken: "The key was revoked and every other key rotated within the hour.",
    scope: [],
    ...overrides,
  };
}

export interface Registered {
  id: string;
  etag: string;
  body: Record<string, unknown>;
}

/** Registers a breach as the operator; expects 201. */
export async function registerBreach(t: TestApp, body: Record<string, unknown>): Promise<Registered> {
  const res = await t.admin("POST", "v1/admin/breaches", body);
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBe(201);
  return { id: json.id as string, etag: res.headers.get("etag")!, body: json };
}

/** A JSON answer as the tests read it (the shapes are the OpenAPI document's; the tests check what they use). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** Waits until the tenant's part has been made and its notice delivered (by e-mail or webhook), and returns its view. */
export async function partOf(t: TestApp, apiKey: string, id: string, until: (view: Json) => boolean = (v) => v.clocks.controllerNotice.notifiedAt !== null): Promise<Json> {
  let view: Json = {};
  t.host.pokeQueues();
  await eventually(async () => {
    const res = await t.call("GET", `v1/breaches/${id}`, { key: apiKey });
    expect(res.status).toBe(200);
    view = await res.json();
    expect(until(view), JSON.stringify(view).slice(0, 500)).toBe(true);
  });
  return view;
}
