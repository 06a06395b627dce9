/**
 * Consent evidence files, the rules (shared/domain/consent-evidence.ts): what the first bytes say a file is (magic
 * bytes, not the name or the declared type), which declared types are taken, and how the two must agree; and the
 * associated data and segment key of docs/encryption-format.md's consent-evidence vector, checked against the document.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "@jest/globals";
import fc from "fast-check";
import { expect } from "../helpers/expect";
import { consentEvidenceAssociatedData, createDecryptStream, createEncryptStream, uploadAssociatedData } from "../../shared/crypto";
import { declaredEvidenceType, evidenceContentProblem, sniffEvidenceType, SNIFF_BYTES } from "../../shared/domain/consent-evidence";

const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p))));
const PNG = bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "\x00\x00\x00\x0dIHDR");
const JPEG = bytes([0xff, 0xd8, 0xff, 0xe0], "\x00\x10JFIF");
const WEBP = bytes("RIFF", [0x24, 0, 0, 0], "WEBPVP8 ");
const PDF = bytes("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");

describe("what the first bytes are", () => {
  it("knows each evidence type by its signature", () => {
    expect(sniffEvidenceType(PNG)).toBe("image/png");
    expect(sniffEvidenceType(JPEG)).toBe("image/jpeg");
    expect(sniffEvidenceType(WEBP)).toBe("image/webp");
    expect(sniffEvidenceType(PDF)).toBe("application/pdf");
    for (const page of ["<!DOCTYPE html>\n<html>", "\ufeff  <!doctype HTML><p>", "\n\t<HTML lang=da>", "<head>", "<body>", "<!-- rendered notice -->"]) {
      expect(sniffEvidenceType(Buffer.from(page, "utf8")), page).toBe("text/html");
    }
  });

  it("knows none of: other formats, fragments, near misses, text with a NUL, nothing", () => {
    const others = [
      bytes("GIF89a"),
      bytes("RIFF", [0x24, 0, 0, 0], "WAVEfmt "),
      bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a]),
      bytes([0xff, 0xd8]),
      bytes("%PDF"),
      bytes("<div>notice</div>"),
      bytes("<htmlx>"),
      bytes("<html"),
      bytes("<html>", [0], "x"),
      bytes("PK\x03\x04"),
      Buffer.alloc(0),
    ];
    for (const b of others) expect(sniffEvidenceType(b), b.toString("latin1")).toBeUndefined();
  });

  it("property: whatever the bytes, the answer is a type whose signature they start with, or none; it never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: SNIFF_BYTES }), (raw) => {
        const b = Buffer.from(raw);
        const found = sniffEvidenceType(b);
        if (found === "image/png") expect(b.subarray(0, 8).equals(PNG.subarray(0, 8))).toBe(true);
        if (found === "text/html") expect(b.includes(0)).toBe(false);
      }),
    );
  });
});

describe("declared type and content", () => {
  it("takes the five types (HTML only as UTF-8), nothing else, no parameters on binaries", () => {
    expect(declaredEvidenceType("image/png", {})).toEqual({ type: "image/png" });
    expect(declaredEvidenceType("TEXT/HTML", { charset: "UTF-8" })).toEqual({ type: "text/html" });
    expect(declaredEvidenceType("text/html", {})).toEqual({ type: "text/html" });
    for (const [type, params] of [
      ["image/gif", {}],
      ["text/plain", {}],
      ["application/octet-stream", {}],
      ["text/html", { charset: "iso-8859-1" }],
      ["text/html", { charset: "utf-8", boundary: "x" }],
      ["image/png", { name: "x.png" }],
    ] as const) {
      expect("problem" in declaredEvidenceType(type, params), `${type} ${JSON.stringify(params)}`).toBe(true);
    }
  });

  it("refuses content that is not what was declared, naming what it is, and an empty file", () => {
    expect(evidenceContentProblem("image/png", PNG)).toBeUndefined();
    expect(evidenceContentProblem("application/pdf", PNG)).toMatch(/is image\/png, not application\/pdf/);
    expect(evidenceContentProblem("image/png", Buffer.from("<html>"))).toMatch(/is text\/html/);
    expect(evidenceContentProblem("image/webp", bytes("RIFF....WAVE"))).toMatch(/does not begin as a image\/webp/);
    expect(evidenceContentProblem("image/jpeg", Buffer.alloc(0))).toBe("the file is empty");
  });
});

describe("docs/encryption-format.md: consent evidence", () => {
  const spec = readFileSync(join(__dirname, "../../docs/encryption-format.md"), "utf8").replace(/\s+/g, "");
  const seq = (start: number, length: number) => Buffer.from(Array.from({ length }, (_, i) => (start + i) & 0xff));

  it("states the associated data and the segment key the code uses", () => {
    const ad = consentEvidenceAssociatedData("tenant-0001", "event-0001");
    const adHex = "0010636f6e73656e742d65766964656e6365000b74656e616e742d30303031000a6576656e742d30303031";
    expect(ad.toString("hex")).toBe(adHex);
    expect(spec).toContain(adHex);
    const info = Buffer.concat([Buffer.from("safedata/stream/v1/segment-key", "ascii"), ad]);
    const key = Buffer.from(hkdfSync("sha256", seq(0x00, 32), seq(0x40, 32), info, 32)).toString("hex");
    expect(key).toBe("8a474813c5b0216cee2a8b1b0c57bc51477af9f7ebb70c265e18451943ab3fb5");
    expect(spec).toContain(key);
  });

  it("binds a stream to its event: the same key under another event's or an upload's associated data does not open it", async () => {
    const dataKey = randomBytes(32);
    const file = randomBytes(5000);
    const collect = async (r: Readable) => {
      const out: Buffer[] = [];
      for await (const c of r) out.push(c as Buffer);
      return Buffer.concat(out);
    };
    const sealed = await collect(Readable.from([file]).pipe(createEncryptStream(dataKey, consentEvidenceAssociatedData("t1", "ce-a"))));
    expect((await collect(Readable.from([sealed]).pipe(createDecryptStream(dataKey, consentEvidenceAssociatedData("t1", "ce-a"))))).equals(file)).toBe(true);
    await expect(collect(Readable.from([sealed]).pipe(createDecryptStream(dataKey, consentEvidenceAssociatedData("t1", "ce-b"))))).rejects.toThrow();
    await expect(collect(Readable.from([sealed]).pipe(createDecryptStream(dataKey, consentEvidenceAssociatedData("t2", "ce-a"))))).rejects.toThrow();
    await expect(collect(Readable.from([sealed]).pipe(createDecryptStream(dataKey, uploadAssociatedData("t1", "ce-a"))))).rejects.toThrow();
  });
});

describe("polyglots (review C, finding 7)", () => {
  const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  it("refuses a PNG, JPEG, WebP or PDF that carries HTML or script markup in its first SNIFF_BYTES; accepts XMP metadata and markup further on", () => {
    expect(evidenceContentProblem("image/png", Buffer.concat([PNG, Buffer.from("<html><script>alert(1)</script>")]))).toMatch(/HTML or script markup/);
    expect(evidenceContentProblem("application/pdf", Buffer.from("%PDF-1.4\n% <Script>x</script>"))).toMatch(/markup/);
    expect(evidenceContentProblem("image/jpeg", Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.from("<svg/onload=alert(1)>")]))).toMatch(/markup/);
    expect(evidenceContentProblem("image/png", Buffer.concat([PNG, Buffer.from("<!DOCTYPE\thtml>")]))).toMatch(/markup/);
    const xmp = '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description/></rdf:RDF></x:xmpmeta>';
    expect(evidenceContentProblem("image/jpeg", Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe1]), Buffer.from(xmp)]))).toBeUndefined();
    expect(evidenceContentProblem("image/png", Buffer.concat([PNG, Buffer.from("a <b> <htmlx <scripted")]))).toBeUndefined();
    // The head the check gets is SNIFF_BYTES long: markup beyond it is not seen (nor sniffed by browsers).
    expect(SNIFF_BYTES).toBeGreaterThanOrEqual(4096);
    // An HTML evidence file is HTML: its own markup is no polyglot.
    expect(evidenceContentProblem("text/html", Buffer.from("<!doctype html><script>x</script>"))).toBeUndefined();
  });
});
