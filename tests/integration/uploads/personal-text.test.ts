/**
 * Text a client sends with an upload is personal data unless proven otherwise. The declared Content-Type's
 * parameters (`name="<a person's name> test result.pdf"`) are encrypted with the upload's data key like the file
 * name: only the media type's essence and an allow-listed charset stay in plain text, for listing and for the
 * tombstone. Free text that can disguise what it is (Unicode control and format characters, e.g. U+202E, which
 * turns "txt.exe" around on screen) is refused.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { startTestApp, type TestApp } from "../../helpers/app";
import { baseUpload, createUpload, download, putContent } from "../../helpers/uploads";

let t: TestApp;
let key: string;
let tenantId: string;
beforeAll(async () => {
  t = await startTestApp();
  ({ apiKey: key, tenantId } = await t.createTenant());
});
afterAll(async () => {
  await t?.stop();
});

const PERSON = "Carla Jensen";
const DECLARED = `text/plain; charset=UTF-8; name="${PERSON} blood test.txt"`;

/** Everything the service keeps about the tenant's uploads and requests, as stored. */
async function storedText(): Promise<string> {
  const uploads = await t.raw.containers.uploads.items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenantId }] }).fetchAll();
  const idempotency = await t.raw.containers.idempotency.items.query("SELECT * FROM c").fetchAll();
  const audit = await t.raw.containers.audit.items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenantId }] }).fetchAll();
  return JSON.stringify([uploads.resources, idempotency.resources, audit.resources]);
}

describe("the declared content type", () => {
  it("keeps only the essence and the charset in plain text; the download gets the whole declared type", async () => {
    const created = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, contentType: DECLARED, size: 5 }, headers: { "idempotency-key": "ct-1" } });
    expect(created.status).toBe(201);
    const body = (await created.json()) as { id: string; upload: { contentType: string } };
    const id = body.id;
    expect(body.upload.contentType, "the answer (also kept for Idempotency-Key replays)").toBe("text/plain; charset=utf-8");

    expect((await t.services.uploads.get(tenantId, id))!.contentType).toBe("text/plain; charset=utf-8");
    expect(await storedText()).not.toContain(PERSON);

    expect((await putContent(t, key, id, Buffer.from("hello"), "text/plain")).status).toBe(200);
    const list = (await (await t.call("GET", "v1/uploads", { key })).json()) as { items: Array<{ id: string; contentType: string }> };
    expect(list.items.find((i) => i.id === id)!.contentType).toBe("text/plain; charset=utf-8");
    expect(JSON.stringify(list)).not.toContain(PERSON);

    const meta = (await (await t.call("GET", `v1/uploads/${id}`, { key })).json()) as { contentType: string };
    expect(meta.contentType, "the metadata read (audited) shows the type as declared").toBe(DECLARED);

    const got = await download(t, key, id);
    expect(got.res.status).toBe(200);
    expect(got.res.headers.get("content-type")).toBe(DECLARED);

    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    const tombstone = await t.services.uploads.get(tenantId, id);
    expect(tombstone!.contentType).toBe("text/plain; charset=utf-8");
    expect(await storedText()).not.toContain(PERSON);
  });

  it("drops a charset that is not on the allow-list, and every other parameter", async () => {
    const { id } = await createUpload(t, key, { contentType: `application/pdf; charset="${PERSON}"; version=1`, size: 1 });
    expect((await t.services.uploads.get(tenantId, id))!.contentType).toBe("application/pdf");
    expect(await storedText()).not.toContain(PERSON);
  });

  it("a record from before the type was encrypted lists and keeps only the essence; its download still gets the whole type", async () => {
    const { id } = await createUpload(t, key, { size: 5 });
    expect((await putContent(t, key, id, Buffer.from("hello"))).status).toBe(200);
    const item = t.raw.containers.uploads.item(id, tenantId);
    const { resource } = await item.read<{ contentType: string; personal: Record<string, unknown> }>();
    const { contentType: _sealed, ...personal } = resource!.personal;
    await item.replace({ ...resource!, contentType: `application/pdf; name="${PERSON}.pdf"`, personal });

    const list = (await (await t.call("GET", "v1/uploads", { key })).json()) as { items: Array<{ id: string; contentType: string }> };
    expect(list.items.find((i) => i.id === id)!.contentType).toBe("application/pdf");
    expect((await download(t, key, id)).res.headers.get("content-type")).toBe(`application/pdf; name="${PERSON}.pdf"`);
    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    expect(JSON.stringify(await t.services.uploads.get(tenantId, id))).not.toContain(PERSON);
  });
});

describe("free text with control or format characters", () => {
  it.each([
    ["fileName", "U+202E right-to-left override", "report\u202Etxt.exe"],
    ["fileName", "U+200B zero-width space", "report\u200B.pdf"],
    ["fileName", "U+FEFF byte-order mark", "\uFEFFreport.pdf"],
    ["fileName", "U+0085 next line (C1 control)", "report\u0085.pdf"],
    ["fileName", "U+2066 left-to-right isolate", "a\u2066b.pdf"],
    ["senderReference", "U+202E right-to-left override", "user\u202E1147"],
    ["senderReference", "U+0090 (C1 control)", "user\u00904711"],
  ])("%s with %s gets 422 naming the field", async (field, _what, value) => {
    const res = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 1, [field]: value } });
    expect(res.status).toBe(422);
    const body = (await res.json()) as { type: string; errors: Array<{ path: string }> };
    expect(body.type).toBe("urn:safedata:problem:validation-failed");
    expect(body.errors.map((e) => e.path)).toContain(field);
  });

  it("accepts names in any script, with spaces and marks", async () => {
    for (const fileName of ["løn 2026 – Carl.pdf", "Zoë's résumé.pdf", "報告書.pdf", "תוצאות.pdf", "नमस्ते.txt"]) {
      const res = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 1, fileName } });
      expect(res.status, fileName).toBe(201);
    }
  });
});
