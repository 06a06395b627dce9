/** Consent-record helpers for integration tests: a purpose with a notice, and recording decisions over HTTP. */
import type { TestApp } from "./app";

export interface ConsentEvent {
  id: string;
  subjectId: string;
  purpose: string;
  noticeVersion: number | null;
  decision: string;
  ipAddress: string | null;
  digest: string;
  audit: { seq: number; hash: string };
}

/** Creates a purpose and one notice version (text); returns the version. */
export async function purposeWithNotice(t: TestApp, key: string, purpose: string, opts: { text?: string; language?: string } = {}): Promise<number> {
  const res = await t.call("POST", "v1/purposes", { key, json: { key: purpose, description: `Consent for ${purpose}`, legalBasis: "consent" } });
  if (res.status !== 201) throw new Error(`purpose ${purpose}: ${res.status} ${await res.text()}`);
  const n = await t.call("POST", `v1/purposes/${purpose}/notices`, { key, json: { language: opts.language ?? "en", text: opts.text ?? `We send you news about ${purpose}.` } });
  if (n.status !== 201) throw new Error(`notice ${purpose}: ${n.status} ${await n.text()}`);
  return ((await n.json()) as { version: number }).version;
}

export async function recordDecision(t: TestApp, key: string, body: Record<string, unknown>): Promise<ConsentEvent> {
  const res = await t.call("POST", "v1/consents", { key, json: { method: "click", requestOrigin: "banner", ...body } });
  if (res.status !== 201) throw new Error(`record: ${res.status} ${await res.text()}`);
  return (await res.json()) as ConsentEvent;
}

export async function stateOf(t: TestApp, key: string, email: string): Promise<{ subjectId: string | null; states: Array<{ purpose: string; decision: string }>; history: ConsentEvent[] }> {
  const res = await t.call("POST", "v1/consents/search", { key, json: { email } });
  if (res.status !== 200) throw new Error(`search: ${res.status} ${await res.text()}`);
  return (await res.json()) as { subjectId: string | null; states: Array<{ purpose: string; decision: string }>; history: ConsentEvent[] };
}

export const decisionOf = async (t: TestApp, key: string, email: string, purpose: string) =>
  (await stateOf(t, key, email)).states.find((s) => s.purpose === purpose)?.decision ?? "no-record";
