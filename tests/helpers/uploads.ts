import { randomBytes } from "node:crypto";
import type { TestApp } from "./app";

export const baseUpload = {
  senderReference: "user-4711",
  recipients: ["anna@recipient.example", "bo@recipient.example"],
  dataSubjects: ["carl@subject.example"],
  categories: ["financial", "national-id"],
  fileName: "løn 2026 – Carl.pdf",
  contentType: "application/pdf",
};

export async function createUpload(t: TestApp, key: string, overrides: Record<string, unknown> = {}): Promise<{ id: string; expiresAt: string; url: string }> {
  const res = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 0, ...overrides } });
  if (res.status !== 201) throw new Error(`create failed ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { id: string; expiresAt: string; upload: { url: string } };
  return { id: body.id, expiresAt: body.expiresAt, url: body.upload.url };
}

export async function putContent(t: TestApp, key: string, id: string, content: Buffer, contentType = "application/pdf", headers: Record<string, string> = {}): Promise<Response> {
  return t.call("PUT", `v1/uploads/${id}/content`, { key, body: content, headers: { ...headers, "content-type": contentType } });
}

/** Creates an upload with `size` random bytes of content; returns its id and the bytes. */
export async function uploadWith(t: TestApp, key: string, size: number, overrides: Record<string, unknown> = {}): Promise<{ id: string; content: Buffer }> {
  const content = randomBytes(size);
  const { id } = await createUpload(t, key, { size, ...overrides });
  const res = await putContent(t, key, id, content, (overrides.contentType as string) ?? "application/pdf");
  if (res.status !== 200) throw new Error(`put failed ${res.status} ${await res.text()}`);
  return { id, content };
}

export async function download(t: TestApp, key: string, id: string, headers: Record<string, string> = {}): Promise<{ res: Response; body: Buffer; error?: Error }> {
  const res = await t.call("GET", `v1/uploads/${id}/content`, { key, headers });
  const chunks: Buffer[] = [];
  try {
    if (res.body) for await (const c of res.body) chunks.push(Buffer.from(c as Uint8Array));
    return { res, body: Buffer.concat(chunks) };
  } catch (error) {
    return { res, body: Buffer.concat(chunks), error: error as Error };
  }
}
