/**
 * The readable local outbox: every e-mail the outbox adapter stores is also a standard .eml file in the folder the
 * setting names, composed as MIME (RFC 2045-2047), once per message however often it is sent.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { composeEml } from "../../dev/outbox-eml";
import { startTestApp, type TestApp } from "../helpers/app";
import { expect } from "../helpers/expect";

let t: TestApp;
const dir = mkdtempSync(path.join(os.tmpdir(), "outbox-"));
beforeAll(async () => {
  t = await startTestApp({ settings: { LOCAL_OUTBOX_DIR: dir } });
});
afterAll(async () => {
  await t?.stop();
});

describe("the readable outbox", () => {
  it("writes one .eml per e-mail, with an encoded UTF-8 subject and both bodies", async () => {
    const message = {
      messageId: "test-eml-1",
      to: ["person@example.com"],
      subject: "Din upload er blevet hentet — ærø",
      text: "Hej Åse,\nuploaden blev hentet.\n",
      html: "<p>Hej Åse</p>",
    };
    await t.services.email.send(message);
    await t.services.email.send(message);
    const files = readdirSync(dir).filter((f) => f.endsWith("test-eml-1.eml"));
    expect(files).toHaveLength(1);
    const eml = readFileSync(path.join(dir, files[0]!), "utf8");
    expect(eml).toMatch(/^Subject: =\?UTF-8\?[BQ]\?/m);
    expect(eml).toMatch(/^To: person@example\.com$/m);
    expect(eml).toMatch(/^Message-ID: <test-eml-1@safedata\.local>$/m);
    expect(eml).toMatch(/^Content-Type: multipart\/alternative;/m);
    expect(eml).toMatch(/Content-Type: text\/plain; charset=utf-8/);
    expect(eml).toMatch(/Content-Type: text\/html; charset=utf-8/);
    expect(eml).not.toContain("Åse");
    expect(eml.split("\r\n").every((line) => line.length <= 998)).toBe(true);
  });

  it("composes a header that cannot be split, however the subject is written", async () => {
    const eml = (
      await composeEml({ messageId: "m", sender: "a@b.example", to: ["c@d.example"], subject: "x\r\nBcc: evil@example.com", text: "t", html: null, sentAt: new Date().toISOString() })
    ).toString("utf8");
    const headers = eml.split("\r\n\r\n")[0]!;
    expect(headers).not.toMatch(/^Bcc:/im);
  });

  it("dates the message and names the file by the service's clock (the one a moved LOCAL_CLOCK_CONTROL clock moves)", async () => {
    t.clock.moveTo(new Date("2031-03-04T05:06:07.000Z"));
    await t.services.email.send({ messageId: "test-eml-clock", to: ["person@example.com"], subject: "s", text: "t" });
    const files = readdirSync(dir).filter((f) => f.endsWith("test-eml-clock.eml"));
    expect(files).toEqual(["2031-03-04T050607000Z-test-eml-clock.eml"]);
    const eml = readFileSync(path.join(dir, files[0]!), "utf8");
    expect(eml).toMatch(/^Date: Tue, 04 Mar 2031 05:06:07 \+0000$/m);
  });
});
